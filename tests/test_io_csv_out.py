"""Every CSV written for people neutralises spreadsheet formulas (OWASP CSV Injection): the writer functions of
converter/io/csv_out.py, and the files the commands write through them (validate/findings.csv). Fixtures: made
here, and the package `inoconv sdtm` makes of the bundled synthetic example."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from converter.io.csv_out import dict_writer, neutralise, neutralise_column, write_frame, writer
from converter.validate.findings import Finding, csv_text

HOSTILE = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1", "-", "="]
KEPT = ["-1.5", "+3", "-2.5e-05", "12", ".5", "abc", "", "a=b", "'=already text"]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_starts_are_written_as_text(value: str) -> None:
    assert neutralise(value) == "'" + value


@pytest.mark.parametrize("value", KEPT)
def test_numbers_and_plain_text_stay_as_they_are(value: str) -> None:
    assert neutralise(value) == value


def test_non_text_cells_are_left_to_the_csv_module() -> None:
    assert neutralise(-1) == -1 and neutralise(-1.5) == -1.5 and neutralise(None) is None


def test_writers_and_frames_agree() -> None:
    buf = io.StringIO()
    w = writer(buf)
    w.writerow(["a", "b"])
    w.writerows([[v, 1] for v in HOSTILE + KEPT])
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    assert [r[0] for r in rows[1:]] == [neutralise(v) for v in HOSTILE + KEPT]
    buf = io.StringIO()
    d = dict_writer(buf, fieldnames=["a"])
    d.writeheader()
    d.writerows({"a": v} for v in HOSTILE)
    d.writerow({"a": "-7"})
    assert list(csv.reader(io.StringIO(buf.getvalue(), newline=""))) == [["a"], *[["'" + v] for v in HOSTILE], ["-7"]]
    col = pd.Series(HOSTILE + KEPT + [None], dtype=object)
    assert neutralise_column(col).tolist() == [neutralise(v) for v in HOSTILE + KEPT] + [None]
    numbers = pd.Series([-1.5, 2.0])
    assert neutralise_column(numbers) is numbers


def test_write_frame(tmp_path: Path) -> None:
    frame = pd.DataFrame({"TERM": ["=1+1", "NAUSEA", None], "DY": [-3.0, 2.0, None], "TXT": ["-3", "@x", "ok"]})
    write_frame(frame, tmp_path / "x.csv")
    back = pd.read_csv(tmp_path / "x.csv", dtype=str, keep_default_na=False)
    assert back["TERM"].tolist() == ["'=1+1", "NAUSEA", ""]
    assert back["DY"].tolist() == ["-3.0", "2.0", ""] and back["TXT"].tolist() == ["-3", "'@x", "ok"]
    assert frame["TERM"].iloc[0] == "=1+1"  # the caller's frame is not changed


def test_findings_csv_neutralises_text_from_the_data() -> None:
    f = Finding(rule_id="CORE-000001", severity="error", dataset="AE", variable="AETERM", subject="=1+1",
                row=3, message="@SUM(A1) is not a term", file="-ae.xpt")  # fmt: skip
    text = csv_text([f])
    assert text.startswith("\ufeff") or text.split("\r\n")[0]
    row = next(iter(csv.DictReader(io.StringIO(text.lstrip("\ufeff")))))
    assert row["subject"] == "'=1+1" and row["message"] == "'@SUM(A1) is not a term" and row["file"] == "'-ae.xpt"
    assert row["row"] == "3" and row["rule_id"] == "CORE-000001"


def test_every_csv_for_people_goes_through_csv_out() -> None:
    """No module writes a CSV file with the csv module or DataFrame.to_csv directly, but csv_out itself and the
    CRF record writer (interchange data, kept byte for byte: see converter/io/csv_out.py)."""
    import re

    root = Path(__file__).resolve().parent.parent / "converter"
    # to_csv(<path>, ...) writes a file; to_csv() or to_csv(index=False, ...) only makes text (a digest, say)
    direct = re.compile(r"csv\.writer\(|csv\.DictWriter\(|\.to_csv\((?!\s*(?:\w+=|\)))")
    allowed = {root / "io" / "csv_out.py", root / "records" / "csv_io.py"}
    found = [
        f"{p.relative_to(root)}:{n}"
        for p in sorted(root.rglob("*.py"))
        if p not in allowed
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if direct.search(line)
    ]
    assert found == []
