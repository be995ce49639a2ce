"""The fast paths of the spec engine's ``finalise`` (ADaM's fifth pass) against the pandas operations they
replace, on random columns: numbers held as objects cast without ``to_numeric`` parsing each value."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.sdtm.build import cast_column

NUMBERS: list[object] = [1, 2, -3, 0, 7.5, -0.0, 12.0, np.int64(4), np.float64(2.25), np.float32(0.5), 2**53,
                         2**60, float("inf"), None, np.nan, pd.NA, True, "1", pd.NaT]  # fmt: skip


def _expected(col: pd.Series, vtype: str) -> pd.Series:
    num = pd.to_numeric(col, errors="coerce")
    if vtype == "float":
        return num.astype("float64")
    return num.round().astype("Int64")


def test_object_numbers_cast_as_to_numeric() -> None:
    rng = np.random.default_rng(19)
    checked = 0
    for i in range(1500):
        n = int(rng.integers(0, 30))
        pool = NUMBERS[: 16 - i % 4] if i % 5 else NUMBERS  # mostly numbers and nulls; sometimes anything
        col = pd.Series([pool[j] for j in rng.integers(0, len(pool), n)], dtype=object, name="X")
        for vtype in ("integer", "float"):
            try:
                expected = _expected(col, vtype)
            except (TypeError, ValueError, OverflowError):
                continue
            pd.testing.assert_series_equal(cast_column(col, vtype), expected, check_exact=True)
            checked += 1
    assert checked > 2000
