"""starts_after_ends (ranks of distinct texts) against the value-by-value rule it replaced."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.validate.common import coded, iso_after, iso_datetime_ok, starts_after_ends

PIECES = ["2024", "2024-03", "2024-03-05", "2024-03-05T10", "2024-03-05T10:30", "2024-03-05T10:30:15",
          "2024-03-05T10:30:15.5", "2024---05", "2024-03-05T-:30", "2024-03-05T10:-:15", "2023-12-31", "2024-02-30",
          "2024-13-01", "2024-03-04T23:59", "2024-03-05T09", "2024-03", "2025", "2024-03-05T10:30+01:00",
          "2024-03-05Z", "x", "", " ", "2024-03-05 10:30", "2024-03-5", "2024-03-05T24", "2024-03-05\n", "2024-03-06T10\n"]  # fmt: skip


def _old(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and iso_datetime_ok(a) and iso_datetime_ok(b) and iso_after(a, b)


def test_equal_to_the_pairwise_rule_on_random_columns() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(0, 40))
        pool = [*PIECES, None, float("nan"), pd.NA]
        cols = [pd.Series([pool[int(i)] for i in rng.integers(0, len(pool), n)], dtype=object) for _ in "ab"]
        a, b = coded(cols[0]), coded(cols[1])
        want = np.array([_old(x, y) for x, y in zip(a.values(), b.values(), strict=True)], dtype=bool)
        assert starts_after_ends(a, b).tolist() == want.tolist()


def test_every_pair_of_pieces() -> None:
    texts = [*PIECES, None]
    a = pd.Series([x for x in texts for _ in texts], dtype=object)
    b = pd.Series([y for _ in texts for y in texts], dtype=object)
    want = [_old(x, y) for x, y in zip(coded(a).values(), coded(b).values(), strict=True)]
    assert starts_after_ends(coded(a), coded(b)).tolist() == want
    assert any(want)
