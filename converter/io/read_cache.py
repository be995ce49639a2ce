"""Reading the same file content twice in one process parses it once.

``inoconv run`` writes each package, verifies it by reading it back, and then the next stages read the same files
again (ADaM reads SDTM, FHIR reads SDTM, the report reads ADaM, validate reads both, the round trip SDTM again):
about five parses of every XPT file. :func:`by_content` keys a reader's result on the SHA-256 of the file's
bytes, so the first read of some content parses it (the read-back verification of a package always parses what
was written: nothing is put in the cache from the frames that were written) and a later read of the same bytes,
under any path, gets a copy of that result. A file whose bytes changed is parsed again. A read that fails is not
cached (the next read fails the same way, naming its file). Each caller gets its own deep copy of the frame: the
cached one cannot be changed through a result.

The cache is bounded (:data:`MAX_FILE_BYTES` per file, :data:`MAX_TOTAL_BYTES` of file content in all, least
recently used dropped first), so large packages are simply read each time.

:func:`snapshot` and :func:`seed` hand the cache to another process (``inoconv run``'s child for ADaM and the
report gets the SDTM package the stage here just read back): entries are keyed by content, so a seeded entry is
used only for a file with exactly those bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_TOTAL_BYTES = 128 * 1024 * 1024

M = TypeVar("M")

_lock = threading.Lock()
_cache: OrderedDict[tuple[str, bytes], tuple[pd.DataFrame, Any, int]] = OrderedDict()
_stats = {"parsed": 0, "reused": 0}


def _copy_meta(meta: M) -> M:
    """A frozen dataclass with a mutable ``extra`` dict gets its own (deep) copy; anything else is returned as it
    is."""
    extra = getattr(meta, "extra", None)
    if dataclasses.is_dataclass(meta) and not isinstance(meta, type) and isinstance(extra, dict):
        return dataclasses.replace(meta, extra=copy.deepcopy(extra))
    return meta


def by_content(path: Path, kind: str, read: Callable[[Path], tuple[pd.DataFrame, M]]) -> tuple[pd.DataFrame, M]:
    """``read(path)``, or a copy of its result for the same bytes read before with the same ``kind`` of reader."""
    try:
        size = path.stat().st_size
    except OSError:
        return read(path)  # the reader says what is wrong, naming the file
    if size > MAX_FILE_BYTES:
        return read(path)
    key = (kind, hashlib.sha256(path.read_bytes()).digest())
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            _stats["reused"] += 1
    if hit is not None:
        return hit[0].copy(deep=True), _copy_meta(hit[1])
    df, meta = read(path)
    with _lock:
        _stats["parsed"] += 1
        _cache[key] = (df.copy(deep=True), _copy_meta(meta), size)
        total = sum(entry[2] for entry in _cache.values())
        while total > MAX_TOTAL_BYTES and len(_cache) > 1:
            _, dropped = _cache.popitem(last=False)
            total -= dropped[2]
    return df, meta


def stats() -> dict[str, int]:
    """How many reads parsed a file and how many got a cached result, since the process started (or :func:`clear`)."""
    with _lock:
        return dict(_stats, cached=len(_cache))


def clear() -> None:
    with _lock:
        _cache.clear()
        _stats.update(parsed=0, reused=0)


def keys() -> frozenset[tuple[str, bytes]]:
    """The keys of the entries now in the cache (to leave them out of a later :func:`snapshot`)."""
    with _lock:
        return frozenset(_cache)


def snapshot(skip: frozenset[tuple[str, bytes]] = frozenset()) -> bytes:
    """The cache's entries, pickled (for :func:`seed` in another process of the same program); ``skip``: keys
    (from :func:`keys`) of entries the other process has already."""
    with _lock:
        entries = [(k, v) for k, v in _cache.items() if k not in skip]
    return pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)


def seed(data: bytes) -> None:
    """Add the entries of a :func:`snapshot` (made by this program: never give it bytes from elsewhere)."""
    if not data:
        return
    entries: list[tuple[tuple[str, bytes], tuple[pd.DataFrame, Any, int]]] = pickle.loads(data)
    with _lock:
        for key, entry in entries:
            _cache.setdefault(key, entry)
