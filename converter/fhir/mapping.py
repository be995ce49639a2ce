"""The SDTM <-> FHIR specs (``mappings/fhir/*.yaml``): one file per FHIR resource type, both directions.

A spec names, per SDTM variable, the FHIR element (a :mod:`converter.fhir.paths` path) and the value transform
(``as``); the way back is the same entry read in reverse. Layout of a file::

    resource: AdverseEvent
    tables: {name: {sdtm value: fhir value}}        # optional, beside those of _common.yaml
    blocks: {name: [elements]}                      # optional reusable element lists ("$name" in a list)
    sources:                                        # SDTM rows that make resources of this type
      - dataset: AE                                 # one resource per row (or level: study + from: [...])
        level: subject                              # subject: in the subject's Bundle; study: in study.json
        where: "AESER == 'Y'"                       # optional row filter (converter.spec.expr, parsed at load)
        identifier: {system: "urn:inoconv:{STUDYID:lower}:ae", value: "{USUBJID}-{AESEQ}"}
        request: conditional | id                   # PUT Type?identifier=... | PUT Type/<uuid5>
        default: true                               # FHIR -> SDTM: resources that match no source come here
        match: [{path: ..., value: ...}]            # FHIR -> SDTM: this source takes resources where it holds
        key: [USUBJID]                              # rows of one dataset from several resources merge on it
        direction: both | to_fhir                   # to_fhir: derived resources, skipped on the way back
        elements:
          - {var: AESER, path: seriousness, as: concept, system: ..., map: {Y: serious}, codelist: NY}
          - {path: actuality, as: fixed, value: actual}            # a constant (SDTM -> FHIR only)
          - {var: X, path: ..., when: "--STRESN.notna()"}          # written only where the expression holds
          - {var: X, path: ..., direction: to_sdtm}                # an alternative read on the way back
        children:                                   # rows of another dataset riding on this resource
          - {dataset: SUPPAE, link: supp, path: extension, item: {url: ...}, elements: [...]}
        not_mapped: {AESTDY: {reason: ..., rederive: {study_day: AESTDTC}}}

A variable may appear in several elements: SDTM -> FHIR writes every one whose ``when`` holds; FHIR -> SDTM
takes the first that gives a value. Every variable of the SDTM specs must be mapped (both ways) or listed in
``not_mapped`` with a reason (:func:`check_coverage`); DOMAIN and a SUPP--'s RDOMAIN are implied by the source.

Transforms (``as``): string, code, integer, decimal, date, dateTime (ISO 8601 kept at its precision; what FHIR
cannot hold goes to the original-value extension), map (a value table; unmapped values go to the original-value
extension), concept / coding (CodeableConcept / Coding: a standard system through ``map``, NCIt from the CT
``codelist``, the SDTM value as text), unit (Quantity unit + UCUM), number_code, study_ref, subject_ref,
present and number_text (way back only), fixed (way there only).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.fhir.paths import FPath, PathError, Step, parse_path
from converter.fhir.resource_checks import r4b_path_problem
from converter.paths import bundled_mappings_dir, mappings_dir
from converter.spec.expr import Expr, parse_expression
from converter.spec.model import DatasetSpec
from converter.spec.yamlines import line_of, line_of_key, load_yaml_lines, strip_lines

TRANSFORMS: dict[str, frozenset[str]] = {
    "string": frozenset(),
    "code": frozenset(),
    "integer": frozenset(),
    "decimal": frozenset(),
    "date": frozenset(),
    "dateTime": frozenset(),
    "map": frozenset({"map", "partial", "back"}),
    "concept": frozenset({"system", "map", "display", "codelist", "text", "partial"}),
    "coding": frozenset({"system", "map", "display", "codelist", "partial"}),
    "unit": frozenset({"table"}),
    "number_code": frozenset(),
    "study_ref": frozenset(),
    "subject_ref": frozenset(),
    "present": frozenset({"value"}),
    "number_text": frozenset(),
    "fixed": frozenset({"value"}),
}
TO_SDTM_ONLY = frozenset({"present", "number_text"})
TO_FHIR_ONLY = frozenset({"fixed"})
DIRECTIONS = ("both", "to_fhir", "to_sdtm")
LEVELS = ("subject", "study")
REQUESTS = ("conditional", "id")
#: SDTM type of the values a transform gives back (for variables without an SDTM spec)
RESULT_TYPES = {"integer": "integer", "decimal": "float", "number_code": "float"}

_ELEMENT_KEYS = {"var", "path", "as", "when", "direction", "elsewhere"} | set().union(*TRANSFORMS.values())
_SOURCE_KEYS = {
    "dataset", "level", "from", "where", "identifier", "request", "default", "match", "key", "direction",
    "elements", "children", "not_mapped",
}  # fmt: skip
_CHILD_KEYS = {
    "dataset", "link", "path", "mode", "item", "where", "distinct", "when_absent", "direction", "elements",
    "not_mapped",
}  # fmt: skip
_FILE_KEYS = {"resource", "sources", "tables", "blocks", "comment"}
_CONST = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
_TEMPLATE_VAR = re.compile(r"\{([A-Z][A-Z0-9_]*|--[A-Z0-9_]+)(?::(lower|upper))?\}")
_NUMERIC = re.compile(r"^-?\d+(?:\.0+)?$")
_VAR = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
_RESOURCE = re.compile(r"^[A-Z][A-Za-z]+$")


@dataclass(frozen=True)
class NotMapped:
    reason: str
    rederive: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Element:
    var: str | None
    path: FPath
    kind: str
    args: Mapping[str, Any]
    when: Expr | None = None  # parsed at load (converter.spec.expr); absent variables count as missing
    direction: str = "both"
    where: str = ""  # "file:line" for messages
    # FHIR -> SDTM: read only from resources written elsewhere (not recognised by their identifier as this
    # source's own): an alternative such as --ORRES from valueQuantity, which would invent a value our own
    # resources leave out on purpose (a derived row without an original result)
    elsewhere: bool = False
    # a study day listed as derived again (not_mapped rederive study_day), carried only where the submitted value
    # is not what the derivation gives (a day counted from another reference, a day without a date): generated
    # by the loader, never listed as mapped (the variable stays "derived again")
    as_submitted: bool = False

    @property
    def to_fhir(self) -> bool:
        return self.direction in ("both", "to_fhir")

    @property
    def to_sdtm(self) -> bool:
        return self.direction in ("both", "to_sdtm") and self.var is not None


@dataclass(frozen=True)
class Template:
    """A string with ``{VAR}`` / ``{VAR:lower}`` fields filled from a row."""

    text: str
    fields: tuple[tuple[str, str | None], ...]  # (var, filter)

    @property
    def vars(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for v, _ in self.fields))

    def render(self, values: Mapping[str, str]) -> str:
        def sub(m: re.Match[str]) -> str:
            v = values[m.group(1)]
            f = m.group(2)
            return v.lower() if f == "lower" else v.upper() if f == "upper" else v

        return _TEMPLATE_VAR.sub(sub, self.text)

    @functools.cached_property
    def pieces(self) -> tuple[str | tuple[str, str | None], ...]:
        out: list[str | tuple[str, str | None]] = []
        pos = 0
        for m in _TEMPLATE_VAR.finditer(self.text):
            if m.start() > pos:
                out.append(self.text[pos : m.start()])
            out.append((m.group(1), m.group(2)))
            pos = m.end()
        if pos < len(self.text):
            out.append(self.text[pos:])
        return tuple(out)

    def parse(
        self, text: str, known: Mapping[str, str] | None = None, numeric: Iterable[str] = ()
    ) -> dict[str, str] | None:
        """The field values of a rendered string (known fields given), or None when it does not match."""
        known = known or {}
        segs: list[str | tuple[str, str | None]] = []
        for pc in self.pieces:
            if isinstance(pc, tuple) and pc[0] in known:
                v = known[pc[0]]
                segs.append(v.lower() if pc[1] == "lower" else v.upper() if pc[1] == "upper" else v)
            else:
                segs.append(pc)
        unknown = [i for i, sg in enumerate(segs) if isinstance(sg, tuple)]
        if not unknown:
            return {} if "".join(str(sg) for sg in segs) == text else None
        if len(unknown) == 1:
            i = unknown[0]
            prefix = "".join(str(sg) for sg in segs[:i])
            suffix = "".join(str(sg) for sg in segs[i + 1 :])
            if len(text) <= len(prefix) + len(suffix) or not text.startswith(prefix) or not text.endswith(suffix):
                return None
            mid = text[len(prefix) : len(text) - len(suffix)]
            seg = segs[i]
            assert isinstance(seg, tuple)
            var, flt = seg
            if var in set(numeric) and not _NUMERIC.match(mid):
                return None
            return {} if flt else {var: mid}
        m = self.regex(known, numeric).match(text)
        return None if m is None else m.groupdict()

    def regex(self, known: Mapping[str, str] | None = None, numeric: Iterable[str] = ()) -> re.Pattern[str]:
        """A pattern that matches rendered strings; unknown fields become named groups."""
        known = known or {}
        num = set(numeric)
        out: list[str] = []
        pos = 0
        seen: set[str] = set()
        matches = list(_TEMPLATE_VAR.finditer(self.text))
        for i, m in enumerate(matches):
            out.append(re.escape(self.text[pos : m.start()]))
            var, flt = m.group(1), m.group(2)
            if var in known:
                v = known[var]
                out.append(re.escape(v.lower() if flt == "lower" else v.upper() if flt == "upper" else v))
            elif var in seen or flt:
                out.append(".+?" if i < len(matches) - 1 else ".+")
            else:
                seen.add(var)
                body = r"-?\d+(?:\.0+)?" if var in num else (".+?" if i < len(matches) - 1 else ".+")
                out.append(f"(?P<{var}>{body})")
            pos = m.end()
        out.append(re.escape(self.text[pos:]))
        return re.compile("^" + "".join(out) + "$")


@dataclass(frozen=True)
class IdentifierSpec:
    system: Template
    value: Template
    path: FPath  # identifier[0] (a list) or identifier (R4 AdverseEvent: 0..1)

    @property
    def single(self) -> bool:
        last = self.path.last
        return last is not None and last.plain


@dataclass(frozen=True)
class ChildSpec:
    dataset: str
    supp: bool  # link: supp (USUBJID + IDVAR/IDVARVAL to the parent row; RDOMAIN = parent dataset)
    link: Mapping[str, str]  # child var -> parent var
    path: FPath
    mode: str  # list | first
    item: Mapping[str, Any]
    elements: tuple[Element, ...]
    where: Expr | None = None
    distinct: tuple[str, ...] = ()
    when_absent: str | None = None
    direction: str = "both"
    not_mapped: Mapping[str, NotMapped] = field(default_factory=dict)
    where_text: str = ""


@dataclass(frozen=True)
class SourceSpec:
    resource: str
    dataset: str | None  # None for level study
    level: str
    elements: tuple[Element, ...]
    identifier: IdentifierSpec | None = None
    request: str = "conditional"
    default: bool = False
    match: tuple[tuple[FPath, str], ...] = ()
    key: tuple[str, ...] = ()
    where: Expr | None = None
    direction: str = "both"
    from_datasets: tuple[str, ...] = ()
    children: tuple[ChildSpec, ...] = ()
    not_mapped: Mapping[str, NotMapped] = field(default_factory=dict)
    where_text: str = ""

    @property
    def name(self) -> str:
        return f"{self.resource}<-{self.dataset or 'study'}"

    def mapped_vars(self) -> set[str]:
        """Variables this source carries both ways (elements, identifier fields, child links)."""
        out = {
            e.var
            for e in self.elements
            if e.var and e.direction == "both" and e.kind not in TO_FHIR_ONLY and not e.as_submitted
        }
        if self.identifier is not None:
            out |= set(self.identifier.value.vars)
        return out


@dataclass(frozen=True)
class FhirSpecs:
    resources: Mapping[str, tuple[SourceSpec, ...]]
    constants: Mapping[str, str]
    tables: Mapping[str, Mapping[Any, Any]]
    original_value_url: str
    bundle_order: tuple[str, ...]
    folder: Path
    # SDTM datasets intentionally not carried to FHIR (_common.yaml ``not_mapped_datasets``): name -> reason
    not_mapped_datasets: Mapping[str, str] = field(default_factory=dict)
    # every spec file loaded: the folder's own, then those of the sets _common.yaml includes
    files: tuple[Path, ...] = ()

    def sources(self) -> list[SourceSpec]:
        return [s for group in self.resources.values() for s in group]

    def datasets(self) -> set[str]:
        """Every SDTM dataset some spec reads or writes (sources and children)."""
        out: set[str] = set()
        for s in self.sources():
            if s.dataset:
                out.add(s.dataset)
            out |= {c.dataset for c in s.children}
        return out

    def type_rank(self, rtype: str) -> int:
        try:
            return self.bundle_order.index(rtype)
        except ValueError:
            return len(self.bundle_order)


# --- loading -----------------------------------------------------------------------------------------------------
class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, msg: str) -> None:
        self.items.append(f"{where}: {msg}")


def _subst(text: str, constants: Mapping[str, str], where: str, err: _Errors) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in constants:
            err.add(where, f"unknown constant ${{{name}}} (define it in _common.yaml constants)")
            return m.group(0)
        return constants[name]

    return _CONST.sub(sub, text)


def _subst_deep(node: Any, constants: Mapping[str, str], where: str, err: _Errors) -> Any:
    if isinstance(node, str):
        return _subst(node, constants, where, err)
    if isinstance(node, dict):
        return {k: _subst_deep(v, constants, where, err) for k, v in node.items()}
    if isinstance(node, list):
        return [_subst_deep(v, constants, where, err) for v in node]
    return node


def prefix_of(dataset: str) -> str:
    """The variable prefix of a dataset (LB -> LB; SUPPAE and others: the first two letters)."""
    return dataset[:2]


def _ds_subst(text: str, dataset: str | None) -> str:
    if dataset is None:
        return text
    return text.replace("--", prefix_of(dataset)).replace("$ds", dataset.lower())


def parse_template(text: str) -> Template:
    return Template(text=text, fields=tuple((m.group(1), m.group(2)) for m in _TEMPLATE_VAR.finditer(text)))


def _expr(text: Any, dataset: str | None, node: Any, ctx: _Ctx, what: str) -> Expr | None:
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
class _Ctx:
    file: Path
    constants: Mapping[str, str]
    tables: Mapping[str, Mapping[Any, Any]]
    blocks: Mapping[str, Any]
    err: _Errors

    def where(self, node: Any, fallback: int = 0) -> str:
        line = line_of(node) or fallback
        return f"{self.file.name}:{line}" if line else self.file.name


def _expand_elements(raw: Any, ctx: _Ctx, where: str, depth: int = 0) -> list[Any]:
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


def _table(value: Any, ctx: _Ctx, where: str) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        table = ctx.tables.get(value[1:])
        if table is None:
            ctx.err.add(where, f"unknown table {value!r}")
            return {}
        return table
    if isinstance(value, dict):
        return strip_lines(value)
    return value


def _parse_element(raw: Any, dataset: str | None, ctx: _Ctx) -> Element | None:
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


def _parse_not_mapped(raw: Any, dataset: str | None, ctx: _Ctx, where: str) -> dict[str, NotMapped]:
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


def _elements(raw: Any, dataset: str | None, ctx: _Ctx, where: str) -> tuple[Element, ...]:
    items = _expand_elements(raw, ctx, where)
    return tuple(e for e in (_parse_element(it, dataset, ctx) for it in items) if e is not None)


def _parse_child(raw: Any, ctx: _Ctx) -> ChildSpec | None:
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


def _as_submitted(not_mapped: Mapping[str, NotMapped], ctx: _Ctx, where: str) -> tuple[Element, ...]:
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


def _parse_identifier(raw: Any, dataset: str | None, ctx: _Ctx, where: str) -> IdentifierSpec | None:
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


def _parse_source(raw: Any, resource: str, ctx: _Ctx) -> SourceSpec | None:
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
    children = tuple(c for c in (_parse_child(r, ctx) for r in raw.get("children") or ()) if c is not None)
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


def load_fhir_specs(folder: Path | None = None) -> FhirSpecs:
    """Every spec under ``mappings/fhir`` (``_common.yaml`` first) and the sets it includes, checked; raises
    SpecError with all problems.

    ``_common.yaml`` ``include: [standard]`` adds the spec files of another folder (a path relative to this one, or
    ``inoconv:fhir/standard`` for the folder in inoconv's own mappings, so a second study uses the standard set
    without copying it). An included folder's ``_set.yaml`` may hold ``tables``, ``blocks`` (visible to every
    spec; the study's own of the same name win) and ``supplemental_qualifiers`` (below). A source of the study's
    own files replaces an included source of the same dataset: the study extends or overrides the standard set.

    ``supplemental_qualifiers: {path, item, elements}`` (in ``_common.yaml`` or a ``_set.yaml``): every SDTM
    domain's SUPP-- dataset rides on the resources of its parent domain (the first subject-level source of that
    dataset, carried both ways) as that child group, unless a spec already carries the SUPP-- dataset itself.
    """
    folder = folder or mappings_dir() / "fhir"
    err = _Errors()
    common_path = folder / "_common.yaml"
    common: dict[str, Any] = {}
    if common_path.exists():
        doc = load_yaml_lines(common_path)
        if not isinstance(doc, dict):
            raise SpecError([f"{common_path}: must be a mapping"])
        common = doc
    constants = {str(k): str(v) for k, v in strip_lines(common.get("constants") or {}).items()}
    cerr = _Errors()
    sets = _included_sets(common, folder, cerr)
    set_tables: dict[str, Any] = {}
    set_blocks: dict[str, Any] = {}
    supp_raw: Any = common.get("supplemental_qualifiers")
    for _inc, doc in sets:
        set_tables.update(_subst_deep(strip_lines(doc.get("tables") or {}), constants, "_set.yaml", cerr))
        set_blocks.update(_subst_deep(doc.get("blocks") or {}, constants, "_set.yaml", cerr))
        supp_raw = supp_raw if supp_raw is not None else doc.get("supplemental_qualifiers")
    common_tables = {
        **set_tables, **_subst_deep(strip_lines(common.get("tables") or {}), constants, "_common.yaml", cerr)
    }  # fmt: skip
    common_blocks = {**set_blocks, **_subst_deep(common.get("blocks") or {}, constants, "_common.yaml", cerr)}
    original = _subst(str(common.get("original_value", "${EXT}/sdtm-original-value")), constants, "_common.yaml", cerr)
    err.items.extend(cerr.items)
    own = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    included = [p for inc, _doc in sets for p in sorted(inc.glob("*.yaml")) if not p.name.startswith("_")]
    if not own and not included:
        raise SpecError([f"{folder}: no FHIR spec files (*.yaml)"])
    resources: dict[str, list[SourceSpec]] = {}
    from_set: set[int] = set()
    for path in own + included:
        raw = load_yaml_lines(path)
        if not isinstance(raw, dict):
            err.add(path.name, "a spec must be a mapping with resource and sources")
            continue
        for key in sorted(set(raw) - _FILE_KEYS - {"__line__"}):
            err.add(f"{path.name}:{line_of(raw)}", f"unknown key {key!r}")
        doc = _subst_deep(raw, constants, path.name, err)
        resource = str(doc.get("resource", ""))
        if not _RESOURCE.match(resource):
            err.add(path.name, f"resource {resource!r} is not a FHIR resource type name")
            continue
        tables = {**common_tables, **strip_lines(doc.get("tables") or {})}
        blocks = {**common_blocks, **(doc.get("blocks") or {})}
        ctx = _Ctx(file=path, constants=constants, tables=tables, blocks=blocks, err=err)
        sources = [s for s in (_parse_source(r, resource, ctx) for r in doc.get("sources") or ()) if s is not None]
        if not sources:
            err.add(path.name, "no sources")
        if path not in own:
            from_set.update(id(s) for s in sources)
        resources.setdefault(resource, []).extend(sources)
    resources = _own_first(resources, from_set)
    if supp_raw is not None:
        ctx = _Ctx(file=common_path, constants=constants, tables=common_tables, blocks=common_blocks, err=err)
        resources = _with_supp_children(resources, _subst_deep(supp_raw, constants, "_common.yaml", err), ctx)
    for rtype, group in resources.items():
        if sum(1 for s in group if s.default) > 1:
            err.add(rtype, "more than one source is the default for FHIR -> SDTM")
    if err.items:
        raise SpecError(err.items)
    return FhirSpecs(
        resources={k: tuple(v) for k, v in resources.items()},
        constants=constants,
        tables=common_tables,
        original_value_url=original,
        bundle_order=tuple(common.get("bundle_order") or ()),
        folder=folder,
        not_mapped_datasets=_not_mapped_datasets(common.get("not_mapped_datasets")),
        files=tuple(own + included),
    )


def _included_sets(common: Mapping[str, Any], folder: Path, err: _Errors) -> list[tuple[Path, dict[str, Any]]]:
    """The folders ``_common.yaml`` ``include``s, each with its ``_set.yaml`` (``{}`` when it has none)."""
    raw = strip_lines(common.get("include") or [])
    if not isinstance(raw, list):
        err.add("_common.yaml", "include must be a list of folders")
        return []
    out: list[tuple[Path, dict[str, Any]]] = []
    for entry in raw:
        text = str(entry)
        path = bundled_mappings_dir() / text[len("inoconv:") :] if text.startswith("inoconv:") else folder / text
        if not path.is_dir():
            err.add("_common.yaml", f"include {text!r}: no such folder ({path})")
            continue
        if path.resolve() == folder.resolve() or any(path.resolve() == p.resolve() for p, _d in out):
            err.add("_common.yaml", f"include {text!r}: the folder is already loaded")
            continue
        doc: Any = load_yaml_lines(path / "_set.yaml") if (path / "_set.yaml").is_file() else {}
        if not isinstance(doc, dict):
            err.add(str(path / "_set.yaml"), "must be a mapping")
            doc = {}
        for key in sorted(set(doc) - {"tables", "blocks", "supplemental_qualifiers", "comment", "__line__"}):
            err.add(str(path / "_set.yaml"), f"unknown key {key!r}")
        out.append((path, doc))
    return out


def _own_first(resources: dict[str, list[SourceSpec]], from_set: set[int]) -> dict[str, list[SourceSpec]]:
    """The study's own sources, and the included ones for datasets the study's files do not carry themselves."""
    own = [s for group in resources.values() for s in group if id(s) not in from_set]
    carried = {s.dataset for s in own if s.dataset} | {c.dataset for s in own for c in s.children}
    out: dict[str, list[SourceSpec]] = {}
    for rtype, group in resources.items():
        kept = [s for s in group if id(s) not in from_set or s.dataset not in carried]
        if kept:
            out[rtype] = kept
    return out


def _with_supp_children(resources: dict[str, list[SourceSpec]], raw: Any, ctx: _Ctx) -> dict[str, list[SourceSpec]]:
    """Each domain's SUPP-- dataset as a child group of its parent's first source, where no spec carries it."""
    if not isinstance(raw, dict):
        ctx.err.add("_common.yaml", "supplemental_qualifiers must be {path, item, elements}")
        return resources
    carried = {s.dataset for g in resources.values() for s in g if s.dataset}
    carried |= {c.dataset for g in resources.values() for s in g for c in s.children}
    done: set[str] = set()
    out: dict[str, list[SourceSpec]] = {}
    for rtype, group in resources.items():
        kept: list[SourceSpec] = []
        for s in group:
            ds = s.dataset
            if ds and s.level == "subject" and s.direction == "both" and not ds.startswith("SUPP"):
                supp = f"SUPP{ds}"
                if supp not in carried and supp not in done:
                    child = _parse_child({**raw, "dataset": supp, "link": "supp"}, ctx)
                    if child is not None:
                        s = replace(s, children=(*s.children, child))
                        done.add(supp)
            kept.append(s)
        out[rtype] = kept
    return out


def _not_mapped_datasets(raw: Any) -> dict[str, str]:
    """``not_mapped_datasets: {DS: reason}`` of ``_common.yaml``: every entry a dataset name and a reason."""
    raw = strip_lines(raw or {})
    bad = [k for k, v in raw.items() if not isinstance(v, str) or not v.strip()] if isinstance(raw, dict) else [raw]
    if bad:
        raise SpecError([f"_common.yaml: not_mapped_datasets must map dataset names to reasons ({bad[0]!r})"])
    return {str(k).upper(): str(v) for k, v in raw.items()}


# --- checks against the SDTM specs and the R4 models ------------------------------------------------------------
IMPLIED = ("DOMAIN", "RDOMAIN")


def coverage(specs: FhirSpecs) -> dict[str, dict[str, str]]:
    """Per dataset: variable -> "mapped" | "not mapped: <reason>" | "implied" over every spec."""
    out: dict[str, dict[str, str]] = {}
    for s in specs.sources():
        if s.dataset and s.direction == "both":
            d = out.setdefault(s.dataset, {})
            for v in s.mapped_vars():
                d[v] = "mapped"
            d.setdefault("DOMAIN", "implied")
            for v, nm in s.not_mapped.items():
                d.setdefault(v, f"not mapped: {nm.reason}")
        for c in s.children:
            if c.direction != "both":
                continue
            d = out.setdefault(c.dataset, {})
            for e in c.elements:
                if e.var and e.direction == "both" and not e.as_submitted:
                    d[e.var] = "mapped"
            for v in c.link:
                d[v] = "mapped"
            if c.supp:
                for v in ("STUDYID", "USUBJID"):
                    d[v] = "mapped"
                d.setdefault("RDOMAIN", "implied")
            else:
                d.setdefault("DOMAIN", "implied")
            for v, nm in c.not_mapped.items():
                d.setdefault(v, f"not mapped: {nm.reason}")
    return out


def check_coverage(specs: FhirSpecs, sdtm_specs: Mapping[str, DatasetSpec]) -> list[str]:
    """Every variable of every SDTM spec is mapped both ways, implied, or listed in not_mapped with a reason."""
    cov = coverage(specs)
    problems: list[str] = []
    for name, ds in sdtm_specs.items():
        known = cov.get(name)
        if known is None:
            problems.append(f"SDTM dataset {name} ({ds.path}): no FHIR spec carries it")
            continue
        for v in ds.variables:
            if v.name not in known:
                problems.append(f"{name}.{v.name}: neither mapped nor listed in not_mapped (mappings/fhir)")
    return problems


def rederivations(specs: FhirSpecs) -> dict[str, dict[str, Mapping[str, str]]]:
    """Per dataset: not-mapped variable -> its rederive rule (e.g. {study_day: AESTDTC})."""
    out: dict[str, dict[str, Mapping[str, str]]] = {}
    for s in specs.sources():
        groups: list[tuple[str | None, Mapping[str, NotMapped]]] = [(s.dataset, s.not_mapped)]
        groups += [(c.dataset, c.not_mapped) for c in s.children]
        for ds, nm in groups:
            if ds is None:
                continue
            for v, entry in nm.items():
                if entry.rederive:
                    out.setdefault(ds, {})[v] = entry.rederive
    return out


def check_paths_r4b(specs: FhirSpecs) -> list[str]:
    """Every element path exists in the R4 (R4B models) resource, with lists indexed and objects not.

    Imports fhir.resources (slow): meant for tests and ``--strict``, not for every run.
    """
    problems: list[str] = []
    for s in specs.sources():
        base = parse_path("")
        paths: list[tuple[FPath, str]] = [(e.path, e.where) for e in s.elements]
        if s.identifier is not None:
            paths.append((s.identifier.path.join(parse_path("value")), s.where_text))
        for p, _v in s.match:
            msg = r4b_path_problem(s.resource, p, fanout=True)
            if msg:
                problems.append(f"{s.where_text}: match {s.resource}.{p}: {msg}")
        for c in s.children:
            paths.append((c.path, c.where_text))
            item_base = c.path if c.mode == "first" else _as_item(c.path)
            for e in c.elements:
                paths.append((item_base.join(e.path), e.where))
        for p, where in paths:
            msg = r4b_path_problem(s.resource, base.join(p))
            if msg:
                problems.append(f"{where}: {s.resource}.{p}: {msg}")
    return problems


def _as_item(path: FPath) -> FPath:
    """The path of one item of the list at ``path`` (for checking child element paths)."""
    last = path.steps[-1]
    steps = (*path.steps[:-1], Step(last.name, index=0))
    return FPath(f"{path.text}[0]", steps)


def element_codelist(el: Element, dataset: str | None, sdtm_specs: Mapping[str, DatasetSpec]) -> str | None:
    """The codelist of an element: as the FHIR spec names it, or (``codelist: auto``) the SDTM variable's."""
    cl = el.args.get("codelist")
    if cl != "auto":
        return str(cl) if cl else None
    spec = sdtm_specs.get(dataset or "")
    if spec is None or el.var is None:
        return None
    try:
        return spec.variable(el.var).codelist
    except KeyError:
        return None


def load_fhir_stage(mappings: Path | None = None) -> tuple[Any, Any, Any]:
    """(FHIR specs, CT, SDTM specs), checked: every SDTM spec variable mapped or listed as not mapped."""
    from converter.spec.loader import load_specs, load_terminology

    root = mappings or mappings_dir()
    specs = load_fhir_specs(root / "fhir")
    ct = load_terminology(root / "ct") if (root / "ct").is_dir() else None
    sdtm_specs = load_specs(root / "sdtm") if (root / "sdtm").is_dir() else {}
    gaps = check_coverage(specs, sdtm_specs)
    if gaps:
        raise SpecError(gaps)
    return specs, ct, sdtm_specs
