"""NDJSON lines straight from a source's columns: one text template per row shape, no dicts per resource.

The row program of a source (:mod:`converter.fhir.rowcode`) builds each resource as dicts, and serialising them
costs about as much again. But what a row program does with a value depends only on whether it is present and
whether it is a dict; and a dict the program writes as it is (:func:`converter.fhir.rowcode.dicts_as_is`) is,
like any other value, only placed. So rows that agree on which values are present (and on the content of the few
dicts that something merges into) are the same JSON but for the text of those values: one *shape*.

Per shape, the row program runs once on a row whose values are markers (strings no value text holds); that row
serialised and cut at the markers is the shape's template. Each row is its template with the JSON text of its own
values in the holes, each distinct value serialised once by orjson. Concatenating orjson's compact text of the
parts is orjson's text of the whole, so the lines are byte for byte what ``orjson.dumps`` gives for the dicts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import is_not, itemgetter
from typing import Any

import numpy as np
import orjson

from converter.fhir.frame_values import Factored
from converter.fhir.rowcode import Entry, compile_rows, dicts_as_is

__all__ = ["JsonTexts", "Tail", "row_line_pairs", "row_lines", "value_texts"]

JsonDict = dict[str, Any]

_OPEN, _CLOSE = "\ue000", "\ue001"  # Unicode private use: the markers' brackets
_HOLE = re.compile(f'"{_OPEN}(\\d+){_CLOSE}"')
_SIMPLE = frozenset({str, int, float, bool})
_Codes = np.ndarray[Any, np.dtype[np.int64]]


def _marker(hole: int) -> str:
    return f"{_OPEN}{hole}{_CLOSE}"


@dataclass(frozen=True)
class Tail:
    """Items appended, after every entry is written, to the list at ``key`` of each row (child groups, as
    :func:`converter.fhir.path_setters.compile_appender` of a one-step path does): per row the items' JSON
    joined by commas, ``None`` where the row has none."""

    key: str
    texts: list[bytes | None]
    twin: list[bytes | None] | None = None  # the items' text in the twin lines (row_line_pairs), if it differs


class JsonTexts(list[bytes | None]):
    """A column given as its values' JSON text already (orjson's compact bytes; None for a missing value): placed
    as it is, never a dict to merge into."""


def _factorize(values: Sequence[Any]) -> tuple[Sequence[Any], dict[Any, Any]]:
    """(a key per value, key -> a value with that key) where values of one key have the same JSON: the values
    themselves in a column of one scalar type (so 1, 1.0 and True never meet), else their identity."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if len(kinds) <= 1 and kinds <= _SIMPLE:
        return values, {v: v for v in set(values)}
    ids = list(map(id, values))
    return ids, dict(zip(ids, values, strict=True))


def value_texts(values: Sequence[Any], content: bool = False) -> tuple[Sequence[bytes | None], _Codes]:
    """The JSON text (orjson's bytes) of each value (``None`` for ``None``; each distinct value serialised
    once) and a code per value: 0 absent, 1 present; under ``content`` a dict's code is its text's (2...)."""
    n = len(values)
    if isinstance(values, JsonTexts):
        return values, _present(values)
    if isinstance(values, Factored):  # the distinct values known: their texts, then row by row
        texts, codes = value_texts(values.distinct, content)
        return Factored(values.codes, list(texts)), codes[values.codes]
    keys, distinct = _factorize(values)
    if not content and len(distinct) * 2 > n:  # mostly distinct (identifiers): row by row
        dumps = orjson.dumps
        return [None if v is None else dumps(v) for v in values], _present(values)
    text_of = {k: None if v is None else orjson.dumps(v) for k, v in distinct.items()}
    seen: dict[bytes | None, int] = {}
    code_of = {
        k: 0 if v is None else seen.setdefault(text_of[k], len(seen) + 2) if content and type(v) is dict else 1
        for k, v in distinct.items()
    }
    return list(map(text_of.__getitem__, keys)), np.fromiter(map(code_of.__getitem__, keys), np.int64, n)


@dataclass
class _Column:
    hole: int | None  # the marker's number (None: a mask)
    texts: Sequence[bytes | None] | None  # the values' JSON (None for a mask)
    content: bool  # its dicts shape the row by their content (they are merged into, or get keys)


def row_lines(
    n: int,
    entries: Sequence[Entry],
    cols: Sequence[Sequence[Any]],
    root: JsonDict,
    root_texts: dict[str, list[bytes]],
    tails: Sequence[Tail] = (),
    root_keys: frozenset[str] = frozenset(),
) -> list[bytes] | None:
    """The JSON text (bytes) of each of the ``n`` rows, as ``orjson.dumps`` gives it for the dict the row program makes
    (``None`` when the paths need the setters, or a template cannot be made).

    ``entries``/``cols`` as :func:`converter.fhir.rowcode.compile_rows` takes them; every row starts as a copy
    of ``root``, whose keys named in ``root_texts`` hold per row the JSON text given there (the id); ``tails``
    are appended last."""
    made = _row_lines(n, entries, cols, None, root, root_texts, tails, root_keys)
    return None if made is None else made[0]


def row_line_pairs(
    n: int,
    entries: Sequence[Entry],
    cols: Sequence[Sequence[Any]],
    twins: Sequence[Sequence[Any]],
    root: JsonDict,
    root_texts: dict[str, list[bytes]],
    tails: Sequence[Tail] = (),
    root_keys: frozenset[str] = frozenset(),
) -> tuple[list[bytes], list[bytes]] | None:
    """:func:`row_lines` of ``cols`` and of ``twins`` at once (the same rows two ways: NDJSON and Bundle references).

    ``twins`` holds, per column, the column itself or another one of the same length whose values are placed as
    they are (never merged into) and present in the same rows (references in the other form); ``tails`` give their
    ``twin`` texts where they differ. Both texts come from one template per shape: a line of the twins is its
    own line's template filled with the twins' texts, and is the very same bytes object where no twin is placed
    in it. ``None`` as :func:`row_lines` gives it, and where a differing twin column is one something merges into."""
    made = _row_lines(n, entries, cols, twins, root, root_texts, tails, root_keys)
    if made is None:
        return None
    lines, twin = made
    assert twin is not None
    return lines, twin


def _row_lines(
    n: int,
    entries: Sequence[Entry],
    cols: Sequence[Sequence[Any]],
    twins: Sequence[Sequence[Any]] | None,
    root: JsonDict,
    root_texts: dict[str, list[bytes]],
    tails: Sequence[Tail],
    root_keys: frozenset[str],
) -> tuple[list[bytes], list[bytes] | None] | None:
    prog = compile_rows(entries, root_keys)
    as_is = dicts_as_is(entries, root_keys)
    if prog is None or as_is is None:
        return None
    if n == 0:
        return [], None if twins is None else []
    columns: list[_Column] = []
    codes: list[_Codes] = []
    twin_sources: dict[int, Sequence[bytes | None]] = {}  # holes whose twin text differs: the twin texts
    it = iter(cols)
    twin_it = iter(cols if twins is None else twins)
    for e, plain in zip(entries, as_is, strict=True):
        if e.is_const and not e.has_mask:
            continue
        col = next(it)
        twin = next(twin_it)
        if e.is_const:
            if twin is not col:
                return None
            columns.append(_Column(None, None, False))
            codes.append(_present(col))
            continue
        if isinstance(col, JsonTexts) and not plain:
            return None  # dicts something merges into: not as text
        content = not plain and dict in set(map(type, col.distinct if isinstance(col, Factored) else col))
        texts, present = value_texts(col, content)
        if twin is not col:
            if content or len(twin) != len(col):
                return None
            twin_texts, twin_present = value_texts(twin, False)
            if not np.array_equal(present, twin_present):
                return None
            twin_sources[len(columns)] = twin_texts
        columns.append(_Column(len(columns), texts, content))
        codes.append(present)
    factored = {c.hole: c.texts for c in columns if c.hole is not None and isinstance(c.texts, Factored)}
    sources: dict[int, Sequence[bytes | None]] = {
        c.hole: c.texts for c in columns if c.hole is not None and c.texts is not None
    }
    first_fixed = len(columns)  # the root's and the tails' holes are numbered after the columns'
    for i, key in enumerate(root_texts):
        sources[first_fixed + i] = root_texts[key]
    for i, t in enumerate(tails, start=first_fixed + len(root_texts)):
        sources[i] = t.texts
        codes.append(_present(t.texts))
        if twins is not None and t.twin is not None and t.twin is not t.texts:
            if len(t.twin) != n or not np.array_equal(codes[-1], _present(t.twin)):
                return None
            twin_sources[i] = t.twin
    twin_all = {**sources, **twin_sources}
    inverse, firsts = _shapes(codes, n)

    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(firsts) + 1)).tolist()
    order_list = order.tolist()
    lines: list[bytes] = []  # in the order of ``order``: shape after shape
    twin_lines: list[bytes] = []  # the same, of the twins
    for g, first in enumerate(firsts):
        made = _template(prog, columns, cols, first, root, list(root_texts), tails, first_fixed)
        if made is None:
            return None
        lits, found = made
        rows = order_list[bounds[g] : bounds[g + 1]]
        group = order[bounds[g] : bounds[g + 1]]
        # a value the same in every row of the shape goes into its template: fewer holes to fill per row
        same = {h for h in found if h in factored and _constant(factored[h], group)}
        got = _fill(lits, found, same, sources, rows, group)
        lines.extend(got)
        if twins is not None and twin_sources.keys() & set(found):
            twin_same = {h for h in same if h not in twin_sources or _constant_texts(twin_sources[h], group)}
            twin_lines.extend(_fill(lits, found, twin_same, twin_all, rows, group))
        elif twins is not None:
            twin_lines.extend(got)
    if n == 1:
        return lines, twin_lines if twins is not None else None
    back = np.empty(n, dtype=np.int64)
    back[order] = np.arange(n, dtype=np.int64)
    at = itemgetter(*back.tolist())
    return list(at(lines)), list(at(twin_lines)) if twins is not None else None


def _fill(
    lits: list[bytes],
    found: list[int],
    same: set[int],
    sources: dict[int, Sequence[bytes | None]],
    rows: list[int],
    group: np.ndarray[Any, np.dtype[np.intp]],
) -> list[bytes]:
    """The lines of one shape's ``rows``: its template (``lits`` around the holes ``found``) with the texts of
    ``sources`` in the holes, those of the holes ``same`` written into the format once."""
    fmt = lits[0].replace(b"%", b"%%")
    hole_order: list[int] = []
    for h, lit in zip(found, lits[1:], strict=True):
        if h in same:
            fmt += (sources[h][rows[0]] or b"").replace(b"%", b"%%")
        else:
            fmt += b"%s"
            hole_order.append(h)
        fmt += lit.replace(b"%", b"%%")
    if not hole_order:
        return [fmt % ()] * len(rows)
    if len(rows) == 1:
        return [fmt % tuple(sources[h][rows[0]] for h in hole_order)]
    pick = itemgetter(*rows)  # a factored column's texts taken at once from its distinct ones, the others by row
    picked: list[Sequence[bytes | None]] = [
        src.values_at(group) if isinstance(src := sources[h], Factored) else pick(src) for h in hole_order
    ]
    return [fmt % t for t in zip(*picked, strict=True)]


def _constant(col: Factored, rows: np.ndarray[Any, np.dtype[np.intp]]) -> bool:
    codes = col.codes[rows]
    return bool((codes == codes[0]).all())


def _constant_texts(texts: Sequence[bytes | None], rows: np.ndarray[Any, np.dtype[np.intp]]) -> bool:
    return isinstance(texts, Factored) and _constant(texts, rows)


def _present(values: Sequence[Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """1 where a value is present, 0 where it is None."""
    missing = values.count(None) if isinstance(values, list) else sum(v is None for v in values)
    if missing == 0:
        return np.ones(len(values), dtype=np.int64)
    if missing == len(values):
        return np.zeros(len(values), dtype=np.int64)
    return np.fromiter(map(is_not, values, repeat(None)), dtype=np.bool_, count=len(values)).astype(np.int64)


def _shapes(codes: list[np.ndarray[Any, np.dtype[np.int64]]], n: int) -> tuple[np.ndarray[Any, Any], list[int]]:
    """Each row's shape number (0...) and the first row of each shape."""
    varying = [c for c in codes if c.min() != c.max()]
    if not varying:
        return np.zeros(n, dtype=np.int64), [0]
    words: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    word = np.zeros(n, dtype=np.int64)
    bits = 0
    for c in varying:  # codes packed into 62-bit words
        width = max(1, int(c.max()).bit_length())
        if bits + width > 62 and bits:
            words.append(word)
            word = np.zeros(n, dtype=np.int64)
            bits = 0
        word |= c << bits
        bits += width
    words.append(word)
    if len(words) == 1:
        _u, first, inverse = np.unique(words[0], return_index=True, return_inverse=True)
    else:
        _u, first, inverse = np.unique(np.stack(words, axis=1), axis=0, return_index=True, return_inverse=True)
    return inverse.reshape(-1), first.tolist()


def _template(
    prog: Any,
    columns: list[_Column],
    cols: Sequence[Sequence[Any]],
    row: int,
    root: JsonDict,
    root_keys: list[str],
    tails: Sequence[Tail],
    first_fixed: int,
) -> tuple[list[bytes], list[int]] | None:
    """``(format, holes in text order)`` of the shape of ``row``: the row program run on markers."""
    args: list[list[Any]] = []
    placed: list[int] = []
    for c, col in zip(columns, cols, strict=True):
        v = col[row]
        if v is None:
            args.append([None])
        elif c.hole is None:  # a mask: only its presence counts
            args.append([True])
        elif c.content and type(v) is dict:
            assert c.texts is not None
            args.append([orjson.loads(c.texts[row] or b"null")])  # a copy: the program may write into it
        else:
            args.append([_marker(c.hole)])
            placed.append(c.hole)
    body = dict(root)
    for i, key in enumerate(root_keys):
        body[key] = _marker(first_fixed + i)
        placed.append(first_fixed + i)
    prog([body], *args)
    for j, t in enumerate(tails, start=first_fixed + len(root_keys)):
        if t.texts[row] is not None:  # the marker, one item, stands for the row's items joined by commas
            lst = body.get(t.key)
            if not isinstance(lst, list):
                lst = body[t.key] = []
            lst.append(_marker(j))
            placed.append(j)
    parts = _HOLE.split(orjson.dumps(body).decode())
    lits, found = parts[0::2], [int(h) for h in parts[1::2]]
    if len(set(found)) < len(found) or not set(found) <= set(placed) or any(_OPEN in s or _CLOSE in s for s in lits):
        return None  # a marker repeated, or the specs' own text holding one: no template (a value written over
        # by a later one is rightly missing)
    return [s.encode() for s in lits], found
