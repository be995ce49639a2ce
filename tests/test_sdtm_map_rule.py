"""The map rule, decided per distinct value, against the row-wise form it replaced (as_text of the column,
map_unique, a mask of unmapped values, Series.where for the default): same values and value types, same
problems in the same order, on random columns of text, numbers and missing values."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import problem
from converter.sdtm.algorithms import ROW, as_text


def map_unique(col: pd.Series, fn: Any) -> pd.Series:
    """The helper the previous form called (converter.frames, removed with its last use): ``fn`` once per
    distinct non-missing value, spread back."""
    codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=True)
    mapped = np.asarray(fn(np.asarray(uniques, dtype=object)), dtype=object)
    out = np.empty(len(codes), dtype=object)
    out[:] = None
    hit = codes >= 0
    out[hit] = mapped[codes[hit]]
    return pd.Series(out, index=col.index, dtype=object, name=col.name)


def _previous(ctx: Any, a: dict[str, Any]) -> pd.Series:
    raw = as_text(ctx.col(a["field"]))
    values = {str(k): v for k, v in a["values"].items() if k != "__line__"}
    mapped = map_unique(raw, lambda u: np.array([values.get(v) for v in u], dtype=object))
    bad = raw.notna() & mapped.isna() & ~raw.isin([k for k, v in values.items() if v is None])
    if bad.any():
        if "default" in a:
            mapped = mapped.where(~bad, a["default"])
        else:
            for i in np.flatnonzero(bad.to_numpy()):
                ctx.problems.append(
                    problem(ctx.file, str(ctx.labels.iloc[i]), a["field"], raw.iloc[i], "map",
                            f"{ctx.spec.name}.{ctx.var.name}: value has no mapping in the spec")
                )  # fmt: skip
    return mapped.astype(object)


class _Labels:
    @property
    def iloc(self) -> _Labels:
        return self

    def __getitem__(self, i: int) -> str:
        return f"row {i}"


def _ctx(col: pd.Series) -> Any:
    frame = pd.DataFrame({"F": col})
    return SimpleNamespace(frame=frame, col=lambda name: frame[name], problems=[], labels=_Labels(), file="FORM",
                           spec=SimpleNamespace(name="XX"), var=SimpleNamespace(name="XXVAR"))  # fmt: skip


def _column(rng: np.random.Generator, n: int, kind: int) -> pd.Series:
    if kind == 0:
        pool: list[object] = ["A", "B", "b", "", " ", "1", None, np.nan, "C"]
        return pd.Series([pool[i] for i in rng.integers(0, len(pool), n)], dtype=object)
    if kind == 1:
        return pd.Series(rng.choice([1.0, 2.0, 2.5, np.nan, -0.0, 12.0], n))
    if kind == 2:
        return pd.Series(rng.choice([1, 2, 3], n)).astype("Int64").mask(rng.random(n) < 0.3)
    mixed: list[object] = ["A", 1, 1.0, 2.5, True, None, "1", np.int64(2)]
    return pd.Series([mixed[i] for i in rng.integers(0, len(mixed), n)], dtype=object)


def test_map_equals_the_row_wise_form() -> None:
    rng = np.random.default_rng(19)
    for i in range(600):
        n = int(rng.integers(0, 30))
        col = _column(rng, n, i % 4)
        values: dict[Any, Any] = {"A": "Alpha", "B": None, 1: "one", "2": "two", "2.5": 7, "__line__": 3}
        if i % 3 == 0:
            values["C"] = "Gamma"
        args: dict[str, Any] = {"field": "F", "values": values}
        if i % 2:
            args["default"] = ["OTHER", None, 0][i % 3]
        ctx_new, ctx_old = _ctx(col), _ctx(col)
        got = ROW["map"](ctx_new, args)
        expected = _previous(ctx_old, args)
        assert got.index.equals(expected.index)
        assert got.dtype == object
        assert [(type(v), v) for v in got] == [(type(v), v) for v in expected]
        assert ctx_new.problems == ctx_old.problems
