"""Each recomputed end point against its published value, as the analysis spec states both.

The published value, its criterion and its source (a ``referenceDocuments`` id and a location) are data in
``mappings/analysis/endpoints.yaml``. A criterion is one of three kinds, by what the spec gives it: ``alpha``
(the test must reach the same conclusion, p < alpha), ``tolerance`` (|measured - published| <= tolerance) or
neither (exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from converter.report.endpoints import Endpoints
from converter.report.spec import AnalysisSpec, Criterion, Published, load_analysis_spec


@dataclass(frozen=True)
class Comparison:
    key: str
    label: str
    measured: float | None
    published: float
    criterion: str
    within: bool
    source: str = ""
    location: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def published_values(spec: AnalysisSpec) -> dict[str, Published]:
    """End point key -> its published value (end points the publication does not state are absent)."""
    out: dict[str, Published] = {}
    for a in spec.analyses:
        if a.published is not None:
            out[a.id] = a.published
        for g in a.groups:
            if g.published is not None:
                out[g.id] = g.published
    return out


def published_value(spec: AnalysisSpec, key: str) -> float | None:
    pub = published_values(spec).get(key)
    return None if pub is None else pub.value


def within(
    measured: float | None,
    published: float,
    criterion: str | Criterion,
    criteria: Mapping[str, Criterion] | None = None,
) -> bool:
    """Whether ``measured`` meets ``criterion`` (a Criterion, or a key of ``criteria``, default the spec's)."""
    if isinstance(criterion, str):
        criterion = (criteria if criteria is not None else load_analysis_spec().criteria)[criterion]
    if measured is None:
        return False
    if criterion.alpha is not None:
        return (measured < criterion.alpha) == (published < criterion.alpha)
    if criterion.tolerance is not None:
        return abs(measured - published) <= criterion.tolerance + 1e-9
    return measured == published


def compare(endpoints: Endpoints, spec: AnalysisSpec | None = None) -> list[Comparison]:
    """One comparison per end point the publication reports, in end-point order."""
    spec = spec or endpoints.spec or load_analysis_spec()
    pubs = published_values(spec)
    out: list[Comparison] = []
    for ep in endpoints.items:
        pub = pubs.get(ep.key)
        if pub is None:
            continue
        crit = spec.criteria[pub.criterion]
        doc = spec.documents.get(pub.source, {})
        out.append(
            Comparison(
                ep.key,
                ep.label,
                ep.value,
                pub.value,
                crit.label,
                within(ep.value, pub.value, crit),
                source=doc.get("name", pub.source),
                location=pub.location,
            )
        )
    return out
