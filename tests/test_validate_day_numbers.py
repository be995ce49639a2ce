"""day_numbers (code points of the distinct texts at once) against complete_date text by text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.validate.common import coded, complete_date, day_numbers

TEXTS = ["2024-03-05", "2024-03-05T10:30", "2024-02-29", "2023-02-29", "2024-02-30", "2024-04-31", "2024-13-01",
         "2024-00-10", "2024-01-00", "0000-01-01", "0001-01-01", "9999-12-31", "2024-3-05", "2024-03", "2024",
         "2024-03-5T1", "2024/03/05", "２０２４-03-05", "2024-0３-05", "2024-03-05\n", "20240305", "abcd-ef-gh",
         "2024-03-05Z", "1900-02-29", "2000-02-29", "", " ", "😀024-03-05", "2024-W01-1"]  # fmt: skip


def _old(text: str | None) -> float:
    d = complete_date(text)
    return float(d.toordinal()) if d is not None else np.nan


def test_equal_to_complete_date() -> None:
    rng = np.random.default_rng(3)
    pool = [*TEXTS, None, float("nan")]
    for _ in range(300):
        col = pd.Series([pool[int(i)] for i in rng.integers(0, len(pool), int(rng.integers(0, 30)))], dtype=object)
        c = coded(col)
        want = np.array([_old(t) for t in c.values()], dtype=float)
        np.testing.assert_array_equal(day_numbers(c), want)
    c = coded(pd.Series(TEXTS, dtype=object))
    np.testing.assert_array_equal(day_numbers(c), [_old(t) for t in c.values()])
