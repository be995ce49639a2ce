"""Calibration: Kaplan-Meier and log-rank as the ADaM stage computes them, and the choice of the outcome draw
whose survival figures meet the model's targets (``calibration`` in simulation.yaml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from converter.records.simulation.cohort import Baseline
from converter.records.simulation.draws import DAYS_PER_MONTH, BArr, FArr, IArr
from converter.records.simulation.model import strata
from converter.records.simulation.outcome import Outcome, draw_outcome

__all__ = ["calibrated_outcome", "km", "logrank_p"]


def km(time: FArr, event: BArr) -> tuple[FArr, FArr]:
    """Kaplan-Meier: distinct times and the survival just after each (as lifelines computes it)."""
    if len(time) == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(time, kind="stable")
    ts, es = time[order], event[order].astype(np.float64)
    uniq, first = np.unique(ts, return_index=True)
    d = np.add.reduceat(es, first)
    at_risk = len(ts) - first
    return np.asarray(uniq, dtype=np.float64), np.asarray(np.cumprod(1.0 - d / at_risk), dtype=np.float64)


def logrank_p(time: FArr, event: BArr, group: IArr) -> float:
    """Multi-group log-rank test p-value (chi-square, groups - 1 degrees of freedom)."""
    labels = np.unique(group)
    if len(labels) < 2 or not event.any():
        return 1.0
    ev_t = np.unique(time[event])
    at = np.zeros((len(labels), len(ev_t)))
    dd = np.zeros((len(labels), len(ev_t)))
    for i, lab in enumerate(labels):
        tg = np.sort(time[group == lab])
        te = np.sort(time[(group == lab) & event])
        at[i] = len(tg) - np.searchsorted(tg, ev_t, side="left")
        dd[i] = np.searchsorted(te, ev_t, side="right") - np.searchsorted(te, ev_t, side="left")
    n_t, d_t = at.sum(axis=0), dd.sum(axis=0)
    o_e = (dd - at * d_t / n_t).sum(axis=1)
    f = d_t * (n_t - d_t) / np.maximum(n_t - 1.0, 1.0) / n_t
    share = at / n_t
    v = np.einsum("t,it,jt->ij", f * n_t, share, -share)
    v[np.diag_indices_from(v)] += (f * n_t * share).sum(axis=1)
    k = len(labels) - 1
    try:
        stat = float(o_e[:k] @ np.linalg.solve(v[:k, :k], o_e[:k]))
    except np.linalg.LinAlgError:
        return 1.0
    return float(stats.chi2.sf(stat, k))


def _curve(time: FArr, event: BArr) -> tuple[float, float, float]:
    """Median (curve at 0.5 + 1e-9 and 0.5 - 1e-9: a curve landing exactly on 0.5 depends on rounding) and
    the 12-month value of one Kaplan-Meier curve."""
    t, sv = km(time, event)
    lo, hi = np.flatnonzero(sv <= 0.5 + 1e-9), np.flatnonzero(sv <= 0.5 - 1e-9)
    i = int(np.searchsorted(t, 12.0, side="right")) - 1
    return (
        float(t[lo[0]]) if lo.size else float("inf"),
        float(t[hi[0]]) if hi.size else float("inf"),
        1.0 if i < 0 else float(sv[i]),
    )


def _endpoints(b: Baseline, o: Outcome, P: dict[str, Any], plus: int, with_logrank: bool = True) -> dict[str, float]:
    """The published survival figures of one cohort draw, as the ADaM stage computes them."""
    m = DAYS_PER_MONTH
    S = strata(P)
    t_os = (o.L + plus) / m
    rsp = o.resp
    ev_day = np.where(o.relapsed, o.E, o.D)
    rfs_event = (o.relapsed | o.dead)[rsp]
    t_rfs = (np.where(o.relapsed | o.dead, ev_day, o.last_resp) - o.r + plus)[rsp] / m
    out: dict[str, float] = {}
    for name, (tt, ee) in {"os": (t_os, o.dead), "rfs": (t_rfs, rfs_event), "fu": (t_os, ~o.dead)}.items():
        out[f"{name}_median_lo"], out[f"{name}_median_hi"], out[f"{name}_1y"] = _curve(tt, ee)
    for i, lab in enumerate(S):
        sel = b.stratum == i
        out[f"os_1y_{lab}"] = _curve(t_os[sel], o.dead[sel])[2] if sel.any() else float("nan")
    out["logrank_p"] = logrank_p(t_os, o.dead, b.stratum) if with_logrank else 0.0
    return out


def _miss(e: dict[str, float], P: dict[str, Any], tol: Mapping[str, float]) -> float:
    """How far a draw misses the targets beyond ``tol`` (0 = meets all)."""
    sv = P["targets"]["survival"]

    def over(value: float, target: float, t: float) -> float:
        if not np.isfinite(value):
            return 10.0
        return max(0.0, abs(value - target) - t) / t

    worst = 0.0
    for tag in ("_lo", "_hi"):
        worst += over(e["os_median" + tag], sv["os_median"], tol["median"])
        worst += over(e["rfs_median" + tag], sv["rfs_median"], tol["median"])
        worst += over(e["fu_median" + tag], sv["median_followup"], tol["followup"])
    worst += over(e["os_1y"], sv["os_1y"], tol["rate"])
    worst += over(e["rfs_1y"], sv["rfs_1y"], tol["rate"])
    by_stratum = sv[str(P["calibration"]["stratum_targets"])]
    for lab in strata(P):
        worst += over(e[f"os_1y_{lab}"], by_stratum[lab], tol["rate"])
    worst += max(0.0, e["logrank_p"] - tol["logrank_p_max"]) * 20
    return worst


def calibrated_outcome(b: Baseline, seed: int, P: dict[str, Any]) -> Outcome:
    """The outcome draw kept for ``seed``: the first sub-draw meeting every survival target (see the model's
    ``calibration``), else the closest; outside ``min_n..max_n`` the first draw."""
    cal = P["calibration"]
    tol = {k: float(v) for k, v in cal["tolerance"].items()}
    if not int(cal["min_n"]) <= b.n <= int(cal["max_n"]):
        return draw_outcome(b, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0]))), P)
    best: tuple[float, Outcome] | None = None
    for k in range(int(cal["max_subdraws"])):
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k])))
        o = draw_outcome(b, g, P)
        o.subdraw = k
        miss = _miss(_endpoints(b, o, P, 0, with_logrank=False), P, tol)  # cheap screen first
        if miss == 0.0:
            miss = max(_miss(_endpoints(b, o, P, plus), P, tol) for plus in (0, 1))
            if miss == 0.0:
                return o
        if best is None or miss < best[0]:
            best = (miss, o)
    assert best is not None
    return best[1]
