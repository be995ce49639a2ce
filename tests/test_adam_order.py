"""Content-determined ordering of ADaM records (converter.adam.common.order_positions): the order of pandas'
stable multi-column sort with nulls last in either direction, ties broken on every other column's content,
checked on random frames full of ties and nulls against that sort written out directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from converter.adam.common import order_positions, pick, sortable
from converter.sdtm.context import as_text
from converter.spec.adam_rules import is_descending, order_var


def _reference(df: pd.DataFrame, order: list[Any], descending: bool, by: list[str]) -> np.ndarray:
    """The specification, spelled with DataFrame.sort_values (mergesort, na_position last)."""
    keys: dict[str, pd.Series] = {}
    ascending: list[bool] = []
    used: set[str] = set()
    for i, item in enumerate(order):
        if isinstance(item, dict):
            var = item["var"]
            rank = {str(v): j for j, v in enumerate(item["rank"])}
            col, asc = as_text(df[var]).map(rank).astype("float64"), not item.get("desc")
        else:
            var = order_var(item)
            col, asc = sortable(df[var]), not is_descending(item)
        used.add(var)
        keys[f"o{i}"] = col
        ascending.append(asc != descending)
    groups = pd.DataFrame({**{f"b{j}": as_text(df[b]) for j, b in enumerate(by)}, **keys}, index=df.index)
    tied = len(df) > 1 if groups.shape[1] == 0 else bool(groups.duplicated(keep=False).any())
    if tied:
        for j, c in enumerate(sorted(set(df.columns) - used)):
            col = sortable(df[c])
            keys[f"t{j}"] = col if col.dtype.kind == "f" else col.fillna("")
            ascending.append(not descending)
    if not keys:
        return np.arange(len(df))
    kf = pd.DataFrame(keys).reset_index(drop=True)
    return kf.sort_values(list(kf.columns), ascending=ascending, na_position="last", kind="mergesort").index.to_numpy()


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    def pick_from(values: list[Any]) -> np.ndarray:
        return np.array([values[i] for i in rng.integers(0, len(values), n)], dtype=object)

    return pd.DataFrame({
        "USUBJID": pick_from(["S1", "S2", "S3", None]),
        "DTC": pick_from(["2020-01-02", "2020-01-10", "2019-12-31", "2020-01", None, ""]),
        "SEQ": rng.choice([1.0, 2.0, 3.0, np.nan, -0.0, 0.0], n),
        "RESP": pick_from(["CR", "PR", "PD", "NE", None]),
        "N": pd.array(rng.choice([1, 2, 3], n), dtype="Int64"),
        "TXT": pick_from(["b", "a", "B", "", None, "a "]),
    })  # fmt: skip


ORDERS: list[list[Any]] = [
    ["DTC", "SEQ"],
    ["desc(DTC)"],
    [{"var": "RESP", "rank": ["CR", "PR", "PD"]}, "DTC"],
    [{"var": "RESP", "rank": ["CR", "PR"], "desc": True}, "desc(SEQ)"],
    ["N"],
    [],
]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("order", ORDERS, ids=range(len(ORDERS)))
def test_order_is_pandas_stable_sort(seed: int, order: list[Any]) -> None:
    rng = np.random.default_rng(seed)
    df = _frame(rng, int(rng.integers(0, 40)))
    df.index = rng.permutation(len(df)) + 100  # positions, not labels
    for descending in (False, True):
        for by in ([], ["USUBJID"], ["USUBJID", "TXT"]):
            got = order_positions(df, order, descending, by)
            want = _reference(df, order, descending, by)
            assert got.tolist() == want.tolist(), (order, descending, by)


def test_pick_first_and_last_per_group() -> None:
    df = pd.DataFrame({"USUBJID": ["A", "A", "B", "B", "B"], "D": ["2020-01-02", None, "2020-01-03", "2020-01-01",
                                                                   "2020-01-02"]})  # fmt: skip
    first = pick(df, ["USUBJID"], ["D"], "first")
    last = pick(df, ["USUBJID"], ["D"], "last")
    assert dict(zip(first["USUBJID"], first["D"], strict=True)) == {"A": "2020-01-02", "B": "2020-01-01"}
    assert dict(zip(last["USUBJID"], last["D"], strict=True)) == {"A": "2020-01-02", "B": "2020-01-03"}  # nulls lose


def test_many_tie_columns() -> None:
    """Ties broken on 16 columns of many distinct values each (more codes than one int64 key holds at once)."""
    rng = np.random.default_rng(5)
    n = 60
    df = pd.DataFrame({f"C{i:02d}": rng.integers(0, 30, n).astype(float) for i in range(16)})
    df["D"] = "2020-01-01"
    df.loc[df.index[:3], "C00"] = np.nan
    for descending in (False, True):
        got = order_positions(df, ["D"], descending)
        assert got.tolist() == _reference(df, ["D"], descending, []).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_pick_is_first_row_of_each_group_in_order(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    df = _frame(rng, int(rng.integers(1, 50)))
    df.loc[df.index[::7], "USUBJID"] = np.nan  # NaN beside None: groups as pandas forms them
    for mode in ("first", "last"):
        for by in (["USUBJID"], ["USUBJID", "N"], ["RESP", "TXT"]):
            pos = _reference(df, ["DTC", "desc(SEQ)"], mode == "last", by)
            want = df.iloc[pos[~df[by].iloc[pos].duplicated(keep="first").to_numpy()]]
            pd.testing.assert_frame_equal(pick(df, by, ["DTC", "desc(SEQ)"], mode), want)


@pytest.mark.parametrize("seed", range(8))
def test_extreme_flag_reads_only_its_columns_unless_tied(seed: int) -> None:
    """extreme_flag looks at the by, order and filter columns first; its flags are those of pick() over every
    column but the flag's own, tied groups included (then every other column breaks the tie)."""
    from types import SimpleNamespace

    import converter.adam.algorithms  # noqa: F401 - registers the ADaM rules
    from converter.sdtm.context import DATASET
    from converter.spec.expr import filter_rows, parse_expression

    rng = np.random.default_rng(200 + seed)
    df = _frame(rng, int(rng.integers(0, 50)))
    df["FL"] = None
    condition = parse_expression("RESP != 'NE'", file="test", line=1)
    for order in (["DTC", "desc(SEQ)"], ["DTC"], [{"var": "RESP", "rank": ["CR", "PR"]}]):
        for by in (["USUBJID"], ["USUBJID", "TXT"]):
            a = {"by": by, "order": order, "mode": "last" if seed % 2 else "first", "filter": condition}
            got = DATASET["extreme_flag"](SimpleNamespace(frame=df, var=SimpleNamespace(name="FL")), a)
            want = pd.Series(np.full(len(df), None, dtype=object), index=df.index)
            cand = filter_rows(df.drop(columns=["FL"]), condition)
            if len(cand):
                want.loc[pick(cand, by, order, a["mode"]).index] = "Y"
            assert got.tolist() == want.tolist(), (order, by)
