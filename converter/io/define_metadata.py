"""Define-XML 2.1 metadata from the specs, before any XML: namespaces, the standards (IG and CT) and which CT
standard a codelist cites, dataset classes, external dictionaries, OIDs, variable lengths and digits, and the
checks that a set of specs can be expressed as Define-XML (:func:`check_for_define`).

Used by :mod:`converter.io.define` (the document) and :mod:`converter.io.define_check` (validation, cross-check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from converter.io.xpt import XPT_MAX_CHAR, char_lengths, is_char, numeric_values
from converter.spec.model import Codelist, DatasetSpec, Terminology, ValueLevel, VariableSpec

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
CT_PACKAGE_RE = re.compile(r"(SDTM|ADaM|SEND|CDASH|DEFINE-XML)\s+(?:CT\s+)?(\d{4}-\d{2}-\d{2})", re.IGNORECASE)


def odm_tag(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


def def_tag(tag: str) -> str:
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
        m = CT_PACKAGE_RE.search(part)
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


def is_cdisc_codelist(cl: Codelist) -> bool:
    return cl.code is not None and cl.source not in ("Sponsor", "SPONSOR") and not is_external(cl)


def codelist_standard(cl: Codelist, cts: Sequence[Standard], default: Standard | None) -> Standard | None:
    """The CT standard a CDISC codelist cites: its file's package ("ADaM CT 2024-03-29") when declared, else
    ``default``; None for sponsor and external codelists (no ``def:StandardOID``)."""
    if not is_cdisc_codelist(cl):
        return None
    m = CT_PACKAGE_RE.search(cl.package or "")
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


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def mdv_oid(study_oid: str, standard: str) -> str:
    parsed = parse_standard(standard) or (standard, "")
    return f"MDV.{study_oid}.{safe_name(parsed[0])}.{safe_name(parsed[1])}".rstrip(".")


def used_codelists(specs: Iterable[DatasetSpec]) -> list[str]:
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
    distinct = np.unique(finite).tolist()  # the maxima below need each value once
    if var_type == "integer":
        return max(len(str(abs(int(v)))) for v in distinct), None
    digits = [number_digits(v) for v in distinct]
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
    mask = matches_mask(df[vl.by].to_numpy(dtype=object), {vl.value})
    rows: pd.Series = df.loc[mask, var]
    return rows


def matches_mask(values: np.ndarray[Any, np.dtype[Any]], wanted: set[str]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """:func:`value_matches` of each value; a column of text and missing values only at once (text is its own
    :func:`value_text`)."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        found = np.zeros(len(values), dtype=bool)
        kept = ~pd.isna(values)
        found[kept] = pd.Series(values[kept], dtype=object).isin(wanted).to_numpy(dtype=bool)
        return found
    return np.asarray([value_matches(x, wanted) for x in values], dtype=bool)


def value_matches(value: Any, values: set[str]) -> bool:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return False
    return value_text(value) in values


def value_text(value: Any) -> str:
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
    for cid in used_codelists(specs):
        cl = ct.codelists.get(cid)
        if cl is None:
            continue
        if cl.data_type not in ("text", "integer", "float"):
            problems.append(f"codelist {cid}: data_type {cl.data_type!r} must be text, integer or float")
        if not is_external(cl) and not cl.terms:
            problems.append(f"codelist {cid}: has no terms")
    return problems


