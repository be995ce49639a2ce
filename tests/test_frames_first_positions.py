"""frames.first_positions (the key matching of group_date and of the ADTTE source checks) against a plain search:
the first right row with equal keys, missing values (None, NaN) equal each other as in a merge."""

from __future__ import annotations

import random

import numpy as np

from converter.frames import first_positions


def _key(cols: list[np.ndarray], i: int) -> tuple[object, ...]:
    return tuple("<missing>" if v is None or (isinstance(v, float) and v != v) else v for v in (c[i] for c in cols))


def test_equals_a_plain_search() -> None:
    rng = random.Random(3)
    values: list[object] = ["a", "b", None, 1.0, float("nan"), 2]
    for _ in range(3000):
        n, m, k = rng.randint(0, 12), rng.randint(0, 12), rng.randint(1, 3)
        lefts = [np.array([rng.choice(values) for _ in range(n)], dtype=object) for _ in range(k)]
        rights = [np.array([rng.choice(values) for _ in range(m)], dtype=object) for _ in range(k)]
        at, unique = first_positions(lefts, rights)
        right_keys = [_key(rights, j) for j in range(m)]
        want = [next((j for j, rk in enumerate(right_keys) if rk == _key(lefts, i)), -1) for i in range(n)]
        assert at.tolist() == want
        assert unique == (len(set(right_keys)) == m)
