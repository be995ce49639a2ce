"""Offline terminology and profile checks (converter/fhir/terminology_checks.py, INO-FHIR-008..011): each rule
fires on a resource that breaks it and stays quiet on one that keeps it; inoconv's own output of the example
passes all of them (no invented code system, no code-less Coding, every claimed profile's requirements met)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from test_fhir_data import example

from converter.fhir.commands import fhir_command
from converter.fhir.located import Located
from converter.fhir.sdtm_dir import write_sdtm_dir
from converter.fhir.terminology_checks import PROFILES, check_codings, check_profiles, system_problem
from converter.validate.folder import check_fhir

SCT = "http://snomed.info/sct"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
MCODE_PCC = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"


def _rules(resource: dict[str, Any]) -> list[str]:
    items = [Located(resource, "x.ndjson", "1")]
    return [p.rule for p in check_codings(items) + check_profiles(items)]


@pytest.mark.parametrize(
    "system",
    [
        "http://snomed.info/sct",
        "http://loinc.org",
        "http://unitsofmeasure.org",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        NCIT,
        "http://terminology.hl7.org/CodeSystem/mdr",
        "urn:iso:std:iso:3166",
        "http://terminology.hl7.org/CodeSystem/observation-category",
        "http://hl7.org/fhir/administrative-gender",
    ],
)
def test_published_terminologies_are_known(system: str) -> None:
    assert system_problem(system) is None


@pytest.mark.parametrize(
    ("system", "rule"),
    [
        ("https://inoconv.example/fhir/CodeSystem/sdtm-testcd", "fhir-code-system"),
        ("http://example.org/codes", "fhir-code-system"),
        ("https://codes.sponsor.com/labs", "fhir-code-system"),
        ("urn:sponsor:codes", "fhir-code-system-urn"),
    ],
)
def test_invented_or_unknown_systems_are_findings(system: str, rule: str) -> None:
    got = system_problem(system)
    assert got is not None and got[0] == rule


def test_codings_everywhere_are_checked_identifiers_are_not() -> None:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:sponsor:lb", "value": "1"}],  # a namespace of the sponsor: not a coding
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        "valueQuantity": {"value": 1.0, "unit": "10^9/L", "system": "http://unitsofmeasure.org", "code": "10*9/L"},
        "extension": [{"url": "https://x.org/ext", "valueCoding": {"system": SCT, "code": "1"}}],
        "meta": {
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "PSEUDED"}]
        },
    }
    assert _rules(obs) == []
    bad = copy.deepcopy(obs)
    bad["code"]["coding"].append({"system": "https://inoconv.example/fhir/CodeSystem/sdtm-testcd", "code": "PLAT"})
    bad["extension"][0]["valueCoding"] = {"system": "https://codes.example.com/x", "code": "1"}
    bad["meta"]["security"][0]["system"] = "urn:my:labels"
    bad["valueQuantity"]["system"] = "http://units.example/"
    assert sorted(_rules(bad)) == ["fhir-code-system"] * 3 + ["fhir-code-system-urn"]


def test_a_coding_with_a_system_needs_a_code() -> None:
    ae = {"resourceType": "AdverseEvent", "event": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/mdr",
                                                                "display": "Anaemia"}]}}  # fmt: skip
    assert _rules(ae) == ["fhir-code-missing"]
    ae["event"]["coding"][0]["code"] = "10002034"
    assert _rules(ae) == []
    no_system = {"resourceType": "AdverseEvent", "event": {"coding": [{"display": "Anaemia"}]}}
    assert _rules(no_system) == []  # a display alone claims no code system


def _condition() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "meta": {"profile": [MCODE_PCC]},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "verificationStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]
        },
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}
                ]
            }
        ],
        "code": {"coding": [{"system": SCT, "code": "277571004"}]},
        "subject": {"reference": "Patient/1"},
    }


def test_a_claimed_profile_is_checked() -> None:
    assert MCODE_PCC in PROFILES
    assert _rules(_condition()) == []
    no_subject = _condition()
    del no_subject["subject"]
    assert _rules(no_subject) == ["fhir-profile"]
    ncit_only = _condition()
    ncit_only["code"] = {"coding": [{"system": NCIT, "code": "C8936"}]}
    assert _rules(ncit_only) == ["fhir-profile"]
    wrong_type = {**_condition(), "resourceType": "Observation"}
    assert _rules(wrong_type) == ["fhir-profile"]
    unknown = _condition()
    unknown["meta"]["profile"] = ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-problems"]
    assert _rules(unknown) == ["fhir-profile-unknown"]


def test_inoconv_output_of_the_example_passes_and_an_invented_system_fails(tmp_path: Path) -> None:
    sdtm = tmp_path / "sdtm"
    write_sdtm_dir(example().datasets, sdtm, example().specs)
    out = tmp_path / "fhir"
    assert fhir_command(sdtm, out, echo=lambda _m: None) == 0
    ours = [f for f in check_fhir(out) if f.rule_id in {"INO-FHIR-008", "INO-FHIR-009", "INO-FHIR-010", "INO-FHIR-011"}]
    assert ours == []
    conditions = [json.loads(line) for line in (out / "ndjson" / "Condition.ndjson").open()]

    # the disease under study (coded SNOMED CT 277571004) claims mCODE PrimaryCancerCondition; nothing else claims it
    def is_all(c: dict[str, Any]) -> bool:
        return any(x.get("system") == SCT and x.get("code") == "277571004" for x in c["code"].get("coding", []))

    study = [c for c in conditions if is_all(c)]
    assert study and all(c["meta"]["profile"] == [MCODE_PCC] for c in study)
    assert all("profile" not in c.get("meta", {}) for c in conditions if not is_all(c))
    # the same folder with one invented code system: an error finding naming the file and the element
    bundle_file = next(p for p in sorted((out / "bundles").glob("*.json")) if p.name != "study.json")
    bundle = json.loads(bundle_file.read_text())
    obs = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    obs["code"]["coding"].append({"system": "https://inoconv.example/fhir/CodeSystem/sdtm-testcd", "code": "X"})
    bundle_file.write_text(json.dumps(bundle))
    bad = [f for f in check_fhir(out) if f.rule_id == "INO-FHIR-008"]
    assert len(bad) == 1 and bad[0].severity == "error" and bad[0].file == f"bundles/{bundle_file.name}"
    assert "inoconv.example" in bad[0].message and "code.coding" in bad[0].variable
