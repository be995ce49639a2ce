"""Study days (--DY) across the FHIR stage: derived again on the way back, carried where the submitted value differs.

A study day is listed in a FHIR spec as not mapped, derived again FHIR -> SDTM (``not_mapped: {AESTDY: {rederive:
{study_day: AESTDTC}}}``). A submitted value that is not what the derivation gives (counted from another
reference date, or present without a complete date) would then not come back; :func:`submitted_days` keeps, for
SDTM -> FHIR, only those values (the others become missing), and the loader's ``as_submitted`` element carries
them; the assembly takes them before the derivation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from converter.fhir.mapping import FhirSpecs, rederivations


def study_days(dm: pd.DataFrame, df: pd.DataFrame, dtc: str) -> list[int | None]:
    """The study day (SDTMIG 4.4.4: DTC - RFSTDTC + 1 on or after the reference day, DTC - RFSTDTC before) of each
    row of ``df`` from its ``dtc`` and the subject's DM.RFSTDTC (None where either is not a complete date)."""
    return [None if d != d else int(d) for d in _study_days(dm, df, dtc).tolist()]


def _study_days(
    dm: pd.DataFrame,
    df: pd.DataFrame,
    dtc: str,
    refs: dict[Any, float] | None = None,
    subjects: np.ndarray[Any, np.dtype[np.float64]] | None = None,
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """:func:`study_days` as floats (NaN for None), a column at a time: each distinct date and subject looked up
    once. ``refs`` (:func:`_references` of ``dm``) and ``subjects`` (the reference day of each row of ``df``) when
    already known."""
    if "RFSTDTC" not in dm.columns or "USUBJID" not in dm.columns or dtc not in df.columns:
        return np.full(len(df), np.nan)
    if subjects is None:
        ref = _references(dm) if refs is None else refs
        subjects = _per_distinct(df["USUBJID"], lambda u: ref.get(u, np.nan))
    codes, uniques = pd.factorize(df[dtc].to_numpy(dtype=object), use_na_sentinel=False)
    delta = _ordinals(uniques.tolist())[codes] - subjects
    return np.where(delta >= 0, delta + 1, delta)


def _references(dm: pd.DataFrame) -> dict[Any, float]:
    """Each subject's reference day (DM.RFSTDTC) as an ordinal (NaN: not a complete date)."""
    return dict(zip(dm["USUBJID"], _ordinals(dm["RFSTDTC"].tolist()).tolist(), strict=True))


def _per_distinct(col: pd.Series, fn: Callable[[Any], float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``fn`` of each value of ``col``, called once per distinct value."""
    codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=False)
    return np.array([fn(u) for u in uniques.tolist()], dtype=np.float64)[codes]


_DAYS: dict[str, float] = {}  # a date text's first ten characters -> its ordinal (NaN: no date), across calls
_DAYS_MAX = 200_000  # entries kept before the cache starts again


def _ordinals(values: list[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """:func:`_ordinal` of each value: a text's day is its first ten characters', each looked up once (the
    dates of a study repeat across subjects, chunks and columns; times of day follow them)."""
    days = _DAYS
    if len(days) > _DAYS_MAX:
        days.clear()
    nan = np.nan
    out: list[float] = []
    for v in values:
        if isinstance(v, str) and len(v) >= 10:
            k = v[:10]
            d = days.get(k)
            if d is None:
                d = days[k] = _ordinal(k)
            out.append(d)
        else:
            out.append(nan)
    return np.array(out, dtype=np.float64)


def _ordinal(value: Any) -> float:
    day = _day(value)
    return np.nan if day is None else float(day.toordinal())


def submitted_days(datasets: Mapping[str, pd.DataFrame], specs: FhirSpecs) -> Mapping[str, pd.DataFrame]:
    """The datasets with each study day derived again kept only where it differs from the derivation (a copy of
    the datasets that change; the others as they are)."""
    dm = datasets.get("DM")
    out: dict[str, pd.DataFrame] | None = None
    refs = _references(dm) if dm is not None and {"USUBJID", "RFSTDTC"} <= set(dm.columns) else None
    for ds, rules in rederivations(specs).items():
        df = datasets.get(ds)
        if df is None or df.empty or "USUBJID" not in df.columns:
            continue
        subjects = None  # each row's reference day: once per dataset (the rows stay those of ``df``)
        for var, rule in rules.items():
            src = rule.get("study_day")
            if not src or var not in df.columns:
                continue
            given = pd.to_numeric(df[var], errors="coerce")
            if dm is not None and refs is not None and subjects is None and src in df.columns:
                subjects = _per_distinct(df["USUBJID"], lambda u: refs.get(u, np.nan))
            derived = _study_days(dm, df, src, refs, subjects) if dm is not None else np.full(len(df), np.nan)
            values = given.to_numpy(dtype=np.float64, na_value=np.nan)
            same = (values == derived) | (np.isnan(values) & np.isnan(derived))
            if out is None:
                out = dict(datasets)
            if out[ds] is df:
                out[ds] = df = df.copy()
            # an object array, not a list: pandas fills an object column from a list element by element
            text = np.full(len(df), None, dtype=object)
            if not bool(same.all()):  # else nothing to carry: every day is the derivation's (not: every day carried)
                keep = same.tolist()
                text[:] = [None if s else ("." if pd.isna(g) else f"{g:.0f}") for g, s in zip(given, keep, strict=True)]
            df[var] = pd.Series(text, index=df.index, dtype=object)
    return datasets if out is None else out


def as_submitted(values: pd.Series, derived: list[int | None]) -> pd.Series:
    """The study days FHIR -> SDTM: the submitted value where one was carried ("." for an empty one), else the
    derivation."""
    out: list[int | None] = []
    for v, d in zip(values.astype(object), derived, strict=True):
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out.append(d)
        elif isinstance(v, str):
            out.append(None if v.strip() in ("", ".") else round(float(v)))
        else:
            out.append(round(float(v)))
    return pd.Series(pd.array(out, dtype="Int64"), index=values.index)


def _day(value: Any) -> dt.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


__all__ = ["as_submitted", "study_days", "submitted_days"]
