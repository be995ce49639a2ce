"""NDJSON lines from text templates (converter.fhir.line_templates) are byte for byte orjson's text of the dicts
the row programs make, and the builder's text mode writes the NDJSON its dicts give."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from converter.fhir.line_templates import Tail, row_line_pairs, row_lines, value_texts
from converter.fhir.paths import parse_path
from converter.fhir.rowcode import Entry, compile_rows

PATH_SETS = [
    ["identifier[0]", "status", "status", "code.coding[system=s].code", "code.coding[system=s].display", "code.text"],
    ["valueQuantity.value", "valueQuantity", "extension[url=a].valueString", "extension[url=b].valueString"],
    ["extension[url=a].extension[url=x].valueString", "extension[url=c].valueBoolean",
     "extension[url=a].extension[url=y].valueString", "_birthDate", "birthDate"],
    ["category[coding.system=o].coding[system=o].code", "category[coding.system=c]", "category[coding.system=d]"],
    ["suspectEntity[0].instance.display", "suspectEntity[0].causality[0].assessment", "suspectEntity[2].x"],
    ["a[k=1]", "a[k=2]", "a[k=1]", "b.c", "b"],
    ["category[coding.system=o].coding[system=o].code", "category[id=c].text", "category[id=d].text"],
    ["identifier[0].value", "identifier[1].system", "identifier[use=s].value", "extension"],
    ["medicationCodeableConcept.coding[system=r]", "medicationCodeableConcept.coding[system=n]", "dosage.dose.value",
     "dosage.dose", "extension[url=e].valueString"],
]  # fmt: skip

SHARED: list[Any] = [{"text": "t"}, {"unit": "mg", "code": "mg"}, {"coding": [{"system": "q", "code": "1"}]}]


def _value(rng: random.Random, path: str) -> Any:
    r = rng.random()
    if r < 0.3:
        return None
    if r < 0.65:
        return rng.choice(["x", "y", 'q"uo\\te', "50%s", "\u00e9t\u00e9", 1, 2.5, 1.0, True, False, 0])
    if path.endswith("[system=r]"):
        return {"system": "r", "code": rng.choice(["1", "2"])}  # a dict holding the selector's own key
    if r < 0.85:
        return rng.choice(SHARED)  # one object for many rows, as the transforms give them
    return {"system": "s", "value": str(rng.randrange(1000))}  # a fresh dict per row (identifiers)


def _dicts(
    entries: list[Entry], cols: list[list[Any]], n: int, tails: list[Tail], items: list[list[Any]]
) -> list[bytes]:
    prog = compile_rows(entries, frozenset({"resourceType", "id"}))
    assert prog is not None
    roots: list[dict[str, Any]] = [{"resourceType": "X", "id": f"u{i}"} for i in range(n)]
    with_cols = [e for e in entries if not e.is_const or e.has_mask]
    prog(roots, *[[copy.deepcopy(v) if not e.shared else v for v in c] for e, c in zip(with_cols, cols, strict=True)])
    for t, per_row in zip(tails, items, strict=True):
        for root, its in zip(roots, per_row, strict=True):
            if its:
                lst = root.get(t.key)
                if not isinstance(lst, list):
                    lst = root[t.key] = []
                lst.extend(its)
    return [orjson.dumps(r) for r in roots]


@pytest.mark.parametrize("paths", PATH_SETS)
@pytest.mark.parametrize("seed", range(5))
def test_lines_are_the_json_of_the_dicts(paths: list[str], seed: int) -> None:
    rng = random.Random(seed)
    entries = [Entry(parse_path(p), shared=rng.random() < 0.5) for p in paths]
    # a constant everywhere, and one where a column says (its percent sign must survive the template)
    entries += [Entry(parse_path("meta.tag"), const=[{"code": "50%"}], is_const=True),
                Entry(parse_path("language"), const="en", is_const=True, has_mask=True)]  # fmt: skip
    n = 400
    cols = [[_value(rng, e.path.text) for _ in range(n)] for e in entries if not e.is_const]
    cols.append([rng.choice([None, "m"]) for _ in range(n)])  # the mask of the last constant
    if compile_rows(entries, frozenset({"resourceType", "id"})) is None:
        pytest.fail(f"{paths}: the row programs should compile these paths")
    items = [[[{"url": "c", "valueString": str(rng.randrange(5))} for _ in range(rng.choice([0, 0, 1, 3]))]
              for _ in range(n)] for _ in range(2)]  # fmt: skip
    tails = [Tail("extension", [b",".join(orjson.dumps(i) for i in its) or None for its in per_row])
             for per_row in items]  # fmt: skip
    shared_before = orjson.dumps(cols)
    ids = [orjson.dumps(f"u{i}") for i in range(n)]
    got = row_lines(n, entries, cols, {"resourceType": "X", "id": None}, {"id": ids}, tails,
                    frozenset({"resourceType", "id"}))  # fmt: skip
    assert orjson.dumps(cols) == shared_before  # values are never written into
    assert got is not None
    assert got == _dicts(entries, cols, n, tails, items)


@pytest.mark.parametrize("paths", PATH_SETS)
@pytest.mark.parametrize("seed", range(3))
def test_twin_lines_are_the_json_of_the_twin_dicts(paths: list[str], seed: int) -> None:
    """row_line_pairs: the lines are row_lines', the twins the JSON of the dicts made with the twin columns
    (references in the other form: other shared dicts in the same rows, and other tail items)."""
    import numpy as np

    from converter.fhir.frame_values import Factored

    rng = random.Random(seed)
    entries = [Entry(parse_path(p), shared=rng.random() < 0.5) for p in paths]
    entries += [Entry(parse_path("subject"), shared=True), Entry(parse_path("focus[0]"), shared=True)]
    n = 300
    cols: list[Any] = [[_value(rng, e.path.text) for _ in range(n)] for e in entries[:-2]]
    twins: list[Any] = list(cols)
    for k in range(2):  # reference columns: factored, one shared dict per target, and None
        refs: list[Any] = [{"reference": f"Patient/{i}"} for i in range(4)] + [None]
        codes = np.array([rng.randrange(5) if k == 0 else rng.choice([0, 4]) for _ in range(n)], dtype=np.intp)
        cols.append(Factored(codes, refs))
        twins.append(Factored(codes, [None if r is None else {"reference": f"urn:uuid:{i}%s"} for i, r in
                                      enumerate(refs)]))  # fmt: skip
    items = [[[{"url": "c", "valueReference": {"reference": f"P/{rng.randrange(3)}"}}
               for _ in range(rng.choice([0, 0, 1, 2]))] for _ in range(n)]]  # fmt: skip
    twin_items = [[[{**i, "valueReference": {"reference": "urn:" + i["valueReference"]["reference"]}} for i in its]
                   for its in items[0]]]  # fmt: skip
    texts = [b",".join(orjson.dumps(i) for i in its) or None for its in items[0]]
    twin_texts = [b",".join(orjson.dumps(i) for i in its) or None for its in twin_items[0]]
    tails = [Tail("extension", texts, twin_texts)]
    ids = [orjson.dumps(f"u{i}") for i in range(n)]
    root, keys = {"resourceType": "X", "id": None}, frozenset({"resourceType", "id"})
    got = row_line_pairs(n, entries, cols, twins, root, {"id": ids}, tails, keys)
    if compile_rows(entries, keys) is None:
        assert got is None
        return
    if got is None:  # a reference column merged into by another path: no pair of templates, as documented
        return
    lines, twin_lines = got
    assert lines == row_lines(n, entries, cols, root, {"id": ids}, [Tail("extension", texts)], keys)
    assert lines == _dicts(entries, [list(c) for c in cols], n, [Tail("extension", texts)], items)
    assert twin_lines == _dicts(entries, [list(c) for c in twins], n, [Tail("extension", twin_texts)], twin_items)
    unchanged = [i for i in range(n) if cols[-2][i] is None and cols[-1][i] is None and texts[i] == twin_texts[i]]
    assert all(lines[i] is twin_lines[i] for i in unchanged)  # no reference in it: one bytes object for both


def test_a_marker_in_the_specs_text_is_no_template() -> None:
    entries = [Entry(parse_path("text"), const="\ue0001\ue001", is_const=True), Entry(parse_path("status"))]
    got = row_lines(2, entries, [["a", None]], {"resourceType": "X", "id": None}, {"id": [b'"1"', b'"2"']})
    assert got is None


def test_value_texts_keep_types_apart() -> None:
    texts, present = value_texts([1, 1.0, True, None, "1", 1])
    assert texts == [b"1", b"1.0", b"true", None, b'"1"', b"1"]
    assert present.tolist() == [1, 1, 1, 0, 1, 1]
    assert value_texts([True, 1, None, 1.0])[0] == [b"true", b"1", None, b"1.0"]  # hash-equal, not one JSON
    d = {"a": 1}
    texts, codes = value_texts([d, None, {"a": 1}, "x", d], content=True)
    assert texts == [b'{"a":1}', None, b'{"a":1}', b'"x"', b'{"a":1}']
    assert codes[0] == codes[2] == codes[4] >= 2 and codes[1] == 0 and codes[3] == 1


def test_text_mode_gives_the_ndjson_of_the_dicts() -> None:
    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.ndjson import ndjson_lines
    from converter.fhir.to_fhir import Builder
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    datasets = records_to_sdtm(simulate(40, seed=11)).datasets
    stage = load_fhir_stage()
    dicts = Builder(*stage).build(datasets)
    text = Builder(*stage, text=True).build(datasets)
    assert all(r.line is not None for r in text.resources)
    assert [(r.rtype, r.uuid, r.subject) for r in text.resources] == [
        (r.rtype, r.uuid, r.subject) for r in dicts.resources
    ]
    assert text.problems == dicts.problems
    assert ndjson_lines(text) == ndjson_lines(dicts)


def test_bundle_texts_give_the_bundles_and_ndjson_of_the_dicts() -> None:
    """Builder(bundle_texts=True) (what inoconv fhir builds): the Bundles and the NDJSON byte for byte those of
    the dicts, Provenance stamped; templated sources and dict ones (serialised both ways) both met."""
    from converter.fhir.bundles import iter_bundles
    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.ndjson import ndjson_lines
    from converter.fhir.provenance import Origin, stamp
    from converter.fhir.to_fhir import Builder
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    datasets = records_to_sdtm(simulate(40, seed=11)).datasets
    stage = load_fhir_stage()
    origin = Origin("d" * 64, "sdtm", "s" * 64, "2026-01-01T00:00:00Z")
    dicts = Builder(*stage).build(datasets)
    texts = Builder(*stage, bundle_texts=True).build(datasets)
    assert all(r.line is not None and r.bundle_line is not None for r in texts.resources)
    assert any(r.line is r.bundle_line for r in texts.resources)  # Patient: no reference
    assert any(r.line != r.bundle_line for r in texts.resources)
    assert texts.problems == dicts.problems
    for result in (dicts, texts):
        stamp(result, origin, "S")
    assert dict(iter_bundles(texts, stage[0])) == dict(iter_bundles(dicts, stage[0]))
    assert ndjson_lines(texts) == ndjson_lines(dicts)


def test_factored_columns_are_the_column_values() -> None:
    import numpy as np
    import pandas as pd

    from converter.fhir.frame_values import column_factors, column_values

    df = pd.DataFrame(
        {
            "text": ["b", None, "", "a", "b", np.nan],
            "num": [1.5, np.nan, 2.0, 1.5, 0.0, 3.0],
            "mixed": [1.0, "1", None, "x", 2, None],
            "hash_equal": [1, True, 1.0, None, 1, 0],
            "negzero": [0.0, -0.0, 1.0, np.nan, 0.0, 2.0],
        }
    )
    for var in ("text", "num"):
        f = column_factors(df, var)
        assert f is not None
        want = column_values(df, var)
        assert list(f) == want and [type(v) for v in f] == [type(v) for v in want]
        assert [f[i] for i in range(len(f))] == want
        assert list(f.take([3, 0])) == [want[3], want[0]]
        assert list(f.where(np.array([True, False] * 3))) == [v if i % 2 == 0 else None for i, v in enumerate(want)]
    assert column_factors(df, "mixed") is None  # not text: left to column_values
    assert column_factors(df, "hash_equal") is None  # 1, True and 1.0 are one key but three JSON texts
    assert column_factors(df, "negzero") is None  # -0.0 and 0.0 are one key but two JSON texts


def test_a_repeated_identifier_is_reported_in_both_modes() -> None:
    import pandas as pd

    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.to_fhir import Builder
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    datasets = dict(records_to_sdtm(simulate(5, seed=2)).datasets)
    datasets["AE"] = pd.concat([datasets["AE"], datasets["AE"].iloc[[0]]], ignore_index=True)  # one row twice
    stage = load_fhir_stage()
    dicts = Builder(*stage).build(datasets)
    text = Builder(*stage, text=True).build(datasets)
    repeated = [p for p in dicts.problems if "is not unique" in p.message]
    assert len(repeated) == 1 and "AdverseEvent identifier" in repeated[0].message
    assert text.problems == dicts.problems


def test_bundle_entries_from_text_are_those_of_the_dicts() -> None:
    """transaction_text: the id cut from the text for conditional requests (also when the id is not the root's
    second key, or is missing), kept for requests by id; search escaping of the identifier in the URL."""
    from converter.fhir.bundles import transaction, transaction_text
    from converter.fhir.resource_ids import Resource, resource_uuid

    u = [resource_uuid("Observation", "s", str(i)) for i in range(5)]
    bodies: list[tuple[dict[str, Any], str, str]] = [
        ({"resourceType": "Observation", "id": u[0], "status": "final"}, "conditional", "a|b,c$"),
        ({"resourceType": "Observation", "id": u[1]}, "conditional", "plain"),
        ({"id": u[2], "resourceType": "Observation", "x": 1}, "conditional", "\u00e9 t"),
        ({"resourceType": "Observation", "x": {"id": u[3]}}, "conditional", "x"),
        ({"resourceType": "AdverseEvent", "id": u[4], "a": "%s"}, "id", "y"),
    ]
    dicts = [Resource(b["resourceType"], b, u[i], "S", "urn:s|x", v, req, "src") for i, (b, req, v) in
             enumerate(bodies)]  # fmt: skip
    texts = [Resource(r.rtype, {}, r.uuid, "S", r.system, r.value, r.request, "src", orjson.dumps(r.body),
                      orjson.dumps(r.body)) for r in dicts]  # fmt: skip
    assert transaction_text(texts) == orjson.dumps(transaction(dicts))
    assert transaction_text(dicts) == orjson.dumps(transaction(dicts))
    assert transaction_text([]) == orjson.dumps(transaction([]))
