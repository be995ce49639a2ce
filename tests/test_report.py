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
            "TRTEMFL": ["Y", "Y", None, "Y", None],
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
    # the VOD record is outside the treatment-emergent window: counted (any time on study), 0 beside it
    assert got["vod"].value == 1 and got["vod"].also == {"treatment-emergent (TRTEMFL = Y)": 0}
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


# --- the exact numpy statistics, lifelines as the oracle ------------------------------------------------------------
def test_kaplan_meier_and_logrank_match_lifelines() -> None:
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test
    from lifelines.utils import median_survival_times

    from converter.report.stats import logrank

    def same(a: float | None, b: float) -> bool:
        return (a is None) if not np.isfinite(b) else (a is not None and math.isclose(a, b, rel_tol=1e-9))

    rng = np.random.default_rng(20180201)
    for _ in range(60):
        n = int(rng.integers(2, 60))
        t = np.round(rng.exponential(10, n), int(rng.integers(0, 2)))  # ties at 0 decimals
        e = (rng.random(n) < rng.random()).astype(int)
        kmf = KaplanMeierFitter().fit(t, e)
        km = kaplan_meier(t, e)
        med, (lo, hi) = km.median()
        band = median_survival_times(kmf.confidence_interval_)
        assert same(med, float(kmf.median_survival_time_))
        assert same(lo, float(band.iloc[0, 0])) and same(hi, float(band.iloc[0, 1]))
        for at in (3.0, 12.0):
            rate, (rlo, rhi) = km.at(at)
            assert math.isclose(rate, float(kmf.survival_function_at_times(at).iloc[0]), rel_tol=1e-12)
            ci = kmf.confidence_interval_survival_function_
            row = ci[ci.index <= at].iloc[-1]
            assert same(rlo, float(row.iloc[0])) and same(rhi, float(row.iloc[1]))
        g = rng.integers(0, 3, n).astype(str)
        if len(set(g)) > 1:
            ours = logrank(t, e, g).p_value
            theirs = multivariate_logrank_test(t, g, e).p_value
            assert math.isclose(ours, theirs, rel_tol=1e-7, abs_tol=1e-12)


def test_numbers_at_risk_under_the_ticks() -> None:
    t = np.array([2.0, 3.0, 4.0, 6.0, 8.0, 10.0])
    e = np.array([1, 0, 1, 1, 0, 0])
    km = kaplan_meier(t, e)
    # at risk at x: subjects whose time is >= x
    assert km.at_risk_at(np.array([0.0, 2.0, 2.5, 6.0, 9.0, 12.0])).tolist() == [6, 6, 5, 3, 1, 0]


# --- the analysis spec ------------------------------------------------------------------------------------------------
def test_the_spec_carries_every_published_value_with_its_source() -> None:
    spec = load_analysis_spec()
    pubs = {a.id: a.published for a in spec.analyses if a.published} | {
        g.id: g.published for a in spec.analyses for g in a.groups if g.published
    }
    assert len(pubs) == 23
    for key, pub in pubs.items():
        assert pub.source in spec.documents and pub.location, key
        assert pub.criterion in spec.criteria, key
    assert "PubMed 28859185" in spec.documents["JAMA_ONCOL_2018"]["name"]
    assert spec.units["months"].divisor == 30.4375


def test_missing_analysis_spec_is_a_spec_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from converter.errors import SpecError

    monkeypatch.setenv("INOCONV_MAPPINGS", str(tmp_path))
    with pytest.raises(SpecError, match="no analysis spec"):
        load_analysis_spec()


def test_invalid_spec_lists_every_problem(tmp_path: Path) -> None:
    from converter.errors import SpecError

    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "analysisSets: [{id: ALL, label: All, dataset: ADSL}]\n"
        "dataSubsets: {F: {condition: {dataset: ADSL, variable: SEX, comparator: LIKE, value: [F]}},\n"
        '              X: {dataset: ADSL, where: "AGE.apply(print)"}}\n'
        "criteria: {exact: {label: exact}}\n"
        "analyses:\n"
        "  - {id: a, name: A, method: average, analysisSet: ALL}\n"
        "  - {id: b, name: B, method: count, analysisSet: NOPE, dataSubset: F}\n"
        "  - {id: c, name: C, method: km_rate, parameter: OS,\n"
        "     published: {value: 1, criterion: close, source: NOWHERE}}\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as err:
        load_analysis_spec(path)
    text = "\n".join(err.value.messages)
    for needle in ("comparator 'LIKE'", "dataSubsets.X", "method 'average'", "analysisSet 'NOPE'", "parameter 'OS'", "'at' is required",
                   "criterion 'close'", "source 'NOWHERE'"):  # fmt: skip
        assert needle in text, needle
    assert all(m.startswith(str(path)) for m in err.value.messages)


SECOND_TRIAL = """
reportingEvent: {id: RE_X, name: a second trial, title: 'End points of {study}'}
referenceDocuments: [{id: PAPER, name: 'A paper'}]
units: {weeks: {from: days, divisor: 7, label: Weeks}}
analysisSets:
  - {id: FAS, label: Full analysis set, dataset: ADSL, condition: {dataset: ADSL, variable: FASFL, comparator: EQ,
     value: ['Y']}}
dataSubsets:
  OLD: {condition: {dataset: ADSL, variable: AGE, comparator: GE, value: [65]}}
  SEVERE: {condition: {dataset: ADAE, variable: AESEV, comparator: IN, value: [SEVERE]}}
criteria: {exact: {label: exact}, weeks: {label: '+-1 week', tolerance: 1}}
windows: {ANY: {label: any time}}
analyses:
  - {id: old, name: Aged 65 or over, method: proportion, value: count, analysisSet: FAS, dataSubset: OLD,
     published: {value: 2, criterion: exact, source: PAPER, location: table 1}}
  - {id: severe, name: Severe AE, method: proportion, value: proportion, analysisSet: FAS,
     records: {dataset: ADAE, dataSubsets: [SEVERE], window: ANY}}
  - {id: pfs_median, name: PFS median (weeks), method: km_median, parameter: PFS,
     published: {value: 4, criterion: weeks, source: PAPER, location: figure 2}}
  - {id: pfs_arm, name: PFS by arm, method: logrank, parameter: PFS, groupBy: {variable: TRT01P}}
parameters:
  PFS: {dataset: ADTTE, paramcd: PFS, label: Progression-free survival, time: AVAL, censor: CNSR, unit: weeks}
figures:
  - {id: km_pfs, title: Progression-free survival, parameter: PFS, annotate: [pfs_median]}
"""


def test_a_second_trial_is_reportable_by_its_spec_alone(tmp_path: Path) -> None:
    import yaml

    from converter.report.spec import parse_analysis_spec

    spec = parse_analysis_spec(yaml.safe_load(SECOND_TRIAL), tmp_path / "endpoints.yaml")
    ids = ["X-1", "X-2", "X-3", "X-4"]
    adam = {
        "ADSL": pd.DataFrame({"STUDYID": "X", "USUBJID": ids, "FASFL": ["Y", "Y", "Y", "N"], "AGE": [70, 40, 66, 80]}),
        "ADAE": pd.DataFrame({"USUBJID": ["X-1", "X-1", "X-4"], "AESEV": ["SEVERE", "MILD", "SEVERE"]}),
        "ADTTE": pd.DataFrame({"USUBJID": ids, "PARAMCD": "PFS", "AVAL": [14.0, 28.0, 35.0, 70.0],
                               "CNSR": [0, 0, 1, 0], "TRT01P": ["A", "B", "A", "B"]}),
    }  # fmt: skip
    ep = compute_endpoints(adam, spec)
    got = {e.key: e for e in ep.items}
    assert got["old"].value == 2 and got["old"].n == 3  # X-4 is not in the FAS
    assert got["severe"].value == pytest.approx(1 / 3) and got["severe"].note == "1/3"
    assert got["pfs_median"].value == pytest.approx(4.0)  # weeks: S drops to 0.5 at day 28
    assert 0 < (got["pfs_arm"].value or 0) <= 1
    comps = compare(ep, spec)
    assert [(c.key, c.within, c.location) for c in comps] == [("old", True, "table 1"), ("pfs_median", True,
                                                                                         "figure 2")]  # fmt: skip
    files = write_report(ep, comps, tmp_path / "out", source="second")
    assert {"km_pfs.svg", "km_pfs.png", "km_pfs.pdf"} <= {f.name for f in files}
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# End points of X")


def test_a_variable_the_spec_needs_is_a_named_input_error() -> None:
    adam = adam_frames()
    adam["ADSL"] = adam["ADSL"].drop(columns=["RESPFL"])
    with pytest.raises(InputError) as err:
        compute_endpoints(adam)
    p = err.value.problems[0]
    assert (p.file, p.field) == ("ADSL", "RESPFL") and "RESPFL EQ Y" in p.message


def test_report_on_an_sdtm_folder_says_what_it_expected(tmp_path: Path) -> None:
    from converter.io.xpt import write_xpt
    from converter.paths import mappings_dir
    from converter.report.commands import report_command
    from converter.spec.loader import load_specs

    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    dm = load_specs(mappings_dir() / "sdtm")["DM"]  # one SDTM dataset, as `inoconv sdtm` writes it
    variables = sorted(dm.variables, key=lambda v: v.order)
    write_xpt(pd.DataFrame({v.name: [1.0] if v.type in ("integer", "float") else ["X"] for v in variables}), dm,
              sdtm / "dm.xpt")  # fmt: skip
    with pytest.raises(InputError) as err:
        report_command(sdtm, tmp_path / "report", echo=lambda _m: None)
    assert err.value.exit_code == 2
    message = err.value.problems[0].message
    assert "ADaM package" in message and "DM" in message  # what it expected and what it found
    assert not (tmp_path / "report").exists()


def test_cli_report_on_sdtm_exits_2_with_a_sentence(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from converter.cli import app

    (tmp_path / "sdtm").mkdir()
    (tmp_path / "sdtm" / "readme.txt").write_text("not a package", encoding="utf-8")
    res = CliRunner().invoke(app, ["report", str(tmp_path / "sdtm"), "--out", str(tmp_path / "rep")])
    assert res.exit_code == 2, res.output
    assert "ADaM package" in res.output and "Traceback" not in res.output


def test_no_trial_in_the_report_code() -> None:
    """converter/report knows no trial: every trial word lives in mappings/analysis."""
    import re

    folder = Path(__file__).resolve().parent.parent / "converter" / "report"
    words = re.compile(r"salvage|\bVOD\b|NCT\d{8}|inotuzumab|MRDNEGFL|SALVLN|CQ0\dNAM|\"(OS|RFS)\"|'(OS|RFS)'|"
                       r"INFECTION|THROMBOCYTOPENIA|HYPERBILIRUBIN", re.IGNORECASE)  # fmt: skip
    hits = [f"{p.name}:{i}: {line.strip()}" for p in sorted(folder.glob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if words.search(line)]  # fmt: skip
    assert not hits, hits


def test_flow_and_adverse_event_tables_from_the_spec() -> None:
    from converter.report.tables import adverse_event_table, patient_flow, reconcile

    adam = adam_frames()
    adam["ADSL"]["RELDT"] = [19000.0, None, None, None, None, None]  # S-1 relapsed (a responder)
    adam["ADSL"]["DTHFL"] = ["Y", "N", "N", "Y", "N", "N"]
    flow = {s.key: (s.n, s.of) for s in patient_flow(adam["ADSL"])}
    assert flow["treated"] == (6, 6) and flow["responded"] == (4, 6) and flow["no_response"] == (2, 6)
    assert flow["mrd_negative"] == (2, 4) and flow["relapsed"] == (1, 4) and flow["died"] == (2, 6)
    # S-5: grade 3 and grade 5 infection - worst grade 5, yet one grade 3-4 event
    adae = pd.concat([adam["ADAE"], pd.DataFrame({"USUBJID": ["S-5", "S-5"], "ATOXGRN": [3, 5],
                                                  "CQ02NAM": ["INFECTION", "INFECTION"],
                                                  "TRTEMFL": ["Y", "Y"]})], ignore_index=True)  # fmt: skip
    table = adverse_event_table(adae, adam["ADSL"])
    row = table.row("categories", "INFECTION")
    assert row is not None and row.band == 2 and row.any == 2
    assert sum(row.by_grade.get(g, 0) for g in (3, 4)) == 1 and row.by_grade[5] == 1
    adam["ADAE"] = adae
    ep = compute_endpoints(adam)
    assert ep.get("grade34_infection").value == 2  # the end point counts any grade 3-4 event
    report = {"endpoints": [e.as_dict() for e in ep.items]}
    rec = {r.key: r for r in reconcile(report, table, load_analysis_spec())}
    assert (rec["grade34_infection"].endpoint_value, rec["grade34_infection"].any_in_band,
            rec["grade34_infection"].worst_in_band) == (2, 2, 1)  # fmt: skip


def test_risk_table_sits_under_the_ticks() -> None:
    """Each number at risk is drawn at an x tick of the curve's axes (shared x), one row per curve."""
    from converter.report.endpoints import SurvivalFit
    from converter.report.render import km_figure
    from converter.report.spec import Figure

    t = np.array([2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 14.0, 20.0])
    e = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    fit = SurvivalFit("OS", t, e, groups={"A": (t[:4], e[:4]), "B": (t[4:], e[4:])}, unit_label="Months")
    fig = km_figure(fit, Figure("km", "Title", "Caption", "OS", ()), "note line")
    ax, risk = fig.axes
    ticks = list(ax.get_xticks())
    rows: dict[float, list[tuple[float, str]]] = {}
    for text in risk.texts:
        rows.setdefault(text.get_position()[1], []).append((text.get_position()[0], text.get_text()))
    assert len(rows) == 2
    for row in rows.values():
        assert [x for x, _ in row] == ticks
    by_y = sorted(rows.items(), reverse=True)  # first curve on top
    for (_, row), times in zip(by_y, (t[:4], t[4:]), strict=True):  # at risk at x: follow-up time >= x
        assert [n for _, n in row] == [str(int((times >= x).sum())) for x in ticks]
    assert risk.get_xlim() == ax.get_xlim()


def test_a_records_end_point_names_its_window_and_population(tmp_path: Path) -> None:
    import yaml

    from converter.errors import SpecError
    from converter.report.spec import parse_analysis_spec

    doc = yaml.safe_load(SECOND_TRIAL)
    severe = next(a for a in doc["analyses"] if a["id"] == "severe")
    del severe["records"]["window"]
    with pytest.raises(SpecError, match="records needs 'window'"):
        parse_analysis_spec(doc, tmp_path / "endpoints.yaml")
    severe["records"]["window"] = "ON_TREATMENT"
    with pytest.raises(SpecError, match="window 'ON_TREATMENT' is not defined under 'windows'"):
        parse_analysis_spec(doc, tmp_path / "endpoints.yaml")
    severe["records"]["window"] = "ANY"
    del severe["analysisSet"]
    with pytest.raises(SpecError, match="records needs 'analysisSet'"):
        parse_analysis_spec(doc, tmp_path / "endpoints.yaml")


def test_safety_end_points_show_the_treatment_emergent_count_beside(tmp_path: Path) -> None:
    """Each safety end point counts over its stated window (any time on study, as published) and reports the
    treatment-emergent count beside it, computed from the same records with TRTEMFL = Y."""
    import numpy as np

    from converter.adam.pipeline import sdtm_to_adam
    from converter.records.simulate import DEFAULT_SEED, simulate
    from converter.report.endpoints import compute_endpoints
    from converter.report.spec import load_analysis_spec
    from converter.sdtm.pipeline import records_to_sdtm

    adam = sdtm_to_adam(records_to_sdtm(simulate(59, DEFAULT_SEED)).datasets).datasets
    spec = load_analysis_spec()
    eps = compute_endpoints(adam, spec)
    ae, adsl = adam["ADAE"], adam["ADSL"]
    saf = set(adsl.loc[adsl["SAFFL"] == "Y", "USUBJID"])
    vod = eps.get("vod")
    assert vod.window == spec.windows["ON_STUDY"].label
    te_label = spec.windows["TREATMENT_EMERGENT"].label
    is_vod = (ae["CQ04NAM"] == "VOD").to_numpy()
    te = (ae["TRTEMFL"] == "Y").to_numpy()
    assert vod.value == len(set(ae.loc[is_vod, "USUBJID"]) & saf)
    assert vod.also == {te_label: len(set(ae.loc[is_vod & te, "USUBJID"]) & saf)}
    assert vod.also[te_label] < vod.value  # most VODs start after transplant, outside the window
    for key in ("grade34_thrombocytopenia_prolonged", "grade34_infection", "grade34_hyperbilirubinemia"):
        ep = eps.get(key)
        assert set(ep.also) == {te_label} and 0 <= ep.also[te_label] <= (ep.value or 0)
    g34 = np.isin(ae["ATOXGRN"].astype(float), [3, 4])
    inf = (ae["CQ02NAM"] == "INFECTION").to_numpy() & g34
    assert eps.get("grade34_infection").also[te_label] == len(set(ae.loc[inf & te, "USUBJID"]) & saf)


def test_the_tail_with_fewer_than_three_at_risk_is_dashed_and_said() -> None:
    """Issue 15: the curve is solid while 3 or more remain at risk, dashed after (legend says so); the risk table
    shows the counts under 3 in grey italics; tailAtRisk 0 draws no tail, and a bad value is a spec error."""
    import yaml

    from converter.errors import SpecError
    from converter.report.endpoints import SurvivalFit
    from converter.report.render import km_figure, tail_start
    from converter.report.spec import Figure, parse_analysis_spec
    from converter.report.stats import kaplan_meier

    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    e = np.array([1, 1, 0, 1, 1, 1, 0, 1])
    km = kaplan_meier(t, e)
    # remaining after each time 0,1..8: 8 7 6 5 4 3 2 1 0: fewer than 3 first after t=6
    assert km.times[tail_start(km, 3)] == 6.0
    assert tail_start(km, 0) == km.times.size - 1
    assert tail_start(km, 1) == km.times.size - 1  # never 0 < remaining < 1
    fit = SurvivalFit("OS", t, e, unit_label="Months")
    fig = km_figure(fit, Figure("km", "Title", "Caption", "OS", ()), "")
    ax, risk = fig.axes
    solid, dash = ax.lines[0], ax.lines[1]
    assert solid.get_linestyle() == "-" and dash.get_linestyle() == "--"
    assert float(np.max(solid.get_xdata())) == 6.0 and float(np.min(dash.get_xdata())) == 6.0
    assert float(np.max(dash.get_xdata())) == 8.0
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "fewer than 3 at risk" in labels
    grey = {text.get_text() for text in risk.texts if text.get_fontstyle() == "italic"}
    assert grey == {"2", "1"}  # at ticks 7 and 8; 0 at risk is not a tail count
    plain = km_figure(fit, Figure("km", "Title", "Caption", "OS", (), tail_at_risk=0), "")
    assert len([ln for ln in plain.axes[0].lines if ln.get_linestyle() == "--"]) == 0
    assert "fewer than" not in " ".join(x.get_text() for x in plain.axes[0].get_legend().get_texts())

    doc = yaml.safe_load(SECOND_TRIAL)
    doc["figures"][0]["tailAtRisk"] = 2.5
    with pytest.raises(SpecError, match="tailAtRisk must be a whole number"):
        parse_analysis_spec(doc, Path("endpoints.yaml"))
