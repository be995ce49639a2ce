"""is_null and text_bytes against the value-by-value forms they replaced (texts of coded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.validate.common import coded, is_null, shared_results, text_bytes

TEXTS = ["a", "", " ", "\t\n", "\u00a0", "\u3000x", "é", "日本", "😀", "x" * 300, " y ", "0", "nan", None]


def _columns(rng: np.random.Generator) -> list[pd.Series]:
    n = int(rng.integers(0, 30))
    pick = rng.integers(0, len(TEXTS), n)
    floats = rng.normal(size=n)
    floats[rng.random(n) < 0.3] = np.nan
    ints = rng.integers(-5, 5, n)
    holes = rng.random(n) < 0.3
    return [
        pd.Series([TEXTS[i] for i in pick], dtype=object),
        pd.Series([TEXTS[i] if i % 3 else float(i) for i in pick], dtype=object),
        pd.Series(floats),
        pd.Series(ints),
        pd.Series(pd.array(np.where(holes, 0, ints), dtype="Int64")).mask(holes),
        pd.Series(ints > 0),
        pd.Series(pd.array(ints > 0, dtype="boolean")).mask(holes),
        pd.Series(floats, dtype="Float64"),
    ]


def test_equal_to_the_texts_of_coded() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        for col in _columns(rng):
            texts = coded(col).values()
            assert is_null(col).tolist() == [t is None or not t.strip() for t in texts]
            assert text_bytes(col).tolist() == [len(t.encode("utf-8")) if t is not None else 0 for t in texts]


def test_made_once_per_column_in_a_run_and_read_only() -> None:
    col = pd.Series(["a", None, " "], dtype=object)
    with shared_results():
        first = is_null(col)
        assert is_null(col) is first
        assert not first.flags.writeable
