"""Checks whose result is a pure function of file contents, remembered per process under the contents' hashes.

``inoconv run`` writes a package and verifies it (define.xml against the XSD, the cross-check of define.xml with
the datasets read back, each XPT read back equal to its Dataset-JSON), and later, in the same process, validates
the same folder, which runs the same checks on the same bytes. A check that keys its result here on the SHA-256
of every file it reads (plus whatever else its result depends on: the dataset name, the spec's part it uses)
finds the result of the first run when it runs again on the same contents; a file whose bytes changed gives
another key, so the check runs again. Only results are kept (tuples of messages, never frames or trees), at most
:data:`MAX_ENTRIES` of them and :data:`MAX_CHARS` characters of messages in all, least recently used dropped
first. A check that raised is not remembered. A new process starts empty: ``inoconv validate`` run alone does
every check itself. :func:`snapshot` and :func:`seed` hand the results to another process of the same run
(``inoconv run``'s two processes: what one checked while writing a package, the other need not check again when
it validates that package; the keys hold the contents' hashes, so a result is used only for the same bytes).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

__all__ = [
    "MAX_CHARS",
    "MAX_ENTRIES",
    "clear",
    "file_digest",
    "known",
    "lookup",
    "remember",
    "remembered",
    "seed",
    "snapshot",
    "stats",
]

MAX_ENTRIES = 4096
MAX_CHARS = 8 * 1024 * 1024
_MAX_FILE_BYTES = 256 * 1024 * 1024  # larger files are not hashed: their checks simply run each time

_lock = threading.Lock()
_memo: OrderedDict[Hashable, tuple[str, ...]] = OrderedDict()
_chars = 0
_stats = {"computed": 0, "reused": 0}


def file_digest(path: Path) -> bytes | None:
    """SHA-256 of the bytes of the regular file ``path``; None when it is not one, cannot be read or is too large
    to hash (a check on it is then not remembered)."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE_BYTES:
            return None
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def _size(value: tuple[str, ...]) -> int:
    return sum(len(m) for m in value) + 1


def lookup(key: Hashable) -> tuple[str, ...] | None:
    """The result remembered under ``key``, or None."""
    with _lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            _stats["reused"] += 1
    return hit


def remember(key: Hashable, value: Iterable[str]) -> None:
    """Keep ``value`` under ``key`` (``key`` must name every content the value depends on)."""
    global _chars
    kept = tuple(str(v) for v in value)
    size = _size(kept)
    if size > MAX_CHARS:
        return
    with _lock:
        _stats["computed"] += 1
        old = _memo.pop(key, None)
        if old is not None:
            _chars -= _size(old)
        _memo[key] = kept
        _chars += size
        while len(_memo) > MAX_ENTRIES or _chars > MAX_CHARS:
            _, dropped = _memo.popitem(last=False)
            _chars -= _size(dropped)


def remembered(key: Hashable | None, compute: Callable[[], list[str]]) -> list[str]:
    """``compute()``, or its result remembered under ``key`` (None: not rememberable, always computed)."""
    if key is None:
        return compute()
    hit = lookup(key)
    if hit is not None:
        return list(hit)
    value = compute()
    remember(key, value)
    return value


def known(key: Hashable) -> bool:
    """A fact (an empty result) remembered under ``key``."""
    return lookup(key) is not None


def stats() -> dict[str, int]:
    with _lock:
        return dict(_stats, entries=len(_memo), chars=_chars)


def clear() -> None:
    global _chars
    with _lock:
        _memo.clear()
        _chars = 0
        _stats.update(computed=0, reused=0)


def snapshot() -> bytes:
    """Every remembered result with its key, pickled (for :func:`seed` in another process of the same program)."""
    with _lock:
        entries = list(_memo.items())
    return pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)


def seed(data: bytes) -> None:
    """Remember the results of a :func:`snapshot` (made by this program: never give it bytes from elsewhere);
    a key remembered here already keeps its result."""
    if not data:
        return
    entries: list[tuple[Hashable, tuple[str, ...]]] = pickle.loads(data)
    for key, value in entries:
        if lookup(key) is None:
            remember(key, value)
