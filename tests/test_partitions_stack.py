"""partitions.stack against what it always did (concat, reset_index, sort_values by the spec keys, dtypes of the
first piece), on random pieces: one piece in key order or not, several pieces, empty pieces, a piece with an
index other than 0..n-1, keys sort_order does not take (mixed objects, datetimes, huge integers)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from converter.frames import text_column
from converter.records.partitions import stack

TEXTS = ["A", "a", "B", "10", "2", "2024-01-01", "2024-01", "Ä", " ", ""]


def _reference(results: list[dict[str, pd.DataFrame]], specs: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The previous stack, as it was written."""
    collected: dict[str, list[pd.DataFrame]] = {}
    for frames in results:
        for name, df in frames.items():
            collected.setdefault(name, []).append(df)
    out: dict[str, pd.DataFrame] = {}
    for name, pieces in collected.items():
        nonempty = [p for p in pieces if len(p)] or pieces[:1]
        df = pd.concat(nonempty, ignore_index=True) if len(nonempty) > 1 else nonempty[0].reset_index(drop=True)
        spec = specs.get(name)
        keys = [k for k in (spec.keys if spec else ()) if k in df.columns]
        if keys and len(df):
            df = df.sort_values(keys, kind="mergesort", na_position="first").reset_index(drop=True)
        for col, dtype in pieces[0].dtypes.items():
            if str(df[col].dtype) != str(dtype):
                df[col] = df[col].astype(dtype)
        out[name] = df
    return out


def _piece(rng: np.random.Generator, n: int, kinds: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(index=pd.RangeIndex(n))
    for j, kind in enumerate(kinds):
        if kind == 0:
            pool: list[object] = [*TEXTS, None, np.nan]
            values = np.array([pool[i] for i in rng.integers(0, len(pool), n)], dtype=object)
            frame[f"k{j}"] = text_column(pd.Series(values, dtype=object)) if j % 2 else values
        elif kind == 1:
            frame[f"k{j}"] = pd.Series(rng.choice([np.nan, 1.0, 2.0, -1.0, 0.0, -0.0], n), dtype="float64")
        elif kind == 2:
            frame[f"k{j}"] = pd.Series(rng.choice([1, 2, -5, 7], n)).astype("Int64").mask(rng.random(n) < 0.2)
        elif kind == 3:  # mixed objects: sort_values decides (or raises as it did)
            frame[f"k{j}"] = np.array([["B", 3, 1][i] for i in rng.integers(0, 3, n)], dtype=object)
        elif kind == 4:
            frame[f"k{j}"] = pd.to_datetime(rng.choice(["2024-01-02", "2023-05-06", None], n))
        else:  # integers a float does not hold exactly
            frame[f"k{j}"] = pd.array(rng.choice([2**60, 2**60 + 1, 3], n), dtype="Int64")
    frame["V"] = np.arange(n, dtype=np.float64)
    return frame


def _same(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert list(got) == list(expected)
    for name, df in expected.items():
        pd.testing.assert_frame_equal(got[name], df, check_exact=True)
        assert got[name].index.equals(pd.RangeIndex(len(df)))
        for col in df.columns:
            if df[col].dtype == object:
                assert [type(v) for v in got[name][col]] == [type(v) for v in df[col]]


def test_stack_equals_concat_and_sort_values() -> None:
    rng = np.random.default_rng(19)
    for i in range(400):
        k = int(rng.integers(1, 4))
        kinds = [int(rng.choice([0, 0, 1, 2, 3, 4, 5])) for _ in range(k)]
        names = [f"k{j}" for j in range(k)]
        specs = {"X": SimpleNamespace(keys=(*names, "NOT_THERE"))}
        n_pieces = int(rng.integers(1, 4))
        pieces = [_piece(rng, int(rng.integers(0, 25)), kinds) for _ in range(n_pieces)]
        if i % 3 == 0 and len(pieces[0]) and 3 not in kinds:  # one piece already in key order
            pieces[0] = pieces[0].sort_values(names, kind="mergesort", na_position="first").reset_index(drop=True)
        if i % 5 == 0:
            pieces[-1].index = pieces[-1].index + 7
        results = [{"X": p} for p in pieces]
        try:
            expected = _reference(results, specs)
        except TypeError:  # mixed objects sort_values cannot compare: stack raises too
            try:
                stack(results, specs)
            except TypeError:
                continue
            raise AssertionError("stack sorted what sort_values could not") from None
        before = [p.copy() for p in pieces]
        _same(stack(results, specs), expected)
        for p, b in zip(pieces, before, strict=True):  # the caller's pieces are not changed
            pd.testing.assert_frame_equal(p, b, check_exact=True)


def test_one_piece_in_key_order_is_passed_on() -> None:
    frame = pd.DataFrame({"K": np.array(["A", "B", None, "B"], dtype=object), "S": [2.0, 1.0, 3.0, 4.0]})
    specs = {"X": SimpleNamespace(keys=("K", "S"))}
    ordered = frame.sort_values(["K", "S"], kind="mergesort", na_position="first").reset_index(drop=True)
    assert stack([{"X": ordered}], specs)["X"] is ordered
    got = stack([{"X": frame}], specs)["X"]
    assert got is not frame
    assert got["S"].tolist() == [3.0, 2.0, 1.0, 4.0]


def test_widened_dtypes_leave_the_callers_frame_alone() -> None:
    empty = pd.DataFrame({"K": pd.Series([], dtype=object), "N": pd.Series([], dtype="Int64")})
    full = pd.DataFrame({"K": np.array(["A", "B"], dtype=object), "N": np.array([1.0, 2.0])})
    specs = {"X": SimpleNamespace(keys=("K",))}
    got = stack([{"X": empty}, {"X": full}], specs)["X"]
    assert str(got["N"].dtype) == "Int64"
    assert full["N"].dtype == np.float64
