"""Small column helpers shared by every stage (typed once here, so the stages stay readable)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def text_column(col: pd.Series, index: pd.Index | None = None) -> pd.Series:
    """A column as ``object`` dtype holding ``str`` or ``None`` (empty strings and NaN become ``None``).

    Numbers become their shortest exact text (12.0 -> "12"). Vectorised: only values that are not already
    text are converted one by one.
    """
    values = col.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # str only, no null: no null mask to make
        out = values.copy()
        out[out == ""] = None
        return pd.Series(out, index=col.index if index is None else index, dtype=object, name=col.name)
    keep = pd.notna(values)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        out = values.copy()
    elif col.dtype.kind in "fiu" or kind in ("floating", "integer", "mixed-integer-float"):
        out = _numbers_as_text(values, keep)
    else:  # mixed: convert each distinct value once
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = np.array([_text(u) for u in uniques], dtype=object)
        out = np.empty(len(values), dtype=object)
        hit = codes >= 0
        out[hit] = texts[codes[hit]]
    out[~keep] = None
    if kind != "empty" and len(out):
        out[out == ""] = None
    return pd.Series(out, index=col.index if index is None else index, dtype=object, name=col.name)


def _numbers_as_text(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    if not keep.any():
        return out
    nums = values[keep].astype(float)
    whole = np.isfinite(nums) & (nums == np.round(nums)) & (np.abs(nums) < 1e15)
    text = np.empty(len(nums), dtype=object)
    text[whole] = nums[whole].astype(np.int64).astype(str).astype(object)
    if (~whole).any():
        text[~whole] = [repr(float(v)) for v in nums[~whole]]
    out[keep] = text
    return out


def _text(v: Any) -> str:
    if isinstance(v, float | np.floating):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    return str(v)


def null_column(n: int, index: pd.Index | None = None, name: str | None = None) -> pd.Series:
    out = np.empty(n, dtype=object)
    out[:] = None
    return pd.Series(out, index=index, dtype=object, name=name)


def constant_column(value: Any, n: int, index: pd.Index | None = None) -> pd.Series:
    out = np.empty(n, dtype=object)
    out[:] = value
    return pd.Series(out, index=index, dtype=object)


def keep_where(col: pd.Series, cond: pd.Series | np.ndarray) -> pd.Series:
    """``col`` where ``cond`` holds, ``None`` elsewhere, as an object column."""
    mask = np.asarray(cond, dtype=bool)
    values = col.to_numpy(dtype=object).copy()
    values[~mask] = None
    return pd.Series(values, index=col.index, dtype=object, name=col.name)


def none_for_missing(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as ``object`` with ``None`` (not NaN/NA) for missing values."""
    return pd.DataFrame({c: keep_where(df[c].astype(object), df[c].notna()) for c in df.columns}, index=df.index)


def first_positions(lefts: list[np.ndarray], rights: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """Per left row: the position of the first right row with equal keys (missing values equal each other, as a
    merge pairs them), -1 for none; and whether the right rows' keys are all distinct. Each key's two sides are
    factorised together and the combined codes again after each key, so the rows are matched on one int64."""
    n_left = len(lefts[0])
    key = np.zeros(n_left + len(rights[0]), dtype=np.int64)
    for left, right in zip(lefts, rights, strict=True):
        codes, uniques = pd.factorize(np.concatenate([left, right]), use_na_sentinel=False)
        key = pd.factorize(key * max(len(uniques), 1) + codes)[0]
    lkey, rkey = key[:n_left], key[n_left:]
    distinct, first = np.unique(rkey, return_index=True)  # the first right row of each key
    if not len(distinct):
        return np.full(n_left, -1, dtype=np.intp), True
    pos = np.minimum(np.searchsorted(distinct, lkey), len(distinct) - 1)
    found: np.ndarray = np.where(distinct[pos] == lkey, first[pos], -1)
    return found, len(distinct) == len(rkey)
