"""Done-criterion of the ADaM/report stage: on the example cohort (simulate(59) at the default seed), the report code
reproduces every published count exactly and every survival figure within the tolerance published.yaml states,
through the same commands the CLI runs (SDTM package -> `adam` -> ADaM package -> `report`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from converter.adam.commands import adam_command, report_command
from converter.io.xpt import write_xpt
from converter.records.simulate import DEFAULT_SEED, simulate
from converter.report.published import TARGETS, load_published, lookup
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
    published = load_published()
    stated = {k for k, (path, _) in TARGETS.items() if lookup(published, path) is not None}
    assert set(comparisons) == stated  # every figure the publication states is compared
    missed = {k: (c["measured"], c["published"], c["criterion"]) for k, c in comparisons.items() if not c["within"]}
    assert not missed
    assert report["all_within"] is True and code == 0
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
