"""The numpy XPT v5 writer gives pyreadstat's bytes (what write_xpt wrote through pyreadstat before), apart from the
creation timestamp."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from converter.io.xpt import IBM_MAX, IBM_MIN, read_xpt, write_xpt, writer_columns
from converter.io.xpt_write import ibm_words
from converter.spec.loader import parse_spec
from converter.spec.model import DatasetSpec

_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")


def _spec(variables: list[dict[str, Any]], label: str = "Test Data") -> DatasetSpec:
    for v in variables:
        v.setdefault("rule", {"assign": "x"})
    doc = {"dataset": "TT", "label": label, "class": "FINDINGS", "structure": "x", "standard": "SDTMIG 3.4",
           "keys": [], "variables": variables}  # fmt: skip
    return parse_spec(doc, Path("tt.yaml"))


def _pyreadstat_bytes(df: pd.DataFrame, spec: DatasetSpec, path: Path) -> bytes:
    """What write_xpt wrote through pyreadstat: one value padded to the storage width, NAMESTR widths patched
    when there are no rows."""
    cols = writer_columns(df, spec)
    frame = pd.DataFrame({c.name: pd.Series(c.values.copy(), dtype=object if not c.numeric else "float64")
                          for c in cols})  # fmt: skip
    for c in cols:
        if not c.numeric and len(frame):
            frame.at[0, c.name] = frame.at[0, c.name].ljust(c.width)
    formats = {c.name: str(c.format) for c in cols if c.format}
    pyreadstat.write_xport(frame, str(path), file_label=spec.label, column_labels=[c.label for c in cols],
                           table_name=spec.name, file_format_version=5, variable_format=formats or None)  # fmt: skip
    data = bytearray(path.read_bytes())
    if len(frame) == 0:
        start = data.find(b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!")
        pos = 0
        for i, c in enumerate(cols):
            off = start + 80 + i * 140
            data[off + 4 : off + 6] = c.width.to_bytes(2, "big")
            data[off + 84 : off + 88] = pos.to_bytes(4, "big")
            pos += c.width
    return bytes(data)


def _same_bytes(df: pd.DataFrame, spec: DatasetSpec, tmp_path: Path) -> None:
    ours = write_xpt(df, spec, tmp_path / "ours.xpt").read_bytes()
    theirs = _pyreadstat_bytes(df, spec, tmp_path / "theirs.xpt")
    assert _STAMP.sub(b"T" * 16, ours) == _STAMP.sub(b"T" * 16, theirs)


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 10, 37])
@pytest.mark.parametrize("fmt", [None, "DATE9.", "8.", "8.2", "BEST12.", "E8601DA10.", "DATETIME20.", "TIME8."])
def test_bytes_equal_pyreadstat(tmp_path: Path, rows: int, fmt: str | None) -> None:
    rng = np.random.default_rng(rows)
    num: dict[str, Any] = {"name": "AVAL", "label": "Analysis Value", "type": "float"}
    if fmt:
        num["format"] = fmt
    spec = _spec([
        {"name": "STUDYID", "label": "Study Identifier", "type": "text", "length": 12},
        {"name": "C1", "label": "One", "type": "text"},
        num,
        {"name": "N", "label": "Count", "type": "integer"},
        {"name": "C2", "label": "A label of exactly forty characters long", "type": "text", "length": 7,
         "format": "$CHAR7."},
        {"name": "Z", "label": "All missing", "type": "float"},
        {"name": "E", "label": "Empty text", "type": "text"},
    ])  # fmt: skip
    words = ["", "a", "AB CD", "  lead", "x" * 30, "q;\"'<&>", None]
    values = rng.normal(0, 1e6, rows) * rng.choice([1.0, 1e-30, 1e30, 0.0, -0.0, np.nan], rows)
    df = pd.DataFrame({
        "STUDYID": pd.Series(["S-1"] * rows, dtype=object),
        "C1": pd.Series([words[i % len(words)] for i in range(rows)], dtype=object),
        "AVAL": values,
        "N": pd.array([None if i % 4 == 1 else i * 7 - 3 for i in range(rows)], dtype="Int64"),
        "C2": pd.Series([None if i % 3 else "abc" for i in range(rows)], dtype=object),
        "Z": np.full(rows, np.nan),
        "E": pd.Series([None] * rows, dtype=object),
    })  # fmt: skip
    _same_bytes(df, spec, tmp_path)
    back, _ = read_xpt(tmp_path / "ours.xpt")
    assert np.array_equal(back["AVAL"].to_numpy(), values + 0.0, equal_nan=True)


def test_row_length_a_multiple_of_80(tmp_path: Path) -> None:
    spec = _spec([{"name": "A", "label": "A", "type": "text", "length": 72},
                  {"name": "B", "label": "B", "type": "float"}])  # fmt: skip
    for rows in (0, 1, 2, 5):
        df = pd.DataFrame({"A": pd.Series(["v"] * rows, dtype=object), "B": np.arange(rows, dtype=float)})
        _same_bytes(df, spec, tmp_path)


def test_ibm_words_of_the_range_ends() -> None:
    values = np.array([IBM_MAX, -IBM_MAX, IBM_MIN, -IBM_MIN, 1.0, -1.0, 0.5, 16.0, 2.0**248, 2.0**-261, np.nan, 0.0])
    words = ibm_words(values)
    assert words[4] == 0x4110000000000000 and words[5] == 0xC110000000000000
    assert words[6] == 0x4080000000000000 and words[7] == 0x4210000000000000
    assert words[10] == 0x2E00000000000000 and words[11] == 0
    assert words[2] == 0x0010000000000000 and words[3] == 0x8010000000000000 and words[9] == 0
    assert words[8] == 0x7F10000000000000
    # as ReadStat: from 2**249 on the largest IBM magnitude (IBM_MAX is 2**252 as a double)
    assert words[0] == 0x7FFFFFFFFFFFFFFF and words[1] == 0xFFFFFFFFFFFFFFFF


def test_numbers_over_the_whole_range_equal_pyreadstat(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    exps = rng.integers(-262, 253, 3000).astype(float)
    values = rng.uniform(0.5, 1.0, 3000) * 2.0**exps * rng.choice([-1.0, 1.0], 3000)
    values = np.concatenate([values, [2.0**249, 2.0**249 * (1 - 2.0**-53), 2.0**-260, 2.0**-260 * (1 - 2.0**-53)]])
    spec = _spec([{"name": "X", "label": "X", "type": "float"}])
    frame = pd.DataFrame({"X": values})
    ours = write_xpt(frame, spec, tmp_path / "ours.xpt", checked=True).read_bytes()
    theirs = _pyreadstat_bytes(frame, spec, tmp_path / "theirs.xpt")
    assert _STAMP.sub(b"T" * 16, ours) == _STAMP.sub(b"T" * 16, theirs)


def test_numbers_the_writer_cannot_store_are_refused_before_writing() -> None:
    """From 2**249 on the writer (as ReadStat) stores the largest IBM word, which does not read back as the value:
    check_for_xpt refuses such a number (naming the variable and row) instead of a failed verification later."""
    from converter.io.xpt import check_for_xpt

    spec = _spec([{"name": "X", "label": "X", "type": "float"}])
    fine = pd.DataFrame({"X": [2.0**249 * (1 - 2.0**-53), -(2.0**248), IBM_MIN, 0.0, np.nan]})
    assert check_for_xpt(fine, spec) == []
    for value in (2.0**249, -(2.0**250), IBM_MAX, IBM_MIN / 2):
        problems = check_for_xpt(pd.DataFrame({"X": [1.0, value]}), spec)
        assert len(problems) == 1 and "X" in problems[0] and "outside the IBM float range" in problems[0], problems
