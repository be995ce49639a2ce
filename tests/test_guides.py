"""The reviewer's guides (cSDRG, ADRG) generated from the specs: every dataset, every sponsor codelist and every
sponsor-extended CDISC codelist the datasets use appears; the conventions text of mappings/guides is carried; the
HTML is escaped; `inoconv guides` writes both renderings and refuses a malformed conventions file (exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converter.cli import app
from converter.guides import build_guide, render_html, render_markdown
from converter.paths import mappings_dir
from converter.spec.loader import load_specs, load_terminology
from converter.spec.yamlines import load_yaml_lines, strip_lines

runner = CliRunner()


def _used(folder: str) -> set[str]:
    out: set[str] = set()
    for spec in load_specs(mappings_dir() / folder).values():
        for v in spec.variables:
            out |= {c for c in (v.codelist, *(vl.codelist for vl in v.value_level)) if c}
    return out


@pytest.mark.parametrize(("kind", "folder"), [("sdtm", "sdtm"), ("adam", "adam")])
def test_every_dataset_and_sponsor_codelist_appears(kind: str, folder: str) -> None:
    g = build_guide(kind)
    md, page = render_markdown(g), render_html(g)
    specs = load_specs(mappings_dir() / folder)
    assert specs
    for name, spec in specs.items():
        assert f"| {name} | {spec.label} |" in md, name
        assert f"<td>{name}</td>" in page, name
    ct = load_terminology(mappings_dir() / "ct")
    used = _used(folder)
    # computed here from the CT files, not through the generator's helpers
    extended = {
        c for c in used
        if c in ct.codelists and ct.codelists[c].extensible and ct.codelists[c].code
        and ct.codelists[c].source == "CDISC/NCI" and any(t.code is None for t in ct.codelists[c].terms)
    }  # fmt: skip
    sponsor = {c for c in used if c in ct.codelists and ct.codelists[c].source == "Sponsor"}
    assert sponsor, "the study uses sponsor codelists"
    ext_section = md.split("## Sponsor extensions of CDISC codelists", 1)[1].split("\n## ", 1)[0]
    sponsor_section = md.split("## Sponsor-defined codelists and external dictionaries", 1)[1].split("\n## ", 1)[0]
    for c in extended:
        row = next(line for line in ext_section.splitlines() if line.startswith(f"| {c} |"))
        missing = [t.submission for t in ct.codelists[c].terms if t.code is None]
        assert all(m in row for m in missing), (c, row)
    for c in sponsor:
        assert f"| {c} |" in sponsor_section, c
    # nothing listed as an extension that is not one
    listed = {
        line.split("|")[1].strip() for line in ext_section.splitlines() if line.startswith("| ") and "---" not in line
    }
    assert listed - {"Codelist"} == extended


def test_sdtm_guide_names_new_domains_extensions_and_deid() -> None:
    md = render_markdown(build_guide("sdtm"))
    for ds in ("MH", "CM", "SV", "SE", "TV", "TI"):
        assert f"| {ds} |" in md
    assert "| ONCRSR |" in md or "| NCOMPLT |" in md  # CDISC codelists this study extends
    deid = md.split("## De-identification", 1)[1]
    assert "| DM | BRTHDTC | remove |" in deid
    assert "| * | USUBJID | recode: subject |" in deid
    assert "| DM | SEX |" not in deid  # kept variables are not listed


def test_conventions_text_carried() -> None:
    doc = strip_lines(load_yaml_lines(mappings_dir() / "guides" / "adam.yaml"))
    md = render_markdown(build_guide("adam"))
    assert md.startswith(f"# {doc['title']}\n")
    for sec in doc["sections"]:
        assert f"## {sec['title']}" in md
        for item in sec.get("items") or []:
            assert f"- {' '.join(item.split())}" in md
    assert "30 days after the last dose" in md  # the treatment-emergent window


def _copy_mappings(tmp_path: Path) -> Path:
    dst = tmp_path / "mappings"
    shutil.copytree(mappings_dir(), dst)
    return dst


def test_html_escapes_conventions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _copy_mappings(tmp_path)
    conv = m / "guides" / "adam.yaml"
    conv.write_text(conv.read_text(encoding="utf-8").replace(
        "title: Analysis Data Reviewer's Guide - NCT01371630", "title: \"ADRG <b>&</b>\""), encoding="utf-8")  # fmt: skip
    page = render_html(build_guide("adam", m))
    assert "<title>ADRG &lt;b&gt;&amp;&lt;/b&gt;</title>" in page
    assert "<b>&</b>" not in page


def test_cli_writes_both_guides(tmp_path: Path) -> None:
    out = tmp_path / "guides"
    res = runner.invoke(app, ["guides", "--out", str(out)])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["adrg.html", "adrg.md", "csdrg.html", "csdrg.md", "manifest.json"]
    assert (out / "csdrg.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_refuses_malformed_conventions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _copy_mappings(tmp_path)
    (m / "guides" / "sdtm.yaml").write_text("title: x\nsections:\n  - text: no title here\n", encoding="utf-8")
    monkeypatch.setenv("INOCONV_MAPPINGS", str(m))
    out = tmp_path / "g"
    res = runner.invoke(app, ["guides", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "sdtm.yaml" in res.output and "sections[1] needs a title" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
