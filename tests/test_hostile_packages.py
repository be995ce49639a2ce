"""Hostile SDTM/ADaM folders: every reader of XPT and Dataset-JSON answers with the file and a clear rule,
exit 2, never a traceback; and no partial output is left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converter.cli import app
from converter.errors import InputError
from converter.io.datasetjson import read_dataset_json
from converter.io.xpt import read_xpt

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
