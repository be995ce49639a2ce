"""The ADaM date rules: ``date``/``date_flag`` and ``datetime``/``time_flag`` (admiral's ``derive_vars_dt`` and
``derive_vars_dtm``, with imputation and its flags), ``duration``, ``rel_day`` and ``trtemfl``."""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from converter.adam.common import (
    SAS_EPOCH,
    UNIT_DAYS,
    as_sas_date,
    ascii_iso_days,
    is_numeric,
    sas_round,
    sibling_rule,
    value_of,
)
from converter.adam.shared import shared
from converter.frames import constant_column, keep_where, null_column, text_column
from converter.sdtm.context import RowContext, row_rule

__all__ = ["Imputed", "ImputedDatetime", "impute_dates", "impute_datetimes"]

_ISO = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class Imputed:
    dates: pd.Series  # float64 SAS dates
    flags: pd.Series  # object: "D", "M" or None


def impute_dates(
    dtc: pd.Series,
    impute: str | None,
    highest: str = "M",
    not_before: Sequence[pd.Series] = (),
    not_after: Sequence[pd.Series] = (),
) -> Imputed:
    """ISO 8601 (partial) dates -> SAS dates, imputing missing day (D) / month and day (M) as admiral does."""
    if impute not in (None, "first", "last", "mid"):
        raise ValueError(f"impute must be first, last or mid (got {impute!r})")
    if highest not in ("D", "M"):
        raise ValueError(f"highest must be D or M (got {highest!r})")
    if is_numeric(dtc):
        return Imputed(as_sas_date(dtc), null_column(len(dtc), dtc.index))
    codes, uniques = pd.factorize(text_column(dtc).to_numpy(dtype=object), use_na_sentinel=True)
    u_value, u_low, u_high, u_flags = _impute_distinct(uniques, impute, highest)
    missing = codes < 0  # each distinct text parsed once, then spread over its rows
    at = np.where(missing, 0, codes)
    value, low, high = (np.where(missing, np.nan, arr.take(at)) if len(arr) else np.full(len(codes), np.nan)
                        for arr in (u_value, u_low, u_high))  # fmt: skip
    flags = u_flags.take(at) if len(u_flags) else np.full(len(codes), None, dtype=object)
    flags[missing] = None
    imputed = pd.notna(flags)
    for bound in not_before:
        b = as_sas_date(bound).to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value < b)
        value[use] = b[use]
    for bound in not_after:
        b = as_sas_date(bound).to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value > b)
        value[use] = b[use]
    return Imputed(pd.Series(value, index=dtc.index, dtype="float64"), pd.Series(flags, index=dtc.index, dtype=object))


def _impute_distinct(
    txt: np.ndarray, impute: str | None, highest: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct ISO text: the SAS date (imputed or not), the lowest and highest date it can mean, the flag."""
    n = len(txt)
    value = np.full(n, np.nan)
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    flags = np.full(n, None, dtype=object)
    epoch = SAS_EPOCH.date()

    def day(y: int, m: int, d: int) -> float:
        return float((_dt.date(y, m, d) - epoch).days)

    # complete dates in ASCII digits (most values) column-wise: the day, or NaN for an impossible one, no flag
    complete, decided = ascii_iso_days([str(t)[:10] for t in txt])
    value[decided] = complete[decided]
    for i in np.flatnonzero(~decided):  # the rest one by one: partial dates need calendar arithmetic
        t = txt[i]
        m = _ISO.match(str(t))
        if not m:
            continue
        y, mo, d = int(m.group(1)), m.group(2), m.group(3)
        try:
            if mo and d:
                value[i] = day(y, int(mo), int(d))
                continue
            if impute is None:
                continue
            if mo:
                last = calendar.monthrange(y, int(mo))[1]
                low[i], high[i] = day(y, int(mo), 1), day(y, int(mo), last)
                mid = day(y, int(mo), 15)
                flags[i] = "D"
            elif highest == "M":
                low[i], high[i] = day(y, 1, 1), day(y, 12, 31)
                mid = day(y, 6, 30)
                flags[i] = "M"
            else:
                continue
        except ValueError:
            flags[i] = None
            continue
        value[i] = {"first": low[i], "last": high[i], "mid": mid}[impute]
    return value, low, high, flags


def _imputed(ctx: RowContext, a: dict[str, Any]) -> Imputed:
    """The ``date`` rule's imputation, computed once per build for it and its ``date_flag``."""
    dtc = value_of(ctx, a["dtc"])
    before = [value_of(ctx, v) for v in a.get("not_before") or []]
    after = [value_of(ctx, v) for v in a.get("not_after") or []]
    impute, highest = a.get("impute"), str(a.get("highest", "M"))
    return shared(("imputed dates", impute, highest, len(before)), (dtc, *before, *after),
                  lambda: impute_dates(dtc, impute, highest, before, after))  # fmt: skip


@row_rule("date")
def _date(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _imputed(ctx, a).dates


@row_rule("date_flag")
def _date_flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    rule = ctx.spec.variable(a["of"]).rule_for(ctx.source.id)
    if rule is not None and rule.name == "datetime":
        return _imputed_dtm(ctx, rule.args).date_flags
    return _imputed(ctx, sibling_rule(ctx, a["of"], "date")).flags


_TIME = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2}))?)?")
_LEVELS = ("s", "m", "h", "D", "M")


@dataclass(frozen=True)
class ImputedDatetime:
    seconds: pd.Series  # float64 SAS datetimes
    date_flags: pd.Series  # "D", "M" or None
    time_flags: pd.Series  # "H", "M", "S" or None


def impute_datetimes(
    dtc: pd.Series,
    impute: str | None = None,
    time: str = "first",
    highest: str = "h",
    not_before: Sequence[pd.Series] = (),
    not_after: Sequence[pd.Series] = (),
) -> ImputedDatetime:
    """ISO 8601 (partial) datetimes -> SAS datetimes, imputing as admiral's derive_vars_dtm, with DTF and TMF."""
    if highest not in _LEVELS:
        raise ValueError(f"highest must be one of {_LEVELS} (got {highest!r})")
    if time not in ("first", "last"):
        raise ValueError(f"time must be first or last (got {time!r})")
    if is_numeric(dtc):
        none = null_column(len(dtc), dtc.index)
        return ImputedDatetime(pd.to_numeric(dtc, errors="coerce").astype("float64"), none, none)
    txt = text_column(dtc).to_numpy(dtype=object)
    date_part = pd.Series([t.split("T", 1)[0] if t else None for t in txt], index=dtc.index, dtype=object)
    time_part = [t.split("T", 1)[1] if t and "T" in t else None for t in txt]
    level = _LEVELS.index(highest)
    date_level = highest if highest in ("D", "M") else "M"
    dates = {
        w: impute_dates(date_part, (impute or "first") if w == "value" else w, date_level)
        if level >= _LEVELS.index("D")
        else impute_dates(date_part, None)
        for w in ("value", "first", "last")
    }
    n = len(txt)
    hms = np.full((n, 3), -1, dtype=int)  # -1: missing component
    for i, t in enumerate(time_part):
        m = _TIME.match(t) if t else None
        if m:
            for j in range(3):
                if m.group(j + 1) is not None:
                    hms[i, j] = int(m.group(j + 1))
    date_imputed = dates["value"].flags.notna().to_numpy(dtype=bool)
    hms[date_imputed] = -1
    missing = hms < 0
    first_missing = np.where(missing.any(axis=1), missing.argmax(axis=1), 3)  # 0 h, 1 m, 2 s, 3 none
    need = np.array([_LEVELS.index(x) for x in ("h", "m", "s")] + [-1])[first_missing]
    ok = dates["value"].dates.notna().to_numpy(dtype=bool) & (need <= level)
    fill = {"first": np.array([0, 0, 0]), "last": np.array([23, 59, 59])}

    def seconds(which: str, day: pd.Series) -> np.ndarray:
        full = np.where(missing, fill[which], hms)
        secs: np.ndarray = day.to_numpy(dtype=float) * 86400.0 + full @ np.array([3600.0, 60.0, 1.0])
        return secs

    value = np.where(ok, seconds(time, dates["value"].dates), np.nan)
    low = seconds("first", dates["first"].dates)
    high = seconds("last", dates["last"].dates)
    imputed = ok & (first_missing < 3)
    for bound in not_before:
        b = pd.to_numeric(bound, errors="coerce").to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value < b)
        value[use] = b[use]
    for bound in not_after:
        b = pd.to_numeric(bound, errors="coerce").to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value > b)
        value[use] = b[use]
    tmf = np.full(n, None, dtype=object)
    tmf[imputed] = np.array(["H", "M", "S"], dtype=object)[first_missing[imputed]]
    dtf = keep_where(dates["value"].flags, ok)
    return ImputedDatetime(
        pd.Series(value, index=dtc.index, dtype="float64"), dtf, pd.Series(tmf, index=dtc.index, dtype=object)
    )


def _imputed_dtm(ctx: RowContext, a: dict[str, Any]) -> ImputedDatetime:
    """The ``datetime`` rule's imputation, computed once per build for it and its ``date_flag``/``time_flag``."""
    dtc = value_of(ctx, a["dtc"])
    before = [value_of(ctx, v) for v in a.get("not_before") or []]
    after = [value_of(ctx, v) for v in a.get("not_after") or []]
    impute, time, highest = a.get("impute"), str(a.get("time", "first")), str(a.get("highest", "h"))
    return shared(("imputed datetimes", impute, time, highest, len(before)), (dtc, *before, *after),
                  lambda: impute_datetimes(dtc, impute, time, highest, before, after))  # fmt: skip


@row_rule("datetime")
def _datetime(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _imputed_dtm(ctx, a).seconds


@row_rule("time_flag")
def _time_flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _imputed_dtm(ctx, sibling_rule(ctx, a["of"], "datetime")).time_flags


@row_rule("duration")
def _duration(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    start = as_sas_date(value_of(ctx, a["start"]))
    end = as_sas_date(value_of(ctx, a["end"]))
    days = end - start
    if a.get("add_one", True):
        days = days.where(days < 0, days + 1)
    unit = a.get("unit", "days")
    if unit not in UNIT_DAYS:
        raise ValueError(f"duration unit must be one of {list(UNIT_DAYS)} (got {unit!r})")
    out = days / UNIT_DAYS[unit]
    if a.get("floor"):
        out = np.floor(out)
    if a.get("round") is not None:
        out = sas_round(out, int(a["round"]))
    return out


@row_rule("rel_day")
def _rel_day(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    d = as_sas_date(value_of(ctx, a["date"]))
    ref = as_sas_date(value_of(ctx, a["ref"]))
    diff = d - ref
    return diff.where(diff < 0, diff + 1)


@row_rule("trtemfl")
def _trtemfl(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    start = as_sas_date(value_of(ctx, a["start"])).to_numpy(dtype=float)
    trt_start = as_sas_date(value_of(ctx, a["trt_start"])).to_numpy(dtype=float)
    end = as_sas_date(value_of(ctx, a["end"])).to_numpy(dtype=float) if a.get("end") else np.full(len(start), np.nan)
    if a.get("trt_end") and a.get("window") is not None:
        window_end = as_sas_date(value_of(ctx, a["trt_end"])).to_numpy(dtype=float) + float(a["window"])
    else:
        window_end = np.full(len(start), np.nan)
    if a.get("start_dtc"):  # the latest day a partial start date can be
        latest = impute_dates(value_of(ctx, a["start_dtc"]), "last").dates.to_numpy(dtype=float)
    else:
        latest = np.full(len(start), np.nan)
    with np.errstate(invalid="ignore"):
        partial_before = np.isnan(start) & ~np.isnan(latest) & (latest < trt_start)
        ended_before = (~np.isnan(end) & (end < trt_start)) | partial_before
        in_window = np.isnan(window_end) | (start <= window_end)
        y = ~np.isnan(trt_start) & ~ended_before & (np.isnan(start) | ((start >= trt_start) & in_window))
    return keep_where(constant_column("Y", len(start), ctx.frame.index), y)
