"""What inoconv prints on stdout never carries a raw control character: paths and values are the user's, and a
folder name holding ESC or BEL is shown escaped (converter/text.py escape_controls), never obeyed by the terminal.

Data: a 3-subject cohort made here by ``inoconv simulate`` (synthetic), and two synthetic FHIR Patients.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from converter.cli import app
from converter.text import first_control

runner = CliRunner()


def _clean(output: str) -> None:
    assert first_control(output.replace("\n", ""), allow_tab=False) is None, repr(output)


def test_a_control_character_in_folder_names_is_printed_escaped(tmp_path: Path) -> None:
    cohort = tmp_path / "co\x1b[31mhort"
    res = runner.invoke(app, ["simulate", "--n", "3", "--seed", "1", "--format", "csv", "--out", str(cohort)])
    assert res.exit_code == 0, res.output
    assert "co\\x1b[31mhort" in res.output
    _clean(res.output)

    sdtm = tmp_path / "sd\x07tm"
    res = runner.invoke(app, ["sdtm", str(cohort), "--out", str(sdtm)])
    assert res.exit_code == 0, res.output
    assert "sd\\x07tm" in res.output and "Source records accounted for" in res.output
    _clean(res.output)

    res = runner.invoke(app, ["verify", str(sdtm)])
    assert res.exit_code == 0, res.output
    assert "sd\\x07tm" in res.output
    _clean(res.output)

    res = runner.invoke(app, ["validate", str(sdtm)])
    assert "sd\\x07tm" in res.output
    _clean(res.output)

    fhir = tmp_path / "fh\x1b]0;titleir"
    res = runner.invoke(app, ["fhir", str(sdtm), "--out", str(fhir)])
    assert res.exit_code == 0, res.output
    _clean(res.output)
    res = runner.invoke(app, ["upload", str(fhir), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "dry run:" in res.output
    _clean(res.output)


def test_tosdtm_tables_and_paths_escaped(tmp_path: Path) -> None:
    src = tmp_path / "fh\rir"
    src.mkdir()
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female",
               "identifier": [{"system": "urn:inoconv:nct1:usubjid", "value": "S-1"}]}  # fmt: skip
    (src / "Patient.ndjson").write_bytes(orjson.dumps(patient) + b"\n")
    out = tmp_path / "o\tut"
    res = runner.invoke(app, ["tosdtm", str(src), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "resource type" in res.output  # the table is printed, line breaks kept
    _clean(res.output)
    res = runner.invoke(app, ["roundtrip", str(out)])
    _clean(res.output)
    bad = dict(
        patient, id="p2", gender="fe\u0007male", identifier=[{"system": "urn:inoconv:nct1:usubjid", "value": "S-2"}]
    )
    (src / "Patient.ndjson").write_bytes(orjson.dumps(patient) + b"\n" + orjson.dumps(bad) + b"\n")
    res = runner.invoke(app, ["tosdtm", str(src), "--out", str(tmp_path / "o\tut2")])
    assert res.exit_code == 2, res.output
    assert "o\\x09ut2/tosdtm-problems.csv" in res.output  # the problem report's path, its tab escaped
    _clean(res.output)
