"""The end points the analysis spec defines, computed from the ADaM datasets (column-wise; nothing about a trial).

Each analysis of :mod:`converter.report.spec` gives one :class:`Endpoint` (or one per group of a ``groupBy``):

* ``count``: subjects of the analysis set in the data subset; n = the analysis set;
* ``proportion``: the same with its exact (Clopper-Pearson) 95% CI; the end point is the count or the proportion
  (``value``); ``denominator`` narrows n; ``records`` counts subjects with at least one matching record of
  another dataset (e.g. ADAE) among the analysis set;
* ``summary``: median / min / max / mean of a variable over the analysis set;
* ``km_median``, ``km_rate``, ``followup_km`` (reverse Kaplan-Meier), ``logrank``: on a time-to-event parameter,
  time converted by the spec's unit (e.g. days / 30.4375 = months), event = censor variable 0.

Conditions are evaluated a column at a time; a variable the spec names but the data lack is an
:class:`InputError` naming the dataset, the variable and the condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import InputError, SpecError, problem
from converter.report.spec import Analysis, AnalysisSpec, Compound, Expr, Parameter, Where
from converter.report.stats import clopper_pearson, kaplan_meier, logrank
from converter.spec import evaluate_mask

MISSING_GROUP = "missing"


@dataclass(frozen=True)
class Endpoint:
    """One figure: a count (with its rate and exact CI), a rate, a median, a summary statistic or a p-value."""

    key: str
    label: str
    kind: str  # "count" | "rate" | "median" | "pvalue" | "summary"
    value: float | None
    n: int | None = None  # denominator (counts, rates) or subjects (survival)
    events: int | None = None  # events behind a survival figure
    ci: tuple[float | None, float | None] | None = None
    note: str = ""
    unit: str = ""
    analysis: str = ""  # the analysis id in the spec (a group's end point: the grouped analysis)
    group: str = ""  # the group's value, for an end point of a groupBy
    extra: dict[str, float | None] = field(default_factory=dict)  # further operation results (e.g. chi-square)
    window: str = ""  # a records end point: the label of the time window it counts in
    also: dict[str, int] = field(default_factory=dict)  # the same count in other windows (label -> subjects)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return d


@dataclass
class SurvivalFit:
    """A time-to-event parameter's data, kept for the plots: times (in the spec's unit), events, grouping columns."""

    label: str
    months: np.ndarray
    event: np.ndarray
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    unit_label: str = ""


@dataclass
class Endpoints:
    items: list[Endpoint]
    fits: dict[str, SurvivalFit]
    spec: AnalysisSpec | None = None
    study: str = ""

    def get(self, key: str) -> Endpoint:
        for e in self.items:
            if e.key == key:
                return e
        raise KeyError(key)


# --- conditions ----------------------------------------------------------------------------------------------------
def _missing_variable(dataset: str, variable: str, why: str) -> InputError:
    return InputError(
        problem(
            dataset,
            "",
            variable,
            "",
            "analysis spec",
            f"{dataset} has no variable {variable}, which the analysis spec needs ({why})",
        )
    )


def _numeric(values: tuple[Any, ...]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def condition_mask(expr: Expr, df: pd.DataFrame, dataset: str) -> np.ndarray:
    """Rows of ``df`` (dataset ``dataset``) meeting the ARS condition or compound expression."""
    if isinstance(expr, Compound):
        parts = [condition_mask(p, df, dataset) for p in expr.parts]
        if expr.operator == "NOT":
            return ~parts[0]
        combine = np.logical_and if expr.operator == "AND" else np.logical_or
        return np.asarray(combine.reduce(parts), dtype=bool)
    if isinstance(expr, Where):
        if expr.dataset and expr.dataset.upper() != dataset.upper():
            raise SpecError([f"condition {expr.text()} is on {expr.dataset} but is applied to {dataset}"])
        absent = sorted(expr.expression.names - set(df.columns))
        if absent:
            raise _missing_variable(dataset, absent[0], expr.text())
        return evaluate_mask(expr.expression, df)
    if expr.dataset and expr.dataset.upper() != dataset.upper():
        raise SpecError([f"condition {expr.text()} is on {expr.dataset} but is applied to {dataset}"])
    if expr.variable not in df.columns:
        raise _missing_variable(dataset, expr.variable, expr.text())
    col = df[expr.variable]
    op, values = expr.comparator, expr.value
    if op in ("MISSING", "NOTMISSING"):
        present = (col.notna() & col.astype(str).str.strip().ne("")).to_numpy(dtype=bool)
        return present if op == "NOTMISSING" else ~present
    if _numeric(values) or op in ("GT", "GE", "LT", "LE"):
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        vals = np.asarray([float(v) for v in values])
        with np.errstate(invalid="ignore"):
            if op in ("EQ", "IN", "NE", "NOTIN"):
                hit = np.isin(num, vals)
                return ~hit if op in ("NE", "NOTIN") else hit
            v = vals[0]
            return np.asarray({"GT": num > v, "GE": num >= v, "LT": num < v, "LE": num <= v}[op], dtype=bool)
    hit = col.astype(object).isin([str(v) for v in values]).to_numpy(dtype=bool)
    return ~hit if op in ("NE", "NOTIN") else hit


def _dataset(adam: Mapping[str, pd.DataFrame], name: str, why: str) -> pd.DataFrame:
    df = adam.get(name.upper())
    if df is None:
        found = ", ".join(sorted(adam)) or "none"
        raise InputError(
            problem(
                name,
                "",
                "",
                "",
                "analysis spec",
                f"the ADaM package has no {name} dataset, which {why} needs (found: {found})",
            )
        )
    return df


def population(spec: AnalysisSpec, adam: Mapping[str, pd.DataFrame], set_id: str) -> pd.DataFrame:
    """The subject-level rows of an analysis set."""
    a_set = spec.analysis_sets[set_id]
    df = _dataset(adam, a_set.dataset, f"analysis set {set_id}")
    return df if a_set.condition is None else df[condition_mask(a_set.condition, df, a_set.dataset)]


def subset_mask(spec: AnalysisSpec, subset: str, df: pd.DataFrame, dataset: str) -> np.ndarray:
    return condition_mask(spec.subsets[subset], df, dataset)


# --- methods -------------------------------------------------------------------------------------------------------
def _subject_analysis(spec: AnalysisSpec, a: Analysis, adam: Mapping[str, pd.DataFrame]) -> Endpoint:
    assert a.analysis_set is not None
    pop = population(spec, adam, a.analysis_set)
    dataset = spec.analysis_sets[a.analysis_set].dataset
    common: dict[str, Any] = {"key": a.id, "label": a.name, "analysis": a.id}
    if a.method == "summary":
        assert a.variable is not None
        if a.variable not in pop.columns:
            raise _missing_variable(dataset, a.variable, f"end point {a.id}")
        x = pd.to_numeric(pop[a.variable], errors="coerce")
        value = float(getattr(x, str(a.operation))())
        return Endpoint(kind="summary", value=value if np.isfinite(value) else None, n=len(pop), unit=a.unit, **common)
    denom = pop[subset_mask(spec, a.denominator, pop, dataset)] if a.denominator else pop
    hit = np.ones(len(denom), dtype=bool)
    if a.data_subset:
        hit &= subset_mask(spec, a.data_subset, denom, dataset)
    extra: dict[str, Any] = {}
    if a.records_subsets:
        rec_name = str(a.records_dataset)
        rec = _dataset(adam, rec_name, f"end point {a.id}")
        keep = np.logical_and.reduce([subset_mask(spec, s, rec, rec_name) for s in a.records_subsets])
        keep = np.asarray(keep, dtype=bool)

        def with_records(window: str) -> np.ndarray:
            inside = keep.copy()
            for s in spec.windows[window].subsets:
                inside &= np.asarray(subset_mask(spec, s, rec, rec_name), dtype=bool)
            subjects = rec["USUBJID"].to_numpy(dtype=object)[inside]
            return denom["USUBJID"].isin(subjects).to_numpy(dtype=bool)

        if a.window is not None:
            hit &= with_records(a.window)
            extra["window"] = spec.windows[a.window].label
        else:
            hit &= denom["USUBJID"].isin(rec["USUBJID"].to_numpy(dtype=object)[keep]).to_numpy(dtype=bool)
        base = np.ones(len(denom), dtype=bool)  # the subjects the figure counts from, before the records
        if a.data_subset:
            base &= subset_mask(spec, a.data_subset, denom, dataset)
        extra["also"] = {spec.windows[w].label: int((base & with_records(w)).sum()) for w in a.also_windows}
    k, n = int(hit.sum()), len(denom)
    common = {**common, **extra}
    if a.method == "count":
        return Endpoint(kind="count", value=float(k), n=n, **common)
    ci = clopper_pearson(k, n)
    if a.value_kind == "proportion":
        return Endpoint(kind="rate", value=k / n if n else None, n=n, ci=ci, note=f"{k}/{n}", **common)
    return Endpoint(kind="count", value=float(k), n=n, ci=ci, **common)


def _tte(spec: AnalysisSpec, p: Parameter, adam: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    df = _dataset(adam, p.dataset, f"parameter {p.id}")
    for var in ("PARAMCD", p.time, p.censor):
        if var not in df.columns:
            raise _missing_variable(p.dataset, var, f"parameter {p.id}")
    part = df[df["PARAMCD"].astype(object).eq(p.paramcd).to_numpy(dtype=bool)]
    if part.empty:
        raise InputError(
            problem(
                p.dataset,
                "",
                "PARAMCD",
                p.paramcd,
                "analysis spec",
                f"{p.dataset} has no PARAMCD {p.paramcd} (parameter {p.id} of the analysis spec)",
            )
        )
    return part


def survival_data(spec: AnalysisSpec, p: Parameter, part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Times in the parameter's unit and events (censor variable 0)."""
    unit = spec.units.get(p.unit)
    t = pd.to_numeric(part[p.time], errors="coerce").to_numpy(dtype=float) / (unit.divisor if unit else 1.0)
    event = (pd.to_numeric(part[p.censor], errors="coerce").to_numpy(dtype=float) == 0).astype(int)
    bad = np.isnan(t)
    if bad.any():
        ids = part.loc[bad, "USUBJID"].astype(str).tolist() if "USUBJID" in part.columns else []
        raise InputError(
            [
                problem(
                    p.dataset,
                    f"USUBJID={i} PARAMCD={p.paramcd}",
                    p.time,
                    "",
                    "analysis spec",
                    f"{p.time} is missing: the time to event is needed for parameter {p.id}",
                )
                for i in ids[:20]
            ]
            or [problem(p.dataset, "", p.time, "", "analysis spec", "missing")]
        )
    return t, event


def group_labels(a: Analysis, part: pd.DataFrame, dataset: str) -> tuple[np.ndarray, list[tuple[str, str, str]]]:
    """Per row its group value, and the groups in order: (value, end point key, label). Listed groups first, then
    values the spec does not list (missing values as ``missing``)."""
    var = str(a.group_variable)
    if var not in part.columns:
        raise _missing_variable(dataset, var, f"groupBy of {a.id}")
    col = part[var].astype(object)
    values = col.where(col.notna(), MISSING_GROUP).astype(str).to_numpy(dtype=object)
    present = set(values)
    groups = [(g.value, g.id, g.label or g.value) for g in a.groups if g.value in present]
    listed = {g.value for g in a.groups}
    for v in sorted(present - listed):
        groups.append((v, f"{a.id}_{v}".replace("+", "_plus"), v))
    return values, groups


def _survival_analysis(spec: AnalysisSpec, a: Analysis, adam: Mapping[str, pd.DataFrame]) -> list[Endpoint]:
    p = spec.parameters[str(a.parameter)]
    part = _tte(spec, p, adam)
    if a.analysis_set:
        pop = population(spec, adam, a.analysis_set)
        part = part[part["USUBJID"].isin(pop["USUBJID"])]
    t, e = survival_data(spec, p, part)
    unit = spec.units.get(p.unit)
    unit_name = unit.id if unit else ""
    if a.method == "logrank":
        values, _ = group_labels(a, part, p.dataset)
        test = logrank(t, e, values)
        return [
            Endpoint(
                a.id,
                a.name,
                "pvalue",
                test.p_value,
                n=len(t),
                events=int(e.sum()),
                analysis=a.id,
                extra={"chisq": test.statistic, "df": float(test.dof)},
            )
        ]
    if a.method == "followup_km":
        med, ci = kaplan_meier(t, 1 - e).median()
        return [
            Endpoint(
                a.id, a.name, "median", med, n=len(t), events=int((1 - e).sum()), ci=ci, unit=unit_name, analysis=a.id
            )
        ]
    subsets: list[tuple[str, str, str, np.ndarray]] = []
    if a.group_variable:
        values, groups = group_labels(a, part, p.dataset)
        subsets = [(key, f"{a.name}, {label}", v, values == v) for v, key, label in groups]
    else:
        subsets = [(a.id, a.name, "", np.ones(len(t), dtype=bool))]
    out: list[Endpoint] = []
    for key, label, value, sel in subsets:
        km = kaplan_meier(t[sel], e[sel])
        n, ev = int(sel.sum()), int(e[sel].sum())
        if a.method == "km_median":
            med, ci = km.median()
            out.append(
                Endpoint(key, label, "median", med, n=n, events=ev, ci=ci, unit=unit_name, analysis=a.id, group=value)
            )
        else:
            rate, ci = km.at(float(a.at or 0.0))
            out.append(Endpoint(key, label, "rate", rate, n=n, events=ev, ci=ci, analysis=a.id, group=value))
    return out


def _fits(spec: AnalysisSpec, adam: Mapping[str, pd.DataFrame]) -> dict[str, SurvivalFit]:
    """The data behind each figure (its parameter; split by its grouping analysis)."""
    fits: dict[str, SurvivalFit] = {}
    for fig in spec.figures:
        p = spec.parameters[fig.parameter]
        part = _tte(spec, p, adam)
        t, e = survival_data(spec, p, part)
        unit = spec.units.get(p.unit)
        fit = SurvivalFit(fig.title, t, e, unit_label=p.xlabel or (unit.label if unit else ""))
        if fig.group_by:
            values, groups = group_labels(spec.analysis(fig.group_by), part, p.dataset)
            for v, _key, label in groups:
                sel = values == v
                fit.groups[label] = (t[sel], e[sel])
        fits[fig.id] = fit
    return fits


def _study(adam: Mapping[str, pd.DataFrame]) -> str:
    for df in adam.values():
        if "STUDYID" in df.columns and df["STUDYID"].notna().any():
            return str(df["STUDYID"].dropna().iloc[0])
    return ""


def compute_endpoints(adam: Mapping[str, pd.DataFrame], spec: AnalysisSpec | None = None) -> Endpoints:
    """Every end point of the analysis spec (default: ``mappings/analysis/endpoints.yaml``), in spec order."""
    if spec is None:
        from converter.report.spec import load_analysis_spec

        spec = load_analysis_spec()
    frames = {str(k).upper(): v for k, v in adam.items()}
    items: list[Endpoint] = []
    for a in spec.analyses:
        if a.method in ("count", "proportion", "summary"):
            items.append(_subject_analysis(spec, a, frames))
        else:
            items += _survival_analysis(spec, a, frames)
    return Endpoints(items=items, fits=_fits(spec, frames), spec=spec, study=_study(frames))
