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


def stack(results: Iterable[Frames], specs: Mapping[str, DatasetSpec]) -> Frames:
    """Concatenate per-partition datasets and restore the spec's key order (stable)."""
    collected: dict[str, list[pd.DataFrame]] = {}
    for frames in results:
        for name, df in frames.items():
            collected.setdefault(name, []).append(df)
    out: Frames = {}
    for name, pieces in collected.items():
        nonempty = [p for p in pieces if len(p)] or pieces[:1]
        df = pd.concat(nonempty, ignore_index=True) if len(nonempty) > 1 else nonempty[0].reset_index(drop=True)
        spec = specs.get(name)
        keys = [k for k in (spec.keys if spec else ()) if k in df.columns]
        if keys and len(df):
            df = df.sort_values(keys, kind="mergesort", na_position="first").reset_index(drop=True)
        for col, dtype in pieces[0].dtypes.items():  # concat of empty/object pieces may widen dtypes
            if str(df[col].dtype) != str(dtype):
                df[col] = df[col].astype(dtype)
        out[name] = df
    return out


def map_partitions(parts: Iterable[Records], fn: Callable[[Records], Frames]) -> Iterator[Frames]:
    for part in parts:
        yield fn(part)
