"""validate on a folder with ``sdtm/`` and the ``fhir/`` that ``inoconv fhir`` wrote from it: the round trip
converts the delivered FHIR back (the resources the FHIR check read, when it ran in the same call) and compares it
with ``sdtm/``. On a clean folder that is the round trip of a FHIR built in memory; a value or a row that the
delivered files lose is found, with or without the FHIR check in the call; a ``fhir/`` folder in no layout of
``inoconv fhir`` leaves the round trip to build its own. Fixture: the mini cohort of ``tests/mini_records.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from mini_records import mini_records
from test_validate_folder import write

from converter.fhir.roundtrip import roundtrip_folder
from converter.validate.folder import detect, validate_folder, written_fhir


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converter.fhir.commands import fhir_command
    from converter.sdtm.pipeline import records_to_sdtm

    run = tmp_path_factory.mktemp("written") / "run"
    write(records_to_sdtm(mini_records()), run / "sdtm")
    assert fhir_command(run / "sdtm", run / "fhir", False, lambda _m: None) in (0, None)
    return run


@pytest.fixture
def run(written: Path, tmp_path: Path) -> Path:
    shutil.copytree(written, tmp_path / "run")
    return tmp_path / "run"


def _edit_bundle(run: Path, name: str, change: Any) -> None:
    path = run / "fhir" / "bundles" / name
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def _rt(findings: list[Any]) -> list[tuple[str, str, str, str]]:
    return [(f.rule_id, f.file, f.dataset, f.variable) for f in findings if f.rule_id.startswith("INO-RT")]


def test_the_written_fhir_gives_the_round_trip_of_a_built_one(written: Path) -> None:
    assert written_fhir(detect(written)) == written / "fhir"
    built = roundtrip_folder(written / "sdtm")
    delivered = roundtrip_folder(written / "sdtm", written / "fhir")
    assert delivered.render() == built.render()
    assert delivered.findings() == built.findings() == []
    assert delivered.ok and delivered.variables and delivered.datasets
    assert delivered.resources.pop("Provenance") == 3  # the stage's Provenance, one per Bundle: derived, not data
    assert delivered.resources == built.resources


def test_a_value_and_a_row_the_delivered_fhir_loses_are_found(run: Path) -> None:
    def lose(doc: dict[str, Any]) -> None:
        entries = doc["entry"]
        patient = next(e["resource"] for e in entries if e["resource"]["resourceType"] == "Patient")
        del patient["birthDate"]  # DM.BRTHDTC
        doc["entry"] = [e for e in entries if e["resource"]["resourceType"] != "AdverseEvent"]

    _edit_bundle(run, "NCT01371630-1001.json", lose)
    whole = validate_folder(run)
    found = _rt(whole)
    assert ("INO-RT-001", "sdtm/dm.xpt", "DM", "BRTHDTC") in found
    assert ("INO-RT-001", "sdtm/ae.xpt", "AE", "") in found  # the subject's AE rows: missing
    msg = next(f.message for f in whole if f.dataset == "DM" and f.variable == "BRTHDTC")
    assert msg.startswith("1 of 2 value(s) differ")
    # the FHIR check sees valid R4 (only the Provenance's references to the AdverseEvents, dangling); the round
    # trip alone (reading fhir/ itself) finds the same as with the FHIR check's resources
    fhir = {f.rule_id for f in validate_folder(run, families=("fhir",)) if f.severity == "error"}
    assert fhir == {"INO-FHIR-002"}
    alone = validate_folder(run, families=("roundtrip",))
    assert alone == [f for f in whole if f.rule_id.startswith("INO-RT")]
    # the standalone round trip of sdtm/ builds its own FHIR: lossless, as before
    assert roundtrip_folder(run / "sdtm").ok


def test_fhir_written_from_other_sdtm_is_found(run: Path) -> None:
    from converter.fhir.sdtm_dir import read_sdtm_dir, write_sdtm_dir

    dm = read_sdtm_dir(run / "sdtm")["DM"]
    dm.loc[0, "COUNTRY"] = "XXX" if dm.loc[0, "COUNTRY"] != "XXX" else "YYY"
    for p in run.glob("sdtm/dm.*"):
        p.unlink()
    write_sdtm_dir({"DM": dm}, run / "sdtm", {})
    assert ("INO-RT-001", "sdtm/dm.xpt", "DM", "COUNTRY") in _rt(validate_folder(run, families=("roundtrip",)))


def test_fhir_in_no_layout_of_inoconv_fhir_is_not_what_the_round_trip_reads(run: Path) -> None:
    shutil.rmtree(run / "fhir")
    (run / "fhir").mkdir()
    (run / "fhir" / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n')
    assert written_fhir(detect(run)) is None
    assert _rt(validate_folder(run, families=("roundtrip",))) == []  # built its own: lossless
