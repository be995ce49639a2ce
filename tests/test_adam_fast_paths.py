"""The column-wise fast paths of the ADaM rules give what the pandas calls they replace give (issue 19):
``iso_to_sas`` what ``pd.to_datetime(format="%Y-%m-%d", errors="coerce")`` reads, ``sorted_positions`` the order
of ``sort_values(kind="mergesort", na_position="last")``."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from converter.adam.common import SAS_EPOCH, iso_to_sas, sorted_positions


def _pandas_sas_days(col: pd.Series) -> pd.Series:
    """The reference: the first ten characters of each text through pandas, as SAS days."""
    head = col.map(lambda v: v[:10] if isinstance(v, str) and len(v[:10]) == 10 else None).astype(object)
    parsed = pd.to_datetime(head, format="%Y-%m-%d", errors="coerce")
    return (parsed - SAS_EPOCH).dt.days.astype("float64")


def test_iso_to_sas_reads_what_pandas_reads() -> None:
    rng = random.Random(19)
    values: list[object] = []
    for _ in range(20_000):
        r = rng.random()
        if r < 0.6:
            text = f"{rng.randint(1678, 2251):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}"
            values.append(text + rng.choice(["", "", "T10:30", "T", "x"]))
        elif r < 0.7:
            values.append(rng.choice([None, np.nan, 3.0, 7, "", "2020-01", "2020", "٢٠٢٠-01-01", "2020-01-0\x00",
                                      "2020–01-01", " 2020-01-01", "1677-09-22", "2000-02-29", "1900-02-29"]))  # fmt: skip
        else:
            values.append("".join(rng.choice("0123456789-T ") for _ in range(rng.randint(8, 12))))
    for col in (pd.Series(values, dtype=object), pd.Series([v for v in values if isinstance(v, str)], dtype=object)):
        got = iso_to_sas(col)
        want = _pandas_sas_days(col)
        np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())
        assert got.notna().sum() > 1000


def test_sorted_positions_is_the_stable_sort_of_pandas() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(0, 60)
        df = pd.DataFrame({
            "k": pd.Series([rng.choice(["a", "b", "B", "ab", None]) for _ in range(n)], dtype=object),
            "kind": [rng.randint(0, 1) for _ in range(n)],
            "o": [rng.choice([np.nan, 0.0, -0.0, 1.5, -3.0]) for _ in range(n)],
            "q": [rng.choice([np.nan, 1.0, 2.0]) for _ in range(n)],
        })  # fmt: skip
        cols = rng.choice([["k", "kind", "o", "q"], ["o", "k"], ["q"]])
        want = df.sort_values(cols, kind="mergesort", na_position="last").index.to_numpy()
        np.testing.assert_array_equal(sorted_positions([df[c] for c in cols]), want)
