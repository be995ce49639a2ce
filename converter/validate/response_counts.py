"""Haematological recovery behind a remission response: a CR, CRp or CRi in RS has blood counts in LB on or near
its date, and they agree with the category (the criteria for acute leukaemia remission the ALL trials use,
Kantarjian/Jabbour; NCCN ALL):

======== ==================================== ==========================
category absolute neutrophil count (NEUT)      platelets (PLAT)
======== ==================================== ==========================
CR       >= 1.0 x 10^9/L                      >= 100 x 10^9/L
CRp      >= 1.0 x 10^9/L                      < 100 x 10^9/L
CRi      < 1.0 x 10^9/L                       any
======== ==================================== ==========================

For each such response (RS, RSSTRESC in CR/CRp/CRi) the count of each test nearest its date within
:data:`WINDOW_DAYS` days (LBSTRESN in 10^9/L) is taken: none of a test is INO-SDTM-062, a count that contradicts
the category INO-SDTM-063 (an error: the response is not what the data show; a missing count is a
warning). Pure function over ``{dataset name: DataFrame}``, column-wise (one merge per test).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from converter.validate.common import coded, row_findings, text_values
from converter.validate.findings import Finding

__all__ = ["CRITERIA", "WINDOW_DAYS", "check_response_counts"]

#: days either side of the response date a count may be from
WINDOW_DAYS = 7
#: category -> test -> (lowest allowed, highest allowed exclusive); None: no bound (10^9/L)
CRITERIA: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "CR": {"NEUT": (1.0, None), "PLAT": (100.0, None)},
    "CRp": {"NEUT": (1.0, None), "PLAT": (None, 100.0)},
    "CRi": {"NEUT": (None, 1.0), "PLAT": (None, None)},
}
_UNITS = {"10^9/L", "10*9/L", "10^3/uL", "10*3/uL", "GI/L"}  # the same magnitude (UCUM and common spellings)


def _text(col: pd.Series) -> pd.Series:
    return pd.Series(text_values(col), index=col.index, dtype=object)


def _nearest(resp: pd.DataFrame, lb: pd.DataFrame, test: str) -> pd.Series:
    """Per response row (index of ``resp``): the value of ``test`` nearest its date within the window (ties: the
    earlier date, then the earlier LB row), else NaN. The LB rows of the test sorted once by (subject, day);
    each response's window found by two binary searches, its candidates compared at once."""
    rows = lb[lb["LBTESTCD"] == test]
    out = np.full(len(resp), np.nan)
    if rows.empty or resp.empty:
        return pd.Series(out, index=resp.index)
    lsubj, rsubj = rows["USUBJID"].to_numpy(dtype=np.int64) + 1, resp["USUBJID"].to_numpy(dtype=np.int64) + 1
    lday, rday = _day_numbers(rows["__d"]), _day_numbers(resp["__d"])
    low = min(int(lday.min()), int(rday.min()))
    span = max(int(lday.max()), int(rday.max())) - low + 1  # days of one subject's block of keys
    order = np.lexsort((np.arange(len(rows)), lday, lsubj))  # by subject, day, then LB row
    keys = lsubj[order] * span + (lday[order] - low)
    base, day = rsubj * span, rday - low
    first = np.searchsorted(keys, base + np.maximum(day - WINDOW_DAYS, 0), side="left")
    stop = np.searchsorted(keys, base + np.minimum(day + WINDOW_DAYS, span - 1), side="right")
    counts = stop - first
    which = np.repeat(np.arange(len(resp)), counts)  # each candidate's response
    cand = order[np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts - first, counts)]
    gap = np.abs(lday[cand] - rday[which])
    ranked = np.lexsort((cand, lday[cand], gap, which))  # per response: nearest, then earlier day, then LB row
    best = ranked[np.r_[True, which[ranked][1:] != which[ranked][:-1]]] if len(ranked) else ranked
    out[which[best]] = rows["__v"].to_numpy(dtype=float)[cand[best]]
    return pd.Series(out, index=resp.index)


def _day_numbers(col: pd.Series) -> np.ndarray:
    days: np.ndarray = col.to_numpy().astype("datetime64[D]").astype(np.int64)
    return days


def check_response_counts(frames: Mapping[str, pd.DataFrame]) -> list[Finding]:
    rs, lb = frames.get("RS"), frames.get("LB")
    if rs is None or lb is None or not {"RSSTRESC", "RSDTC", "USUBJID"} <= set(rs.columns):
        return []
    if not {"LBTESTCD", "LBSTRESN", "LBDTC", "USUBJID"} <= set(lb.columns):
        return []
    n = len(rs)
    cats = pd.Series(text_values(rs["RSSTRESC"]), dtype=object)  # by row position, as every array below
    is_resp = cats.isin(list(CRITERIA)).to_numpy(dtype=bool)
    if not is_resp.any():
        return []
    rsdtc = text_values(rs["RSDTC"])
    at = np.flatnonzero(is_resp)  # only the columns the check reads are taken
    tests = coded(lb["LBTESTCD"])  # the LB rows kept decided per distinct test and unit
    keep = tests.per_text(lambda t: t in ("NEUT", "PLAT"))
    if "LBSTRESU" in lb.columns:
        keep &= coded(lb["LBSTRESU"]).per_text(lambda u: u is None or u in _UNITS)
    rows = np.flatnonzero(keep)
    # the subjects of both sides as integer codes of one factorisation (missing: -1 on both, as merge pairs them):
    # the merges join on integers, not on texts
    subjects, _ = pd.factorize(
        np.concatenate([rs["USUBJID"].to_numpy(dtype=object)[at], lb["USUBJID"].to_numpy(dtype=object)[rows]]),
        use_na_sentinel=True,
    )
    resp = pd.DataFrame({"USUBJID": subjects[: len(at)], "__d": _days(rs["RSDTC"])[at]}, index=at)
    resp = resp[resp["__d"].notna()]
    lab = pd.DataFrame({
        "USUBJID": subjects[len(at) :],
        "__d": _days(lb["LBDTC"], rows),
        "__v": pd.to_numeric(lb["LBSTRESN"].iloc[rows], errors="coerce").to_numpy(),
        "LBTESTCD": tests.texts[tests.codes[rows]],
    })  # fmt: skip
    lab = lab[lab["__d"].notna() & lab["__v"].notna()]
    dated = np.zeros(n, dtype=bool)
    dated[resp.index.to_numpy()] = True
    positions = pd.RangeIndex(n)
    out: list[Finding] = []
    for test in ("NEUT", "PLAT"):
        value = _nearest(resp, lab, test).reindex(positions)
        lo = pd.to_numeric(cats.map({c: b[test][0] for c, b in CRITERIA.items()}), errors="coerce").astype("float64")
        hi = pd.to_numeric(cats.map({c: b[test][1] for c, b in CRITERIA.items()}), errors="coerce").astype("float64")
        bounded = (lo.notna() | hi.notna()).to_numpy(dtype=bool)
        missing = dated & bounded & value.isna().to_numpy(dtype=bool)
        bad = dated & value.notna().to_numpy(dtype=bool) & (
            (lo.notna() & (value < lo)) | (hi.notna() & (value >= hi))).to_numpy(dtype=bool)  # fmt: skip
        need = np.full(n, None, dtype=object)  # the criterion, written for the rows reported only
        for i in np.flatnonzero(bad):
            a, b = lo.iloc[i], hi.iloc[i]
            need[i] = f">= {a:g}" if not np.isnan(a) else f"< {b:g}"
        out += row_findings(
            "INO-SDTM-062", "RS", "RSSTRESC", rs, missing,
            "{c} on {d}: no {t} count in LB within {w} days of the response",
            c=cats, d=rsdtc, t=np.full(n, test, dtype=object), w=np.full(n, WINDOW_DAYS, dtype=object),
        )  # fmt: skip
        out += row_findings(
            "INO-SDTM-063", "RS", "RSSTRESC", rs, bad,
            "{c} on {d}: the nearest {t} count is {v} x 10^9/L; {c} needs {t} {n}",
            c=cats, d=rsdtc, t=np.full(n, test, dtype=object), v=value.round(2), n=need,
        )  # fmt: skip
    return out


def _days(col: pd.Series, rows: np.ndarray | None = None) -> np.ndarray:
    """Per row (of ``rows`` only, when given): the date of the first 10 characters of the ISO 8601 text (NaT where
    none), parsed once per distinct text."""
    values = coded(col)
    parsed = pd.to_datetime(pd.Series(values.texts, dtype=object).str[:10], errors="coerce", format="%Y-%m-%d")
    codes = values.codes if rows is None else values.codes[rows]
    days: np.ndarray = parsed.to_numpy()[codes]  # code -1 takes the final text, None: NaT
    return days
