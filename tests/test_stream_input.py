"""``inoconv stream`` refuses bad input before it converts anything: the input's kind, then every CSV header
(unknown, missing, duplicated columns, not UTF-8) with the folder's structural problems, all at once, before a
row is spilled or a partition converted; nothing is left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from converter.engine.stream import run_stream
from converter.errors import InputError

EXAMPLE_CSV = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "csv"


def _copy(tmp_path: Path) -> Path:
    src = tmp_path / "records"
    shutil.copytree(EXAMPLE_CSV, src)
    return src


def _stream(src: Path, out: Path) -> tuple[InputError, list[str]]:
    said: list[str] = []
    with pytest.raises(InputError) as info:
        run_stream(src, out, workers=1, subjects_per_partition=20, fhir=False, rules=False, echo=said.append)
    return info.value, said


def test_every_header_problem_before_any_partition(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    demog = src / "DEMOG.csv"
    lines = demog.read_text(encoding="utf-8").splitlines(keepends=True)
    demog.write_text(lines[0].replace("SEX", "GENDER") + "".join(lines[1:]), encoding="utf-8")
    ae = src / "AE.csv"
    head, rest = ae.read_bytes().split(b"\n", 1)
    ae.write_bytes(head + b",AETERM\n" + rest)  # a duplicated column
    (src / "DEATH.csv").write_bytes(b"SUBJID,DTHDT\xff\n")  # not UTF-8 in the header
    err, said = _stream(src, tmp_path / "out")
    got = {(Path(p.file).name, p.field, p.rule) for p in err.problems}
    assert ("DEMOG.csv", "GENDER", "unknown-column") in got and ("DEMOG.csv", "SEX", "missing-column") in got
    assert ("AE.csv", "AETERM", "duplicate-column") in got
    assert ("DEATH.csv", "", "encoding") in got
    assert all(p.record in ("line 1", "") for p in err.problems)  # header problems only: no row was read
    assert not any("partition" in s or "spilling" in s for s in said), said
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == [src]


def test_the_wrong_kind_of_input_before_the_specs(tmp_path: Path) -> None:
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    (sdtm / "dm.xpt").write_bytes(b"not read")
    err, said = _stream(sdtm, tmp_path / "out")
    assert "inoconv stream expects patient records" in str(err) and "found an SDTM package (DM as XPT)" in str(err)
    assert said == [] and not (tmp_path / "out").exists()
