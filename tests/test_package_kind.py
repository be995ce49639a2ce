"""Every command refuses the wrong kind of input at once, with exit 2 and one sentence: what it expected, what it
found (never exit 3, never a traceback, nothing written). The kinds are told from names and first bytes only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converter.cli import app
from converter.io.package_kind import Found, describe, detect_kind, inspect_path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "nct01371630"
FHIR = Path(__file__).resolve().parent / "fixtures" / "fhir"

ODM_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" FileOID="x">\n'
DSJ_HEAD = {"datasetJSONCreationDateTime": "2024-01-01T00:00:00", "datasetJSONVersion": "1.1.0", "name": "DM"}


def _touch(folder: Path, *names: str, text: str = "x") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One input of every kind (names and first bytes are what counts: the datasets are not read)."""
    t = tmp_path_factory.mktemp("kinds")
    csv = t / "records-csv"
    shutil.copytree(EXAMPLE / "csv", csv)
    odm = t / "records.xml"
    odm.write_text(ODM_HEAD + "</ODM>\n", encoding="utf-8")
    sdtm = _touch(t / "sdtm", "dm.xpt", "ae.xpt", "ts.xpt", "define.xml")
    adam = _touch(t / "adam", "adsl.xpt", "adtte.xpt", "define.xml")
    sdtm_json = _touch(t / "sdtm-json", "dm.json", "ae.json", text=json.dumps(DSJ_HEAD))
    fhir = t / "fhir"
    shutil.copytree(FHIR / "hl7-r4-examples", fhir / "bundles")
    _touch(fhir / "ndjson", "Patient.ndjson", text='{"resourceType":"Patient","id":"p"}\n')
    run = t / "run"
    for name, src in (("sdtm", sdtm), ("adam", adam), ("fhir", fhir)):
        shutil.copytree(src, run / name)
    _touch(run / "report", "report.json", "report.md")
    report = _touch(t / "report", "report.json", "report.md", "index.html")
    findings = _touch(t / "validate", "findings.json", "findings.csv")
    empty = t / "empty"
    empty.mkdir()
    return {
        "records-csv": csv, "records-odm": odm, "sdtm": sdtm, "sdtm-json": sdtm_json, "adam": adam, "fhir": fhir,
        "fhir-ndjson": FHIR / "synthea-bulk", "fhir-file": FHIR / "hl7-r4-examples" / "patient-example.json",
        "run": run, "report": report, "findings": findings, "empty": empty, "one-xpt": sdtm / "dm.xpt",
        "specs": ROOT / "mappings", "missing": t / "no-such-folder",
    }  # fmt: skip


KIND_OF = {
    "records-csv": "records-csv", "records-odm": "records-odm", "sdtm": "sdtm", "sdtm-json": "sdtm", "adam": "adam",
    "fhir": "fhir", "fhir-ndjson": "fhir", "fhir-file": "fhir", "run": "run", "report": "report",
    "findings": "unknown", "empty": "unknown", "one-xpt": "unknown", "specs": "unknown", "missing": "missing",
}  # fmt: skip


def test_every_kind_is_told_apart(inputs: dict[str, Path]) -> None:
    assert set(KIND_OF) == set(inputs)
    got = {name: detect_kind(path) for name, path in inputs.items()}
    assert got == KIND_OF
    assert detect_kind(EXAMPLE / "odm" / "nct01371630.xml") == "records-odm"
    assert detect_kind(EXAMPLE / "odm") == "records-odm"  # a folder holding one ODM file
    assert inspect_path(inputs["adam"]).evidence == "ADSL, ADTTE as XPT"
    assert inspect_path(inputs["sdtm-json"]).evidence == "AE, DM as Dataset-JSON"


def test_mixed_and_part_folders(tmp_path: Path) -> None:
    assert detect_kind(_touch(tmp_path / "mixed", "dm.xpt", "adsl.xpt")) == "unknown"
    parts = tmp_path / "parts"
    _touch(parts / "DM", "part-00000.parquet")
    _touch(parts / "AE", "part-00000.parquet")
    assert inspect_path(parts) == Found("sdtm", "AE, DM as Parquet parts")


#: command -> (arguments after the input, the kinds it takes)
COMMANDS: dict[str, tuple[list[str], set[str]]] = {
    "sdtm": (["--out", "{out}"], {"records-csv", "records-odm"}),
    "stream": (["--out", "{out}"], {"records-csv", "records-odm"}),
    "adam": (["--out", "{out}"], {"sdtm"}),
    "report": (["--out", "{out}"], {"adam"}),
    "fhir": (["--out", "{out}"], {"sdtm"}),
    "roundtrip": ([], {"sdtm"}),
    "tosdtm": (["--out", "{out}"], {"fhir"}),
    "upload": (["--dry-run"], {"fhir"}),
    "validate": ([], {"sdtm", "adam", "fhir", "run"}),
}

CASES = [
    (cmd, name)
    for cmd, (_, takes) in COMMANDS.items()
    for name, kind in KIND_OF.items()
    if kind not in takes and kind != "missing"
]


@pytest.mark.parametrize(("command", "given"), CASES)
def test_wrong_input_is_exit_2_with_the_sentence(
    inputs: dict[str, Path], tmp_path: Path, command: str, given: str
) -> None:
    args, _ = COMMANDS[command]
    out = tmp_path / "out"
    argv = [command, str(inputs[given]), *(a.replace("{out}", str(out)) for a in args)]
    res = CliRunner().invoke(app, argv)
    text = " ".join(res.output.split())  # stdout and stderr (click >= 8.2), unwrapped
    assert res.exit_code == 2, (argv, res.exit_code, text[-2000:], res.exception)
    assert f"inoconv {command} expects " in text and "; found " in text, text[-2000:]
    assert f"; found {describe(inspect_path(inputs[given]))}" in text, text[-2000:]
    assert "Traceback" not in text and "internal error" not in text.lower()
    assert not out.exists()  # nothing written
