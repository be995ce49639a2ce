"""close_settled: a large write-once file closed on disk and out of the page cache, its bytes unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from converter.io.settle import close_settled


def test_bytes_written_and_file_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_sync, real_advise = os.fdatasync, os.posix_fadvise
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append("sync"), real_sync(fd))[1])
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, o, n, a: (calls.append(f"advise {a}"), real_advise(fd, o, n, a))[1])
    path = tmp_path / "x.ndjson"
    fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
    fh.write(b'{"a":1}\n' * 1000)
    close_settled(fh)
    assert fh.closed
    assert path.read_bytes() == b'{"a":1}\n' * 1000
    assert calls == ["sync", f"advise {os.POSIX_FADV_DONTNEED}"]  # written out before its pages are dropped


def test_platform_without_the_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "fdatasync")
    monkeypatch.delattr(os, "posix_fadvise")
    path = tmp_path / "x.ndjson"
    fh = open(path, "wb")  # noqa: SIM115
    fh.write(b"line\n")
    close_settled(fh)
    assert fh.closed and path.read_bytes() == b"line\n"


def test_closed_when_the_sync_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", fail)
    fh = open(tmp_path / "x", "wb")  # noqa: SIM115
    fh.write(b"x")
    with pytest.raises(OSError, match="No space"):
        close_settled(fh)
    assert fh.closed
