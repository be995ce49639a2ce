"""Record checks: every problem of a source record set, found column-wise and reported together.

Readers (:mod:`converter.records.odm`, :mod:`converter.records.csv_io`) return the forms as *raw strings*
(:class:`RawTable`); :func:`check_tables` validates them against the CRF schema (forms.yaml) and returns a
:class:`CheckReport` of errors and warnings; :func:`typed_records` then turns clean raw tables into canonical
:data:`~converter.records.model.Records`.

Rules (the ``rule`` of each :class:`~converter.errors.Problem`; short and stable):

========================= =========================================================================
``required``              a required field is empty
``type``                  not an integer / not a decimal number (``inf``/``nan`` included)
``range``                 a number below the field's ``min`` or above its ``max``
``length``                text longer than the field's ``length``
``code``                  a value outside the field's ``codes``
``date``                  not an ISO 8601 calendar date (``2013-02-30`` included)
``partial-date``          ``YYYY`` / ``YYYY-MM`` in a field without ``partial: true``
``duplicate-key``         a second record with the same key (the form's ``key``)
========================= =========================================================================

Then the record cross-checks forms.yaml declares (``cross_checks:``: date order between form fields, a
subject's record in one form requiring one in another, required-if; :mod:`converter.records.cross_spec`),
each under the rule name the file gives it (``orphan-subject``, ``consent-after-enrolment``, ...); with none
declared, none run (:mod:`converter.records.cross_checks`). Readers add their own structural rules
(``unknown-column``, ``missing-column``, ``xml``, ``xsd``, ...).

Checks are vectorised over columns (numpy/pandas); Python loops run only over the problems found, to format
them. Problems per (form, field, rule) are capped at :data:`MAX_PER_RULE`, with one summary problem after.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import Problem
from converter.records.cross_checks import run_cross_checks
from converter.records.cross_spec import CrossChecks
from converter.records.model import Records, empty_frame
from converter.records.raw import MAX_PER_RULE, ProblemSink, RawRead, RawTable, column, empty_raw
from converter.records.raw import present as present_mask
from converter.records.schema import Field, Form, FormSchema

__all__ = [
    "INT_LIMIT",
    "MAX_PER_RULE",
    "CheckReport",
    "RawRead",
    "RawTable",
    "check_tables",
    "empty_raw",
    "field_strings",
    "format_floats",
    "parse_dates",
    "precise_floats",
    "typed_records",
]

#: integers are kept exactly (Int64 and float64 round trips): magnitudes from here on are rejected
INT_LIMIT = 10**15
_NOT_PLAIN_DECIMAL = re.compile(r"[^0-9.\0]")
_LONG_EXPONENT = re.compile(r"[eE][+-]?[0-9]{10}")
_NOT_CANONICAL_INT = re.compile(r"[^0-9\0]|(?:\A|\0)0[0-9]")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


# ------------------------------------------------------------------------------- typed values as text


def format_floats(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Shortest round-trip text of each float (``12`` for 12.0, ``0.1``, ``1e-07``); NaN gives ``None``."""
    out = np.full(x.shape, None, dtype=object)
    finite = np.isfinite(x)
    if (~finite & ~np.isnan(x)).any():
        raise ValueError("an infinite float value cannot be written")
    safe = np.where(finite, x, 0.0)
    whole = finite & (np.trunc(safe) == safe) & (np.abs(safe) < INT_LIMIT)
    if whole.any():
        out[whole] = x[whole].astype(np.int64).astype(str).astype(object)
    frac = finite & ~whole
    if frac.any():
        out[frac] = x[frac].astype(str).astype(object)
    return out


def field_strings(col: pd.Series[Any], f: Field) -> np.ndarray[Any, Any]:
    """A typed column as canonical text (object array of ``str``/``None``), as both writers put it."""
    if f.type == "integer":
        num = pd.to_numeric(col, errors="raise").astype("Int64")
        present = num.notna().to_numpy()
        out = np.full(len(col), None, dtype=object)
        out[present] = num.to_numpy(dtype="int64", na_value=0)[present].astype(str).astype(object)
        return out
    if f.type == "float":
        return format_floats(pd.to_numeric(col, errors="raise").astype("float64").to_numpy())
    obj = col.to_numpy(dtype=object).copy()
    present = np.asarray(pd.notna(obj), dtype=bool)
    if present.any():
        vals = obj[present]
        if pd.api.types.infer_dtype(vals, skipna=False) != "string":
            vals = np.array([v if isinstance(v, str) else str(v) for v in vals], dtype=object)
        vals[vals == ""] = None
        obj[present] = vals
    obj[~present] = None
    return obj


# ------------------------------------------------------------------------------------------- the report


@dataclass
class CheckReport:
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    #: per form, the columns as parsed by the checks (reused by :func:`typed_records`)
    parsed: dict[str, dict[Any, Any]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors


# ------------------------------------------------------------------------------------------- machinery


def _lengths(vals: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.fromiter(map(len, vals), dtype=np.int64, count=len(vals))


def _joined_has(vals: np.ndarray[Any, Any], pattern: re.Pattern[str]) -> bool:
    """Whether any value contains a match: one regex scan over all values joined by NUL."""
    return bool(len(vals)) and pattern.search("\0".join(vals.tolist())) is not None


def parse_dates(vals: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Classify ISO 8601 date strings: returns (precision 4/7/10 or 0 when invalid, zero-padded 'U10' text).

    Valid forms: ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` with a real month and a real day of that month
    (leap years included), year 0001-9999. Everything else (times, week dates, spaces) is precision 0.
    """
    n = len(vals)
    prec = np.zeros(n, dtype=np.int64)
    lens = _lengths(vals)
    for width, dashes in ((4, ()), (7, (4,)), (10, (4, 7))):
        idx = np.flatnonzero(lens == width)
        if len(idx) == 0:
            continue
        codes = vals[idx].astype(f"U{width}").view(np.uint32).reshape(-1, width).astype(np.int64)
        digit_cols = [c for c in range(width) if c not in dashes]
        ok = np.ones(len(idx), dtype=bool)
        for c in digit_cols:
            ok &= (codes[:, c] >= 48) & (codes[:, c] <= 57)
        for c in dashes:
            ok &= codes[:, c] == 45
        d = codes - 48
        year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
        ok &= year >= 1
        if width >= 7:
            month = d[:, 5] * 10 + d[:, 6]
            ok &= (month >= 1) & (month <= 12)
            if width == 10:
                day = d[:, 8] * 10 + d[:, 9]
                leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
                mdays = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month, 0, 12)]
                mdays = mdays + ((month == 2) & leap)
                ok &= (day >= 1) & (day <= mdays)
        prec[idx[ok]] = width
    text = np.full(n, "", dtype="U10")
    good = prec > 0
    if good.any():
        text[good] = vals[good].astype("U10")
    return prec, text


def _numeric(vals: np.ndarray[Any, Any], integer: bool) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(valid mask, float values) for raw number strings: strict syntax, finite, integers below INT_LIMIT.

    ``to_numeric`` does the conversion at C speed; the regular expression runs only on values that are not
    obviously well formed (integers: not in canonical form; decimals: any character besides digits and a
    dot), so typical columns never loop in Python.
    """
    plain = _plain_numbers(vals, integer)
    if plain is not None:
        return np.isfinite(plain), plain
    num = _to_numeric(vals)
    ok = np.isfinite(num)
    if integer:
        ok &= np.abs(np.where(ok, num, 0.0)) < INT_LIMIT
        ok &= np.trunc(np.where(ok, num, 0.0)) == np.where(ok, num, 0.0)
        canon = np.where(ok, num, 0.0).astype(np.int64).astype(str).astype(object) == vals
        doubtful = np.flatnonzero(ok & ~canon)
    else:
        cand = np.flatnonzero(ok)
        if _joined_has(vals[cand], _NOT_PLAIN_DECIMAL):
            odd = np.fromiter((_NOT_PLAIN_DECIMAL.search(v) is not None for v in vals[cand]), bool, len(cand))
            doubtful = cand[odd]
        else:
            doubtful = cand[:0]
    syntax = _INT_RE if integer else _FLOAT_RE
    for i in doubtful:
        ok[i] = syntax.fullmatch(vals[i]) is not None
    if not integer and ok.any():
        num[ok] = precise_floats(vals[ok])  # to_numeric's own parser is off in the last digits
        num[~ok] = np.nan
    return ok, num


def _to_numeric(vals: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``to_numeric(errors="coerce")`` as float64, but for the values it cannot be given: one holding a NUL (its
    parser stops there: ``1.5<NUL>x`` would read as 1.5) or an exponent of ten digits or more (``1e2147483648``
    crashes the process, pandas 2.3). Those are read by Python's ``float`` where the decimal syntax allows, NaN
    otherwise."""
    try:
        joined = "\0".join(vals.tolist())
    except TypeError:  # not all text: to_numeric judges them
        joined = ""
    risky = joined.count("\0") > len(vals) - 1 or _LONG_EXPONENT.search(joined) is not None
    if risky:
        bad = np.fromiter((isinstance(v, str) and ("\0" in v or _LONG_EXPONENT.search(v) is not None) for v in vals),
                          bool, len(vals))  # fmt: skip
        vals = vals.copy()
        aside = vals[bad]
        vals[bad] = ""
    num: np.ndarray[Any, Any] = pd.to_numeric(pd.Series(vals, dtype=object), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    if risky:
        num[bad] = [float(v) if _FLOAT_RE.fullmatch(v) else np.nan for v in aside]
    return num


def _plain_numbers(vals: np.ndarray[Any, Any], integer: bool) -> np.ndarray[Any, Any] | None:
    """The values of :func:`_numeric` without ``to_numeric`` when every value is plainly written: at most 15
    characters, integers in canonical form (ASCII digits, no leading zero, no sign), decimals of ASCII digits and
    dots that Python's ``float`` reads. Every such value is valid (a finite number, an integer below INT_LIMIT),
    and its value is what :func:`_numeric` gives. None when any value is not plain (then :func:`_numeric` judges
    them)."""
    if not len(vals) or (integer and _joined_has(vals, _NOT_CANONICAL_INT)):
        return None
    if not integer and _joined_has(vals, _NOT_PLAIN_DECIMAL):
        return None
    if int(_lengths(vals).max()) > 15:
        return None
    try:  # a NUL inside a value, "." or "1.2.3" make it raise
        out: np.ndarray[Any, Any] = vals.astype(np.int64).astype(np.float64) if integer else precise_floats(vals)
    except (ValueError, OverflowError, TypeError):
        return None
    return out


def precise_floats(vals: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Decimal strings to float64 exactly as Python's ``float`` reads them (round-trip correct)."""
    return np.asarray(vals, dtype=object).astype(np.float64)


# ----------------------------------------------------------------------------------------- the checks


def _check_table(table: RawTable, form: Form, sink: ProblemSink) -> dict[Any, Any]:
    """Field-level checks of one form; returns the parsed columns for the cross-form checks."""
    frame = table.frame
    parsed: dict[Any, Any] = {}
    for name, f in form.fields.items():
        if name not in frame.columns:
            continue  # reported by the reader (missing-column)
        arr = column(frame, name)
        have = present_mask(arr)
        parsed[("present", name)] = have
        if f.required:
            sink.add(table, form, np.flatnonzero(~have), name, None, "required", f"{f.label}: required, empty")
        idx = np.flatnonzero(have)
        vals = arr[idx]
        if f.type in ("integer", "float"):
            ok, num = _numeric(vals, f.type == "integer")
            what = "an integer" if f.type == "integer" else "a number"
            sink.add(table, form, idx[~ok], name, vals[~ok], "type", f"{f.label}: not {what}")
            full = np.full(len(arr), np.nan)
            full[idx[ok]] = num[ok]
            if f.min is not None:
                low = np.flatnonzero(full < f.min)
                sink.add(table, form, low, name, arr[low], "range", f"{f.label}: below the minimum {f.min:g}")
            if f.max is not None:
                high = np.flatnonzero(full > f.max)
                sink.add(table, form, high, name, arr[high], "range", f"{f.label}: above the maximum {f.max:g}")
            parsed[name] = full
            parsed[("typed", name)] = full
        elif f.type == "date":
            prec, text = parse_dates(vals)
            partial = (prec == 4) | (prec == 7)
            if not f.partial:
                sink.add(
                    table,
                    form,
                    idx[partial],
                    name,
                    vals[partial],
                    "partial-date",
                    f"{f.label}: a partial date (YYYY or YYYY-MM) where a full date is required",
                )
                prec = np.where(partial, 0, prec)
            bad = (prec == 0) & ~partial
            sink.add(
                table,
                form,
                idx[bad],
                name,
                vals[bad],
                "date",
                f"{f.label}: not an ISO 8601 date (YYYY-MM-DD{', YYYY-MM or YYYY' if f.partial else ''})",
            )
            full_prec = np.zeros(len(arr), dtype=np.int64)
            full_prec[idx] = prec
            full_text = np.full(len(arr), "", dtype="U10")
            full_text[idx] = text
            parsed[name] = (full_prec, full_text)
            parsed[("typed", name)] = _with_none(arr, have)
        else:
            if f.codes:
                unknown = ~pd.Series(vals, dtype=object).isin(list(f.codes)).to_numpy()
                sink.add(
                    table,
                    form,
                    idx[unknown],
                    name,
                    vals[unknown],
                    "code",
                    f"{f.label}: not one of the codes {', '.join(list(f.codes)[:12])}",
                )
            if f.length is not None and len(vals):
                lens = _lengths(vals)
                long = lens > f.length
                sink.add(
                    table,
                    form,
                    idx[long],
                    name,
                    [f"{len(v)} characters" for v in vals[long]],
                    "length",
                    f"{f.label}: longer than {f.length} characters",
                )
            parsed[name] = arr
            parsed[("typed", name)] = _with_none(arr, have)
    return parsed


def _int64(values: np.ndarray[Any, Any]) -> pd.Series[Any]:
    """``pd.Series(values).astype("Int64")`` of float64 values, built from the integers and the NaN mask when
    every value is a whole number below 2**53 (as the checks leave them): pandas' cast looks at each value again."""
    nan = np.isnan(values)
    known = values[~nan]
    if not bool(((np.trunc(known) == known) & (np.abs(known) < 2.0**53)).all()):
        return pd.Series(values).astype("Int64")
    return pd.Series(pd.arrays.IntegerArray(np.where(nan, 0.0, values).astype(np.int64), nan))


def _with_none(arr: np.ndarray[Any, Any], present: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if present.all():
        return arr
    out = arr.copy()
    out[~present] = None
    return out


def _check_duplicates(table: RawTable, form: Form, parsed: dict[Any, Any], sink: ProblemSink) -> None:
    frame = table.frame
    key = [k for k in form.key if k in frame.columns]
    if not key or len(key) != len(form.key) or len(frame) < 2:
        return
    cols: dict[str, Any] = {}
    usable = np.ones(len(frame), dtype=bool)
    for k in key:
        f = form.fields[k]
        p = parsed.get(k)
        if f.type in ("integer", "float") and p is not None:
            cols[k] = p
            usable &= ~np.isnan(p)
        elif f.type == "date" and p is not None:
            cols[k] = p[1]
            usable &= p[0] > 0
        else:
            arr = column(frame, k)
            cols[k] = arr
            usable &= present_mask(arr)
    df = pd.DataFrame(cols)[usable]
    dup = df.duplicated(keep="first").to_numpy()
    rows = np.flatnonzero(usable)[dup]
    if len(rows):
        sink.add(
            table,
            form,
            rows,
            ",".join(key),
            None,
            "duplicate-key",
            f"another {form.oid} record has the same key ({', '.join(key)})",
        )


def check_tables(tables: Mapping[str, RawTable], schema: FormSchema, checks: CrossChecks | None = None) -> CheckReport:
    """Run every check over the raw tables: the field checks, then the cross-checks ``schema`` declares (or
    ``checks``); all problems together (errors and warnings)."""
    checks = schema.cross_checks if checks is None else checks
    sink = ProblemSink()
    parsed: dict[str, dict[Any, Any]] = {}
    for oid, table in tables.items():
        if oid not in schema.forms:
            continue
        form = schema.forms[oid]
        parsed[oid] = _check_table(table, form, sink)
        _check_duplicates(table, form, parsed[oid], sink)
    run_cross_checks(checks, tables, parsed, schema, sink)
    return CheckReport(errors=sink.errors, warnings=sink.warnings, parsed=parsed)


# ------------------------------------------------------------------------------------ raw -> Records


def typed_records(
    tables: Mapping[str, RawTable], schema: FormSchema, parsed: Mapping[str, Mapping[Any, Any]] | None = None
) -> Records:
    """Canonical Records from raw tables that passed the checks (same result as ``normalise_all``).

    Vectorised: integers to ``Int64``, floats to ``float64`` (exact decimal reading), text and dates kept as
    ``str`` with ``""`` as ``None``; rows sorted by the form's key. ``parsed`` (``CheckReport.parsed``)
    saves parsing every column a second time.
    """
    out: Records = {}
    for oid, form in schema.forms.items():
        table = tables.get(oid)
        if table is None or len(table.frame) == 0:
            out[oid] = empty_frame(form)
            continue
        frame = table.frame
        done = parsed.get(oid, {}) if parsed is not None else {}
        n = len(frame)
        cols: dict[str, Any] = {}
        for name, f in form.fields.items():
            typed = done.get(("typed", name))
            if typed is None:
                if name not in frame.columns:
                    typed = np.full(n, np.nan if f.type in ("integer", "float") else None, dtype=object)
                else:
                    arr = column(frame, name)
                    present = present_mask(arr)
                    if f.type in ("integer", "float"):
                        typed = np.full(n, np.nan)
                        typed[present] = precise_floats(arr[present])
                    else:
                        typed = _with_none(arr, present)
            if f.type == "integer":
                cols[name] = _int64(np.asarray(typed, dtype="float64"))
            elif f.type == "float":
                cols[name] = np.asarray(typed, dtype="float64")
            else:
                cols[name] = pd.Series(typed, dtype=object)
        df = pd.DataFrame(cols)
        if form.key:
            df = df.sort_values(list(form.key), kind="mergesort", na_position="last")
        out[oid] = df.reset_index(drop=True)
    return out
