"""What every rule family shares: the rule catalogue, file-level metadata, row findings, ISO 8601 helpers.

Rule ids: ``CORE-nnnnnn`` where the check is the one a published CDISC CORE rule states (the catalogue gives the
CORE description it follows); ``INO-<FAMILY>-nnn`` for this project's own checks (no CORE rule covers them, or
the CORE rule is SEND-only / library-dependent). Every id is stable: tests and users filter on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from converter.adam.shared import shared, shared_results
from converter.validate.findings import MAX_ROWS_PER_GROUP, Finding, Severity

__all__ = [
    "RULES",
    "Coded",
    "ColumnInfo",
    "DatasetInfo",
    "RuleDef",
    "coded",
    "complete_date",
    "day_numbers",
    "finding",
    "info_from_meta",
    "is_all_null",
    "is_null",
    "is_numeric_column",
    "iso_after",
    "iso_datetime_ok",
    "iso_duration_ok",
    "numbers",
    "row_findings",
    "shared_results",
    "starts_after_ends",
    "study_day",
    "text_bytes",
    "text_sizes",
    "text_values",
]


@dataclass(frozen=True)
class RuleDef:
    id: str
    severity: Severity
    family: str  # SDTM, ADAM, DEFINE, FHIR, ROUNDTRIP, PACKAGE
    text: str


def _r(rid: str, severity: Severity, family: str, text: str) -> tuple[str, RuleDef]:
    return rid, RuleDef(rid, severity, family, text)


RULES: dict[str, RuleDef] = dict(
    [
        # --- SDTM: datasets and variables against the spec --------------------------------------------------
        _r("INO-SDTM-001", "error", "SDTM", "DM (required) is missing from the package"),
        _r("INO-SDTM-002", "warning", "SDTM", "A dataset the spec defines is missing from the package"),
        _r("INO-SDTM-003", "info", "SDTM", "A dataset in the package has no spec; only spec-free rules ran on it"),
        _r("CORE-000355", "error", "SDTM", "A Required variable is not present in the dataset (CG0014 part A)"),
        _r("CORE-000334", "warning", "SDTM", "An Expected variable is not present in the dataset (CG0016)"),
        _r("CORE-000356", "error", "SDTM", "A Required variable is null (CG0014 part B)"),
        _r("INO-SDTM-004", "warning", "SDTM", "Variable in the dataset is not defined by the spec"),
        _r("CORE-000182", "error", "SDTM", "Variable name longer than 8 characters (CG0310)"),
        _r("CORE-000293", "error", "SDTM", "Dataset name longer than 8 characters (CG0205)"),
        _r("CORE-000019", "error", "SDTM", "Variable label longer than 40 characters (CG0311)"),
        _r("INO-SDTM-005", "warning", "SDTM", "Variable label differs from the spec"),
        _r("INO-SDTM-006", "error", "SDTM", "Dataset label longer than 40 characters"),
        _r("INO-SDTM-007", "warning", "SDTM", "Dataset label differs from the spec"),
        _r("INO-SDTM-008", "error", "SDTM", "Variable type (character/numeric) differs from the spec"),
        _r("INO-SDTM-009", "error", "SDTM", "Value longer than the variable length the spec gives"),
        _r("INO-SDTM-010", "error", "SDTM", "Character value longer than 200 bytes (FDA XPT v5 limit)"),
        _r("INO-SDTM-011", "warning", "SDTM", "Storage length in the file differs from the spec length"),
        # --- SDTM: keys and subjects ------------------------------------------------------------------------
        _r("CORE-000351", "error", "SDTM", "USUBJID is not unique within DM (CG0151)"),
        _r("CORE-000544", "error", "SDTM", "--SEQ is not unique per USUBJID within the domain (CG0028)"),
        _r("CORE-000201", "error", "SDTM", "USUBJID is not present in DM.USUBJID (CG0029)"),
        # --- SDTM: dates and study days ---------------------------------------------------------------------
        _r("CORE-000547", "error", "SDTM", "--DTC/--STDTC/--ENDTC/RFSTDTC/... value is not a valid ISO 8601 date/time"),
        _r("CORE-000718", "error", "SDTM", "--STDTC is after --ENDTC (FB3209)"),
        _r("CORE-000711", "error", "SDTM", "RFSTDTC is after RFENDTC (FB3404)"),
        _r("CORE-000239", "error", "SDTM", "RFXSTDTC does not equal the earliest EX.EXSTDTC (CG0148)"),
        _r("CORE-000238", "error", "SDTM", "RFXENDTC does not equal the latest EX.EXSTDTC/EXENDTC (CG0147)"),
        _r("INO-SDTM-020", "warning", "SDTM", "Subject has EX records but RFSTDTC is null or after the first EXSTDTC"),
        _r("INO-SDTM-021", "warning", "SDTM", "RFENDTC is before the last EX.EXSTDTC"),
        _r("CORE-000529", "error", "SDTM", "--DY is not calculated per the SDTMIG study day algorithm (CG0006)"),
        _r("CORE-000552", "error", "SDTM", "--STDY is not calculated per the SDTMIG study day algorithm (CG0220)"),
        _r("CORE-000553", "error", "SDTM", "--ENDY is not calculated per the SDTMIG study day algorithm (CG0222)"),
        _r("CORE-000558", "error", "SDTM", "--DY/--STDY/--ENDY is not a non-zero integer (no day 0)"),
        _r("CORE-000354", "error", "SDTM", "--DY populated although --DTC or RFSTDTC is an incomplete date (CG0007)"),
        _r("CORE-000138", "error", "SDTM", "--STDY populated although --STDTC or RFSTDTC is incomplete (CG0221)"),
        _r("CORE-000139", "error", "SDTM", "--ENDY populated although --ENDTC or RFSTDTC is incomplete (CG0223)"),
        # --- SDTM: controlled terminology -------------------------------------------------------------------
        _r("INO-SDTM-030", "error", "SDTM", "Value not in a non-extensible codelist (cf. Pinnacle 21 CT2001)"),
        _r("INO-SDTM-031", "warning", "SDTM", "Value not in an extensible codelist (cf. Pinnacle 21 CT2002)"),
        _r("INO-SDTM-032", "info", "SDTM", "Codelist named by the spec is not under mappings/ct; not checked"),
        # --- SDTM: supplemental qualifiers ------------------------------------------------------------------
        _r("CORE-000457", "error", "SDTM", "SUPP--.RDOMAIN does not name a dataset present in the study (CG0373)"),
        _r("CORE-000712", "error", "SDTM", "SUPP--.IDVAR is not a variable of the RDOMAIN dataset (CG0370)"),
        _r("CORE-000206", "error", "SDTM", "SUPP-- record points at no parent record (USUBJID/IDVAR/IDVARVAL; CG0371)"),
        _r("CORE-000551", "error", "SDTM", "More than one SUPP-- record with the same QNAM for one parent record"),
        # --- SDTM: trial summary ----------------------------------------------------------------------------
        _r("CORE-000740", "error", "SDTM", "A required TSPARMCD (FDA TCG / CG0287) is not found in TS"),
        _r("INO-SDTM-040", "warning", "SDTM", "A TSPARMCD CORE-000740 lists is not in TS (not an FDA TCG requirement)"),
        _r("CORE-000149", "error", "SDTM", "TSVAL is null and TSVALNF is null (CG0259)"),
        _r("CORE-000505", "error", "SDTM", "TS SSTDTC (or DCUTDTC) is not an ISO 8601 date (CG0285)"),
        _r("CORE-000730", "error", "SDTM", "TS AGEMIN/AGEMAX TSVAL is not an ISO 8601 duration (CG0438)"),
        # --- SDTM: content (converter/validate/sdtm_content.py) ----------------------------------------------
        _r("CORE-000264", "error", "SDTM", "AESOC (primary System Organ Class) is missing or null"),
        _r("CORE-000266", "error", "SDTM", "AESER = Y but no seriousness criterion (AESCAN ... AESMIE) is Y"),
        _r("INO-SDTM-056", "warning", "SDTM", "AESER = N but a seriousness criterion is Y"),
        _r("INO-SDTM-050", "error", "SDTM", "MedDRA code is not an 8-digit number"),
        _r("INO-SDTM-051", "error", "SDTM", "AESOC/AESOCCD is not one of the 27 MedDRA SOCs, or name and code differ"),
        _r("INO-SDTM-052", "error", "SDTM", "AEBODSYS/AEBDSYCD differ from the primary SOC AESOC/AESOCCD"),
        _r("INO-SDTM-053", "error", "SDTM", "MedDRA coding inconsistent in the dataset (one term, two codes or paths)"),
        _r("INO-SDTM-054", "error", "SDTM", "MedDRA term or code not in the given MedDRA dictionary, or not its path"),
        _r("CORE-000026", "error", "SDTM", "--TPT is present in the dataset but --TPTNUM is not"),
        _r("CORE-000685", "error", "SDTM", "--TPT is populated but --TPTNUM is null"),
        _r("INO-SDTM-057", "error", "SDTM", "--TPT and --TPTNUM are not one-to-one within the dataset"),
        _r("CORE-000774", "error", "SDTM", "--STAT = NOT DONE but --REASND is null"),
        _r("INO-SDTM-058", "warning", "SDTM", "--REASND is populated but --STAT is not NOT DONE"),
        _r("INO-SDTM-060", "warning", "SDTM", "VISITNUM is null on a record of a dataset that carries visits"),
        _r("INO-SDTM-061", "error", "SDTM", "VISITNUM and VISIT are not one-to-one within the dataset"),
        _r("INO-SDTM-062", "warning", "SDTM", "A CR, CRp or CRi response has no ANC or platelet count near its date"),
        _r("INO-SDTM-063", "error", "SDTM", "A CR, CRp or CRi response's blood counts contradict its category"),
        # --- ADaM (the CORE cache holds no ADaM rules: all project ids) ----------------------------------------
        _r("INO-ADAM-001", "error", "ADAM", "ADSL is missing from the ADaM package"),
        _r("INO-ADAM-002", "error", "ADAM", "ADSL has more than one record per USUBJID"),
        _r("INO-ADAM-003", "error", "ADAM", "PARAMCD and PARAM are not one-to-one within the dataset"),
        _r("INO-ADAM-004", "error", "ADAM", "CNSR is not 0 or 1"),
        _r("INO-ADAM-005", "error", "ADAM", "AVAL is negative in a time-to-event dataset"),
        _r("INO-ADAM-006", "error", "ADAM", "Flag variable (*FL) holds a value other than Y, N or null"),
        _r("INO-ADAM-007", "error", "ADAM", "USUBJID is not in ADSL"),
        _r("INO-ADAM-008", "error", "ADAM", "A Required ADaM variable is not present in the dataset"),
        _r("INO-ADAM-009", "error", "ADAM", "A Required ADaM variable is null"),
        _r("INO-ADAM-010", "warning", "ADAM", "A Conditional ADaM variable of the spec is not present"),
        _r("INO-ADAM-011", "warning", "ADAM", "Variable in the dataset is not defined by the spec"),
        _r("INO-ADAM-012", "error", "ADAM", "Variable label longer than 40 characters"),
        _r("INO-ADAM-013", "warning", "ADAM", "Variable label differs from the spec"),
        _r("INO-ADAM-014", "error", "ADAM", "Variable type (character/numeric) differs from the spec"),
        _r("INO-ADAM-015", "error", "ADAM", "Value longer than the variable length the spec gives"),
        _r("INO-ADAM-016", "error", "ADAM", "PARAMCD longer than 8 characters or not a valid name"),
        _r("INO-ADAM-017", "info", "ADAM", "A dataset in the package has no spec; only spec-free rules ran on it"),
        _r("INO-ADAM-018", "warning", "ADAM", "A dataset the spec defines is missing from the package"),
        # --- package, Define-XML, FHIR, round trip --------------------------------------------------------------
        _r("INO-PKG-001", "error", "PACKAGE", "The folder holds no SDTM, ADaM or FHIR data inoconv can read"),
        _r("INO-PKG-002", "error", "PACKAGE", "A dataset file could not be read"),
        _r("INO-PKG-003", "info", "PACKAGE", "A rule family was skipped (module or input not available)"),
        _r("INO-PKG-004", "info", "PACKAGE", "Specs or terminology could not be loaded; spec-based rules skipped"),
        _r("INO-PKG-005", "error", "PACKAGE", "The Dataset-JSON and the XPT of one dataset differ"),
        _r("INO-PKG-006", "error", "PACKAGE", "A Dataset-JSON file breaks the Dataset-JSON 1.1 rules"),
        _r("INO-DEFINE-001", "error", "DEFINE", "define.xml is not valid against the Define-XML 2.1 schema"),
        _r("INO-DEFINE-002", "error", "DEFINE", "define.xml disagrees with the datasets"),
        _r("INO-DEFINE-003", "warning", "DEFINE", "No define.xml in the SDTM/ADaM folder"),
        _r("INO-FHIR-001", "error", "FHIR", "FHIR resource is not valid against the R4 model"),
        _r("INO-FHIR-002", "error", "FHIR", "FHIR reference does not resolve"),
        _r("INO-FHIR-003", "error", "FHIR", "FHIR identifier is not unique"),
        _r("INO-FHIR-004", "warning", "FHIR", "FHIR code system is not known"),
        _r("INO-FHIR-005", "error", "FHIR", "FHIR check failed"),
        _r("INO-FHIR-006", "error", "FHIR", "FHIR file not readable (bad JSON, too large or deep, control characters)"),
        _r("INO-FHIR-007", "error", "FHIR", "Two FHIR resources of one type have one id"),
        _r("INO-FHIR-008", "error", "FHIR", "FHIR coding system is not a known terminology (or an invented one)"),
        _r("INO-FHIR-009", "error", "FHIR", "FHIR Coding names a code system but carries no code"),
        _r("INO-FHIR-010", "error", "FHIR", "FHIR resource lacks what a profile it claims (meta.profile) requires"),
        _r("INO-FHIR-011", "warning", "FHIR", "FHIR resource claims a profile inoconv cannot check offline"),
        _r("INO-RT-001", "error", "ROUNDTRIP", "SDTM -> FHIR -> SDTM round trip changed data"),
        _r("INO-RT-002", "error", "ROUNDTRIP", "SDTM -> FHIR -> SDTM round trip could not run"),
        _r("INO-RT-003", "error", "ROUNDTRIP", "SDTM data not carried to FHIR and not listed as not mapped"),
    ]
)


def finding(
    rule_id: str,
    dataset: str = "",
    variable: str = "",
    message: str = "",
    *,
    subject: str = "",
    row: int | None = None,
    count: int = 1,
    severity: Severity | None = None,
    file: str = "",
) -> Finding:
    rd = RULES[rule_id]
    return Finding(
        rule_id=rule_id,
        severity=severity or rd.severity,
        dataset=dataset,
        variable=variable,
        subject=subject,
        row=row,
        message=message or rd.text,
        count=count,
        file=file,
    )


def row_findings(
    rule_id: str,
    dataset: str,
    variable: str,
    df: pd.DataFrame,
    mask: Any,
    template: str,
    *,
    severity: Severity | None = None,
    **values: Any,
) -> list[Finding]:
    """One finding per offending row (``mask`` true), the first MAX_ROWS_PER_GROUP of them; the rest as one.

    The message is ``template.format(**{name: values[name][row]})``: each keyword is an array-like of the rows.
    """
    idx = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(idx):
        return []
    arrays = {k: np.asarray(v, dtype=object) for k, v in values.items()}
    subjects = df["USUBJID"].to_numpy(dtype=object) if "USUBJID" in df.columns else None
    out = []
    for i in idx[:MAX_ROWS_PER_GROUP]:
        subj = subjects[i] if subjects is not None else None
        out.append(
            finding(
                rule_id, dataset, variable, template.format(**{k: a[i] for k, a in arrays.items()}),
                subject="" if subj is None or subj is pd.NA else str(subj), row=int(i) + 1, severity=severity,
            )
        )  # fmt: skip
    rest = len(idx) - MAX_ROWS_PER_GROUP
    if rest > 0:
        out.append(
            finding(
                rule_id, dataset, variable, f"... and {rest} more row(s): {RULES[rule_id].text}",
                count=rest, severity=severity,
            )
        )  # fmt: skip
    return out


# --- values --------------------------------------------------------------------------------------------------------
def _text_value(v: Any) -> str | None:
    if isinstance(v, float | np.floating):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace") or None
    s = str(v)
    return s if s != "" else None


@dataclass(frozen=True)
class Coded:
    """A column as codes into the texts of its distinct values: ``texts[codes]`` is :func:`text_values`.

    ``texts`` ends with a ``None`` that code -1 (a missing value) takes. A rule that decides per value decides
    once per distinct text (:meth:`per_text`) and spreads the answer over the rows.
    """

    codes: np.ndarray[Any, np.dtype[np.intp]]
    texts: np.ndarray[Any, np.dtype[np.object_]]

    def values(self) -> np.ndarray[Any, np.dtype[np.object_]]:
        result: np.ndarray[Any, np.dtype[np.object_]] = self.texts[self.codes]
        return result

    def per_text(self, fn: Any, dtype: Any = bool) -> np.ndarray[Any, Any]:
        """``fn(text)`` for every row, computed once per distinct text (``fn`` sees ``None`` for missing)."""
        result: np.ndarray[Any, Any] = np.array([fn(t) for t in self.texts], dtype=dtype)[self.codes]
        return result


def coded(col: pd.Series) -> Coded:
    """The column's :class:`Coded` form; within a rules run (:func:`shared_results`) made once per column."""
    return shared(("coded",), (col,), lambda: _coded(col))


def _coded(col: pd.Series) -> Coded:
    codes: Any
    uniques: Any
    if col.dtype.kind in "iufb":  # numbers (NumPy or nullable): factorised as they are
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
    else:  # text is taken as it is, anything else converted once per distinct value
        codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=True)
    texts = np.empty(len(uniques) + 1, dtype=object)  # the final None: code -1
    texts[:-1] = _texts_of(np.asarray(uniques, dtype=object))
    return Coded(np.asarray(codes, dtype=np.intp), texts)


def _texts_of(uniques: np.ndarray[Any, np.dtype[np.object_]]) -> np.ndarray[Any, np.dtype[np.object_]]:
    """:func:`_text_value` of each distinct value (none missing), whole arrays at a time where they are all text
    or all whole numbers of a safe size."""
    out = np.empty(len(uniques), dtype=object)
    kind = pd.api.types.infer_dtype(uniques, skipna=False) if len(uniques) else "empty"
    if kind in ("string", "empty"):
        out[:] = uniques
        out[out == ""] = None
        return out
    if kind in ("integer", "floating", "mixed-integer-float"):
        nums = uniques.astype(float)
        whole = np.isfinite(nums) & (nums == np.round(nums)) & (np.abs(nums) < 1e15)
        if kind == "integer":
            whole &= np.array([abs(int(v)) < 10**15 for v in uniques], dtype=bool)  # exact beyond float's 2**53
        out[whole] = nums[whole].astype(np.int64).astype(str).astype(object)
        rest = np.flatnonzero(~whole)
        out[rest] = [_text_value(uniques[i]) for i in rest]
        return out
    out[:] = [_text_value(u) for u in uniques]
    return out


def text_values(col: pd.Series) -> np.ndarray[Any, np.dtype[np.object_]]:
    """The column as an object array of ``str`` or ``None`` (numbers formatted without a trailing .0; empty text
    is None). Whole columns at a time: each distinct value is converted once."""
    return coded(col).values()


def is_null(col: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True where the value is missing, empty or blank; within a rules run made once per column (read-only)."""
    return shared(("is_null",), (col,), lambda: _is_null(col))


def _is_null(col: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    result: np.ndarray[Any, np.dtype[np.bool_]]
    if col.dtype.kind in "iub" or (col.dtype.kind == "f" and isinstance(col.dtype, np.dtype)):
        # numbers are never blank text: missing is all (NaN of a NumPy float; NA of Int64 and boolean, which hold
        # no NaN), without factorising the column (the text form is made when a rule reads it)
        result = np.asarray(col.isna(), dtype=bool)
    else:
        c = coded(col)
        result = _blank_texts(c.texts)[c.codes]
    result.flags.writeable = False
    return result


def _blank_texts(texts: np.ndarray[Any, np.dtype[np.object_]]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """None, empty or only whitespace (what ``not t.strip()`` says of a text), per text, in C loops."""
    missing = (texts == None) | (texts == "")  # noqa: E711 - elementwise
    filled = np.where(missing, " ", texts)
    return np.fromiter(map(str.isspace, filled), dtype=bool, count=len(filled))


def text_bytes(col: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Bytes of each value's text in UTF-8 (0 where missing), per distinct text (:func:`text_sizes`)."""
    result: np.ndarray[Any, np.dtype[np.int64]] = text_sizes(col)[coded(col).codes]
    return result


def text_sizes(col: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Bytes in UTF-8 of the texts of the column's coded form (``coded(col).texts``: its distinct values' texts, the
    final missing one 0); texts all ASCII (tested at once on their concatenation) are as long as in characters."""
    c = coded(col)
    texts = np.where(c.texts == None, "", c.texts)  # noqa: E711 - elementwise
    if "".join(texts).isascii():
        return np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    return np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)


def is_all_null(col: pd.Series) -> bool:
    """``is_null(col).all()``; for a text column decided on its distinct values' texts (every one is some row's)."""
    if col.dtype.kind in "iufb" or col.dtype.kind == "M":
        return bool(is_null(col).all())
    return bool(_blank_texts(coded(col).texts[:-1]).all())


def is_numeric_column(col: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(col.dtype)) and not pd.api.types.is_bool_dtype(col.dtype)


def numbers(col: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(pd.to_numeric(col, errors="coerce").astype("float64"), dtype=np.float64)


# --- ISO 8601 ------------------------------------------------------------------------------------------------------
_ISO_DT = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2}|-)(?:-(?P<d>\d{2}|-)"
    r"(?:T(?P<H>\d{2}|-)(?::(?P<M>\d{2}|-)(?::(?P<S>\d{2}(?:\.\d+)?))?)?"
    r"(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$"
)
_ISO_DURATION = re.compile(
    r"^-?P(?=\d|T\d)(?:\d+(?:[.,]\d+)?Y)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?W)?(?:\d+(?:[.,]\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:[.,]\d+)?H)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?S)?)?$"
)


@lru_cache(maxsize=1 << 16)  # dates repeat from row to row
def iso_datetime_ok(text: str) -> bool:
    """An SDTM --DTC value: ISO 8601 date/time, complete or with right-truncated (or '-'-omitted) components."""
    m = _ISO_DT.match(text)
    if not m:
        return False
    y, mo, d = m.group("y"), m.group("m"), m.group("d")
    if mo and mo != "-" and not 1 <= int(mo) <= 12:
        return False
    if d and d != "-":
        if mo == "-":
            return 1 <= int(d) <= 31
        try:
            date(int(y), int(mo), int(d))
        except ValueError:
            return False
    h, mi, s = m.group("H"), m.group("M"), m.group("S")
    if h and h != "-" and int(h) > 23:
        return False
    if mi and mi != "-" and int(mi) > 59:
        return False
    return not (s and float(s) >= 60)


def iso_duration_ok(text: str) -> bool:
    return bool(_ISO_DURATION.match(text))


@lru_cache(maxsize=1 << 16)
def complete_date(text: str | None) -> date | None:
    """The date of a value whose date portion is complete (YYYY-MM-DD), else None."""
    if not text or len(text) < 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


_OMITTED = ("--", " -", ":-")  # an omitted component inside a value (after "T" is read as " ")


def _iso_parts(c: Coded) -> tuple[np.ndarray[Any, Any], ...]:
    """Per distinct text of a date column: valid ISO 8601, the text with "T" as " ", its length and where its
    first omitted component starts (a large number: none)."""
    valid = np.array([t is not None and iso_datetime_ok(t) for t in c.texts], dtype=bool)
    # joined by a line break, changed and split back at once ("" for the invalid texts); a valid text may end in
    # one (the pattern's $ allows it): then text by text
    joined = "\n".join(np.where(valid, c.texts, "")).replace("T", " ")
    norm = np.empty(len(valid), dtype=object)
    if joined.count("\n") == len(valid) - 1:
        norm[:] = joined.split("\n")
    else:
        norm[:] = [t.replace("T", " ") if ok else "" for t, ok in zip(c.texts, valid, strict=True)]
    lengths = np.fromiter(map(len, norm), dtype=np.int64, count=len(norm))
    far = 1 << 30
    if not any(o in joined for o in _OMITTED):  # the usual case: no value omits a component
        return valid, norm, lengths, np.full(len(norm), far, dtype=np.int64)
    omitted = np.array([min((p for p in map(t.find, _OMITTED) if p >= 0), default=far) for t in norm], dtype=np.int64)
    return valid, norm, lengths, omitted


def starts_after_ends(start: Coded, end: Coded) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per row of two date columns of one frame: both valid ISO 8601 and ``iso_after(start, end)``, decided per
    distinct text and compared by ranks (no work per pair of texts but for the rows found after).

    ``iso_after`` compares the texts on the length of the shorter one: where their prefixes of that length
    differ, that is the order of the whole texts; where they are equal (one a prefix of the other) it is False."""
    va, na, la, pa = _iso_parts(start)
    vb, nb, lb, pb = _iso_parts(end)
    _, rank = np.unique(np.concatenate([na, nb]), return_inverse=True)
    rank = rank.reshape(-1)
    ra, rb = rank[: len(na)], rank[len(na) :]
    ia, ib = start.codes % len(na), end.codes % len(nb)  # code -1 -> the final None
    n = np.minimum(la[ia], lb[ib])
    after = va[ia] & vb[ib] & (ra[ia] > rb[ib]) & (pa[ia] + 2 > n) & (pb[ib] + 2 > n)
    for i in np.flatnonzero(after):  # the end's text a prefix of the start's: equal on the shorter length
        if na[ia[i]].startswith(nb[ib[i]]):
            after[i] = False
    result: np.ndarray[Any, np.dtype[np.bool_]] = after
    return result


_ORDINAL_1970 = date(1970, 1, 1).toordinal()
_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9])  # YYYY-MM-DD: where the digits are


def day_numbers(c: Coded) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Per row: the day number (proleptic ordinal) of :func:`complete_date` of the text, NaN where none; the
    distinct texts' first ten characters read at once as code points (``YYYY-MM-DD`` in ASCII digits), any other
    text of that shape by :func:`complete_date` itself."""
    texts = np.where(c.texts == None, "", c.texts)  # noqa: E711 - elementwise
    points = texts.astype("U10").view(np.uint32).reshape(len(texts), 10)  # shorter texts end in code point 0
    shaped = (points[:, 4] == ord("-")) & (points[:, 7] == ord("-"))
    digits = points[:, _DIGITS].astype(np.int64) - ord("0")
    ascii_digits = shaped & ((digits >= 0) & (digits <= 9)).all(axis=1)
    y = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    m = digits[:, 4] * 10 + digits[:, 5]
    d = digits[:, 6] * 10 + digits[:, 7]
    ok = ascii_digits & (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1)
    month = np.where(ok, (y - 1970) * 12 + (m - 1), 0).astype("datetime64[M]")
    first = month.astype("datetime64[D]").astype(np.int64)
    ok &= d <= (month + 1).astype("datetime64[D]").astype(np.int64) - first  # the month's length
    per = np.where(ok, (first + d - 1 + _ORDINAL_1970).astype(np.float64), np.nan)
    for i in np.flatnonzero(shaped & ~ascii_digits):  # other digits, or none: as complete_date says
        found = complete_date(c.texts[i])
        per[i] = float(found.toordinal()) if found is not None else np.nan
    result: np.ndarray[Any, np.dtype[np.float64]] = per[c.codes]
    return result


def study_day(d: date, ref: date) -> int:
    """SDTMIG: date - reference + 1 on or after the reference date, date - reference before it (no day 0)."""
    delta = (d - ref).days
    return delta + 1 if delta >= 0 else delta


@lru_cache(maxsize=1 << 16)
def iso_after(start: str, end: str) -> bool:
    """True when ``start`` is later than ``end`` at the precision both give (partial values compare on a prefix)."""
    a, b = start.replace("T", " "), end.replace("T", " ")
    n = min(len(a), len(b))
    if any(t in x[:n] for x in (a, b) for t in ("--", " -", ":-")):
        return False  # an omitted component inside: not comparable
    return a[:n] > b[:n]


# --- file-level metadata (labels, storage lengths) --------------------------------------------------------------
@dataclass(frozen=True)
class ColumnInfo:
    name: str
    label: str
    numeric: bool
    length: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """What a file says about a dataset beyond its values (XPT / Dataset-JSON header); absent for in-memory frames."""

    name: str
    label: str
    columns: tuple[ColumnInfo, ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


def info_from_meta(meta: Any) -> DatasetInfo:
    """From :class:`converter.io.xpt.DatasetMeta` (or anything shaped like it)."""
    cols = tuple(
        ColumnInfo(
            name=str(c.name),
            label=str(getattr(c, "label", "") or ""),
            numeric=bool(getattr(c, "numeric", False)),
            length=getattr(c, "length", None),
        )
        for c in getattr(meta, "columns", ())
    )
    return DatasetInfo(
        name=str(getattr(meta, "name", "") or ""), label=str(getattr(meta, "label", "") or ""), columns=cols
    )
