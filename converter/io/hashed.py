"""Files hashed while they are written, so that the run's manifest need not read back what it just wrote.

A registry-sized run writes tens of GB (100,000 subjects: about 22 GB of FHIR NDJSON), and the manifest of its
output folder holds every file's SHA-256. Read back after the run, the files come from disk (they are too big for
the page cache, and :func:`converter.io.settle.close_settled` drops them from it): ~50 s of a single process at
30,000 subjects. :func:`open_hashed` gives a buffered file whose bytes are hashed as they go to the OS, in the
worker that writes them; :func:`written` is the file's :class:`Written` record once it is closed.
:func:`converter.io.manifest.build_manifest` takes such records for files whose size and modification time are
still the recorded ones, and hashes every other file itself.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["HashedFile", "Written", "open_hashed", "written"]


@dataclass(frozen=True)
class Written:
    """A file as its writer left it: SHA-256 and size of its bytes, and its modification time then."""

    sha256: str
    bytes: int
    mtime_ns: int

    def still(self, path: Path) -> bool:
        """Whether ``path`` still has the size and modification time it was recorded with."""
        try:
            st = path.lstat()
        except OSError:
            return False
        return st.st_size == self.bytes and st.st_mtime_ns == self.mtime_ns


class HashedFile(io.RawIOBase):
    """A raw binary file that hashes every byte written through it (wrap it in a buffer: :func:`open_hashed`)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        self._sha = hashlib.sha256()
        self._size = 0

    @property
    def name(self) -> str:  # as FileIO's: what the buffer over it reports as its ``name``
        return str(self.path)

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, b: ReadableBuffer) -> int:
        view = memoryview(b)
        n = os.write(self._fd, view)
        self._sha.update(view[:n])
        self._size += n
        return n

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._fd)
            finally:
                super().close()

    def written(self) -> Written:
        """The record of the closed file (its bytes as hashed, its modification time now)."""
        if not self.closed:
            raise ValueError(f"{self.path}: still open")
        return Written(self._sha.hexdigest(), self._size, self.path.lstat().st_mtime_ns)


def open_hashed(path: Path, buffering: int = io.DEFAULT_BUFFER_SIZE) -> io.BufferedWriter:
    """``path`` opened for writing (created or truncated) through a buffer of ``buffering`` bytes over a
    :class:`HashedFile`; :func:`written` gives its record once it is closed."""
    return io.BufferedWriter(HashedFile(path), buffer_size=buffering)


def written(fh: io.BufferedWriter) -> Written:
    """The record of a closed file of :func:`open_hashed`."""
    raw = fh.raw
    if not isinstance(raw, HashedFile):
        raise TypeError(f"{fh!r} was not opened by open_hashed")
    return raw.written()
