"""validate: a remission response (CR/CRp/CRi) has blood counts near its date that agree with its category."""

from __future__ import annotations

import pandas as pd

from converter.validate.response_counts import WINDOW_DAYS, check_response_counts


def _frames(rows: list[tuple[str, str]], labs: list[tuple[str, str, str, float]]) -> dict[str, pd.DataFrame]:
    rs = pd.DataFrame({"USUBJID": [u for u, _ in rows], "RSTESTCD": "OVRLRESP",
                       "RSSTRESC": [c for _, c in rows], "RSDTC": "2013-03-10"})  # fmt: skip
    lb = pd.DataFrame({"USUBJID": [u for u, _, _, _ in labs], "LBTESTCD": [t for _, t, _, _ in labs],
                       "LBDTC": [d for _, _, d, _ in labs], "LBSTRESN": [v for *_, v in labs],
                       "LBSTRESU": "10^9/L"})  # fmt: skip
    return {"RS": rs, "LB": lb}


def _rules(frames: dict[str, pd.DataFrame]) -> list[tuple[str, str, str]]:
    return sorted((f.rule_id, f.subject, f.message) for f in check_response_counts(frames))


def test_counts_that_agree_with_each_category_give_no_finding() -> None:
    frames = _frames(
        [("S1", "CR"), ("S2", "CRp"), ("S3", "CRi"), ("S4", "PR")],
        [("S1", "NEUT", "2013-03-10", 1.5), ("S1", "PLAT", "2013-03-08", 150.0),
         ("S2", "NEUT", "2013-03-12", 1.1), ("S2", "PLAT", "2013-03-10", 60.0),
         ("S3", "NEUT", "2013-03-10", 0.6)],  # CRi: platelets not needed; PR: not checked
    )  # fmt: skip
    assert _rules(frames) == []


def test_a_planted_contradiction_is_reported_with_the_count_and_the_criterion() -> None:
    frames = _frames(
        [("S1", "CR"), ("S2", "CRi")],
        [("S1", "NEUT", "2013-03-10", 1.5), ("S1", "PLAT", "2013-03-10", 40.0),  # CR with platelets < 100
         ("S1", "PLAT", "2013-03-30", 150.0),  # outside the window: not the nearest that counts
         ("S2", "NEUT", "2013-03-11", 2.0)],  # CRi with a recovered ANC
    )  # fmt: skip
    got = _rules(frames)
    assert [(r, s) for r, s, _ in got] == [("INO-SDTM-063", "S1"), ("INO-SDTM-063", "S2")]
    assert "PLAT count is 40" in got[0][2] and "needs PLAT >= 100" in got[0][2]
    assert "NEUT count is 2" in got[1][2] and "needs NEUT < 1" in got[1][2]


def test_the_nearest_count_decides_and_a_missing_count_is_reported() -> None:
    frames = _frames(
        [("S1", "CR")],
        [("S1", "NEUT", "2013-03-09", 1.2), ("S1", "NEUT", "2013-03-16", 0.4),  # nearest (1 day) agrees
         ("S1", "PLAT", f"2013-03-{10 + WINDOW_DAYS + 1}", 120.0)],  # one day outside the window
    )  # fmt: skip
    got = _rules(frames)
    assert [(r, s) for r, s, _ in got] == [("INO-SDTM-062", "S1")]
    assert "no PLAT count" in got[0][2]


def test_the_simulated_example_supports_every_remission_category() -> None:
    """The simulator draws counts on each CR/CRp/CRi assessment that agree with it (labs.response_counts)."""
    from converter.records.simulate import DEFAULT_SEED, simulate
    from converter.sdtm.pipeline import records_to_sdtm

    sdtm = records_to_sdtm(simulate(59, DEFAULT_SEED)).datasets
    assert set(sdtm["RS"]["RSSTRESC"]) >= {"CR", "CRp", "CRi"}
    assert check_response_counts(sdtm) == []
