"""The analysis spec (``mappings/analysis/endpoints.yaml``): end points, populations, methods, published values.

The report stage knows no trial; it reads this file. Its words are those of the CDISC Analysis Results Standard
(ARS 1.0) where they fit:

* ``analysisSets``: populations, each a dataset (ADSL) and an optional ``condition``;
* ``dataSubsets``: named conditions, an ARS WhereClause ``{condition: {dataset, variable, comparator, value}}``
  or ``{compoundExpression: {logicalOperator: AND|OR|NOT, whereClauses: [...]}}``; comparators are ARS's
  EQ NE GT GE LT LE IN NOTIN, plus MISSING / NOTMISSING (no value / a value); or, where a condition reads
  better as a formula, ``{dataset, where: "<expression>"}`` in the specs' closed expression language
  (:func:`converter.spec.parse_expression`, parsed at load, evaluated column-wise);
* ``analyses``: one per end point: ``id``, ``name``, ``description`` (the definition shown beside the value),
  ``method`` (one of :data:`METHODS`), the population and subset, what the method needs (``variable``,
  ``operation``, ``parameter``, ``at``, ``groupBy``, ``records``, ``denominator``) and ``published``
  (``value``, ``criterion`` - a key of ``criteria`` - ``source`` - a ``referenceDocuments`` id - ``location``);
* ``windows``: time windows over the records a ``records`` end point counts (``label``, ``dataSubsets``: the
  records inside; none: any time on study). ``records`` names its ``window`` and its ``analysisSet`` (the
  population): a safety figure states both; ``alsoWindows`` gives the same count in other windows, shown beside
  the figure (e.g. the treatment-emergent count of an end point published over the whole study);
* ``parameters``: time-to-event parameters (dataset, PARAMCD, time and censor variables, unit of ``units``);
* ``units``: conversions as data (e.g. months = days / 30.4375);
* ``figures``, ``patientFlow``, ``adverseEvents``: what the plots, the flow boxes and the AE table show; a
  figure's ``tailAtRisk`` (default 3, 0 for none) dashes each curve from where fewer subjects remain at risk.

The vocabulary and the dataclasses it is read into are :mod:`converter.report.spec_model` (re-exported here).
:func:`load_analysis_spec` checks everything it can without data and raises one :class:`SpecError` listing every
problem (file, place, what is wrong).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.report.spec_model import (
    COMPARATORS,
    LOGICAL,
    METHODS,
    SPEC_NAME,
    SUMMARY_OPERATIONS,
    SURVIVAL,
    AeSection,
    AeSpec,
    Analysis,
    AnalysisSet,
    AnalysisSpec,
    Compound,
    Condition,
    Criterion,
    Expr,
    Figure,
    FlowStepSpec,
    Group,
    Parameter,
    Published,
    Unit,
    Where,
    Window,
)
from converter.spec import parse_expression
from converter.spec.yamlines import load_yaml_lines, strip_lines

__all__ = [
    "COMPARATORS",
    "LOGICAL",
    "METHODS",
    "SPEC_NAME",
    "SUMMARY_OPERATIONS",
    "SURVIVAL",
    "AeSection",
    "AeSpec",
    "Analysis",
    "AnalysisSet",
    "AnalysisSpec",
    "Compound",
    "Condition",
    "Criterion",
    "Expr",
    "Figure",
    "FlowStepSpec",
    "Group",
    "Parameter",
    "Published",
    "Unit",
    "Where",
    "Window",
    "analysis_spec_path",
    "load_analysis_spec",
    "parse_analysis_spec",
]


class _Checker:
    """Collects every problem of the file, then raises them together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def bad(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path}: {where}: {message}")

    def text(self, node: dict[str, Any], key: str, where: str, required: bool = True, default: str = "") -> str:
        value = node.get(key)
        if value is None:
            if required:
                self.bad(where, f"'{key}' is required")
            return default
        if not isinstance(value, str | int | float):
            self.bad(where, f"'{key}' must be text (got {type(value).__name__})")
            return default
        return str(value)

    def number(self, node: dict[str, Any], key: str, where: str, required: bool = True) -> float | None:
        value = node.get(key)
        if value is None:
            if required:
                self.bad(where, f"'{key}' is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.bad(where, f"'{key}' must be a number (got {value!r})")
            return None
        return float(value)

    def mapping(self, node: Any, where: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            self.bad(where, f"must be a mapping (got {type(node).__name__})")
            return {}
        return node

    def items(self, node: Any, where: str) -> list[Any]:
        if node is None:
            return []
        if not isinstance(node, list):
            self.bad(where, f"must be a list (got {type(node).__name__})")
            return []
        return node


def _expr(c: _Checker, node: Any, where: str) -> Expr | None:
    node = c.mapping(node, where)
    if "condition" in node:
        cond = c.mapping(node["condition"], f"{where}.condition")
        comparator = c.text(cond, "comparator", where)
        if comparator and comparator not in COMPARATORS:
            c.bad(where, f"comparator '{comparator}' is not one of {', '.join(COMPARATORS)}")
        raw = cond.get("value", [])
        values = tuple(raw) if isinstance(raw, list) else (raw,)
        if comparator not in ("MISSING", "NOTMISSING") and not values:
            c.bad(where, f"comparator {comparator} needs a 'value'")
        if comparator in ("EQ", "NE", "GT", "GE", "LT", "LE") and len(values) > 1:
            c.bad(where, f"comparator {comparator} takes one value (got {len(values)}); use IN or NOTIN")
        return Condition(c.text(cond, "dataset", where), c.text(cond, "variable", where), comparator, values)
    if "compoundExpression" in node:
        comp = c.mapping(node["compoundExpression"], f"{where}.compoundExpression")
        op = c.text(comp, "logicalOperator", where)
        if op not in LOGICAL:
            c.bad(where, f"logicalOperator '{op}' is not one of {', '.join(LOGICAL)}")
        parts = [
            _expr(c, p, f"{where}.whereClauses[{i}]") for i, p in enumerate(c.items(comp.get("whereClauses"), where))
        ]
        kept = tuple(p for p in parts if p is not None)
        if not kept or (op == "NOT" and len(kept) != 1):
            c.bad(where, "a compound expression needs where clauses (NOT exactly one)")
        return Compound(op, kept)
    if "where" in node:
        try:
            parsed = parse_expression(node["where"], file=str(c.path), line=0, where=where)
        except SpecError as exc:
            c.problems.extend(exc.messages)
            return None
        return Where(c.text(node, "dataset", where), parsed)
    c.bad(where, "needs 'condition', 'compoundExpression' or 'where' (with its 'dataset')")
    return None


def _published(c: _Checker, node: Any, where: str, criteria: dict[str, Criterion], docs: dict[str, Any]) -> Published:
    node = c.mapping(node, f"{where}.published")
    crit = c.text(node, "criterion", f"{where}.published")
    if crit and crit not in criteria:
        c.bad(f"{where}.published", f"criterion '{crit}' is not defined under 'criteria' ({', '.join(criteria)})")
    source = c.text(node, "source", f"{where}.published")
    if source and source not in docs:
        c.bad(f"{where}.published", f"source '{source}' is not a referenceDocuments id ({', '.join(docs)})")
    value = c.number(node, "value", f"{where}.published")
    return Published(value if value is not None else float("nan"), crit, source, c.text(node, "location", where, False))


def _analysis(c: _Checker, node: Any, i: int, spec: dict[str, Any]) -> Analysis | None:
    node = c.mapping(node, f"analyses[{i}]")
    aid = c.text(node, "id", f"analyses[{i}]")
    where = f"analyses[{i}] ({aid})"
    method = c.text(node, "method", where)
    if method not in METHODS:
        c.bad(where, f"method '{method}' is not one of {', '.join(METHODS)}")
    sets, subsets, params = spec["sets"], spec["subsets"], spec["parameters"]
    a_set = node.get("analysisSet")
    if method in ("count", "proportion", "summary") and a_set not in sets:
        c.bad(where, f"analysisSet '{a_set}' is not defined under 'analysisSets' ({', '.join(sets)})")
    for key in ("dataSubset", "denominator"):
        if node.get(key) is not None and node[key] not in subsets:
            c.bad(where, f"{key} '{node[key]}' is not defined under 'dataSubsets'")
    records = c.mapping(node.get("records", {}), f"{where}.records")
    rec_subsets = tuple(str(s) for s in c.items(records.get("dataSubsets"), f"{where}.records.dataSubsets"))
    for s in rec_subsets:
        if s not in subsets:
            c.bad(where, f"records subset '{s}' is not defined under 'dataSubsets'")
    if method in ("count", "proportion") and node.get("dataSubset") is None and not rec_subsets:
        c.bad(where, f"method {method} needs 'dataSubset' or 'records'")
    windows = spec["windows"]
    window = records.get("window")
    also = tuple(str(w) for w in c.items(records.get("alsoWindows"), f"{where}.records.alsoWindows"))
    if rec_subsets and window is None:
        c.bad(where, f"records needs 'window' (one of {', '.join(windows) or 'the windows, none defined'}): an end "
                     "point counting records states the time window it counts in")  # fmt: skip
    for w in ([str(window)] if window is not None else []) + list(also):
        if w not in windows:
            c.bad(where, f"window '{w}' is not defined under 'windows' ({', '.join(windows)})")
    if rec_subsets and a_set is None:
        c.bad(where, "records needs 'analysisSet': an end point counting records names its population")
    operation = node.get("operation")
    if method == "summary" and (operation not in SUMMARY_OPERATIONS or not node.get("variable")):
        c.bad(where, f"method summary needs 'variable' and 'operation' (one of {', '.join(SUMMARY_OPERATIONS)})")
    value_kind = str(node.get("value", "count"))
    if value_kind not in ("count", "proportion"):
        c.bad(where, f"value '{value_kind}' must be count or proportion")
    param = node.get("parameter")
    if method in SURVIVAL and param not in params:
        c.bad(where, f"parameter '{param}' is not defined under 'parameters' ({', '.join(params)})")
    at = c.number(node, "at", where, required=method == "km_rate")
    group_node = c.mapping(node.get("groupBy", {}), f"{where}.groupBy")
    group_var = group_node.get("variable")
    if method == "logrank" and not group_var:
        c.bad(where, "method logrank needs groupBy.variable")
    groups: list[Group] = []
    for j, g in enumerate(c.items(group_node.get("groups"), f"{where}.groupBy.groups")):
        g = c.mapping(g, f"{where}.groupBy.groups[{j}]")
        gwhere = f"{where}.groupBy.groups[{j}]"
        pub = _published(c, g["published"], gwhere, spec["criteria"], spec["docs"]) if "published" in g else None
        groups.append(
            Group(c.text(g, "id", gwhere), c.text(g, "value", gwhere), c.text(g, "label", gwhere, False), pub)
        )
    published = _published(c, node["published"], where, spec["criteria"], spec["docs"]) if "published" in node else None
    ae_row = {str(k): str(v) for k, v in c.mapping(node.get("adverseEventRow", {}), where).items()}
    return Analysis(
        id=aid,
        name=c.text(node, "name", where),
        description=c.text(node, "description", where, False),
        method=method,
        analysis_set=a_set,
        data_subset=node.get("dataSubset"),
        denominator=node.get("denominator"),
        records_dataset=records.get("dataset"),
        records_subsets=rec_subsets,
        window=None if window is None else str(window),
        also_windows=also,
        variable=node.get("variable"),
        operation=operation,
        unit=str(node.get("unit", "")),
        value_kind=value_kind,
        parameter=param,
        at=at,
        group_variable=group_var,
        groups=tuple(groups),
        published=published,
        ae_row=ae_row,
    )


def _flow(
    c: _Checker, node: Any, sets: dict[str, AnalysisSet], subsets: dict[str, Expr]
) -> tuple[tuple[FlowStepSpec, ...], tuple[tuple[tuple[str, bool], ...], ...], str]:
    node = c.mapping(node, "patientFlow")
    steps: list[FlowStepSpec] = []
    for i, s in enumerate(c.items(node.get("steps"), "patientFlow.steps")):
        s = c.mapping(s, f"patientFlow.steps[{i}]")
        where = f"patientFlow.steps[{i}]"
        a_set, sub = s.get("analysisSet"), s.get("dataSubset")
        if a_set not in sets:
            c.bad(where, f"analysisSet '{a_set}' is not defined under 'analysisSets'")
        if sub is not None and sub not in subsets:
            c.bad(where, f"dataSubset '{sub}' is not defined under 'dataSubsets'")
        steps.append(
            FlowStepSpec(
                c.text(s, "id", where),
                c.text(s, "label", where),
                str(a_set),
                sub,
                s.get("of"),
                str(s.get("ofLabel", s.get("of") or "")),
            )
        )
    ids = {s.id for s in steps}
    for s in steps:
        if s.of is not None and s.of not in ids:
            c.bad("patientFlow.steps", f"step '{s.id}': of '{s.of}' is not a step")
    rows: list[tuple[tuple[str, bool], ...]] = []
    for i, row in enumerate(c.items(node.get("rows"), "patientFlow.rows")):
        boxes: list[tuple[str, bool]] = []
        for box in c.items(row, f"patientFlow.rows[{i}]"):
            key, side = (str(box.get("step")), bool(box.get("side"))) if isinstance(box, dict) else (str(box), False)
            if key not in ids:
                c.bad(f"patientFlow.rows[{i}]", f"'{key}' is not a step")
            boxes.append((key, side))
        rows.append(tuple(boxes))
    return tuple(steps), tuple(rows), str(node.get("note", ""))


def _adverse_events(c: _Checker, node: Any, sets: dict[str, AnalysisSet]) -> AeSpec:
    node = c.mapping(node, "adverseEvents")
    where = "adverseEvents"
    if node.get("analysisSet") not in sets:
        c.bad(where, f"analysisSet '{node.get('analysisSet')}' is not defined under 'analysisSets'")
    sections = []
    for i, s in enumerate(c.items(node.get("sections"), f"{where}.sections")):
        s = c.mapping(s, f"{where}.sections[{i}]")
        sw = f"{where}.sections[{i}]"
        variables = tuple(str(v) for v in c.items(s.get("variables"), sw))
        if not variables and not s.get("label"):
            c.bad(sw, "needs 'variables' (row labels) or 'label' (one row over every record)")
        over = s.get("collapseOver")
        sections.append(
            AeSection(
                c.text(s, "id", sw),
                c.text(s, "title", sw),
                c.text(s, "column", sw),
                str(s.get("label", "")),
                variables,
                tuple(str(v) for v in c.items(s.get("fallback"), sw)),
                int(over) if isinstance(over, int) else None,
            )
        )
    grades = tuple(int(g) for g in c.items(node.get("grades"), f"{where}.grades"))
    return AeSpec(
        c.text(node, "dataset", where),
        str(node.get("analysisSet")),
        c.text(node, "subject", where),
        c.text(node, "grade", where),
        grades,
        tuple(int(g) for g in c.items(node.get("highlight"), where)),
        str(node.get("note", "")),
        tuple(sections),
    )


def parse_analysis_spec(doc: Any, path: Path) -> AnalysisSpec:
    """The spec from its parsed YAML; every problem in one :class:`SpecError`."""
    c = _Checker(path)
    doc = c.mapping(doc, "top level")
    event = c.mapping(doc.get("reportingEvent", {}), "reportingEvent")
    docs = {
        str(d.get("id")): {k: str(v) for k, v in d.items()}
        for d in c.items(doc.get("referenceDocuments"), "referenceDocuments")
        if isinstance(d, dict)
    }
    units: dict[str, Unit] = {}
    for uid, u in c.mapping(doc.get("units", {}), "units").items():
        u = c.mapping(u, f"units.{uid}")
        div = c.number(u, "divisor", f"units.{uid}")
        if div is not None and div <= 0:
            c.bad(f"units.{uid}", "divisor must be positive")
        units[str(uid)] = Unit(str(uid), c.text(u, "from", f"units.{uid}"), div or 1.0, str(u.get("label", uid)))
    sets: dict[str, AnalysisSet] = {}
    for i, s in enumerate(c.items(doc.get("analysisSets"), "analysisSets")):
        s = c.mapping(s, f"analysisSets[{i}]")
        where = f"analysisSets[{i}]"
        cond = _expr(c, {"condition": s["condition"]}, where) if "condition" in s else None
        sets[str(s.get("id"))] = AnalysisSet(
            c.text(s, "id", where), c.text(s, "label", where), c.text(s, "dataset", where), cond
        )
    subsets: dict[str, Expr] = {}
    for sid, s in c.mapping(doc.get("dataSubsets", {}), "dataSubsets").items():
        e = _expr(c, s, f"dataSubsets.{sid}")
        if e is not None:
            subsets[str(sid)] = e
    criteria: dict[str, Criterion] = {}
    for cid, cr in c.mapping(doc.get("criteria", {}), "criteria").items():
        cr = c.mapping(cr, f"criteria.{cid}")
        criteria[str(cid)] = Criterion(
            str(cid),
            c.text(cr, "label", f"criteria.{cid}"),
            c.number(cr, "tolerance", f"criteria.{cid}", False),
            c.number(cr, "alpha", f"criteria.{cid}", False),
        )
    params: dict[str, Parameter] = {}
    for pid, p in c.mapping(doc.get("parameters", {}), "parameters").items():
        p = c.mapping(p, f"parameters.{pid}")
        where = f"parameters.{pid}"
        unit = c.text(p, "unit", where)
        if unit and unit not in units:
            c.bad(where, f"unit '{unit}' is not defined under 'units'")
        params[str(pid)] = Parameter(
            str(pid),
            c.text(p, "dataset", where),
            c.text(p, "paramcd", where),
            c.text(p, "label", where),
            c.text(p, "time", where),
            c.text(p, "censor", where),
            unit,
            str(p.get("xlabel", "")),
        )
    windows: dict[str, Window] = {}
    for wid, w in c.mapping(doc.get("windows", {}), "windows").items():
        w = c.mapping(w, f"windows.{wid}")
        wsubs = tuple(str(x) for x in c.items(w.get("dataSubsets"), f"windows.{wid}.dataSubsets"))
        for x in wsubs:
            if x not in subsets:
                c.bad(f"windows.{wid}", f"data subset '{x}' is not defined under 'dataSubsets'")
        windows[str(wid)] = Window(str(wid), c.text(w, "label", f"windows.{wid}"), wsubs)
    ctx = {"sets": sets, "subsets": subsets, "parameters": params, "criteria": criteria, "docs": docs,
           "windows": windows}
    analyses = [a for i, n in enumerate(c.items(doc.get("analyses"), "analyses")) if (a := _analysis(c, n, i, ctx))]
    if not analyses:
        c.bad("analyses", "no end points are defined")
    keys = [a.id for a in analyses] + [g.id for a in analyses for g in a.groups]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        c.bad("analyses", f"ids used more than once: {', '.join(dupes)}")
    by_id = {a.id: a for a in analyses}
    figures: list[Figure] = []
    for i, f in enumerate(c.items(doc.get("figures"), "figures")):
        f = c.mapping(f, f"figures[{i}]")
        where = f"figures[{i}]"
        if f.get("parameter") not in params:
            c.bad(where, f"parameter '{f.get('parameter')}' is not defined under 'parameters'")
        gb = f.get("groupBy")
        if gb is not None and (gb not in by_id or not by_id[gb].group_variable):
            c.bad(where, f"groupBy '{gb}' is not an analysis with groupBy")
        annotate = tuple(str(k) for k in c.items(f.get("annotate"), where))
        for k in annotate:
            if k not in keys:
                c.bad(where, f"annotate: '{k}' is not an end point id")
        ref = c.mapping(f.get("reference", {}), where)
        tail = c.number(f, "tailAtRisk", where, False)
        if tail is not None and (tail < 0 or tail != int(tail)):
            c.bad(where, f"tailAtRisk must be a whole number >= 0, not {tail:g}")
        figures.append(
            Figure(
                c.text(f, "id", where),
                c.text(f, "title", where),
                str(f.get("caption", f.get("title"))),
                str(f.get("parameter")),
                annotate,
                gb,
                c.number(ref, "time", where, False),
                c.number(ref, "survival", where, False),
                3 if tail is None or tail < 0 else int(tail),
            )
        )
    steps, rows, note = _flow(c, doc["patientFlow"], sets, subsets) if "patientFlow" in doc else ((), (), "")
    ae = _adverse_events(c, doc["adverseEvents"], sets) if "adverseEvents" in doc else None
    if c.problems:
        raise SpecError(c.problems)
    return AnalysisSpec(
        path=path,
        event_id=str(event.get("id", "")),
        event_name=str(event.get("name", "")),
        title=str(event.get("title", "End points recomputed from ADaM")),
        documents=docs,
        units=units,
        analysis_sets=sets,
        subsets=subsets,
        criteria=criteria,
        analyses=tuple(analyses),
        parameters=params,
        figures=tuple(figures),
        flow_steps=steps,
        flow_rows=rows,
        flow_note=note,
        adverse_events=ae,
        windows=windows,
    )


def analysis_spec_path(folder: Path | None = None) -> Path:
    from converter.paths import published_facts

    return (folder / SPEC_NAME) if folder is not None else published_facts()


def load_analysis_spec(path: Path | None = None) -> AnalysisSpec:
    """``mappings/analysis/endpoints.yaml`` (or ``path``): a clear :class:`SpecError` when missing or invalid."""
    target = path or analysis_spec_path()
    if target.is_dir():
        target = target / SPEC_NAME
    if not target.is_file():
        raise SpecError(
            [
                f"{target}: no analysis spec: `inoconv report` needs the end points, populations and "
                f"published values as mappings/analysis/{SPEC_NAME} (see INOCONV_MAPPINGS)"
            ]
        )
    doc = strip_lines(load_yaml_lines(target))  # the specs' loader: safe, alias expansion bounded, no controls
    return parse_analysis_spec(doc, target)
