"""``report/index.html``: the reviewer's page, one static file that a browser opens from disk.

It shows, from the report stage's ``report.json``, the ADaM datasets and ``inoconv validate``'s findings:

* the **end points**: each with its definition, measured value, 95% CI, n, events, the published value, the
  criterion (tolerance), whether it is met and the source of the published value;
* the **Kaplan-Meier figures** of the analysis spec (SVG beside the page, with the 300-dpi PNG as fallback and
  the PDF linked);
* the **patient flow** (CONSORT style): the boxes of the spec's ``patientFlow``;
* **adverse events by worst grade**: the sections of the spec's ``adverseEvents``, with "worst grade 3-4" and
  "any grade 3-4 event" side by side, and each end point tied to a row shown with both counts and definitions;
* the **conformance findings**, each dataset and variable linked to its row in the Define-XML view.

Everything about the trial (labels, flags, categories, titles) comes from the analysis spec, report.json and
define.xml; this module knows none of it.

Self-contained: inline CSS, no script, no web fonts, nothing fetched; the only other files it references are
the plots, ``report.md``, the findings CSV and the Define-XML views, all by relative links. Links into define.xml
go to the pre-rendered ``define.html`` where it exists (see :mod:`converter.io.define_stylesheet` for why), with
the anchors the Define-XML 2.1 stylesheet renders: ``#IG.<ItemGroupOID>`` for a dataset's variable table and
``#<ItemGroupOID>.<ItemOID>`` for a variable's row, read from define.xml itself.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from converter.errors import InputError
from converter.report.findings_view import DefineLink, define_links, esc, findings_section, load_findings, number, pct
from converter.report.spec import AnalysisSpec, load_analysis_spec
from converter.report.tables import AeTable, FlowStep, Reconciliation, adverse_event_table, flow_or_none, reconcile

INDEX_NAME = "index.html"

CSS = """
:root { --ink:#1b1f24; --muted:#5b6570; --line:#d5dae0; --head:#eef1f5; --ok:#1a7f37; --bad:#b42318;
        --warn:#9a6700; --accent:#0b5cad; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1200px; padding: 0 20px 40px; }
header { border-bottom: 2px solid var(--accent); padding: 18px 0 10px; margin-bottom: 8px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid
var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 16px 0 6px; }
.meta, .note { color: var(--muted); font-size: 12.5px; }
nav a { margin-right: 14px; } a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; text-align: left; vertical-align: top; }
th { background: var(--head); font-weight: 600; } td.rule { white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 700; }
.sev-error { color: var(--bad); font-weight: 700; } .sev-warning { color: var(--warn); font-weight: 600; }
.sev-info { color: var(--muted); }
.summary { display: flex; gap: 12px; flex-wrap: wrap; margin: 8px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 150px; }
.card b { display: block; font-size: 20px; }
.figures { display: grid; grid-template-columns: 1fr; gap: 14px; }  /* one a row: labels at >= 12 px */
td .def { display: block; color: var(--muted); font-size: 12px; margin-top: 2px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
figure img { width: 100%; max-width: 960px; height: auto; display: block; margin: 0 auto; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; }
.flow { display: flex; flex-direction: column; align-items: center; gap: 0; margin: 10px 0; }
.flow .row { display: flex; gap: 18px; justify-content: center; align-items: stretch; }
.flow .box { border: 2px solid var(--accent); border-radius: 6px; padding: 6px 12px; min-width: 190px;
             text-align: center; background: #f5f9ff; }
.flow .box.side { border-style: dashed; border-color: var(--muted); background: #fff; }
.flow .box b { display: block; font-size: 18px; } .flow .box span { font-size: 12px; color: var(--muted); }
.flow .arrow { width: 2px; height: 18px; background: var(--accent); position: relative; margin: 0 auto; }
.flow .arrow::after { content: ""; position: absolute; left: -5px; bottom: -2px; border: 6px solid transparent;
                      border-top-color: var(--accent); border-bottom: 0; }
details > summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
code { font-size: 12.5px; }
@media print { nav { display: none; } details { display: block; } a { color: inherit; } }
"""


# --- inputs ------------------------------------------------------------------------------------------------------
def _load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load_report(report_json: Path | str | Mapping[str, Any] | None, report_dir: Path) -> dict[str, Any]:
    if isinstance(report_json, Mapping):
        return dict(report_json)
    path = Path(report_json) if report_json is not None else report_dir / "report.json"
    if not path.is_file():
        return {}
    doc = _load_json(path)
    return doc if isinstance(doc, dict) else {}


def _read_dataset(folder: Path, name: str) -> pd.DataFrame | None:
    xpt, js, nd = (folder / f"{name.lower()}{s}" for s in (".xpt", ".json", ".ndjson"))
    if xpt.is_file():
        from converter.io.xpt import read_xpt

        return read_xpt(xpt)[0]
    for path in (js, nd):
        if path.is_file():
            from converter.io.datasetjson import read_dataset_json

            return read_dataset_json(path)[0]
    return None


def load_adam(
    adam: Mapping[str, pd.DataFrame] | Path | str | None, names: Sequence[str] = ()
) -> dict[str, pd.DataFrame]:
    """The datasets ``names`` (all of a mapping) from frames or a package folder."""
    if adam is None:
        return {}
    if isinstance(adam, Mapping):
        return {str(k).upper(): v for k, v in adam.items()}
    folder = Path(adam)
    out: dict[str, pd.DataFrame] = {}
    for name in names:
        df = _read_dataset(folder, name)
        if df is not None:
            out[name.upper()] = df
    return out


# --- rendering ---------------------------------------------------------------------------------------------------
_e = esc
_num = number
_pct = pct


def format_measured(ep: Mapping[str, Any]) -> str:
    """The measured figure: a count with its percentage, a rate, a median, a p-value, a summary statistic."""
    kind, value, n = ep.get("kind"), _num(ep.get("value")), ep.get("n")
    if value is None:
        return "NR" if kind == "median" else "-"
    if kind == "count":
        return f"{int(value)}" + (f" ({_pct(int(value), int(n))})" if n and ep.get("ci") is not None else "")
    if kind == "rate":
        note = ep.get("note") or ""
        return f"{value:.3f}" + (f" ({note})" if note else "")
    if kind == "median":
        return f"{value:.1f}"
    if kind == "pvalue":
        return f"{value:.4f}"
    if kind in ("summary", "years"):
        return f"{value:g}"
    return f"{value:.3g}"


def format_ci(ep: Mapping[str, Any]) -> str:
    ci = ep.get("ci")
    if not isinstance(ci, Sequence) or len(ci) != 2:
        return ""
    lo, hi = (_num(x) for x in ci)
    if ep.get("kind") == "count":
        return f"{_fmt(lo and 100 * lo, 1)}-{_fmt(hi and 100 * hi, 1)}%"
    return f"{_fmt(lo, 1 if ep.get('kind') == 'median' else 3)}-{_fmt(hi, 1 if ep.get('kind') == 'median' else 3)}"


def _fmt(x: float | None, digits: int) -> str:
    return "NR" if x is None else f"{x:.{digits}f}"


def _published(x: Any) -> str:
    v = _num(x)
    if v is None:
        return ""
    return str(int(v)) if v.is_integer() else f"{v:g}"


def _definitions(report: Mapping[str, Any]) -> dict[str, str]:
    """End point key -> definition (a group's end point takes its analysis's)."""
    defs = {d.get("analysis"): d.get("definition", "") for d in report.get("definitions", []) if isinstance(d, Mapping)}
    out: dict[str, str] = {}
    for ep in report.get("endpoints", []):
        if isinstance(ep, Mapping):
            out[str(ep.get("key"))] = str(defs.get(ep.get("analysis") or ep.get("key"), "") or "")
    return out


def _endpoints_section(report: Mapping[str, Any], reconciled: Sequence[Reconciliation] = ()) -> str:
    endpoints = [e for e in report.get("endpoints", []) if isinstance(e, Mapping)]
    comparisons = {c.get("key"): c for c in report.get("comparisons", []) if isinstance(c, Mapping)}
    if not endpoints:
        return (
            '<section id="endpoints"><h2>End points</h2><p class="note">No <code>report.json</code> was found: '
            "run <code>inoconv report ADAM_DIR --out DIR</code>.</p></section>"
        )
    defs = _definitions(report)
    ok = sum(bool(c.get("within")) for c in comparisons.values())
    numbered = {name: i + 1 for i, name in enumerate(dict.fromkeys(
        str(c.get("source")) for c in comparisons.values() if c.get("source")))}  # fmt: skip
    rows = []
    for ep in endpoints:
        c = comparisons.get(ep.get("key"))
        where = ""
        if c is None:
            pub, crit, status = "", "", '<td class="note">not published</td>'
        else:
            ref = numbered.get(str(c.get("source")))
            where = (f"[{ref}] " if ref else "") + str(c.get("location") or "")
            pub, crit = _published(c.get("published")), _e(c.get("criterion"))
            status = '<td class="ok">yes</td>' if c.get("within") else '<td class="bad">NO</td>'
        within = "" if c is None else ("yes" if c.get("within") else "no")
        definition = defs.get(str(ep.get("key")), "")
        rows.append(
            f'<tr data-key="{_e(ep.get("key"))}" data-within="{within}"><td>{_e(ep.get("label"))}'
            + (f'<span class="def">{_e(definition)}</span>' if definition else "")
            + (f'<span class="def">Window: {_e(ep.get("window"))}.'
               + "".join(f" {_e(label)}: {_e(k)} subjects." for label, k in (ep.get("also") or {}).items())
               + "</span>" if ep.get("window") else "")
            + f'</td><td class="num measured">{_e(format_measured(ep))}</td><td class="num">{_e(format_ci(ep))}</td>'
            f'<td class="num">{_e(ep.get("n") if ep.get("n") is not None else "")}</td>'
            f'<td class="num">{_e(ep.get("events") if ep.get("events") is not None else "")}</td>'
            f'<td class="num published">{_e(pub)}</td><td class="source">{_e(where)}</td><td>{crit}</td>{status}</tr>'
        )
    source = report.get("source")
    cited = "".join(f"<li>[{i}] {_e(name)}</li>" for name, i in numbered.items())
    criteria = sorted({str(c.get("criterion")) for c in comparisons.values() if c.get("criterion")})
    return (
        '<section id="endpoints"><h2>End points against the publication</h2>'
        f"<p><b>{ok} of {len(comparisons)}</b> published figures reproduced within their tolerance"
        + (f' <span class="meta">(recomputed from <code>{_e(source)}</code>)</span>' if source else "")
        + '.</p><table class="endpoints"><thead><tr><th>End point and definition</th><th class="num">Measured</th>'
        '<th class="num">95% CI</th><th class="num">n</th><th class="num">Events</th><th class="num">Published</th>'
        "<th>Source</th><th>Criterion (tolerance)</th><th>Within</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        '<p class="note">Counts: percentage of n with exact (Clopper-Pearson) 95% CI. Survival: Kaplan-Meier with '
        "the log(-log) 95% CI; NR: not reached. Criteria: "
        + _e("; ".join(criteria))
        + ".</p>"
        + (f'<p class="meta">Sources of the published values:</p><ul class="sources">{cited}</ul>' if cited else "")
        + _reconciliation(reconciled)
        + "</section>"
    )


def _reconciliation(items: Sequence[Reconciliation]) -> str:
    if not items:
        return ""

    def cell(value: int, cls: str, match: bool) -> str:
        shown = f"<b>{value}</b>" if match else str(value)
        return f'<td class="num {cls}{" match" if match else ""}">{shown}</td>'

    rows = "".join(
        f'<tr data-endpoint="{_e(r.key)}"><td>{_e(r.label)}</td>'
        f'<td class="num endpoint-value">{_e("" if r.endpoint_value is None else r.endpoint_value)}</td>'
        + cell(r.any_in_band, "any-band", r.column == "band")
        + cell(r.worst_in_band, "worst-band", False)
        + cell(r.any_grade, "any-grade", r.column == "any")
        + f"<td>{_e(r.table_row)}</td></tr>"
        for r in items
    )
    return (
        '<h3 id="reconciliation">Grade counts in the end points and in the adverse-event table</h3>'
        '<p class="meta">The same events counted two ways. End point: a subject with at least one event in the '
        "grade band (column &quot;any event in band&quot;). Adverse-event table: each subject once, at the highest "
        "grade of their events (&quot;worst grade in band&quot;): a subject whose worst event is above the band is "
        "counted there instead. Both columns come from the same records; the column the end point's definition "
        "matches is in bold.</p>"
        '<table class="reconciliation"><thead><tr><th>End point</th><th class="num">End point value</th>'
        '<th class="num">Any event in band</th><th class="num">Worst grade in band</th>'
        f'<th class="num">Any grade</th><th>Adverse-event table row</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _figure_names(report_dir: Path, spec: AnalysisSpec | None) -> list[tuple[str, str]]:
    """(file stem, caption) of each figure: the spec's, in order, then any other ``*.png`` with an SVG twin."""
    listed = [(f.id, f.caption) for f in spec.figures] if spec is not None else []
    known = {stem for stem, _ in listed}
    extra = [
        (p.stem, p.stem)
        for p in sorted(report_dir.glob("*.png"))
        if p.with_suffix(".svg").is_file() and p.stem not in known
    ]
    return [(stem, cap) for stem, cap in listed + extra if (report_dir / f"{stem}.png").is_file()]


def _km_section(report_dir: Path, spec: AnalysisSpec | None = None) -> str:
    figures = _figure_names(report_dir, spec)
    if not figures:
        return '<section id="km"><h2>Kaplan-Meier figures</h2><p class="note">No figures were found.</p></section>'
    parts = []
    for stem, caption in figures:
        links = " · ".join(
            f'<a href="{_e(stem)}.{ext}">{ext.upper()}</a>'
            for ext in ("svg", "png", "pdf")
            if (report_dir / f"{stem}.{ext}").is_file()
        )
        svg = f'<source srcset="{_e(stem)}.svg" type="image/svg+xml">' if (report_dir / f"{stem}.svg").is_file() else ""
        parts.append(
            f'<figure><picture>{svg}<img src="{_e(stem)}.png" alt="{_e(caption)}"></picture>'
            f"<figcaption>{_e(caption)} ({links})</figcaption></figure>"
        )
    return f'<section id="km"><h2>Kaplan-Meier figures</h2><div class="figures">{"".join(parts)}</div></section>'


def _box(step: FlowStep, side: bool = False) -> str:
    pct = f"{_pct(step.n, step.of)} of {step.of_label}" if step.of else ""
    cls = "box side" if side else "box"
    return (
        f'<div class="{cls}" data-key="{_e(step.key)}" data-n="{step.n}"><span>{_e(step.label)}</span>'
        f"<b>{step.n}</b><span>{_e(pct)}</span></div>"
    )


def _flow_section(flow: list[FlowStep] | None, spec: AnalysisSpec | None = None, why: str = "") -> str:
    head = '<section id="flow"><h2>Patient flow</h2>'
    if not flow:
        return head + f'<p class="note">{_e(why or "No patient flow: the analysis spec defines none.")}</p></section>'
    s = {f.key: f for f in flow}
    arrow = '<div class="arrow"></div>'
    layout = spec.flow_rows if spec is not None and spec.flow_rows else tuple(((f.key, False),) for f in flow)
    rows = [f'<div class="row">{"".join(_box(s[k], side) for k, side in row if k in s)}</div>' for row in layout]
    table = "".join(
        f'<tr data-key="{_e(f.key)}"><td>{_e(f.label)}</td><td class="num">{f.n}</td>'
        f'<td class="num">{_e(_pct(f.n, f.of))}</td><td>{_e(f.of_label)}</td></tr>'
        for f in flow
    )
    note = spec.flow_note if spec is not None else ""
    return (
        head + f'<div class="flow">{arrow.join(rows)}</div>'
        '<details><summary>Flow as a table</summary><table class="flow-table"><thead><tr><th>Step</th>'
        '<th class="num">Subjects</th><th class="num">%</th><th>of</th></tr></thead><tbody>'
        + table
        + "</tbody></table></details>"
        + (f'<p class="note">{_e(note)}</p>' if note else "")
        + "</section>"
    )


def _ae_section(table: AeTable | None, why: str = "") -> str:
    head = '<section id="adverse-events"><h2>Adverse events by worst grade</h2>'
    if table is None or not table.sections:
        return head + f'<p class="note">{_e(why or "No adverse-event table.")}</p></section>'
    band = "-".join(str(g) for g in (table.highlight[0], table.highlight[-1])) if table.highlight else ""
    cols = "".join(f'<th class="num">Grade {g}</th>' for g in table.grades)
    if band:
        cols += f'<th class="num">Worst grade {band}</th><th class="num">Any grade {band} event</th>'
    parts = [head, f'<p class="meta">n = {table.n}. {_e(table.note)}</p>']
    for _sid, title, column, rows in table.sections:
        body = []
        for r in rows:
            worst = sum(r.by_grade.get(g, 0) for g in table.highlight)
            cells = "".join(f'<td class="num">{r.by_grade.get(g, 0) or ""}</td>' for g in table.grades)
            if band:
                cells += (
                    f'<td class="num g34">{worst} ({_pct(worst, table.n)})</td>'
                    f'<td class="num band">{r.band} ({_pct(r.band, table.n)})</td>'
                )
            body.append(
                f'<tr data-term="{_e(r.label)}"><td>{_e(r.label)}</td>{cells}'
                f'<td class="num">{r.any} ({_pct(r.any, table.n)})</td></tr>'
            )
        tbl = (
            f'<table class="ae" data-section="{_e(title)}"><thead><tr><th>{_e(column)}</th>{cols}'
            f'<th class="num">Any grade</th></tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )
        if len(rows) > 25:
            parts.append(f"<details><summary>{_e(title)}: {len(rows)} rows</summary>{tbl}</details>")
        else:
            parts.append(f"<h3>{_e(title)}</h3>{tbl}")
    parts.append("</section>")
    return "".join(parts)


def _header(title: str, links: Sequence[DefineLink], report_dir: Path, generated: str) -> str:
    defs = " · ".join(
        f'<a class="define-view" href="{_e(d.href)}">Define-XML {_e(d.label)}</a> '
        f'(<a href="{_e(d.xml_href)}">define.xml</a>)'
        for d in links
    )
    md = '<a href="report.md">report.md</a>' if (report_dir / "report.md").is_file() else ""
    nav = (
        '<nav><a href="#endpoints">End points</a><a href="#km">Kaplan-Meier</a><a href="#flow">Patient flow</a>'
        '<a href="#adverse-events">Adverse events</a><a href="#findings">Findings</a></nav>'
    )
    extra = " · ".join(x for x in (defs, md) if x)
    return (
        f'<header><h1>{_e(title)}</h1><p class="meta">Generated {_e(generated)} by inoconv'
        + (f" · {extra}" if extra else "")
        + f"</p>{nav}</header>"
    )


def render_index_html(
    report_dir: Path,
    report: Mapping[str, Any],
    findings: list[dict[str, Any]] | None,
    links: Sequence[DefineLink],
    *,
    flow: list[FlowStep] | None = None,
    ae: AeTable | None = None,
    findings_source: Path | None = None,
    title: str | None = None,
    generated: str | None = None,
    spec: AnalysisSpec | None = None,
    reconciled: Sequence[Reconciliation] = (),
    flow_note: str = "",
    ae_note: str = "",
) -> str:
    """The page. Its title: ``title``, else the study name define.xml gives, else report.json's title."""
    study = next((d.index.study_name for d in links if d.index.study_name), "") or str(report.get("study") or "")
    title = title or (
        f"{study}: end points, safety and conformance"
        if study
        else str(report.get("title") or "End points, safety and conformance")
    )
    generated = generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(
        [
            _header(title, links, report_dir, generated),
            _endpoints_section(report, reconciled),
            _km_section(report_dir, spec),
            _flow_section(flow, spec, flow_note),
            _ae_section(ae, ae_note),
            findings_section(findings, findings_source, links, report_dir),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>{body}</body></html>\n"
    )


def _page_datasets(spec: AnalysisSpec) -> list[str]:
    names = [spec.analysis_sets[s.analysis_set].dataset for s in spec.flow_steps]
    if spec.adverse_events is not None:
        names += [spec.adverse_events.dataset, spec.analysis_sets[spec.adverse_events.analysis_set].dataset]
    return list(dict.fromkeys(n.upper() for n in names))


@dataclasses.dataclass(frozen=True)
class PreparedPage:
    """What ``index.html`` shows apart from validate's findings (:func:`prepare_index`): made once the report and
    the ADaM package are written, rendered with the findings when they are all known."""

    out_dir: Path
    spec: AnalysisSpec
    report: Any
    links: Any
    flow: Any
    flow_note: str
    ae: AeTable | None
    ae_note: str
    reconciled: list[Reconciliation]


def prepare_index(
    report_dir: Path | str,
    report_json: Path | str | Mapping[str, Any] | None = None,
    define_href: str | Path | Sequence[str | Path] | None = None,
    *,
    adam: Mapping[str, pd.DataFrame] | Path | str | None = None,
    spec: AnalysisSpec | None = None,
) -> PreparedPage:
    """The parts of :func:`write_index_html`'s page that do not depend on the findings (same arguments)."""
    spec = spec or load_analysis_spec()
    out_dir = Path(report_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    adam_dir = Path(adam) if isinstance(adam, str | Path) else None
    report = load_report(report_json, out_dir)
    links = define_links(define_href, out_dir, adam_dir)
    frames = load_adam(adam, _page_datasets(spec))
    ae_spec = spec.adverse_events
    flow_subjects = spec.analysis_sets[spec.flow_steps[0].analysis_set].dataset.upper() if spec.flow_steps else ""
    flow, flow_note = flow_or_none(frames.get(flow_subjects), spec) if spec.flow_steps else (None, "")
    ae: AeTable | None = None
    ae_note = ""
    reconciled: list[Reconciliation] = []
    if ae_spec is not None:
        adae = frames.get(ae_spec.dataset.upper())
        subjects = frames.get(spec.analysis_sets[ae_spec.analysis_set].dataset.upper())
        if adae is None:
            ae_note = f"{ae_spec.dataset} was not available: no adverse-event table."
        else:
            try:
                ae = adverse_event_table(adae, subjects, spec)
                reconciled = reconcile(report, ae, spec)
            except InputError as exc:
                ae_note = "; ".join(p.message for p in exc.problems)
    return PreparedPage(out_dir, spec, report, links, flow, flow_note, ae, ae_note, reconciled)


def write_index_html(
    report_dir: Path | str,
    report_json: Path | str | Mapping[str, Any] | None = None,
    findings: Path | str | Iterable[Any] | None = None,
    define_href: str | Path | Sequence[str | Path] | None = None,
    *,
    adam: Mapping[str, pd.DataFrame] | Path | str | None = None,
    title: str | None = None,
    generated: str | None = None,
    spec: AnalysisSpec | None = None,
    prepared: PreparedPage | None = None,
) -> Path:
    """Write ``report_dir/index.html``; returns its path.

    * ``report_json``: the report stage's ``report.json`` (path or loaded dict); default ``report_dir/report.json``.
    * ``findings``: validate's findings (Finding objects, dicts, or a ``findings.json`` path); default: a
      ``findings.json`` in ``report_dir`` or in ``report_dir/../validate``.
    * ``define_href``: the define.xml/define.html files to link to (``str``: href relative to the page; ``Path``:
      a file); default: the ADaM package's define and the SDTM package beside it.
    * ``adam``: the ADaM datasets (dict of frames, or the package folder) for the patient flow and the
      adverse-event table the analysis spec defines.
    * ``spec``: the analysis spec (default ``mappings/analysis/endpoints.yaml``).
    * ``prepared``: :func:`prepare_index` of the same arguments, made earlier (the others are then not read).
    """
    page_parts = prepared or prepare_index(report_dir, report_json, define_href, adam=adam, spec=spec)
    out_dir = page_parts.out_dir
    found, source = load_findings(findings, out_dir)
    page = render_index_html(
        out_dir,
        page_parts.report,
        found,
        page_parts.links,
        flow=page_parts.flow,
        ae=page_parts.ae,
        findings_source=source,
        title=title,
        generated=generated,
        spec=page_parts.spec,
        reconciled=page_parts.reconciled,
        flow_note=page_parts.flow_note,
        ae_note=page_parts.ae_note,
    )
    from converter.io.xpt import atomic_file

    target = out_dir / INDEX_NAME
    with atomic_file(target) as fh:
        fh.write(page.encode("utf-8"))
    return target


def prepare_run_view(run_dir: Path | str) -> PreparedPage:
    """The stylesheet and ``define.html`` beside ``sdtm/define.xml`` and ``adam/define.xml``, and the parts of
    ``report/index.html`` that do not depend on the findings (once the report and the ADaM package are written)."""
    from converter.io.define_stylesheet import write_define_views

    run = Path(run_dir)
    write_define_views(run)
    defines = [p for p in (run / "adam" / "define.xml", run / "sdtm" / "define.xml") if p.is_file()]
    adam = run / "adam"
    return prepare_index(run / "report", define_href=defines, adam=adam if adam.is_dir() else None)


def write_run_view(
    run_dir: Path | str, findings: Path | str | Iterable[Any] | None = None, prepared: PreparedPage | None = None
) -> Path:
    """The reviewer's view of an ``inoconv run`` folder: the stylesheet and ``define.html`` beside
    ``sdtm/define.xml`` and ``adam/define.xml``, then ``report/index.html`` linking to both (``prepared``:
    :func:`prepare_run_view` of this folder, made earlier)."""
    page_parts = prepared or prepare_run_view(run_dir)
    return write_index_html(Path(run_dir) / "report", findings=findings, prepared=page_parts)
