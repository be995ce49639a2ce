"""FHIR -> SDTM on FHIR written elsewhere (HL7 R4 examples, a Synthea bulk export) and on bad input: what can
be converted is, what cannot is reported resource by resource, bad input names file, entry and element."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd
import pytest
from test_fhir_data import HL7, SYNTHEA, need_samples, specs

from converter.fhir.commands import tosdtm_command
from converter.fhir.to_sdtm import FromFhir, convert_path
from converter.io.datasetjson import read_dataset_json
from converter.spec.loader import load_terminology


@functools.cache
def _ct():  # type: ignore[no-untyped-def]
    return load_terminology()


def _convert(path: Path) -> FromFhir:
    return convert_path(path, specs(), _ct(), None)


def test_hl7_examples_convert_what_they_can() -> None:
    need_samples(HL7)
    res = _convert(HL7)
    status = {(o.file, o.where): (o.status, o.dataset, o.reason) for o in res.outcomes}
    assert status[("adverseevent-example.json", "resource")][:2] == ("converted", "AE")
    assert status[("researchsubject-example.json", "resource")][:2] == ("converted", "DM")
    assert status[("procedure-example.json", "resource")][:2] == ("converted", "PR")
    assert status[("condition-example-f202-malignancy.json", "resource")][:2] == ("converted", "MH")
    assert status[("careplan-example-f202-malignancy.json", "resource")] == (
        "not converted", "", "no FHIR spec for CarePlan under mappings/fhir"
    )  # fmt: skip
    assert status[("bundle-transaction.json", "entry[5]")][2] == "entry has no resource (DELETE Patient/234)"
    genetics = status[("observation-example-genetics-1.json", "resource")]
    assert genetics[0] == "not converted" and "matches no source of the Observation spec" in genetics[2]
    # every resource and every Bundle entry of the input has its outcome
    expected = 0
    for f in HL7.glob("*.json"):
        doc = json.loads(f.read_text())
        expected += len(doc.get("entry", ())) if doc["resourceType"] == "Bundle" else 1
    assert len(res.outcomes) == expected
    ae = res.datasets["AE"].iloc[0]
    assert (ae["USUBJID"], ae["AESER"], ae["AESEV"], ae["AESTDTC"]) == (
        "example", "N", "MILD", "2017-01-29T12:34:56+00:00"
    )  # fmt: skip
    assert ae["AETERM"] == "This was a mild rash on the left forearm"
    vs = res.datasets["VS"]
    assert set(vs["VSTESTCD"]) >= {"BMI", "HEIGHT"} and set(vs["VSLOINC"]) >= {"39156-5", "8302-2"}
    # the Patients these examples refer to are not all in the set: each such reference is reported
    dangling = [p for p in res.problems if p.rule == "fhir-reference"]
    assert {(p.file, p.field) for p in dangling} >= {
        ("medicationadministration0301.json", "subject"),
        ("observation-example-f202-temperature.json", "subject"),
    }
    assert all(p.record == "resource" and p.value.startswith("Patient/") for p in dangling)
    coded = [p for p in res.problems if p.rule == "fhir-code"]
    assert [(p.file, p.field) for p in coded] == [("observation-example-f202-temperature.json", "status")]


def test_synthea_bulk_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_samples(SYNTHEA)
    # the export as it is: its log.ndjson is not FHIR NDJSON, so bad input (exit 2, only the problem report)
    assert tosdtm_command(SYNTHEA, tmp_path / "as-exported") == 2
    assert "log.ndjson:line 1:resourceType: [fhir-input] not FHIR NDJSON" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "as-exported").iterdir()] == ["tosdtm-problems.csv"]
    src = tmp_path / "in"  # the resources alone
    src.mkdir()
    for f in SYNTHEA.glob("*.000.ndjson"):
        (src / f.name).write_bytes(f.read_bytes())
    tmp_path = tmp_path / "out"
    code = tosdtm_command(src, tmp_path)
    assert "not converted" in capsys.readouterr().out
    assert code == 0
    report = pd.read_csv(tmp_path / "tosdtm-report.csv", dtype=str, keep_default_na=False)
    lines = {p.name: sum(1 for ln in p.read_text().splitlines() if ln.strip()) for p in SYNTHEA.glob("*.000.ndjson")}
    assert len(report) == sum(lines.values())  # one outcome per resource
    by_type = report.groupby(["resourceType", "status"]).size().to_dict()
    assert by_type == {
        ("Condition", "converted"): lines["Condition.000.ndjson"],
        ("MedicationRequest", "not converted"): lines["MedicationRequest.000.ndjson"],
        ("Patient", "converted"): lines["Patient.000.ndjson"],
        ("Procedure", "converted"): lines["Procedure.000.ndjson"],
    }
    assert set(report.loc[report["resourceType"] == "MedicationRequest", "reason"]) == {
        "no FHIR spec for MedicationRequest under mappings/fhir"
    }
    dm, _ = read_dataset_json(tmp_path / "dm.json")
    assert len(dm) == lines["Patient.000.ndjson"] and dm["USUBJID"].is_unique
    assert set(dm["SEX"]) <= {"M", "F"} and dm["BRTHDTC"].notna().all()
    assert {p.name for p in tmp_path.glob("*.xpt")} == {"dm.xpt", "mh.xpt", "pr.xpt"}


def _write(folder: Path, name: str, data: object) -> None:
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))


def test_bad_input_is_reported_and_nothing_else_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    good = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-04"}
    _write(src, "a-good.json", good)
    _write(src, "b-not-json.json", '{"resourceType": "Bundle", "entry": [')
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p2", "birthDate": "last spring"}},
            {
                "fullUrl": "urn:uuid:2",
                "resource": {
                    "resourceType": "AdverseEvent",
                    "actuality": "actual",
                    "subject": {"reference": "Patient/nobody"},
                },
            },
            {
                "fullUrl": "urn:uuid:3",
                "resource": {
                    "resourceType": "AdverseEvent",
                    "actuality": "actual",
                    "subject": {"reference": "Patient/p1"},
                    "seriousness": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                "code": "grave",
                            }
                        ]
                    },
                },
            },
        ],
    }
    _write(src, "c-bundle.json", bundle)
    code = tosdtm_command(src, tmp_path / "out")
    printed = capsys.readouterr()
    err = printed.err
    assert code == 2
    assert str(tmp_path / "out" / "tosdtm-problems.csv") in printed.out  # where the report is
    problems = pd.read_csv(tmp_path / "out" / "tosdtm-problems.csv", dtype=str, keep_default_na=False)
    rows = {(r.file, r.record, r.field, r.rule) for r in problems.itertuples()}
    assert ("b-not-json.json", "", "", "json") in rows  # a bundle that is not JSON
    assert ("c-bundle.json", "entry[0] urn:uuid:1", "birthDate", "fhir-r4-model") in rows  # fails R4 validation
    assert ("c-bundle.json", "entry[1] urn:uuid:2", "subject", "fhir-reference") in rows  # a subject not in the input
    assert ("c-bundle.json", "entry[2] urn:uuid:3", "seriousness", "fhir-code") in rows  # unknown code
    assert "problem(s) in the FHIR input; no datasets written, only the problem report" in err
    # every problem, and nothing else: no datasets, no per-resource report, no rows for a subject not in the input
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["tosdtm-problems.csv"]
    # the whole conversion in memory still gives an outcome for every resource
    res = _convert(src)
    status = {o.where: o.status for o in res.outcomes}
    assert status["entry[0] urn:uuid:1"] == "invalid" and status["entry[2] urn:uuid:3"] == "converted"


def test_sdtm_folder_reads_every_dataset(tmp_path: Path) -> None:
    """A dataset only as Dataset-JSON beside XPTs is read; one only as CSV is a problem, not passed over."""
    from converter.errors import InputError
    from converter.fhir.sdtm_dir import read_sdtm_dir, write_sdtm_dir

    dm = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["DM"], "USUBJID": ["S-1"]})
    xy = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["XY"], "USUBJID": ["S-1"], "XYSEQ": [1.0]})
    write_sdtm_dir({"DM": dm, "XY": xy}, tmp_path, {})
    (tmp_path / "xy.xpt").unlink()  # as when the XPT v5 rules refuse a dataset: Dataset-JSON only
    (tmp_path / "manifest.json").write_text('{"command": "inoconv tosdtm"}')  # the output folder's provenance
    (tmp_path / "tosdtm-report.csv").write_text("file,where\n")
    got = read_sdtm_dir(tmp_path)
    assert sorted(got) == ["DM", "XY"] and list(got["XY"]["XYSEQ"]) == [1.0]
    (tmp_path / "qs.csv").write_text("STUDYID,DOMAIN\nS,QS\n")
    with pytest.raises(InputError) as err:
        read_sdtm_dir(tmp_path)
    assert [(p.file, p.rule) for p in err.value.problems] == [("qs.csv", "input")]
