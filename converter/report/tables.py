"""The patient flow and the adverse-event table of the reviewer's page, as the analysis spec defines them.

* :func:`patient_flow`: one :class:`FlowStep` per ``patientFlow.steps`` entry: subjects of its analysis set in its
  data subset, with the step whose count is its percentage's denominator.
* :func:`adverse_event_table`: subjects by worst grade per row of each ``adverseEvents.sections`` entry (rows:
  the values of the section's variables, or one row over every record), over the section's analysis set. Beside
  "worst grade 3-4" (the subject's highest grade is in the highlighted band) the table counts "any grade 3-4
  event" (at least one event in the band), the definition the grade 3-4 end points use; the two differ by the
  subjects whose worst event is above the band.
* :func:`reconcile`: each end point tied to an AE-table row (``adverseEventRow``), with both counts and both
  definitions, so a reviewer sees why they differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import InputError
from converter.report.endpoints import population, subset_mask
from converter.report.spec import AeSection, AnalysisSpec, load_analysis_spec


@dataclass(frozen=True)
class FlowStep:
    key: str
    label: str
    n: int
    of: int | None = None  # denominator for the percentage
    of_label: str = ""


@dataclass(frozen=True)
class AeRow:
    label: str
    by_grade: dict[int, int]  # subjects per worst grade
    any: int  # subjects with any event of the row
    band: int  # subjects with at least one event in the highlighted grade band


@dataclass
class AeTable:
    """Subjects by worst grade: per section (id, title, column header, rows), over ``n`` subjects."""

    n: int
    grades: tuple[int, ...] = (1, 2, 3, 4, 5)
    highlight: tuple[int, ...] = (3, 4)
    note: str = ""
    sections: list[tuple[str, str, str, list[AeRow]]] = field(default_factory=list)

    def row(self, section: str, label: str) -> AeRow | None:
        for sid, _title, _col, rows in self.sections:
            if sid == section:
                return next((r for r in rows if r.label == label), None)
        return None


def patient_flow(adsl: pd.DataFrame, spec: AnalysisSpec | None = None) -> list[FlowStep]:
    """The CONSORT-style counts of the spec's ``patientFlow`` (subject-level rows, one per subject)."""
    spec = spec or load_analysis_spec()
    counts: dict[str, int] = {}
    out: list[FlowStep] = []
    for step in spec.flow_steps:
        a_set = spec.analysis_sets[step.analysis_set]
        pop = population(spec, {a_set.dataset.upper(): adsl}, step.analysis_set)
        n = len(pop) if step.data_subset is None else int(subset_mask(spec, step.data_subset, pop, a_set.dataset).sum())
        counts[step.id] = n
        out.append(FlowStep(step.id, step.label, n, counts.get(step.of) if step.of else None, step.of_label))
    return out


def _by_worst_grade(
    ae: pd.DataFrame, key: np.ndarray, subject: str, grade: np.ndarray, grades: Sequence[int], band: Sequence[int]
) -> list[AeRow]:
    frame = pd.DataFrame({"key": key, "subj": ae[subject].to_numpy(), "grade": grade})
    frame = frame[frame["key"].notna() & frame["key"].astype(str).str.strip().ne("")]
    frame["band"] = frame["grade"].isin(list(band))
    per = frame.groupby(["key", "subj"], sort=True).agg(worst=("grade", "max"), band=("band", "any")).reset_index()
    by_key = per.groupby("key", sort=True)
    subjects, in_band = by_key.size(), by_key["band"].sum()
    worst = {g: (per["worst"] == g).groupby(per["key"], sort=True).sum().to_numpy() for g in grades}
    rows = [
        AeRow(str(label), {g: int(worst[g][i]) for g in grades}, int(subjects.iloc[i]), int(in_band.iloc[i]))
        for i, label in enumerate(subjects.index)
    ]
    rows.sort(key=lambda r: (-r.any, r.label))
    return rows


def _section_keys(ae: pd.DataFrame, section: AeSection) -> list[np.ndarray]:
    if not section.variables:
        return [np.full(len(ae), section.label, dtype=object)]
    present = [v for v in section.variables if v in ae.columns]
    if not present:
        present = [v for v in section.fallback if v in ae.columns][:1]
    return [ae[v].astype(object).to_numpy() for v in present]


def adverse_event_table(
    adae: pd.DataFrame, adsl: pd.DataFrame | None = None, spec: AnalysisSpec | None = None
) -> AeTable:
    """Subjects by worst grade per row of each section of the spec's ``adverseEvents``, over its analysis set
    (without ADSL, over the subjects in the AE dataset)."""
    spec = spec or load_analysis_spec()
    ae_spec = spec.adverse_events
    if ae_spec is None:
        return AeTable(n=0)
    subject = ae_spec.subject
    if subject not in adae.columns:
        return AeTable(n=0, note=f"{ae_spec.dataset} has no {subject}: no adverse-event table.")
    if adsl is not None and subject in adsl.columns:
        a_set = spec.analysis_sets[ae_spec.analysis_set]
        pop = population(spec, {a_set.dataset.upper(): adsl}, ae_spec.analysis_set)
        safety = set(pop[subject].dropna())
        ae = adae[adae[subject].isin(safety)]
        n = len(safety)
    else:
        ae, n = adae, int(adae[subject].nunique())
    grade = (
        pd.to_numeric(ae[ae_spec.grade], errors="coerce").to_numpy(dtype=float)
        if ae_spec.grade in ae.columns
        else np.full(len(ae), np.nan)
    )
    table = AeTable(n=n, grades=ae_spec.grades, highlight=ae_spec.highlight, note=ae_spec.note)
    for section in ae_spec.sections:
        keys = _section_keys(ae, section)
        if not keys:
            continue
        long = pd.concat([ae] * len(keys), ignore_index=True) if len(keys) > 1 else ae
        key = np.concatenate(keys) if len(keys) > 1 else keys[0]
        g = np.tile(grade, len(keys))
        rows = _by_worst_grade(long, key, subject, g, ae_spec.grades, ae_spec.highlight)
        title = section.title
        table.sections.append((section.id, title, section.column, rows))
    return table


@dataclass(frozen=True)
class Reconciliation:
    key: str
    label: str
    endpoint_value: int | None
    endpoint_definition: str
    table_section: str
    table_row: str
    worst_in_band: int
    any_in_band: int
    any_grade: int
    column: str  # which table figure the end point corresponds to: "band" or "any"


def reconcile(report: Mapping[str, Any], table: AeTable, spec: AnalysisSpec) -> list[Reconciliation]:
    """End points tied to an AE-table row, with the row's counts under both definitions."""
    values = {e.get("key"): e.get("value") for e in report.get("endpoints", []) if isinstance(e, Mapping)}
    out: list[Reconciliation] = []
    for a in spec.analyses:
        section, label = a.ae_row.get("section"), a.ae_row.get("row")
        if not section or not label:
            continue
        row = table.row(section, label)
        if row is None:
            continue
        worst = sum(row.by_grade.get(g, 0) for g in table.highlight)
        v = values.get(a.id)
        title = next((t for sid, t, _c, _r in table.sections if sid == section), section)
        out.append(
            Reconciliation(
                a.id,
                a.name,
                int(v) if isinstance(v, int | float) else None,
                a.description,
                title,
                label,
                worst,
                row.band,
                row.any,
                a.ae_row.get("column", "band"),
            )
        )
    return out


def flow_or_none(adsl: pd.DataFrame | None, spec: AnalysisSpec) -> tuple[list[FlowStep] | None, str]:
    """The flow, or None and why (a variable the spec needs is not in ADSL)."""
    if adsl is None:
        return None, "ADSL was not available: no patient flow."
    try:
        return patient_flow(adsl, spec), ""
    except InputError as exc:
        return None, "; ".join(p.message for p in exc.problems)
