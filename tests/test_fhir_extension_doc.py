"""docs/fhir-extensions.md lists every project extension the FHIR specs use, under the one base URL they state."""

from __future__ import annotations

from pathlib import Path

from converter.fhir.extension_doc import extension_rows
from converter.fhir.mapping import load_fhir_stage

DOC = Path(__file__).resolve().parents[1] / "docs" / "fhir-extensions.md"


def test_every_extension_of_the_specs_is_on_the_page() -> None:
    specs, _ct, sdtm = load_fhir_stage()
    rows = extension_rows(specs, sdtm)
    assert len(rows) > 30
    page = DOC.read_text(encoding="utf-8")
    missing = [name for name, *_ in rows if f"| `{name}` |" not in page]
    assert not missing, f"not in {DOC.name} (run: python -m converter.fhir.extension_doc): {missing}"
    assert specs.constants["EXT"] in page, "the page states the base URL of _common.yaml"
    # what the page says each one carries comes from the specs
    by_name = {name: (on, carries) for name, on, carries, _m in rows}
    assert by_name["sdtm-short-name"][1].startswith("--TESTCD") or "TESTCD" in by_name["sdtm-short-name"][1]
    assert "AdverseEvent" in by_name["ctcae-grade"][0]
