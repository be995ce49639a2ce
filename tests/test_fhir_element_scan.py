"""The one-walk reference and coding checks (converter/fhir/element_scan.py) against the recursive walks they
replaced, kept here as the oracle: the same problems (rule, element path, value, message), in the same order, on
inoconv's FHIR of the example, the HL7 R4 examples and the Synthea export, and on random mutations of them
(dangling, contained, conditional and absolute references; unknown, example-host and urn: code systems; Codings
without a code; deep nesting; values that are not objects or arrays where objects or arrays are expected; odd
element names); and ``validate_fhir_folder`` on a folder of such mutations gives what the old checks give."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from converter.errors import Problem, problem
from converter.fhir.element_scan import element_path, scan_elements
from converter.fhir.fhir_input import read_input
from converter.fhir.located import FromFhir, Located
from converter.fhir.resource_checks import (
    Index,
    check_identifiers,
    check_ids,
    check_references,
    identifiers_of,
    iter_references,
    structure_problems,
    validate_fhir_folder,
)
from converter.fhir.terminology_checks import check_codings, check_profiles, system_problem

FIX = Path(__file__).parent / "fixtures" / "fhir"


# --- the oracle: the recursive walks as they were -------------------------------------------------------------------
def old_check_references(items: list[Located], index: Index | None = None) -> list[Problem]:
    index = index or Index(items)
    out: list[Problem] = []
    for it in items:
        for path, ref in iter_references(it.resource):
            if ref.startswith("#"):
                continue
            target, why = index.resolve(ref)
            if target is None:
                out.append(problem(it.file, it.where, path, ref, "fhir-reference", f"dangling reference: {why}"))
    return out


def old_codings(node: Any, path: str, coding: bool = False) -> Iterator[tuple[str, dict[str, Any], str]]:
    if isinstance(node, dict):
        if coding:
            yield path, node, "coding"
        elif "system" in node and "value" in node and isinstance(node.get("value"), int | float):
            yield path, node, "quantity"
        for k, v in node.items():
            sub = f"{path}.{k}" if path else k
            listed = k == "coding" or (k in ("security", "tag") and path == "meta")
            if listed and isinstance(v, list):
                for i, c in enumerate(v):
                    yield from old_codings(c, f"{sub}[{i}]", True)
            elif k == "valueCoding" and isinstance(v, dict):
                yield from old_codings(v, sub, True)
            elif isinstance(v, dict | list):
                yield from old_codings(v, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from old_codings(v, f"{path}[{i}]")


def old_check_codings(items: list[Located]) -> list[Problem]:
    out: list[Problem] = []
    for it in items:
        for path, c, kind in old_codings(it.resource, ""):
            system, code = c.get("system"), c.get("code")
            if isinstance(system, str):
                bad = system_problem(system)
                if bad is not None:
                    out.append(problem(it.file, it.where, path, system, *bad))
                if not (isinstance(code, str) and code.strip()):
                    what = "Coding" if kind == "coding" else "Quantity"
                    msg = f"the {what} names the code system {system} but carries no code"
                    out.append(problem(it.file, it.where, path, str(c.get("display") or ""), "fhir-code-missing", msg))
    return out


def old_validate_fhir_folder(folder: Path) -> list[Problem]:
    sink = FromFhir(datasets={})
    items = read_input(folder, sink)
    out: list[Problem] = []
    for it, errs in zip(items, structure_problems(items), strict=True):
        for element, msg in errs:
            out.append(problem(it.file, it.where, element, "", "fhir-r4-model", msg))
    out += old_check_references(items) + check_identifiers(items) + check_ids(items)
    return sink.problems + out + old_check_codings(items) + check_profiles(items)


# --- inputs -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """What ``inoconv fhir`` writes for a few simulated subjects (the example's generator), the HL7 R4 examples and
    the Synthea export."""
    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.writer import write_fhir_dir
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    specs, ct, sdtm_specs = load_fhir_stage()
    folder = tmp_path_factory.mktemp("ours")
    write_fhir_dir(records_to_sdtm(simulate(3, seed=7)).datasets, folder, specs, ct, sdtm_specs)
    out: list[dict[str, Any]] = []
    for path in (folder / "bundles", FIX / "hl7-r4-examples", FIX / "synthea-bulk"):
        out += [it.resource for it in read_input(path, FromFhir(datasets={}))]
    assert len(out) > 100
    return out


def _containers(node: Any, out: list[Any]) -> list[Any]:
    """Every object and array below ``node`` (itself included)."""
    if isinstance(node, dict | list):
        out.append(node)
        for v in node.values() if isinstance(node, dict) else node:
            _containers(v, out)
    return out


_REFS = ["Patient/nope", "Observation/x-1", "urn:uuid:00000000-0000-0000-0000-000000000000", "#c1", "#", "Patient",
         "Patient?identifier=urn:x|1", "Patient?identifier=nothing", "Patient?name=x", "http://srv.example/fhir/Patient/p1",
         "", "Bogus/1", "urn:oid:1.2.3"]  # fmt: skip
_SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "http://codes.example/x", "https://labs.sponsor.com/c",
            "urn:sponsor:codes", "urn:ietf:bcp:47", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "x", ""]  # fmt: skip
_ODD = [None, 0, 1.5, True, "text", [], {}, [1, "a", None], [[{"system": "urn:q", "value": 2}]]]
_KEYS = ["reference", "system", "code", "value", "coding", "valueCoding", "meta", "tag", "security", "", "display"]


def _leaf(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.3:
        return {"reference": rng.choice(_REFS)}
    if roll < 0.55:
        c: dict[str, Any] = {"system": rng.choice(_SYSTEMS)}
        if rng.random() < 0.6:
            c["code"] = rng.choice(["a", " ", "", 5, None])
        if rng.random() < 0.5:
            c["display"] = rng.choice(["shown", "", 0, None])
        return {"coding": [c, rng.choice(_ODD)]} if rng.random() < 0.5 else {"valueCoding": c}
    if roll < 0.7:
        return {"system": rng.choice(_SYSTEMS), "value": rng.choice([1, 2.5, True, "3", None]), "unit": "x"}
    if roll < 0.85:
        return {"meta": {rng.choice(["tag", "security"]): [{"system": rng.choice(_SYSTEMS)}, rng.choice(_ODD)]}}
    return copy.deepcopy(rng.choice(_ODD))


def _nest(rng: random.Random, depth: int) -> Any:
    node = _leaf(rng)
    for _ in range(depth):
        node = [node] if rng.random() < 0.4 else {rng.choice(_KEYS): node}
    return node


def mutate(res: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """``res`` changed at a few random places."""
    res = copy.deepcopy(res)
    for _ in range(rng.randint(1, 6)):
        targets = _containers(res, [])
        node = rng.choice(targets)
        roll = rng.random()
        if isinstance(node, list):
            if node and roll < 0.4:
                node[rng.randrange(len(node))] = _nest(rng, rng.randint(0, 3))
            else:
                node.insert(rng.randint(0, len(node)), _nest(rng, rng.randint(0, 3)))
            continue
        keys = list(node)
        if roll < 0.25 and "reference" in node:
            node["reference"] = rng.choice([*_REFS, 5, None, {"reference": "Patient/zz"}])
        elif roll < 0.45 and "system" in node:
            node["system"] = rng.choice([*_SYSTEMS, 3, None])
            if rng.random() < 0.5:
                node.pop("code", None)
        elif roll < 0.6 and keys:
            node[rng.choice(keys)] = copy.deepcopy(rng.choice(_ODD))  # a value that is no longer an object/array
        elif roll < 0.75:
            node["contained"] = [{"resourceType": "Patient", "id": "c1", "managingOrganization": {"reference": "#"}}]
            node[rng.choice(_KEYS)] = {"reference": rng.choice(["#c1", "#c2", "#"])}
        elif roll < 0.9:
            node[rng.choice(_KEYS)] = _nest(rng, rng.choice([5, 30, 120]))  # deep nesting
        else:
            node[rng.choice(_KEYS)] = _nest(rng, rng.randint(0, 4))
    return res


def _items(resources: list[dict[str, Any]]) -> list[Located]:
    return [Located(r, f"f{i % 3}.json", f"entry[{i}]", f"urn:uuid:{i}") for i, r in enumerate(resources)]


# --- tests --------------------------------------------------------------------------------------------------------
def test_same_findings_on_real_fhir(resources: list[dict[str, Any]]) -> None:
    items = _items(resources)
    assert check_references(items) == old_check_references(items)
    assert check_codings(items) == old_check_codings(items)


@pytest.mark.parametrize("seed", range(6))
def test_same_findings_on_mutations(resources: list[dict[str, Any]], seed: int) -> None:
    rng = random.Random(seed)
    picked = rng.sample(resources, 60)
    mutated = [mutate(r, rng) for r in picked] + picked[:10]
    items = _items(mutated)
    refs, codes = old_check_references(items), old_check_codings(items)
    assert refs and codes  # the mutations did plant problems of both kinds
    assert check_references(items) == refs
    assert check_codings(items) == codes
    assert scan_elements(items, Index(items).resolve, system_problem) == (refs, codes)


def test_odd_roots_and_names() -> None:
    odd: list[Any] = [
        {"reference": "Patient/none", "system": "urn:x", "value": 3},  # the resource itself
        {"": {"meta": {"tag": [{"system": "urn:y"}]}}},  # a path that reads "meta" below an unnamed element
        {"meta": [{"tag": [{"system": "urn:y"}]}]},  # meta as an array: its tags are not Codings
        {
            "a": [
                [{"system": "urn:z", "value": 1}],
                {"coding": {"system": "urn:z"}},
                {"valueCoding": [{"system": "urn:w"}]},
            ]
        },
        {"coding": [[{"system": "urn:v"}], {"system": "urn:u", "code": "c"}], "x": {"coding": [5, None, "s"]}},
        [{"reference": "Patient/in-a-list"}],
        "not an object",
        _nest(random.Random(1), 400),  # 400 levels deep
    ]
    items = [Located(r, "f.json", "entry", None) for r in odd]  # type: ignore[arg-type]
    shallow = items[:-1]
    index = Index([it for it in items if isinstance(it.resource, dict)])  # the index reads objects only
    assert check_references(shallow, index) == old_check_references(shallow, index)
    assert check_codings(shallow) == old_check_codings(shallow)
    assert list(dict.fromkeys(p.field for p in check_codings(shallow)))[:3] == ["", "meta.tag[0]", "a[0][0]"]
    assert [p.field for p in check_references(shallow, index)] == ["reference", "[0]"]
    assert check_references(items, index) == old_check_references(items, index)
    assert check_codings(items) == old_check_codings(items)


def test_element_path() -> None:
    doc: dict[str, Any] = {"a": [{"b": 1}]}
    assert element_path([doc, doc["a"], doc["a"][0]], ["a", 0, "b"]) == "a[0].b"
    assert element_path([], []) == ""
    assert element_path([{}], [""]) == ""


def test_validate_fhir_folder_same_findings(resources: list[dict[str, Any]], tmp_path: Path) -> None:
    rng = random.Random(99)
    picked = rng.sample(resources, 80)
    docs = [mutate(r, rng) if i % 2 else r for i, r in enumerate(picked)]
    planted = [  # one of each kind the assertion below names, whatever the random sample holds
        {"resourceType": "Observation", "id": "planted-ref", "status": "final", "code": {"text": "x"},
         "subject": {"reference": "Patient/not-in-the-folder"}},
        {"resourceType": "Observation", "id": "planted-system", "status": "final",
         "code": {"coding": [{"system": "http://invented.example/codes", "code": "X1"}]}},
        {"resourceType": "Patient", "id": "planted-model", "gender": 5},
    ]  # fmt: skip
    docs += planted  # in a Bundle of their own: a Bundle nested too deep (json-depth) is not read further
    for n in range(5):
        entries = [{"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{n:06d}{i:06d}", "resource": r}
                   for i, r in enumerate(docs[n * 20 : (n + 1) * 20])]  # fmt: skip
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        (tmp_path / f"b{n}.json").write_bytes(orjson.dumps(bundle))
    got = validate_fhir_folder(tmp_path)
    assert {p.rule for p in got} >= {"fhir-reference", "fhir-code-system", "fhir-r4-model"}
    assert got == old_validate_fhir_folder(tmp_path)


# --- the identifier table -------------------------------------------------------------------------------------------
def old_by_ident(items: list[Located]) -> dict[tuple[str, str, str], list[Located]]:
    out: dict[tuple[str, str, str], list[Located]] = {}
    for it in items:
        for system, value in identifiers_of(it.resource):
            out.setdefault((it.rtype, system, value), []).append(it)
    return out


_IDENTS: list[Any] = [None, 5, "x", [], {}, {"value": "v"}, {"system": "urn:s", "value": "v"}, {"value": 3},
                      [{"system": None, "value": "v"}, "s", None, {"system": "", "value": "v"}],
                      [{"system": "urn:s", "value": "v"}, {"system": "urn:s", "value": "v"}], {"system": 7, "value": ""}]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_identifier_table_and_check(resources: list[dict[str, Any]], seed: int) -> None:
    rng = random.Random(seed)
    picked = [mutate(r, rng) if rng.random() < 0.3 else copy.deepcopy(r) for r in rng.sample(resources, 80)]
    for r in rng.sample(picked, 30):
        r["identifier"] = copy.deepcopy(rng.choice(_IDENTS))
    if seed % 2:  # without a duplicate identifier: a resource kept when its identifiers are all new
        seen: set[tuple[str, str, str]] = set()
        unique = []
        for r in picked:
            keys = [(str(r.get("resourceType", "")), *i) for i in identifiers_of(r)]
            if len(set(keys)) == len(keys) and not seen & set(keys):
                seen |= set(keys)
                unique.append(r)
        assert len(seen) > 10
        picked = unique
    items = _items(picked + ([rng.choice(picked)] if seed % 2 == 0 else []))
    index = Index(items)
    assert index.by_ident == old_by_ident(items)
    assert all(a is b for k, v in index.by_ident.items() for a, b in zip(v, old_by_ident(items)[k], strict=True))
    assert check_identifiers(items, index) == check_identifiers(items)
    assert bool(check_identifiers(items)) == (seed % 2 == 0)


def test_scan_leaves_no_cycle_holding_the_index(resources: list[dict[str, Any]]) -> None:
    """Once the scan returns, nothing of it keeps the reference index (and through it every parsed resource)
    alive: with the cyclic GC off, dropping the last outside reference frees the index at once, after a normal
    return and after a check that raised."""
    import gc
    import weakref

    items = _items(resources[:50])
    was = gc.isenabled()
    gc.disable()
    try:
        index = Index(items)
        gone = weakref.ref(index)
        assert scan_elements(items, index.resolve, system_problem)
        del index
        assert gone() is None

        index = Index(items)
        gone = weakref.ref(index)

        def failing(*_: Any) -> Any:
            raise RuntimeError("check failed")

        with pytest.raises(RuntimeError):
            scan_elements(items, index.resolve, failing)
        del index
        assert gone() is None
    finally:
        if was:
            gc.enable()
