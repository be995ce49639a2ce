"""The trial's published figures (``published.yaml``) and the comparison of each recomputed end point with them.

Criteria, as ``published.yaml`` states them for a synthetic cohort: counts (and ages) must match exactly;
survival medians within +-1 month and survival rates within +-0.05. Two figures need a criterion of their own:
the MRD-negative rate among responders is published as a whole percentage (82%), so it must round to within one
percentage point; the log-rank p across salvage lines (0.03) cannot be reproduced to the digit by a synthetic
cohort, so the test must reach the same conclusion (p < 0.05).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from converter.paths import published_facts
from converter.report.endpoints import Endpoints

MEDIAN_TOLERANCE = 1.0  # months
RATE_TOLERANCE = 0.05
PERCENT_TOLERANCE = 0.01
SIGNIFICANCE = 0.05

# end point key -> (path in published.yaml, criterion)
TARGETS: dict[str, tuple[str, str]] = {
    "treated": ("counts.treated", "exact"),
    "female": ("counts.female", "exact"),
    "male": ("counts.male", "exact"),
    "age_median": ("age_years.median", "exact"),
    "age_min": ("age_years.min", "exact"),
    "age_max": ("age_years.max", "exact"),
    "overall_response": ("counts.overall_response", "exact"),
    "complete_response": ("counts.complete_response", "exact"),
    "mrd_negative_among_responders": ("rates.mrd_negative_among_responders", "percent"),
    "asct": ("counts.asct", "exact"),
    "grade34_thrombocytopenia_prolonged": ("counts.grade34_thrombocytopenia_prolonged", "exact"),
    "grade34_infection": ("counts.grade34_infection", "exact"),
    "grade34_hyperbilirubinemia": ("counts.grade34_hyperbilirubinemia", "exact"),
    "vod": ("counts.vod", "exact"),
    "os_median": ("survival.os_median", "median"),
    "os_1y": ("survival.os_1y", "rate"),
    "rfs_median": ("survival.rfs_median", "median"),
    "rfs_1y": ("survival.rfs_1y", "rate"),
    "os_1y_salvage_1": ("survival.os_1y_by_salvage.salvage_1", "rate"),
    "os_1y_salvage_2": ("survival.os_1y_by_salvage.salvage_2", "rate"),
    "os_1y_salvage_3_plus": ("survival.os_1y_by_salvage.salvage_3_plus", "rate"),
    "os_by_salvage_logrank_p": ("survival.os_by_salvage_logrank_p", "significant"),
    "median_followup": ("survival.median_followup", "median"),
}
CRITERIA = {
    "exact": "exact",
    "percent": f"+-{PERCENT_TOLERANCE:g} (published as a whole percentage)",
    "median": f"+-{MEDIAN_TOLERANCE:g} month",
    "rate": f"+-{RATE_TOLERANCE:g}",
    "significant": f"same conclusion (p < {SIGNIFICANCE:g})",
}


@dataclass(frozen=True)
class Comparison:
    key: str
    label: str
    measured: float | None
    published: float
    criterion: str
    within: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_published(path: Path | None = None) -> dict[str, Any]:
    with (path or published_facts()).open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict):
        raise ValueError(f"{path or published_facts()}: not a mapping")
    return doc


def lookup(doc: dict[str, Any], dotted: str) -> float | None:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, int | float) else None


def within(measured: float | None, published: float, criterion: str) -> bool:
    if measured is None:
        return False
    if criterion == "exact":
        return measured == published
    if criterion == "significant":
        return (measured < SIGNIFICANCE) == (published < SIGNIFICANCE)
    tol = {"percent": PERCENT_TOLERANCE, "median": MEDIAN_TOLERANCE, "rate": RATE_TOLERANCE}[criterion]
    return abs(measured - published) <= tol + 1e-9


def compare(endpoints: Endpoints, published: dict[str, Any]) -> list[Comparison]:
    """One comparison per end point the publication reports (figures it does not state are left out)."""
    out: list[Comparison] = []
    for ep in endpoints.items:
        target = TARGETS.get(ep.key)
        if target is None:
            continue
        path, criterion = target
        value = lookup(published, path)
        if value is None:
            continue
        ok = within(ep.value, value, criterion)
        out.append(Comparison(ep.key, ep.label, ep.value, value, CRITERIA[criterion], ok))
    return out
