"""The end-point computations on small hand-checked data, the comparison criteria, and the rendering.

The end points are those of the analysis spec (mappings/analysis/endpoints.yaml); the statistics are exact numpy
code checked here against lifelines (the oracle) and scipy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from converter.errors import InputError
from converter.report.endpoints import Endpoint, compute_endpoints
from converter.report.published import Comparison, compare, published_value, within
from converter.report.render import format_value, markdown, write_report
from converter.report.spec import load_analysis_spec
from converter.report.stats import clopper_pearson, kaplan_meier

DAYS_PER_MONTH = 30.4375  # the spec's unit: months = days / 30.4375


@pytest.mark.parametrize(("k", "n"), [(46, 59), (35, 59), (0, 10), (10, 10), (38, 46)])
def test_clopper_pearson_matches_scipy_exact(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    lo, hi = clopper_pearson(k, n)
    assert math.isclose(lo, ci.low, abs_tol=1e-12) and math.isclose(hi, ci.high, abs_tol=1e-12)


def test_km_median_and_rate_by_hand() -> None:
    # 6 subjects: events at 2, 4, 6; censored at 3, 8, 10 -> S(2)=5/6, S(4)=5/6*3/4=0.625, S(6)=0.625*1/2=0.3125
    t = np.array([2.0, 3.0, 4.0, 6.0, 8.0, 10.0])
    e = np.array([1, 0, 1, 1, 0, 0])
    km = kaplan_meier(t, e)
    med, med_ci = km.median()
    assert med == 6.0 and med_ci[0] is not None
    rate, rate_ci = km.at(5.0)
    assert math.isclose(rate, 0.625)
    assert rate_ci[0] is not None and rate_ci[1] is not None and rate_ci[0] < 0.625 < rate_ci[1]
    assert kaplan_meier(np.array([1.0, 2.0]), np.array([0, 0])).median()[0] is None  # not reached


def adam_frames() -> dict[str, pd.DataFrame]:
    ids = [f"S-{i}" for i in range(1, 7)]
    adsl = pd.DataFrame(
        {
            "USUBJID": ids,
            "SAFFL": ["Y"] * 6,
            "ITTFL": ["Y"] * 6,
            "SEX": ["F", "F", "M", "M", "F", "M"],
            "AGE": [20, 30, 40, 50, 60, 70],
            "RESPFL": ["Y", "Y", "Y", "N", "N", "Y"],
            "CRFL": ["Y", "N", "Y", "N", "N", "N"],
            "MRDNEGFL": ["Y", "N", "Y", "N", "N", "N"],
            "TRANSFL": ["Y", "N", "N", "N", "N", "Y"],
        }
    )
    adae = pd.DataFrame(
        {
            "USUBJID": ["S-1", "S-1", "S-2", "S-3", "S-4"],
            "ATOXGRN": [3, 4, 2, 3, 1],
            "CQ01NAM": [
                "PROLONGED THROMBOCYTOPENIA",
                "PROLONGED THROMBOCYTOPENIA",
                "PROLONGED THROMBOCYTOPENIA",
                None,
                None,
            ],
            "CQ02NAM": [None, None, None, "INFECTION", None],
            "CQ03NAM": [None, None, None, None, None],
            "CQ04NAM": [None, None, None, None, "VOD"],
        }
    )
    days = np.array([2.0, 3.0, 4.0, 6.0, 8.0, 10.0]) * DAYS_PER_MONTH
    os_ = pd.DataFrame({"USUBJID": ids, "PARAMCD": "OS", "AVAL": days, "CNSR": [0, 1, 0, 0, 1, 1],
                        "SALVLN": ["1", "1", "2", "2", "3+", "3+"]})  # fmt: skip
    rfs = pd.DataFrame({"USUBJID": ["S-1", "S-2", "S-3", "S-6"], "PARAMCD": "RFS", "AVAL": days[:4],
                        "CNSR": [0, 0, 1, 1], "SALVLN": ["1", "1", "2", "3+"]})  # fmt: skip
    return {"ADSL": adsl, "ADAE": adae, "ADTTE": pd.concat([os_, rfs], ignore_index=True)}


def test_compute_endpoints_on_small_adam() -> None:
    ep = compute_endpoints(adam_frames())
    got = {e.key: e for e in ep.items}
    assert got["treated"].value == 6 and got["female"].value == 3 and got["age_median"].value == 45
    assert got["overall_response"].value == 4 and got["overall_response"].n == 6
    assert got["complete_response"].value == 2
    assert got["mrd_negative_among_responders"].value == 0.5 and got["mrd_negative_among_responders"].n == 4
    assert got["asct"].value == 2
    assert got["grade34_thrombocytopenia_prolonged"].value == 1  # S-2 is grade 2
    assert got["grade34_infection"].value == 1 and got["grade34_hyperbilirubinemia"].value == 0
    assert got["vod"].value == 1  # any grade
    assert math.isclose(got["os_median"].value or 0, 6.0)
    assert math.isclose(got["os_1y"].value or 0, 5 / 6 * 3 / 4 * 2 / 3)
    assert got["os_1y"].events == 3
    assert {k for k in got if k.startswith("os_1y_salvage_")} == {"os_1y_salvage_1", "os_1y_salvage_2",
                                                                   "os_1y_salvage_3_plus"}  # fmt: skip
    assert 0 < (got["os_by_salvage_logrank_p"].value or 0) < 1
    # reverse KM: censorings (3, 8, 10) are the events
    assert math.isclose(got["median_followup"].value or 0, 8.0)


def test_tox_subjects_needs_categories() -> None:
    adam = adam_frames()
    adam["ADAE"] = pd.DataFrame({"USUBJID": ["S-1"], "ATOXGRN": [3]})  # no CQnnNAM: the spec's categories
    with pytest.raises(InputError, match="CQ01NAM") as err:
        compute_endpoints(adam)
    assert err.value.problems[0].file == "ADAE" and err.value.problems[0].field == "CQ01NAM"


@pytest.mark.parametrize(
    ("measured", "published", "criterion", "ok"),
    [
        (46.0, 46.0, "exact", True),
        (45.0, 46.0, "exact", False),
        (11.9, 11.0, "median", True),
        (12.1, 11.0, "median", False),
        (0.51, 0.46, "rate", True),
        (0.52, 0.46, "rate", False),
        (0.826, 0.82, "percent", True),
        (0.835, 0.82, "percent", False),
        (0.009, 0.03, "significant", True),
        (0.2, 0.03, "significant", False),
        (None, 0.03, "significant", False),
    ],
)
def test_criteria(measured: float | None, published: float, criterion: str, ok: bool) -> None:
    assert within(measured, published, criterion) is ok


def test_published_file_and_comparison() -> None:
    pub = load_analysis_spec()
    assert published_value(pub, "overall_response") == 46
    assert published_value(pub, "os_1y_salvage_3_plus") == 0.39
    assert published_value(pub, "nothing") is None
    ep = compute_endpoints(adam_frames())
    comps = compare(ep, pub)
    by = {c.key: c for c in comps}
    assert by["treated"].published == 59 and by["treated"].within is False
    assert by["os_1y"].criterion == "+-0.05"


def test_format_and_render(tmp_path: Path) -> None:
    assert format_value(Endpoint("x", "X", "count", 46.0, n=59, ci=clopper_pearson(46, 59))).startswith("46/59 (78.0%")
    assert format_value(Endpoint("m", "M", "median", None, ci=(3.0, None))) == "NR (95% CI 3.0-NR)"
    assert format_value(Endpoint("p", "P", "pvalue", 0.03123)) == "0.0312"
    ep = compute_endpoints(adam_frames())
    comps = compare(ep)
    files = write_report(ep, comps, tmp_path / "rep", source="test")
    assert [f.name for f in files][:2] == ["report.md", "report.json"]
    assert {"km_os.png", "km_os_by_salvage.png", "km_rfs.png"} <= {f.name for f in files}
    assert all(f.stat().st_size > 0 for f in files)
    data = json.loads(files[1].read_text())
    assert data["all_within"] is False and len(data["endpoints"]) == len(ep.items)
    md = markdown(ep, comps)
    assert "**NO**" in md and "| Treated subjects | 6 |" in md
    assert isinstance(comps[0], Comparison)
