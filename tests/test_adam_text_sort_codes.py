"""The order and group codes of a text column made from its distinct values (common._text_sort_codes) equal the codes of
the sortable column's sorted factorisation (common._sort_codes of common.sortable), for random object columns of
text, '', blanks, None, NaN, NA, numbers and booleans, ascending and descending."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.adam import common

POOL = ["a", "b", "", " ", "B", "2020-01-01", "2020-01-01T10", "é", None, np.nan, pd.NA, 1, 1.0, True, 2.5, "1", "10"]


def test_text_sort_codes_equal_the_sorted_factorisation() -> None:
    rng = np.random.default_rng(19)
    fast = 0
    for _ in range(1500):
        choices = [POOL[i] for i in rng.choice(len(POOL), rng.integers(1, 8), replace=False)]
        if rng.random() < 0.6:  # mostly text and missing values (the fast path)
            choices = [c for c in choices if isinstance(c, str) or c is None or c is np.nan] or ["x"]
        col = pd.Series([choices[i] for i in rng.integers(0, len(choices), rng.integers(0, 40))], dtype=object)
        df = pd.DataFrame({"V": col})
        for item in ("V", "desc(V)"):
            for descending in (False, True):
                got, used = common._order_codes(df, [item], descending, False)
                want = common._sort_codes(common.sortable(col), common.is_descending(item) == descending)
                assert used == {"V"}
                assert got[0].dtype == want.dtype and np.array_equal(got[0], want), (col.tolist(), item, descending)
        fast += common._text_sort_codes(col) is not None
    assert fast > 500  # the fast path was taken, not only the fallback


def test_group_codes_of_text_columns_equal_the_text_factorisation() -> None:
    rng = np.random.default_rng(7)
    for _ in range(1500):
        choices = [POOL[i] for i in rng.choice(len(POOL), rng.integers(1, 8), replace=False)]
        if rng.random() < 0.6:
            choices = [c for c in choices if isinstance(c, str) or c is None or c is np.nan] or ["x"]
        col = pd.Series([choices[i] for i in rng.integers(0, len(choices), rng.integers(0, 40))], dtype=object)
        got = common._group_codes(pd.DataFrame({"V": col}), "V", False)
        want = pd.factorize(common.as_text(col).to_numpy(dtype=object))[0] + 1
        assert got.dtype == want.dtype and np.array_equal(got, want), col.tolist()
