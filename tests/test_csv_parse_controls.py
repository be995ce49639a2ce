"""csv_io.parse_rows decides from the bytes when no value can hold a control character (no_control_in_values),
and makes empty values None without pd.isna when every value is text: the same frame and the same problems,
in the same order, as looking at every value (control_problems) on 2,000 random CSV texts (quotes, "", CR, LF,
CRLF, blank lines, short rows, tab, C0, DEL, C1, U+FFFE, non-ASCII text)."""

from __future__ import annotations

import io
import random

import numpy as np
import pandas as pd
import pytest

from converter.records import csv_io
from converter.records.csv_io import control_problems, no_control_in_values, parse_rows
from converter.records.schema import Field, Form

_FORM = Form(
    oid="F",
    label="F",
    repeating=True,
    key=("A",),
    fields={n: Field(name=n, label=n, type="text") for n in ("A", "B", "C")},
)
_PIECES = ["a", "bc", "Zz", " ", "é", "ü€", "\t", ",", '"', '""', "\n", "\r", "\r\n", "\x01", "\x7f", "\x85",
           "\ufffe", "1"]  # fmt: skip


def _looked_at(data: bytes, header: list[str]) -> tuple[pd.DataFrame | None, list[object]]:
    """parse_rows as before: every value's emptiness by pd.isna and ==, every value looked at for controls."""
    frame, problems = parse_rows(data, "f.csv", _FORM, header)
    if frame is None:
        return frame, problems
    raw = pd.read_csv(io.BytesIO(data), header=None, dtype=str, keep_default_na=False, encoding="utf-8",
                      engine="c", skip_blank_lines=True)  # fmt: skip
    arr = raw.iloc[1:].to_numpy(dtype=object)
    names = header[: raw.shape[1]] + [f"column {k + 1}" for k in range(len(header), raw.shape[1])]
    keep: dict[str, np.ndarray] = {}
    for k, name in enumerate(names):
        if name in _FORM.fields and name not in keep:
            col = arr[:, k].copy() if arr.size else np.zeros(0, dtype=object)
            col[pd.isna(col) | (col == "")] = None
            keep[name] = col
    want = pd.DataFrame(keep, columns=list(keep), dtype=object) if keep else pd.DataFrame(index=range(len(arr)))
    assert frame.equals(want)
    for name in frame.columns:
        assert [type(v) for v in frame[name]] == [type(v) for v in want[name]]
    return frame, problems


def _random_csv(rng: random.Random) -> bytes:
    weights = [rng.random() ** 3 for _ in _PIECES]
    lines = ["A,B,C"]
    for _ in range(rng.randint(0, 8)):
        fields = []
        for _ in range(rng.choice([3, 3, 3, 2, 1, 4])):
            value = "".join(rng.choices(_PIECES, weights=weights, k=rng.randint(0, 4)))
            if rng.random() < 0.3 or any(c in value for c in ',"\r\n'):
                value = '"' + value.replace('"', '""') + '"' if rng.random() < 0.9 else value
            fields.append(value)
        lines.append(",".join(fields))
        if rng.random() < 0.05:
            lines.append("")
    end = rng.choice(["\n", "\n", "\r\n", "\r"])
    return (end.join(lines) + (end if rng.random() < 0.8 else "")).encode("utf-8")


def test_same_frames_and_problems_as_looking_at_every_value(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1903)
    fast = 0
    for _ in range(2000):
        data = _random_csv(rng)
        frame, problems = _looked_at(data, ["A", "B", "C"])
        with monkeypatch.context() as m:
            m.setattr(csv_io, "no_control_in_values", lambda _data, _lines: False)
            slow_frame, slow_problems = parse_rows(data, "f.csv", _FORM, ["A", "B", "C"])
        assert problems == slow_problems, data
        assert (frame is None) == (slow_frame is None)
        if frame is not None:
            lines = len(pd.read_csv(io.BytesIO(data), header=None, dtype=str, keep_default_na=False))
            if no_control_in_values(data, lines):
                fast += 1
                assert control_problems(frame, "f.csv") == [], data
    assert fast > 100  # the bytes decide often enough for the test to mean something


def test_a_line_break_in_a_quoted_value_is_found() -> None:
    data = b'A,B,C\n1,"x\ny",z\n2,,\n'
    assert not no_control_in_values(data, 3)
    frame, problems = parse_rows(data, "f.csv", _FORM, ["A", "B", "C"])
    assert frame is not None and [p.rule for p in problems] == ["control-character"]
    # a quote inside an unquoted field is text; the quoted value after it still holds the LF
    data = b'A,B,C\nab"c,"x\ny",z\n'
    frame, problems = parse_rows(data, "f.csv", _FORM, ["A", "B", "C"])
    assert [p.rule for p in problems] == ["control-character"]
    assert no_control_in_values(b"A,B,C\n1,\xc3\xa9\t,\n2,,\n", 3)
    assert not no_control_in_values(b"A,B,C\n1,\xc2\x85,\n", 2)
