"""checks._numeric's way around to_numeric for plainly written columns (checks._plain_numbers): the same valid
mask and the same values where valid as the to_numeric path, on 4,000 random columns of number-like text
(signs, leading zeros, spaces, underscores, exponents, dots, non-ASCII digits, NUL, 14-400 digit runs); and
the values to_numeric cannot be given (a NUL, a ten-digit exponent)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from converter.records import checks

_PIECES = ["0", "1", "7", "9", "12", "00", ".", "+", "-", " ", "_", "e", "E", "\u0665", "\0", "x", "99999999", "5" * 14]


def _column(rng: random.Random) -> np.ndarray:
    weights = [rng.random() ** 4 for _ in _PIECES]
    n = rng.randint(1, 12)
    vals = []
    for _ in range(n):
        if rng.random() < 0.6:
            v = str(rng.randint(1, 10 ** rng.randint(1, 17)))
            vals.append(v if rng.random() < 0.7 else v[: len(v) // 2] + "." + v[len(v) // 2 :])
        else:
            vals.append("".join(rng.choices(_PIECES, weights=weights, k=rng.randint(1, 4))) or "1")
    return np.array(vals, dtype=object)


@pytest.mark.parametrize("integer", [True, False])
def test_same_as_to_numeric_path(integer: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1904 + integer)
    plain = 0
    for _ in range(2000):
        vals = _column(rng)
        with monkeypatch.context() as m:
            m.setattr(checks, "_plain_numbers", lambda _v, _i: None)
            try:
                want_ok, want_num = checks._numeric(vals, integer)
            except ValueError:  # a NUL after a plain decimal (to_numeric stops at it): raised either way
                with pytest.raises(ValueError):
                    checks._numeric(vals, integer)
                continue
        ok, num = checks._numeric(vals, integer)
        assert ok.tolist() == want_ok.tolist(), vals
        assert num[ok].tolist() == want_num[want_ok].tolist(), vals
        plain += checks._plain_numbers(vals, integer) is not None
    assert plain > 100


def test_values_to_numeric_cannot_take() -> None:
    """A ten-digit exponent crashed the process in to_numeric (pandas 2.3); a NUL ended its reading of the value
    (``1.5<NUL>x`` valid, then a ValueError). Both are now read by Python's float where the syntax allows."""
    vals = np.array(["1e2147483648", "1e-99999999999", "5", "1.5\0x", "2.5", "1E+0000000002"], dtype=object)
    ok, num = checks._numeric(vals, integer=False)
    assert ok.tolist() == [False, True, True, False, True, True]
    assert num[ok].tolist() == [0.0, 5.0, 2.5, 100.0]
    ok, num = checks._numeric(vals, integer=True)
    assert ok.tolist() == [False, False, True, False, False, False]


def test_int64_columns_as_pandas_casts_them() -> None:
    """typed_records' Int64 columns (checks._int64) equal pd.Series(values).astype("Int64"), or raise as it does
    (a fraction, inf), on 3,000 random float columns with NaN."""
    import pandas as pd

    rng = np.random.default_rng(1905)
    for trial in range(3000):
        n = int(rng.integers(0, 30))
        high = 10**15 if trial % 2 else 5
        v = rng.integers(-high, high, n).astype(np.float64)
        v[rng.random(n) < 0.3] = np.nan
        if trial % 7 == 0 and n:
            v[0] = 0.5
        if trial % 11 == 0 and n:
            v[-1] = np.inf
        try:
            want = pd.Series(v).astype("Int64")
        except (TypeError, ValueError, OverflowError):
            with pytest.raises((TypeError, ValueError, OverflowError)):
                checks._int64(v)
            continue
        pd.testing.assert_series_equal(checks._int64(v), want, check_exact=True)
