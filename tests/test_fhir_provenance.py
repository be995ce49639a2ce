"""Provenance of ``inoconv fhir`` (issue 18) and the de-identification mark carried on.

Every Bundle carries one Provenance whose target lists every other resource of that Bundle; its entities name the
SDTM data and the specs by SHA-256, its agent inoconv and its version. A de-identified SDTM folder (``deid.json``
with a passed residual check) gives a FHIR folder with the same ``deid.json`` and every resource labelled PSEUDED.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_fhir_data import example, specs

from converter import __version__
from converter.fhir.commands import fhir_command, tosdtm_command
from converter.fhir.provenance import PSEUDONYMISED, data_digest, files_digest, is_inoconv_provenance
from converter.fhir.sdtm_dir import read_sdtm_dir, write_sdtm_dir


def _bundles(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((folder / "bundles").glob("*.json"))}


def _ndjson(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((folder / "ndjson").glob("*.ndjson")) for line in p.open()]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("prov")
    sdtm = base / "sdtm"
    write_sdtm_dir(example().datasets, sdtm, example().specs)
    assert fhir_command(sdtm, base / "fhir", strict=True, echo=lambda _m: None) == 0
    return sdtm, base / "fhir"


def test_every_bundle_has_one_provenance_targeting_all_its_other_resources(converted: tuple[Path, Path]) -> None:
    _sdtm, fhir = converted
    bundles = _bundles(fhir)
    assert "study.json" in bundles and len(bundles) > 1
    for name, bundle in bundles.items():
        entries = bundle["entry"]
        prov = [e for e in entries if e["resource"]["resourceType"] == "Provenance"]
        assert len(prov) == 1, name
        others = {e["fullUrl"] for e in entries if e["resource"]["resourceType"] != "Provenance"}
        targets = {t["reference"] for t in prov[0]["resource"]["target"]}
        assert targets == others, name
        # R4 Provenance has no identifier: an update on its deterministic id, so sending again replaces it
        assert prov[0]["request"] == {"method": "PUT", "url": f"Provenance/{prov[0]['resource']['id']}"}


def test_provenance_names_inoconv_and_the_sources_by_hash(converted: tuple[Path, Path]) -> None:
    sdtm, fhir = converted
    provs = [r for r in _ndjson(fhir) if r["resourceType"] == "Provenance"]
    assert provs and all(is_inoconv_provenance(p) for p in provs)
    want = {data_digest(read_sdtm_dir(sdtm)), files_digest(specs().files)}
    for p in provs:
        assert p["agent"][0]["who"]["display"] == f"inoconv {__version__}"
        assert p["agent"][0]["type"]["coding"][0]["code"] == "assembler"
        assert {e["what"]["identifier"]["value"] for e in p["entity"]} == want
        assert {e["role"] for e in p["entity"]} == {"source"}
        assert p["recorded"].endswith("Z")
    # every other NDJSON resource is the target of exactly one Provenance
    targets = [t["reference"] for p in provs for t in p["target"]]
    others = [f"{r['resourceType']}/{r['id']}" for r in _ndjson(fhir) if r["resourceType"] != "Provenance"]
    assert sorted(targets) == sorted(others)
    assert not any("security" in r.get("meta", {}) for r in _ndjson(fhir)), "not de-identified: no label"
    assert not (fhir / "deid.json").exists()


def test_the_data_digest_does_not_depend_on_the_file_form(converted: tuple[Path, Path], tmp_path: Path) -> None:
    sdtm, _fhir = converted
    only_json = tmp_path / "json"
    only_json.mkdir()
    for p in sdtm.glob("*.json"):
        (only_json / p.name).write_bytes(p.read_bytes())
    assert data_digest(read_sdtm_dir(only_json)) == data_digest(read_sdtm_dir(sdtm))
    changed = read_sdtm_dir(sdtm)
    changed["DM"].loc[0, "SITEID"] = "OTHER"
    assert data_digest(changed) != data_digest(read_sdtm_dir(sdtm))


def test_a_deidentified_folder_carries_its_mark_and_label_on(converted: tuple[Path, Path], tmp_path: Path) -> None:
    sdtm, _fhir = converted
    deid = tmp_path / "sdtm"
    deid.mkdir()
    for p in sdtm.iterdir():
        if p.name != "manifest.json":
            (deid / p.name).write_bytes(p.read_bytes())
    mark = {"deidentified": True, "residual_check": "passed", "standard": "test", "subjects": 59}
    (deid / "deid.json").write_text(json.dumps(mark), encoding="utf-8")
    out = tmp_path / "fhir"
    lines: list[str] = []
    assert fhir_command(deid, out, echo=lines.append) == 0
    assert (out / "deid.json").read_bytes() == (deid / "deid.json").read_bytes()
    assert any("PSEUDED" in line for line in lines)
    resources = _ndjson(out)
    assert resources and all(PSEUDONYMISED in r["meta"]["security"] for r in resources)
    for bundle in _bundles(out).values():
        assert all(PSEUDONYMISED in e["resource"]["meta"]["security"] for e in bundle["entry"])
    # and the way back reads it as ours: the Provenance is derived, nothing is left unconverted
    assert tosdtm_command(out / "ndjson", tmp_path / "back", echo=lambda _m: None) == 0
    report = (tmp_path / "back" / "tosdtm-report.csv").read_text()
    assert "not converted" not in report and "Provenance" in report


def test_a_mark_without_a_passed_residual_check_is_not_carried(converted: tuple[Path, Path], tmp_path: Path) -> None:
    sdtm, _fhir = converted
    src = tmp_path / "sdtm"
    src.mkdir()
    for p in sdtm.glob("*.xpt"):
        (src / p.name).write_bytes(p.read_bytes())
    (src / "deid.json").write_text(json.dumps({"deidentified": True, "residual_check": "failed"}))
    assert fhir_command(src, tmp_path / "fhir", echo=lambda _m: None) == 0
    assert not (tmp_path / "fhir" / "deid.json").exists()
    assert not any("security" in r.get("meta", {}) for r in _ndjson(tmp_path / "fhir"))
