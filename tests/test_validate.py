"""inoconv validate: a clean package has no errors; every planted defect is caught by the rule meant to catch it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mini_records import mini_records

from converter.validate.adam_rules import run_adam_rules
from converter.validate.common import (
    RULES,
    ColumnInfo,
    DatasetInfo,
    iso_after,
    iso_datetime_ok,
    iso_duration_ok,
    study_day,
)
from converter.validate.findings import (
    MAX_ROWS_PER_GROUP,
    Finding,
    exit_code,
    render_table,
    write_csv,
    write_json,
)
from converter.validate.sdtm_rules import run_sdtm_rules

Frames = dict[str, pd.DataFrame]


@pytest.fixture(scope="module")
def clean():
    from converter.sdtm.pipeline import records_to_sdtm

    return records_to_sdtm(mini_records())


def spec_info(result) -> dict[str, DatasetInfo]:
    """File-level metadata as a conformant writer would give it: labels from the spec."""
    return {
        name: DatasetInfo(
            name, spec.label, tuple(ColumnInfo(v.name, v.label, v.numeric, v.length) for v in spec.ordered)
        )
        for name, spec in result.specs.items()
    }


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def test_clean_sdtm_has_no_errors(clean) -> None:
    findings = run_sdtm_rules(clean.datasets, clean.specs, clean.ct, spec_info(clean))
    assert not errors(findings), render_table(findings)


def test_clean_simulated_cohort_has_no_errors() -> None:
    sim = pytest.importorskip("converter.records.simulate")
    if not hasattr(sim, "simulate"):
        pytest.skip("converter.records.simulate.simulate is not there yet")
    from converter.sdtm.pipeline import records_to_sdtm

    result = records_to_sdtm(sim.simulate(59, getattr(sim, "DEFAULT_SEED", 1)))
    findings = run_sdtm_rules(result.datasets, result.specs, result.ct, spec_info(result))
    assert not errors(findings), render_table(findings)


# --- the broken SDTM packages -------------------------------------------------------------------------------------
def _row(df: pd.DataFrame, **where: object) -> int:
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        mask &= (df[k] == v).to_numpy()
    return int(np.flatnonzero(mask)[0])


def dup_dm(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["DM"] = pd.concat([f["DM"], f["DM"].iloc[[0]]], ignore_index=True)


def dup_aeseq(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["AE"].loc[1, "AESEQ"] = f["AE"].loc[0, "AESEQ"]


def ae_subject_not_in_dm(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["AE"].loc[0, "USUBJID"] = "NCT01371630-9999"


def bad_iso_date(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["AE"].loc[0, "AESTDTC"] = "2013-02-30"


def end_before_start(f: Frames, info: dict[str, DatasetInfo]) -> None:
    i = _row(f["AE"], AESTDTC="2012-01-15")
    f["AE"].loc[i, "AEENDTC"] = "2012-01-10"


def wrong_dy(f: Frames, info: dict[str, DatasetInfo]) -> None:
    i = _row(f["AE"], AESTDTC="2012-01-15")
    f["AE"].loc[i, "AESTDY"] = f["AE"].loc[i, "AESTDY"] + 5


def day_zero(f: Frames, info: dict[str, DatasetInfo]) -> None:
    i = _row(f["AE"], AESTDTC="2012-01-15")
    f["AE"].loc[i, "AESTDY"] = 0


def ct_non_extensible(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["DM"].loc[0, "SEX"] = "X"


def ct_extensible(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["EX"].loc[0, "EXROUTE"] = "BY TELEPATHY"  # ROUTE is extensible (RACE is not, in CT 2024-03-29)


def supp_orphan(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["SUPPAE"].loc[0, "IDVARVAL"] = "99"


def ts_no_tphase(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["TS"] = f["TS"][f["TS"]["TSPARMCD"] != "TPHASE"].reset_index(drop=True)


def _relabel(info: dict[str, DatasetInfo], ds: str, var: str, label: str) -> None:
    old = info[ds]
    cols = tuple(ColumnInfo(c.name, label if c.name == var else c.label, c.numeric, c.length) for c in old.columns)
    info[ds] = DatasetInfo(old.name, old.label, cols)


def label_too_long(f: Frames, info: dict[str, DatasetInfo]) -> None:
    _relabel(info, "DM", "SEX", "Sex of the Subject as Reported by the Investigator")


def label_differs(f: Frames, info: dict[str, DatasetInfo]) -> None:
    _relabel(info, "DM", "SEX", "Gender")


def missing_req_var(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["AE"] = f["AE"].drop(columns=["AETERM"])


def req_null(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["AE"].loc[0, "AETERM"] = None


def rfxstdtc_not_first_dose(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["DM"].loc[0, "RFXSTDTC"] = "2012-01-09"


def value_longer_than_spec(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["DM"].loc[0, "STUDYID"] = "NCT01371630-EXTRA"


def numeric_as_text(f: Frames, info: dict[str, DatasetInfo]) -> None:
    f["AE"]["AESEQ"] = f["AE"]["AESEQ"].astype(str).astype(object)


def missing_dm(f: Frames, info: dict[str, DatasetInfo]) -> None:
    del f["DM"]


# (defect, how it is planted, rule id that must catch it, dataset, variable)
SDTM_DEFECTS: list[tuple[str, Callable[[Frames, dict[str, DatasetInfo]], None], str, str, str]] = [
    ("duplicate USUBJID in DM", dup_dm, "CORE-000351", "DM", "USUBJID"),
    ("duplicate AESEQ", dup_aeseq, "CORE-000544", "AE", "AESEQ"),
    ("AE subject not in DM", ae_subject_not_in_dm, "CORE-000201", "AE", "USUBJID"),
    ("bad ISO date 2013-02-30", bad_iso_date, "CORE-000547", "AE", "AESTDTC"),
    ("AEENDTC before AESTDTC", end_before_start, "CORE-000718", "AE", "AESTDTC"),
    ("wrong --DY", wrong_dy, "CORE-000552", "AE", "AESTDY"),
    ("day 0", day_zero, "CORE-000558", "AE", "AESTDY"),
    ("CT value outside a non-extensible codelist", ct_non_extensible, "INO-SDTM-030", "DM", "SEX"),
    ("CT value outside an extensible codelist", ct_extensible, "INO-SDTM-031", "EX", "EXROUTE"),
    ("SUPPAE pointing at a missing AESPID", supp_orphan, "CORE-000206", "SUPPAE", "IDVARVAL"),
    ("TS missing TPHASE", ts_no_tphase, "CORE-000740", "TS", "TSPARMCD"),
    ("label too long vs spec", label_too_long, "CORE-000019", "DM", "SEX"),
    ("label differs from spec", label_differs, "INO-SDTM-005", "DM", "SEX"),
    ("missing Req variable", missing_req_var, "CORE-000355", "AE", "AETERM"),
    ("Req variable null", req_null, "CORE-000356", "AE", "AETERM"),
    ("RFXSTDTC is not the first EXSTDTC", rfxstdtc_not_first_dose, "CORE-000239", "DM", "RFXSTDTC"),
    ("value longer than the spec length", value_longer_than_spec, "INO-SDTM-009", "DM", "STUDYID"),
    ("numeric variable stored as text", numeric_as_text, "INO-SDTM-008", "AE", "AESEQ"),
    ("DM missing", missing_dm, "INO-SDTM-001", "DM", ""),
]


@pytest.mark.parametrize(
    ("defect", "plant", "rule_id", "dataset", "variable"), SDTM_DEFECTS, ids=[d[0] for d in SDTM_DEFECTS]
)
def test_broken_sdtm_package_is_caught(clean, defect, plant, rule_id, dataset, variable) -> None:
    frames = {k: v.copy(deep=True) for k, v in clean.datasets.items()}
    info = spec_info(clean)
    plant(frames, info)
    findings = run_sdtm_rules(frames, clean.specs, clean.ct, info)
    hits = [f for f in findings if f.rule_id == rule_id and f.dataset == dataset and f.variable == variable]
    assert hits, f"{defect}: no {rule_id} finding on {dataset}.{variable}\n{render_table(findings)}"
    assert all(h.severity == RULES[rule_id].severity for h in hits)
    if RULES[rule_id].severity == "error":
        assert exit_code(findings) == 1
    else:
        assert exit_code(findings) == 0 and exit_code(findings, "warning") == 1


def test_row_findings_name_subject_and_row(clean) -> None:
    frames = {k: v.copy(deep=True) for k, v in clean.datasets.items()}
    ae_subject_not_in_dm(frames, {})
    (hit,) = [f for f in run_sdtm_rules(frames) if f.rule_id == "CORE-000201"]
    assert hit.subject == "NCT01371630-9999" and hit.row == 1 and "9999" in hit.message


def test_many_rows_are_grouped(clean) -> None:
    ae = clean.datasets["AE"]
    big = pd.concat([ae] * 30, ignore_index=True)
    big["USUBJID"] = [f"X-{i}" for i in range(len(big))]
    hits = [f for f in run_sdtm_rules({"DM": clean.datasets["DM"], "AE": big}) if f.rule_id == "CORE-000201"]
    assert len(hits) == MAX_ROWS_PER_GROUP + 1
    assert sum(h.count for h in hits) == len(big)


def test_study_day_partial_dates_must_be_null(clean) -> None:
    frames = {k: v.copy(deep=True) for k, v in clean.datasets.items()}
    i = _row(frames["AE"], AESTDTC="2012-02")
    frames["AE"].loc[i, "AESTDY"] = 30
    assert any(f.rule_id == "CORE-000138" for f in run_sdtm_rules(frames))


def test_xpt_style_float_frames_pass(clean) -> None:
    """Frames read back from XPT hold integers as float64: no type or study-day errors from that."""
    frames = {}
    for name, df in clean.datasets.items():
        df = df.copy()
        for c in df.columns:
            if str(df[c].dtype) == "Int64":
                df[c] = df[c].astype("float64")
        frames[name] = df
    assert not errors(run_sdtm_rules(frames, clean.specs, clean.ct, spec_info(clean)))


# --- ADaM -----------------------------------------------------------------------------------------------------------
def clean_adam() -> Frames:
    subj = ["S-1001", "S-1002", "S-1003"]
    adsl = pd.DataFrame(
        {"STUDYID": ["S"] * 3, "USUBJID": subj, "SAFFL": ["Y", "Y", "N"], "ITTFL": ["Y", "Y", "Y"],
         "AGE": pd.array([41, 61, 30], dtype="Int64")}
    )  # fmt: skip
    adtte = pd.DataFrame(
        {"STUDYID": ["S"] * 6, "USUBJID": subj * 2, "PARAMCD": ["OS"] * 3 + ["RFS"] * 3,
         "PARAM": ["Overall Survival (months)"] * 3 + ["Relapse-free Survival (months)"] * 3,
         "AVAL": [12.5, 3.0, 0.0, 10.0, 2.0, 0.5], "CNSR": pd.array([1, 0, 1, 0, 0, 1], dtype="Int64"),
         "ANL01FL": ["Y", "Y", None, "Y", "Y", "Y"]}
    )  # fmt: skip
    adrs = pd.DataFrame(
        {"STUDYID": ["S"] * 3, "USUBJID": subj, "PARAMCD": ["BOR"] * 3, "PARAM": ["Best Overall Response"] * 3,
         "AVALC": ["CR", "NR", "CRI"], "AVAL": [1.0, 0.0, 1.0]}
    )  # fmt: skip
    return {"ADSL": adsl, "ADTTE": adtte, "ADRS": adrs}


def adsl_dup(f: Frames) -> None:
    f["ADSL"] = pd.concat([f["ADSL"], f["ADSL"].iloc[[1]]], ignore_index=True)


def cnsr_2(f: Frames) -> None:
    f["ADTTE"].loc[0, "CNSR"] = 2


def aval_negative(f: Frames) -> None:
    f["ADTTE"].loc[1, "AVAL"] = -3.0


def flag_x(f: Frames) -> None:
    f["ADSL"].loc[2, "SAFFL"] = "X"


def adam_subject_not_in_adsl(f: Frames) -> None:
    f["ADRS"].loc[0, "USUBJID"] = "S-9999"


def paramcd_two_params(f: Frames) -> None:
    f["ADTTE"].loc[2, "PARAM"] = "Overall Survival (days)"


def no_adsl(f: Frames) -> None:
    del f["ADSL"]


ADAM_DEFECTS: list[tuple[str, Callable[[Frames], None], str, str, str]] = [
    ("ADSL duplicate subject", adsl_dup, "INO-ADAM-002", "ADSL", "USUBJID"),
    ("CNSR=2", cnsr_2, "INO-ADAM-004", "ADTTE", "CNSR"),
    ("negative AVAL (time to event)", aval_negative, "INO-ADAM-005", "ADTTE", "AVAL"),
    ("flag 'X'", flag_x, "INO-ADAM-006", "ADSL", "SAFFL"),
    ("ADaM subject not in ADSL", adam_subject_not_in_adsl, "INO-ADAM-007", "ADRS", "USUBJID"),
    ("PARAMCD mapping to two PARAMs", paramcd_two_params, "INO-ADAM-003", "ADTTE", "PARAMCD"),
    ("ADSL missing", no_adsl, "INO-ADAM-001", "ADSL", ""),
]


def test_clean_adam_has_no_findings() -> None:
    assert run_adam_rules(clean_adam()) == []


@pytest.mark.parametrize(("defect", "plant", "rule_id", "dataset", "variable"), ADAM_DEFECTS,
                         ids=[d[0] for d in ADAM_DEFECTS])  # fmt: skip
def test_broken_adam_package_is_caught(defect, plant, rule_id, dataset, variable) -> None:
    frames = clean_adam()
    plant(frames)
    findings = run_adam_rules(frames)
    hits = [f for f in findings if f.rule_id == rule_id and f.dataset == dataset and f.variable == variable]
    assert hits, f"{defect}: no {rule_id} on {dataset}.{variable}\n{render_table(findings)}"
    assert exit_code(findings) == 1


def test_negative_aval_outside_time_to_event_is_fine() -> None:
    frames = clean_adam()
    frames["ADRS"].loc[0, "AVAL"] = -1.0
    assert run_adam_rules(frames) == []


# --- helpers and writers ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ok"),
    [("2012", True), ("2012-02", True), ("2012-02-29", True), ("2013-02-29", False), ("2013-02-30", False),
     ("2012-13", False), ("2012-01-15T10:30", True), ("2012-01-15T10:30:59.5", True), ("2012-01-15T25:00", False),
     ("2012---15", True), ("2012/01/15", False), ("15JAN2012", False), ("2012-1-5", False), ("", False),
     ("2012-01-15T10:30:00+01:00", True)],
)  # fmt: skip
def test_iso_datetime(text: str, ok: bool) -> None:
    assert iso_datetime_ok(text) is ok


def test_iso_helpers() -> None:
    from datetime import date

    assert iso_duration_ok("P18Y") and iso_duration_ok("P3Y") and iso_duration_ok("PT12H")
    assert not iso_duration_ok("18") and not iso_duration_ok("P") and not iso_duration_ok("PT")
    assert study_day(date(2012, 1, 7), date(2012, 1, 7)) == 1
    assert study_day(date(2012, 1, 6), date(2012, 1, 7)) == -1
    assert iso_after("2012-02-10", "2012-02-01") and not iso_after("2012-02", "2012-02-01")
    assert not iso_after("2012-01-15T10:00", "2012-01-15")


def test_every_rule_id_is_core_or_project() -> None:
    listed = Path(__file__).resolve().parent / "fixtures" / "cdisc_core_rule_ids.txt"  # fails when missing
    core = {ln for ln in listed.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")}
    assert len(core) > 900
    for rid in RULES:
        assert rid.startswith(("CORE-", "INO-"))
        if rid.startswith("CORE-"):
            assert rid in core, f"{rid} is not a published CORE rule"


def test_reports(tmp_path: Path) -> None:
    fs = [
        Finding("CORE-000351", "error", "DM", "USUBJID", "S-1", 3, "USUBJID S-1 is not unique — ü"),
        Finding("INO-SDTM-031", "warning", "DM", "RACE", "", None, "x", 4),
    ]
    doc = json.loads(write_json(fs, tmp_path / "f.json").read_text(encoding="utf-8"))
    assert doc["summary"] == {"error": 1, "warning": 4, "info": 0}
    assert doc["findings"][0]["rule_id"] == "CORE-000351"
    raw = write_csv(fs, tmp_path / "f.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == "rule_id,severity,file,dataset,variable,subject,row,message,count"
    assert "ü" in text
    table = render_table(fs)
    assert "CORE-000351" in table and table.splitlines()[-1] == "1 error(s), 4 warning(s), 0 info"
    assert exit_code(fs) == 1 and exit_code(fs[1:]) == 0 and exit_code(fs[1:], "warning") == 1
    with pytest.raises(ValueError):
        exit_code(fs, "info")


def test_copy_independent(clean) -> None:
    """The planted defects never leak into the shared clean frames."""
    before = copy.deepcopy(clean.datasets["DM"])
    frames = {k: v.copy(deep=True) for k, v in clean.datasets.items()}
    dup_dm(frames, {})
    pd.testing.assert_frame_equal(clean.datasets["DM"], before)


def test_adam_spec_checks() -> None:
    from converter.spec.loader import parse_spec

    doc = {
        "dataset": "ADSL", "label": "Subject-Level Analysis Dataset", "standard": "ADaMIG 1.3", "keys": ["USUBJID"],
        "sources": [{"rows": [{"USUBJID": "x"}]}],
        "variables": [
            {"name": "STUDYID", "label": "Study Identifier", "type": "text", "core": "Req", "origin": "Predecessor"},
            {"name": "USUBJID", "label": "Unique Subject Identifier", "type": "text", "core": "Req"},
            {"name": "SAFFL", "label": "Safety Population Flag", "type": "text", "length": 1, "core": "Cond"},
            {"name": "AGE", "label": "Age", "type": "integer", "core": "Req"},
            {"name": "TRTSDT", "label": "Date of First Exposure to Treatment", "type": "integer", "core": "Cond"},
        ],
    }  # fmt: skip
    spec = parse_spec(doc, Path("adsl.yaml"))
    frames = clean_adam()
    assert not [f for f in run_adam_rules(frames, {"ADSL": spec}) if f.severity == "error"]
    frames["ADSL"] = frames["ADSL"].drop(columns=["AGE"])
    frames["ADSL"].loc[0, "STUDYID"] = None
    frames["ADSL"].loc[1, "SAFFL"] = "YES"
    got = {(f.rule_id, f.variable) for f in run_adam_rules(frames, {"ADSL": spec})}
    assert {("INO-ADAM-008", "AGE"), ("INO-ADAM-009", "STUDYID"), ("INO-ADAM-010", "TRTSDT"),
            ("INO-ADAM-015", "SAFFL"), ("INO-ADAM-006", "SAFFL")} <= got  # fmt: skip
    assert ("INO-ADAM-017", "") in got  # ADTTE/ADRS have no spec here
