"""Hostile SDTM/ADaM folders: every reader of XPT and Dataset-JSON answers with the file and a clear rule,
exit 2, never a traceback; and no partial output is left behind. Values and labels holding control characters
are refused with file, row and field. Fixtures: the package `inoconv sdtm` makes of the bundled synthetic example,
and small XPT files written here."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pandas as pd
import pyreadstat
import pytest
from typer.testing import CliRunner

from converter.cli import app
from converter.errors import InputError
from converter.io.datasetjson import load_dataset_json, read_dataset_json
from converter.io.xpt import read_xpt
from converter.text import CONTROL_RULE, first_control

runner = CliRunner()


@pytest.fixture(scope="module")
def sdtm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pkg") / "sdtm"
    example = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "csv"
    result = runner.invoke(app, ["sdtm", str(example), "--out", str(out)])
    assert result.exit_code == 0, result.output[-2000:]
    return out


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "xpt"),
        (b"STUDYID,USUBJID\nX,Y\n", "xpt"),  # a CSV named .xpt
        (b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!000000000000000000000000000000  ", "xpt"),  # truncated
    ],
)
def test_xpt_reader_names_the_file(tmp_path: Path, content: bytes, rule: str) -> None:
    p = tmp_path / "ae.xpt"
    p.write_bytes(content)
    with pytest.raises(InputError) as exc:
        read_xpt(p)
    assert exc.value.problems[0].file == str(p) and exc.value.problems[0].rule == rule


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "dataset-json"),
        (b'{"datasetJSONVersion": "1.1.0", "rows": [', "json"),
        (b"\xff\xfe{\x00}\x00", "encoding"),  # UTF-16
        (b"name,label\nDM,Demographics\n", "json"),
        (b"[1, 2, 3]", "dataset-json"),
    ],
)
def test_dataset_json_reader_names_the_file(tmp_path: Path, content: bytes, rule: str) -> None:
    p = tmp_path / "dm.json"
    p.write_bytes(content)
    with pytest.raises(InputError) as exc:
        read_dataset_json(p)
    assert exc.value.problems[0].file == str(p)
    assert exc.value.problems[0].rule == rule


def test_bom_is_tolerated(sdtm_dir: Path, tmp_path: Path) -> None:
    p = tmp_path / "dm.json"
    p.write_bytes(b"\xef\xbb\xbf" + (sdtm_dir / "dm.json").read_bytes())
    df, _ = read_dataset_json(p)
    assert len(df) == 59


@pytest.mark.parametrize("command", ["adam", "fhir", "roundtrip"])
def test_commands_on_a_broken_package_exit_2_without_traceback(sdtm_dir: Path, tmp_path: Path, command: str) -> None:
    broken = tmp_path / "sdtm"
    shutil.copytree(sdtm_dir, broken)
    (broken / "ae.xpt").write_bytes((sdtm_dir / "ae.xpt").read_bytes()[:3000])
    (broken / "ae.json").unlink()
    args = [command, str(broken)] + ([] if command == "roundtrip" else ["--out", str(tmp_path / "out")])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output[-2000:]
    assert "ae.xpt" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------ control characters


def _xpt(tmp_path: Path, values: list[str], label: str = "Term") -> Path:
    p = tmp_path / "ae.xpt"
    frame = pd.DataFrame({"AETERM": values, "AESEQ": [float(i + 1) for i in range(len(values))]})
    pyreadstat.write_xport(frame, str(p), table_name="AE", column_labels=[label, "Sequence"], file_format_version=5)
    return p


def test_xpt_nul_inside_a_value_is_refused_not_truncated(tmp_path: Path) -> None:
    p = _xpt(tmp_path, ["HEADACHE", "NAUSEA", "FATIGUE"])
    assert read_xpt(p)[0]["AETERM"].tolist() == ["HEADACHE", "NAUSEA", "FATIGUE"]
    data = bytearray(p.read_bytes())
    data[data.index(b"HEADACHE") + 4] = 0  # pyreadstat alone reads "HEAD"
    data[data.index(b"FATIGUE") + 1] = 0x85  # a C1 control (latin-1 NEL)
    p.write_bytes(bytes(data))
    with pytest.raises(InputError) as exc:
        read_xpt(p)
    found = [(q.rule, q.record, q.field, q.value) for q in exc.value.problems]
    assert found == [
        (CONTROL_RULE, "row 1", "AETERM", "HEAD\\x00CHE"),
        (CONTROL_RULE, "row 3", "AETERM", "F\\x85TIGUE"),
    ]
    assert all(first_control(line) is None for line in exc.value.render().split("\n"))


def test_xpt_tab_and_labels_with_controls_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        read_xpt(_xpt(tmp_path, ["A\tB"]))
    assert [(q.record, q.field) for q in exc.value.problems] == [("row 1", "AETERM")]
    with pytest.raises(InputError) as exc:
        read_xpt(_xpt(tmp_path, ["AB"], label="Term\x1b[2J"))
    assert [(q.record, q.field, q.rule) for q in exc.value.problems] == [("label", "AETERM", CONTROL_RULE)]


@pytest.mark.parametrize("suffix", [".json", ".ndjson"])
def test_dataset_json_control_characters_are_refused(sdtm_dir: Path, tmp_path: Path, suffix: str) -> None:
    head, rows = load_dataset_json(sdtm_dir / "dm.json")
    names = [c["name"] for c in head["columns"]]
    k = names.index("USUBJID")
    rows[1][k] = rows[1][k] + "\x00X"
    rows[2][names.index("COUNTRY")] = "US\u009b"
    head["columns"][k]["label"] = "Unique Subject\x07Identifier"
    p = tmp_path / f"dm{suffix}"
    if suffix == ".json":
        p.write_bytes(orjson.dumps({**head, "rows": rows}))
    else:
        p.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in [head, *rows]))
    with pytest.raises(InputError) as exc:
        read_dataset_json(p)
    found = {(q.record, q.field) for q in exc.value.problems if q.rule == CONTROL_RULE}
    assert found == {("label", "USUBJID"), ("row 2", "USUBJID"), ("row 3", "COUNTRY")}
    assert all(first_control(line) is None for line in exc.value.render().split("\n"))
    ok = tmp_path / "tab.json"
    rows[1][k], rows[2][names.index("COUNTRY")] = "X\tY", "USA"
    head["columns"][k]["label"] = "Unique Subject Identifier"
    ok.write_bytes(orjson.dumps({**head, "rows": rows}))
    assert read_dataset_json(ok)[0]["USUBJID"].iloc[1] == "X\tY"  # tab: JSON holds it


def test_a_nul_in_a_package_stops_every_command_with_exit_2(sdtm_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "sdtm"
    shutil.copytree(sdtm_dir, broken)
    data = bytearray((broken / "dm.xpt").read_bytes())
    at = data.index(b"NCT01371630")
    data[at + 3] = 0
    (broken / "dm.xpt").write_bytes(bytes(data))
    (broken / "dm.json").unlink()
    before = {p.name: p.read_bytes() for p in broken.iterdir()}
    result = runner.invoke(app, ["adam", str(broken), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output[-2000:]
    assert "dm.xpt" in result.output and CONTROL_RULE in result.output and "\\x00" in result.output
    assert all(first_control(line) is None for line in result.output.split("\n"))
    assert {p.name: p.read_bytes() for p in broken.iterdir()} == before
