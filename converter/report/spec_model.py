"""The analysis spec's vocabulary and types (what :mod:`converter.report.spec` reads ``endpoints.yaml`` into):
the methods, comparators and logical operators it accepts, and the frozen dataclasses of populations, subsets,
analyses, parameters, figures, the patient flow and the adverse-event table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter.spec import Expr as RowExpr

SPEC_NAME = "endpoints.yaml"
METHODS = ("count", "proportion", "summary", "km_median", "km_rate", "logrank", "followup_km")
SUMMARY_OPERATIONS = ("median", "min", "max", "mean")
COMPARATORS = ("EQ", "NE", "GT", "GE", "LT", "LE", "IN", "NOTIN", "MISSING", "NOTMISSING")
LOGICAL = ("AND", "OR", "NOT")
SURVIVAL = ("km_median", "km_rate", "logrank", "followup_km")


@dataclass(frozen=True)
class Condition:
    """An ARS WhereClauseCondition."""

    dataset: str
    variable: str
    comparator: str
    value: tuple[Any, ...] = ()

    def text(self) -> str:
        if self.comparator in ("MISSING", "NOTMISSING"):
            return f"{self.variable} {'is missing' if self.comparator == 'MISSING' else 'is present'}"
        vals = ", ".join(str(v) for v in self.value)
        return f"{self.variable} {self.comparator} {vals if len(self.value) == 1 else '(' + vals + ')'}"


@dataclass(frozen=True)
class Compound:
    """An ARS compound expression over where clauses."""

    operator: str
    parts: tuple[Condition | Compound | Where, ...]

    def text(self) -> str:
        if self.operator == "NOT":
            return f"NOT ({self.parts[0].text()})"
        return f" {self.operator} ".join(p.text() for p in self.parts)


@dataclass(frozen=True)
class Where:
    """A condition in the spec expression language (:mod:`converter.spec`), on one dataset's rows."""

    dataset: str
    expression: RowExpr

    def text(self) -> str:
        return self.expression.text


Expr = Condition | Compound | Where


@dataclass(frozen=True)
class AnalysisSet:
    id: str
    label: str
    dataset: str
    condition: Expr | None = None


@dataclass(frozen=True)
class Criterion:
    id: str
    label: str
    tolerance: float | None = None
    alpha: float | None = None


@dataclass(frozen=True)
class Published:
    value: float
    criterion: str
    source: str
    location: str = ""


@dataclass(frozen=True)
class Group:
    id: str
    value: str
    label: str
    published: Published | None = None


@dataclass(frozen=True)
class Window:
    """A time window over the records of a `records` end point: `dataSubsets` the records inside it (none: every
    record, any time on study). An end point counting records names its window; `alsoWindows` are shown beside."""

    id: str
    label: str
    subsets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Analysis:
    id: str
    name: str
    description: str
    method: str
    analysis_set: str | None = None
    data_subset: str | None = None
    denominator: str | None = None
    records_dataset: str | None = None
    records_subsets: tuple[str, ...] = ()
    window: str | None = None  # records end points: the window the figure counts in (a `windows` id)
    also_windows: tuple[str, ...] = ()  # the same count in these windows, shown beside (not compared)
    variable: str | None = None
    operation: str | None = None
    unit: str = ""
    value_kind: str = "count"  # proportion: which figure is the end point
    parameter: str | None = None
    at: float | None = None
    group_variable: str | None = None
    groups: tuple[Group, ...] = ()
    published: Published | None = None
    ae_row: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unit:
    id: str
    source: str
    divisor: float
    label: str


@dataclass(frozen=True)
class Parameter:
    id: str
    dataset: str
    paramcd: str
    label: str
    time: str
    censor: str
    unit: str
    xlabel: str = ""


@dataclass(frozen=True)
class Figure:
    id: str
    title: str
    caption: str
    parameter: str
    annotate: tuple[str, ...]
    group_by: str | None = None  # an analysis whose groupBy splits the curve
    reference_time: float | None = None
    reference_survival: float | None = None
    tail_at_risk: int = 3  # the curve is dashed where fewer than this many remain at risk (0: never)


@dataclass(frozen=True)
class FlowStepSpec:
    id: str
    label: str
    analysis_set: str
    data_subset: str | None
    of: str | None
    of_label: str


@dataclass(frozen=True)
class AeSection:
    id: str
    title: str
    column: str
    label: str = ""  # a single row over every record (no variables)
    variables: tuple[str, ...] = ()
    fallback: tuple[str, ...] = ()
    collapse_over: int | None = None


@dataclass(frozen=True)
class AeSpec:
    dataset: str
    analysis_set: str
    subject: str
    grade: str
    grades: tuple[int, ...]
    highlight: tuple[int, ...]
    note: str
    sections: tuple[AeSection, ...]


@dataclass(frozen=True)
class AnalysisSpec:
    path: Path
    event_id: str
    event_name: str
    title: str
    documents: dict[str, dict[str, str]]
    units: dict[str, Unit]
    analysis_sets: dict[str, AnalysisSet]
    subsets: dict[str, Expr]
    criteria: dict[str, Criterion]
    analyses: tuple[Analysis, ...]
    parameters: dict[str, Parameter]
    figures: tuple[Figure, ...]
    flow_steps: tuple[FlowStepSpec, ...] = ()
    flow_rows: tuple[tuple[tuple[str, bool], ...], ...] = ()
    flow_note: str = ""
    adverse_events: AeSpec | None = None
    windows: dict[str, Window] = field(default_factory=dict)

    def analysis(self, key: str) -> Analysis:
        for a in self.analyses:
            if a.id == key:
                return a
        raise KeyError(key)
