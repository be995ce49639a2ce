"""ResearchSubject's identifiers (e873b47): the business identifier written as a whole at ``identifier[0]``
beside ``identifier[use=secondary].value`` in the same list. The row programs (converter.fhir.rowcode) and the
line templates take it only because the written value's keys are known (``Entry.value_keys``); they must then
give exactly what the path setters give value by value, rows with missing values included, and refuse (fall
back to the setters) when the keys are not known or could match the selector."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from converter.fhir.identifier_values import identifier_texts, identifiers
from converter.fhir.line_templates import row_lines
from converter.fhir.path_setters import Cache, compile_setter
from converter.fhir.paths import parse_path
from converter.fhir.rowcode import Entry, compile_rows

KEYS = frozenset({"system", "value"})
ROOT_KEYS = frozenset({"resourceType", "id"})
# ResearchSubject's plan, as the builder makes it from mappings/fhir/researchsubject.yaml (identifier first)
PATHS = ["status", "status", "study", "individual", "identifier[use=secondary].value", "period.start",
         "period.end", "extension[url=a].valueDateTime", "extension[url=b].valueIdentifier.value",
         "assignedArm", "_assignedArm.extension[url=d].valueString"]  # fmt: skip


def _entries(value_keys: frozenset[str] | None = KEYS) -> list[Entry]:
    return [
        Entry(parse_path("identifier[0]"), value_keys=value_keys),
        Entry(parse_path("status"), const="off-study", is_const=True, has_mask=True),
        Entry(parse_path("status"), const="on-study", is_const=True, has_mask=True),
        *(Entry(parse_path(p), shared=p in ("study", "individual")) for p in PATHS[2:]),
    ]


def _columns(rng: random.Random, n: int, p_ident: float, p_secondary: float) -> tuple[list[Any], list[list[Any]]]:
    """The identifiers' (system, value) and the other columns: each value missing at some rows."""
    systems = [None if rng.random() < p_ident / 2 else "urn:s" for _ in range(n)]
    values = [None if rng.random() < p_ident / 2 else f"S-{i}" for i in range(n)]
    ended = [rng.random() < 0.5 for _ in range(n)]
    refs = [{"reference": "ResearchStudy/1"}, {"reference": "Patient/2"}]
    cols: list[list[Any]] = [
        ["m" if e else None for e in ended],
        [None if e else "m" for e in ended],
        [rng.choice([refs[0], None]) for _ in range(n)],
        [rng.choice([refs[1], refs[1], None]) for _ in range(n)],
        [None if rng.random() < p_secondary else str(rng.randrange(100)) for _ in range(n)],
    ]
    for _p in PATHS[5:]:
        cols.append([rng.choice([None, "2024-01-02", 'x"y', "A"]) for _ in range(n)])
    return [systems, values], cols


def _by_setters(n: int, entries: list[Entry], cols: list[list[Any]]) -> list[dict[str, Any]]:
    """The resources as the setters make them, value by value, each row in plan order (Builder._fill's fallback)."""
    roots: list[dict[str, Any]] = [{"resourceType": "ResearchSubject", "id": f"u{i}"} for i in range(n)]
    caches: list[Cache] = [{} for _ in roots]
    it = iter(cols)
    for e in entries:
        setter = compile_setter(e.path)
        col = next(it)
        for root, v, cache in zip(roots, col, caches, strict=True):
            if v is not None:
                setter(root, e.const if e.is_const else copy.deepcopy(v), cache)
    return roots


# missing identifiers (rows the builder skips, kept here: the program must agree there too), some or every
# secondary identifier missing, none missing
CASES = [(0.2, 0.3), (0.0, 1.0), (0.0, 0.0), (0.5, 0.5)]


@pytest.mark.parametrize(("p_ident", "p_secondary"), CASES)
@pytest.mark.parametrize("seed", range(3))
def test_row_program_and_templates_give_what_the_setters_give(p_ident: float, p_secondary: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 300
    (systems, values), cols = _columns(rng, n, p_ident, p_secondary)
    entries = _entries()
    prog = compile_rows(entries, ROOT_KEYS)
    assert prog is not None, "ResearchSubject's plan should run as a row program"
    want = _by_setters(n, entries, [identifiers(systems, values), *cols])
    assert any(len(r.get("identifier", [])) == 2 for r in want) or p_secondary == 1.0 or p_ident == 0.5
    # the row program, on dicts
    got: list[dict[str, Any]] = [{"resourceType": "ResearchSubject", "id": f"u{i}"} for i in range(n)]
    prog(got, identifiers(systems, values), *[[copy.deepcopy(v) for v in c] for c in cols])
    assert [orjson.dumps(r) for r in got] == [orjson.dumps(r) for r in want]
    # the line templates, the identifiers given as JSON text (the builder's text path) and as dicts
    ids = [orjson.dumps(f"u{i}") for i in range(n)]
    root = {"resourceType": "ResearchSubject", "id": None}
    for ident_col in (identifier_texts(systems, values), identifiers(systems, values)):
        lines = row_lines(n, entries, [ident_col, *cols], root, {"id": ids}, (), ROOT_KEYS)
        assert lines is not None
        assert lines == [orjson.dumps(r) for r in want]
    # a row with no identifier but a secondary one: the secondary item is the list's first, for both
    lone = [i for i in range(n) if systems[i] is None or values[i] is None]
    for i in lone:
        if cols[4][i] is not None:
            assert want[i]["identifier"] == [{"use": "secondary", "value": cols[4][i]}]


def test_unknown_or_matching_keys_fall_back_to_the_setters() -> None:
    # the written value's keys not known: the selector might find that item, so no program, no templates
    entries = _entries(value_keys=None)
    assert compile_rows(entries, ROOT_KEYS) is None
    rng = random.Random(1)
    n = 50
    (systems, values), cols = _columns(rng, n, 0.2, 0.3)
    root = {"resourceType": "ResearchSubject", "id": None}
    ids = [orjson.dumps(f"u{i}") for i in range(n)]
    assert row_lines(n, entries, [identifiers(systems, values), *cols], root, {"id": ids}, (), ROOT_KEYS) is None
    # keys that hold the selector's key: the setters' scan would find the item written by position
    assert compile_rows(_entries(value_keys=frozenset({"system", "value", "use"})), ROOT_KEYS) is None
    # the item by position written after the selector may have added one: its position depends on the values
    entries = _entries()
    assert compile_rows([entries[5], entries[0]], ROOT_KEYS) is None
    # a value written at an item by selector, or a path below the item by position: still refused
    assert compile_rows([Entry(parse_path("identifier[use=secondary]"), value_keys=KEYS),
                         Entry(parse_path("identifier[0]"), value_keys=KEYS)]) is None  # fmt: skip
    assert compile_rows([Entry(parse_path("identifier[0]"), value_keys=KEYS), Entry(parse_path("identifier[0].x")),
                         Entry(parse_path("identifier[use=secondary].value"))]) is None  # fmt: skip
    # what a setter does where a value with the selector's key is at position 0: it is found and written into
    want = _by_setters(1, [*_entries(value_keys=None)[:1], _entries()[5]],
                       [[{"use": "secondary", "value": "A"}], ["B"]])  # fmt: skip
    assert want[0]["identifier"] == [{"use": "secondary", "value": "B"}]


def _research_subjects(monkeypatch: pytest.MonkeyPatch, setters: bool, columnar: bool) -> list[bytes]:
    from converter.fhir import to_fhir
    from converter.fhir.mapping import load_fhir_stage
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    datasets = dict(records_to_sdtm(simulate(30, seed=4)).datasets)
    dm = datasets["DM"].copy()
    subjid = dm["SUBJID"].astype(object)
    subjid.iloc[::3] = None  # no secondary identifier on every third subject
    dm["SUBJID"] = subjid
    usubjid = dm["USUBJID"].astype(object)
    usubjid.iloc[4] = None  # no business identifier: no resource (a problem instead)
    dm["USUBJID"] = usubjid
    datasets["DM"] = dm
    stage = load_fhir_stage()
    with monkeypatch.context() as m:
        if setters:
            m.setattr(to_fhir, "compile_rows", lambda *_a, **_k: None)  # Builder._fill: the setters only
        result = to_fhir.Builder(*stage, columnar=columnar).build(datasets)
    assert any(p.rule == "fhir-identifier" for p in result.problems)
    if columnar:
        return [line for b in result.blocks if b.rtype == "ResearchSubject" for line in b.lines]
    result.refs.use("ndjson")
    return [orjson.dumps(r.body) for r in result.resources if r.rtype == "ResearchSubject"]


def test_builder_research_subjects_are_the_setters(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chain's columnar lines of ResearchSubject (row program, templates) are the setters' resources."""
    want = _research_subjects(monkeypatch, setters=True, columnar=False)
    assert len(want) == 29 and any(b'"use":"secondary"' in x for x in want)
    assert any(b'"use":"secondary"' not in x for x in want)
    assert _research_subjects(monkeypatch, setters=False, columnar=False) == want
    assert _research_subjects(monkeypatch, setters=False, columnar=True) == want
