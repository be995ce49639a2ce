"""CDISC ODM-XML 1.3.2 writer and streaming reader for the CRF records, as an EDC system exports them.

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

The writer streams too: metadata first, then ``ClinicalData`` a chunk of subjects at a time, each chunk one
``str.join`` over an object matrix of prepared text pieces (no string built twice).
"""

from __future__ import annotations

import codecs
import concurrent.futures
import csv
import io
import multiprocessing
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
from lxml import etree

from converter import __version__
from converter.errors import Problem, problem
from converter.io.atomic import atomic_write
from converter.records.checks import RawRead, RawTable, empty_raw, field_strings
from converter.records.schema import Field, Form, FormSchema, load_forms

NS = "http://www.cdisc.org/ns/odm/v1.3"
ODM_VERSION = "1.3.2"
STUDY_EVENT_OID = "SE.STUDY"
_N = "{" + NS + "}"
TAG_ODM = _N + "ODM"
TAG_MDV = _N + "MetaDataVersion"
TAG_CLINICAL = _N + "ClinicalData"
TAG_SUBJECT = _N + "SubjectData"
TAG_EVENT = _N + "StudyEventData"
TAG_FORM = _N + "FormData"
TAG_GROUP = _N + "ItemGroupData"
TAG_ITEM = _N + "ItemData"
#: above this size a failed streaming validation is not repeated on a whole tree to find line numbers
LINE_LOOKUP_LIMIT = 64 * 1024 * 1024
#: subjects per chunk of the writer, and data elements per batch of the reader's fast path
_WRITE_CHUNK = 2000
_READ_BATCH = 400_000
#: problems of one kind reported per batch before the rest are left out
MAX_PROBLEMS = 1000

_DATA_TYPES = {"text": "text", "integer": "integer", "float": "float", "date": "date"}
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ILLEGAL_XML_BUT_NUL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ESCAPES = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ('"', "&quot;"),
    ("\t", "&#9;"),
    ("\n", "&#10;"),
    ("\r", "&#13;"),
)


# --------------------------------------------------------------------------------------------------- OIDs


def form_oid(form: str) -> str:
    return f"F.{form}"


def item_group_oid(form: str) -> str:
    return f"IG.{form}"


def item_oid(form: str, name: str) -> str:
    return f"IT.{form}.{name}"


def codelist_oid(form: str, name: str) -> str:
    return f"CL.{form}.{name}"


def unit_oid(unit: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9]+", "_", unit.replace("%", "PCT")).strip("_").upper()
    return f"MU.{safe or 'UNIT'}"


def odm_data_type(f: Field) -> str:
    return "partialDate" if f.type == "date" and f.partial else _DATA_TYPES[f.type]


def _data_fields(form: Form) -> list[Field]:
    """The fields written as ItemData: all but SUBJID (that is the SubjectKey)."""
    return [f for f in form.fields.values() if f.name != "SUBJID"]


# ----------------------------------------------------------------------------------------------- escaping


def esc(text: str) -> str:
    """Escape for an XML attribute value or text node (tabs and line ends kept as character references)."""
    for a, b in _ESCAPES:
        if a in text:
            text = text.replace(a, b)
    return text


# ----------------------------------------------------------------------------------------------- metadata


def _length(f: Field) -> int | None:
    if f.length is not None:
        return int(f.length)
    if f.type == "text" and f.codes:
        return max(len(c) for c in f.codes)
    if f.type == "integer" and f.max is not None:
        return len(str(int(f.max)))
    return None


def _tt(text: str) -> str:
    return f'<TranslatedText xml:lang="en">{esc(text)}</TranslatedText>'


def metadata_xml(schema: FormSchema, level: int = 2, step: str = "  ") -> str:
    """``GlobalVariables``, ``BasicDefinitions`` and ``MetaDataVersion`` of ``Study``, generated from the schema.

    Lines are indented by ``step`` times ``level`` (the nesting depth of Study's children) and deeper.
    """
    st = schema.study
    i1, i2, i3, i4 = (step * (level + k) for k in range(4))
    out: list[str] = [
        f"{i1}<GlobalVariables>",
        f"{i2}<StudyName>{esc(st.oid)}</StudyName>",
        f"{i2}<StudyDescription>{esc(st.name)}</StudyDescription>",
        f"{i2}<ProtocolName>{esc(st.protocol or st.oid)}</ProtocolName>",
        f"{i1}</GlobalVariables>",
    ]
    units: dict[str, str] = {}
    for form in schema.forms.values():
        for f in _data_fields(form):
            if f.unit:
                units.setdefault(unit_oid(f.unit), f.unit)
    if units:
        out.append(f"{i1}<BasicDefinitions>")
        for oid, unit in units.items():
            out.append(f'{i2}<MeasurementUnit OID="{esc(oid)}" Name="{esc(unit)}">')
            out.append(f"{i3}<Symbol>{_tt(unit)}</Symbol>")
            out.append(f"{i2}</MeasurementUnit>")
        out.append(f"{i1}</BasicDefinitions>")
    out.append(f'{i1}<MetaDataVersion OID="{esc(st.metadata_version)}" Name="{esc(st.name or st.oid)}">')
    out.append(f"{i2}<Protocol>")
    out.append(f'{i3}<StudyEventRef StudyEventOID="{STUDY_EVENT_OID}" OrderNumber="1" Mandatory="Yes"/>')
    out.append(f"{i2}</Protocol>")
    out.append(f'{i2}<StudyEventDef OID="{STUDY_EVENT_OID}" Name="Study" Repeating="No" Type="Common">')
    for n, oid in enumerate(schema.forms, 1):
        out.append(f'{i3}<FormRef FormOID="{esc(form_oid(oid))}" OrderNumber="{n}" Mandatory="No"/>')
    out.append(f"{i2}</StudyEventDef>")
    for oid, form in schema.forms.items():
        out.append(f'{i2}<FormDef OID="{esc(form_oid(oid))}" Name="{esc(form.label)}" Repeating="No">')
        out.append(f'{i3}<ItemGroupRef ItemGroupOID="{esc(item_group_oid(oid))}" Mandatory="Yes"/>')
        out.append(f"{i2}</FormDef>")
    for oid, form in schema.forms.items():
        rep = "Yes" if form.repeating else "No"
        out.append(f'{i2}<ItemGroupDef OID="{esc(item_group_oid(oid))}" Name="{esc(oid)}" Repeating="{rep}">')
        out.append(f"{i3}<Description>{_tt(form.label)}</Description>")
        for n, f in enumerate(_data_fields(form), 1):
            mand = "Yes" if f.required else "No"
            out.append(f'{i3}<ItemRef ItemOID="{esc(item_oid(oid, f.name))}" OrderNumber="{n}" Mandatory="{mand}"/>')
        out.append(f"{i2}</ItemGroupDef>")
    for oid, form in schema.forms.items():
        for f in _data_fields(form):
            length = _length(f)
            attrs = f'OID="{esc(item_oid(oid, f.name))}" Name="{esc(f.name)}" DataType="{odm_data_type(f)}"'
            if length is not None:
                attrs += f' Length="{length}"'
            out.append(f"{i2}<ItemDef {attrs}>")
            out.append(f"{i3}<Question>{_tt(f.label)}</Question>")
            if f.unit:
                out.append(f'{i3}<MeasurementUnitRef MeasurementUnitOID="{esc(unit_oid(f.unit))}"/>')
            if f.codes:
                out.append(f'{i3}<CodeListRef CodeListOID="{esc(codelist_oid(oid, f.name))}"/>')
            out.append(f"{i2}</ItemDef>")
    for oid, form in schema.forms.items():
        for f in _data_fields(form):
            if not f.codes:
                continue
            out.append(f'{i2}<CodeList OID="{esc(codelist_oid(oid, f.name))}" Name="{esc(f.label)}" DataType="text">')
            for code, decode in f.codes.items():
                out.append(f'{i3}<CodeListItem CodedValue="{esc(code)}">')
                out.append(f"{i4}<Decode>{_tt(decode)}</Decode>")
                out.append(f"{i3}</CodeListItem>")
            out.append(f"{i2}</CodeList>")
    out.append(f"{i1}</MetaDataVersion>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------- writer


def _creation_datetime() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = time.gmtime(int(epoch)) if epoch and epoch.isdigit() else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", t)


@dataclass
class _FormStrings:
    """A form's rows sorted by subject, with each field's ItemData text prepared (cells of one big join)."""

    form: Form
    subject_code: np.ndarray[Any, Any]  # int64 index into the sorted subject list, ascending
    heads: list[np.ndarray[Any, Any]]  # per field: '<ItemData ItemOID=".." Value="' or "" (missing)
    values: list[np.ndarray[Any, Any]]  # per field: the escaped value or ""
    tails: list[np.ndarray[Any, Any]]  # per field: '"/>' or ""


def _escaped(strings: np.ndarray[Any, Any], where: str) -> list[str]:
    """XML-escape many strings at C speed (join with NUL, escape once, split); refuse what XML cannot hold."""
    values: list[str] = strings.tolist()
    if not values:
        return []
    joined = "\0".join(values)
    bad = _ILLEGAL_XML_BUT_NUL.search(joined)
    if bad is None and joined.count("\0") != len(values) - 1:
        bad = _ILLEGAL_XML.search("\0")
    if bad:
        raise ValueError(f"{where}: character U+{ord(bad.group()):04X} cannot be written to XML")
    return esc(joined).split("\0")


def _prepare_form(form: Form, frame: pd.DataFrame, subject_index: pd.Index[Any]) -> _FormStrings:
    n = len(frame)
    subj = frame["SUBJID"].to_numpy(dtype=object) if "SUBJID" in frame.columns else np.full(n, None, object)
    if n and pd.isna(subj).any():
        raise ValueError(f"form {form.oid}: a record without SUBJID cannot be written to ODM")
    codes = subject_index.get_indexer(pd.Index(pd.Series(subj, dtype=object).astype(str))) if n else np.zeros(0, int)
    order = np.argsort(codes, kind="stable")
    codes = np.asarray(codes)[order]
    heads: list[np.ndarray[Any, Any]] = []
    values: list[np.ndarray[Any, Any]] = []
    tails: list[np.ndarray[Any, Any]] = []
    for f in _data_fields(form):
        if f.name not in frame.columns or n == 0:
            continue
        strings = field_strings(frame[f.name].iloc[order], f)
        present = np.asarray(pd.notna(strings), dtype=bool)
        if not present.any():
            continue
        vals = strings[present]
        if f.type not in ("integer", "float"):
            vals = np.array(_escaped(vals, f"form {form.oid} field {f.name}"), dtype=object)
        head = np.full(n, "", dtype=object)
        head[present] = f'<ItemData ItemOID="{esc(item_oid(form.oid, f.name))}" Value="'
        value = np.full(n, "", dtype=object)
        value[present] = vals
        tail = np.full(n, "", dtype=object)
        tail[present] = '"/>'
        heads.append(head)
        values.append(value)
        tails.append(tail)
    return _FormStrings(form=form, subject_code=codes, heads=heads, values=values, tails=tails)


def _subject_index(records: Mapping[str, pd.DataFrame]) -> pd.Index[Any]:
    keys: list[pd.Series[Any]] = []
    for frame in records.values():
        if "SUBJID" in frame.columns and len(frame):
            keys.append(frame["SUBJID"].dropna().astype(str))
    if not keys:
        return pd.Index([], dtype=object)
    uniq = pd.unique(pd.concat(keys, ignore_index=True))
    return pd.Index(sorted(uniq), dtype=object)


def _chunk_xml(prepared: list[_FormStrings], subjects: pd.Index[Any], lo: int, hi: int, ind: str) -> str:
    """The ``SubjectData`` of subjects ``lo..hi-1`` (indices into the sorted subject list).

    Every piece of text is a cell of one object matrix (one row per ItemGroupData, padded with ""), joined
    once at the end: no string is built twice.
    """
    width = 1 + 3 * max((len(fs.heads) for fs in prepared), default=0) + 1
    blocks: list[np.ndarray[Any, Any]] = []
    subj_parts: list[np.ndarray[Any, Any]] = []
    form_parts: list[np.ndarray[Any, Any]] = []
    pos_parts: list[np.ndarray[Any, Any]] = []
    for k, fs in enumerate(prepared):
        a, b = (int(x) for x in np.searchsorted(fs.subject_code, [lo, hi]))
        if a == b:
            continue
        m = b - a
        codes = fs.subject_code[a:b]
        block = np.full((m, width), "", dtype=object)
        oid = esc(item_group_oid(fs.form.oid))
        if fs.form.repeating:
            first = np.searchsorted(codes, codes, side="left")
            rk = (np.arange(m) - first + 1).astype(str).astype(object)
            block[:, 0] = f'{ind * 5}<ItemGroupData ItemGroupOID="{oid}" ItemGroupRepeatKey="' + rk + '">'
        else:
            block[:, 0] = f'{ind * 5}<ItemGroupData ItemGroupOID="{oid}">'
        for j, (h, v, t) in enumerate(zip(fs.heads, fs.values, fs.tails, strict=True)):
            block[:, 1 + 3 * j] = h[a:b]
            block[:, 2 + 3 * j] = v[a:b]
            block[:, 3 + 3 * j] = t[a:b]
        block[:, width - 1] = "</ItemGroupData>\n"
        blocks.append(block)
        subj_parts.append(codes)
        form_parts.append(np.full(m, k, dtype=np.int64))
        pos_parts.append(np.arange(m))
    if not blocks:
        return ""
    subj = np.concatenate(subj_parts)
    frm = np.concatenate(form_parts)
    order = np.lexsort((np.concatenate(pos_parts), frm, subj))
    subj, frm = subj[order], frm[order]
    body = np.concatenate(blocks)[order]
    n = len(subj)
    new_subject = np.ones(n, dtype=bool)
    new_subject[1:] = subj[1:] != subj[:-1]
    new_form = new_subject.copy()
    new_form[1:] |= frm[1:] != frm[:-1]
    end_subject = np.ones(n, dtype=bool)
    end_subject[:-1] = new_subject[1:]
    end_form = np.ones(n, dtype=bool)
    end_form[:-1] = new_form[1:]
    open_subject = np.full(n, "", dtype=object)
    keys = np.array([str(subjects[int(c)]) for c in subj[new_subject]], dtype=object)
    open_subject[new_subject] = (
        f'{ind * 2}<SubjectData SubjectKey="'
        + np.array(_escaped(keys, "SUBJID"), dtype=object)
        + f'">\n{ind * 3}<StudyEventData StudyEventOID="{STUDY_EVENT_OID}">\n'
    )
    open_form = np.full(n, "", dtype=object)
    form_oids = np.array([f'{ind * 4}<FormData FormOID="{esc(form_oid(fs.form.oid))}">\n' for fs in prepared], object)
    open_form[new_form] = form_oids[frm[new_form]]
    close = np.full(n, "", dtype=object)
    close[end_form] = f"{ind * 4}</FormData>\n"
    close[end_subject] = f"{ind * 4}</FormData>\n{ind * 3}</StudyEventData>\n{ind * 2}</SubjectData>\n"
    cells = np.concatenate([open_subject[:, None], open_form[:, None], body, close[:, None]], axis=1)
    return "".join(cells.ravel().tolist())


def iter_odm_chunks(
    records: Mapping[str, pd.DataFrame],
    schema: FormSchema | None = None,
    *,
    creation_datetime: str | None = None,
    file_oid: str | None = None,
    chunk_subjects: int = _WRITE_CHUNK,
) -> Iterator[str]:
    """The ODM document as consecutive text chunks (header, metadata, then ``chunk_subjects`` subjects each)."""
    schema = schema or load_forms()
    unknown = set(records) - set(schema.forms)
    if unknown:
        raise ValueError(f"forms not in the schema: {sorted(unknown)}")
    st = schema.study
    ind = "  "
    created = creation_datetime or _creation_datetime()
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ODM xmlns="{NS}" FileType="Snapshot" FileOID="{esc(file_oid or st.oid + ".SNAPSHOT")}"'
        f' CreationDateTime="{esc(created)}" ODMVersion="{ODM_VERSION}" Granularity="All"'
        f' Originator="inoconv" SourceSystem="inoconv" SourceSystemVersion="{esc(__version__)}">\n'
        f'{ind}<Study OID="{esc(st.oid)}">\n'
    )
    yield metadata_xml(schema, level=2, step=ind)
    yield (
        f'{ind}</Study>\n{ind}<ClinicalData StudyOID="{esc(st.oid)}" MetaDataVersionOID="{esc(st.metadata_version)}">\n'
    )
    subjects = _subject_index(records)
    prepared = [_prepare_form(form, records[oid], subjects) for oid, form in schema.forms.items() if oid in records]
    for lo in range(0, len(subjects), chunk_subjects):
        yield _chunk_xml(prepared, subjects, lo, min(lo + chunk_subjects, len(subjects)), ind)
    yield f"{ind}</ClinicalData>\n</ODM>\n"


def write_odm(
    records: Mapping[str, pd.DataFrame],
    path: Path | str | IO[bytes],
    schema: FormSchema | None = None,
    *,
    creation_datetime: str | None = None,
    file_oid: str | None = None,
) -> None:
    """Write ``records`` as one ODM 1.3.2 snapshot file (atomically when given a path).

    Rows are written in the order given within each subject (normalised records: key order); subjects in
    sorted SUBJID order. ``creation_datetime`` defaults to now (or ``SOURCE_DATE_EPOCH``); ``file_oid`` to
    ``<study oid>.SNAPSHOT``, so two writes of the same records differ only in ``CreationDateTime``.
    """
    chunks = iter_odm_chunks(records, schema, creation_datetime=creation_datetime, file_oid=file_oid)
    if isinstance(path, (str, Path)):
        with atomic_write(path) as fh:
            for chunk in chunks:
                fh.write(chunk.encode("utf-8"))
    else:
        for chunk in chunks:
            path.write(chunk.encode("utf-8"))


# ------------------------------------------------------------------------------------------------- reader


@lru_cache(maxsize=1)
def odm_xsd() -> etree.XMLSchema:
    """The ODM 1.3.2 XML schema shipped with odmlib, loaded without network access."""
    import odmlib

    base = Path(odmlib.__file__).resolve().parent / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(base), parser))


@dataclass
class _Vocab:
    schema: FormSchema
    forms: list[str]
    form_by_oid: dict[str, str]
    group_by_oid: dict[str, str]
    item_by_oid: dict[str, tuple[str, str]]
    codes: pd.Index[Any]  # every known OID: forms, then groups, then items
    kind: np.ndarray[Any, Any]  # 0 form, 1 group, 2 item
    form_of: np.ndarray[Any, Any]  # form index of each code
    col_of: np.ndarray[Any, Any]  # column index (in form.columns) of each item code, else -1
    known: frozenset[str]

    @classmethod
    def build(cls, schema: FormSchema) -> _Vocab:
        forms = list(schema.forms)
        oids: list[str] = []
        kind: list[int] = []
        form_of: list[int] = []
        col_of: list[int] = []
        for k, oid in enumerate(forms):
            oids.append(form_oid(oid))
            kind.append(0)
            form_of.append(k)
            col_of.append(-1)
        for k, oid in enumerate(forms):
            oids.append(item_group_oid(oid))
            kind.append(1)
            form_of.append(k)
            col_of.append(-1)
        for k, oid in enumerate(forms):
            cols = schema.forms[oid].columns
            for c, name in enumerate(cols):
                oids.append(item_oid(oid, name))
                kind.append(2)
                form_of.append(k)
                col_of.append(c)
        return cls(
            schema=schema,
            forms=forms,
            form_by_oid={form_oid(o): o for o in forms},
            group_by_oid={item_group_oid(o): o for o in forms},
            item_by_oid={item_oid(o, n): (o, n) for o in forms for n in schema.forms[o].columns},
            codes=pd.Index(oids, dtype=object),
            kind=np.array(kind, dtype=np.int8),
            form_of=np.array(form_of, dtype=np.int64),
            col_of=np.array(col_of, dtype=np.int64),
            known=frozenset(oids),
        )


#: A SubjectData's data elements in their usual (and lxml's canonical) spelling: double quotes, the OID
#: first, ItemData self-closed right after its Value. ``split`` gives [text, OID, Value-or-None, text, ...]
#: at C speed; whatever does not fit (other attribute orders, typed ItemData, IsNull, annotations,
#: comments, namespace prefixes) is noticed by counting and read element by element instead.
_RX_DATA = re.compile(
    r'<(?:ItemData ItemOID|ItemGroupData ItemGroupOID|FormData FormOID)="([^"]*)"(?: Value="([^"]*)"/>)?'
)
_RX_BAD_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")
_RX_CHARREF = re.compile(r"&#(x[0-9a-fA-F]+|[0-9]+);")
_RX_KEY = re.compile(r'<SubjectData SubjectKey="([^"]*)"')
#: a block of subjects becomes lines "kind \x1f OID [\x1f Value \x1f rest]" ended by \x1e (both illegal in XML)
_BLOCK_MARKS = (
    ('<SubjectData SubjectKey="', "\x1eS\x1f"),
    ('<FormData FormOID="', "\x1eF\x1f"),
    ('<ItemGroupData ItemGroupOID="', "\x1eG\x1f"),
    ('<ItemData ItemOID="', "\x1eI\x1f"),
    ('" Value="', "\x1f"),
    ('"/>', "\x1f"),
)
_BLOCK_KIND = {"F": 0, "G": 1, "I": 2, "S": 3}


def _read_marked(block: str) -> pd.DataFrame:
    return pd.read_csv(
        io.StringIO(block),
        sep="\x1f",
        lineterminator="\x1e",
        header=None,
        names=["k", "o", "v", "r"],
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        engine="c",
        skip_blank_lines=False,
    )


def _joined_has_quote(values: np.ndarray[Any, Any]) -> bool:
    return bool(len(values)) and '"' in "\0".join(values.tolist())


def _charref(m: re.Match[str]) -> str:
    ref = m.group(1)
    return chr(int(ref[1:], 16) if ref[0] == "x" else int(ref))


def _decode_one(value: str) -> str:
    value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\t", " ")
    value = _RX_CHARREF.sub(_charref, value)
    for a, b in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        value = value.replace(a, b)
    return value


def _decode_attrs(values: list[str]) -> list[str]:
    """Attribute values as an XML parser reports them, for many at once (joined by NUL, never in XML).

    Literal tab/CR/LF become spaces (attribute-value normalisation), then character references and the
    predefined entities are replaced, ``&amp;`` last so that nothing is decoded twice.
    """
    joined = "\0".join(values)
    if "&" not in joined and "\t" not in joined and "\n" not in joined and "\r" not in joined:
        return values
    decoded = _decode_one(joined)
    if decoded.count("\0") != len(values) - 1:  # a character reference to NUL (not XML): one by one
        return [_decode_one(v) for v in values]
    return decoded.split("\0")


class _Where(Sequence[str]):
    """``line N SubjectKey=K`` of the subjects of a block, the lines counted only when first asked for."""

    def __init__(self, block: str, first_line: int, keys: list[str]) -> None:
        self.block = block
        self.first_line = first_line
        self.keys = keys
        self._lines: list[int] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, s: Any) -> Any:
        if self._lines is None:
            starts = [m.start() for m in re.finditer("<SubjectData ", self.block)]
            lines, line, prev = [], self.first_line, 0
            for a in starts:
                line += self.block.count("\n", prev, a)
                lines.append(line)
                prev = a
            self._lines = lines
        return f"line {self._lines[s]} SubjectKey={self.keys[s]}"


def _split_subjects(block: str, line: int) -> list[tuple[str, int]]:
    """A block of whole subjects cut into each SubjectData's text and first line."""
    segs = block.split("<SubjectData ")
    if segs[0].strip():
        raise _Unsafe("text before the first subject of a block")
    out: list[tuple[str, int]] = []
    line += segs[0].count("\n")
    for seg in segs[1:]:
        end = seg.rfind("</SubjectData>")
        if end < 0:
            raise _Unsafe("SubjectData without end tag")
        end += len("</SubjectData>")
        if _RX_GAP.fullmatch(seg[end:]) is None:
            raise _Unsafe("unexpected markup between subjects")
        out.append(("<SubjectData " + seg[:end], line))
        line += seg.count("\n")
    return out


class _Collector:
    """Collects the subjects of one file into per-form raw frames, mostly in vectorised batches.

    Each subject comes as the text of its ``SubjectData`` element (the file's own bytes, or lxml's
    serialisation), with its line. Fast path: :data:`_RX_DATA` takes it apart and a batch of subjects is
    assembled with numpy. A subject the counts do not vouch for is parsed on its own with lxml (``wrap``
    supplies the namespace declarations) and read element by element, with line numbers.
    """

    def __init__(self, vocab: _Vocab, file: str, wrap: tuple[str, str]) -> None:
        self.v = vocab
        self.file = file
        self.wrap = wrap
        self.problems: list[Problem] = []
        self.frames: dict[str, list[pd.DataFrame]] = {f: [] for f in vocab.forms}
        # current fast-path batch
        self.b_texts: list[str] = []
        self.b_lines: list[int] = []
        self.b_keys: list[str] = []
        self.b_oids: list[str] = []
        self.b_values: list[str | None] = []
        self.b_counts: list[int] = []
        # rows read element by element
        self.slow_rows: dict[str, list[dict[str, str | None]]] = {f: [] for f in vocab.forms}

    # -- fast path --------------------------------------------------------------------------------------
    def add_subject(self, text: str, line: int) -> None:
        m = _RX_KEY.match(text)
        parts = _RX_DATA.split(text)
        oids, values = parts[1::3], parts[2::3]
        n_open = values.count(None)  # FormData and ItemGroupData (each has an end tag)
        rest = "".join(parts[0::3])  # everything but the matched starts: end tags, white space, other markup
        # Every element accounted for: the matches, SubjectData and StudyEventData starts and an end tag for
        # each non-ItemData; an ItemData not matched whole (other attributes, no Value, not self-closed),
        # another element or a comment leaves a "<" over and the subject takes the slow path.
        if (
            m is None
            or rest.count("<") != 2 + 2 * rest.count("</StudyEventData>") + n_open
            or "<ItemData" in rest
            or not self.v.known.issuperset(oids)
            or ("&" in text and _RX_BAD_ENTITY.search(text) is not None)
        ):
            self._slow_text(text, line)
            return
        self.b_texts.append(text)
        self.b_lines.append(line)
        self.b_keys.append(m.group(1))
        self.b_oids.extend(oids)
        self.b_values.extend(values)
        self.b_counts.append(len(oids))
        if len(self.b_oids) >= _READ_BATCH:
            self.flush()

    # -- whole blocks of subjects ------------------------------------------------------------------------
    def add_block(self, block: str, line: int) -> None:
        """Many whole subjects at once (``block`` starts at a SubjectData, ``line`` is its line): markup
        turned into separators and read by pandas' C parser.

        Counts must vouch that every element is spelled the usual way; otherwise the block is cut into its
        subjects, which go one by one through :meth:`add_subject`.
        """
        if not block:
            return
        if not self._block_fast(block, line):
            for text, ln in _split_subjects(block, line):
                self.add_subject(text, ln)

    def _block_fast(self, block: str, first_line: int) -> bool:
        block_text = block
        if "\x1e" in block or "\x1f" in block or ("&" in block and _RX_BAD_ENTITY.search(block) is not None):
            return False
        for a, b in _BLOCK_MARKS:
            block = block.replace(a, b)
        try:
            frame = _read_marked(block)
        except (pd.errors.ParserError, ValueError):  # a stray separator: some element spelled otherwise
            return False
        kind_text = frame["k"].to_numpy(dtype=object)
        oid_text = frame["o"].to_numpy(dtype=object)
        value_text = frame["v"].to_numpy(dtype=object)
        rest_text = frame["r"].to_numpy(dtype=object)
        if len(kind_text) == 0 or kind_text[0] != "":  # the block starts with a subject: line 0 is empty
            return False
        kind_text, oid_text, value_text, rest_text = kind_text[1:], oid_text[1:], value_text[1:], rest_text[1:]
        kind_all = pd.Series(kind_text, dtype=object).map(_BLOCK_KIND).to_numpy(dtype="float64")
        if np.isnan(kind_all).any():
            return False
        kind_all = kind_all.astype(np.int64)
        is_s = kind_all == 3
        is_item = kind_all == 2
        n_s = int(is_s.sum())
        # S/F/G lines: the OID, then '"' and the rest of the start tag and what follows up to the next mark
        head = np.flatnonzero(~is_item)
        split = [o.partition('"') for o in oid_text[head].tolist()]
        oid_text = oid_text.copy()
        oid_text[head] = [t[0] for t in split]
        # Everything that is not an OID or a Value must be end tags, StudyEventData / ClinicalData tags and
        # white space: no other element, no attribute after Value, no Value outside ItemData.
        tails = "".join([t[2] for t in split]) + "".join(rest_text[is_item].tolist())
        n_groups = len(head) - n_s  # FormData and ItemGroupData
        n_events = tails.count("<StudyEventData")
        n_clinical = tails.count("<ClinicalData") + tails.count("</ClinicalData>")
        if (
            (value_text[~is_item] != "").any()
            or (rest_text[~is_item] != "").any()
            or tails.count("<") != n_s + n_groups + 2 * n_events + n_clinical
            or tails.count("</") != n_s + n_groups + n_events + tails.count("</ClinicalData>")
            or _joined_has_quote(oid_text[is_item])
            or _joined_has_quote(value_text[is_item])
        ):
            return False
        keys = oid_text[is_s]
        subj_all = np.cumsum(is_s) - 1
        data = ~is_s
        oids = oid_text[data]
        factor, uniques = pd.factorize(oids)
        codes = np.asarray(self.v.codes.get_indexer(pd.Index(_decode_attrs(list(uniques)), dtype=object)))[factor]
        kind = kind_all[data]
        if (codes < 0).any() or (self.v.kind[np.maximum(codes, 0)] != kind).any():
            return False
        where = _Where(block_text, first_line, keys.tolist())
        values = np.full(len(kind), None, dtype=object)
        values[kind == 2] = value_text[data][kind == 2]
        self._assemble(np.array(_decode_attrs(keys.tolist()), dtype=object), where, subj_all[data], codes, kind, values)
        return True

    def flush(self) -> None:
        if not self.b_keys:
            return
        v = self.v
        nsubj = len(self.b_keys)
        subj_of = np.repeat(np.arange(nsubj), self.b_counts)
        oids = self.b_oids
        factor, uniques = pd.factorize(np.array(oids, dtype=object))
        codes = np.asarray(v.codes.get_indexer(pd.Index(_decode_attrs(list(uniques)), dtype=object)))[factor]
        kind = v.kind[codes].astype(np.int64)  # all known (checked per subject)
        raw_values = np.array(self.b_values, dtype=object)
        has_value = np.asarray(pd.notna(raw_values), dtype=bool)
        # an element that is not what its OID says (a Value on a group, an item without Value): slow path
        odd = np.zeros(nsubj, dtype=bool)
        odd[subj_of[has_value != (kind == 2)]] = True
        if odd.any():
            texts, lines = self.b_texts, self.b_lines
            for s in np.flatnonzero(odd):
                self._slow_text(texts[s], lines[s])
            keep = ~odd[subj_of]
            subj_map = np.cumsum(~odd) - 1
            subj_of, codes, kind, raw_values = subj_map[subj_of[keep]], codes[keep], kind[keep], raw_values[keep]
            keys = [k for k, o in zip(self.b_keys, odd, strict=True) if not o]
            where = [f"line {ln} SubjectKey={k}" for k, ln, o in zip(self.b_keys, lines, odd, strict=True) if not o]
        else:
            keys = self.b_keys
            where = [f"line {ln} SubjectKey={k}" for k, ln in zip(self.b_keys, self.b_lines, strict=True)]
        self._assemble(np.array(_decode_attrs(keys), dtype=object), where, subj_of, codes, kind, raw_values)
        self.b_texts, self.b_lines, self.b_keys, self.b_oids, self.b_values, self.b_counts = [], [], [], [], [], []

    def _assemble(
        self,
        keys: np.ndarray[Any, Any],
        where: Sequence[str],
        subj_of: np.ndarray[Any, Any],
        codes: np.ndarray[Any, Any],
        kind: np.ndarray[Any, Any],
        raw_values: np.ndarray[Any, Any],
    ) -> None:
        v = self.v
        is_form, is_group, is_item = kind == 0, kind == 1, kind == 2
        group_pos = np.flatnonzero(is_group)
        form_pos = np.flatnonzero(is_form)
        item_pos = np.flatnonzero(is_item)
        group_id = np.cumsum(is_group) - 1
        form_id = np.cumsum(is_form) - 1
        group_form = v.form_of[codes[group_pos]]
        fid = form_id[group_pos]
        if len(form_pos):
            safe = np.maximum(fid, 0)
            enclosing = np.where(fid >= 0, v.form_of[codes[form_pos[safe]]], -1)
            same_subject = (fid >= 0) & (subj_of[form_pos[safe]] == subj_of[group_pos])
        else:
            enclosing = np.full(len(group_pos), -1)
            same_subject = np.zeros(len(group_pos), dtype=bool)
        # an ItemGroupData in the FormData of another form
        misfiled = (group_form != enclosing) | ~same_subject
        for g in np.flatnonzero(misfiled)[:MAX_PROBLEMS]:
            s = int(subj_of[group_pos[g]])
            outer = form_oid(v.forms[enclosing[g]]) if same_subject[g] else "(none)"
            gid = item_group_oid(v.forms[group_form[g]])
            self.problems.append(
                problem(self.file, where[s], "", gid, "unknown-form", f"ItemGroupData {gid} inside FormData {outer}")
            )
        item_group = group_id[item_pos]
        safe_group = np.maximum(item_group, 0)
        item_form = v.form_of[codes[item_pos]]
        in_subject = (item_group >= 0) & (subj_of[group_pos[safe_group]] == subj_of[item_pos])
        # an ItemData of another form's field inside an ItemGroupData
        wrong_item = in_subject & (item_form != group_form[safe_group])
        for i in np.flatnonzero(wrong_item)[:MAX_PROBLEMS]:
            s = int(subj_of[item_pos[i]])
            form = v.forms[group_form[safe_group[i]]]
            oid = item_oid(
                v.forms[item_form[i]], v.schema.forms[v.forms[item_form[i]]].columns[v.col_of[codes[item_pos[i]]]]
            )
            self.problems.append(
                problem(self.file, where[s], oid, "", "unknown-item", f"ItemOID {oid} is not a field of form {form}")
            )
        keep_item = in_subject & ~wrong_item & ~misfiled[safe_group]
        item_values = raw_values[item_pos]
        values = np.array(_decode_attrs(item_values.tolist()), dtype=object) if len(item_values) else item_values
        for k, oid in enumerate(v.forms):
            form = v.schema.forms[oid]
            sel = np.flatnonzero((group_form == k) & ~misfiled)
            if len(sel) == 0:
                continue
            local = np.full(len(group_pos), -1, dtype=np.int64)
            local[sel] = np.arange(len(sel))
            ncol = len(form.columns)
            mat = np.full((len(sel), ncol), None, dtype=object)
            its = np.flatnonzero(keep_item & (item_form == k))
            if len(its):
                rows = local[item_group[its]]
                cols = v.col_of[codes[item_pos[its]]]
                cell = rows * ncol + cols
                uniq, counts = np.unique(cell, return_counts=True)
                for c in uniq[counts > 1][:MAX_PROBLEMS]:
                    s = int(subj_of[group_pos[sel[int(c // ncol)]]])
                    self.problems.append(
                        problem(
                            self.file,
                            where[s],
                            form.columns[int(c % ncol)],
                            "",
                            "duplicate-item",
                            f"item given twice in one ItemGroupData of form {oid}",
                        )
                    )
                mat[rows, cols] = values[its]
            subj_col = form.columns.index("SUBJID")
            given = mat[:, subj_col]
            expected = keys[subj_of[group_pos[sel]]]
            has = np.asarray(pd.notna(given), dtype=bool)
            for r in np.flatnonzero(has & (given != expected))[:MAX_PROBLEMS]:
                s = int(subj_of[group_pos[sel[r]]])
                self.problems.append(
                    problem(
                        self.file,
                        where[s],
                        "SUBJID",
                        given[r],
                        "odm-structure",
                        "SUBJID item differs from the SubjectKey",
                    )
                )
            mat[:, subj_col] = expected
            mat[mat == ""] = None
            self.frames[oid].append(pd.DataFrame(mat, columns=form.columns, dtype=object))

    # -- element by element -----------------------------------------------------------------------------
    def _slow_text(self, text: str, line: int) -> None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True, load_dtd=False)
        try:
            wrapped = etree.fromstring(self.wrap[0] + text + self.wrap[1], parser)
        except etree.XMLSyntaxError:
            return  # not well-formed: the file's parse reports it
        el = wrapped.find(TAG_SUBJECT) if wrapped.tag != TAG_SUBJECT else wrapped
        if el is None:
            return
        key = el.get("SubjectKey")
        if key is None:
            return  # reported by the file's parse
        self._slow_subject(el, key, line - 1)

    def line(self, el: Any, offset: int) -> str:
        return f"line {(el.sourceline or 1) + offset}"

    # -- element by element -----------------------------------------------------------------------------
    def _slow_subject(self, el: Any, key: str, offset: int) -> None:
        v = self.v
        for ev in el.iterchildren(TAG_EVENT):
            for fd in ev.iterchildren(TAG_FORM):
                foid = fd.get("FormOID")
                fform = v.form_by_oid.get(foid or "")
                if fform is None:
                    self.problems.append(
                        problem(
                            self.file,
                            f"{self.line(fd, offset)} SubjectKey={key}",
                            "",
                            foid,
                            "unknown-form",
                            f"FormOID {foid!r} is not a form of the schema",
                        )
                    )
                    continue
                for ig in fd.iterchildren(TAG_GROUP):
                    self._slow_group(ig, key, fform, offset)

    def _slow_group(self, ig: Any, key: str, fform: str, offset: int) -> None:
        v = self.v
        goid = ig.get("ItemGroupOID")
        form = v.group_by_oid.get(goid or "")
        where = f"{self.line(ig, offset)} SubjectKey={key}"
        if form is None or form != fform:
            msg = (
                f"ItemGroupOID {goid!r} is not a form of the schema"
                if form is None
                else f"ItemGroupData {goid} inside FormData {form_oid(fform)}"
            )
            self.problems.append(problem(self.file, where, "", goid, "unknown-form", msg))
            return
        row: dict[str, str | None] = {}
        for it in ig:
            tag = it.tag
            if not isinstance(tag, str) or not tag.startswith(TAG_ITEM):
                continue  # comments, AuditRecord, Annotation, ...
            ioid = it.get("ItemOID")
            target = v.item_by_oid.get(ioid or "")
            line = f"{self.line(it, offset)} SubjectKey={key}"
            if target is None or target[0] != form:
                self.problems.append(
                    problem(
                        self.file,
                        line,
                        ioid or "",
                        "",
                        "unknown-item",
                        f"ItemOID {ioid!r} is not a field of form {form}",
                    )
                )
                continue
            name = target[1]
            if it.get("IsNull") == "Yes":
                value = None
            elif tag == TAG_ITEM:
                value = it.get("Value")
            else:  # typed ItemDataString etc. carry the value as text
                value = it.text or ""
            if name in row:
                self.problems.append(
                    problem(
                        self.file,
                        line,
                        name,
                        value,
                        "duplicate-item",
                        f"item given twice in one ItemGroupData of form {form}",
                    )
                )
                continue
            row[name] = value
        if row.get("SUBJID") not in (None, key):
            self.problems.append(
                problem(
                    self.file,
                    where,
                    "SUBJID",
                    row["SUBJID"],
                    "odm-structure",
                    "SUBJID item differs from the SubjectKey",
                )
            )
        row["SUBJID"] = key
        self.slow_rows[form].append(row)

    def tables(self) -> dict[str, RawTable]:
        self.flush()
        out: dict[str, RawTable] = {}
        for oid in self.v.forms:
            cols = self.v.schema.forms[oid].columns
            parts = list(self.frames[oid])
            if self.slow_rows[oid]:
                rows = [[row.get(c) for c in cols] for row in self.slow_rows[oid]]
                parts.append(pd.DataFrame(rows, columns=cols, dtype=object))
            if parts:
                frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            else:
                frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
            out[oid] = RawTable(form=oid, file=self.file, frame=frame)
        return out


def _check_metadata(mdv: Any, vocab: _Vocab, file: str) -> list[Problem]:
    """Problems where the file's MetaDataVersion contradicts the schema."""
    out: list[Problem] = []
    schema = vocab.schema
    codelists: dict[str, set[str]] = {}
    for cl in mdv.iterchildren(_N + "CodeList"):
        codelists[cl.get("OID") or ""] = {
            item.get("CodedValue") or "" for item in cl.iterchildren(_N + "CodeListItem", _N + "EnumeratedItem")
        }

    def where(el: Any) -> str:
        return f"line {el.sourceline}"

    for fd in mdv.iterchildren(_N + "FormDef"):
        oid = fd.get("OID") or ""
        if oid not in vocab.form_by_oid:
            out.append(problem(file, where(fd), "", oid, "unknown-form", f"FormDef {oid} is not a form of the schema"))
    for gd in mdv.iterchildren(_N + "ItemGroupDef"):
        oid = gd.get("OID") or ""
        form = vocab.group_by_oid.get(oid)
        if form is None:
            out.append(
                problem(file, where(gd), "", oid, "unknown-form", f"ItemGroupDef {oid} is not a form of the schema")
            )
            continue
        rep = gd.get("Repeating")
        expected = "Yes" if schema.forms[form].repeating else "No"
        if rep != expected:
            out.append(
                problem(
                    file,
                    where(gd),
                    "",
                    rep,
                    "metadata",
                    f"ItemGroupDef {oid}: Repeating={rep}, the schema says {expected}",
                )
            )
        for ref in gd.iterchildren(_N + "ItemRef"):
            ioid = ref.get("ItemOID") or ""
            target = vocab.item_by_oid.get(ioid)
            if target is None or target[0] != form:
                out.append(
                    problem(
                        file,
                        where(ref),
                        ioid,
                        "",
                        "unknown-item",
                        f"ItemGroupDef {oid} refers to ItemOID {ioid}, not a field of form {form}",
                    )
                )
    for idf in mdv.iterchildren(_N + "ItemDef"):
        oid = idf.get("OID") or ""
        target = vocab.item_by_oid.get(oid)
        if target is None:
            out.append(
                problem(file, where(idf), oid, "", "unknown-item", f"ItemDef {oid} is not a field of the schema")
            )
            continue
        f = schema.forms[target[0]].fields[target[1]]
        dtype = idf.get("DataType")
        expected_type = odm_data_type(f)
        # a stricter type than the schema's is no contradiction: "date" for a partial date, "string" for text
        if not (dtype == expected_type or (f.partial and dtype == "date") or (f.type == "text" and dtype == "string")):
            out.append(
                problem(
                    file,
                    where(idf),
                    target[1],
                    dtype,
                    "metadata",
                    f"ItemDef {oid}: DataType {dtype}, the schema says {expected_type}",
                )
            )
        ref = idf.find(_N + "CodeListRef")
        if ref is not None and f.codes:
            extra = sorted(codelists.get(ref.get("CodeListOID") or "", set()) - set(f.codes))
            if extra:
                out.append(
                    problem(
                        file,
                        where(ref),
                        target[1],
                        ", ".join(extra),
                        "metadata",
                        f"code list {ref.get('CodeListOID')} has values the schema does not allow",
                    )
                )
    return out


def _syntax_rule(type_name: str, message: str) -> str:
    text = message.lower()
    if "ENCODING" in type_name or "encoding" in text or "utf-8" in text:
        return "encoding"
    return "xml"


def _syntax_problems(file: str, err: etree.XMLSyntaxError) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[int, str]] = set()
    for e in err.error_log:
        if e.domain_name == "SCHEMASV" or e.level_name == "WARNING":
            continue
        key = (e.line, e.message)
        if key in seen:
            continue
        seen.add(key)
        rule = _syntax_rule(e.type_name, e.message)
        out.append(problem(file, f"line {e.line}", "", "", rule, e.message.strip()))
    if not out:
        out.append(
            problem(
                file, f"line {err.lineno}" if err.lineno else "", "", "", _syntax_rule("", str(err.msg)), str(err.msg)
            )
        )
    return out


def _xsd_problems(file: str, entries: Iterable[Any], path: Path | None) -> list[Problem]:
    """XSD problems; streaming validation gives no lines, so a small file is validated again as a tree."""
    msgs = [e for e in entries if e.domain_name == "SCHEMASV"]
    if not msgs:
        return []
    if path is not None and path.stat().st_size <= LINE_LOOKUP_LIMIT:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
        try:
            tree = etree.parse(str(path), parser)
        except etree.XMLSyntaxError:
            tree = None
        if tree is not None:
            xsd = odm_xsd()
            if not xsd.validate(tree):
                return [
                    problem(file, f"line {e.line}", "", "", "xsd", e.message.strip()) for e in list(xsd.error_log)[:200]
                ]
    return [problem(file, "", "", "", "xsd", e.message.strip()) for e in msgs[:200]]


@dataclass(frozen=True)
class _Root:
    tag: str
    nsmap: dict[str | None, str]
    encoding: str
    doctype: str


def _sniff(path: Path) -> _Root | None:
    """The root element and prolog of an XML file, or None when it does not start as XML."""
    try:
        for _ev, el in etree.iterparse(
            str(path), events=("start",), no_network=True, resolve_entities=False, huge_tree=True, load_dtd=False
        ):
            info = el.getroottree().docinfo
            return _Root(str(el.tag), dict(el.nsmap), str(info.encoding or "UTF-8"), str(info.doctype or ""))
    except etree.XMLSyntaxError:
        return None
    return None


def sniff_root(path: Path) -> str | None:
    """The root element's ``{namespace}name`` of an XML file, or None when it does not start as XML."""
    root = _sniff(path)
    return root.tag if root else None


class _Unsafe(Exception):
    """The raw text holds markup the fast raw reading does not handle (comments, CDATA, odd encodings)."""


_RX_GAP = re.compile(r"\s*(?:(?:</ClinicalData>|<ClinicalData\b[^<>]*>)\s*)*")
_RAW_BLOCK = 1 << 24


def _raw_blocks(path: Path) -> Iterator[tuple[str, int]]:
    """Blocks of whole ``SubjectData`` elements (about ``_RAW_BLOCK`` bytes each) and their first line, cut
    from the file's own UTF-8 text.

    Only for documents whose data region (from the first ``<ClinicalData``) holds elements and attributes
    alone: a comment, CDATA section, processing instruction or an undecodable byte raises :class:`_Unsafe`
    and the caller reads the file through lxml instead. Well-formedness is the caller's separate concern.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    carry = ""
    line = 1
    started = False
    first = True
    end_tag = "</SubjectData>"
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_RAW_BLOCK)
            final = not chunk
            try:
                text = carry + decoder.decode(chunk, final)
            except UnicodeDecodeError:
                raise _Unsafe("not UTF-8") from None
            if first:
                text = text.removeprefix("\ufeff")
                first = False
            if not started:
                i = text.find("<ClinicalData")
                if i < 0:
                    if final:
                        return
                    carry = text
                    continue
                if "<SubjectData" in text[:i]:
                    raise _Unsafe("SubjectData before ClinicalData")
                line += text.count("\n", 0, i)
                text = text[i:]
                started = True
            if "<!--" in text or "-->" in text or "<![CDATA[" in text or "<?" in text:
                raise _Unsafe("comment, CDATA or processing instruction among the clinical data")
            start = text.find("<SubjectData ")
            cut = text.rfind(end_tag)
            if start < 0 or cut < start:
                if final:
                    return
                carry = text
                continue
            cut += len(end_tag)
            head = text[:start]
            if head and not head.startswith("<ClinicalData") and _RX_GAP.fullmatch(head) is None:
                raise _Unsafe("unexpected markup between subjects")
            line += head.count("\n")
            body = text[start:cut]
            yield body, line
            if final:
                return
            line += body.count("\n")
            carry = text[cut:]


def _lxml_pass(
    path: Path, schema: FormSchema, validate: bool, collector: _Collector | None
) -> tuple[list[Problem], bool]:
    """One streaming lxml parse: well-formedness, XSD (when ``validate``), metadata and study checks, and
    with a ``collector`` the subjects too. Returns (problems, whether the XML was well-formed)."""
    file = str(path)
    vocab = _Vocab.build(schema)
    problems: list[Problem] = []
    # no resolve_entities=False here: together with a schema it makes lxml swallow parse errors at the end
    # of a truncated file. Entities cannot be declared anyway: read_odm refuses documents with a DOCTYPE.
    kw: dict[str, Any] = {
        "events": ("end",),
        "tag": (TAG_MDV, TAG_SUBJECT),
        "no_network": True,
        "load_dtd": False,
        "huge_tree": True,
        "collect_ids": False,
    }
    if validate:
        kw["schema"] = odm_xsd()
    etree.clear_error_log()
    it = etree.iterparse(str(path), **kw)
    study: tuple[str | None, str | None] | None = None
    mdv_oids: list[str] = []
    try:
        for _ev, el in it:
            if el.tag == TAG_SUBJECT:
                parent = el.getparent()
                here = (parent.get("StudyOID"), parent.get("MetaDataVersionOID"))
                if here != study:
                    study = here
                    problems += _check_clinical(here, schema, mdv_oids, file, parent.sourceline)
                if el.get("SubjectKey") is None:
                    problems.append(
                        problem(
                            file,
                            f"line {el.sourceline}",
                            "SUBJID",
                            "",
                            "odm-structure",
                            "SubjectData without SubjectKey",
                        )
                    )
                elif collector is not None:
                    collector.add_subject(etree.tostring(el, encoding="unicode", with_tail=False), el.sourceline)
            else:
                mdv_oids.append(el.get("OID") or "")
                problems += _check_metadata(el, vocab, file)
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as err:
        entries = list(err.error_log)
        if not entries or any(e.domain_name != "SCHEMASV" for e in entries):
            return problems + _syntax_problems(file, err), False
        return problems + _xsd_problems(file, entries, path), True
    if validate:
        problems += _xsd_problems(file, it.error_log, path)
    return problems, True


#: files from this size on are read by two processes at once: lxml checks while the raw text is read
PARALLEL_MIN = 32 * 1024 * 1024


def _empty_tables(schema: FormSchema, file: str) -> dict[str, RawTable]:
    return {oid: empty_raw(form, file) for oid, form in schema.forms.items()}


def read_odm(
    path: Path | str, schema: FormSchema | None = None, *, validate: bool = True, parallel: bool = True
) -> RawRead:
    """Stream an ODM file into raw per-form tables plus every problem met (XML, XSD, metadata, structure).

    The subjects' data is cut from the file's own text (fast); a separate streaming lxml parse checks
    well-formedness, the XSD (``validate``), the MetaDataVersion and the study. For files of at least
    :data:`PARALLEL_MIN` bytes the lxml parse runs in a second process (``parallel``). Files the raw reading
    cannot vouch for (another encoding, namespace prefixes, comments among the data) are read by lxml alone.
    If the XML is not well-formed only the parse errors are returned (no tables).
    """
    path = Path(path)
    schema = schema or load_forms()
    vocab = _Vocab.build(schema)
    file = str(path)
    root = _sniff(path)
    if root is not None and root.tag != TAG_ODM:
        msg = f"not an ODM 1.3 document: the root element is {root.tag}"
        return RawRead(
            tables=_empty_tables(schema, file), problems=[problem(file, "line 1", "", root.tag, "format", msg)]
        )
    if root is not None and root.doctype:
        msg = "a DOCTYPE declaration is not allowed in an ODM file (no DTD, no entities)"
        return RawRead(tables=_empty_tables(schema, file), problems=[problem(file, "line 1", "", "", "xml", msg)])
    decls = "".join(f' xmlns{":" + p if p else ""}="{esc(u)}"' for p, u in (root.nsmap.items() if root else ()))
    raw_ok = (
        root is not None and root.nsmap.get(None) == NS and root.encoding.replace("_", "-").upper() in ("UTF-8", "UTF8")
    )
    if raw_ok:
        collector = _Collector(vocab, file, (f"<ClinicalData{decls}>", "</ClinicalData>"))
        future = None
        executor = None
        if parallel and path.stat().st_size >= PARALLEL_MIN and (os.cpu_count() or 1) > 1:
            try:
                ctx = multiprocessing.get_context("fork")
                executor = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
                future = executor.submit(_lxml_pass, path, schema, validate, None)
            except (ValueError, OSError):
                executor = None
        try:
            if future is None:
                problems, well_formed = _lxml_pass(path, schema, validate, None)
                if not well_formed:
                    return RawRead(tables=_empty_tables(schema, file), problems=problems)
            try:
                for block, line in _raw_blocks(path):
                    collector.add_block(block, line)
                tables = collector.tables()
            except _Unsafe:
                raw_ok = False
            if future is not None:
                try:
                    problems, well_formed = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    problems, well_formed = _lxml_pass(path, schema, validate, None)
                if not well_formed:
                    return RawRead(tables=_empty_tables(schema, file), problems=problems)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        if raw_ok:
            return RawRead(tables=tables, problems=problems + collector.problems)
    collector = _Collector(vocab, file, ("<wrap>", "</wrap>"))
    problems, well_formed = _lxml_pass(path, schema, validate, collector)
    if not well_formed:
        return RawRead(tables=_empty_tables(schema, file), problems=problems)
    return RawRead(tables=collector.tables(), problems=problems + collector.problems)


def _check_clinical(
    here: tuple[str | None, str | None], schema: FormSchema, mdv_oids: list[str], file: str, line: int | None
) -> list[Problem]:
    study_oid, mdv = here
    out: list[Problem] = []
    where = f"line {line}" if line else ""
    if study_oid != schema.study.oid:
        out.append(
            problem(
                file,
                where,
                "",
                study_oid,
                "metadata",
                f"ClinicalData is for study {study_oid!r}, the schema is for {schema.study.oid!r}",
            )
        )
    if mdv_oids and mdv not in mdv_oids:
        out.append(
            problem(
                file,
                where,
                "",
                mdv,
                "metadata",
                f"ClinicalData refers to MetaDataVersion {mdv!r}, the file defines {', '.join(mdv_oids)}",
            )
        )
    return out


# ------------------------------------------------------------------------------------ partition by partition


@dataclass(frozen=True)
class OdmSlice:
    """A run of whole ``SubjectData`` elements of an ODM file: bytes ``start``..``end``, from line ``line``."""

    file: str
    start: int
    end: int
    line: int
    subjects: int


def odm_stream_problems(path: Path) -> list[Problem]:
    """Why an ODM file cannot be read a partition at a time (empty: it can). Its well-formedness, XSD, metadata
    and study are checked by a separate pass (:func:`odm_document_problems`)."""
    file = str(path)
    root = _sniff(path)
    if root is None:
        return _lxml_pass(path, load_forms(), False, None)[0] or [problem(file, "line 1", "", "", "xml", "not XML")]
    if root.tag != TAG_ODM:
        return [problem(file, "line 1", "", root.tag, "format", f"not an ODM 1.3 document: the root is {root.tag}")]
    if root.doctype:
        return [problem(file, "line 1", "", "", "xml", "a DOCTYPE declaration is not allowed in an ODM file")]
    if root.nsmap.get(None) != NS or root.encoding.replace("_", "-").upper() not in ("UTF-8", "UTF8"):
        msg = "streaming needs UTF-8 and the ODM namespace as the default namespace: convert it whole (inoconv sdtm)"
        return [problem(file, "line 1", "", root.encoding, "odm-stream", msg)]
    return []


def odm_document_problems(path: Path, schema: FormSchema, validate: bool = True) -> list[Problem]:
    """The whole-document checks of an ODM file in one streaming lxml pass (memory stays flat): well-formedness,
    the XSD (``validate``), the MetaDataVersion against the form schema, and the study."""
    return _lxml_pass(path, schema, validate, None)[0]


def odm_slices(path: Path, subjects: int, read_size: int = 1 << 24) -> Iterator[OdmSlice]:
    """Cut the data region of an ODM file into runs of ``subjects`` whole ``SubjectData`` elements (bytes only:
    nothing is parsed here). Each run begins right after the previous one, so what lies between subjects
    (``</ClinicalData><ClinicalData ...>``) is in a run and checked there."""
    end_tag = b"</SubjectData>"
    file = str(path)
    with path.open("rb") as fh:
        buf = b""
        base = 0  # file offset of buf[0]
        line = 1  # line of buf[0]
        started = False
        scan = last = 0  # where to look for the next end tag; end of the last one found
        count = 0
        while True:
            more = fh.read(read_size)
            final = not more
            buf += more
            if not started:
                i = buf.find(b"<ClinicalData")
                if i < 0:
                    if final:
                        return
                    keep = max(0, len(buf) - len(b"<ClinicalData"))
                    line += buf.count(b"\n", 0, keep)
                    base += keep
                    buf = buf[keep:]
                    continue
                line += buf.count(b"\n", 0, i)
                base += i
                buf = buf[i:]
                started = True
            while True:
                j = buf.find(end_tag, scan)
                if j < 0:
                    break
                count += 1
                scan = last = j + len(end_tag)
                if count == subjects:
                    yield OdmSlice(file, base, base + last, line, count)
                    line += buf.count(b"\n", 0, last)
                    base += last
                    buf = buf[last:]
                    scan = last = count = 0
            if final:
                if count:
                    yield OdmSlice(file, base, base + last, line, count)
                return
            scan = max(scan, len(buf) - len(end_tag) + 1)


def read_odm_slice(sl: OdmSlice, schema: FormSchema) -> RawRead:
    """The raw tables of one run of subjects (the fast reading of :func:`read_odm`), with the file's lines."""
    vocab = _Vocab.build(schema)
    path = Path(sl.file)
    with path.open("rb") as fh:
        fh.seek(sl.start)
        data = fh.read(sl.end - sl.start)
    where = f"line {sl.line}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        at = sl.line + data.count(b"\n", 0, err.start)
        bad = problem(sl.file, f"line {at}", "", "", "encoding", "not UTF-8")
        return RawRead(_empty_tables(schema, sl.file), [bad])
    unsafe = ""
    if "<!--" in text or "<![CDATA[" in text or "<?" in text:
        unsafe = "a comment, CDATA section or processing instruction among the subjects"
    start = text.find("<SubjectData ")
    head = text[: max(start, 0)]
    if not unsafe and (start < 0 or (head and _RX_GAP.fullmatch(head) is None)):
        unsafe = "markup other than ClinicalData tags between subjects"
    collector = _Collector(vocab, sl.file, (f'<ClinicalData xmlns="{NS}">', "</ClinicalData>"))
    if not unsafe:
        try:
            collector.add_block(text[start:], sl.line + head.count("\n"))
        except _Unsafe as err:
            unsafe = str(err)
    if unsafe:
        msg = f"{unsafe}: the streaming reader cannot vouch for these subjects; convert the file whole (inoconv sdtm)"
        return RawRead(_empty_tables(schema, sl.file), [problem(sl.file, where, "", "", "odm-stream", msg)])
    return RawRead(tables=collector.tables(), problems=collector.problems)
