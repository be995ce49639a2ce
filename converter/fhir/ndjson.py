"""FHIR Bulk Data form: one ``<ResourceType>.ndjson`` per type, one resource per line, written as it goes.

Resources carry their deterministic ``id`` and refer to each other as ``Type/id``. Reading yields every line
with where it came from, so a bad line is reported by file and line and the rest still reads.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from converter.fhir.to_fhir import FhirResult, Resource

_BUFFER = 1 << 20  # bytes buffered per open file


class NdjsonWriter:
    """``with NdjsonWriter(folder) as w: w.write(result)`` - appends each resource to its type's file.

    Within a file, resources come by subject (USUBJID order, partitions being in that order too), then in the
    order the specs build them.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[str, IO[bytes]] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> NdjsonWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, result: FhirResult) -> dict[str, int]:
        """Append the result's resources; returns how many of each type."""
        result.refs.use("ndjson")
        # by subject (study-level first), then build order: the same files whatever the partitioning
        for rtype, rs in _by_type(result).items():
            fh = self.files.get(rtype)
            if fh is None:  # a large buffer: the lines go out in big writes, never joined into one copy first
                fh = self.files[rtype] = open(self.folder / f"{rtype}.ndjson", "wb", buffering=_BUFFER)  # noqa: SIM115
            fh.writelines(_line_parts(rs))
        counts = result.counts()
        for rtype, n in counts.items():
            self.counts[rtype] = self.counts.get(rtype, 0) + n
        return counts

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        self.files.clear()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _lines(rs: list[Resource]) -> bytes:
    """The resources' NDJSON, each line ending in a newline: the lines made as text, the dicts through orjson."""
    dumps = orjson.dumps
    lines = [r.line if r.line is not None else dumps(r.body) for r in rs]
    lines.append(b"")  # the last newline
    return b"\n".join(lines)


def _line_parts(rs: list[Resource]) -> Iterator[bytes]:
    """Each resource's line, then a newline (the lines made as text, the dicts through orjson)."""
    dumps = orjson.dumps
    lines = [r.line if r.line is not None else dumps(r.body) for r in rs]
    return itertools.chain.from_iterable(zip(lines, itertools.repeat(b"\n")))


def _by_type(result: FhirResult) -> dict[str, list[Resource]]:
    """Each type's resources by subject (study-level first), then in build order."""
    by_type: dict[str, list[Resource]] = {}
    for r in result.resources:
        got = by_type.get(r.rtype)
        if got is None:
            by_type[r.rtype] = [r]
        else:
            got.append(r)
    for rtype, rs in by_type.items():
        subjects = [r.subject or "" for r in rs]
        if any(a > b for a, b in itertools.pairwise(subjects)):  # stable: build order within a subject
            by_type[rtype] = [rs[i] for i in sorted(range(len(rs)), key=subjects.__getitem__)]
    return by_type


def ndjson_chunks(result: FhirResult) -> dict[str, bytes]:
    """Each type's NDJSON lines (type -> bytes, every line ending in a newline), by subject (study-level first),
    then in build order; the references must already be in NDJSON form."""
    return {rtype: _lines(rs) for rtype, rs in _by_type(result).items()}


def ndjson_lines(result: FhirResult) -> dict[str, bytes]:
    """The NDJSON files of a result in memory: type -> bytes."""
    result.refs.use("ndjson")
    out: dict[str, list[Resource]] = {}
    for r in result.resources:
        out.setdefault(r.rtype, []).append(r)
    return {t: _lines(rs) for t, rs in out.items()}


def read_ndjson(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, parsed JSON or None, error or None) for every non-blank line."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, orjson.loads(line), None
            except orjson.JSONDecodeError as exc:
                yield lineno, None, f"not valid JSON: {exc}"
