"""The provenance manifest of an output folder: ``manifest.json``, the last file a command writes.

It states which inoconv wrote the folder, with which command line and when, and the SHA-256 and size of every
input file, every spec file (everything under the mappings folder) and every output file. It is both the
provenance record a reviewer reads and the proof of ownership :mod:`converter.io.outdir` checks before it
replaces anything: a folder is inoconv's only when its manifest says so and lists every file in it.

``inoconv verify DIR`` is :func:`verify_folder`: re-hash, and report files added, missing or changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from converter.io.hashed import Written

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".inoconv-lock"
MARKER = "inoconv output manifest"
FORMAT_VERSION = 1
# Files that describe or guard the folder rather than being its content: never listed, never "added".
RUN_RECORDS = frozenset({MANIFEST_NAME, LOCK_NAME})
# Files another inoconv command keeps in an output folder after it was written: `inoconv upload`'s journal
# (converter.upload.journal.JOURNAL_NAME) in the FHIR folder. A re-run of the command that wrote the folder
# keeps them (never deletes, never refuses because of them); verify names them without checking them.
COMPANIONS = frozenset({".upload-journal.jsonl"})

__all__ = [
    "COMPANIONS",
    "LOCK_NAME",
    "MANIFEST_NAME",
    "RUN_RECORDS",
    "FileEntry",
    "Manifest",
    "VerifyReport",
    "build_manifest",
    "file_entries",
    "folder_files",
    "now",
    "read_manifest",
    "read_manifest_file",
    "sha256_file",
    "verify_folder",
    "verify_path",
    "write_manifest_file",
]


@dataclass(frozen=True)
class FileEntry:
    path: str  # output: relative to the folder, POSIX; input/spec: as given (absolute) / relative to mappings
    sha256: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class Manifest:
    version: str
    command: tuple[str, ...]
    created: str
    inputs: tuple[FileEntry, ...]
    specs_folder: str
    specs: tuple[FileEntry, ...]
    outputs: tuple[FileEntry, ...]
    extra: dict[str, Any] = field(default_factory=dict)
    kept: tuple[str, ...] = ()  # files in the folder inoconv did not write, left in place under --overwrite

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifest": MARKER,
            "format_version": FORMAT_VERSION,
            "inoconv_version": self.version,
            "command": list(self.command),
            "created": self.created,
            "inputs": [e.as_dict() for e in self.inputs],
            "specs": {"folder": self.specs_folder, "files": [e.as_dict() for e in self.specs]},
            "outputs": [e.as_dict() for e in self.outputs],
            **({"kept_not_ours": list(self.kept)} if self.kept else {}),
            **({"notes": self.extra} if self.extra else {}),
        }

    def output_paths(self) -> set[str]:
        return {e.path for e in self.outputs}


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex SHA-256, size in bytes) of one file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def _walk(folder: Path) -> Iterator[Path]:
    """Every file and symlink under ``folder`` (symlinks are not followed), sorted."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        base = Path(root)
        for name in sorted(files):
            yield base / name
        for name in dirs:
            if (base / name).is_symlink():
                yield base / name


def folder_files(folder: Path) -> list[str]:
    """Relative POSIX paths of everything in ``folder`` except its own manifest and lock file."""
    rels = [p.relative_to(folder).as_posix() for p in _walk(folder)]
    return [r for r in rels if r not in RUN_RECORDS]


def file_entries(
    paths: Iterable[Path], base: Path | None = None, written: Mapping[str, Written] | None = None
) -> tuple[FileEntry, ...]:
    """Entries for files, or for every file under a folder; paths relative to ``base`` when given. ``written``:
    files hashed by their writer (:mod:`converter.io.hashed`), by entry name; such a file is not read again while
    its size and modification time are the recorded ones."""
    out: list[FileEntry] = []
    for p in paths:
        files = list(_walk(p)) if p.is_dir() else [p]
        for f in files:
            if f.is_symlink() and f.is_dir():
                continue
            name = f.relative_to(base).as_posix() if base is not None else str(f)
            known = written.get(name) if written else None
            if known is not None and known.still(f):
                digest, size = known.sha256, known.bytes
            else:
                digest, size = sha256_file(f)
            out.append(FileEntry(name, digest, size))
    return tuple(out)


def build_manifest(
    folder: Path,
    *,
    command: Sequence[str],
    inputs: tuple[FileEntry, ...],
    specs_folder: Path | None,
    specs: tuple[FileEntry, ...],
    extra: dict[str, Any] | None = None,
    kept: Sequence[str] = (),
    written: Mapping[str, Written] | None = None,
) -> Manifest:
    """The manifest of ``folder`` as it is now (every file hashed, the manifest and lock file excepted; files in
    ``written``, by path relative to ``folder``, as their writer hashed them if unchanged since)."""
    from converter import __version__

    outputs = file_entries([folder / r for r in folder_files(folder)], base=folder, written=written)
    return Manifest(
        version=__version__,
        command=tuple(command),
        created=now(),
        inputs=inputs,
        specs_folder=str(specs_folder) if specs_folder is not None else "",
        specs=specs,
        outputs=outputs,
        extra=dict(extra or {}),
        kept=tuple(kept),
    )


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_manifest_file(path: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` to ``path`` atomically (it appears whole or not at all)."""
    from converter.io.atomic import atomic_write

    with atomic_write(path) as fh:
        fh.write(orjson.dumps(manifest.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    return path


def read_manifest(folder: Path) -> Manifest | None:
    """The inoconv manifest of ``folder``; None when there is none, or the file there is not inoconv's."""
    return read_manifest_file(folder / MANIFEST_NAME)


def read_manifest_file(path: Path) -> Manifest | None:
    """The inoconv manifest in file ``path``; None when it is missing or not inoconv's."""
    if not path.is_file() or path.is_symlink():
        return None
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("manifest") != MARKER:
        return None

    def entries(items: Any) -> tuple[FileEntry, ...]:
        if not isinstance(items, list):
            return ()
        return tuple(
            FileEntry(str(e["path"]), str(e["sha256"]), int(e["bytes"]))
            for e in items
            if isinstance(e, dict) and {"path", "sha256", "bytes"} <= set(e)
        )

    raw_specs = doc.get("specs")
    specs: dict[str, Any] = raw_specs if isinstance(raw_specs, dict) else {}
    raw_notes = doc.get("notes")
    notes: dict[str, Any] = raw_notes if isinstance(raw_notes, dict) else {}
    return Manifest(
        version=str(doc.get("inoconv_version", "")),
        command=tuple(str(a) for a in doc.get("command", []) or []),
        created=str(doc.get("created", "")),
        inputs=entries(doc.get("inputs")),
        specs_folder=str(specs.get("folder", "")),
        specs=entries(specs.get("files")),
        outputs=entries(doc.get("outputs")),
        extra=notes,
        kept=tuple(str(k) for k in doc.get("kept_not_ours", []) or [] if isinstance(k, str)),
    )


@dataclass
class VerifyReport:
    folder: Path
    manifest: Manifest
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    checked: int = 0
    kept: list[str] = field(default_factory=list)  # not inoconv's, left in place by --overwrite: not checked

    @property
    def intact(self) -> bool:
        return not (self.added or self.missing or self.changed)

    def lines(self) -> list[str]:
        out = [f"changed: {p}" for p in self.changed]
        out += [f"missing: {p}" for p in self.missing]
        out += [f"added:   {p}" for p in self.added]
        out += [f"kept, not checked (not inoconv's, or another command's journal): {p}" for p in self.kept]
        return out


def verify_folder(folder: Path) -> VerifyReport | None:
    """Re-hash ``folder`` against its manifest; None when it has no inoconv manifest."""
    manifest = read_manifest(folder)
    if manifest is None:
        return None
    return _verify(folder, manifest, set(folder_files(folder)))


def verify_path(path: Path) -> VerifyReport | None:
    """A folder against its ``manifest.json``, or one output file against ``NAME.manifest.json`` beside it."""
    if path.is_dir():
        return verify_folder(path)
    manifest = read_manifest_file(path.with_name(path.name + "." + MANIFEST_NAME))
    if manifest is None:
        return None
    return _verify(path.parent, manifest, {path.name} if path.exists() else set())


def _verify(base: Path, manifest: Manifest, present: set[str]) -> VerifyReport:
    rep = VerifyReport(folder=base, manifest=manifest)
    listed = {e.path: e for e in manifest.outputs}
    companions = {r for r in present if Path(r).name in COMPANIONS}
    rep.kept = sorted(present & (set(manifest.kept) | companions))
    rep.added = sorted(present - set(listed) - set(rep.kept))
    for rel, entry in sorted(listed.items()):
        path = base / rel
        if rel not in present or not path.is_file():
            rep.missing.append(rel)
            continue
        rep.checked += 1
        digest, size = sha256_file(path)
        if digest != entry.sha256 or size != entry.bytes:
            rep.changed.append(rel)
    return rep
