"""The fast structure check (converter.fhir.structure) against its oracle, the fhir.resources R4B models.

* the element list it reads (converter/fhir/r4b_elements.json) is what the models give today;
* on real FHIR (the HL7 R4 examples, the Synthea export, what ``inoconv fhir`` writes) it accepts what the models
  accept;
* for each class of planted error (unknown element, wrong primitive type, bad date/code/id, missing required
  element, cardinality, choice, bad reference, bad contained resource) in each fixture resource, both the
  fast check and the models reject it, and the fast check names the element;
* where the models are laxer than FHIR's JSON rules, the fast check follows FHIR (listed, each asserted);
* the column-wise pass (``check_resources``) finds exactly the resources that ``check_resource`` finds;
* ``inoconv tosdtm`` names file, line and field of a planted error and exits 2, by default and with ``--strict``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from converter.fhir.commands import tosdtm_command
from converter.fhir.fhir_input import read_input
from converter.fhir.located import FromFhir
from converter.fhir.resource_checks import validate_resource
from converter.fhir.structure import check_resource, check_resources
from converter.fhir.structure_meta import DATA_FILE, generate, render

FIX = Path(__file__).parent / "fixtures" / "fhir"


def _resources(path: Path) -> list[dict[str, Any]]:
    sink = FromFhir(datasets={})
    items = read_input(path, sink)
    return [it.resource for it in items]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every resource of the HL7 examples and the Synthea export, and a sample of what ``inoconv fhir`` writes."""
    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.writer import write_fhir_dir
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    out = _resources(FIX / "hl7-r4-examples") + _resources(FIX / "synthea-bulk")
    specs, ct, sdtm_specs = load_fhir_stage()
    folder = tmp_path_factory.mktemp("ours")
    write_fhir_dir(records_to_sdtm(simulate(2, seed=3)).datasets, folder, specs, ct, sdtm_specs)
    seen: dict[str, int] = {}
    for r in _resources(folder / "ndjson"):
        if seen.get(r["resourceType"], 0) < 6:  # a few of each type inoconv writes
            seen[r["resourceType"]] = seen.get(r["resourceType"], 0) + 1
            out.append(r)
    return out


def test_element_list_is_current() -> None:
    """r4b_elements.json is what the installed R4B models give (INOCONV_UPDATE_R4B_ELEMENTS=1 rewrites it)."""
    now = render(generate())
    if os.environ.get("INOCONV_UPDATE_R4B_ELEMENTS") == "1":
        DATA_FILE.write_bytes(now)
    assert DATA_FILE.read_bytes() == now, "r4b_elements.json is stale: INOCONV_UPDATE_R4B_ELEMENTS=1 rewrites it"


def test_real_fhir_accepted_as_the_models_accept_it(real: list[dict[str, Any]]) -> None:
    assert len(real) > 600
    types = {r["resourceType"] for r in real}
    assert {"Patient", "Observation", "Condition", "MedicationRequest", "AdverseEvent", "ResearchSubject"} <= types
    for r in real:
        assert validate_resource(r) == [], r.get("id")  # the oracle: all of them valid
        assert check_resource(r) == [], (r["resourceType"], r.get("id"), check_resource(r))
    assert check_resources(real) == [[] for _ in real]


# --- planted errors -------------------------------------------------------------------------------------------
def _first_list(r: dict[str, Any]) -> str | None:
    return next((k for k, v in r.items() if isinstance(v, list) and k not in ("contained",)), None)


def _first_single_object(r: dict[str, Any]) -> str | None:
    return next((k for k, v in r.items() if isinstance(v, dict) and k != "text"), None)


def _plant(r: dict[str, Any], kind: str) -> str | None:
    """Plant one error of ``kind`` in ``r`` (in place); the element it is in, or None when ``r`` has no place."""
    rt = r["resourceType"]
    if kind == "unknown element":
        r["colour"] = "blue"
        return "colour"
    if kind == "unknown primitive extension":
        r["_colour"] = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
        return "_colour"
    if kind == "string where an object is":
        k = _first_single_object(r)
        if k is None:
            return None
        r[k] = "text"
        return k
    if kind == "number for a string (id)":
        r["id"] = 12
        return "id"
    if kind == "bad id":
        r["id"] = "has space"
        return "id"
    if kind == "empty id":
        r["id"] = ""
        return "id"
    if kind == "bad code (meta.tag)":
        r.setdefault("meta", {})["tag"] = [{"system": "http://example.org", "code": " leading-space"}]
        return "meta.tag.0.code"
    if kind == "bad instant (meta.lastUpdated)":
        r.setdefault("meta", {})["lastUpdated"] = "2020-01-01"
        return "meta.lastUpdated"
    if kind == "impossible date":
        for k in ("birthDate", "recordedDate", "onsetDateTime", "effectiveDateTime", "date", "authoredOn"):
            if k in r or (k == "birthDate" and rt == "Patient"):
                r[k] = "2021-02-30"
                return k
        return None
    if kind == "bad dateTime format":
        for k in ("recordedDate", "onsetDateTime", "effectiveDateTime", "date", "authoredOn", "performedDateTime"):
            if k in r:
                r[k] = "2021-02-03T10:00"  # a time needs seconds and a zone
                return k
        return None
    if kind == "boolean where a boolean is not":
        r.setdefault("meta", {})["versionId"] = True
        return "meta.versionId"
    if kind == "single where a list is":
        k = _first_list(r)
        if k is None:
            return None
        r[k] = r[k][0]
        return k
    if kind == "list where a single is":
        k = _first_single_object(r)
        if k is None:
            return None
        r[k] = [r[k]]
        return k
    if kind == "null item in a list":
        k = next((k for k, v in r.items() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
        if k is None:
            return None
        r[k] = [*r[k], None]
        return k
    if kind == "missing required element":
        required = {"Observation": "code", "Condition": "subject", "Procedure": "subject", "Patient": None,
                    "MedicationRequest": "subject", "AdverseEvent": "subject", "ResearchSubject": "study",
                    "ResearchStudy": "status", "Encounter": "status", "MedicationAdministration": "subject",
                    "MedicationStatement": "subject", "DiagnosticReport": "code", "CarePlan": "subject",
                    "EpisodeOfCare": "patient"}  # fmt: skip
        k = required.get(rt)
        if k is None or k not in r:
            return None
        del r[k]
        return k
    if kind == "extension without url":
        r["extension"] = [{"valueString": "x"}]
        return "extension.0.url"
    if kind == "two choice values":
        r["extension"] = [{"url": "http://example.org/x", "valueString": "x", "valueBoolean": True}]
        return "extension.0"
    if kind == "reference not a string":
        for k in ("subject", "patient", "individual"):
            if isinstance(r.get(k), dict):
                r[k] = {"reference": 7}
                return f"{k}.reference"
        return None
    if kind == "unknown element in a reference":
        for k in ("subject", "patient", "individual"):
            if isinstance(r.get(k), dict):
                r[k] = {"ref": "Patient/1"}
                return f"{k}.ref"
        return None
    if kind == "integer with a fraction":
        r["extension"] = [{"url": "http://example.org/x", "valueInteger": 1.5}]
        return "extension.0.valueInteger"
    if kind == "integer out of range":
        r["extension"] = [{"url": "http://example.org/x", "valueInteger": 2**40}]
        return "extension.0.valueInteger"
    if kind == "decimal a boolean":
        r["extension"] = [{"url": "http://example.org/x", "valueDecimal": True}]
        return "extension.0.valueDecimal"
    if kind == "bad contained resource":
        r["contained"] = [{"resourceType": "Patient", "id": "c1", "colour": "blue"}]
        return "contained.0.colour"
    if kind == "unknown contained resource type":
        r["contained"] = [{"resourceType": "Spaceship", "id": "c1"}]
        return "contained.0.resourceType"
    raise AssertionError(kind)


KINDS = [
    "unknown element", "unknown primitive extension", "string where an object is", "number for a string (id)",
    "bad id", "empty id", "bad code (meta.tag)", "bad instant (meta.lastUpdated)", "impossible date",
    "bad dateTime format", "boolean where a boolean is not", "single where a list is", "list where a single is",
    "null item in a list", "missing required element", "extension without url", "two choice values",
    "reference not a string", "unknown element in a reference", "integer with a fraction", "integer out of range",
    "decimal a boolean", "bad contained resource", "unknown contained resource type",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_planted_error_rejected_by_both(kind: str, real: list[dict[str, Any]]) -> None:
    planted = 0
    for base in real:
        r = copy.deepcopy(base)
        where = _plant(r, kind)
        if where is None:
            continue
        planted += 1
        fast = check_resource(r)
        assert fast, (kind, r["resourceType"], r.get("id"))
        assert validate_resource(r), (kind, r["resourceType"], r.get("id"))  # the oracle agrees it is invalid
        fields = [f for f, _m in fast]
        assert any(f == where or f.startswith(where + ".") or where.startswith(f + ".") for f in fields), (
            kind, where, fast)  # fmt: skip
    assert planted >= 20, kind  # the class was planted in many resources of several types


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("valueInteger", "5"),  # a string for an integer
        ("valueBoolean", "true"),  # a string for a boolean
        ("valueDecimal", "1.5"),  # a string for a decimal
        ("valueUri", "a b"),  # a uri with a space
        ("valueString", []),  # an empty array
        ("valueCodeableConcept", {}),  # an empty object
        ("valueReference", {"reference": "Patient/"}),  # a relative reference without an id
        ("valueReference", {"reference": "Spaceship/1"}),  # not a resource type
        ("valueDateTime", 2020),  # a number for a dateTime
    ],
)
def test_fhir_json_rules_where_the_models_are_lax(element: str, value: Any) -> None:
    """FHIR's JSON representation (https://hl7.org/fhir/R4/json.html) refuses these; the R4B models accept most."""
    r = {"resourceType": "Patient", "id": "p", "extension": [{"url": "http://example.org/x", element: value}]}
    assert check_resource(r), (element, value)


def test_column_wise_pass_finds_what_the_resource_pass_finds(real: list[dict[str, Any]]) -> None:
    batch = [copy.deepcopy(r) for r in real * 3]
    bad: set[int] = set()
    for i, kind in zip(range(5, len(batch), 97), KINDS * 10, strict=False):
        if _plant(batch[i], kind) is not None:
            bad.add(i)
    got = check_resources(batch, batch=64)
    assert {i for i, p in enumerate(got) if p} == bad
    assert got == [check_resource(r) for r in batch]


# --- the commands ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strict", [False, True])
def test_tosdtm_names_file_line_and_field(tmp_path: Path, strict: bool, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    lines = (FIX / "synthea-bulk" / "Condition.000.ndjson").read_bytes().splitlines()[:5]
    r = orjson.loads(lines[2])
    r["onsetDateTime"] = "2021-02-30T10:00:00Z"
    lines[2] = orjson.dumps(r)
    (src / "Condition.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    (src / "Patient.ndjson").write_bytes((FIX / "synthea-bulk" / "Patient.000.ndjson").read_bytes())
    code = tosdtm_command(src, tmp_path / "out", strict=strict)
    assert code == 2
    text = (tmp_path / "out" / "tosdtm-problems.csv").read_text(encoding="utf-8")
    assert "Condition.ndjson,line 3,onsetDateTime," in text
    capsys.readouterr()


def test_primitive_extensions_column_wise() -> None:
    """``_x`` beside primitives (arrays with nulls pairing their items) pass the column-wise pass as the models
    pass them; a wrong one is found in a batch."""
    ext = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    good = {"resourceType": "Patient", "id": "p", "birthDate": "1970", "_birthDate": ext,
            "name": [{"given": ["A", "B"], "_given": [None, ext]}]}  # fmt: skip
    bad = copy.deepcopy(good)
    bad["name"][0]["_given"] = [None, {"colour": "blue"}]
    assert validate_resource(good) == [] and validate_resource(bad)
    batch = [copy.deepcopy(good) for _ in range(40)] + [bad]
    got = check_resources(batch, batch=16)
    assert got[:40] == [[]] * 40
    assert [f for f, _m in got[40]] == ["name.0._given.1.colour"]
