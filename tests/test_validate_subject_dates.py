"""The per-subject EX dates of check_dm_ex and the reference days of check_study_days, computed over the run's
subject codes, against a plain Python reading of the same rows (missing subjects: None, NaN; blank dates)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.validate.common import iso_datetime_ok, shared_results
from converter.validate.sdtm_rules import check_dm_ex, check_study_days


def _frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(4)
    subjects = [f"S{i}" for i in range(12)]
    n = 300
    who = rng.choice(np.array([*subjects, None, np.nan], dtype=object), n)
    days = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 90, n), unit="D")
    start = np.array([d.strftime("%Y-%m-%d") for d in days], dtype=object)
    start[rng.choice(n, 20, replace=False)] = None
    start[rng.choice(n, 10, replace=False)] = "2021-02"
    end = np.array([d.strftime("%Y-%m-%dT10:00") for d in days + pd.Timedelta(days=3)], dtype=object)
    end[rng.choice(n, 15, replace=False)] = "2021-13-01"
    ex = pd.DataFrame({"USUBJID": who, "EXSTDTC": start, "EXENDTC": end})
    dm = pd.DataFrame({
        "USUBJID": pd.Series([*subjects, None], dtype=object),
        "RFXSTDTC": pd.Series(["2021-01-05"] * 12 + [None], dtype=object),
        "RFXENDTC": pd.Series(["2021-04-01"] * 12 + [None], dtype=object),
        "RFSTDTC": pd.Series(["2021-01-01"] * 6 + ["2021-03-30"] * 6 + [None], dtype=object),
        "RFENDTC": pd.Series(["2021-02-01"] * 12 + [None], dtype=object),
    })  # fmt: skip
    ae = pd.DataFrame({"USUBJID": who[:50], "AESTDTC": start[:50], "AESTDY": pd.array(rng.integers(-5, 60, 50),
                                                                                        dtype="Int64")})  # fmt: skip
    return {"DM": dm, "EX": ex, "AE": ae}


def _expected_dm_ex(frames: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    """Which subjects each DM-vs-EX rule flags, by a loop over the EX rows."""
    ex, dm = frames["EX"], frames["DM"]
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    last_start: dict[str, str] = {}
    for u, s, e in zip(ex["USUBJID"], ex["EXSTDTC"], ex["EXENDTC"], strict=True):
        if u is None or (isinstance(u, float) and np.isnan(u)):
            continue
        for text, into in ((s, (first, "min")), (s, (last, "max")), (e, (last, "max")), (s, (last_start, "max"))):
            if text is not None and iso_datetime_ok(text):
                d, how = into
                d[u] = text if u not in d else (min if how == "min" else max)(d[u], text)
    out: dict[str, set[str]] = {"CORE-000239": set(), "CORE-000238": set()}
    for u, rfx, rfe in zip(dm["USUBJID"], dm["RFXSTDTC"], dm["RFXENDTC"], strict=True):
        if u in first and rfx != first[u]:
            out["CORE-000239"].add(u)
        if u in last and rfe != last[u]:
            out["CORE-000238"].add(u)
    return out


def test_dm_ex_per_subject_dates_as_a_loop_reads_them() -> None:
    frames = _frames()
    with shared_results():
        found = check_dm_ex(frames)
    got: dict[str, set[str]] = {"CORE-000239": set(), "CORE-000238": set()}
    for f in found:
        if f.rule_id in got:
            got[f.rule_id].add(f.subject)
    assert got == _expected_dm_ex(frames)
    assert got["CORE-000238"]  # the data make both rules fire
    with shared_results():  # the run's shared codes or fresh ones: the same findings
        again = check_dm_ex(frames)
    assert again == check_dm_ex(frames) == found


def test_study_days_with_missing_subjects() -> None:
    frames = _frames()
    ae, dm = frames["AE"], frames["DM"]
    ref = dict(zip(dm["USUBJID"], dm["RFSTDTC"], strict=True))
    right: list[object] = []
    for u, s in zip(ae["USUBJID"], ae["AESTDTC"], strict=True):
        r = ref.get(u) if isinstance(u, str) else None
        if r is None or s is None or len(s) < 10:
            right.append(pd.NA)
            continue
        delta = (pd.Timestamp(s[:10]) - pd.Timestamp(r[:10])).days
        right.append(delta + 1 if delta >= 0 else delta)
    dy = pd.array(right, dtype="Int64")
    shifted = [i for i, v in enumerate(right) if v is not pd.NA][:7]
    for i in shifted:
        dy[i] = dy[i] + (1 if dy[i] != -1 else 2)  # never 0
    frames["AE"] = ae.assign(AESTDY=dy)
    with shared_results():
        found = check_study_days(frames)
    assert [f.row for f in found if f.rule_id == "CORE-000552"] == [i + 1 for i in shifted]
    assert not [f for f in found if f.rule_id != "CORE-000552"]


def test_response_counts_nearest_ties() -> None:
    """The count nearest a response's date: at equal distance the earlier date, on the same date the earlier row;
    outside the window (7 days) none; subjects never mixed."""
    from converter.validate.response_counts import check_response_counts

    rs = pd.DataFrame({"USUBJID": ["S1", "S2"], "RSSTRESC": ["CR", "CR"], "RSDTC": ["2021-01-10", "2021-01-10"]})
    lb = pd.DataFrame({
        "USUBJID": ["S1", "S1", "S1", "S1", "S2", "S2"],
        "LBTESTCD": ["NEUT", "NEUT", "NEUT", "PLAT", "NEUT", "PLAT"],
        "LBSTRESN": [2.0, 0.5, 3.0, 150.0, 0.2, 150.0],
        "LBDTC": ["2021-01-13", "2021-01-07", "2021-01-07", "2021-01-10", "2021-01-18", "2021-01-10"],
    })  # fmt: skip
    found = check_response_counts({"RS": rs, "LB": lb})
    assert [(f.rule_id, f.subject) for f in found] == [("INO-SDTM-062", "S2"), ("INO-SDTM-063", "S1")]
    assert "nearest NEUT count is 0.5" in found[1].message
