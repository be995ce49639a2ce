"""Columns as codes into their distinct texts (converter.validate.common.coded): the texts the rules compare, made
once per column within a rules run, and the same as converting each value on its own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from converter.validate.common import coded, is_null, shared_results, text_values


def _one_by_one(col: pd.Series) -> list[str | None]:
    """The contract of text_values, value by value: text as it is (empty: None), whole numbers without .0."""
    out: list[str | None] = []
    for v in col.to_numpy(dtype=object):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
        elif isinstance(v, float | np.floating):
            out.append(str(int(v)) if float(v).is_integer() else repr(float(v)))
        else:
            out.append(str(v) or None)
    return out


COLUMNS = {
    "text": pd.Series(["a", "", None, "a", " ", np.nan, "b"], dtype=object),
    "float": pd.Series([12.0, 1.5, np.nan, -3.0, 12.0]),
    "Int64": pd.Series([1, None, 3, 1], dtype="Int64"),
    "mixed": pd.Series([1.0, "1", 2, None, "x", 2.5], dtype=object),
    "empty": pd.Series([], dtype=object),
    "all missing": pd.Series([None, None], dtype=object),
}


@pytest.mark.parametrize("name", list(COLUMNS))
def test_text_values_as_value_by_value(name: str) -> None:
    col = COLUMNS[name]
    assert list(text_values(col)) == _one_by_one(col)
    blank = [t is None or not t.strip() for t in _one_by_one(col)]
    assert list(is_null(col)) == blank


def test_per_text_decides_once_per_distinct_text() -> None:
    col = pd.Series(["2020-01-01", "bad", None, "2020-01-01", "bad"], dtype=object)
    seen: list[str | None] = []

    def ok(t: str | None) -> bool:
        seen.append(t)
        return t is not None and t[:4].isdigit()

    assert list(coded(col).per_text(ok)) == [True, False, False, True, False]
    assert sorted(seen, key=str) == sorted(["2020-01-01", "bad", None], key=str)  # each distinct text once


def test_coded_once_per_column_within_a_run_only() -> None:
    frame = pd.DataFrame({"a": ["x", "y"]})
    col = frame["a"]
    assert coded(col) is not coded(col)  # outside a run: made afresh
    with shared_results():
        first = coded(col)
        assert coded(col) is first
        assert coded(pd.Series(["x", "y"])) is not first  # another column with the same values
