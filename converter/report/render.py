"""The end-point table as Markdown and JSON, and the Kaplan-Meier figures, each end point beside its published value.

Files (written atomically into the output folder): ``report.md``, ``report.json`` (the end points, the
comparisons and an ARS-shaped ``reportingEvent``) and, per figure of the analysis spec, ``<id>.svg``,
``<id>.png`` (300 dpi, encoded by :mod:`.png`) and ``<id>.pdf``. matplotlib is imported only when a figure is drawn
(its Agg canvas, without pyplot).
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converter.io.atomic import atomic_write
from converter.report.ars import reporting_event
from converter.report.endpoints import Endpoint, Endpoints, SurvivalFit
from converter.report.published import Comparison
from converter.report.spec import Figure
from converter.report.stats import KaplanMeier, kaplan_meier

FIGURE_FORMATS = ("png", "svg", "pdf")
PNG_DPI = 300
COLOURS = ("#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#a16207", "#0f766e")


def report_files(endpoints: Endpoints) -> tuple[str, ...]:
    """The files :func:`write_report` writes, in order."""
    figs = endpoints.spec.figures if endpoints.spec is not None else ()
    return ("report.md", "report.json", *(f"{f.id}.{ext}" for f in figs for ext in FIGURE_FORMATS))


def _num(x: float | None, digits: int) -> str:
    return "NR" if x is None else f"{x:.{digits}f}"


def format_value(ep: Endpoint) -> str:
    """The measured figure as a reader expects it: count with % and exact CI, rate, median with CI, p."""
    lo, hi = ep.ci if ep.ci is not None else (None, None)
    if ep.kind == "count" and ep.value is not None and ep.n and ep.ci is not None:
        return (
            f"{int(ep.value)}/{ep.n} ({100 * ep.value / ep.n:.1f}%; 95% CI {_num(lo and 100 * lo, 1)}-"
            f"{_num(hi and 100 * hi, 1)}%)"
        )
    if ep.kind == "count" and ep.value is not None:
        return str(int(ep.value))
    if ep.kind in ("summary", "years"):
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


def title(endpoints: Endpoints) -> str:
    template = endpoints.spec.title if endpoints.spec is not None else "End points of {study} recomputed from ADaM"
    return template.replace("{study}", endpoints.study or "the study").strip()


def definitions(endpoints: Endpoints) -> list[tuple[str, str, str]]:
    """(analysis id, name, definition) of each analysis, in spec order."""
    if endpoints.spec is None:
        return []
    return [(a.id, a.name, a.description) for a in endpoints.spec.analyses if a.description]


def markdown(endpoints: Endpoints, comparisons: Sequence[Comparison], source: str = "") -> str:
    by_key = {c.key: c for c in comparisons}
    ok = sum(c.within for c in comparisons)
    lines = [
        f"# {title(endpoints)}",
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
        if ep.window:  # a records end point: its window, and the same count in the other windows it names
            note += f" (window: {ep.window}" + "".join(f"; {label}: {k}" for label, k in ep.also.items()) + ")"
        lines.append(
            f"| {ep.label} | {format_value(ep)}{note} | {ep.n if ep.n is not None else ''} | "
            f"{ep.events if ep.events is not None else ''} | {pub} | {crit} | {status} |"
        )
    lines += ["", "## Definitions", ""]
    lines += [f"- **{name}** (`{aid}`): {text}" for aid, name, text in definitions(endpoints)]
    sources = list(dict.fromkeys(c.source for c in comparisons if c.source))
    if sources:
        lines += ["", "## Sources of the published values", ""]
        lines += [f"- {src}" for src in sources]
    lines += [
        "",
        "Counts: exact (Clopper-Pearson) 95% CIs. Survival: Kaplan-Meier, log(-log) 95% CIs; median follow-up by "
        "reverse Kaplan-Meier. NR: not reached.",
        "",
    ]
    return "\n".join(lines)


def report_json(endpoints: Endpoints, comparisons: Sequence[Comparison], source: str = "") -> dict[str, Any]:
    formatted = {ep.key: format_value(ep) for ep in endpoints.items}
    return {
        "source": source,
        "study": endpoints.study,
        "title": title(endpoints),
        "endpoints": [e.as_dict() for e in endpoints.items],
        "definitions": [{"analysis": a, "name": n, "definition": d} for a, n, d in definitions(endpoints)],
        "comparisons": [c.as_dict() for c in comparisons],
        "all_within": all(c.within for c in comparisons),
        "reportingEvent": reporting_event(endpoints, formatted),
    }


def annotation(keys: Sequence[str], endpoints: Endpoints, comparisons: Sequence[Comparison]) -> str:
    by_key = {c.key: c for c in comparisons}
    rows = []
    for key in keys:
        try:
            ep = endpoints.get(key)
        except KeyError:
            continue
        c = by_key.get(key)
        pub = (
            f"published {_published_text(c.published)}, {'within' if c.within else 'OUTSIDE'} {c.criterion}"
            if c
            else "not published"
        )
        rows.append(f"{ep.label}: {format_value(ep)}  [{pub}]")
    return "\n".join(rows)


# --- Kaplan-Meier figures -------------------------------------------------------------------------------------------
def _new_figure(width: float, height: float) -> Any:
    """A figure on the Agg canvas of :mod:`.png` (no pyplot: nothing keeps the figure once it is dropped)."""
    import matplotlib
    from matplotlib.figure import Figure as MplFigure

    from converter.report.png import PngCanvas

    matplotlib.rcParams.update(
        {
            "svg.hashsalt": "inoconv",
            "font.size": 10,
            "axes.titlesize": 12,
            "axes.labelsize": 10.5,
            "xtick.labelsize": 9.5,
            "ytick.labelsize": 9.5,
            "legend.fontsize": 9,
        }
    )
    fig = MplFigure(figsize=(width, height))
    PngCanvas(fig)
    return fig


def _ticks(tmax: float) -> np.ndarray:
    for step in (1, 2, 3, 6, 12, 24, 36, 60, 120, 240, 365):
        if tmax / step <= 10:
            return np.arange(0.0, tmax + step, step)
    return np.linspace(0.0, tmax, 8)


def tail_start(km: KaplanMeier, min_at_risk: int) -> int:
    """Index of the first time of ``km`` after which fewer than ``min_at_risk`` subjects remain at risk (the curve's
    tail, drawn dashed from there); the last index when that never happens or ``min_at_risk`` is 0."""
    remaining = km.at_risk - km.events - km.censored
    few = np.flatnonzero((remaining < min_at_risk) & (remaining > 0)) if min_at_risk > 0 else np.empty(0, int)
    return int(few[0]) if few.size else km.times.size - 1


def km_figure(fit: SurvivalFit, fig_spec: Figure, note: str) -> Any:
    """The Kaplan-Meier figure: curves (one per group), censor marks, the 95% band of a single curve, reference
    lines, the annotation above the axes and the numbers at risk in a table aligned with the x ticks; each curve is
    dashed (and its counts in the table grey) where fewer than the figure's ``tail_at_risk`` remain at risk."""
    groups = list(fit.groups.items()) or [(fit.label, (fit.months, fit.event))]
    tmax = float(max((t.max() for _, (t, _) in groups if t.size), default=1.0))
    ticks = _ticks(tmax)
    note_lines = note.count("\n") + 1 if note else 0
    head_in = 0.45 + (0.19 * note_lines + 0.2 if note else 0.0)  # title and annotation above the axes
    height = 4.6 + 0.7 + 0.28 * len(groups) + head_in
    fig = _new_figure(7.5, height)
    fig.text(0.02, 1 - 0.12 / height, fig_spec.title, ha="left", va="top", fontsize=12.5, fontweight="bold")
    if note:
        fig.text(
            0.02,
            1 - 0.5 / height,
            note,
            ha="left",
            va="top",
            fontsize=8.5,
            linespacing=1.35,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#f8fafc", "edgecolor": "#d5dae0"},
        )
    grid = fig.add_gridspec(
        2,
        1,
        height_ratios=[4.6, 0.45 + 0.28 * len(groups)],
        hspace=0.38,
        top=1 - (head_in + 0.1) / height,
        bottom=0.04,
        left=0.16,
        right=0.97,
    )
    ax = fig.add_subplot(grid[0])
    risk = fig.add_subplot(grid[1], sharex=ax)
    dashed = False
    for i, (name, (t, e)) in enumerate(groups):
        colour = COLOURS[i % len(COLOURS)]
        km = kaplan_meier(t, e)
        label = f"{name} (n={len(t)})"
        tail = tail_start(km, fig_spec.tail_at_risk)
        ax.step(km.times[: tail + 1], km.survival[: tail + 1], where="post", color=colour, lw=1.6, label=label)
        if tail < km.times.size - 1:  # the curve goes on dashed where fewer than tail_at_risk remain at risk
            ax.step(km.times[tail:], km.survival[tail:], where="post", color=colour, lw=1.3, ls=(0, (4, 2.5)))
            dashed = True
        if len(groups) == 1:
            ax.fill_between(
                km.times, km.lower, km.upper, step="post", color=colour, alpha=0.15, lw=0, label="95% CI (log(-log))"
            )
        cens = np.sort(np.asarray(t, dtype=float)[np.asarray(e) == 0])
        idx = np.searchsorted(km.times, cens, side="right") - 1
        ax.plot(cens, km.survival[np.clip(idx, 0, None)], ls="none", marker="|", ms=7, mew=1.2, color=colour)
        counts = km.at_risk_at(ticks)
        y = len(groups) - 1 - i
        for x, n in zip(ticks, counts, strict=True):
            few = 0 < n < fig_spec.tail_at_risk
            style = {"color": "#6b7280", "fontstyle": "italic"} if few else {"color": colour}
            risk.text(x, y, str(int(n)), ha="center", va="center", fontsize=9, **style)
    if fig_spec.reference_survival is not None:
        ax.axhline(fig_spec.reference_survival, color="grey", lw=0.7, ls=":")
    if fig_spec.reference_time is not None:
        ax.axvline(fig_spec.reference_time, color="grey", lw=0.7, ls=":")
    ax.set_xlim(0, ticks[-1])
    ax.set_xticks(ticks)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("Probability")
    ax.set_xlabel(fit.unit_label or "Time")
    ax.grid(axis="y", color="#e5e7eb", lw=0.6)
    if dashed:  # a legend entry says what the dashes mean
        ax.plot([], [], color="#6b7280", lw=1.3, ls=(0, (4, 2.5)), label=f"fewer than {fig_spec.tail_at_risk} at risk")
    ax.legend(loc="upper right", frameon=True, framealpha=0.9)
    risk.set_ylim(-0.6, len(groups) - 0.4)
    risk.set_yticks(range(len(groups)))
    risk.set_yticklabels([str(name) for name, _ in reversed(groups)], fontsize=9)
    risk.xaxis.set_visible(False)  # the numbers sit at the curve's x ticks (shared x); no tick of its own is made
    risk.tick_params(axis="y", length=0, pad=16)
    for side in ("top", "right", "bottom", "left"):
        risk.spines[side].set_visible(False)
    risk.set_title("Number at risk", loc="left", fontsize=9.5, pad=4)
    return fig


def warm_figures() -> None:
    """Import what :func:`write_figures` uses and draw a small figure in each format (fonts found and loaded,
    each backend imported): start-up work that ``inoconv run`` does beside another stage."""
    import scipy.special  # noqa: F401 - the estimates' quantiles

    fig = _new_figure(1.0, 1.0)
    ax = fig.add_subplot()
    ax.step([0.0, 1.0], [1.0, 0.5], where="post")
    ax.set_title("Number at risk", fontweight="bold")
    ax.text(0.5, 0.5, "1", fontstyle="italic")
    for fmt in FIGURE_FORMATS:
        fig.savefig(io.BytesIO(), format=fmt, dpi=20 if fmt == "png" else None)


def _save(fig: Any, path: Path, fmt: str, bbox: Any) -> None:
    buf = io.BytesIO()
    meta: dict[str, Any] = {"svg": {"Date": None}, "pdf": {"CreationDate": None, "ModDate": None}}.get(fmt, {})
    fig.savefig(buf, format=fmt, dpi=PNG_DPI if fmt == "png" else None, bbox_inches=bbox, metadata=meta)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def write_figures(endpoints: Endpoints, comparisons: Sequence[Comparison], out: Path) -> list[Path]:
    if endpoints.spec is None:
        return []
    written: list[Path] = []
    measure: Any = None
    for fig_spec in endpoints.spec.figures:
        fit = endpoints.fits.get(fig_spec.id)
        if fit is None:
            continue
        fig = km_figure(fit, fig_spec, annotation(fig_spec.annotate, endpoints, comparisons))
        if measure is None:  # text extents depend on the dpi, not on the canvas: one renderer (and its cache of
            from matplotlib.backends.backend_agg import RendererAgg  # text metrics) measures every figure

            measure = RendererAgg(1, 1, fig.dpi)  # type: ignore[no-untyped-call]
        bbox = fig.get_tightbbox(measure).padded(0.1)  # once, for every format (at the figure's dpi, as before)
        for ext in FIGURE_FORMATS:
            _save(fig, out / f"{fig_spec.id}.{ext}", ext, bbox)
            written.append(out / f"{fig_spec.id}.{ext}")
    return written


def write_report(
    endpoints: Endpoints, comparisons: Sequence[Comparison], out_dir: Path | str, source: str = ""
) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "report.md", text=True) as fh:
        fh.write(markdown(endpoints, comparisons, source))
    with atomic_write(out / "report.json", text=True) as fh:
        fh.write(json.dumps(report_json(endpoints, comparisons, source), indent=2) + "\n")
    return [out / "report.md", out / "report.json", *write_figures(endpoints, comparisons, out)]
