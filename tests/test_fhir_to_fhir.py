"""SDTM -> FHIR: one resource per row, the output folder (Bundles + NDJSON), content of the resources,
reproducibility, R4 validity, and the problems of bad SDTM input."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from test_fhir_data import example, specs

from converter.errors import ConformanceError
from converter.fhir.bundles import STUDY_BUNDLE
from converter.fhir.resource_checks import Located, check_references, validate_resource
from converter.fhir.to_fhir import FhirResult, resource_uuid, sdtm_to_fhir
from converter.fhir.writer import write_fhir_dir

EXT = "https://inoconv.example/fhir/StructureDefinition"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"


@functools.cache
def built() -> FhirResult:
    ex = example()
    return sdtm_to_fhir(ex.datasets, specs(), ex.ct, ex.specs)


def of_type(rtype: str) -> list[dict[str, Any]]:
    return [r.body for r in built().resources if r.rtype == rtype]


def ext(node: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in node.get("extension", ()) if e.get("url") == url), None)


def sub(node: dict[str, Any], url: str) -> Any:
    e = ext(node, url)
    if e is None:
        return None
    return next((v for k, v in e.items() if k.startswith("value")), e)


def test_one_resource_per_sdtm_row() -> None:
    ds = example().datasets
    counts = built().counts()
    assert counts["Patient"] == counts["ResearchSubject"] == len(ds["DM"])
    assert counts["MedicationAdministration"] == len(ds["EX"])
    assert counts["AdverseEvent"] == len(ds["AE"])
    assert counts["Observation"] == len(ds["LB"]) + len(ds["RS"])
    assert counts["Procedure"] == len(ds["PR"])
    assert counts["Condition"] == len(ds["MH"])  # the disease under study is MH (MHCAT PRIMARY DIAGNOSIS)
    assert counts["ResearchStudy"] == 1
    assert built().problems == []


def test_research_study_from_the_trial_design() -> None:
    (study,) = of_type("ResearchStudy")
    assert {"system": "https://clinicaltrials.gov", "value": "NCT01371630"} in study["identifier"]
    assert study["phase"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/research-study-phase",
        "code": "phase-2",
    }
    assert study["condition"][0]["coding"][0]["code"] == "277571004"  # SNOMED CT B-cell ALL
    assert study["arm"] == [{"name": "INO-MHCVD", "description": "INOTUZUMAB OZOGAMICIN + MINI-HYPER-CVD"}]
    ts = [e for e in study["extension"] if e["url"] == f"{EXT}/trial-summary-parameter"]
    assert len(ts) == len(example().datasets["TS"])


def test_patient_and_research_subject() -> None:
    dm = example().datasets["DM"].set_index("USUBJID")
    for p in of_type("Patient"):
        usubjid = p["identifier"][0]["value"]
        row = dm.loc[usubjid]
        assert p["gender"] == {"M": "male", "F": "female"}[row["SEX"]]
        race = ext(p, "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race")
        assert race is not None and sub(race, "text") == row["RACE"]
        if row["DTHDTC"] is not None:
            assert p["deceasedDateTime"] == row["DTHDTC"]
        assert p["extension"][0]["valueAge"]["code"] == "a"
    rs = of_type("ResearchSubject")[0]
    assert rs["study"]["reference"] == "ResearchStudy?identifier=urn:inoconv:studyid|NCT01371630"
    assert rs["individual"]["reference"].startswith("urn:uuid:")
    assert rs["assignedArm"] == "INO-MHCVD"
    progress = [e for e in rs["extension"] if e["url"] == f"{EXT}/researchsubject-progress"]
    assert progress, "DS rows ride on the ResearchSubject"


def test_adverse_events_carry_seriousness_outcome_grade_causality_and_vod() -> None:
    aes = of_type("AdverseEvent")
    vod = [
        a
        for a in aes
        if any(
            sub(e, "QNAM") == "AEVOD" and sub(e, "QVAL") == "Y"
            for e in a["extension"]
            if e["url"] == f"{EXT}/sdtm-supplemental-qualifier"
        )
    ]
    assert vod, "the SUPPAE VOD flag is on the AdverseEvent"
    for a in aes:
        assert a["actuality"] == "actual"
        assert (
            a["seriousness"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
        )
        grade = sub(a, f"{EXT}/ctcae-grade")
        assert grade["coding"][0]["system"] == NCIT and grade["text"] in "12345"
        assessment = a["suspectEntity"][0]["causality"][0]["assessment"]
        assert assessment.get("text") or assessment["coding"][0]["code"] == "Possible"
        # MedDRA: a coding only with its code; a PT whose code is not known rides on meddra-term-uncoded
        codings = a["event"].get("coding", [])
        uncoded = [e for e in a["event"].get("extension", []) if e["url"] == f"{EXT}/meddra-term-uncoded"]
        assert all(c["system"] == "http://terminology.hl7.org/CodeSystem/mdr" and c["code"] for c in codings)
        assert bool(codings) != bool(uncoded), a["event"]
    outcomes = {a["outcome"]["coding"][0]["code"] for a in aes if "outcome" in a}
    assert outcomes <= {"resolved", "recovering", "ongoing", "resolvedWithSequelae", "fatal", "unknown"}


def _short_name(o: dict[str, Any]) -> str:
    """The SDTM test code an Observation carries on its code (${EXT}/sdtm-short-name)."""
    return next(e["valueCode"] for e in o["code"]["extension"] if e["url"] == f"{EXT}/sdtm-short-name")


def test_labs_with_ncit_loinc_ucum_and_mrd() -> None:
    obs = of_type("Observation")
    assert {"MRD", "OVRLRESP", "PLAT"} <= {_short_name(o) for o in obs}
    plat = next(o for o in obs if _short_name(o) == "PLAT")
    # the CDISC term's NCIt concept (LBTESTCD PLAT = C51951 in CDISC CT) beside LOINC, the test name as text
    assert {"system": NCIT, "code": "C51951", "display": "Platelets"} in plat["code"]["coding"]
    assert {"system": "http://loinc.org", "code": "777-3"} in plat["code"]["coding"]
    assert plat["code"]["text"] == "Platelets"
    assert plat["valueQuantity"]["code"] == "10*9/L" and plat["valueQuantity"]["unit"] == "10^9/L"
    mrd = next(o for o in obs if _short_name(o) == "MRD")
    assert "valueCodeableConcept" in mrd or mrd["status"] == "cancelled"
    rsp = next(o for o in obs if _short_name(o) == "OVRLRESP")
    assert {"system": NCIT, "code": "C96613", "display": "Overall Response"} in rsp["code"]["coding"]
    assert rsp["valueCodeableConcept"]["text"]
    # no code system of the project's own: every coding is of a published terminology
    systems = {c["system"] for o in obs for cc in (o["code"], *o.get("category", ())) for c in cc.get("coding", ())}
    assert not any("inoconv" in s for s in systems), systems


def test_ndjson_form_refers_by_type_and_id() -> None:
    res = built()
    res.refs.use("ndjson")
    items = [
        Located(orjson.loads(orjson.dumps(r.body)), f"{r.rtype}.ndjson", str(i)) for i, r in enumerate(res.resources)
    ]
    ae = next(it for it in items if it.rtype == "AdverseEvent")
    assert ae.resource["subject"]["reference"].startswith("Patient/")
    assert check_references(items) == []
    res.refs.use("bundle")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder, written under --strict: every Bundle valid against the R4 models (fhir.resources R4B),
    every reference resolved, every identifier unique."""
    out = tmp_path_factory.mktemp("fhir") / "out"
    ex = example()
    write_fhir_dir(ex.datasets, out, specs(), ex.ct, ex.specs, strict=True, partition=25)
    return out


def test_output_layout(written: Path) -> None:
    bundles = sorted(p.name for p in (written / "bundles").glob("*.json"))
    subjects = sorted(example().datasets["DM"]["USUBJID"])
    assert STUDY_BUNDLE in bundles and len(bundles) == len(subjects) + 1
    assert sorted((written / "ndjson").glob("*.ndjson"))[0].name == "AdverseEvent.ndjson"
    n_nd = sum(len(p.read_bytes().splitlines()) for p in (written / "ndjson").glob("*.ndjson"))
    assert n_nd == len(built().resources)


def test_bundle_entries_are_idempotent_puts(written: Path) -> None:
    first = sorted((written / "bundles").glob("NCT*.json"))[0]
    bundle = orjson.loads(first.read_bytes())
    assert bundle["type"] == "transaction"
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"
    for e in bundle["entry"]:
        res, req = e["resource"], e["request"]
        assert req["method"] == "PUT"
        ident = res["identifier"] if isinstance(res["identifier"], dict) else res["identifier"][0]
        uid = resource_uuid(res["resourceType"], ident["system"], ident["value"])
        assert e["fullUrl"] == f"urn:uuid:{uid}"
        if res["resourceType"] == "AdverseEvent":  # R4: no identifier search parameter
            assert req["url"] == f"AdverseEvent/{uid}" and res["id"] == uid
        else:
            assert req["url"] == f"{res['resourceType']}?identifier={ident['system']}|{ident['value']}"
            assert "id" not in res


def test_output_is_reproducible(written: Path, tmp_path: Path) -> None:
    ex = example()
    again = tmp_path / "again"
    write_fhir_dir(ex.datasets, again, specs(), ex.ct, ex.specs, partition=7)
    for p in sorted(written.rglob("*.*json")):
        assert (again / p.relative_to(written)).read_bytes() == p.read_bytes(), p.name


def test_partial_dates_times_and_unmapped_values_keep_the_sdtm_value() -> None:
    ex = example()
    dm = ex.datasets["DM"].head(2).copy()
    dm.loc[0, "BRTHDTC"] = "1970---15"  # day known, month not: FHIR can say 1970 only
    dm.loc[1, "SEX"] = "X"  # not a CDISC SEX term: no gender, the value rides on _gender
    ae = ex.datasets["AE"][ex.datasets["AE"]["USUBJID"] == dm.loc[0, "USUBJID"]].head(1).copy()
    ae.loc[ae.index[0], "AESTDTC"] = "2014-07-02T11:45"  # a time without seconds and offset
    res = sdtm_to_fhir({"DM": dm, "AE": ae}, specs(), ex.ct, ex.specs)
    url = specs().original_value_url
    p0, p1 = (r.body for r in res.resources if r.rtype == "Patient")
    assert p0["birthDate"] == "1970" and p0["_birthDate"]["extension"] == [{"url": url, "valueString": "1970---15"}]
    assert "gender" not in p1 and p1["_gender"]["extension"][0]["valueString"] == "X"
    a = next(r.body for r in res.resources if r.rtype == "AdverseEvent")
    assert a["date"] == "2014-07-02" and a["_date"]["extension"][0]["valueString"] == "2014-07-02T11:45"
    for r in res.resources:
        assert validate_resource(r.body) == [], r.rtype


def test_problems_of_the_sdtm_input_are_reported() -> None:
    ex = example()
    suppae = ex.datasets["SUPPAE"].head(1).copy()
    suppae.loc[suppae.index[0], "IDVARVAL"] = "999"
    ae = ex.datasets["AE"].copy()
    ae.loc[ae.index[0], "AESEQ"] = pd.NA
    res = sdtm_to_fhir({"DM": ex.datasets["DM"], "AE": ae, "SUPPAE": suppae}, specs(), ex.ct, ex.specs)
    text = "\n".join(str(p) for p in res.problems)
    assert "SUPPAE:row 1" in text and "no AE row of the subject with AESPID = 999" in text
    assert "no AdverseEvent made: its identifier needs AESEQ" in text


def test_strict_rejects_output_with_dangling_references(tmp_path: Path) -> None:
    ex = example()
    dm = ex.datasets["DM"].head(1)
    ae = ex.datasets["AE"][ex.datasets["AE"]["USUBJID"] != dm["USUBJID"].iloc[0]].head(1)
    with pytest.raises(ConformanceError) as exc:
        write_fhir_dir({"DM": dm, "AE": ae}, tmp_path / "o", specs(), ex.ct, ex.specs, strict=True)
    assert "is not an entry of the Bundle" in str(exc.value)
    assert not (tmp_path / "o").exists()
    rep = write_fhir_dir({"DM": dm, "AE": ae}, tmp_path / "o", specs(), ex.ct, ex.specs)
    assert any("refer to a Patient that no SDTM row makes" in str(p) for p in rep.problems)
