"""The reviewer's view in a real browser: define.html / define.xml with the Define-XML 2.1 stylesheet, and
report/index.html, opened by headless Chromium from disk (define.xml's in-browser XSLT over loopback http).

The pages come from the real stages: a small cohort (tests/mini_records.py) through ``inoconv run``'s code
(:func:`converter.stages.run_all`; the stage functions one by one while the records reader is not there), then
``inoconv validate``; and a synthetic 59-patient ADaM set calibrated to the published counts, through the report
stage's own end-point code, for the figures a reader checks. Screenshots go to ``$INOCONV_TEST_OUTPUT/browser/``
(default ``/tmp/inoconv-test-output/browser/``), replaced on every run.

The stylesheet tests at the top need no browser. The browser tests skip, with the reason, only where Chromium or
chromedriver is not installed (``bash .ci/install-browser`` installs them); a browser that is there but fails is
an error.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
from browser import Browser, browser_unavailable, serve_folder
from lxml import etree

from converter.io.define_stylesheet import (
    STYLESHEET_NAME,
    STYLESHEET_SHA256,
    define_index,
    render_define_html,
    stylesheet_bytes,
    stylesheet_checksum,
    write_define_view,
    write_define_views,
    write_stylesheet,
)
from converter.report.html import write_index_html, write_run_view
from converter.report.tables import adverse_event_table, patient_flow

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1",
      "xlink": "http://www.w3.org/1999/xlink"}  # fmt: skip
PUBLISHED_FLOW = {"treated": 59, "responded": 46, "cr": 35, "mrd_negative": 38, "transplanted": 26}


# --- the run folder the pages are made from ----------------------------------------------------------------------
def _run_stages_directly(out: Path) -> None:
    from mini_records import mini_records

    from converter.adam.commands import adam_command
    from converter.io.package import write_package
    from converter.report.commands import report_command
    from converter.sdtm.pipeline import records_to_sdtm

    result = records_to_sdtm(mini_records())
    study = result.forms.study
    write_package(out / "sdtm", result.datasets, result.specs, result.ct, standard="SDTMIG 3.4",
                  study_oid=study.oid, study_name=study.name, protocol_name=study.protocol)  # fmt: skip
    adam_command(out / "sdtm", out / "adam", echo=lambda _: None)
    report_command(out / "adam", out / "report", echo=lambda _: None)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``inoconv run`` folder (sdtm/, adam/, report/, validate/) with the reviewer's view written."""
    from mini_records import mini_records

    from converter.validate.commands import validate_command

    base = tmp_path_factory.mktemp("reviewer-view")
    out = base / "run"
    try:
        from converter.records.sources import write_records
        from converter.stages import run_all
    except ImportError:
        _run_stages_directly(out)
    else:
        write_records(mini_records(), base / "records", "csv")
        run_all(base / "records", out, echo=lambda _: None)
    if not (out / "validate" / "findings.json").is_file():
        validate_command(out, out=out / "validate", echo=lambda _: None)
    if not (out / "report" / "index.html").is_file() or not (out / "sdtm" / "define.html").is_file():
        write_run_view(out)  # until `inoconv run` writes the view itself
    return out


@pytest.fixture(scope="module")
def shots() -> Path:
    env = os.environ.get("INOCONV_TEST_OUTPUT")
    folder = (Path(env) if env else Path(tempfile.gettempdir()) / "inoconv-test-output") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Any:
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    with Browser() as b:
        yield b


def _only_local_resources(browser: Browser) -> None:
    """Everything the page loaded came from disk (no CDN, no network)."""
    loaded = browser.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(str(u).startswith(("file:", "data:")) for u in loaded), loaded


def _xml(path: Path) -> etree._ElementTree:
    return etree.parse(str(path))


def _file_of(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


# --- the stylesheet (no browser) ---------------------------------------------------------------------------------
def test_stylesheet_is_the_published_file_with_its_licence(tmp_path: Path) -> None:
    data = stylesheet_bytes()
    assert stylesheet_checksum() == STYLESHEET_SHA256  # byte for byte the file defineutils 0.2.1 ships
    head = data[:2000].decode("utf-8")
    assert "The MIT License (MIT)" in head and "Lex Jansen" in head and "Permission is hereby granted" in head
    licence = Path(__file__).resolve().parent.parent / "converter" / "io" / "define2-1.xsl.LICENSE"
    assert "Copyright (c) 2013-2019 Lex Jansen" in licence.read_text(encoding="utf-8")
    written = write_stylesheet(tmp_path)
    assert written.name == STYLESHEET_NAME and written.read_bytes() == data


def test_define_xml_points_at_the_stylesheet_and_define_html_has_its_anchors(run_dir: Path) -> None:
    for pkg in ("sdtm", "adam"):
        define = run_dir / pkg / "define.xml"
        pis = list(_xml(define).getroot().itersiblings(preceding=True))
        assert any(getattr(p, "target", "") == "xml-stylesheet" and f'href="{STYLESHEET_NAME}"' in p.text
                   for p in pis), pis  # fmt: skip
        assert (run_dir / pkg / STYLESHEET_NAME).read_bytes() == stylesheet_bytes()
        page = etree.parse(str(run_dir / pkg / "define.html"), etree.HTMLParser())
        ids = set(page.xpath("//@id"))
        index = define_index(define)
        assert index.datasets
        for name, (ds_anchor, variables) in index.datasets.items():
            assert ds_anchor in ids, (pkg, name, ds_anchor)
            missing = [a for a in variables.values() if a not in ids]
            assert not missing, (pkg, name, missing)


def test_render_rejects_a_broken_define(tmp_path: Path) -> None:
    from converter.io.define_stylesheet import DefineRenderError

    bad = tmp_path / "define.xml"
    bad.write_text("<ODM", encoding="utf-8")
    with pytest.raises(DefineRenderError):
        render_define_html(bad)
    with pytest.raises(DefineRenderError):
        write_define_view(tmp_path / "nothing.xml")
    assert write_define_views(tmp_path / "empty") == []
    with pytest.raises(FileNotFoundError):
        write_index_html(tmp_path / "report", findings=tmp_path / "no-findings.json")


# --- define.html / define.xml in the browser ---------------------------------------------------------------------
@pytest.mark.parametrize("pkg", ["sdtm", "adam"])
def test_define_html_renders_from_disk(browser: Browser, run_dir: Path, shots: Path, pkg: str) -> None:
    folder = run_dir / pkg
    tree = _xml(folder / "define.xml")
    n_ds = len(tree.findall(".//odm:ItemGroupDef", NS))
    codelists = tree.findall(".//odm:CodeList", NS)
    n_external = sum(c.find("odm:ExternalCodeList", NS) is not None for c in codelists)
    n_methods = len(tree.findall(".//odm:MethodDef", NS))
    n_vlm = len(tree.findall(".//def:ValueListDef/odm:ItemRef", NS))
    leaves = sorted({x.get(f"{{{NS['xlink']}}}href") for x in tree.findall(".//odm:ItemGroupDef/def:leaf", NS)})

    browser.console()  # drop anything earlier
    browser.open((folder / "define.html").as_uri())
    index = define_index(folder / "define.xml")
    assert index.standard and index.standard in browser.title
    assert browser.count("table[summary='Data Definition Tables'] tr") == n_ds + 1  # header row + one per dataset
    assert browser.count("table[summary^='ItemGroup']") == n_ds
    assert browser.count("div.codelist") == len(codelists) - n_external
    if n_external:
        assert browser.count("table[summary^='External Dictionaries'] tr") == n_external + 1
    assert browser.count("table[summary='Methods'] tr") == n_methods + 1
    assert browser.count("tr.vlm") == n_vlm
    if n_vlm:  # value-level metadata: hidden until expanded, by the stylesheet's own script
        shown = "return [...document.querySelectorAll('tr.vlm')].filter(r => r.offsetParent !== null).length"
        browser.js("collapse_all_vlm()")
        assert browser.js(shown) == 0
        browser.driver.find_element("xpath", "//button[contains(., 'Expand all VLM')]").click()
        assert browser.js(shown) == n_vlm
    hrefs = browser.attrs("a[href$='.xpt']", "href")
    assert sorted({h.rsplit("/", 1)[-1] for h in hrefs}) == leaves
    for href in hrefs:  # each link resolves, from disk, to the XPT file beside define.xml
        assert _file_of(href).is_file(), href
    _only_local_resources(browser)
    errors = browser.console_errors()
    assert not errors, errors
    browser.screenshot(shots / f"define-{pkg}.png", full_page=False)


def test_define_xml_applies_its_stylesheet_over_http(browser: Browser, run_dir: Path, shots: Path) -> None:
    """The same stylesheet applied by the browser from the processing instruction (served on loopback: Chromium
    refuses a file:// stylesheet for a file:// document, hence define.html)."""
    folder = run_dir / "sdtm"
    n_ds = len(_xml(folder / "define.xml").findall(".//odm:ItemGroupDef", NS))
    with serve_folder(folder) as base:
        browser.console()
        browser.open(f"{base}/define.xml")
        entries = browser.console()
        if browser.js("return document.contentType") != "text/html":
            said = " ".join(e.message for e in entries)
            if "XSLT" in said or browser.count("table") == 0:
                pytest.skip(f"this Chromium does not apply XSLT processing instructions: {said[:300]}")
        assert browser.count("table[summary^='ItemGroup']") == n_ds
        assert browser.count("table[summary='Data Definition Tables'] tr") == n_ds + 1
        severe = [e for e in entries if e.level == "SEVERE"]
        assert not severe, severe
        browser.screenshot(shots / "define-sdtm-xslt-in-browser.png", full_page=False)


# --- report/index.html -------------------------------------------------------------------------------------------
def _check_index(browser: Browser, report_dir: Path, shot: Path) -> dict[str, Any]:
    import json

    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    browser.console()
    browser.open((report_dir / "index.html").as_uri())
    assert browser.count("#endpoints table.endpoints tbody tr") == len(report["endpoints"])
    for c in report["comparisons"]:  # every published figure is on the page, in its row, with its verdict
        cell = browser.texts(f"#endpoints tr[data-key='{c['key']}'] td.published")
        pub = c["published"]
        assert cell == [str(int(pub)) if float(pub).is_integer() else f"{pub:g}"], (c, cell)
        verdict = browser.texts(f"#endpoints tr[data-key='{c['key']}'] td:last-child")
        assert verdict == ["yes" if c["within"] else "NO"]
    for ep in report["endpoints"]:
        assert browser.texts(f"#endpoints tr[data-key='{ep['key']}'] td.measured") != [""]
    pngs = sorted(p.name for p in report_dir.glob("km_*.png"))
    assert len(pngs) == 3
    loaded = browser.js("return [...document.querySelectorAll('#km img')].map(i => [i.getAttribute('src'), "
                        "i.complete && i.naturalWidth > 0])")  # fmt: skip
    assert sorted(src for src, _ in loaded) == pngs and all(ok for _, ok in loaded), loaded
    assert browser.js("return document.scripts.length") == 0  # a static page: no script at all
    _only_local_resources(browser)
    errors = browser.console_errors()
    assert not errors, errors
    browser.screenshot(shot)
    return report


def test_index_html_of_a_run_renders_from_disk(browser: Browser, run_dir: Path, shots: Path) -> None:
    import json

    report_dir = run_dir / "report"
    _check_index(browser, report_dir, shots / "index-run.png")
    flow = {k: int(n) for k, n in zip(browser.attrs("#flow .box", "data-key"), browser.attrs("#flow .box", "data-n"),
                                      strict=True)}  # fmt: skip
    assert flow["treated"] == 2 and flow["responded"] == 1 and flow["died"] == 1
    assert browser.count("#adverse-events table.ae") == 3
    ae_rows = browser.texts("#adverse-events table.ae[data-section^='Preferred'] tbody tr td:first-child")
    assert sorted(ae_rows) == ["Thrombocytopenia", "Venoocclusive liver disease"]
    findings = json.loads((run_dir / "validate" / "findings.json").read_text(encoding="utf-8"))["findings"]
    assert browser.count("#findings tr.finding") == len(findings)
    # the page links both define views, and they open
    defines = browser.attrs("a.define-view", "href")
    assert sorted(_file_of(h).relative_to(run_dir).as_posix() for h in defines) == [
        "adam/define.html",
        "sdtm/define.html",
    ]
    browser.driver.find_element("css selector", "a.define-view").click()
    assert browser.url.endswith("define.html") and browser.count("table[summary^='ItemGroup']") > 0
    assert not browser.console_errors()


def test_findings_link_to_their_definition(browser: Browser, run_dir: Path, shots: Path, tmp_path: Path) -> None:
    from converter.validate.findings import Finding, write_reports

    findings = [
        Finding("CORE-000001", "error", "AE", "AETERM", "NCT01371630-1001", 2, "AETERM is null", 1),
        Finding("INO-ADSL-001", "warning", "ADSL", "AGE", "", None, "AGE out of range", 3),
        Finding("INO-DS-001", "warning", "DM", "", "", None, "dataset-level finding", 1),
        Finding("INO-X-001", "info", "XX", "YY", "", None, "a dataset no define.xml describes", 1),
        Finding("INO-PKG-003", "info", "", "", "", None, "no dataset", 1),
    ]
    report_dir = run_dir / "report"
    write_reports(findings, tmp_path / "validate")
    page = tmp_path / "report"
    page.mkdir()
    for f in report_dir.iterdir():
        (page / f.name).write_bytes(f.read_bytes())
    write_index_html(page, findings=tmp_path / "validate" / "findings.json",
                     define_href=[run_dir / "sdtm" / "define.xml", run_dir / "adam" / "define.xml"],
                     adam=run_dir / "adam")  # fmt: skip
    browser.console()
    browser.open((page / "index.html").as_uri())
    assert browser.count("#findings tr.finding") == len(findings)
    assert browser.js("return document.querySelector('#findings .card.sev-error b').textContent") == "1"
    assert browser.js("return document.querySelector('#findings .card.sev-warning b').textContent") == "4"
    links = browser.attrs("#findings a.define-link", "href")
    frags = sorted(urlparse(h).fragment for h in links)
    assert frags == sorted(["IG.IG.AE", "IG.AE.IT.AE.AETERM", "IG.IG.ADSL", "IG.ADSL.IT.ADSL.AGE", "IG.IG.DM"])
    assert {_file_of(h).parent.name for h in links} == {"sdtm", "adam"}
    assert [h.rsplit("/", 1)[-1] for h in browser.attrs("#findings p.meta a", "href")] == [
        "findings.json",
        "findings.csv",
    ]
    browser.screenshot(shots / "index-findings.png")
    # follow the variable link: define.html opens at the variable's row
    browser.driver.find_element("link text", "AETERM").click()
    assert urlparse(browser.url).fragment == "IG.AE.IT.AE.AETERM"
    row = browser.js("const e = document.getElementById(location.hash.slice(1)); "
                     "return e ? [e.closest('tr').innerText, e.getBoundingClientRect().top] : null")  # fmt: skip
    assert row is not None and row[0].startswith("AETERM") and -5 <= row[1] < 400
    assert not browser.console_errors()
    browser.screenshot(shots / "define-sdtm-at-AETERM.png", full_page=False)


# --- a 59-patient set calibrated to the publication ----------------------------------------------------------------
def synthetic_adam(seed: int = 20180201) -> dict[str, pd.DataFrame]:
    """ADSL, ADAE and ADTTE of 59 treated subjects with the published counts (flow and grade 3-4 toxicities)."""
    rng = np.random.default_rng(seed)
    n = 59
    ids = [f"NCT01371630-{1001 + i}" for i in range(n)]
    idx = np.arange(n)
    resp = idx < 46
    yn = lambda m: np.where(m, "Y", "N")  # noqa: E731
    adsl = pd.DataFrame({
        "STUDYID": "NCT01371630", "USUBJID": ids, "SEX": np.where(idx < 30, "F", "M"),
        "AGE": np.r_[18, np.full(28, 30), 35, np.full(28, 50), 87], "SAFFL": "Y", "ITTFL": "Y", "RESPFL": yn(resp),
        "CRFL": yn(idx < 35), "MRDNEGFL": yn(idx < 38), "TRANSFL": yn((idx >= 10) & (idx < 36)),
        "RELDT": [f"2013-0{1 + i % 9}-15" if r and i % 3 == 0 else None for i, r in zip(idx, resp, strict=True)],
        "DTHFL": yn(idx % 3 != 1), "SALVLN": np.select([idx % 3 == 0, idx % 3 == 1], ["1", "2"], "3+"),
    })  # fmt: skip
    rows: list[dict[str, Any]] = []

    cq = {"PROLONGED THROMBOCYTOPENIA": "CQ01NAM", "INFECTION": "CQ02NAM", "HYPERBILIRUBINEMIA": "CQ03NAM",
          "VOD": "CQ04NAM"}  # the ADaM spec's category variables  # fmt: skip

    def add(subjects: range | list[int], cat: str, term: str, grade: int) -> None:
        for s in subjects:
            rows.append({"USUBJID": ids[s], "AEDECOD": term, cq.get(cat, "CQ01NAM"): cat, "ATOXGRN": float(grade)})

    add(range(48), "PROLONGED THROMBOCYTOPENIA", "Thrombocytopenia", 4)
    add(range(48, 55), "PROLONGED THROMBOCYTOPENIA", "Thrombocytopenia", 2)
    add(range(43), "INFECTION", "Pneumonia", 3)
    add(range(8), "HYPERBILIRUBINEMIA", "Blood bilirubin increased", 3)
    add(range(50, 59), "VOD", "Venoocclusive liver disease", 2)
    add([0, 1, 2], "", "Nausea", 1)
    adae = pd.DataFrame(rows)
    adae["CQ01NAM"] = adae["CQ01NAM"].replace("", None)
    adae["TRTEMFL"] = "Y"  # the analysis spec's treatment-emergent window (every synthetic event within it)
    adae = adae.reindex(columns=[*adae.columns.drop(list(cq.values()), errors="ignore"), *cq.values()])
    tte = []
    for paramcd, subset in (("OS", idx), ("RFS", idx[resp])):
        days = rng.exponential(11 * 30.4375 / np.log(2), len(subset)).round() + 1
        cnsr = (rng.random(len(subset)) < 0.3).astype(float)
        tte.append(pd.DataFrame({"USUBJID": [ids[i] for i in subset], "PARAMCD": paramcd, "AVAL": days,
                                 "CNSR": cnsr, "SALVLN": adsl["SALVLN"].to_numpy()[subset]}))  # fmt: skip
    return {"ADSL": adsl, "ADAE": adae, "ADTTE": pd.concat(tte, ignore_index=True)}


def test_flow_and_adverse_events_of_59_patients(browser: Browser, run_dir: Path, shots: Path, tmp_path: Path) -> None:
    from converter.report.endpoints import compute_endpoints
    from converter.report.published import compare
    from converter.report.render import write_report

    adam = synthetic_adam()
    flow = {s.key: s.n for s in patient_flow(adam["ADSL"])}
    assert {k: flow[k] for k in PUBLISHED_FLOW} == PUBLISHED_FLOW
    table = adverse_event_table(adam["ADAE"], adam["ADSL"])
    assert table.n == 59
    endpoints = compute_endpoints(adam)
    comparisons = compare(endpoints)
    report_dir = tmp_path / "report"
    write_report(endpoints, comparisons, report_dir, source="synthetic ADaM (59 subjects)")
    write_index_html(report_dir, define_href=run_dir / "adam" / "define.xml", adam=adam, findings=[])
    report = _check_index(browser, report_dir, shots / "index-59-patients.png")
    within = {c["key"] for c in report["comparisons"] if c["within"]}
    assert {
        "treated",
        "female",
        "male",
        "overall_response",
        "complete_response",
        "asct",
        "vod",
        "grade34_thrombocytopenia_prolonged",
        "grade34_infection",
        "grade34_hyperbilirubinemia",
    } <= within
    shown = {k: int(n) for k, n in zip(browser.attrs("#flow .box", "data-key"), browser.attrs("#flow .box", "data-n"),
                                       strict=True)}  # fmt: skip
    assert {k: shown[k] for k in PUBLISHED_FLOW} == PUBLISHED_FLOW
    assert browser.texts("#flow .box[data-key='mrd_negative'] span:last-child") == ["82.6% of responders"]

    def g34(category: str) -> str:
        return browser.texts(f"#adverse-events tr[data-term='{category}'] td.g34")[0]

    assert g34("PROLONGED THROMBOCYTOPENIA") == "48 (81.4%)"
    assert g34("INFECTION") == "43 (72.9%)"
    assert g34("HYPERBILIRUBINEMIA") == "8 (13.6%)"
    vod = browser.texts("#adverse-events table.ae[data-section^='Toxicity'] tr[data-term='VOD'] td:last-child")
    assert vod == ["9 (15.3%)"]
    assert browser.texts("#findings p.ok") == ["No findings."]


# --- the bundled 59-patient example, end to end --------------------------------------------------------------------
@pytest.mark.slow
def test_bundled_example_view_shows_the_published_counts(browser: Browser, shots: Path, tmp_path: Path) -> None:
    from converter.paths import example_study_dir

    ex = example_study_dir()
    odm = sorted((ex / "odm").glob("*.xml")) if (ex / "odm").is_dir() else []
    source = odm[0] if odm else ex / "csv"
    if not source.exists():
        pytest.skip(f"the bundled example is not there yet ({ex})")
    from converter.adam.commands import adam_command
    from converter.report.commands import report_command
    from converter.stages import run_sdtm
    from converter.validate.commands import validate_command

    out = tmp_path / "run"
    run_sdtm(source, out / "sdtm", echo=lambda _: None)
    adam_command(out / "sdtm", out / "adam", echo=lambda _: None)
    report_command(out / "adam", out / "report", echo=lambda _: None)
    validate_command(out, out=out / "validate", echo=lambda _: None)
    write_run_view(out)
    _check_index(browser, out / "report", shots / "index-bundled-example.png")
    shown = {k: int(n) for k, n in zip(browser.attrs("#flow .box", "data-key"), browser.attrs("#flow .box", "data-n"),
                                       strict=True)}  # fmt: skip
    assert {k: shown[k] for k in ("treated", "responded", "cr", "transplanted")} == {
        k: PUBLISHED_FLOW[k] for k in ("treated", "responded", "cr", "transplanted")
    }
    assert browser.count("#findings tr.finding") >= 0 and browser.count("a.define-view") == 2
