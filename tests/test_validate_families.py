"""validate_folder by families (what ``inoconv run`` does: FHIR and the round trip beside the SDTM and ADaM rules):
the findings of the parts, in the families' order, are those of one call."""

from __future__ import annotations

from pathlib import Path

import pytest
from mini_records import mini_records
from test_validate_folder import write

from converter.validate.folder import FAMILIES, validate_folder


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converter.fhir.commands import fhir_command
    from converter.sdtm.pipeline import records_to_sdtm

    run = tmp_path_factory.mktemp("families") / "run"
    write(records_to_sdtm(mini_records()), run / "sdtm")
    assert fhir_command(run / "sdtm", run / "fhir", False, lambda _m: None) in (0, None)
    return run


def test_the_parts_put_together_are_the_whole(run_folder: Path) -> None:
    whole = validate_folder(run_folder)
    assert whole, "the mini study gives findings (else this test shows nothing)"
    parts = [validate_folder(run_folder, families=(f,)) for f in FAMILIES]
    assert [f for part in parts for f in part] == whole
    assert (
        validate_folder(run_folder, families=("sdtm", "adam"))
        + validate_folder(run_folder, families=("fhir", "roundtrip"))
        == whole
    )


def test_round_trip_findings_name_the_same_files_without_the_sdtm_rules(
    run_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import converter.fhir.roundtrip as rt

    class Lossy:  # the mini study's round trip is lossless: one finding per kind, as a lossy one would give
        def findings(self) -> list[dict[str, str]]:
            return [
                {"rule": "roundtrip-value", "dataset": "DM", "variable": "AGE", "message": "1 value differs"},
                {"rule": "roundtrip-not-carried", "dataset": "TA", "variable": "", "message": "not carried"},
                {"rule": "fhir-problem", "dataset": "", "variable": "", "message": "a problem"},
            ]

    monkeypatch.setattr(rt, "roundtrip_folder", lambda _sdtm, *_written: Lossy())
    alone = validate_folder(run_folder, families=("roundtrip",))
    whole = validate_folder(run_folder)
    assert whole[-3:] == alone
    assert [(f.rule_id, f.file) for f in alone] == [
        ("INO-RT-001", "sdtm/dm.xpt"), ("INO-RT-003", "sdtm/ta.xpt"), ("INO-RT-001", "sdtm"),
    ]  # fmt: skip


def test_nothing_to_validate_is_said_once(tmp_path: Path) -> None:
    assert [f.rule_id for f in validate_folder(tmp_path, families=("sdtm", "adam"))] == ["INO-PKG-001"]
    assert validate_folder(tmp_path, families=("fhir", "roundtrip")) == []
    with pytest.raises(ValueError, match="unknown validation families"):
        validate_folder(tmp_path, families=("sdtm", "define"))
