"""Hostile values in the record readers (CSV folder, ODM file, and the streaming ODM slices): every value holding
a control character is refused with file, record and field (the one rule of converter/text.py), never read
silently changed, and no message prints a control character raw. Fixtures: the synthetic records of
tests/records_factory.py (made for these tests, no licence restriction)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest
from records_factory import small_records
from typer.testing import CliRunner

from converter.cli import app
from converter.errors import InputError, Problem
from converter.records import odm
from converter.records.model import frames_equal
from converter.records.schema import load_forms
from converter.records.sources import read_records, write_records
from converter.text import CONTROL_RULE, first_control

STAMP = "2024-01-01T00:00:00+00:00"
runner = CliRunner()


@pytest.fixture(scope="module")
def small() -> dict[str, pd.DataFrame]:
    return small_records()


@pytest.fixture()
def csv_dir(tmp_path: Path, small: dict[str, pd.DataFrame]) -> Path:
    path = tmp_path / "records"
    write_records(small, path, "csv")
    return path


@pytest.fixture()
def odm_file(tmp_path: Path, small: dict[str, pd.DataFrame]) -> Path:
    path = tmp_path / "records.xml"
    write_records(small, path, "odm", creation_datetime=STAMP)
    return path


def refused(path: Path) -> tuple[list[Problem], str]:
    with pytest.raises(InputError) as err:
        read_records(path)
    text = err.value.render()
    assert all(first_control(line) is None for line in text.split("\n")), "a control character printed raw"
    return err.value.problems, text


def controls(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.rule == CONTROL_RULE]


def test_nul_in_csv_is_refused_rather_than_merging_two_subjects(csv_dir: Path) -> None:
    # pandas' C parser reads "1001<NUL>2" as "1001": subject 1002 would silently become a second 1001
    path = csv_dir / "ENROL.csv"
    data = path.read_bytes()
    assert b"\n1002," in data
    path.write_bytes(data.replace(b"\n1002,", b"\n1001\x002,"))
    problems, text = refused(csv_dir)
    found = controls(problems)
    assert [(p.file, p.record, p.field) for p in found] == [(str(path), "row 2", "SUBJID")]
    assert found[0].value == "1001\\x002" and "\\x00" in text
    assert not [p for p in problems if p.rule == "duplicate-key"], "read as a merged subject"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("A\x1b[31mB", "\\x1b"),  # an ANSI escape: a terminal would obey it
        ("A\x7fB", "\\x7f"),  # DEL
        ("A\u0085B", "\\x85"),  # C1 (NEL)
        ('"A\nB"', "\\x0a"),  # a line end inside a quoted value
        ('"A\r\nB"', "\\x0d"),
        ("A\x0bB", "\\x0b"),
    ],
)
def test_csv_control_characters_are_refused_with_row_and_field(csv_dir: Path, value: str, shown: str) -> None:
    path = csv_dir / "AE.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split(",")
    cells = lines[1].split(",")  # the first record has no quoted field
    k = header.index("AETERM")
    cells[k] = value
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines), encoding="utf-8", newline="")
    problems, _ = refused(csv_dir)
    (p,) = controls(problems)
    assert (p.file, p.record, p.field) == (str(path), "row 1", "AETERM")
    assert shown in p.value and shown in p.message


def test_tab_is_allowed_in_csv_and_odm(tmp_path: Path, small: dict[str, pd.DataFrame]) -> None:
    recs = {k: v.copy() for k, v in small.items()}
    recs["AE"].loc[0, "AETERM"] = "Nausea\tgrade 2"
    write_records(recs, tmp_path / "c", "csv")
    write_records(recs, tmp_path / "o.xml", "odm", creation_datetime=STAMP)
    for path in (tmp_path / "c", tmp_path / "o.xml"):
        assert frames_equal(recs, read_records(path)) == []


@pytest.mark.parametrize(
    ("value", "shown"),
    [("A&#10;B", "\\x0a"), ("A&#13;B", "\\x0d"), ("A\x7fB", "\\x7f"), ("A\u009bB", "\\x9b")],
)
def test_odm_control_characters_are_refused(odm_file: Path, value: str, shown: str) -> None:
    text = odm_file.read_text(encoding="utf-8")
    anchor = 'ItemOID="IT.AE.AETERM" Value="'
    at = text.index(anchor) + len(anchor)
    odm_file.write_text(text[:at] + value + text[at:], encoding="utf-8")
    problems, _ = refused(odm_file)
    (p,) = controls(problems)
    assert p.file == str(odm_file) and p.field == "AETERM"
    assert p.record.startswith("line ") and "SubjectKey=1001" in p.record
    assert shown in p.value


def test_odm_control_characters_in_keys_and_element_by_element(odm_file: Path) -> None:
    text = odm_file.read_text(encoding="utf-8")
    # a SubjectKey with a C1 control, and (another subject) an item spelled Value-first: read element by element
    text = text.replace('SubjectKey="1002"', 'SubjectKey="10\u008502"', 1)
    anchor = '<ItemData ItemOID="IT.AE.AETERM" Value="'
    at = text.rindex(anchor)
    end = text.index('"/>', at + len(anchor))
    term = text[at + len(anchor) : end]
    text = text[:at] + f'<ItemData Value="{term}&#10;x" ItemOID="IT.AE.AETERM"/>' + text[end + 3 :]
    odm_file.write_text(text, encoding="utf-8")
    problems, _ = refused(odm_file)
    found = {(p.field, p.value) for p in controls(problems)}
    assert ("SUBJID", "10\\x8502") in found
    assert ("AETERM", f"{term}\\x0ax") in found


def test_odm_slices_refuse_control_characters(odm_file: Path) -> None:
    text = odm_file.read_text(encoding="utf-8")
    anchor = 'ItemOID="IT.AE.AETERM" Value="'
    at = text.index(anchor) + len(anchor)
    odm_file.write_text(text[:at] + "A\x7f" + text[at:], encoding="utf-8")
    schema = load_forms()
    found = [p for sl in odm.odm_slices(odm_file, 1) for p in odm.read_odm_slice(sl, schema).problems]
    assert [(p.rule, p.field) for p in found] == [(CONTROL_RULE, "AETERM")]


def test_cli_names_the_value_escaped_and_exits_2(csv_dir: Path, tmp_path: Path) -> None:
    path = csv_dir / "ENROL.csv"
    path.write_bytes(path.read_bytes().replace(b"\n1002,", b"\n10\x1b]0;owned\x0702,"))
    before = {p.name: p.read_bytes() for p in csv_dir.iterdir()}
    result = runner.invoke(app, ["sdtm", str(csv_dir), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output[-2000:]
    assert "ENROL.csv:row 2" in result.output and "\\x1b]0;owned\\x07" in result.output
    assert all(first_control(line) is None for line in result.output.split("\n"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert {p.name: p.read_bytes() for p in csv_dir.iterdir()} == before


def test_error_messages_never_hold_raw_control_characters() -> None:
    from converter.errors import ConformanceError, SpecError, problem

    err = InputError([problem("a\x1bb.csv", "row 1", "X", "v\x00", "rule", "bad \x07 thing")], context="dir\x9b/")
    assert all(first_control(line) is None for line in err.render().split("\n"))
    assert "dir\\x9b/" in err.render() and "a\\x1bb.csv" in err.render() and "v\\x00" in err.render()
    for exc in (SpecError(["spec\x1b[2J.yaml: bad", "two\nlines"]), ConformanceError(["value 'a\x00b'"])):
        assert all(first_control(line) is None for m in exc.messages for line in m.split("\n"))
    assert SpecError(["two\nlines"]).messages == ["two\nlines"]  # line breaks stay line breaks


def test_stream_refuses_control_characters_too(csv_dir: Path, odm_file: Path, tmp_path: Path) -> None:
    path = csv_dir / "ENROL.csv"
    path.write_bytes(path.read_bytes().replace(b"\n1002,", b"\n1001\x002,"))
    result = runner.invoke(app, ["stream", str(csv_dir), "--out", str(tmp_path / "s1"), "--workers", "1"])
    assert result.exit_code == 2, result.output[-2000:]
    assert "ENROL.csv:row 2:SUBJID: [control-character]" in result.output and "1001\\x002" in result.output
    text = odm_file.read_text(encoding="utf-8")
    anchor = 'ItemOID="IT.AE.AETERM" Value="'
    at = text.index(anchor) + len(anchor)
    odm_file.write_text(text[:at] + "\u0085" + text[at:], encoding="utf-8")
    result = runner.invoke(app, ["stream", str(odm_file), "--out", str(tmp_path / "s2"), "--workers", "1"])
    assert result.exit_code == 2, result.output[-2000:]
    assert ":AETERM: [control-character]" in result.output and "\\x85" in result.output


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed (extra [spark])")
@pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime for Spark")
def test_spark_stream_refuses_control_characters_as_the_local_engine_does(csv_dir: Path, tmp_path: Path) -> None:
    # Spark's default reader spills the CSV files in Python tasks, as the local engine does: the same problems, with
    # the same files, rows, fields and values
    path = csv_dir / "ENROL.csv"
    path.write_bytes(path.read_bytes().replace(b"\n1002,", b"\n1002\x1b,").replace(b"Kantarjian", b"Kan\x00t", 1))

    outputs: list[str] = []

    def problems(engine: str) -> list[str]:
        args = ["stream", str(csv_dir), "--engine", engine, "--subjects", "30", "--out", str(tmp_path / engine)]
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output[-2000:]
        outputs.append(result.output)
        return sorted(line.strip() for line in result.output.split("\n") if "[control-character]" in line)

    found = problems("spark")
    assert found == problems("local"), found
    assert any(f"{path.name}:row " in line and ":SUBJID: [control-character]" in line and "\\x1b" in line
               for line in found), found  # fmt: skip
    assert any(":INVNAM: [control-character]" in line and "\\x00" in line for line in found), found
    assert all(first_control(line) is None for out in outputs for line in out.split("\n"))
