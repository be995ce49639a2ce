"""The end-point table as Markdown and JSON, and the Kaplan-Meier plots, each figure beside its published value.

Files (written atomically into the output folder): ``report.md``, ``report.json``, ``km_os.png``,
``km_os_by_salvage.png``, ``km_rfs.png``. Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from lifelines import KaplanMeierFitter
from lifelines.plotting import add_at_risk_counts

from converter.io.atomic import atomic_write
from converter.report.endpoints import Endpoint, Endpoints, SurvivalFit
from converter.report.published import Comparison

REPORT_FILES = ("report.md", "report.json", "km_os.png", "km_os_by_salvage.png", "km_rfs.png")


def _num(x: float | None, digits: int) -> str:
    return "NR" if x is None else f"{x:.{digits}f}"


def format_value(ep: Endpoint) -> str:
    """The measured figure as a reader expects it: count with % and exact CI, rate, median with CI, p."""
    lo, hi = ep.ci if ep.ci is not None else (None, None)
    if ep.kind == "count" and ep.value is not None and ep.n and ep.ci is not None:
        return f"{int(ep.value)}/{ep.n} ({100 * ep.value / ep.n:.1f}%; 95% CI {_num(lo and 100 * lo, 1)}-" \
               f"{_num(hi and 100 * hi, 1)}%)"  # fmt: skip
    if ep.kind == "count" and ep.value is not None:
        return str(int(ep.value))
    if ep.kind == "years":
        return _num(ep.value, 0 if ep.value is not None and float(ep.value).is_integer() else 1)
    if ep.kind == "rate":
        txt = _num(ep.value, 3)
        return txt + (f" (95% CI {_num(lo, 3)}-{_num(hi, 3)})" if ep.ci is not None else "")
    if ep.kind == "median":
        return f"{_num(ep.value, 1)} (95% CI {_num(lo, 1)}-{_num(hi, 1)})"
    if ep.kind == "pvalue":
        return _num(ep.value, 4)
    return _num(ep.value, 3)


def _published_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def markdown(endpoints: Endpoints, comparisons: Sequence[Comparison], source: str = "") -> str:
    by_key = {c.key: c for c in comparisons}
    ok = sum(c.within for c in comparisons)
    lines = [
        "# End points of NCT01371630 recomputed from ADaM",
        "",
        f"Source: {source}" if source else "",
        "",
        f"{ok} of {len(comparisons)} published figures reproduced within tolerance.",
        "",
        "| End point | Measured | n | Events | Published | Criterion | Within |",
        "|---|---|---:|---:|---:|---|:---:|",
    ]
    for ep in endpoints.items:
        c = by_key.get(ep.key)
        pub = _published_text(c.published) if c else "-"
        crit = c.criterion if c else "-"
        status = ("yes" if c.within else "**NO**") if c else "-"
        note = f" ({ep.note})" if ep.note and ep.kind != "count" else ""
        lines.append(f"| {ep.label} | {format_value(ep)}{note} | {ep.n if ep.n is not None else ''} | "
                     f"{ep.events if ep.events is not None else ''} | {pub} | {crit} | {status} |")  # fmt: skip
    lines += [
        "",
        "Counts: exact (Clopper-Pearson) 95% CIs. Survival: Kaplan-Meier (lifelines), months = days / 30.4375, "
        "log(-log) 95% CIs; median follow-up by reverse Kaplan-Meier on overall survival. NR: not reached.",
        "",
    ]
    return "\n".join(line for line in lines if line is not None)


def report_json(endpoints: Endpoints, comparisons: Sequence[Comparison], source: str = "") -> dict[str, Any]:
    return {
        "source": source,
        "endpoints": [e.as_dict() for e in endpoints.items],
        "comparisons": [c.as_dict() for c in comparisons],
        "all_within": all(c.within for c in comparisons),
    }


def _annotation(keys: Sequence[str], endpoints: Endpoints, comparisons: Sequence[Comparison]) -> str:
    by_key = {c.key: c for c in comparisons}
    rows = []
    for key in keys:
        ep = endpoints.get(key)
        c = by_key.get(key)
        pub = f"published {_published_text(c.published)}, {'within' if c.within else 'OUTSIDE'} {c.criterion}" \
            if c else "not published"  # fmt: skip
        rows.append(f"{ep.label}: {format_value(ep)}  [{pub}]")
    return "\n".join(rows)


def _png(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def km_plot(fit: SurvivalFit, path: Path, annotation: str, xlabel: str = "Months", by_group: bool = False) -> None:
    fig, ax = plt.subplots(figsize=(8.5, 6.0))
    fitters: list[KaplanMeierFitter] = []
    groups = fit.groups.items() if by_group else [(fit.label, (fit.months, fit.event))]
    for name, (months, event) in groups:
        label = f"Salvage {name}" if by_group else str(name)
        kmf = KaplanMeierFitter(label=f"{label} (n={len(months)})").fit(months, event_observed=event)
        kmf.plot_survival_function(ax=ax, ci_show=not by_group, show_censors=True)
        fitters.append(kmf)
    ax.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax.axvline(12, color="grey", lw=0.6, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Probability")
    lines = annotation.count("\n") + 1
    ax.set_title(fit.label, pad=10 + 11 * lines)
    ax.legend(loc="upper right", fontsize=8)
    box = {"boxstyle": "round", "facecolor": "white", "alpha": 0.85}  # above the axes: never over a curve
    ax.text(0.0, 1.015, annotation, transform=ax.transAxes, ha="left", va="bottom", fontsize=7.5, bbox=box)
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"])
    _png(fig, path)


def write_report(
    endpoints: Endpoints, comparisons: Sequence[Comparison], out_dir: Path | str, source: str = ""
) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "report.md", text=True) as fh:
        fh.write(markdown(endpoints, comparisons, source))
    with atomic_write(out / "report.json", text=True) as fh:
        fh.write(json.dumps(report_json(endpoints, comparisons, source), indent=2) + "\n")
    km_plot(endpoints.fits["os"], out / "km_os.png",
            _annotation(["os_median", "os_1y", "median_followup"], endpoints, comparisons))  # fmt: skip
    salvage = [e.key for e in endpoints.items if e.key.startswith("os_1y_salvage_")]
    km_plot(endpoints.fits["os_by_salvage"], out / "km_os_by_salvage.png",
            _annotation([*salvage, "os_by_salvage_logrank_p"], endpoints, comparisons), by_group=True)  # fmt: skip
    km_plot(endpoints.fits["rfs"], out / "km_rfs.png", _annotation(["rfs_median", "rfs_1y"], endpoints, comparisons),
            xlabel="Months from first response")  # fmt: skip
    return [out / name for name in REPORT_FILES]
