"""The Bundles ``inoconv fhir`` writes, sent to a real FHIR R4 server (tests/fhir_server: Medplum, in memory):
accepted as transactions, references resolved (urn:uuid inside a Bundle, the conditional reference to the
study), and idempotent: sending them again updates, it does not duplicate."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from conftest_fhir import count, fhir_server, fresh_fhir_server  # noqa: F401
from test_fhir_data import example, specs

from converter.fhir.bundles import STUDY_BUNDLE
from converter.fhir.writer import write_fhir_dir


def _post(url: str, path: Path) -> httpx.Response:
    return httpx.post(url, content=path.read_bytes(), headers={"Content-Type": "application/fhir+json"}, timeout=60)


def test_bundles_upload_idempotently(fresh_fhir_server: str, tmp_path: Path) -> None:  # noqa: F811
    url = fresh_fhir_server
    ex = example()
    dm = ex.datasets["DM"]
    subjects = set(dm["USUBJID"].iloc[:4])
    part = {k: (v[v["USUBJID"].isin(subjects)] if "USUBJID" in v.columns else v) for k, v in ex.datasets.items()}
    out = tmp_path / "fhir"
    rep = write_fhir_dir(part, out, specs(), ex.ct, ex.specs)
    files = [
        out / "bundles" / STUDY_BUNDLE,
        *sorted(p for p in (out / "bundles").glob("*.json") if p.name != STUDY_BUNDLE),
    ]
    for round_, expect in ((1, "201"), (2, "200")):
        for f in files:
            resp = _post(url, f)
            assert resp.status_code == 200, f"{f.name}: {resp.text[:2000]}"
            statuses = {e["response"]["status"].split()[0] for e in resp.json()["entry"]}
            assert statuses == {expect}, (round_, f.name, statuses)
    for rtype, n in rep.counts.items():
        assert count(url, rtype) == n, rtype
    study_id = httpx.get(f"{url}ResearchStudy", timeout=10).json()["entry"][0]["resource"]["id"]
    subjects_back = httpx.get(f"{url}ResearchSubject", timeout=10).json()["entry"]
    assert {e["resource"]["study"]["reference"] for e in subjects_back} == {f"ResearchStudy/{study_id}"}
    patient_ids = {e["resource"]["id"] for e in httpx.get(f"{url}Patient", timeout=10).json()["entry"]}
    aes = httpx.get(f"{url}AdverseEvent?_count=200", timeout=10).json().get("entry", [])
    assert aes and {e["resource"]["subject"]["reference"].split("/")[1] for e in aes} <= patient_ids
    first = orjson.loads(files[1].read_bytes())
    ae_entry = next(e for e in first["entry"] if e["resource"]["resourceType"] == "AdverseEvent")
    assert httpx.get(url + ae_entry["request"]["url"], timeout=10).status_code == 200  # PUT AdverseEvent/<uuid5>


@pytest.mark.parametrize("kind", ["ndjson"])
def test_ndjson_ids_and_references(kind: str, tmp_path: Path) -> None:
    ex = example()
    out = tmp_path / "fhir"
    write_fhir_dir(ex.datasets, out, specs(), ex.ct, ex.specs)
    ids: set[str] = set()
    refs: set[str] = set()
    for f in (out / kind).glob("*.ndjson"):
        for line in f.read_bytes().splitlines():
            res = orjson.loads(line)
            ids.add(f"{res['resourceType']}/{res['id']}")
            for key in ("subject", "individual", "study"):
                node = res.get(key)
                for r in node if isinstance(node, list) else [node] if node else []:
                    refs.add(r["reference"])
    assert refs and refs <= ids
