"""Parsing one SDTM <-> FHIR spec file (:mod:`converter.fhir.mapping` loads the folder): constants substituted,
element lists expanded, and each element, not-mapped variable, child group, identifier and source checked and
turned into the dataclasses of :mod:`converter.fhir.spec_model`, every problem collected in :class:`SpecErrors`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.fhir.paths import FPath, PathError, parse_path
from converter.fhir.spec_model import (
    DIRECTIONS,
    LEVELS,
    REQUESTS,
    TEMPLATE_VAR,
    TO_FHIR_ONLY,
    TO_SDTM_ONLY,
    TRANSFORMS,
    ChildSpec,
    Element,
    IdentifierSpec,
    NotMapped,
    SourceSpec,
    Template,
)
from converter.spec.expr import Expr, parse_expression
from converter.spec.yamlines import line_of, line_of_key, strip_lines

_ELEMENT_KEYS = {"var", "path", "as", "when", "direction", "elsewhere"} | set().union(*TRANSFORMS.values())
_SOURCE_KEYS = {
    "dataset", "level", "from", "where", "identifier", "request", "default", "match", "key", "direction",
    "elements", "children", "not_mapped",
}  # fmt: skip
_CHILD_KEYS = {
    "dataset", "link", "path", "mode", "item", "where", "distinct", "when_absent", "direction", "elements",
    "not_mapped",
}  # fmt: skip
FILE_KEYS = {"resource", "sources", "tables", "blocks", "comment"}
_CONST = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_VAR = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
RESOURCE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")


# --- loading -----------------------------------------------------------------------------------------------------
class SpecErrors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")


def subst(text: str, constants: Mapping[str, str], where: str, err: SpecErrors) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in constants:
            err.add(where, f"unknown constant ${{{name}}} (define it in _common.yaml constants)")
            return m.group(0)
        return constants[name]

    return _CONST.sub(sub, text)


def subst_deep(node: Any, constants: Mapping[str, str], where: str, err: SpecErrors) -> Any:
    if isinstance(node, str):
        return subst(node, constants, where, err)
    if isinstance(node, dict):
        return {k: subst_deep(v, constants, where, err) for k, v in node.items()}
    if isinstance(node, list):
        return [subst_deep(v, constants, where, err) for v in node]
    return node


def prefix_of(dataset: str) -> str:
    """The variable prefix of a dataset (LB -> LB; SUPPAE and others: the first two letters)."""
    return dataset[:2]


def _ds_subst(text: str, dataset: str | None) -> str:
    if dataset is None:
        return text
    return text.replace("--", prefix_of(dataset)).replace("$ds", dataset.lower())


def parse_template(text: str) -> Template:
    return Template(text=text, fields=tuple((m.group(1), m.group(2)) for m in TEMPLATE_VAR.finditer(text)))


def _expr(text: Any, dataset: str | None, node: Any, ctx: ParseContext, what: str) -> Expr | None:
    """A ``where``/``when`` parsed once, here (``--VAR`` replaced by the dataset prefix first); every name it reads
    must be an SDTM variable name (an SDTM package need not hold them all: absent ones are missing values)."""
    if text is None or text == "":
        return None
    line = line_of_key(node, what)
    try:
        expr = parse_expression(_ds_subst(str(text), dataset), file=ctx.file.name, line=line, where=what)
    except SpecError as exc:
        ctx.err.items.extend(exc.messages)
        return None
    for name in sorted(n for n in expr.names if not _VAR.match(n)):
        ctx.err.add(f"{ctx.file.name}:{line}", f"{what}: {name!r} in {expr.text!r} is not an SDTM variable name")
    return expr


@dataclass
class ParseContext:
    file: Path
    constants: Mapping[str, str]
    tables: Mapping[str, Mapping[Any, Any]]
    blocks: Mapping[str, Any]
    err: SpecErrors

    def where(self, node: Any, fallback: int = 0) -> str:
        line = line_of(node) or fallback
        return f"{self.file.name}:{line}" if line else self.file.name


def _expand_elements(raw: Any, ctx: ParseContext, where: str, depth: int = 0) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.err.add(where, "elements must be a list")
        return []
    out: list[Any] = []
    for item in raw:
        if isinstance(item, str) and item.startswith("$"):
            name = item[1:]
            block = ctx.blocks.get(name)
            if block is None:
                ctx.err.add(where, f"unknown block {item!r}")
            elif depth > 5:
                ctx.err.add(where, f"blocks nested too deep at {item!r}")
            else:
                out.extend(_expand_elements(block, ctx, where, depth + 1))
        else:
            out.append(item)
    return out


def _table(value: Any, ctx: ParseContext, where: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        table = ctx.tables.get(value[1:])
        if table is None:
            ctx.err.add(where, f"unknown table {value!r}")
            return {}
        return table
    if isinstance(value, dict):
        return strip_lines(value)
    return value


def _parse_element(raw: Any, dataset: str | None, ctx: ParseContext) -> Element | None:
    where = ctx.where(raw)
    if not isinstance(raw, dict):
        ctx.err.add(where, f"an element must be a mapping, got {raw!r}")
        return None
    body = strip_lines(raw)
    for key in sorted(set(body) - _ELEMENT_KEYS):
        ctx.err.add(where, f"unknown element key {key!r}")
    kind = body.get("as", "string")
    if kind not in TRANSFORMS:
        ctx.err.add(where, f"unknown transform as: {kind!r} (known: {', '.join(TRANSFORMS)})")
        return None
    var = body.get("var")
    if var is not None:
        var = _ds_subst(str(var), dataset)
        if not _VAR.match(var):
            ctx.err.add(where, f"var {var!r} is not an SDTM variable name")
    if kind == "fixed" and var is not None:
        ctx.err.add(where, "a fixed element has no var")
    if kind != "fixed" and var is None:
        ctx.err.add(where, f"element {body.get('path')!r} needs a var (or as: fixed)")
    direction = body.get(
        "direction", "to_fhir" if kind in TO_FHIR_ONLY else "to_sdtm" if kind in TO_SDTM_ONLY else "both"
    )
    if direction not in DIRECTIONS:
        ctx.err.add(where, f"direction must be one of {DIRECTIONS}")
    if kind in TO_SDTM_ONLY and direction != "to_sdtm":
        ctx.err.add(where, f"as: {kind} works FHIR -> SDTM only (direction: to_sdtm)")
    if kind in TO_FHIR_ONLY and direction != "to_fhir":
        ctx.err.add(where, f"as: {kind} works SDTM -> FHIR only")
    elsewhere = body.get("elsewhere", False)
    if not isinstance(elsewhere, bool) or (elsewhere and direction != "to_sdtm"):
        ctx.err.add(where, "elsewhere: true is for an alternative read FHIR -> SDTM (direction: to_sdtm)")
    try:
        path = parse_path(str(body.get("path", "")))
    except PathError as exc:
        ctx.err.add(where, str(exc))
        return None
    args: dict[str, Any] = {}
    for key in TRANSFORMS[kind]:
        if key in body:
            args[key] = _table(body[key], ctx, where) if key in ("map", "display", "back") else body[key]
    if kind in ("fixed", "present") and "value" not in args:
        ctx.err.add(where, f"as: {kind} needs a value")
    if kind == "map" and not isinstance(args.get("map"), dict):
        ctx.err.add(where, "as: map needs map: {sdtm value: fhir value} or map: $table")
    if kind == "unit":
        tname = str(args.get("table", "ucum"))
        if tname not in ctx.tables:
            ctx.err.add(where, f"unit table {tname!r} is not defined")
    if kind in ("concept", "coding"):
        if "map" in args and not args.get("system"):
            ctx.err.add(where, f"as: {kind} with a map needs the system of the mapped codes")
        if kind == "coding" and not args.get("system") and not args.get("codelist"):
            ctx.err.add(where, "as: coding needs a system or a codelist")
    return Element(
        var=var,
        path=path,
        kind=kind,
        args=args,
        when=_expr(body.get("when"), dataset, raw, ctx, "when"),
        direction=str(direction),
        where=where,
        elsewhere=elsewhere is True,
    )


def _parse_not_mapped(raw: Any, dataset: str | None, ctx: ParseContext, where: str) -> dict[str, NotMapped]:
    out: dict[str, NotMapped] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        ctx.err.add(where, "not_mapped must map variables to reasons")
        return out
    for var, val in strip_lines(raw).items():
        name = _ds_subst(str(var), dataset)
        if isinstance(val, str):
            out[name] = NotMapped(reason=val)
        elif isinstance(val, dict) and isinstance(val.get("reason"), str) and val["reason"].strip():
            red = val.get("rederive") or {}
            if not isinstance(red, dict) or set(red) - {"study_day"}:
                ctx.err.add(where, f"not_mapped {name}: rederive knows only study_day: <--DTC variable>")
                red = {}
            out[name] = NotMapped(
                reason=val["reason"], rederive={k: _ds_subst(str(v), dataset) for k, v in red.items()}
            )
        else:
            ctx.err.add(where, f"not_mapped {name}: give the reason (a text, or {{reason: ...}})")
    return out


def _elements(raw: Any, dataset: str | None, ctx: ParseContext, where: str) -> tuple[Element, ...]:
    items = _expand_elements(raw, ctx, where)
    return tuple(e for e in (_parse_element(it, dataset, ctx) for it in items) if e is not None)


def parse_child(raw: Any, ctx: ParseContext) -> ChildSpec | None:
    where = ctx.where(raw)
    if not isinstance(raw, dict) or "dataset" not in raw:
        ctx.err.add(where, "a child group needs at least a dataset")
        return None
    for key in sorted(set(raw) - _CHILD_KEYS - {"__line__"}):
        ctx.err.add(where, f"unknown child key {key!r}")
    dataset = str(raw["dataset"])
    link_raw = raw.get("link")
    supp = link_raw == "supp"
    link: dict[str, str] = {}
    if not supp:
        if not isinstance(link_raw, dict) or not link_raw:
            ctx.err.add(where, "link must be supp or {child var: parent var}")
        else:
            link = {str(k): str(v) for k, v in strip_lines(link_raw).items()}
    try:
        path = parse_path(str(raw.get("path", "")))
    except PathError as exc:
        ctx.err.add(where, str(exc))
        return None
    if path.is_self:
        ctx.err.add(where, "a child group needs the path of its list (or element)")
    mode = str(raw.get("mode", "list"))
    if mode not in ("list", "first"):
        ctx.err.add(where, "mode must be list or first")
    direction = str(raw.get("direction", "both"))
    if direction not in ("both", "to_fhir"):
        ctx.err.add(where, "a child group's direction is both or to_fhir")
    if direction == "both" and mode != "list":
        ctx.err.add(where, "a child group carried both ways needs mode: list and an item to recognise it by")
    item = strip_lines(raw.get("item") or {})
    if direction == "both" and not item:
        ctx.err.add(where, "a child group carried both ways needs item: {...} to recognise its list items by")
    not_mapped = _parse_not_mapped(raw.get("not_mapped"), dataset, ctx, where)
    elements = _elements(raw.get("elements"), dataset, ctx, where) + _as_submitted(not_mapped, ctx, where)
    return ChildSpec(
        dataset=dataset,
        supp=supp,
        link=link,
        path=path,
        mode=mode,
        item=item,
        elements=elements,
        where=_expr(raw.get("where"), None, raw, ctx, "where"),
        distinct=tuple(raw.get("distinct") or ()),
        when_absent=raw.get("when_absent"),
        direction=direction,
        not_mapped=not_mapped,
        where_text=where,
    )


def _as_submitted(not_mapped: Mapping[str, NotMapped], ctx: ParseContext, where: str) -> tuple[Element, ...]:
    """For each study day derived again: an element that carries the submitted value where it differs from the
    derivation (``${EXT}/sdtm-study-day-as-submitted``, one sub-extension per variable: the day as text, or "."
    (SAS's missing number) for a day left empty where the derivation would give one)."""
    ext = ctx.constants.get("EXT")
    if not ext:
        return ()
    out: list[Element] = []
    for var, nm in sorted(not_mapped.items()):
        if nm.rederive.get("study_day"):
            path = parse_path(f"extension[url={ext}/sdtm-study-day-as-submitted].extension[url={var}].valueString")
            out.append(Element(var, path, "string", {}, where=where, as_submitted=True))
    return tuple(out)


def _parse_identifier(raw: Any, dataset: str | None, ctx: ParseContext, where: str) -> IdentifierSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "system" not in raw or "value" not in raw:
        ctx.err.add(where, "identifier needs system and value templates")
        return None
    try:
        path = parse_path(str(raw.get("path", "identifier[0]")))
    except PathError as exc:
        ctx.err.add(where, str(exc))
        return None
    system = parse_template(_ds_subst(str(raw["system"]), dataset))
    value = parse_template(_ds_subst(str(raw["value"]), dataset))
    if not value.vars:
        ctx.err.add(where, "identifier value must use at least one variable")
    return IdentifierSpec(system=system, value=value, path=path)


def parse_source(raw: Any, resource: str, ctx: ParseContext) -> SourceSpec | None:
    where = ctx.where(raw)
    if not isinstance(raw, dict):
        ctx.err.add(where, "a source must be a mapping")
        return None
    for key in sorted(set(raw) - _SOURCE_KEYS - {"__line__"}):
        ctx.err.add(where, f"unknown source key {key!r}")
    level = str(raw.get("level", "subject"))
    if level not in LEVELS:
        ctx.err.add(where, f"level must be one of {LEVELS}")
    dataset = raw.get("dataset")
    from_ds = tuple(str(d) for d in raw.get("from") or ())
    if level == "study":
        if dataset is not None:
            ctx.err.add(where, "a study-level source has no dataset: it makes one resource per STUDYID (from: [...])")
        if not from_ds:
            ctx.err.add(where, "a study-level source needs from: [datasets whose STUDYID values it collects]")
    elif not dataset:
        ctx.err.add(where, "a subject-level source needs a dataset")
    ds = str(dataset) if dataset else None
    request = str(raw.get("request", "conditional"))
    if request not in REQUESTS:
        ctx.err.add(where, f"request must be one of {REQUESTS}")
    direction = str(raw.get("direction", "both"))
    if direction not in ("both", "to_fhir"):
        ctx.err.add(where, "a source's direction is both or to_fhir")
    match: list[tuple[FPath, str]] = []
    for m in raw.get("match") or ():
        if not isinstance(m, dict) or "path" not in m or "value" not in m:
            ctx.err.add(where, "match items are {path: ..., value: ...}")
            continue
        try:
            match.append((parse_path(str(m["path"])), str(m["value"])))
        except PathError as exc:
            ctx.err.add(where, str(exc))
    ident = _parse_identifier(raw.get("identifier"), ds, ctx, where)
    if ident is None and direction == "both" and level == "subject":
        ctx.err.add(where, "a source carried both ways needs an identifier (it is how resources are told apart)")
    children = tuple(c for c in (parse_child(r, ctx) for r in raw.get("children") or ()) if c is not None)
    not_mapped = _parse_not_mapped(raw.get("not_mapped"), ds, ctx, where)
    return SourceSpec(
        resource=resource,
        dataset=ds,
        level=level,
        elements=_elements(raw.get("elements"), ds, ctx, where) + _as_submitted(not_mapped, ctx, where),
        identifier=ident,
        request=request,
        default=bool(raw.get("default", False)),
        match=tuple(match),
        key=tuple(raw.get("key") or ()),
        where=_expr(raw.get("where"), ds, raw, ctx, "where"),
        direction=direction,
        from_datasets=from_ds,
        children=children,
        not_mapped=not_mapped,
        where_text=where,
    )
