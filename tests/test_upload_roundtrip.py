"""The registry path end to end through a real FHIR server: the example cohort's SDTM -> `inoconv fhir` ->
`upload` -> read everything back from the server -> `tosdtm` must give the SDTM that was uploaded; a second
upload changes nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
from conftest_fhir import fhir_server, fresh_fhir_server  # noqa: F401
from test_fhir_data import example, specs

from converter.fhir.roundtrip import compare
from converter.fhir.to_sdtm import convert_path
from converter.fhir.writer import write_fhir_dir
from converter.upload import count_resources, fetch_all, upload


def test_example_uploaded_read_back_and_converted_equals_the_sdtm(fresh_fhir_server: str, tmp_path: Path) -> None:  # noqa: F811
    from converter.fhir.mapping import load_fhir_stage

    fspecs, ct, sdtm_specs = load_fhir_stage()
    sdtm = example()
    out = tmp_path / "fhir"
    from converter.fhir.provenance import Origin

    origin = Origin.of(sdtm.datasets, "sdtm", [], deidentified=False)  # as `inoconv fhir` stamps every Bundle
    rep = write_fhir_dir(sdtm.datasets, out, fspecs, ct, sdtm_specs, origin=origin)
    summary = upload(out, fresh_fhir_server, concurrency=2)
    assert summary.ok, (summary.rejected[:3], summary.not_sent)
    types = sorted(p.stem for p in (out / "ndjson").glob("*.ndjson"))
    counts = {t: count_resources(fresh_fhir_server, t) for t in types}
    assert counts == rep.counts  # exactly one copy of every resource on the server
    provenance = list(fetch_all(fresh_fhir_server, "Provenance", {"_count": "500"}))
    assert provenance and all(p["target"] and p["agent"] and p.get("entity") for p in provenance)  # issue 18

    back_dir = tmp_path / "from-server"
    back_dir.mkdir()
    for t in types:
        lines = [orjson.dumps(r) for r in fetch_all(fresh_fhir_server, t, {"_count": "500"})]
        (back_dir / f"{t}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    back = convert_path(back_dir, specs(), ct, sdtm_specs, validate=True)
    assert not back.problems, back.problems[:5]
    rt = compare(sdtm.datasets, back.datasets, specs(), sdtm_specs)
    assert rt.ok, rt.render()

    again = upload(out, fresh_fhir_server, concurrency=2, force=True)
    assert again.ok and not again.created
    assert {t: count_resources(fresh_fhir_server, t) for t in types} == counts
