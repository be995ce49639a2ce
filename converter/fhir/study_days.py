"""Study days (--DY) across the FHIR stage: derived again on the way back, carried where the submitted value differs.

A study day is listed in a FHIR spec as not mapped, derived again FHIR -> SDTM (``not_mapped: {AESTDY: {rederive:
{study_day: AESTDTC}}}``). A submitted value that is not what the derivation gives (counted from another
reference date, or present without a complete date) would then not come back; :func:`submitted_days` keeps, for
SDTM -> FHIR, only those values (the others become missing), and the loader's ``as_submitted`` element carries
them; the assembly takes them before the derivation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import pandas as pd

from converter.fhir.mapping import FhirSpecs, rederivations


def study_days(dm: pd.DataFrame, df: pd.DataFrame, dtc: str) -> list[int | None]:
    """The study day (SDTMIG 4.4.4: DTC - RFSTDTC + 1 on or after the reference day, DTC - RFSTDTC before) of each
    row of ``df`` from its ``dtc`` and the subject's DM.RFSTDTC (None where either is not a complete date)."""
    if "RFSTDTC" not in dm.columns or "USUBJID" not in dm.columns or dtc not in df.columns:
        return [None] * len(df)
    ref = {u: _day(r) for u, r in zip(dm["USUBJID"], dm["RFSTDTC"], strict=True)}
    dates = df[dtc].tolist()
    day = {d: _day(d) for d in set(dates)}  # dates repeat: each distinct one parsed once
    vals: list[int | None] = []
    for u, d in zip(df["USUBJID"].tolist(), dates, strict=True):
        r0, d0 = ref.get(u), day[d]
        if r0 is None or d0 is None:
            vals.append(None)
        else:
            delta = (d0 - r0).days
            vals.append(delta + 1 if delta >= 0 else delta)
    return vals


def submitted_days(datasets: Mapping[str, pd.DataFrame], specs: FhirSpecs) -> Mapping[str, pd.DataFrame]:
    """The datasets with each study day derived again kept only where it differs from the derivation (a copy of
    the datasets that change; the others as they are)."""
    dm = datasets.get("DM")
    out: dict[str, pd.DataFrame] | None = None
    for ds, rules in rederivations(specs).items():
        df = datasets.get(ds)
        if df is None or df.empty or "USUBJID" not in df.columns:
            continue
        for var, rule in rules.items():
            src = rule.get("study_day")
            if not src or var not in df.columns:
                continue
            given = pd.to_numeric(df[var], errors="coerce")
            derived = pd.Series(
                study_days(dm, df, src) if dm is not None else [None] * len(df), index=df.index, dtype="Float64"
            )
            same = ((given == derived).fillna(False) | (given.isna() & derived.isna())).astype(bool)
            if bool(same.all()):
                continue
            if out is None:
                out = dict(datasets)
            if out[ds] is df:
                out[ds] = df = df.copy()
            text = [None if s else ("." if pd.isna(g) else f"{g:.0f}") for g, s in zip(given, same, strict=True)]
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
