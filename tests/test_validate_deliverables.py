"""``inoconv validate`` reads every deliverable it finds and says which file each finding is about: a Dataset-JSON
that is broken or says other than the XPT beside it is an error on the ``.json``; the FHIR and round-trip checks
run for real, and a check that cannot run is an error, never "skipped". Fixtures: the mini cohort of
``tests/mini_records.py`` (synthetic), written as a package and then damaged here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mini_records import mini_records
from test_validate_folder import write

from converter.validate import folder as vfolder
from converter.validate.findings import FIELDS, Finding, csv_text, render_table, write_reports
from converter.validate.folder import validate_folder


@pytest.fixture(scope="module")
def sdtm():  # type: ignore[no-untyped-def]
    from converter.sdtm.pipeline import records_to_sdtm

    return records_to_sdtm(mini_records())


@pytest.fixture
def run(sdtm, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    write(sdtm, tmp_path / "run" / "sdtm")
    return tmp_path / "run"


def _edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _col(doc: dict[str, Any], name: str) -> int:
    return next(i for i, c in enumerate(doc["columns"]) if c["name"] == name)


def _found(findings: list[Finding]) -> set[tuple[str, str, str, str]]:
    return {(f.rule_id, f.file, f.dataset, f.variable) for f in findings if f.severity == "error"}


def test_the_clean_package_has_no_findings_and_names_files(run: Path) -> None:
    found = validate_folder(run)
    # no errors; what remains are warnings of the standard level (SDTMIG 3.4 where the trial's specs differ from
    # it) and of the content rules, each naming the file it is about
    assert [f for f in found if f.severity == "error"] == []
    assert all(f.file.startswith("sdtm/") for f in found if f.dataset), found
    assert (run / "sdtm" / "ae.xpt").is_file() and (run / "sdtm" / "ae.json").is_file()


def test_dataset_json_that_differs_from_its_xpt(run: Path) -> None:
    ae = run / "sdtm" / "ae.json"

    def change(doc: dict[str, Any]) -> None:
        j = _col(doc, "AETERM")
        doc["rows"][1][j] = "SOMETHING ELSE"
        doc["columns"][_col(doc, "AEDECOD")]["label"] = "Another label"
        doc["columns"][j]["length"] = doc["columns"][j]["length"] + 5

    _edit(ae, change)
    _edit(run / "sdtm" / "dm.json", lambda d: (d["rows"].pop(), d.update(records=d["records"] - 1)))
    findings = validate_folder(run)
    assert {
        ("INO-PKG-005", "sdtm/ae.json", "AE", "AETERM"),  # a value and a length
        ("INO-PKG-005", "sdtm/ae.json", "AE", "AEDECOD"),  # a label
        ("INO-PKG-005", "sdtm/dm.json", "DM", ""),  # a row fewer
    } <= _found(findings)
    value = next(f for f in findings if f.variable == "AETERM" and "differ" in f.message)
    assert value.row == 2 and "'SOMETHING ELSE' in the Dataset-JSON" in value.message
    # the rules themselves ran on the XPT, and say so
    assert all(f.file.endswith(".json") for f in findings if f.rule_id == "INO-PKG-005")


def test_dataset_json_that_is_broken(run: Path) -> None:
    (run / "sdtm" / "ex.json").write_text('{"datasetJSONVersion": "1.1.0", "columns": [', encoding="utf-8")
    _edit(run / "sdtm" / "lb.json", lambda d: d.pop("itemGroupOID"))
    found = _found(validate_folder(run))
    assert ("INO-PKG-002", "sdtm/ex.json", "EX", "") in found  # not readable at all
    assert ("INO-PKG-006", "sdtm/lb.json", "LB", "") in found  # breaks the Dataset-JSON 1.1 rules


def test_a_type_difference(run: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        j = _col(doc, "AESEQ")
        doc["columns"][j].update(dataType="string", length=8)
        for r in doc["rows"]:
            r[j] = str(r[j])

    _edit(run / "sdtm" / "ae.json", change)
    findings = [f for f in validate_folder(run) if f.rule_id == "INO-PKG-005"]
    assert [f.message for f in findings] == ["AESEQ is character in the Dataset-JSON, numeric in the XPT"]


def test_fhir_problems_name_their_file(run: Path) -> None:
    nd = run / "fhir" / "ndjson"
    nd.mkdir(parents=True)
    (nd / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n{"resourceType": "Pat\n')
    found = _found(validate_folder(run, roundtrip=False))
    assert found == {("INO-FHIR-006", "fhir/ndjson/Patient.ndjson", "", "")}  # found under fhir/ndjson/ too


def test_a_check_that_cannot_run_is_an_error(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import converter.fhir.resource_checks as rc
    import converter.fhir.roundtrip as rt

    (run / "fhir").mkdir()
    (run / "fhir" / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')

    def broken(*_a: Any) -> Any:
        raise RuntimeError("the models are not installed")

    monkeypatch.setattr(rc, "read_and_validate", broken)  # what validate_folder calls (validate_fhir_folder too)
    monkeypatch.setattr(rt, "roundtrip_folder", broken)
    findings = validate_folder(run)
    failed = {(f.rule_id, f.severity, f.file) for f in findings}
    assert ("INO-FHIR-005", "error", "fhir") in failed
    assert ("INO-RT-002", "error", "sdtm") in failed
    assert not [f for f in findings if f.rule_id == "INO-PKG-003"]  # nothing "skipped"
    assert not hasattr(vfolder, "_call_first") and not hasattr(vfolder, "_import")


def test_a_dataset_the_round_trip_does_not_carry(run: Path) -> None:
    from converter.fhir.sdtm_dir import write_sdtm_dir

    xy = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["XY"], "USUBJID": ["S-1"], "XYSEQ": [1.0]})
    write_sdtm_dir({"XY": xy}, run / "sdtm", {})
    found = _found(validate_folder(run))
    assert ("INO-RT-003", "sdtm/xy.xpt", "XY", "") in found


def test_reports_have_a_file_column(tmp_path: Path) -> None:
    f = Finding("INO-PKG-005", "error", "AE", "AETERM", "", 2, "1 value(s) differ", 1, file="sdtm/ae.json")
    assert FIELDS[:4] == ("rule_id", "severity", "file", "dataset")
    assert csv_text([f]).splitlines()[1].startswith("INO-PKG-005,error,sdtm/ae.json,AE,AETERM")
    write_reports([f], tmp_path)
    doc = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    assert doc["findings"][0]["file"] == "sdtm/ae.json" and list(doc["findings"][0])[:3] == list(FIELDS[:3])
    table = render_table([f])
    assert table.splitlines()[0].split()[:4] == ["severity", "rule", "file", "dataset"]
    assert "sdtm/ae.json" in table


def test_specs_that_cannot_load_are_an_error(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import converter.sdtm.pipeline as pipeline
    from converter.errors import SpecError

    def broken() -> Any:
        raise SpecError(["mappings/sdtm/dm.yaml: not a mapping"])

    monkeypatch.setattr(pipeline, "load_sdtm_specs", broken)
    found = [f for f in validate_folder(run, roundtrip=False) if f.rule_id == "INO-PKG-004"]
    assert [(f.severity, f.message) for f in found] == [
        ("error", "SDTM specs/CT not loaded (mappings/sdtm/dm.yaml: not a mapping); the spec-based rules could not run")
    ]
