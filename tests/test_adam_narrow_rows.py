"""``merge``, ``merge_flag``, ``extreme_date`` and ``tte`` read a filter's rows with only the columns they read
(converter.adam.rows): the narrow rows equal the whole filtered rows' columns, and the rules give what the whole
rows gave."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from converter.adam import merges, tte
from converter.adam.common import right_rows, rows_of, shared_pick
from converter.adam.pipeline import sdtm_to_adam
from converter.adam.rows import narrow_rows
from converter.adam.shared import shared_results
from converter.records.simulate import simulate
from converter.sdtm.pipeline import records_to_sdtm
from converter.spec.expr import parse_expression


def test_narrow_rows_are_the_filtered_rows_columns() -> None:
    rng = np.random.default_rng(19)
    for i in range(60):
        n = int(rng.integers(0, 30))
        frame = pd.DataFrame({
            "USUBJID": np.array([["S1", "S2", "S3", None][j] for j in rng.integers(0, 4, n)], dtype=object),
            "SEQ": pd.array([[1, 2, None][j] for j in rng.integers(0, 3, n)], dtype="Int64"),
            "X": rng.choice([0.0, 1.5, np.nan], n),
            "T": np.array([["A", "B", ""][j] for j in rng.integers(0, 3, n)], dtype=object),
        }, index=pd.RangeIndex(n) if i % 2 else pd.RangeIndex(10, 10 + n))  # fmt: skip
        condition = parse_expression("T == 'A'" if i % 3 else "X > 0", file="test", line=1)
        for cols in (["USUBJID"], ["SEQ", "USUBJID", "SEQ"], []):
            with shared_results():
                full = rows_of(frame, condition)
                narrow = narrow_rows(frame, condition, cols)
                read = list(dict.fromkeys(cols))
                assert narrow is frame or list(narrow.columns) == read  # every row kept: the frame itself
                pd.testing.assert_frame_equal(narrow[read], full[read], check_exact=True,
                                              check_column_type=bool(cols))  # no column: an empty index of any type


def _whole_rows_picked(ctx: Any, a: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series]:
    chosen = shared_pick(right_rows(ctx, a), [r for _, r in merges.by_pairs(a)], a.get("order") or [],
                         a.get("mode", "first"))  # fmt: skip
    return chosen, chosen[a["var"]]


@pytest.mark.parametrize("seed", [3, 11])
def test_merges_equal_with_the_whole_filtered_rows(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    sdtm = dict(records_to_sdtm(simulate(60, seed=seed), partitions=1).datasets)
    narrow = sdtm_to_adam(sdtm)
    monkeypatch.setattr(merges, "_picked", _whole_rows_picked)
    for module in (merges, tte):
        monkeypatch.setattr(module, "narrow_rows", lambda frame, condition, columns: rows_of(frame, condition))
    whole = sdtm_to_adam(sdtm)
    assert narrow.checks == whole.checks
    for name, df in whole.datasets.items():
        pd.testing.assert_frame_equal(narrow.datasets[name], df, check_exact=True)
