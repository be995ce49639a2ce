"""Define-XML 2.1 from the mapping specs: build, validate against the official XSD, cross-check with the data.

The same :class:`~converter.spec.model.DatasetSpec` objects that drive the conversion and the XPT metadata are
turned into the ODM 1.3.2 / Define-XML 2.1 document, so the three cannot drift apart.

Content (Define-XML v2.1 specification; element order as the XSD requires):

* ``ODM`` with ``def:Context`` (Submission/Other), ``FileType="Snapshot"``, ``ODMVersion="1.3.2"``, the
  ``<?xml-stylesheet type="text/xsl" href="define2-1.xsl"?>`` processing instruction;
* ``MetaDataVersion`` with ``def:DefineVersion="2.1.0"`` and ``def:Standards``: one ``Type="IG"`` standard per
  implementation guide named by the specs (``SDTMIG 3.4``, ``ADaMIG 1.3``) and one ``Name="CDISC/NCI"
  Type="CT"`` standard per package in ``Terminology.package`` (``"SDTM CT 2024-03-29"``);
* one ``ItemGroupDef`` per dataset (Domain for SDTM, SASDatasetName, Repeating, IsReferenceData, Purpose
  Tabulation/Analysis, def:Structure, def:StandardOID, def:ArchiveLocationID + ``def:leaf`` to the ``.xpt``,
  ``def:Class`` as the 2.1 *element*, ItemRefs with OrderNumber, Mandatory (core Req -> Yes), KeySequence from
  ``spec.keys`` and MethodOID for Derived variables);
* ``ItemDef`` per variable: DataType from the spec type, Length only for text/integer/float (the 2.1 rule; ISO
  8601 types carry none), SignificantDigits for float, SASFieldName, def:DisplayFormat from ``spec.format``,
  CodeListRef, ``def:Origin`` with ``Source`` (Collected -> Investigator, Derived/Assigned/Protocol -> Sponsor),
  a description of the CRF ``FORM.FIELD`` for Collected (plus a ``def:DocumentRef`` with the page to the
  annotated CRF when ``acrf_href`` is given), the predecessor for Predecessor; ``def:ValueListRef`` where the
  spec has ``value_level``;
* value-level metadata: ``def:ValueListDef`` + ``def:WhereClauseDef`` (``RangeCheck Comparator="EQ"
  SoftHard="Soft"`` on the ``by`` variable) and one ItemDef per value;
* ``CodeList`` for every codelist a spec uses (variables and value level), in order of first use. **All terms of
  the study terminology** (``mappings/ct``, itself the study's subset of CDISC CT) are listed, not only the ones in
  the data: the document then depends on the specs alone, and :func:`crosscheck_define` reports data values
  missing from a codelist. ``EnumeratedItem`` when no term has a decode, else ``CodeListItem`` + ``Decode``;
  NCI C-codes as ``Alias Context="nci:ExtCodeID"`` on list and terms; ``def:ExtendedValue="Yes"`` for terms
  without a C-code in an extensible CDISC list; a codelist whose ``source`` is an external dictionary (MedDRA,
  WHODD, ISO 3166, ...; give the version as ``source: MedDRA 26.1``) becomes an ``ExternalCodeList``;
* ``MethodDef`` per derived variable (the spec's ``method`` text, else its rule), ``def:CommentDef`` for spec
  comments, ``def:leaf`` for the annotated CRF.

Lengths follow the XPT policy (:func:`converter.io.xpt.char_lengths`): pass the frames as ``datasets`` so
variables without ``length`` in the spec get their longest value; integer/float Length is the number of digits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat
from lxml import etree

from converter.errors import ConformanceError
from converter.io.datasetjson import item_group_oid, item_oid
from converter.io.xml_errors import describe_xml_error
from converter.io.xpt import XPT_MAX_CHAR, atomic_file, char_lengths, is_char, numeric_values
from converter.spec.model import Codelist, DatasetSpec, Origin, Terminology, ValueLevel, VariableSpec

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
NSMAP: dict[str | None, str] = {None: ODM_NS, "def": DEF_NS, "xlink": XLINK_NS}
NS = {"odm": ODM_NS, "def": DEF_NS, "xlink": XLINK_NS}
DEFINE_VERSION = "2.1.0"
STYLESHEET = "define2-1.xsl"
ACRF_LEAF = "LF.acrf"

ITEM_GROUP_CLASSES = (
    "ADAM OTHER", "BASIC DATA STRUCTURE", "DEVICE LEVEL ANALYSIS DATASET", "EVENTS", "FINDINGS", "FINDINGS ABOUT",
    "INTERVENTIONS", "MEDICAL DEVICE BASIC DATA STRUCTURE", "MEDICAL DEVICE OCCURRENCE DATA STRUCTURE",
    "OCCURRENCE DATA STRUCTURE", "REFERENCE DATA STRUCTURE", "RELATIONSHIP", "SPECIAL PURPOSE", "STUDY REFERENCE",
    "SUBJECT LEVEL ANALYSIS DATASET", "TRIAL DESIGN",
)  # fmt: skip
SUBCLASSES = (
    "ADVERSE EVENT", "MEDICAL DEVICE TIME-TO-EVENT", "NON-COMPARTMENTAL ANALYSIS",
    "POPULATION PHARMACOKINETIC ANALYSIS", "TIME-TO-EVENT",
)  # fmt: skip
# common short names in specs -> (class, subclass)
CLASS_ALIASES: dict[str, tuple[str, str | None]] = {
    "ADSL": ("SUBJECT LEVEL ANALYSIS DATASET", None),
    "BDS": ("BASIC DATA STRUCTURE", None),
    "TTE": ("BASIC DATA STRUCTURE", "TIME-TO-EVENT"),
    "ADTTE": ("BASIC DATA STRUCTURE", "TIME-TO-EVENT"),
    "BDS TIME-TO-EVENT": ("BASIC DATA STRUCTURE", "TIME-TO-EVENT"),
    "OCCDS": ("OCCURRENCE DATA STRUCTURE", None),
    "SPECIAL-PURPOSE": ("SPECIAL PURPOSE", None),
    "SPECIAL PURPOSE DOMAINS": ("SPECIAL PURPOSE", None),
    "TRIAL DESIGN DOMAINS": ("TRIAL DESIGN", None),
    "RELATIONSHIPS": ("RELATIONSHIP", None),
    "ADAM OTHER": ("ADAM OTHER", None),
    "OTHER": ("ADAM OTHER", None),
}
STANDARD_NAMES = (
    "ADaM-OCCDSIG", "ADaMIG", "ADaMIG-MD", "ADaMIG-NCA", "ADaMIG-popPK", "BIMO", "CDISC/NCI", "SDTMIG", "SDTMIG-AP",
    "SDTMIG-MD", "SENDIG", "SENDIG-AR", "SENDIG-DART", "SENDIG-GENETOX",
)  # fmt: skip
PUBLISHING_SETS = ("ADaM", "CDASH", "DEFINE-XML", "SDTM", "SEND")
EXTERNAL_DICTIONARIES = (
    "CDISC CT", "COSTART", "CTCAE", "D-U-N-S NUMBER", "ICD-O", "ICD", "ISO 21090", "ISO 3166", "LOINC", "MED-RT",
    "MedDRA", "SNOMED", "UNII", "WHO ATC CLASSIFICATION SYSTEM", "WHOART", "WHODD", "WHODrug", "ISO 639", "ISO 4217",
    "UCUM",
)  # fmt: skip
CDISC_SOURCES = ("CDISC/NCI", "CDISC", "NCI", "Sponsor", "SPONSOR", "")
ORIGIN_SOURCE = {"Collected": "Investigator", "Derived": "Sponsor", "Assigned": "Sponsor", "Protocol": "Sponsor"}
ODM_DATA_TYPES = (
    "integer", "float", "date", "datetime", "time", "text", "string", "double", "URI", "boolean", "partialDate",
    "partialTime", "partialDatetime", "durationDatetime", "intervalDatetime", "incompleteDatetime", "incompleteDate",
    "incompleteTime",
)  # fmt: skip
LENGTH_TYPES = ("text", "integer", "float")
_STANDARD_RE = re.compile(r"^\s*([A-Za-z][A-Za-z/-]*?)\s+v?(\d[\w.\-]*)\s*$")
_CT_RE = re.compile(r"(SDTM|ADaM|SEND|CDASH|DEFINE-XML)\s+(?:CT\s+)?(\d{4}-\d{2}-\d{2})", re.IGNORECASE)


def _o(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{DEF_NS}}}{tag}"


# --- small model helpers -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Standard:
    oid: str
    name: str
    type: str  # IG | CT
    version: str
    publishing_set: str | None = None


def parse_standard(text: str) -> tuple[str, str] | None:
    """``"SDTMIG 3.4"`` -> ("SDTMIG", "3.4"); None when it does not look like NAME VERSION."""
    m = _STANDARD_RE.match(text or "")
    return (m[1], m[2]) if m else None


def _std_oid(name: str, version: str) -> str:
    return "STD." + re.sub(r"[^A-Za-z0-9.-]", "-", f"{name}.{version}")


def ig_standards(specs: Sequence[DatasetSpec], standard: str) -> dict[str, Standard]:
    """Spec/standard text -> Standard, for the main standard and every distinct ``spec.standard``."""
    out: dict[str, Standard] = {}
    for text in (standard, *(s.standard for s in specs if s.standard)):
        parsed = parse_standard(text)
        if parsed and text not in out:
            out[text] = Standard(_std_oid(*parsed), parsed[0], "IG", parsed[1])
    return out


def ct_standards(ct: Terminology, main: str) -> list[Standard]:
    """CT standards from ``ct.package`` ("SDTM CT 2024-03-29; ADaM CT 2024-03-29")."""
    out: list[Standard] = []
    for part in (p.strip() for p in (ct.package or "").split(";")):
        if not part:
            continue
        m = _CT_RE.search(part)
        if m:
            pset = next(p for p in PUBLISHING_SETS if p.upper() == m[1].upper())
            version = m[2]
        else:
            pset = "ADaM" if main.upper().startswith("ADAM") else "SDTM"
            version = part
        std = Standard(_std_oid(f"CT.{pset}", version), "CDISC/NCI", "CT", version, pset)
        if std not in out:
            out.append(std)
    return out


def _is_cdisc(cl: Codelist) -> bool:
    return cl.code is not None and cl.source not in ("Sponsor", "SPONSOR") and not is_external(cl)


def codelist_standard(cl: Codelist, cts: Sequence[Standard], default: Standard | None) -> Standard | None:
    """The CT standard a CDISC codelist cites: its file's package ("ADaM CT 2024-03-29") when declared, else
    ``default``; None for sponsor and external codelists (no ``def:StandardOID``)."""
    if not _is_cdisc(cl):
        return None
    m = _CT_RE.search(cl.package or "")
    if m:
        for std in cts:
            if (std.publishing_set or "").upper() == m[1].upper() and std.version == m[2]:
                return std
    return default


def trial_title(frames: Mapping[str, pd.DataFrame]) -> str | None:
    """The trial title of TS (``TSPARMCD = TITLE``), whole: TSVAL then its continuations TSVAL1, TSVAL2, ...
    (SDTMIG: text over 200 characters goes on in TSVALn); None without TS or a title."""
    ts = frames.get("TS")
    if ts is None or "TSPARMCD" not in ts.columns or "TSVAL" not in ts.columns:
        return None
    rows = ts[ts["TSPARMCD"].astype("string") == "TITLE"]
    if rows.empty:
        return None
    row = rows.iloc[0]
    more = sorted((c for c in ts.columns if re.fullmatch(r"TSVAL\d+", str(c))), key=lambda c: int(str(c)[5:]))
    parts = [row[c] for c in ["TSVAL", *more]]
    title = "".join(str(v) for v in parts if isinstance(v, str) and v)
    return title.strip() or None


def item_group_class(spec: DatasetSpec) -> tuple[str, str | None] | None:
    """(def:Class Name, SubClass) for the spec's class, or None when it is not a Define-XML 2.1 class."""
    raw = (spec.cls or "").strip().upper()
    sub = spec.extra.get("subclass")
    if raw in ITEM_GROUP_CLASSES:
        return raw, str(sub).upper() if sub else None
    if raw in CLASS_ALIASES:
        cls, alias_sub = CLASS_ALIASES[raw]
        return cls, str(sub).upper() if sub else alias_sub
    return None


def is_external(cl: Codelist) -> bool:
    return cl.source not in CDISC_SOURCES


def external_dictionary(source: str) -> tuple[str, str | None]:
    """``"MedDRA 26.1"`` -> ("MedDRA", "26.1"); an unknown name is kept whole."""
    text = source.strip()
    for name in sorted(EXTERNAL_DICTIONARIES, key=len, reverse=True):
        if text.upper().startswith(name.upper()):
            rest = text[len(name) :].strip(" :,-")
            return name, (rest or None)
    head, _, rest = text.partition(" ")
    return head, (rest.strip() or None)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def mdv_oid(study_oid: str, standard: str) -> str:
    parsed = parse_standard(standard) or (standard, "")
    return f"MDV.{study_oid}.{_safe(parsed[0])}.{_safe(parsed[1])}".rstrip(".")


def _used_codelists(specs: Iterable[DatasetSpec]) -> list[str]:
    seen: dict[str, None] = {}
    for spec in specs:
        for v in sorted(spec.variables, key=lambda x: x.order):
            if v.codelist:
                seen.setdefault(v.codelist, None)
            for vl in v.value_level:
                if vl.codelist:
                    seen.setdefault(vl.codelist, None)
    return list(seen)


# --- digits / lengths ----------------------------------------------------------------------------------------------
def number_digits(value: float) -> tuple[int, int]:
    """(total digits, digits after the point) of a number as Python prints it (shortest round-trip repr):
    34.0 -> (2, 0), 70.25 -> (4, 2), 1e-07 -> (8, 7)."""
    try:
        t = Decimal(repr(float(value))).normalize().as_tuple()
    except InvalidOperation:
        return 0, 0
    exp = int(t.exponent)
    frac = max(-exp, 0)
    whole = max(len(t.digits) + exp, 1)
    return whole + frac, frac


def text_number_digits(text: str) -> tuple[int, int]:
    """Digits of a number written as text ("12.50" -> (4, 2)); (len, 0) when it is not a number."""
    s = text.strip().lstrip("+-")
    whole, _, frac = s.partition(".")
    if (whole + frac).isdigit():
        return len(whole or "0") + len(frac), len(frac)
    return len(text), 0


def numeric_lengths(col: pd.Series | None, var_type: str) -> tuple[int | None, int | None]:
    """(Length, SignificantDigits) of a numeric column from its data; (None, None) without data."""
    values = numeric_values(col) if col is not None else None
    if values is None:
        return None, None
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None, None
    if var_type == "integer":
        return max(len(str(abs(int(v)))) for v in finite.tolist()), None
    digits = [number_digits(v) for v in finite.tolist()]
    return max(d[0] for d in digits), max(d[1] for d in digits)


def variable_lengths(df: pd.DataFrame | None, spec: DatasetSpec) -> dict[str, tuple[int | None, int | None]]:
    """Define-XML (Length, SignificantDigits) per variable; Length None where Define-XML carries none."""
    chars = char_lengths(df, spec)
    out: dict[str, tuple[int | None, int | None]] = {}
    for var in spec.variables:
        if var.type == "text":  # without data or a spec length: the XPT maximum
            out[var.name] = (chars[var.name] if df is not None or var.length else XPT_MAX_CHAR, None)
        elif var.type in ("integer", "float"):
            col = df[var.name] if df is not None and var.name in df.columns else None
            length, sig = numeric_lengths(col, var.type)
            if var.length is not None:
                length = var.length
            if var.significant_digits is not None:
                sig = var.significant_digits
            out[var.name] = (length or 8, sig if var.type == "float" else None)
        else:
            out[var.name] = (None, None)
    return out


def _vlm_rows(df: pd.DataFrame | None, vl: ValueLevel, var: str) -> pd.Series | None:
    if df is None or vl.by not in df.columns or var not in df.columns:
        return None
    mask = np.asarray([_matches(x, {vl.value}) for x in df[vl.by].to_numpy(dtype=object)], dtype=bool)
    rows: pd.Series = df.loc[mask, var]
    return rows


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def vlm_lengths(df: pd.DataFrame | None, vl: ValueLevel, parent: VariableSpec) -> tuple[int | None, int | None]:
    if vl.type not in LENGTH_TYPES:
        return None, None
    rows = _vlm_rows(df, vl, parent.name)
    length: int | None = None
    sig: int | None = None
    if rows is not None and len(rows):
        if is_char(parent):
            texts = [v for v in rows.to_numpy(dtype=object) if isinstance(v, str) and v]
            if texts:
                if vl.type == "text":
                    length = max(len(t.encode("utf-8")) for t in texts)
                else:
                    digits = [text_number_digits(t) for t in texts]
                    length = max(d[0] for d in digits)
                    sig = max(d[1] for d in digits)
        else:
            length, sig = numeric_lengths(rows, vl.type)
    if vl.length is not None:
        length = vl.length
    if vl.significant_digits is not None:
        sig = vl.significant_digits
    if length is None:
        length = parent.length or (1 if vl.type == "text" else 8)
    return length, (sig if vl.type == "float" else None)


# --- checks before building ----------------------------------------------------------------------------------------
def check_for_define(specs: Sequence[DatasetSpec], ct: Terminology, *, standard: str) -> list[str]:
    """Everything in the specs that stops a valid Define-XML 2.1 document (empty list: nothing)."""
    problems: list[str] = []
    parsed = parse_standard(standard)
    if parsed is None or parsed[0] not in STANDARD_NAMES:
        problems.append(f"standard {standard!r} must be NAME VERSION with NAME one of {STANDARD_NAMES}")
    names = [s.name for s in specs]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{dup}: dataset given more than once")
    for spec in specs:
        where = spec.name
        if spec.standard:
            p = parse_standard(spec.standard)
            if p is None or p[0] not in STANDARD_NAMES:
                problems.append(f"{where}: standard {spec.standard!r} is not NAME VERSION with a Define-XML name")
        if item_group_class(spec) is None:
            problems.append(
                f"{where}: class {spec.cls!r} is not a Define-XML 2.1 class ({', '.join(ITEM_GROUP_CLASSES)})"
            )
        else:
            sub = item_group_class(spec)
            if sub and sub[1] and sub[1] not in SUBCLASSES:
                problems.append(f"{where}: subclass {sub[1]!r} is not one of {SUBCLASSES}")
        if not spec.structure:
            problems.append(f"{where}: structure (def:Structure) is missing")
        var_names = {v.name for v in spec.variables}
        for v in spec.variables:
            vwhere = f"{where}.{v.name}"
            if v.type not in ODM_DATA_TYPES:
                problems.append(f"{vwhere}: type {v.type!r} is not an ODM DataType")
            if v.codelist and v.codelist not in ct.codelists:
                problems.append(f"{vwhere}: codelist {v.codelist!r} is not in the terminology")
            if v.origin.type == "Predecessor" and not v.origin.source:
                problems.append(f"{vwhere}: a Predecessor origin needs source: DATASET.VARIABLE")
            for vl in v.value_level:
                if vl.by not in var_names:
                    problems.append(f"{vwhere}: value_level by {vl.by!r} is not a variable of {spec.name}")
                if vl.codelist and vl.codelist not in ct.codelists:
                    problems.append(
                        f"{vwhere} [{vl.by}={vl.value}]: codelist {vl.codelist!r} is not in the terminology"
                    )
                if vl.type not in ODM_DATA_TYPES:
                    problems.append(f"{vwhere} [{vl.by}={vl.value}]: type {vl.type!r} is not an ODM DataType")
    for cid in _used_codelists(specs):
        cl = ct.codelists.get(cid)
        if cl is None:
            continue
        if cl.data_type not in ("text", "integer", "float"):
            problems.append(f"codelist {cid}: data_type {cl.data_type!r} must be text, integer or float")
        if not is_external(cl) and not cl.terms:
            problems.append(f"codelist {cid}: has no terms")
    return problems


# --- building ------------------------------------------------------------------------------------------------------
def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    el = etree.SubElement(parent, _o(tag))
    tt = etree.SubElement(el, _o("TranslatedText"))
    tt.set(f"{{{XML_NS}}}lang", "en")
    tt.text = text
    return el


def _set(el: etree._Element, **attrs: Any) -> etree._Element:
    for k, v in attrs.items():
        if v is not None:
            el.set(k, str(v))
    return el


def _method_text(var: VariableSpec) -> str:
    if var.method:
        return var.method
    if var.rules:
        parts = [r.describe() if sid == "*" else f"{sid}: {r.describe()}" for sid, r in var.rules.items()]
        return "; ".join(parts)
    return "Derived by the sponsor (the mapping spec gives no derivation text)"


def _crf_text(origin: Origin) -> str | None:
    if not origin.source:
        return None
    form, _, fld = origin.source.partition(".")
    text = f"CRF form {form}, field {fld}" if fld else f"CRF {origin.source}"
    return text + (f" (page {origin.page})" if origin.page else "")


def _origin(parent: etree._Element, origin: Origin, acrf: bool) -> None:
    el = _set(etree.SubElement(parent, _d("Origin")), Type=origin.type, Source=ORIGIN_SOURCE.get(origin.type))
    if origin.type == "Collected":
        text = _crf_text(origin)
        if text:
            _text(el, "Description", text)
        if acrf:
            ref = _set(etree.SubElement(el, _d("DocumentRef")), leafID=ACRF_LEAF)
            if origin.page:
                _set(etree.SubElement(ref, _d("PDFPageRef")), PageRefs=origin.page, Type="PhysicalRef")
    elif origin.type in ("Predecessor", "Assigned", "Protocol") and origin.source:
        _text(el, "Description", origin.source)


def _leaf(parent: etree._Element, leaf_id: str, href: str, title: str) -> None:
    leaf = etree.SubElement(parent, _d("leaf"))
    leaf.set("ID", leaf_id)
    leaf.set(f"{{{XLINK_NS}}}href", href)
    etree.SubElement(leaf, _d("title")).text = title


class _Oids:
    """Unique OIDs for value-level items (values may hold blanks or clash once made safe)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, base: str) -> str:
        oid = base
        n = 2
        while oid in self.used:
            oid = f"{base}.{n}"
            n += 1
        self.used.add(oid)
        return oid


def build_define(
    specs: Sequence[DatasetSpec],
    ct: Terminology,
    *,
    study_oid: str,
    study_name: str,
    protocol_name: str,
    standard: str,
    context: str = "Submission",
    dataset_files: Mapping[str, str] | None = None,
    datasets: Mapping[str, pd.DataFrame] | None = None,
    study_description: str | None = None,
    acrf_href: str | None = None,
    originator: str | None = None,
    created: str | None = None,
    metadata_version_oid: str | None = None,
) -> etree._ElementTree:
    """The Define-XML 2.1 document for ``specs`` (raises ConformanceError listing what the specs lack).

    ``standard`` is the main implementation guide (``"SDTMIG 3.4"``/``"ADaMIG 1.3"``); ``dataset_files`` maps a
    dataset name to its file's href (default ``<name lower>.xpt``); ``datasets`` gives the frames so lengths of
    variables without a spec length come from the data; ``acrf_href`` links Collected origins to the annotated CRF.
    """
    problems = check_for_define(specs, ct, standard=standard)
    if context not in ("Submission", "Other"):
        problems.append(f"context {context!r} must be Submission or Other")
    if problems:
        raise ConformanceError(problems)
    files = dict(dataset_files or {})
    frames = dict(datasets or {})
    created = created or dt.datetime.now().astimezone().isoformat(timespec="seconds")
    igs = ig_standards(specs, standard)
    main_ig = igs[standard]
    cts = ct_standards(ct, standard)
    ct_std = next((s for s in cts if s.publishing_set == "SDTM"), cts[0] if cts else None)
    ct_of = {cid: codelist_standard(ct.codelists[cid], cts, ct_std) for cid in _used_codelists(specs)}
    cts = [s for s in cts if s in ct_of.values()]  # a CT standard is declared only when a codelist cites it
    acrf = acrf_href is not None

    root = etree.Element(_o("ODM"), nsmap=NSMAP)
    _set(
        root,
        FileType="Snapshot",
        FileOID=f"{study_oid}.Define-XML_{DEFINE_VERSION}.{_safe(main_ig.name)}",
        ODMVersion="1.3.2",
        CreationDateTime=created,
        Originator=originator,
        SourceSystem="inoconv",
        SourceSystemVersion=_version(),
    )
    root.set(_d("Context"), context)
    study = _set(etree.SubElement(root, _o("Study")), OID=study_oid)
    gv = etree.SubElement(study, _o("GlobalVariables"))
    etree.SubElement(gv, _o("StudyName")).text = study_name
    etree.SubElement(gv, _o("StudyDescription")).text = study_description or trial_title(frames) or study_name
    etree.SubElement(gv, _o("ProtocolName")).text = protocol_name
    mdv = _set(
        etree.SubElement(study, _o("MetaDataVersion")),
        OID=metadata_version_oid or mdv_oid(study_oid, standard),
        Name=f"{study_name}, {main_ig.name} {main_ig.version} data definitions",
        Description=f"Data definitions for {study_name} ({main_ig.name} {main_ig.version})",
    )
    mdv.set(_d("DefineVersion"), DEFINE_VERSION)

    stds = etree.SubElement(mdv, _d("Standards"))
    for std in [*dict.fromkeys(igs.values()), *cts]:
        _set(etree.SubElement(stds, _d("Standard")), OID=std.oid, Name=std.name, Type=std.type,
             PublishingSet=std.publishing_set, Version=std.version, Status="Final")  # fmt: skip
    if acrf:
        crf = etree.SubElement(mdv, _d("AnnotatedCRF"))
        _set(etree.SubElement(crf, _d("DocumentRef")), leafID=ACRF_LEAF)

    oids = _Oids()
    vlds: list[etree._Element] = []
    wcds: list[etree._Element] = []
    igds: list[etree._Element] = []
    itemdefs: list[etree._Element] = []
    methods: dict[str, tuple[str, str]] = {}  # oid -> (name, text)
    comments: dict[str, str] = {}

    for spec in specs:
        df = frames.get(spec.name)
        lengths = variable_lengths(df, spec)
        keys = {k: i for i, k in enumerate(spec.keys, start=1)}
        cls = item_group_class(spec)
        assert cls is not None  # checked
        href = files.get(spec.name, f"{spec.name.lower()}.xpt")
        leaf_id = f"LF.{spec.name}"
        std = igs.get(spec.standard, main_ig) if spec.standard else main_ig
        adam = std.name.upper().startswith("ADAM")
        igd = etree.Element(_o("ItemGroupDef"))
        _set(
            igd,
            OID=item_group_oid(spec.name),
            Name=spec.name,
            Domain=None if adam else str(spec.extra.get("domain", spec.name)),
            SASDatasetName=spec.name,
            Repeating="No" if _one_per_subject(spec) else "Yes",
            IsReferenceData="Yes" if cls[0] == "TRIAL DESIGN" or spec.extra.get("reference_data") else "No",
            Purpose="Analysis" if adam else "Tabulation",
        )
        igd.set(_d("Structure"), spec.structure)
        igd.set(_d("StandardOID"), std.oid)
        igd.set(_d("ArchiveLocationID"), leaf_id)
        if spec.comment:
            comments[f"COM.{spec.name}"] = spec.comment
            igd.set(_d("CommentOID"), f"COM.{spec.name}")
        _text(igd, "Description", spec.label)
        for n, var in enumerate(sorted(spec.variables, key=lambda v: v.order), start=1):
            iref = _set(
                etree.SubElement(igd, _o("ItemRef")),
                ItemOID=item_oid(spec.name, var.name),
                OrderNumber=n,
                Mandatory="Yes" if var.core == "Req" else "No",
                KeySequence=keys.get(var.name),
            )
            if var.origin.type == "Derived":
                moid = f"MT.{spec.name}.{var.name}"
                methods[moid] = (f"Algorithm to derive {spec.name}.{var.name}", _method_text(var))
                iref.set("MethodOID", moid)
            itemdefs.append(_item_def(spec, var, lengths[var.name], acrf, comments))
            if var.value_level:
                vld, new_wcds, new_items = _value_list(spec, var, df, acrf, oids, methods)
                vlds.append(vld)
                wcds.extend(new_wcds)
                itemdefs.extend(new_items)
        domain = str(spec.extra.get("domain", spec.name))
        if not adam and domain != spec.name:  # only a split dataset names its domain (else the description shows twice)
            description = str(spec.extra.get("domain_description", spec.label))
            _set(etree.SubElement(igd, _o("Alias")), Context="DomainDescription", Name=description)
        cel = _set(etree.SubElement(igd, _d("Class")), Name=cls[0])
        if cls[1]:
            _set(etree.SubElement(cel, _d("SubClass")), Name=cls[1])
        _leaf(igd, leaf_id, href, Path(href).name)
        igds.append(igd)

    for el in [*vlds, *wcds, *igds, *itemdefs]:
        mdv.append(el)
    for cid in _used_codelists(specs):
        mdv.append(_codelist(ct.codelists[cid], ct_of[cid]))
    for moid, (name, text) in methods.items():
        m = _set(etree.SubElement(mdv, _o("MethodDef")), OID=moid, Name=name, Type="Computation")
        _text(m, "Description", text)
    for coid, text in comments.items():
        c = _set(etree.SubElement(mdv, _d("CommentDef")), OID=coid)
        _text(c, "Description", text)
    if acrf_href is not None:
        _leaf(mdv, ACRF_LEAF, acrf_href, "Annotated CRF")

    tree = etree.ElementTree(root)
    root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{STYLESHEET}"'))
    return tree


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("inoconv")
    except Exception:  # running from the source tree
        return "0.1.0"


def _one_per_subject(spec: DatasetSpec) -> bool:
    keys = [k for k in spec.keys if k != "STUDYID"]
    return keys == ["USUBJID"] or spec.structure.strip().lower().rstrip(".") == "one record per subject"


def _item_def(
    spec: DatasetSpec,
    var: VariableSpec,
    length: tuple[int | None, int | None],
    acrf: bool,
    comments: dict[str, str],
) -> etree._Element:
    el = etree.Element(_o("ItemDef"))
    _set(
        el,
        OID=item_oid(spec.name, var.name),
        Name=var.name,
        DataType=var.type,
        Length=length[0] if var.type in LENGTH_TYPES else None,
        SignificantDigits=length[1] if var.type == "float" else None,
        SASFieldName=var.name,
    )
    if var.format:
        el.set(_d("DisplayFormat"), var.format)
    if var.comment:
        coid = f"COM.{spec.name}.{var.name}"
        comments[coid] = var.comment
        el.set(_d("CommentOID"), coid)
    _text(el, "Description", var.label)
    if var.codelist:
        _set(etree.SubElement(el, _o("CodeListRef")), CodeListOID=f"CL.{var.codelist}")
    _origin(el, var.origin, acrf)
    if var.value_level:
        _set(etree.SubElement(el, _d("ValueListRef")), ValueListOID=f"VL.{spec.name}.{var.name}")
    return el


def _value_list(
    spec: DatasetSpec,
    var: VariableSpec,
    df: pd.DataFrame | None,
    acrf: bool,
    oids: _Oids,
    methods: dict[str, tuple[str, str]],
) -> tuple[etree._Element, list[etree._Element], list[etree._Element]]:
    vld = _set(etree.Element(_d("ValueListDef")), OID=f"VL.{spec.name}.{var.name}")
    wcds: list[etree._Element] = []
    items: list[etree._Element] = []
    for n, vl in enumerate(var.value_level, start=1):
        base = f"{spec.name}.{var.name}.{_safe(vl.value)}"
        ioid = oids.make(f"IT.{base}")
        woid = oids.make(f"WC.{base}")
        origin = vl.origin or var.origin
        iref = _set(
            etree.SubElement(vld, _o("ItemRef")),
            ItemOID=ioid,
            OrderNumber=n,
            Mandatory="Yes" if var.core == "Req" else "No",
        )
        if origin.type == "Derived":
            moid = f"MT.{spec.name}.{var.name}"
            methods.setdefault(moid, (f"Algorithm to derive {spec.name}.{var.name}", _method_text(var)))
            iref.set("MethodOID", moid)
        _set(etree.SubElement(iref, _d("WhereClauseRef")), WhereClauseOID=woid)
        wcd = _set(etree.Element(_d("WhereClauseDef")), OID=woid)
        rc = _set(etree.SubElement(wcd, _o("RangeCheck")), Comparator="EQ", SoftHard="Soft")
        rc.set(_d("ItemOID"), item_oid(spec.name, vl.by))
        etree.SubElement(rc, _o("CheckValue")).text = vl.value
        wcds.append(wcd)
        length, sig = vlm_lengths(df, vl, var)
        item = _set(
            etree.Element(_o("ItemDef")),
            OID=ioid,
            Name=var.name,
            DataType=vl.type,
            Length=length,
            SignificantDigits=sig,
            SASFieldName=var.name,
        )
        label = vl.label or f"{var.label} ({vl.by} = {vl.value})"
        _text(item, "Description", label + (f" [{vl.unit}]" if vl.unit and vl.label else ""))
        if vl.codelist:
            _set(etree.SubElement(item, _o("CodeListRef")), CodeListOID=f"CL.{vl.codelist}")
        _origin(item, origin, acrf)
        items.append(item)
    return vld, wcds, items


def _codelist(cl: Codelist, ct_std: Standard | None) -> etree._Element:
    el = _set(etree.Element(_o("CodeList")), OID=f"CL.{cl.id}", Name=cl.name, DataType=cl.data_type)
    if is_external(cl):
        dictionary, version = external_dictionary(cl.source)
        _set(etree.SubElement(el, _o("ExternalCodeList")), Dictionary=dictionary, Version=version)
        return el
    cdisc = _is_cdisc(cl)
    if cdisc and ct_std is not None:
        el.set(_d("StandardOID"), ct_std.oid)
    decoded = any(t.decode and t.decode != t.submission for t in cl.terms)
    for n, term in enumerate(cl.terms, start=1):
        item = _set(etree.SubElement(el, _o("CodeListItem" if decoded else "EnumeratedItem")),
                    CodedValue=term.submission, OrderNumber=n)  # fmt: skip
        if cdisc and cl.extensible and term.code is None:
            item.set(_d("ExtendedValue"), "Yes")
        if decoded:
            _text(item, "Decode", term.decode or term.submission)
        if term.code:
            _set(etree.SubElement(item, _o("Alias")), Context="nci:ExtCodeID", Name=term.code)
    if cl.code:
        _set(etree.SubElement(el, _o("Alias")), Context="nci:ExtCodeID", Name=cl.code)
    return el


def define_bytes(tree: etree._ElementTree) -> bytes:
    out: bytes = etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def write_define(path: Path | str, *args: Any, **kwargs: Any) -> Path:
    """Build (see :func:`build_define`, same arguments), check against the XSD and write ``path`` atomically.

    Raises ConformanceError when the document does not validate (nothing is written then).
    """
    tree = build_define(*args, **kwargs)
    errors = validate_define_tree(tree)
    if errors:
        raise ConformanceError([f"define.xml does not validate: {e}" for e in errors])
    path = Path(path)
    with atomic_file(path) as fh:
        fh.write(define_bytes(tree))
    return path


# --- validation ----------------------------------------------------------------------------------------------------
def schema_path() -> Path:
    import odmlib

    return Path(odmlib.__file__).parent / "schemas" / "define" / "2.1" / "define2-1-0.xsd"


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(schema_path()), parser))


def validate_define(path: Path | str) -> list[str]:
    """Problems of a define.xml file: XML syntax, the Define-XML 2.1 XSD (odmlib's copy, imports resolved
    locally, no network) and OID references the XSD does not check. Empty list: valid."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    try:
        tree = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        return [f"{path}: {describe_xml_error(exc)}"]
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror or exc}"]
    return [f"{path}: {e}" for e in validate_define_tree(tree)]


def validate_define_tree(tree: etree._ElementTree) -> list[str]:
    schema = _schema()
    errors = [] if schema.validate(tree) else [f"line {e.line}: {e.message}" for e in schema.error_log]
    return errors + _reference_errors(tree)


_REFS = (
    ("odm:ItemRef", "ItemOID", ("odm:ItemDef",)),
    ("odm:ItemRef", "MethodOID", ("odm:MethodDef",)),
    ("odm:CodeListRef", "CodeListOID", ("odm:CodeList",)),
    ("def:ValueListRef", "ValueListOID", ("def:ValueListDef",)),
    ("def:WhereClauseRef", "WhereClauseOID", ("def:WhereClauseDef",)),
    ("odm:RangeCheck", f"{{{DEF_NS}}}ItemOID", ("odm:ItemDef",)),
    ("*", f"{{{DEF_NS}}}CommentOID", ("def:CommentDef",)),
    ("*", f"{{{DEF_NS}}}StandardOID", ("def:Standard",)),
)


def _reference_errors(tree: etree._ElementTree) -> list[str]:
    root = tree.getroot()
    errors: list[str] = []
    oids: dict[str, set[str]] = {}
    for tag in ("odm:ItemDef", "odm:MethodDef", "odm:CodeList", "def:ValueListDef", "def:WhereClauseDef",
                "def:CommentDef", "def:Standard", "odm:ItemGroupDef"):  # fmt: skip
        found = [str(e.get("OID")) for e in root.iterfind(f".//{tag}", NS)]
        errors += [
            f"{tag} OID {dup} is defined more than once" for dup in sorted({o for o in found if found.count(o) > 1})
        ]
        oids[tag] = set(found)
    for tag, attr, targets in _REFS:
        for el in root.iterfind(f".//{tag}", NS):
            ref = el.get(attr)
            if ref is not None and not any(ref in oids[t] for t in targets):
                errors.append(f"line {el.sourceline}: {attr.split('}')[-1]}={ref!r} refers to no {targets[0]}")
    return errors


# --- cross-check with the data -------------------------------------------------------------------------------------
def crosscheck_define(define_path: Path | str, datasets: Mapping[str, tuple[pd.DataFrame, DatasetSpec]]) -> list[str]:
    """Define-XML against the data it describes; empty list when they agree.

    Every dataset and variable in the data is in define.xml and vice versa (same order); every codelist a spec
    names is referenced and defined, and no defined codelist is unused; data values of a variable with an internal
    codelist are terms of it; Length >= the longest value (text bytes, integer/float digits), also per value-level
    item; each ``def:leaf`` file exists, and for ``.xpt`` files the XPT header agrees with define.xml (variables,
    labels, character widths == Length).
    """
    path = Path(define_path)
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    root = etree.parse(str(path), parser).getroot()
    problems: list[str] = []
    itemdefs = {str(e.get("OID")): e for e in root.iterfind(".//odm:ItemDef", NS)}
    codelists = {str(e.get("OID")): e for e in root.iterfind(".//odm:CodeList", NS)}
    wheres = {str(e.get("OID")): e for e in root.iterfind(".//def:WhereClauseDef", NS)}
    vlds = {str(e.get("OID")): e for e in root.iterfind(".//def:ValueListDef", NS)}
    groups = {str(e.get("Name")): e for e in root.iterfind(".//odm:ItemGroupDef", NS)}
    for name in sorted(set(datasets) - set(groups)):
        problems.append(f"{name}: dataset is not in define.xml")
    for name in sorted(set(groups) - set(datasets)):
        problems.append(f"{name}: define.xml describes a dataset that is not in the data")
    used_cl: set[str] = set()
    for e in root.iterfind(".//odm:CodeListRef", NS):
        used_cl.add(str(e.get("CodeListOID")))
    for oid in sorted(set(codelists) - used_cl):
        problems.append(f"codelist {oid} is defined in define.xml but no variable uses it")
    for name, (df, spec) in datasets.items():
        igd = groups.get(name)
        if igd is None:
            continue
        refs = sorted(igd.iterfind("odm:ItemRef", NS), key=lambda r: int(r.get("OrderNumber") or 0))
        defs = [itemdefs.get(str(r.get("ItemOID"))) for r in refs]
        dnames = [
            str(d.get("Name")) if d is not None else f"?{r.get('ItemOID')}" for d, r in zip(defs, refs, strict=True)
        ]
        cols = [str(c) for c in df.columns]
        for v in [c for c in cols if c not in dnames]:
            problems.append(f"{name}.{v}: variable is in the data but not in define.xml")
        for v in [c for c in dnames if c not in cols]:
            problems.append(f"{name}.{v}: variable is in define.xml but not in the data")
        if set(cols) == set(dnames) and cols != dnames:
            problems.append(f"{name}: define.xml order {dnames} differs from the data's {cols}")
        for d in defs:
            if d is None:
                continue
            var = str(d.get("Name"))
            if var not in df.columns:
                continue
            problems += _check_item(name, var, d, df[var], codelists, spec)
            vref = d.find("def:ValueListRef", NS)
            if vref is not None:
                problems += _check_vlm(name, var, df, vlds.get(str(vref.get("ValueListOID"))), itemdefs, wheres,
                                       codelists)  # fmt: skip
        problems += _check_leaf(name, igd, path.parent, itemdefs, refs)
    return problems


def _coded_values(cl: etree._Element) -> set[str] | None:
    if cl.find("odm:ExternalCodeList", NS) is not None:
        return None
    return {str(i.get("CodedValue")) for i in cl if i.tag in (_o("CodeListItem"), _o("EnumeratedItem"))}


def _values_as_text(col: pd.Series) -> list[str]:
    out: list[str] = []
    for v in col.to_numpy(dtype=object):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v == "":
            continue
        out.append(_as_text(v))
    return out


def _check_length(where: str, item: etree._Element, values: list[str], numeric: bool) -> list[str]:
    length = item.get("Length")
    dtype = item.get("DataType")
    if length is None or dtype not in LENGTH_TYPES or not values:
        return []
    if dtype == "text":
        longest = max(len(v.encode("utf-8")) for v in values)
    elif numeric:
        longest = max(number_digits(float(v))[0] for v in values)
    else:
        longest = max(text_number_digits(v)[0] for v in values)
    if longest > int(length):
        return [f"{where}: define.xml Length {length} is shorter than the longest value ({longest})"]
    return []


def _check_item(
    ds: str, var: str, item: etree._Element, col: pd.Series, codelists: dict[str, etree._Element], spec: DatasetSpec
) -> list[str]:
    where = f"{ds}.{var}"
    problems: list[str] = []
    numeric = not pd.api.types.is_object_dtype(col.dtype)
    values = _values_as_text(col)
    problems += _check_length(where, item, values, numeric)
    ref = item.find("odm:CodeListRef", NS)
    try:
        want = spec.variable(var).codelist
    except KeyError:
        want = None
    have = str(ref.get("CodeListOID")) if ref is not None else None
    if want and have != f"CL.{want}":
        problems.append(f"{where}: the spec names codelist {want} but define.xml references {have}")
    if have and not want:
        problems.append(f"{where}: define.xml references {have} but the spec names no codelist")
    if have:
        cl = codelists.get(have)
        if cl is None:
            problems.append(f"{where}: codelist {have} is referenced but not defined in define.xml")
        else:
            terms = _coded_values(cl)
            if terms is not None:
                missing = sorted(set(values) - terms)
                if missing:
                    problems.append(f"{where}: values {missing[:20]} are not in codelist {have}")
    return problems


def _check_vlm(
    ds: str,
    var: str,
    df: pd.DataFrame,
    vld: etree._Element | None,
    itemdefs: dict[str, etree._Element],
    wheres: dict[str, etree._Element],
    codelists: dict[str, etree._Element],
) -> list[str]:
    if vld is None:
        return [f"{ds}.{var}: def:ValueListRef points to no def:ValueListDef"]
    problems: list[str] = []
    numeric = not pd.api.types.is_object_dtype(df[var].dtype)
    for iref in vld.iterfind("odm:ItemRef", NS):
        item = itemdefs.get(str(iref.get("ItemOID")))
        wref = iref.find("def:WhereClauseRef", NS)
        wcd = wheres.get(str(wref.get("WhereClauseOID"))) if wref is not None else None
        if item is None or wcd is None:
            continue
        mask = pd.Series(True, index=df.index)
        desc = []
        for rc in wcd.iterfind("odm:RangeCheck", NS):
            by_item = itemdefs.get(str(rc.get(f"{{{DEF_NS}}}ItemOID")))
            by = str(by_item.get("Name")) if by_item is not None else ""
            vals = {str(c.text) for c in rc.iterfind("odm:CheckValue", NS)}
            if by not in df.columns or rc.get("Comparator") not in ("EQ", "IN"):
                mask[:] = False
                continue
            mask &= pd.Series([_matches(x, vals) for x in df[by].to_numpy(dtype=object)], index=df.index)
            desc.append(f"{by} in {sorted(vals)}")
        where = f"{ds}.{var} [{', '.join(desc)}]"
        values = _values_as_text(df.loc[mask.astype(bool), var])
        problems += _check_length(where, item, values, numeric)
        ref = item.find("odm:CodeListRef", NS)
        if ref is not None and (cl := codelists.get(str(ref.get("CodeListOID")))) is not None:
            terms = _coded_values(cl)
            if terms is not None and (missing := sorted(set(values) - terms)):
                problems.append(f"{where}: values {missing[:20]} are not in codelist {ref.get('CodeListOID')}")
    return problems


def _matches(value: Any, values: set[str]) -> bool:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return False
    return _as_text(value) in values


def _check_leaf(
    ds: str, igd: etree._Element, base: Path, itemdefs: dict[str, etree._Element], refs: list[etree._Element]
) -> list[str]:
    leaf = igd.find("def:leaf", NS)
    if leaf is None:
        return [f"{ds}: ItemGroupDef has no def:leaf"]
    href = str(leaf.get(f"{{{XLINK_NS}}}href"))
    target = base / href
    if not target.exists():
        return [f"{ds}: def:leaf {href} does not exist beside define.xml"]
    if target.suffix.lower() != ".xpt":
        return []
    problems: list[str] = []
    _, meta = pyreadstat.read_xport(str(target), metadataonly=True)
    xnames = list(meta.column_names)
    defs = [itemdefs.get(str(r.get("ItemOID"))) for r in refs]
    dnames = [str(d.get("Name")) for d in defs if d is not None]
    if xnames != dnames:
        problems.append(f"{ds}: {href} has variables {xnames}, define.xml {dnames}")
    label = igd.findtext("odm:Description/odm:TranslatedText", namespaces=NS)
    if (meta.file_label or "") != (label or ""):
        problems.append(f"{ds}: {href} label {meta.file_label!r} differs from define.xml {label!r}")
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    for d in defs:
        if d is None or str(d.get("Name")) not in labels:
            continue
        var = str(d.get("Name"))
        dlabel = d.findtext("odm:Description/odm:TranslatedText", namespaces=NS) or ""
        if (labels[var] or "") != dlabel:
            problems.append(f"{ds}.{var}: {href} label {labels[var]!r} differs from define.xml {dlabel!r}")
        width = meta.variable_storage_width.get(var)
        if d.get("DataType") == "text" and d.get("Length") and width != int(str(d.get("Length"))):
            problems.append(f"{ds}.{var}: {href} width {width} differs from define.xml Length {d.get('Length')}")
    return problems
