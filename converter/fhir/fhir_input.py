"""Reading FHIR input for ``inoconv tosdtm``: files, NDJSON lines, Bundles, and what is refused as bad input.

Input is a Bundle or resource ``.json`` file, an NDJSON file (one resource or Bundle per line), or a folder of
them (a folder written by ``inoconv fhir`` is read from its ``bundles/``, else its ``ndjson/``). Every
document is checked before it is used; each refusal is a :class:`~converter.errors.Problem` naming the file,
the line (or Bundle entry) and the element, and makes the command exit 2:

* not valid JSON (any line, the first one included; a truncated line; bytes that are not UTF-8);
* a line longer than :data:`MAX_LINE_BYTES` (64 MiB), refused while it is read: it is skipped in chunks, never
  held in memory whole; a ``.json`` file larger than :data:`MAX_FILE_BYTES` (1 GiB), refused before reading;
* objects and arrays nested deeper than :data:`MAX_DEPTH` (100) levels (R4 resources need about 15);
* an NDJSON file whose first line is JSON but not a FHIR resource (not FHIR NDJSON: the file is not read on);
* a JSON document that is not a FHIR resource or Bundle, a Bundle entry that is not an object or whose resource
  has no ``resourceType``;
* a control character in a string value or an element name (the rule of :mod:`converter.text`; tab is the one
  allowed, as FHIR's ``string`` allows it). The narrative ``text.div`` (XHTML, never carried to SDTM) is exempt.

Both the whole conversion (:mod:`converter.fhir.to_sdtm`) and the streamed one
(:mod:`converter.fhir.ndjson_stream`) read through :func:`ndjson_documents` and :func:`json_document`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from converter.errors import problem
from converter.fhir.located import FromFhir, Located, Outcome
from converter.gc_pause import no_gc
from converter.text import CONTROL_RULE, escape_controls, first_control

#: the longest NDJSON line read (bytes, without the line end); a longer one is refused without being held
MAX_LINE_BYTES = 64 * 1024 * 1024
#: the largest ``.json`` file (a Bundle or a resource) read; it is read whole
MAX_FILE_BYTES = 1024 * 1024 * 1024
#: the deepest nesting of JSON objects and arrays accepted in one document
MAX_DEPTH = 100

_CHUNK = 1024 * 1024
# a JSON text may hold a control character only as an escape (\n, \t, \u0001 ...) or, for C1, as raw UTF-8
_MAYBE_CONTROL = re.compile(rb"\\[bfnrtu]|\xc2[\x80-\x9f]")
_EXEMPT = ("text", "div")  # the narrative's XHTML (not a FHIR string; never carried to SDTM)
_STEP = np.zeros(256, dtype=np.int8)  # byte -> how it changes the nesting depth: { [ +1, } ] -1
_STEP[[123, 91]] = 1
_STEP[[125, 93]] = -1
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'{}[]"')  # the bytes json_depth drops: all but {}[]"


# --- files and lines -----------------------------------------------------------------------------------------------
def input_files(path: Path) -> tuple[list[Path], Path]:
    """(the files :func:`read_input` reads under ``path``, in reading order; the folder names are relative to)."""
    if path.is_dir():
        if (path / "bundles").is_dir():
            files = sorted((path / "bundles").glob("*.json"))
        elif (path / "ndjson").is_dir():
            files = sorted((path / "ndjson").glob("*.ndjson"))
        else:
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".ndjson") and p.is_file())
        base = path
    elif path.exists():
        files = [path]
        base = path.parent
    else:
        raise FileNotFoundError(str(path))
    return files, base


def file_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, the line without its end) for every line of a file; None for a line longer than
    :data:`MAX_LINE_BYTES`, which is read past in chunks and never held whole."""
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            lineno += 1
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                while True:  # the rest of the long line, a chunk at a time
                    more = fh.readline(_CHUNK)
                    if not more or more.endswith(b"\n"):
                        break
                yield lineno, None
                continue
            yield lineno, line.rstrip(b"\r\n")


def bytes_lines(raw: bytes) -> Iterator[tuple[int, bytes | None]]:
    """As :func:`file_lines`, for NDJSON already in memory."""
    for lineno, line in enumerate(raw.splitlines(), start=1):
        yield lineno, (line if len(line) <= MAX_LINE_BYTES else None)


# --- one JSON document ------------------------------------------------------------------------------------------
def json_depth(raw: bytes) -> int:
    """How deep objects and arrays nest in the (valid) JSON text ``raw``, brackets inside strings not counted."""
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:  # an upper bound of the depth: nothing to count
        return 0
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    # the quotes and brackets alone, in order; then two quotes side by side dropped: nothing between them, so every
    # bracket left is in a string exactly when it was (most texts hold no bracket in a string: no quote is left)
    structural = text.translate(None, _NOT_STRUCTURAL).replace(b'""', b"")
    ch = np.frombuffer(structural, dtype=np.uint8)
    step = _STEP[ch].astype(np.int32)
    if b'"' in structural:
        step[(np.cumsum(ch == 34) & 1) == 1] = 0  # 34: '"'; a bracket after an odd number of quotes is in a string
    return int(np.cumsum(step).max()) if len(step) else 0


def _control_paths(node: Any) -> Iterator[tuple[list[str | int], str, int]]:
    """(path, text, index) of every string value or element name below ``node`` that holds a refused control."""
    stack: list[tuple[Any, list[str | int]]] = [(node, [])]
    while stack:
        cur, path = stack.pop()
        if isinstance(cur, dict):
            for k, v in cur.items():
                at = first_control(k, allow_tab=True)
                if at is not None:
                    yield [*path, k], k, at
                if isinstance(v, str):
                    if (at := first_control(v, allow_tab=True)) is not None and (*path[-1:], k) != _EXEMPT:
                        yield [*path, k], v, at
                elif isinstance(v, dict | list):
                    stack.append((v, [*path, k]))
        elif isinstance(cur, list):
            for i, v in enumerate(cur):
                if isinstance(v, str):
                    if (at := first_control(v, allow_tab=True)) is not None:
                        yield [*path, i], v, at
                elif isinstance(v, dict | list):
                    stack.append((v, [*path, i]))


def _dotted(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def _control_problems(data: Any, name: str, where: str, sink: FromFhir) -> bool:
    found = False
    for path, text, at in _control_paths(data):
        found = True
        record, element = where, path
        if isinstance(data, dict) and data.get("resourceType") == "Bundle" and len(path) > 2 and path[0] == "entry":
            record = f"{where} entry[{path[1]}]".strip() if path[2] == "resource" else where
            element = path[3:] if path[2] == "resource" else path
        code = ord(text[at])
        sink.problems.append(
            problem(name, record, _dotted(element), text, CONTROL_RULE,
                    f"holds a control character ({escape_controls(text[at])}, U+{code:04X}, at position {at + 1}); "
                    "FHIR string values may hold tab, no other control character can be carried to SDTM")
        )  # fmt: skip
    return found


def json_document(raw: bytes, name: str, where: str, sink: FromFhir) -> Any | None:
    """The parsed JSON text ``raw`` (one NDJSON line or one ``.json`` file), or None with its problem in ``sink``:
    not valid JSON, nested deeper than :data:`MAX_DEPTH`, a control character in a string value."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():  # the parser's own limit (1024)
            msg = f"objects and arrays nested deeper than {MAX_DEPTH} levels (the limit of inoconv tosdtm)"
            sink.problems.append(problem(name, where, "", "", "json-depth", msg))
        else:
            sink.problems.append(problem(name, where, "", "", "json", f"not valid JSON: {exc}"))
        return None
    depth = json_depth(raw)
    if depth > MAX_DEPTH:
        msg = f"objects and arrays nested {depth} levels deep (the limit of inoconv tosdtm is {MAX_DEPTH})"
        sink.problems.append(problem(name, where, "", "", "json-depth", msg))
        return None
    maybe = (b"\\" in raw or b"\xc2" in raw) and _MAYBE_CONTROL.search(raw)  # memchr first: most lines have neither
    if maybe and _control_problems(data, name, where, sink):
        return None
    return data


def ndjson_documents(
    lines: Iterable[tuple[int, bytes | None]], name: str, sink: FromFhir
) -> Iterator[tuple[str, dict[str, Any], bytes]]:
    """(``line N``, resource or Bundle, the line's bytes) of every NDJSON line that is a FHIR document; every
    other non-blank line is a problem in ``sink``. A file whose first line is JSON but no FHIR resource is not
    FHIR NDJSON: one problem, and the rest of the file is not read."""
    first = True
    for lineno, line in lines:
        where = f"line {lineno}"
        if line is None:
            msg = f"line longer than {MAX_LINE_BYTES:,} bytes (the limit of inoconv tosdtm); not read"
            sink.problems.append(problem(name, where, "", "", "line-length", msg))
            first = False
            continue
        if not line.strip():
            continue
        data = json_document(line, name, where, sink)
        is_fhir = isinstance(data, dict) and isinstance(data.get("resourceType"), str)
        if first and data is not None and not is_fhir:
            msg = "not FHIR NDJSON: its first line is not a FHIR resource (the file is not read further)"
            sink.problems.append(problem(name, where, "resourceType", "", "fhir-input", msg))
            return
        first = False
        if data is None:
            continue
        if not is_fhir:
            sink.problems.append(problem(name, where, "resourceType", "", "fhir-input", "not a FHIR resource"))
            continue
        yield where, data, line


# --- resources ------------------------------------------------------------------------------------------------
def located_from_json(data: Any, name: str, sink: FromFhir) -> list[Located]:
    """The resources of one parsed document: itself, or a Bundle's entries (each with its place)."""
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        sink.problems.append(problem(name, "", "resourceType", "", "fhir-input", "not a FHIR resource or Bundle"))
        return []
    if data["resourceType"] != "Bundle":
        return [Located(data, name, "resource")]
    out: list[Located] = []
    entries = data.get("entry")
    if entries is None:
        return out
    if not isinstance(entries, list):
        sink.problems.append(problem(name, "", "entry", "", "fhir-input", "Bundle.entry is not a list"))
        return out
    for i, e in enumerate(entries):
        where = f"entry[{i}]"
        if not isinstance(e, dict):
            sink.problems.append(problem(name, where, "", "", "fhir-input", "entry is not a JSON object"))
            continue
        res = e.get("resource")
        full = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
        if res is None:
            req_raw = e.get("request")
            req: dict[str, Any] = req_raw if isinstance(req_raw, dict) else {}
            what = f"{req.get('method', '')} {req.get('url', '')}".strip()
            rtype = re.split(r"[/?]", str(req.get("url", "")), maxsplit=1)[0]
            reason = f"entry has no resource ({what})"
            sink.outcomes.append(Outcome(name, where, rtype, "", "not converted", "", reason))
            continue
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            sink.problems.append(
                problem(name, where, "resource", "", "fhir-input", "entry resource has no resourceType")
            )
            continue
        out.append(Located(res, name, where + (f" {full}" if full else ""), full))
    return out


def json_file(f: Path, name: str, sink: FromFhir) -> Any | None:
    """The parsed ``.json`` file ``f`` (None with its problem in ``sink``), refused unread over the size limit."""
    try:
        size = f.stat().st_size
        if size > MAX_FILE_BYTES:
            msg = f"file of {size:,} bytes, over the {MAX_FILE_BYTES:,} bytes a .json file may have; not read"
            sink.problems.append(problem(name, "", "", "", "file-size", msg))
            return None
        raw = f.read_bytes()
    except OSError as exc:
        sink.problems.append(problem(name, "", "", "", "read", f"cannot read ({exc.strerror})"))
        return None
    return json_document(raw, name, "", sink)


def ndjson_located(lines: Iterable[tuple[int, bytes | None]], name: str, sink: FromFhir) -> Iterator[Located]:
    """The resources of an NDJSON file (Bundle lines give their entries)."""
    for where, data, _line in ndjson_documents(lines, name, sink):
        if data["resourceType"] == "Bundle":
            yield from located_from_json(data, f"{name} {where}", sink)
        else:
            yield Located(data, name, where)


def read_input(path: Path, sink: FromFhir) -> list[Located]:
    """Every resource under ``path``: a Bundle or resource JSON file, an NDJSON file, or a folder of them.

    A folder written by ``inoconv fhir`` is read from its ``bundles/`` (else its ``ndjson/``).
    """
    files, base = input_files(path)
    out: list[Located] = []
    with no_gc():  # parsed JSON holds no cycles: a collection while it is made would only rescan it, again and again
        for f in files:
            _read_file(f, base, sink, out)
    return out


def _read_file(f: Path, base: Path, sink: FromFhir, out: list[Located]) -> None:
    """The resources of one input file, appended to ``out``."""
    name = str(f.relative_to(base)) if f.is_relative_to(base) else f.name
    if f.suffix.lower() == ".ndjson":
        try:
            out.extend(ndjson_located(file_lines(f), name, sink))
        except OSError as exc:
            sink.problems.append(problem(name, "", "", "", "read", f"cannot read ({exc.strerror})"))
        return
    data = json_file(f, name, sink)
    if data is not None:
        out.extend(located_from_json(data, name, sink))


def parse_named(named: Mapping[str, bytes], sink: FromFhir) -> list[Located]:
    """Resources from in-memory files (name -> bytes; ``.ndjson`` names are NDJSON), e.g. for the round trip."""
    out: list[Located] = []
    for name, raw in named.items():
        if name.endswith(".ndjson"):
            out.extend(ndjson_located(bytes_lines(raw), name, sink))
        else:
            data = json_document(raw, name, "", sink)
            if data is not None:
                out.extend(located_from_json(data, name, sink))
    return out


__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_LINE_BYTES",
    "bytes_lines",
    "file_lines",
    "input_files",
    "json_depth",
    "json_document",
    "json_file",
    "located_from_json",
    "ndjson_documents",
    "ndjson_located",
    "parse_named",
    "read_input",
]
