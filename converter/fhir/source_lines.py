"""A source's resources as JSON text from the line templates (:mod:`converter.fhir.line_templates`): the NDJSON
lines and, for ``inoconv fhir``, the same resources' text in Bundle form from the same templates.

The two forms differ only in the references (``Type/id`` in NDJSON; ``urn:uuid:`` or a conditional reference in
a Bundle). The reference columns are shared dicts of the :class:`~converter.fhir.resource_ids.RefTable`; their
Bundle-form twins fill the same holes of the same templates, so each shape is made once for both and a line with
no reference in it is one bytes object for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson

from converter.fhir.frame_values import Factored
from converter.fhir.line_templates import JsonTexts, Tail, row_line_pairs, row_lines
from converter.fhir.mapping import ChildSpec
from converter.fhir.resource_ids import JsonDict, RefTable
from converter.fhir.rowcode import Entry

__all__ = [
    "Plan",
    "bundle_twin",
    "dual_dumps",
    "item_dicts",
    "item_lines",
    "rows_of",
    "selector_checked",
    "source_lines",
]

Plan = list[tuple[Entry, Sequence[Any] | None]]

_REFS = frozenset({"study_ref", "subject_ref"})  # the elements whose values are the RefTable's references


def selector_checked(e: Entry, col: Sequence[Any] | None) -> Entry:
    """The entry, flagged when a dict value holds the key of its last (selector) step with another value than
    the selector's: the item would then not be the one the selector finds again."""
    last = e.path.last
    if col is None or last is None or len(last.select) != 1 or "." in last.select[0][0]:
        return e
    key, want = last.select[0]
    values = col.distinct if isinstance(col, Factored) else col
    if any(type(v) is dict and key in v and v[key] != want for v in values):
        return replace(e, dict_selector_key=True)
    return e


def rows_of(col: Sequence[Any], rows: list[int]) -> Sequence[Any]:
    """The column's values at ``rows``, in that order (of the same kind: JSON texts, factored, a list)."""
    if isinstance(col, JsonTexts):
        return JsonTexts(col[i] for i in rows)
    return col.take(rows) if isinstance(col, Factored) else [col[i] for i in rows]


def bundle_twin(col: Sequence[Any], refs: RefTable) -> Sequence[Any]:
    """The column with the table's references in Bundle form (the column itself when it holds none). Reference
    columns are factored (one shared dict per target): only a factored column's distinct values are looked at."""
    if not isinstance(col, Factored):
        return col
    twins = refs.bundle_twins(col.distinct)
    return col if twins is None else Factored(col.codes, twins)


def source_lines(
    rtype: str,
    plan: Plan,
    rows: list[int] | None,
    made: list[int],
    uuids: list[str],
    groups: list[tuple[ChildSpec, list[tuple[int, Any]]]],
    refs: RefTable | None = None,
) -> tuple[list[bytes], list[bytes] | None] | None:
    """The resources' NDJSON lines (``refs`` in NDJSON form) and, given ``refs``, their Bundle-form text (with
    the ``id``) from the same templates; ``None`` where the templates do not follow the paths (then the dicts are
    built and serialised). ``rows``: the source's rows made (None: all); ``made`` the same as a list."""
    tails: list[Tail] = []
    for child, items in groups:  # items of a child group: appended to a list at one plain step
        steps = child.path.steps
        if child.mode != "list" or len(steps) != 1 or not steps[0].plain:
            return None
        if any(e.path.steps == steps for e, _col in plan):
            return None  # a value written where the items go: what it is decides
        texts = _joined(items, made)
        twin = None
        if refs is not None and any(el.kind in _REFS for el in child.elements):  # items with references: their
            # text in Bundle form too (references are made by these elements only)
            refs.use("bundle")
            try:
                twin = _joined(items, made)
            finally:
                refs.use("ndjson")
        tails.append(Tail(steps[0].name, texts, None if twin == texts else twin))
    entries = [selector_checked(e, col) for e, col in plan]
    cols = [col if rows is None else rows_of(col, rows) for _e, col in plan if col is not None]
    root: JsonDict = {"resourceType": rtype, "id": None}
    ids = [f'"{u}"'.encode() for u in uuids]
    keys = frozenset({"resourceType", "id"})
    if refs is None:
        lines = row_lines(len(uuids), entries, cols, root, {"id": ids}, tails, keys)
        return None if lines is None else (lines, None)
    twins = [bundle_twin(col, refs) for col in cols]
    return row_line_pairs(len(uuids), entries, cols, twins, root, {"id": ids}, tails, keys)


def item_lines(child: ChildSpec, plan: Plan, rows: list[int] | None, n: int, template: JsonDict) -> list[bytes] | None:
    """The ``n`` items of a child group as JSON text from the line templates: each a copy of ``template`` (plain
    JSON) with the plan written into it, as the row program writes it (``rows``: the rows of the plan's columns,
    None: all). ``None`` where :func:`source_lines` would not take them as text (items not appended at one plain
    step, or with references, whose Bundle form differs) or the templates do not follow the paths."""
    steps = child.path.steps
    if child.mode != "list" or len(steps) != 1 or not steps[0].plain or any(el.kind in _REFS for el in child.elements):
        return None
    entries = [selector_checked(e, col) for e, col in plan]
    cols = [col if rows is None else rows_of(col, rows) for _e, col in plan if col is not None]
    return row_lines(n, entries, cols, template, {}, (), frozenset(template))


def item_dicts(
    groups: list[tuple[ChildSpec, list[tuple[int, Any]]]],
) -> list[tuple[ChildSpec, list[tuple[int, Any]]]]:
    """The child groups with items given as text (:func:`item_lines`) parsed back into dicts, for the resources
    the templates do not make (orjson's text of the dicts is the text itself)."""
    loads = orjson.loads
    return [(c, [(p, loads(x) if type(x) is bytes else x) for p, x in items]) for c, items in groups]


def _joined(items: list[tuple[int, Any]], made: list[int]) -> list[bytes | None]:
    """Per row made, its items' JSON joined by commas (None: no item); an item given as text is that text."""
    joined: dict[int, list[bytes]] = {}
    dumps = orjson.dumps
    for p, item in items:
        joined.setdefault(p, []).append(item if type(item) is bytes else dumps(item))
    return [b",".join(joined[i]) if i in joined else None for i in made]


def dual_dumps(bodies: list[JsonDict], refs: RefTable) -> tuple[list[bytes], list[bytes | None]]:
    """Resources' dicts as (NDJSON texts, Bundle-form texts): serialised with the references in each form."""
    dumps = orjson.dumps
    lines = [dumps(b) for b in bodies]
    refs.use("bundle")
    try:
        return lines, [dumps(b) for b in bodies]
    finally:
        refs.use("ndjson")
