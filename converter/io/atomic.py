"""Atomic output: a file or a folder appears complete or not at all.

Everything is first written under a temporary name in the destination's own folder (so the final rename stays
on one file system and is atomic), then renamed over the destination. If writing fails, the temporary is
removed and an existing destination is left untouched.

``atomic_write(path)`` yields a binary (or, with ``text=True``, a UTF-8 text) file object;
``atomic_dir(path)`` yields a fresh empty temporary folder to fill, which then takes the place of ``path`` (a
folder that does not exist yet, or an empty one: it never deletes anything). ``sync_tree(folder)`` puts every
file and folder name under ``folder`` on disk, so that a manifest written after it never claims files a crash
could still take away; ``sync_file(path)`` does it for one file and ``sync_dir(folder)`` for one folder's names
(after a rename into it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Literal, overload

__all__ = ["atomic_dir", "atomic_write", "sync_dir", "sync_file", "sync_tree"]

_SYNC_THREADS = 8  # fsync waits on the disk with the GIL released: a few at once hide most of the latency


def sync_dir(path: Path) -> None:
    """The names in folder ``path`` (files created or renamed into it) on disk."""
    _fsync_dir(path)


def sync_file(path: Path) -> None:
    """File ``path``'s data on disk (``fsync``)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path, skip: Collection[str] = ()) -> None:
    """Every file under ``folder`` on disk (``fsync``), then every folder's names, deepest first. ``skip``: paths
    relative to ``folder``, in POSIX form, of files already written out by their writer (an NDJSON part closed
    by :func:`converter.io.settle.close_settled`)."""
    files: list[Path] = []
    dirs: list[Path] = [folder]
    for root, subdirs, names in os.walk(folder):
        base = Path(root)
        dirs.extend(base / d for d in subdirs)
        files.extend(
            f for f in (base / n for n in names) if not f.is_symlink() and f.relative_to(folder).as_posix() not in skip
        )
    if len(files) > 1:
        with ThreadPoolExecutor(_SYNC_THREADS) as pool:
            list(pool.map(sync_file, files))  # list(): an OSError of any file is raised here
    elif files:
        sync_file(files[0])
    for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        _fsync_dir(d)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@overload
def atomic_write(
    path: Path | str, *, text: Literal[False] = False, fsync: bool = ...
) -> contextlib.AbstractContextManager[IO[bytes]]: ...


@overload
def atomic_write(
    path: Path | str, *, text: Literal[True], encoding: str = ..., newline: str | None = ..., fsync: bool = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...


def atomic_write(
    path: Path | str,
    *,
    text: bool = False,
    encoding: str = "utf-8",
    newline: str | None = "",
    fsync: bool = True,
) -> contextlib.AbstractContextManager[Any]:
    """Write ``path`` atomically: ``with atomic_write(p) as fh: fh.write(b"...")``.

    The parent folder must exist. ``text=True`` opens in text mode (``encoding``, ``newline`` as for
    :func:`open`; the default ``newline=""`` writes line ends exactly as given).
    """
    return _atomic_write(Path(path), text, encoding, newline, fsync)


@contextlib.contextmanager
def _atomic_write(path: Path, text: bool, encoding: str, newline: str | None, fsync: bool) -> Iterator[Any]:
    parent = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    tmp = Path(tmp_name)
    try:
        if text:
            fh: IO[Any] = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        else:
            fh = os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        # mkstemp creates the file 0600; give the result the usual permissions of a new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        if fsync:
            _fsync_dir(parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Build a folder as a whole: ``with atomic_dir(out) as tmp: (tmp / "a.csv").write_text(...)``.

    On success the temporary folder takes the place of ``path``, which must not exist or be an empty folder:
    this never deletes a file. (Replacing a folder of earlier output, refusing folders with other files, and
    the provenance manifest are :func:`converter.io.outdir.output_folder`'s job.) On failure nothing at
    ``path`` changes.
    """
    path = Path(path)
    parent = path.parent
    if path.exists() and not path.is_dir():
        raise FileExistsError(errno.EEXIST, "exists and is not a folder", str(path))
    if path.is_dir() and any(path.iterdir()):
        raise FileExistsError(errno.ENOTEMPTY, "folder not empty (atomic_dir never replaces files)", str(path))
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if path.is_dir():
            path.rmdir()  # empty (checked above; rmdir fails rather than delete anything that appeared since)
        os.replace(tmp, path)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
