"""The conformance findings on the reviewer's page, and the links into the Define-XML views.

Links into define.xml go to the pre-rendered ``define.html`` where it exists (see
:mod:`converter.io.define_stylesheet` for why), with the anchors the Define-XML 2.1 stylesheet renders:
``#IG.<ItemGroupOID>`` for a dataset's variable table and ``#<ItemGroupOID>.<ItemOID>`` for a variable's row,
read from define.xml itself. Also the small HTML helpers the page's modules share.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converter.io.define_stylesheet import DefineIndex, define_index

SEVERITY_ORDER = ("error", "warning", "info")
FINDINGS_SHOWN = 2000  # rows on the page; the CSV has them all


def esc(value: object) -> str:
    """HTML-escaped text (attribute-safe)."""
    return html.escape("" if value is None else str(value), quote=True)


def number(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def pct(k: int, n: int | None) -> str:
    return f"{100 * k / n:.1f}%" if n else ""


def rel_href(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


@dataclass(frozen=True)
class DefineLink:
    """One Define-XML view the page links to: its href (relative to the page) and what define.xml defines."""

    href: str
    xml_href: str
    index: DefineIndex
    label: str

    def link(self, dataset: str, variable: str = "") -> str | None:
        anchor = self.index.anchor(dataset, variable)
        return None if anchor is None else f"{self.href}#{anchor}"


def finding_dict(f: Any) -> dict[str, Any]:
    if isinstance(f, Mapping):
        return dict(f)
    if hasattr(f, "as_dict"):
        return dict(f.as_dict())
    return {
        k: getattr(f, k, None)
        for k in ("rule_id", "severity", "dataset", "variable", "subject", "row", "message", "count")
    }


def load_findings(
    findings: Path | str | Iterable[Any] | None, report_dir: Path
) -> tuple[list[dict[str, Any]] | None, Path | None]:
    """Findings as dicts and the file they came from; None when none were given or found.

    ``findings``: Finding objects or dicts, or a ``findings.json`` path (which must exist). When None,
    ``findings.json`` is looked for in the report folder and in ``../validate/`` beside it.
    """
    if findings is not None and not isinstance(findings, str | Path):
        return [finding_dict(f) for f in findings], None
    candidates = (
        [Path(findings)]
        if findings is not None
        else [report_dir / "findings.json", report_dir.parent / "validate" / "findings.json"]
    )
    if findings is not None and not candidates[0].is_file():
        raise FileNotFoundError(f"{candidates[0]}: no such findings file")
    for path in candidates:
        if path.is_file():
            doc = json.loads(path.read_text(encoding="utf-8"))
            rows = doc.get("findings", []) if isinstance(doc, dict) else doc
            return [finding_dict(f) for f in rows], path
    return None, None


def define_links(
    define_href: str | Path | Sequence[str | Path] | None, report_dir: Path, adam_dir: Path | None = None
) -> list[DefineLink]:
    """The Define-XML views to link to. A ``str`` is an href relative to the page, a ``Path`` a file; either may
    name define.xml or define.html (the other is looked for beside it). Default: the ADaM package's and the SDTM
    package's (``<adam_dir>/define.xml``, ``<adam_dir>/../sdtm/define.xml``)."""
    if define_href is None:
        items: list[str | Path] = []
        if adam_dir is not None:
            items = [adam_dir / "define.xml", adam_dir.parent / "sdtm" / "define.xml"]
    elif isinstance(define_href, str | Path):
        items = [define_href]
    else:
        items = list(define_href)
    out: list[DefineLink] = []
    for item in items:
        path = Path(item) if isinstance(item, Path) else report_dir / item
        is_page = path.suffix.lower() in (".html", ".htm")
        xml = path.with_suffix(".xml") if is_page else path
        page = path if is_page else xml.with_suffix(".html")
        if not xml.is_file() and not page.is_file():
            continue
        href = rel_href(page if page.is_file() else xml, report_dir)
        index = define_index(xml)
        label = index.standard or xml.parent.name.upper()
        out.append(DefineLink(href=href, xml_href=rel_href(xml, report_dir), index=index, label=label))
    return out


def define_for(dataset: str, links: Sequence[DefineLink]) -> DefineLink | None:
    for link in links:
        if dataset.upper() in link.index.datasets:
            return link
    return None


def findings_section(
    findings: list[dict[str, Any]] | None, source: Path | None, links: Sequence[DefineLink], report_dir: Path
) -> str:
    head = '<section id="findings"><h2>Conformance findings (<code>inoconv validate</code>)</h2>'
    if findings is None:
        return head + (
            '<p class="note">No findings were supplied: run <code>inoconv validate DIR --out '
            "DIR/validate</code>.</p></section>"
        )
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    rows = sorted(
        findings,
        key=lambda f: (
            rank.get(str(f.get("severity")), 9),
            str(f.get("dataset") or ""),
            str(f.get("rule_id") or ""),
            str(f.get("variable") or ""),
        ),
    )
    totals = {s: 0 for s in SEVERITY_ORDER}
    for f in rows:
        sev = str(f.get("severity"))
        totals[sev] = totals.get(sev, 0) + int(number(f.get("count")) or 1)
    cards = "".join(f'<div class="card sev-{s}" data-severity="{s}"><b>{n}</b>{s}</div>' for s, n in totals.items())
    body = []
    for f in rows[:FINDINGS_SHOWN]:
        ds, var = str(f.get("dataset") or ""), str(f.get("variable") or "")
        link = define_for(ds, links) if ds else None
        ds_cell, var_cell = esc(ds), esc(var)
        if link is not None:
            ds_href = link.link(ds)
            ds_cell = f'<a class="define-link" href="{esc(ds_href)}">{esc(ds)}</a>'
            var_href = link.link(ds, var) if var else None
            if var_href is not None and var_href != ds_href:
                var_cell = f'<a class="define-link" href="{esc(var_href)}">{esc(var)}</a>'
        sev = esc(f.get("severity"))
        row = f.get("row")
        body.append(
            f'<tr class="finding" data-severity="{sev}"><td class="sev-{sev}">{sev}</td>'
            f'<td class="rule">{esc(f.get("rule_id"))}</td><td>{ds_cell}</td><td>{var_cell}</td>'
            f"<td>{esc(f.get('subject'))}</td>"
            f'<td class="num">{esc("" if row is None else row)}</td><td class="num">{esc(f.get("count"))}</td>'
            f"<td>{esc(f.get('message'))}</td></tr>"
        )
    more = (
        f'<p class="note">{len(rows) - FINDINGS_SHOWN} more finding(s) are in the CSV.</p>'
        if len(rows) > FINDINGS_SHOWN
        else ""
    )
    files = ""
    if source is not None:
        csv = source.with_suffix(".csv")
        names = [f'<a href="{esc(rel_href(source, report_dir))}">{esc(source.name)}</a>']
        if csv.is_file():
            names.append(f'<a href="{esc(rel_href(csv, report_dir))}">{esc(csv.name)}</a>')
        files = f'<p class="meta">From {" and ".join(names)}.</p>'
    table = (
        (
            '<table class="findings"><thead><tr><th>Severity</th><th>Rule</th><th>Dataset</th><th>Variable</th>'
            '<th>Subject</th><th class="num">Row</th><th class="num">n</th><th>Message</th></tr></thead><tbody>'
            + "".join(body)
            + "</tbody></table>"
        )
        if body
        else '<p class="ok">No findings.</p>'
    )
    return (
        head + f'<div class="summary">{cards}</div>{files}{table}{more}'
        '<p class="note">Dataset and variable link to their definition in define.xml (rendered view).</p>'
        "</section>"
    )
