"""``inoconv verify DIR``: an output folder re-hashed against its manifest.json (converter/io/manifest.py).

Data: the SDTM package made from the first 4 subjects of the bundled synthetic example
(examples/nct01371630/csv; synthetic, no licence question), written by the CLI.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converter.cli import app

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "csv"


def invoke(*args: str | Path) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SDTM folder written by inoconv (kept pristine: tests work on copies)."""
    root = tmp_path_factory.mktemp("verify")
    csv = root / "csv"
    csv.mkdir()
    keep = {line.split(",", 1)[0] for line in (EXAMPLE / "DEMOG.csv").read_text().splitlines()[1:5]}
    for form in sorted(EXAMPLE.glob("*.csv")):
        lines = form.read_text(encoding="utf-8").splitlines()
        rows = [r for r in lines[1:] if r.split(",", 1)[0] in keep]
        (csv / form.name).write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    code, text = invoke("sdtm", csv, "--out", root / "sdtm")
    assert code == 0, text[-2000:]
    return root / "sdtm"


@pytest.fixture()
def folder(sealed: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "sdtm"
    shutil.copytree(sealed, copy)
    return copy


def test_intact_folder_exit_0(folder: Path) -> None:
    code, text = invoke("verify", folder)
    assert code == 0, text
    n = len(json.loads((folder / "manifest.json").read_text())["outputs"])
    assert f"{n} of {n} files re-hashed: intact" in text
    assert "inoconv 0." in text and "sdtm" in text


def test_a_one_byte_change_is_found(folder: Path) -> None:
    target = folder / "dm.xpt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit of one byte
    target.write_bytes(bytes(data))
    code, text = invoke("verify", folder)
    assert code == 1
    assert "changed: dm.xpt" in text and "1 changed, 0 missing, 0 added" in text


def test_an_added_file_is_found(folder: Path) -> None:
    (folder / "extra.csv").write_text("a,b\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "deeper.txt").write_text("x")
    code, text = invoke("verify", folder)
    assert code == 1
    assert "added:   extra.csv" in text and "added:   sub/deeper.txt" in text


def test_a_missing_file_is_found(folder: Path) -> None:
    (folder / "define.xml").unlink()
    code, text = invoke("verify", folder)
    assert code == 1
    assert "missing: define.xml" in text and "0 changed, 1 missing, 0 added" in text


def test_a_file_replaced_by_a_folder_is_missing_and_its_content_added(folder: Path) -> None:
    (folder / "ae.json").unlink()
    (folder / "ae.json").mkdir()
    (folder / "ae.json" / "x").write_text("x")
    code, text = invoke("verify", folder)
    assert code == 1 and "missing: ae.json" in text and "added:   ae.json/x" in text


def test_a_folder_without_manifest_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    code, text = invoke("verify", tmp_path)
    assert code == 2 and "has no inoconv manifest.json" in text and str(tmp_path) in text
    (tmp_path / "manifest.json").write_text('{"not": "ours"}')
    code, text = invoke("verify", tmp_path)
    assert code == 2 and "has no inoconv manifest.json" in text


def test_a_missing_folder_is_exit_2(tmp_path: Path) -> None:
    code, text = invoke("verify", tmp_path / "nope")
    assert code == 2 and f"No such file or folder: {tmp_path / 'nope'}" in text


def test_verify_reads_nothing_but_hashes(folder: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert invoke("verify", folder)[0] == 0
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # verify writes nothing


def test_verify_folder_api(folder: Path) -> None:
    from converter.io.manifest import verify_folder

    rep = verify_folder(folder)
    assert rep is not None and rep.intact and rep.checked == len(rep.manifest.outputs)
    (folder / "ts.json").write_text("{}")
    rep = verify_folder(folder)
    assert rep is not None and rep.changed == ["ts.json"] and not rep.intact
    assert verify_folder(folder.parent) is None  # no manifest there
