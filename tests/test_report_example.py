"""Done-criterion of the ADaM/report stage: on the example cohort (simulate(59) at the default seed), the report code
reproduces every published count exactly and every survival figure within the tolerance the analysis spec
(mappings/analysis/endpoints.yaml) states,
through the same commands the CLI runs (SDTM package -> `adam` -> ADaM package -> `report`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converter.adam.commands import adam_command
from converter.io.xpt import write_xpt
from converter.records.simulate import DEFAULT_SEED, simulate
from converter.report.commands import report_command
from converter.report.published import published_values
from converter.report.spec import load_analysis_spec
from converter.sdtm.pipeline import records_to_sdtm


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    root = tmp_path_factory.mktemp("example")
    sdtm = records_to_sdtm(simulate(59, DEFAULT_SEED))
    (root / "sdtm").mkdir()
    for name, df in sdtm.datasets.items():  # XPT v5 as `inoconv sdtm` writes them (the package's CT checks are
        write_xpt(df, sdtm.specs[name], root / "sdtm" / f"{name.lower()}.xpt")  # the SDTM stage's own tests)
    lines: list[str] = []
    adam_command(root / "sdtm", root / "adam", echo=lines.append)
    code = report_command(root / "adam", root / "report", echo=lines.append)
    return root, code, "\n".join(lines)


def test_every_published_figure_is_reproduced(run: tuple[Path, int, str]) -> None:
    root, code, printed = run
    report = json.loads((root / "report" / "report.json").read_text())
    comparisons = {c["key"]: c for c in report["comparisons"]}
    stated = set(published_values(load_analysis_spec()))
    assert set(comparisons) == stated  # every figure the publication states is compared
    missed = {k: (c["measured"], c["published"], c["criterion"]) for k, c in comparisons.items() if not c["within"]}
    assert not missed
    assert report["all_within"] is True and code == 0
    assert len(comparisons) == 23
    exact = {k: c["measured"] for k, c in comparisons.items() if c["criterion"] == "exact"}
    assert exact == {
        "treated": 59, "female": 30, "male": 29, "age_median": 35, "age_min": 18, "age_max": 87,
        "overall_response": 46, "complete_response": 35, "asct": 26, "grade34_thrombocytopenia_prolonged": 48,
        "grade34_infection": 43, "grade34_hyperbilirubinemia": 8, "vod": 9,
    }  # fmt: skip
    assert f"{len(comparisons)} of {len(comparisons)} published figures reproduced" in printed


def test_report_files(run: tuple[Path, int, str]) -> None:
    root, _, printed = run
    for name in ("report.md", "report.json", "km_os.png", "km_os_by_salvage.png", "km_rfs.png"):
        path = root / "report" / name
        assert path.exists() and path.stat().st_size > 0, name
    assert (root / "report" / "km_os.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (root / "report" / "report.md").read_text()
    assert "| Overall survival: median (months) |" in md and "| Published |" in md
    assert "cross-checks passed" in printed
    assert {
        "adae.json", "adae.xpt", "adrs.json", "adrs.xpt", "adsl.json", "adsl.xpt", "adtte.json", "adtte.xpt",
        "define.xml",
    } <= {p.name for p in (root / "adam").iterdir()}  # fmt: skip


def test_figures_svg_png_pdf(run: tuple[Path, int, str]) -> None:
    import struct

    root, _, _ = run
    for stem in ("km_os", "km_os_by_salvage", "km_rfs"):
        svg = (root / "report" / f"{stem}.svg").read_text(encoding="utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert (root / "report" / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        png = (root / "report" / f"{stem}.png").read_bytes()
        i = png.index(b"pHYs")  # pixels per metre: 300 dpi = 11811 px/m
        ppm_x, ppm_y, unit = struct.unpack(">IIB", png[i + 4 : i + 13])
        assert unit == 1 and round(ppm_x * 0.0254) == 300 == round(ppm_y * 0.0254)
        width = struct.unpack(">I", png[16:20])[0]
        assert width >= 2000  # 7.5 in at 300 dpi: every label readable when the page shows it at its width


def test_report_json_is_ars_shaped(run: tuple[Path, int, str]) -> None:
    root, _, _ = run
    report = json.loads((root / "report" / "report.json").read_text())
    event = report["reportingEvent"]
    operations = {op["id"] for m in event["methods"] for op in m["operations"]}
    sets = {s["id"] for s in event["analysisSets"]}
    subsets = {s["id"] for s in event["dataSubsets"]}
    docs = {d["id"] for d in event["referenceDocuments"]}
    spec = load_analysis_spec()
    assert [a["id"] for a in event["analyses"]] == [a.id for a in spec.analyses]
    for a in event["analyses"]:
        assert a["methodId"] in {m["id"] for m in event["methods"]}
        assert a.get("analysisSetId") is None or a["analysisSetId"] in sets
        assert all(ref["referenceDocumentId"] in docs for ref in a.get("documentRefs", []))
        assert a["results"] and all(r["operationId"] in operations for r in a["results"])
    assert {"TREATED", "RESPONDER"} <= subsets
    by_id = {a["id"]: a for a in event["analyses"]}
    n = [r for r in by_id["overall_response"]["results"] if r["operationId"].endswith("_n")]
    assert n[0]["rawValue"] == "46" and n[0]["formattedValue"].startswith("46/59 (78.0%")
    groups = {g["groupId"] for r in by_id["os_1y_by_salvage"]["results"] for g in r["resultGroups"]}
    assert groups == {"os_1y_salvage_1", "os_1y_salvage_2", "os_1y_salvage_3_plus"}
    definitions = {d["analysis"]: d["definition"] for d in report["definitions"]}
    assert "ATOXGRN 3 or 4" in definitions["grade34_infection"]


def test_two_counts_of_grade_3_4_infection_side_by_side(run: tuple[Path, int, str]) -> None:
    """The end point counts subjects with at least one grade 3-4 infection (43, as published); the AE table counts
    each subject at their worst grade, so subjects whose worst infection was grade 5 leave its grade 3-4 column.
    The page shows both, from the same records."""
    import re

    root, _, _ = run
    page = (root / "report" / "index.html").read_text(encoding="utf-8")
    row = re.search(r'<tr data-endpoint="grade34_infection"><td>[^<]*</td>(.*?)</tr>', page)
    assert row is not None
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]
    endpoint, any_band, worst_band, any_grade = (int(c) for c in cells[:4])
    assert endpoint == any_band == 43 and worst_band < any_band <= any_grade
    assert '<td class="num any-band match"><b>43</b>' in page  # the column the end point's definition matches
    ae_row = re.search(r'<tr data-term="INFECTION">(.*?)</tr>', page)
    assert ae_row is not None and f"{worst_band} (" in ae_row.group(1) and "43 (72.9%)" in ae_row.group(1)
