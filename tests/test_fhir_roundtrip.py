"""SDTM -> FHIR -> SDTM is lossless for every mapped variable: on the example cohort (simulate(59)) through
Bundles and through NDJSON, and on the CDISC pilot study's DM, AE, EX, DS, LB (+ SUPPDM, SUPPAE), whose
variables are the pilot's own; and the comparison does catch a difference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from test_fhir_data import example, pilot, specs

from converter.fhir.commands import fhir_command, roundtrip_command, tosdtm_command
from converter.fhir.roundtrip import RoundTrip, compare, roundtrip
from converter.fhir.sdtm_dir import read_sdtm_dir, write_sdtm_dir
from converter.spec.loader import load_terminology


def _assert_lossless(rt: RoundTrip) -> None:
    failed = [v for v in rt.variables if v.failed]
    assert failed == [], "\n".join(f"{v.dataset}.{v.variable}: {v.example}" for v in failed)
    assert all(d.missing == 0 and d.extra == 0 for d in rt.datasets if d.carried), rt.render()
    assert rt.ok
    assert rt.problems == []


@pytest.mark.parametrize("via", ["bundles", "ndjson"])
def test_example_round_trip_is_lossless(via: str) -> None:
    ex = example()
    rt = roundtrip(ex.datasets, specs(), ex.ct, ex.specs, via=via)
    _assert_lossless(rt)
    statuses = {(v.dataset, v.variable): v.status for v in rt.variables}
    # every variable of every dataset came back (mapped, implied or derived again), none "not mapped"
    assert set(statuses.values()) <= {"match", "implied", "rederived"}
    for key in [("AE", "AETOXGR"), ("SUPPAE", "QVAL"), ("LB", "LBORRES"), ("DM", "BRTHDTC"), ("TS", "TSVAL")]:
        assert statuses[key] == "match", key
    assert statuses[("AE", "AESTDY")] == "rederived"


def test_pilot_round_trip_is_lossless() -> None:
    data = pilot()
    rt = roundtrip(data, specs(), load_terminology(), None)
    _assert_lossless(rt)
    by = {(v.dataset, v.variable): v for v in rt.variables}
    for ds, df in data.items():
        for var in df.columns:
            assert by[(ds, var)].status in ("match", "implied", "rederived"), (ds, var, by[(ds, var)].status)
            assert by[(ds, var)].compared == len(df)
    # the pilot's own variables (not in the trial's SDTM specs) are carried too
    for key in [("AE", "AESEV"), ("AE", "AELLT"), ("AE", "AESCAN"), ("DM", "DMDTC"), ("LB", "LBNRIND"),
                ("LB", "LBSTNRHI"), ("LB", "LBORNRLO"), ("EX", "EXDOSFRM"), ("DS", "DSDTC"), ("LB", "VISITDY")]:  # fmt: skip
        assert by[key].status == "match", key
    assert by[("LB", "LBDY")].status == "rederived"


def test_comparison_catches_a_changed_value() -> None:
    ex = example()
    rt = roundtrip(ex.datasets, specs(), ex.ct, ex.specs)
    back = {k: v.copy() for k, v in rt.back.items()}
    back["AE"].loc[0, "AETOXGR"] = "9"
    back["LB"] = back["LB"].iloc[1:]
    again = compare(ex.datasets, back, specs(), ex.specs)
    assert not again.ok
    bad = [v for v in again.variables if v.failed]
    assert [(v.dataset, v.variable, v.differences) for v in bad] == [("AE", "AETOXGR", 1)]
    lb = next(d for d in again.datasets if d.dataset == "LB")
    assert lb.missing == 1


def test_cli_commands_on_an_sdtm_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ex = example()
    sdtm = tmp_path / "sdtm"
    write_sdtm_dir(ex.datasets, sdtm, ex.specs)  # XPT + Dataset-JSON, as `inoconv sdtm` leaves them
    assert fhir_command(sdtm, tmp_path / "fhir", strict=False) == 0
    assert (tmp_path / "fhir" / "bundles" / "study.json").is_file()
    assert roundtrip_command(sdtm) == 0
    assert "round trip: lossless for every mapped variable" in capsys.readouterr().out
    # FHIR -> SDTM from the NDJSON folder gives the datasets back, written as XPT and Dataset-JSON
    assert tosdtm_command(tmp_path / "fhir" / "ndjson", tmp_path / "back") == 0
    back = read_sdtm_dir(tmp_path / "back")
    assert set(back) == set(ex.datasets)
    rt = compare(read_sdtm_dir(sdtm), back, specs(), ex.specs)
    assert rt.ok, rt.render()
    report = pd.read_csv(tmp_path / "back" / "tosdtm-report.csv")
    assert set(report["status"]) == {"converted", "derived"}  # derived: inoconv's Provenance (the disease
    # Conditions are MH rows now, carried both ways)


def test_what_is_not_carried_is_listed_or_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ex = example()
    data = {k: v.copy() for k, v in ex.datasets.items()}
    data["AE"]["AEXTRA"] = "x"  # a variable no FHIR spec element names and no not_mapped entry lists
    data["XY"] = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["XY"], "USUBJID": ["S-1"], "XYSEQ": [1.0]})
    rt = roundtrip(data, specs(), ex.ct, ex.specs)
    assert not rt.ok
    by = {(v.dataset, v.variable): v for v in rt.variables}
    assert by[("AE", "AEXTRA")].label == "NOT CARRIED" and by[("AE", "AEXTRA")].failed
    assert by[("AE", "AETOXGR")].label == "carried" and by[("AE", "AESTDY")].label == "derived again"
    xy = next(d for d in rt.datasets if d.dataset == "XY")
    assert not xy.carried and xy.unlisted
    assert {(f["dataset"], f["variable"], f["rule"]) for f in rt.findings()} == {
        ("AE", "AEXTRA", "roundtrip-not-carried"),
        ("XY", "", "roundtrip-not-carried"),
    }
    text = rt.render()
    assert "NOT CARRIED: no FHIR spec carries it" in text and "1 NOT CARRIED (unlisted)" in text
    # listed as intentionally not mapped: reported with the reason, not a failure
    listed = dataclasses.replace(specs(), not_mapped_datasets={"XY": "sponsor-only tracking data"})
    del data["AE"]["AEXTRA"]
    rt = roundtrip(data, listed, ex.ct, ex.specs)
    assert rt.ok, rt.render()
    assert "XY" in rt.render() and "not carried (listed: sponsor-only tracking data)" in rt.render()
    # the command: exit 1 when a whole dataset is left out unlisted (it used to pass with exit 0)
    sdtm = tmp_path / "sdtm"
    write_sdtm_dir({**ex.datasets, "XY": data["XY"]}, sdtm, ex.specs)
    assert roundtrip_command(sdtm) == 1
    out = capsys.readouterr().out
    assert "XY" in out and "NOT CARRIED" in out and "round trip: NOT lossless" in out
