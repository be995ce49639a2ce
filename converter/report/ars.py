"""``report.json``'s ``reportingEvent``: the analysis spec and its results in the shape of the CDISC Analysis
Results Standard (ARS 1.0): ``analysisSets``, ``dataSubsets``, ``analysisGroupings``, ``methods`` with
``operations``, ``referenceDocuments``, and ``analyses`` whose ``results`` are OperationResults
(``operationId``, ``resultGroups``, ``rawValue``, ``formattedValue``).

Not carried (the spec does not state them, and inventing them would be worse than leaving them out): an
analysis's ``reason`` and ``purpose``, outputs and displays.
"""

from __future__ import annotations

from typing import Any

from converter.report.endpoints import Endpoint, Endpoints
from converter.report.spec import Analysis, AnalysisSpec, Compound, Condition, Expr, Where

# method -> (name, description, [(operation, label, result pattern)])
METHOD_OPERATIONS: dict[str, tuple[str, str, list[tuple[str, str, str]]]] = {
    "count": (
        "Count of subjects",
        "Subjects of the analysis set in the data subset.",
        [("n", "Subjects", "XX"), ("denominator", "Subjects in the analysis set", "XX")],
    ),
    "proportion": (
        "Proportion with exact 95% CI",
        "Subjects in the data subset over the analysis set (or its "
        "denominator subset); two-sided exact (Clopper-Pearson) 95% confidence interval.",
        [
            ("n", "Subjects", "XX"),
            ("denominator", "Denominator", "XX"),
            ("proportion", "Proportion", "X.XXX"),
            ("ci_lower", "95% CI lower", "X.XXX"),
            ("ci_upper", "95% CI upper", "X.XXX"),
        ],
    ),
    "summary": (
        "Summary statistic",
        "A descriptive statistic of a variable over the analysis set.",
        [("value", "Statistic", "XX.X"), ("n", "Subjects", "XX")],
    ),
    "km_median": (
        "Kaplan-Meier median",
        "Product-limit estimate; median = first time the curve is at or below "
        "0.5; 95% CI from the log(-log) (exponential Greenwood) confidence band.",
        [
            ("median", "Median", "XX.X"),
            ("ci_lower", "95% CI lower", "XX.X"),
            ("ci_upper", "95% CI upper", "XX.X"),
            ("subjects", "Subjects", "XX"),
            ("events", "Events", "XX"),
        ],
    ),
    "km_rate": (
        "Kaplan-Meier rate at a time",
        "Product-limit survival at the time, with the log(-log) 95% band.",
        [
            ("survival", "Survival", "X.XXX"),
            ("ci_lower", "95% CI lower", "X.XXX"),
            ("ci_upper", "95% CI upper", "X.XXX"),
            ("subjects", "Subjects", "XX"),
            ("events", "Events", "XX"),
        ],
    ),
    "logrank": (
        "Log-rank test",
        "k-sample log-rank test, chi-square with k - 1 degrees of freedom.",
        [("chisq", "Chi-square", "XX.XX"), ("df", "Degrees of freedom", "X"), ("pvalue", "p-value", "X.XXXX")],
    ),
    "followup_km": (
        "Median follow-up (reverse Kaplan-Meier)",
        "Kaplan-Meier median with the censorings taken as events and the events as censored.",
        [
            ("median", "Median", "XX.X"),
            ("ci_lower", "95% CI lower", "XX.X"),
            ("ci_upper", "95% CI upper", "XX.X"),
            ("subjects", "Subjects", "XX"),
            ("censored", "Censored", "XX"),
        ],
    ),
}


def method_id(method: str) -> str:
    return f"MTH_{method.upper()}"


def _condition(expr: Expr) -> dict[str, Any]:
    if isinstance(expr, Condition):
        cond: dict[str, Any] = {"dataset": expr.dataset, "variable": expr.variable, "comparator": expr.comparator}
        if expr.value:
            cond["value"] = [str(v) for v in expr.value]
        return {"condition": cond}
    if isinstance(expr, Where):  # not an ARS construct: the condition's text, as the spec states it
        return {"condition": {"dataset": expr.dataset, "expression": expr.text()}}
    assert isinstance(expr, Compound)
    return {
        "compoundExpression": {"logicalOperator": expr.operator, "whereClauses": [_condition(p) for p in expr.parts]}
    }


def _raw(x: float | int | None) -> str:
    return "" if x is None else repr(float(x)) if isinstance(x, float) else str(x)


def _results(a: Analysis, items: list[Endpoint], formatted: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    mid = method_id(a.method)
    for ep in items:
        lo, hi = ep.ci if ep.ci is not None else (None, None)
        k = int(ep.value) if ep.kind == "count" and ep.value is not None else None
        per_method: dict[str, dict[str, float | int | None]] = {
            "count": {"n": k, "denominator": ep.n},
            "proportion": {
                "n": k if k is not None else round((ep.value or 0) * (ep.n or 0)),
                "denominator": ep.n,
                "proportion": (k / ep.n if k is not None and ep.n else ep.value),
                "ci_lower": lo,
                "ci_upper": hi,
            },
            "summary": {"value": ep.value, "n": ep.n},
            "km_median": {"median": ep.value, "ci_lower": lo, "ci_upper": hi, "subjects": ep.n, "events": ep.events},
            "km_rate": {"survival": ep.value, "ci_lower": lo, "ci_upper": hi, "subjects": ep.n, "events": ep.events},
            "logrank": {"chisq": ep.extra.get("chisq"), "df": int(ep.extra.get("df") or 0), "pvalue": ep.value},
            "followup_km": {
                "median": ep.value,
                "ci_lower": lo,
                "ci_upper": hi,
                "subjects": ep.n,
                "censored": ep.events,
            },
        }
        values = per_method[a.method]
        groups = [{"groupingId": f"GRP_{a.id}", "groupId": ep.key}] if ep.group else []
        for op, _label, _pattern in METHOD_OPERATIONS[a.method][2]:
            result: dict[str, Any] = {
                "operationId": f"{mid}_{op}",
                "resultGroups": groups,
                "rawValue": _raw(values[op]),
            }
            if op in ("n", "median", "survival", "pvalue", "value", "proportion") and ep.key in formatted:
                result["formattedValue"] = formatted[ep.key]
            out.append(result)
    return out


def reporting_event(endpoints: Endpoints, formatted: dict[str, str]) -> dict[str, Any]:
    """The ARS-shaped ReportingEvent of the spec and the computed end points."""
    spec: AnalysisSpec | None = endpoints.spec
    if spec is None:
        return {}
    by_analysis: dict[str, list[Endpoint]] = {}
    for ep in endpoints.items:
        by_analysis.setdefault(ep.analysis or ep.key, []).append(ep)
    used = sorted({a.method for a in spec.analyses}, key=list(METHOD_OPERATIONS).index)
    methods = [
        {
            "id": method_id(m),
            "name": METHOD_OPERATIONS[m][0],
            "description": METHOD_OPERATIONS[m][1],
            "operations": [
                {"id": f"{method_id(m)}_{op}", "name": op, "label": label, "order": i + 1, "resultPattern": pattern}
                for i, (op, label, pattern) in enumerate(METHOD_OPERATIONS[m][2])
            ],
        }
        for m in used
    ]
    groupings = []
    for a in spec.analyses:
        if not a.group_variable:
            continue
        seen = [ep for ep in by_analysis.get(a.id, []) if ep.group] or []
        groups = [
            {
                "id": ep.key,
                "label": ep.label,
                "order": i + 1,
                "condition": {
                    "dataset": spec.parameters[str(a.parameter)].dataset,
                    "variable": a.group_variable,
                    "comparator": "EQ",
                    "value": [ep.group],
                },
            }
            for i, ep in enumerate(seen)
        ]
        groupings.append(
            {
                "id": f"GRP_{a.id}",
                "label": f"{a.group_variable} groups of {a.id}",
                "groupingVariable": a.group_variable,
                "dataDriven": not a.groups,
                "groups": groups,
            }
        )
    analyses = []
    for a in spec.analyses:
        entry: dict[str, Any] = {
            "id": a.id,
            "name": a.name,
            "description": a.description,
            "methodId": method_id(a.method),
        }
        if a.parameter:
            p = spec.parameters[a.parameter]
            entry.update({"dataset": p.dataset, "variable": p.time, "parameter": p.paramcd})
        elif a.records_dataset:
            entry["dataset"] = a.records_dataset
        elif a.analysis_set:
            entry["dataset"] = spec.analysis_sets[a.analysis_set].dataset
            if a.variable:
                entry["variable"] = a.variable
        if a.analysis_set:
            entry["analysisSetId"] = a.analysis_set
        if a.data_subset or a.records_subsets:
            entry["dataSubsetId"] = a.data_subset or "+".join(a.records_subsets)
        if a.group_variable:
            entry["orderedGroupings"] = [
                {"order": 1, "groupingId": f"GRP_{a.id}", "resultsByGroup": a.method != "logrank"}
            ]
        pubs = [a.published] + [g.published for g in a.groups]
        refs = sorted({(p.source, p.location) for p in pubs if p is not None})
        if refs:
            entry["documentRefs"] = [
                {"referenceDocumentId": src, "pageRefs": [{"refType": "NamedDestination", "pageNames": [loc]}]}
                if loc
                else {"referenceDocumentId": src}
                for src, loc in refs
            ]
        entry["results"] = _results(a, by_analysis.get(a.id, []), formatted)
        analyses.append(entry)
    sets = [
        {
            "id": s.id,
            "label": s.label,
            "level": 1,
            "order": i + 1,
            **(_condition(s.condition) if s.condition is not None else {}),
        }
        for i, s in enumerate(spec.analysis_sets.values())
    ]
    subsets = [
        {"id": sid, "label": e.text(), "level": 1, "order": i + 1, **_condition(e)}
        for i, (sid, e) in enumerate(spec.subsets.items())
    ]
    return {
        "id": spec.event_id,
        "name": spec.event_name,
        "referenceDocuments": [
            {"id": k, "name": v.get("name", k), **({"location": v["location"]} if "location" in v else {})}
            for k, v in spec.documents.items()
        ],
        "analysisSets": sets,
        "dataSubsets": subsets,
        "analysisGroupings": groupings,
        "methods": methods,
        "analyses": analyses,
    }
