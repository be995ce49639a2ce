"""Subject partitions: split a record set by subject, run a stage per partition, stack the results.

Every mapping is a pure function of one subject's data (trial-design datasets built from inline protocol rows
are the only study-level ones), so converting partition by partition gives the same datasets as converting
everything at once. The partition of a subject depends only on its identifier (CRC-32), so it is stable across
runs and engines: :func:`partition_number` is THE partition function (the local engines, the FHIR NDJSON
reader's router; Spark computes the same CRC-32 in the JVM, and a test compares the two).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import pandas as pd

from converter.records.model import Records
from converter.spec.model import DatasetSpec

Frames = dict[str, pd.DataFrame]


def partition_number(key: str, n_parts: int) -> int:
    """The partition 0..n_parts-1 of one key: CRC-32 of its UTF-8 bytes modulo ``n_parts``."""
    return zlib.crc32(key.encode("utf-8")) % n_parts if n_parts > 1 else 0


def partition_of(ids: pd.Series, n_parts: int) -> np.ndarray:
    """Stable partition number 0..n_parts-1 of each subject identifier (:func:`partition_number` of its text)."""
    if n_parts <= 1:
        return np.zeros(len(ids), dtype=np.int64)
    codes, uniques = pd.factorize(ids.astype(str), sort=False)
    per_unique = np.fromiter((partition_number(u, n_parts) for u in uniques), dtype=np.int64,
                             count=len(uniques))  # fmt: skip
    out: np.ndarray = per_unique[codes]
    return out


def split_records(records: Records, n_parts: int) -> list[Records]:
    """The record set as ``n_parts`` record sets, each holding every form's rows of its subjects."""
    parts: list[Records] = [{} for _ in range(max(n_parts, 1))]
    for form, df in records.items():
        pno = partition_of(df["SUBJID"], n_parts) if len(df) else np.zeros(0, dtype=np.int64)
        for i in range(len(parts)):
            parts[i][form] = df[pno == i].reset_index(drop=True)
    return parts


def is_study_level(spec: DatasetSpec) -> bool:
    """Datasets built only from inline protocol rows (TS, TA, TE): built once, not per partition."""
    return bool(spec.sources) and all(s.rows for s in spec.sources)


def sort_order(columns: list[np.ndarray | pd.api.extensions.ExtensionArray]) -> np.ndarray:
    """Row positions in the order of ``DataFrame.sort_values(kind='mergesort', na_position='first')`` on these
    columns (final SDTM columns: text as ``str``/``None``, ``Int64``, ``float64``): a stable lexsort of each
    column's null flag and its sorted codes (text) or values (numbers)."""
    return np.lexsort(_sort_keys(columns)[::-1])


def _sort_keys(columns: list[np.ndarray | pd.api.extensions.ExtensionArray]) -> list[np.ndarray]:
    """The lexsort keys of :func:`sort_order`, most significant first."""
    keys: list[np.ndarray] = []
    for col in columns:
        if isinstance(col, np.ndarray) and col.dtype == object:
            codes, _ = pd.factorize(col, sort=True, use_na_sentinel=True)
            keys.append(codes)  # -1 (missing) first
            continue
        if isinstance(col, pd.api.extensions.ExtensionArray):
            null = np.asarray(col.isna(), dtype=bool)
            values = np.asarray(col.to_numpy(dtype="float64", na_value=0.0))
        else:
            null = np.isnan(col)
            values = np.where(null, 0.0, col)
        keys.append(~null)
        keys.append(values)
    return keys


def _in_order(keys: list[np.ndarray]) -> bool:
    """Whether the rows are already in the order of the lexsort keys (most significant first): each row's keys
    not after the next row's, compared key by key where the keys before are equal."""
    tied = np.ones(len(keys[0]) - 1 if keys else 0, dtype=bool)  # the pairs of rows equal on the keys so far
    for key in keys:
        before, after = key[:-1], key[1:]
        if bool((tied & (before > after)).any()):
            return False
        tied &= before == after
        if not tied.any():
            break
    return True


def _key_columns(df: pd.DataFrame, keys: list[str]) -> list[np.ndarray | pd.api.extensions.ExtensionArray] | None:
    """The key columns as :func:`sort_order` takes them when it gives ``sort_values``' order exactly: text (str
    and missing values only), ``Int64`` and ``float64`` below 2**53 (the integers a float holds); None for any
    other column (``sort_values`` decides)."""
    out: list[np.ndarray | pd.api.extensions.ExtensionArray] = []
    for k in keys:
        col = df[k]
        if col.dtype == object:
            values = col.to_numpy()
            if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
                return None
            out.append(values)
        elif isinstance(col.dtype, pd.Int64Dtype) or col.dtype == np.float64:
            known = col.dropna().to_numpy(dtype="float64")
            if len(known) and not bool((np.abs(known) < 2.0**53).all()):
                return None
            out.append(col.array if isinstance(col.dtype, pd.Int64Dtype) else col.to_numpy())
        else:
            return None
    return out


def in_key_order(df: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """``df.sort_values(names, kind='mergesort', na_position='first').reset_index(drop=True)``; ``df`` itself when
    its rows are in that order already and its index is 0..n-1 (a dataset of one partition, built in key order)."""
    columns = _key_columns(df, names)
    if columns is None:
        return df.sort_values(names, kind="mergesort", na_position="first").reset_index(drop=True)
    keys = _sort_keys(columns)
    if _in_order(keys):
        return _numbered(df)
    return df.take(np.lexsort(keys[::-1])).reset_index(drop=True)


def _numbered(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the index 0..n-1: itself when it has it (no copy), else ``reset_index(drop=True)``."""
    index = df.index
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return df
    return df.reset_index(drop=True)


def stack(results: Iterable[Frames], specs: Mapping[str, DatasetSpec]) -> Frames:
    """Concatenate per-partition datasets and restore the spec's key order (stable, missing values first). A
    dataset of one partition, already in key order with the index 0..n-1, is passed on as it is (not copied)."""
    collected: dict[str, list[pd.DataFrame]] = {}
    for frames in results:
        for name, df in frames.items():
            collected.setdefault(name, []).append(df)
    out: Frames = {}
    for name, pieces in collected.items():
        nonempty = [p for p in pieces if len(p)] or pieces[:1]
        df = pd.concat(nonempty, ignore_index=True) if len(nonempty) > 1 else _numbered(nonempty[0])
        spec = specs.get(name)
        keys = [k for k in (spec.keys if spec else ()) if k in df.columns]
        if keys and len(df):
            df = in_key_order(df, keys)
        widened = [(c, t) for c, t in pieces[0].dtypes.items() if str(df[c].dtype) != str(t)]
        if widened and df is nonempty[0]:
            df = df.copy()  # the caller's frame is not changed
        for col, dtype in widened:  # concat of empty/object pieces may widen dtypes
            df[col] = df[col].astype(dtype)
        out[name] = df
    return out


def map_partitions(parts: Iterable[Records], fn: Callable[[Records], Frames]) -> Iterator[Frames]:
    for part in parts:
        yield fn(part)
