"""Output folders that never lose anything: the one way every inoconv command writes its ``--out``.

The rule (README, "Output folders"):

* ``--out`` equal to, inside, or containing an input path (or the mappings folder) is refused before anything
  is read; paths are compared with symlinks resolved, so ``--out .`` and ``--out ..`` are caught too.
* A folder that does not exist, or is empty, is fine. A folder carrying inoconv's own ``manifest.json`` may be
  replaced when every file in it is listed by that manifest. Anything else in it (a file inoconv did not
  write), or a non-empty folder without an inoconv manifest, is refused, naming the folder and why, unless
  ``overwrite`` (``--overwrite``) is given; then inoconv's files are written into it and every other file stays.
  ``inoconv upload``'s journal (:data:`converter.io.manifest.COMPANIONS`) always stays.
* An exclusive lock (``fcntl.flock`` on ``OUT/.inoconv-lock``) is held from the check to the end: a second
  command into the same folder fails at once.
* Everything is built in a staging folder beside ``OUT`` (same file system); ``manifest.json`` is written
  last, then the folder is put in place as a whole (file by file, the old manifest removed first, when files
  must stay or ``OUT`` is the current folder). A failure (bad input, disk full, a permission error) removes the
  staging folder and leaves ``OUT`` as it was: never a partial folder that looks complete. The staging folder's
  name carries the process id (``.OUT.inoconv-PID-XXXX.tmp``): one left by a killed process (``kill -9``) is
  removed by the next command into ``OUT`` (:func:`remove_stale_staging`), and nothing else is.
* :func:`output_file` is the same rule for a command whose output is one file (``OUT.manifest.json`` beside it).

Usage::

    with output_folder(out, command=argv, inputs=[source]) as dest:
        write_things(dest.path)           # the staging folder
        echo = dest.echo(echo)            # messages name OUT, not the staging folder
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter import __version__
from converter.errors import ConformanceError, InputError, problem
from converter.io.atomic import sync_dir, sync_file, sync_tree
from converter.io.hashed import Written
from converter.io.manifest import (
    COMPANIONS,
    LOCK_NAME,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    build_manifest,
    file_entries,
    folder_files,
    now,
    read_manifest,
    read_manifest_file,
    write_manifest_file,
)

__all__ = [
    "OutputFolder",
    "check_out_paths",
    "missing_path",
    "output_file",
    "output_folder",
    "remove_stale_staging",
    "require_inputs",
    "seal_folder",
    "sidecar_manifest",
]

Echo = Callable[[str], Any]

MISSING = "No such file or folder"


def missing_path(path: Path | str) -> FileNotFoundError:
    """The one error for a path that is not there; the CLI prints ``No such file or folder: PATH`` (exit 2)."""
    return FileNotFoundError(errno.ENOENT, MISSING, str(path))


def require_inputs(paths: Sequence[Path | str | None]) -> None:
    """Every given input path exists (a broken symlink counts as missing), else :func:`missing_path`."""
    for p in paths:
        if p is not None and not os.path.exists(p):
            raise missing_path(p)


def _refuse(out: Path, why: str) -> InputError:
    return InputError(problem(str(out), "", "--out", "", "output-folder", why))


def _real(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def check_out_paths(out: Path, inputs: Sequence[Path], specs: Path | None = None) -> None:
    """Refuse ``out`` equal to, inside or containing an input (or the specs folder).

    (Missing inputs: :func:`require_inputs`.)"""
    target = _real(out)
    named = [(p, "input") for p in inputs] + ([(specs, "mappings folder")] if specs is not None else [])
    for given, what in named:
        real = _real(given)
        if real == target:
            raise _refuse(out, f"is the {what} {given}: the output must go to a folder of its own")
        if real in target.parents:
            raise _refuse(out, f"is inside the {what} {given}: the output must not be written into what it reads")
        if target in real.parents:
            raise _refuse(out, f"contains the {what} {given}: the output must not hold what it reads")


def _foreign(out: Path) -> tuple[Manifest | None, list[str]]:
    """(inoconv's manifest in ``out`` if any, the entries in ``out`` that manifest does not account for)."""
    manifest = read_manifest(out)
    present = folder_files(out)
    listed = manifest.output_paths() if manifest is not None else set()
    foreign = [r for r in present if r not in listed and Path(r).name not in COMPANIONS]
    if manifest is None and os.path.lexists(out / MANIFEST_NAME):
        foreign.append(MANIFEST_NAME)  # someone else's manifest.json is the user's file like any other
    dirs_needed = {str(Path(r).parent.as_posix()) for r in listed}
    for d in list(dirs_needed):  # every ancestor of a listed file is inoconv's folder too
        dirs_needed |= {p.as_posix() for p in Path(d).parents}
    for root, dirs, _files in os.walk(out):  # empty folders inoconv did not make are the user's too
        for name in dirs:
            full = Path(root) / name
            rel = full.relative_to(out).as_posix()
            if not full.is_symlink() and not any(full.iterdir()) and rel not in dirs_needed:
                foreign.append(rel + "/")
    return manifest, sorted(foreign)


def _inspect(out: Path, overwrite: bool, shown: Path | None = None) -> Manifest | None:
    """Refuse ``out`` unless it may be written; returns its earlier inoconv manifest (None: none, or empty).

    ``shown``: the path as the user gave it, for the messages."""
    named = out if shown is None else shown
    if os.path.lexists(out) and (out.is_symlink() and not out.is_dir()):
        raise _refuse(named, "is a symbolic link to nothing or to a file, not a folder")
    for d in out.parents:  # the nearest existing parent must be a folder (else: "Not a directory", with its path)
        if os.path.lexists(d):
            if not d.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(d))
            break
    if not out.exists():
        return None
    if not out.is_dir():
        raise _refuse(named, "exists and is not a folder")
    manifest, foreign = _foreign(out)
    if not foreign or overwrite:
        return manifest
    listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    if manifest is None:
        why = (f"is not empty and has no inoconv manifest.json ({listed}); inoconv writes only into a new or "
               "empty folder or one it wrote itself; choose another --out, or give --overwrite to write into it "
               "(files of other names stay)")  # fmt: skip
    else:
        why = (f"holds files inoconv did not write ({listed}; not in its manifest.json); move them away, choose "
               "another --out, or give --overwrite (they stay)")  # fmt: skip
    raise _refuse(named, why)


class _Lock:
    """``flock(LOCK_EX | LOCK_NB)`` on ``folder/.inoconv-lock``; fails at once when another process holds it."""

    def __init__(self, folder: Path, out_display: Path) -> None:
        self.path = folder / LOCK_NAME
        self.out = out_display
        self.fd = -1

    def acquire(self) -> None:
        import fcntl

        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = b""
                with contextlib.suppress(OSError):
                    holder = os.pread(fd, 200, 0)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    who = holder.decode("utf-8", "replace").strip()
                    raise _refuse(
                        self.out,
                        f"another inoconv command is writing into this folder ({who or 'lock ' + str(self.path)});"
                        " wait for it to finish or choose another --out",
                    ) from None
                raise
            try:  # the file may have been unlinked (and the folder replaced) between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv[1:3]) or 'inoconv'}\n".encode(), 0)
                self.fd = fd
                return
            os.close(fd)
        raise _refuse(self.out, "the folder kept changing while inoconv tried to lock it")

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = -1


@dataclass
class OutputFolder:
    """What a command writes into: ``path`` (the staging folder), finally moved to ``final``."""

    final: Path
    path: Path
    inputs: tuple[Path, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)
    #: files the command hashed as it wrote them (:mod:`converter.io.hashed`), by path relative to ``path``
    written: dict[str, Written] = field(default_factory=dict)

    def echo(self, fn: Echo) -> Echo:
        """``fn`` with the staging folder's path shown as the final one."""
        staged, final = str(self.path), str(self.final)

        def echo(msg: str) -> Any:
            return fn(msg.replace(staged, final))

        return echo


def _specs_folder() -> Path | None:
    from converter.paths import mappings_dir

    folder = mappings_dir()
    return folder if folder.is_dir() else None


def _command(argv: Sequence[str] | None) -> tuple[str, ...]:
    args = list(sys.argv if argv is None else argv)
    if argv is None and args:
        args[0] = "inoconv" if args[0].endswith(("inoconv", "cli.py", "__main__.py")) else Path(args[0]).name
    return tuple(args)


def seal_folder(
    folder: Path,
    *,
    command: Sequence[str] | None = None,
    inputs: Sequence[Path] = (),
    input_entries: tuple[FileEntry, ...] | None = None,
    notes: dict[str, Any] | None = None,
    kept: Sequence[str] = (),
    written: Mapping[str, Written] | None = None,
) -> Path:
    """Write ``folder``'s manifest (its last file): every file in it, the inputs and the specs, hashed (``written``:
    files hashed as they were written, see :func:`~converter.io.manifest.build_manifest`)."""
    specs = _specs_folder()
    manifest = build_manifest(
        folder,
        command=_command(command),
        inputs=input_entries if input_entries is not None else file_entries([_real(p) for p in inputs]),
        specs_folder=specs,
        specs=file_entries([specs], base=specs) if specs is not None else (),
        extra=notes,
        kept=kept,
        written=written,
    )
    return write_manifest_file(folder / MANIFEST_NAME, manifest)


def _move_in(staging: Path, out: Path, old: Manifest | None, whole: bool) -> None:
    """Put the finished staging folder in place of ``out``; ``whole``: ``out`` holds only inoconv's files."""
    if whole:
        parked = Path(tempfile.mkdtemp(prefix=_staging_prefix(out, "old-"), suffix=".tmp", dir=out.parent))
        parked.rmdir()
        os.rename(out, parked)
        try:
            os.rename(staging, out)
        except OSError:
            os.rename(parked, out)
            raise
        sync_dir(out.parent)  # the swap itself on disk
        shutil.rmtree(parked, ignore_errors=True)
        return
    # --overwrite into a folder with files inoconv did not write: file by file, those files stay.
    new = folder_files(staging)
    with contextlib.suppress(FileNotFoundError):
        if old is not None:
            (out / MANIFEST_NAME).unlink()  # from here on the folder does not look complete
    for rel in new:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_dir() and not dest.is_symlink():
            raise _refuse(out, f"{rel} is a folder there; inoconv would have to replace it with a file")
        os.replace(staging / rel, dest)
    for rel in sorted((old.output_paths() if old is not None else set()) - set(new)):  # inoconv's stale files
        with contextlib.suppress(FileNotFoundError):
            (out / rel).unlink()
    for folder in sorted({(out / rel).parent for rel in new}, key=lambda d: len(d.parts), reverse=True):
        sync_dir(folder)  # the files moved in, on disk before the manifest that lists them
    os.replace(staging / MANIFEST_NAME, out / MANIFEST_NAME)
    sync_dir(out)
    shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def output_folder(
    out: Path | str,
    *,
    inputs: Sequence[Path | str] = (),
    overwrite: bool = False,
    command: Sequence[str] | None = None,
    hash_inputs: bool = True,
) -> Iterator[OutputFolder]:
    """Check, lock and stage ``out``; on success seal it with its manifest and put it in place (module doc).

    Raises InputError (exit 2) for a refused folder, before anything is read.
    """
    shown = Path(out)
    out = Path(os.path.abspath(shown))  # "." and ".." become names a folder can be swapped by
    if out.is_symlink() and out.is_dir():
        out = _real(out)  # write into the folder the link points to; the link itself stays
    ins = [Path(p) for p in inputs]
    require_inputs(ins)
    check_out_paths(shown, ins, _specs_folder())
    _inspect(out, overwrite, shown)  # refuse early, before creating anything
    made = [d for d in [out.parent, *out.parent.parents] if not d.exists()]  # parents we create, deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    created = False
    if not out.exists():
        with contextlib.suppress(FileExistsError):
            out.mkdir()
            created = True
    lock = _Lock(out, shown)
    lock_was_there = lock.path.exists()
    staging: Path | None = None
    done = False
    try:
        lock.acquire()
        old = _inspect(out, overwrite, shown)  # again, now that no other inoconv can change it
        remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(out), suffix=".tmp", dir=out.parent))
        dest = OutputFolder(final=shown, path=staging, inputs=tuple(ins))
        try:
            yield dest
        except OSError as exc:  # name the file where it was going, not the staging folder
            raise _renamed(exc, staging, shown) from exc
        except ConformanceError as exc:
            if any(str(staging) in m for m in exc.messages):
                raise ConformanceError([m.replace(str(staging), str(shown)) for m in exc.messages]) from exc
            raise
        new = set(folder_files(staging))
        _, foreign = _foreign(out)
        stay = [r for r in folder_files(out) if Path(r).name in COMPANIONS and r not in new]
        kept = [r for r in foreign if r not in new and not r.endswith("/")] + stay
        sync_tree(staging, skip=dest.written)  # on disk before the manifest says the folder is complete
        seal_folder(staging, command=command, inputs=dest.inputs if hash_inputs else (), notes=dest.notes, kept=kept,
                    written=dest.written)  # fmt: skip
        cwd = Path(os.getcwd())
        inside = cwd == out or out in cwd.parents  # never swap away the folder a shell stands in
        _move_in(staging, out, old, whole=not foreign and not stay and not inside)
        staging = None
        done = True
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not lock_was_there and lock.fd >= 0:  # take back the lock file we made (none after a whole swap)
            with contextlib.suppress(OSError):
                (out / LOCK_NAME).unlink()
        if not done and created:
            for d in [out, *made]:  # the folder we made for the lock and its parents we made, when empty
                try:
                    d.rmdir()
                except OSError:
                    break
        lock.release()


def _staging_prefix(out: Path, kind: str = "") -> str:
    """``.NAME.inoconv-[old-]PID-``: the staging (or parked) folder beside ``out`` names the process that made it."""
    return f".{out.name}.inoconv-{kind}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders a killed inoconv (``kill -9``, power loss) left beside ``out``.

    Only folders named by inoconv's own pattern for this ``out`` (``.NAME.inoconv-[old-]PID-XXXX.tmp``, not a
    symbolic link) whose process ``PID`` is gone; nothing else, not a file, not another name, not a folder of a
    live process. Called with ``out``'s lock held. Returns what was removed."""
    pattern = re.compile(r"\." + re.escape(out.name) + r"\.inoconv-(?:old-)?(\d+)-[A-Za-z0-9_]+\.tmp")
    removed: list[Path] = []
    try:
        names = os.listdir(out.parent)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        path = out.parent / name
        pid = int(m.group(1))
        if pid == os.getpid() or _alive(pid) or path.is_symlink() or not path.is_dir():
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed


def _renamed(exc: OSError, staging: Path, out: Path) -> OSError:
    names = [
        str(f).replace(str(staging), str(out), 1) if f is not None else None for f in (exc.filename, exc.filename2)
    ]
    if names == [exc.filename, exc.filename2] or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, names[0], None, names[1])


def sidecar_manifest(path: Path) -> Path:
    """Where the manifest of a single output file lives: ``NAME.manifest.json`` beside it."""
    return path.with_name(path.name + "." + MANIFEST_NAME)


@contextlib.contextmanager
def output_file(
    out: Path | str,
    *,
    inputs: Sequence[Path | str] = (),
    overwrite: bool = False,
    command: Sequence[str] | None = None,
) -> Iterator[Path]:
    """The same rule for a command whose output is one file (``simulate --format odm``): yields a staging path
    beside ``out``; on success it replaces ``out`` and ``OUT.manifest.json`` is written last.

    An existing ``out`` is replaced only when its sidecar manifest is inoconv's and lists it; else refused
    (exit 2) unless ``overwrite``.
    """
    out = Path(out)
    ins = [Path(p) for p in inputs]
    check_out_paths(out, ins, _specs_folder())
    side = sidecar_manifest(out)

    def inspect() -> None:
        if out.is_dir():
            raise _refuse(out, "is a folder; give a file name (or --format csv for a folder)")
        doc = _sidecar(side)
        ours = doc is not None and [e.path for e in doc.outputs] == [out.name]
        if overwrite or ours:
            return
        if os.path.lexists(side):
            raise _refuse(out, f"{side.name} beside it is not inoconv's manifest; choose another --out or give "
                          "--overwrite")  # fmt: skip
        if os.path.lexists(out):
            raise _refuse(out, "exists and inoconv did not write it (no manifest beside it); choose another --out "
                          "or give --overwrite")  # fmt: skip

    inspect()
    made = [d for d in [out.parent, *out.parent.parents] if not d.exists()]  # parents we create, deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out.parent, out)
    lock.path = out.parent / f".{out.name}{LOCK_NAME}"
    lock_was_there = lock.path.exists()
    staging: Path | None = None
    done = False
    try:
        lock.acquire()
        inspect()
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.inoconv-", suffix=".tmp", dir=out.parent)
        os.close(fd)
        staging = Path(name)
        yield staging
        sync_file(staging)  # its data on disk; its name after the rename with the manifest's folder sync
        if os.path.lexists(side):
            side.unlink()  # from here until the new manifest, the file does not look complete
        os.replace(staging, out)
        staging = None
        specs = _specs_folder()
        manifest = Manifest(
            version=__version__, command=_command(command), created=now(),
            inputs=file_entries([_real(p) for p in ins]), specs_folder=str(specs or ""),
            specs=file_entries([specs], base=specs) if specs is not None else (),
            outputs=file_entries([out], base=out.parent),
        )  # fmt: skip
        write_manifest_file(side, manifest)
        done = True
    finally:
        if staging is not None:
            with contextlib.suppress(OSError):
                staging.unlink()
        if not lock_was_there and lock.fd >= 0:
            with contextlib.suppress(OSError):
                lock.path.unlink()
        lock.release()
        if not done:
            for d in made:  # the parents we made, when empty
                try:
                    d.rmdir()
                except OSError:
                    break


def _sidecar(side: Path) -> Manifest | None:
    return read_manifest_file(side) if side.is_file() else None
