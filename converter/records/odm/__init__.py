"""CDISC ODM-XML 1.3.2 writer and streaming reader for the CRF records, as an EDC system exports them.

Modules: :mod:`.names` (namespace, tags, OIDs, escaping), :mod:`.metadata` (the MetaDataVersion written and
checked), :mod:`.writer`, :mod:`.vocab` and :mod:`.collector` (subjects into raw tables), :mod:`.validation`
(the lxml pass: XML, XSD, metadata, study), :mod:`.reader` (:func:`read_odm`), :mod:`.slices` (a partition at
a time for ``inoconv stream``).

File layout (a ``Snapshot``)::

    ODM (FileType, FileOID, CreationDateTime, ODMVersion 1.3.2)
      Study OID=<study oid>
        GlobalVariables, BasicDefinitions (MeasurementUnits), MetaDataVersion generated from forms.yaml:
        Protocol/StudyEventRef, one StudyEventDef, FormDefs, ItemGroupDefs, ItemDefs, CodeLists
      ClinicalData StudyOID MetaDataVersionOID
        SubjectData SubjectKey=<SUBJID> / StudyEventData / FormData / ItemGroupData (+ItemGroupRepeatKey
        for repeating forms) / ItemData ItemOID Value

OIDs follow one convention derived from the schema: form ``AE`` is FormDef ``F.AE`` with ItemGroupDef
``IG.AE``; field ``AESTDT`` of it is ItemDef ``IT.AE.AESTDT``; its code list ``CL.AE.AESER``; the single study
event is ``SE.STUDY``. ``SUBJID`` is carried by ``SubjectData/@SubjectKey`` and not repeated as an item (a
reader accepts an ``IT.<form>.SUBJID`` item if it equals the subject key). Missing values are written as no
``ItemData`` at all; a reader also accepts ``IsNull="Yes"`` and the typed ``ItemDataString``-style elements.

The reader takes the metadata from forms.yaml (the project's schema); the file's own ``MetaDataVersion``, when
present, is only checked not to contradict it (unknown OIDs, other data types, other repeating flags, code
list values the schema does not allow). It returns raw strings per form: typing, ranges and codes are the
record checks' job (:mod:`converter.records.checks`).

Reading is two streaming passes over the file, run in two processes for files of ``PARALLEL_MIN`` bytes or more:

* an ``lxml.etree.iterparse`` pass (``XMLParser`` options ``no_network``, no DTD loading) that checks
  well-formedness, validates against the ODM 1.3.2 XSD while streaming (libxml2's streaming validator, odmlib's
  copy of the schema loaded with ``no_network=True``), checks the MetaDataVersion and the study OID, and clears
  every ``SubjectData`` after use, so the tree never holds more than one subject;
* a data pass over the file's own text in blocks of about 16 MB of whole subjects: markup is turned into
  separator characters that cannot occur in XML and the block is read by pandas' C parser; counts vouch that
  every element was spelled the usual way (double quotes, OID first, ItemData self-closed after its Value).
  A block that fails them is read subject by subject (each subject re-parsed by lxml where needed, with line
  numbers); a file the data pass cannot vouch for at all (namespace prefixes, another encoding, comments or
  CDATA among the data) is read by the lxml pass alone, subject by subject.

Memory of both passes is bounded (one subject's tree, one text block); the result tables grow, naturally.
Validation costs about twice the parse; ``validate=False`` skips it (every record check still runs).
Streaming validation reports no line numbers; when a file of at most ``LINE_LOOKUP_LIMIT`` bytes fails, it is
validated a second time as a whole tree to report every XSD problem with its line. Documents with a DOCTYPE
are refused (no DTDs, no entities).

Hostile values: a SubjectKey or item value holding a control character (C0 and C1, DEL; a tab, ``&#9;``, is
allowed) is refused with file, ``line N SubjectKey=K`` and field (rule ``control-character``, the one rule of
:mod:`converter.text`), on the fast path column-wise and element by element on the slow one. Literal C0
characters other than tab and line ends are not XML at all and are reported by the parse.

Limits (each refused as a ``limit`` problem with its line, memory flat): a run of more than
:data:`~converter.records.odm.validation.MAX_MARKUP_GAP` (16 MiB) without ``<`` is refused by a byte scan before
any parse; every parse runs with lxml's ``huge_tree`` off, so libxml2 refuses an attribute value or text node
over about 10,000,000 bytes (:data:`~converter.records.odm.validation.XML_NODE_LIMIT`) and nesting deeper than
256; the raw reader carries at most :data:`~converter.records.odm.reader.MAX_CARRY` (32 Mi) characters while
looking for the end of one subject, and the streaming cutter refuses a subject longer than that.

The writer streams too: metadata first, then ``ClinicalData`` a chunk of subjects at a time, each chunk one
``str.join`` over an object matrix of prepared text pieces (no string built twice).
"""

from converter.records.odm.metadata import metadata_xml
from converter.records.odm.names import (
    NS,
    ODM_VERSION,
    STUDY_EVENT_OID,
    TAG_ODM,
    codelist_oid,
    esc,
    form_oid,
    item_group_oid,
    item_oid,
    odm_data_type,
    unit_oid,
)
from converter.records.odm.reader import PARALLEL_MIN, read_odm
from converter.records.odm.slices import (
    OdmSlice,
    odm_document_problems,
    odm_slices,
    odm_stream_problems,
    read_odm_slice,
)
from converter.records.odm.validation import LINE_LOOKUP_LIMIT, odm_xsd, sniff_root
from converter.records.odm.writer import iter_odm_chunks, write_odm

__all__ = [
    "LINE_LOOKUP_LIMIT",
    "NS",
    "ODM_VERSION",
    "PARALLEL_MIN",
    "STUDY_EVENT_OID",
    "TAG_ODM",
    "OdmSlice",
    "codelist_oid",
    "esc",
    "form_oid",
    "item_group_oid",
    "item_oid",
    "iter_odm_chunks",
    "metadata_xml",
    "odm_data_type",
    "odm_document_problems",
    "odm_slices",
    "odm_stream_problems",
    "odm_xsd",
    "read_odm",
    "read_odm_slice",
    "sniff_root",
    "unit_oid",
    "write_odm",
]
