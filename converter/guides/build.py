"""Build a reviewer's guide (cSDRG or ADRG) from the specs and the conventions text, render it as Markdown/HTML.

A guide is a list of blocks (heading, paragraph, bullet list, table); both renderings come from the same blocks.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.io.define_metadata import is_cdisc_codelist, is_external, used_codelists
from converter.paths import mappings_dir
from converter.spec.loader import load_specs, load_terminology
from converter.spec.model import Codelist, DatasetSpec
from converter.spec.yamlines import load_yaml_lines, strip_lines

__all__ = ["GUIDES", "Guide", "build_guide", "render_html", "render_markdown", "write_guides"]

#: guide kind -> (spec folder under mappings/, output file stem, conventions file under mappings/guides)
GUIDES: dict[str, tuple[str, str]] = {"sdtm": ("sdtm", "csdrg"), "adam": ("adam", "adrg")}


@dataclass
class Guide:
    kind: str
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", " ".join(str(text).split())))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", [" ".join(str(i).split()) for i in items]))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [["" if c is None else str(c) for c in r] for r in rows])))


def _conventions(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    doc = strip_lines(load_yaml_lines(path))
    if not isinstance(doc, dict):
        raise SpecError([f"{path}: not a guide's conventions (expected a mapping)"])
    for n, sec in enumerate(doc.get("sections") or [], start=1):
        if not isinstance(sec, dict) or not isinstance(sec.get("title"), str):
            raise SpecError([f"{path}: sections[{n}] needs a title (and text or items)"])
    return doc


def _extended_terms(cl: Codelist) -> list[str]:
    """Terms a sponsor added to an extensible CDISC codelist (no NCI code; def:ExtendedValue in define.xml)."""
    if not (is_cdisc_codelist(cl) and cl.extensible):
        return []
    return [t.submission for t in cl.terms if t.code is None]


def _datasets(g: Guide, specs: dict[str, DatasetSpec]) -> None:
    g.heading("Datasets")
    rows = [
        (s.name, s.label, s.cls, s.structure, ", ".join(s.keys), len(s.variables), s.standard)
        for s in sorted(specs.values(), key=lambda s: s.name)
    ]
    g.table(["Dataset", "Label", "Class", "Structure", "Keys", "Variables", "Standard"], rows)


def _terminology(g: Guide, specs: dict[str, DatasetSpec], ct_folder: Path) -> None:
    ct = load_terminology(ct_folder)
    used = [c for c in used_codelists(specs.values()) if c in ct.codelists]
    g.heading("Controlled terminology")
    g.para(f"CDISC controlled terminology: {ct.package}. Codelists the datasets use: {len(used)}.")
    users: dict[str, list[str]] = {}
    for s in specs.values():
        for v in s.variables:
            for c in dict.fromkeys(x for x in (v.codelist, *(vl.codelist for vl in v.value_level)) if x):
                users.setdefault(c, []).append(f"{s.name}.{v.name}")
    ext = [(c, ct.codelists[c]) for c in used if _extended_terms(ct.codelists[c])]
    g.heading("Sponsor extensions of CDISC codelists")
    if ext:
        g.para(
            "Terms of extensible CDISC codelists that carry no NCI code: sponsor extensions (def:ExtendedValue in "
            "define.xml), or terms whose code could not be confirmed (the CT files' comments say which)."
        )
        g.table(
            ["Codelist", "Name", "NCI code", "Terms without an NCI code", "Used by"],
            [(c, cl.name, cl.code, ", ".join(_extended_terms(cl)), ", ".join(users.get(c, []))) for c, cl in ext],
        )
    else:
        g.para("None: every term of the CDISC codelists used carries its NCI code.")
    sponsor = [(c, ct.codelists[c]) for c in used if not is_cdisc_codelist(ct.codelists[c])]
    g.heading("Sponsor-defined codelists and external dictionaries")
    g.table(
        ["Codelist", "Name", "Source", "Terms", "Used by"],
        [
            (c, cl.name, cl.source, "(dictionary)" if is_external(cl) and not cl.terms else len(cl.terms),
             ", ".join(users.get(c, [])))
            for c, cl in sponsor
        ],
    )  # fmt: skip


def _derivations(g: Guide, specs: dict[str, DatasetSpec]) -> None:
    g.heading("Derived variables")
    rows = [
        (s.name, v.name, v.label, " ".join((v.method or "").split()))
        for s in sorted(specs.values(), key=lambda s: s.name)
        for v in sorted(s.variables, key=lambda v: v.order)
        if v.origin.type == "Derived" and v.method
    ]
    g.table(["Dataset", "Variable", "Label", "Method"], rows)


def _deid(g: Guide, conv: dict[str, Any], base: Path) -> None:
    spec = conv.get("deid")
    if not isinstance(spec, dict) or not spec.get("rules"):
        return
    path = (base / str(spec["rules"])).resolve()
    if not path.is_file():
        raise SpecError([f"{base}: deid.rules names {spec['rules']}, which does not exist"])
    doc = strip_lines(load_yaml_lines(path)) or {}
    g.heading("De-identification")
    if spec.get("text"):
        g.para(spec["text"])
    rows: list[tuple[str, str, str, str]] = []
    for scope, table in (("*", doc.get("common") or {}), *((d, t) for d, t in (doc.get("datasets") or {}).items())):
        for var, r in (table or {}).items():
            if isinstance(r, dict) and r.get("rule") != "keep":
                rows.append((scope, str(var), _rule_text(r.get("rule")), " ".join(str(r.get("why", "")).split())))
    g.table(["Dataset", "Variable", "Rule", "Why"], rows)


def _rule_text(rule: Any) -> str:
    if isinstance(rule, dict):
        return "; ".join(f"{k}: {_rule_text(v)}" for k, v in rule.items())
    return str(rule)


def build_guide(kind: str, mappings: Path | None = None) -> Guide:
    """The cSDRG (``kind="sdtm"``) or the ADRG (``kind="adam"``) of the study whose specs are in ``mappings``."""
    if kind not in GUIDES:
        raise ValueError(f"unknown guide {kind!r} (known: {', '.join(GUIDES)})")
    root = mappings or mappings_dir()
    folder, _ = GUIDES[kind]
    specs = load_specs(root / folder)
    conv_path = root / "guides" / f"{kind}.yaml"
    conv = _conventions(conv_path)
    default = "Clinical Study Data Reviewer's Guide" if kind == "sdtm" else "Analysis Data Reviewer's Guide"
    g = Guide(kind, str(conv.get("title") or default))
    g.para(f"Generated by inoconv from the specs under {folder}/ and the conventions in guides/{kind}.yaml.")
    for sec in conv.get("sections") or []:
        g.heading(str(sec["title"]))
        if sec.get("text"):
            g.para(sec["text"])
        g.bullets([str(i) for i in sec.get("items") or []])
    _datasets(g, specs)
    _terminology(g, specs, root / "ct")
    _derivations(g, specs)
    _deid(g, conv, conv_path.parent)
    return g


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(g: Guide) -> str:
    out = [f"# {g.title}", ""]
    for kind, body in g.blocks:
        if kind == "h2":
            out += [f"## {body}", ""]
        elif kind == "p":
            out += [body, ""]
        elif kind == "ul":
            out += [f"- {i}" for i in body] + [""]
        elif kind == "table":
            header, rows = body
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("| " + " | ".join("---" for _ in header) + " |")
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("")
    return "\n".join(out)


def render_html(g: Guide) -> str:
    e: Callable[[Any], str] = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(g.title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.25em .5em;vertical-align:top;text-align:left}</style>",
        f"</head><body><h1>{e(g.title)}</h1>",
    ]
    for kind, body in g.blocks:
        if kind == "h2":
            out.append(f"<h2>{e(body)}</h2>")
        elif kind == "p":
            out.append(f"<p>{e(body)}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in body) + "</ul>")
        elif kind == "table":
            header, rows = body
            head = "".join(f"<th>{e(h)}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_guides(out: Path, kinds: Sequence[str] = ("sdtm", "adam"), mappings: Path | None = None) -> list[Path]:
    """Write ``<stem>.md`` and ``<stem>.html`` for each guide into ``out``; returns the files written."""
    written: list[Path] = []
    for kind in kinds:
        g = build_guide(kind, mappings)
        stem = GUIDES[kind][1]
        for suffix, text in ((".md", render_markdown(g)), (".html", render_html(g))):
            path = out / f"{stem}{suffix}"
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
