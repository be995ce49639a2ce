"""The upload journal: which bundles a server has accepted, so a rerun after a crash skips them.

One JSON object a line (JSON Lines), appended with ``O_APPEND``, one ``write`` per line, then ``fsync``:
a line is on disk before the upload counts the bundle as done. A crash (SIGKILL, power loss) can at worst
leave a torn last line; reading ignores it, and the next append starts on a fresh line.

Key of an accepted bundle: its name, the sha256 of the exact content sent, and the server (normalised, no
credentials). A changed bundle (new sha256) or another server is not skipped.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

JOURNAL_NAME = ".upload-journal.jsonl"
VERSION = 1


def server_key(server: str) -> str:
    """``scheme://host:port/path`` lower-cased where it is case-blind, without credentials or slash."""
    parts = urlsplit(server.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit((parts.scheme.lower(), host + port, parts.path.rstrip("/"), "", ""))


@dataclass
class JournalState:
    """What a journal file holds for one server."""

    accepted: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    lines: int = 0
    torn_tail: bool = False
    bad_lines: int = 0


class Journal:
    """Append-only, fsync'ed, thread-safe JSON-lines journal."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._fd: int | None = None

    # -- reading ----------------------------------------------------------------------------------------------

    def read(self, server: str) -> JournalState:
        state = JournalState()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return state
        key = server_key(server)
        raw_lines = data.split(b"\n")
        for i, raw in enumerate(raw_lines):
            if not raw.strip():
                continue
            is_last = i == len(raw_lines) - 1  # no newline after it: possibly torn by a crash
            try:
                rec = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                if is_last:
                    state.torn_tail = True
                else:
                    state.bad_lines += 1
                continue
            if not isinstance(rec, dict):
                state.bad_lines += 1
                continue
            state.lines += 1
            if rec.get("event") == "accepted" and rec.get("server") == key:
                name, sha = rec.get("bundle"), rec.get("sha256")
                if isinstance(name, str) and isinstance(sha, str):
                    state.accepted[(name, sha)] = rec
        return state

    # -- writing ----------------------------------------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if existed:
            # a crash may have left a torn last line: start ours on a fresh one
            size = os.fstat(fd).st_size
            if size:
                with self.path.open("rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        os.write(fd, b"\n")
        else:
            _fsync_dir(self.path.parent)
        self._fd = fd
        return fd

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            fd = self._open()
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)

    def record_accepted(
        self,
        bundle: str,
        sha256: str,
        server: str,
        *,
        status: int,
        counts: dict[str, dict[str, int]],
        ids: dict[str, str] | None = None,
    ) -> None:
        rec: dict[str, Any] = {
            "v": VERSION,
            "event": "accepted",
            "bundle": bundle,
            "sha256": sha256,
            "server": server_key(server),
            "status": status,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "counts": counts,
        }
        if ids:
            rec["ids"] = ids
        self.append(rec)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
