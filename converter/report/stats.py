"""The statistics the analysis spec can ask for, exact and column-wise with numpy (no per-subject loops).

* :func:`clopper_pearson`: the exact two-sided binomial confidence interval (beta quantiles).
* :func:`kaplan_meier`: the product-limit estimate on the distinct times (0 first), with the exponential
  Greenwood ("log(-log)") pointwise confidence band; :meth:`KaplanMeier.median` (first time the curve, or a
  band, is at or below 0.5; None when not reached) and :meth:`KaplanMeier.at` (the step function at t, and the
  band's value at the last time <= t).
* :func:`logrank`: the k-group log-rank test (chi-square, k - 1 degrees of freedom).

These reproduce lifelines' ``KaplanMeierFitter`` (``median_survival_time_``, ``median_survival_times`` of the
confidence band, ``survival_function_at_times``) and ``multivariate_logrank_test``; the tests keep lifelines
as the oracle. Only scipy.special is imported (scipy.stats and lifelines cost seconds to import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import betaincinv, chdtrc, ndtri


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval."""
    if n == 0:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, a))  # the beta quantile: scipy.stats.beta.ppf
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - a))
    return lo, hi


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


@dataclass(frozen=True)
class KaplanMeier:
    """The estimate on ``times`` (distinct, ascending, 0 first): survival, band, and the risk table."""

    times: np.ndarray
    survival: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    at_risk: np.ndarray  # subjects at risk just before each time
    events: np.ndarray  # events at each time
    censored: np.ndarray  # censorings at each time

    @staticmethod
    def _first_at_or_below(curve: np.ndarray, times: np.ndarray, q: float) -> float | None:
        hit = np.flatnonzero(curve <= q)
        return float(times[hit[0]]) if hit.size else None

    def median(self) -> tuple[float | None, tuple[float | None, float | None]]:
        """Median (None when not reached) and its 95% CI from the band (None where a bound is not reached)."""
        return (
            self._first_at_or_below(self.survival, self.times, 0.5),
            (
                self._first_at_or_below(self.lower, self.times, 0.5),
                self._first_at_or_below(self.upper, self.times, 0.5),
            ),
        )

    def at(self, t: float) -> tuple[float, tuple[float | None, float | None]]:
        """Survival at ``t`` (the step function's value) and the band's value at the last time <= t."""
        i = int(np.searchsorted(self.times, t, side="right")) - 1
        if i < 0:
            return 1.0, (None, None)
        return float(self.survival[i]), (_finite(float(self.lower[i])), _finite(float(self.upper[i])))

    def at_risk_at(self, ticks: np.ndarray) -> np.ndarray:
        """Subjects still at risk at each tick (time >= tick), as a risk table under a plot counts them."""
        total = int(self.at_risk[0]) if self.at_risk.size else 0
        removed = np.cumsum(self.events + self.censored)
        i = np.searchsorted(self.times, ticks, side="left") - 1  # times strictly before the tick
        return np.where(i >= 0, total - removed[np.clip(i, 0, None)], total).astype(int)


def kaplan_meier(time: np.ndarray, event: np.ndarray, level: float = 0.95) -> KaplanMeier:
    """Product-limit estimate of ``time`` (any unit) with ``event`` 1 (event) or 0 (censored)."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=int)
    if t.size == 0:
        empty = np.zeros(1)
        return KaplanMeier(empty, np.ones(1), np.ones(1), np.ones(1), np.zeros(1), np.zeros(1), np.zeros(1))
    uniq, inv = np.unique(t, return_inverse=True)
    events = np.bincount(inv, weights=e, minlength=uniq.size)
    removed = np.bincount(inv, minlength=uniq.size).astype(float)
    if uniq[0] > 0:  # the curve starts at 1 at time 0
        uniq = np.r_[0.0, uniq]
        events = np.r_[0.0, events]
        removed = np.r_[0.0, removed]
    at_risk = t.size - np.r_[0.0, np.cumsum(removed)[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.cumsum(np.log(at_risk - events) - np.log(at_risk))
        var = events / (at_risk * (at_risk - events))
    var[~np.isfinite(var)] = 0.0
    surv = np.exp(log_s)
    z = float(ndtri(1 - (1 - level) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        v = log_s
        spread = z * np.sqrt(np.cumsum(var)) / v
        lower = np.exp(-np.exp(np.log(-v) - spread))
        upper = np.exp(-np.exp(np.log(-v) + spread))
    lower[np.isnan(lower)] = 1.0
    upper[np.isnan(upper)] = 1.0
    return KaplanMeier(uniq, surv, lower, upper, at_risk, events, removed - events)


@dataclass(frozen=True)
class LogRank:
    statistic: float
    dof: int
    p_value: float


def logrank(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> LogRank:
    """k-sample log-rank test: observed minus expected events per group over the distinct event times."""
    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=int)
    labels, g = np.unique(np.asarray(group).astype(str), return_inverse=True)
    k = labels.size
    if k < 2:
        return LogRank(0.0, 0, 1.0)
    uniq, inv = np.unique(t, return_inverse=True)
    m = uniq.size
    d = np.zeros((m, k))
    r = np.zeros((m, k))
    np.add.at(d, (inv, g), e)
    np.add.at(r, (inv, g), 1.0)
    n = r[::-1].cumsum(axis=0)[::-1]  # at risk at each time: still in follow-up
    n_tot = n.sum(axis=1)
    d_tot = d.sum(axis=1)
    keep = d_tot > 0
    n, d, n_tot, d_tot = n[keep], d[keep], n_tot[keep], d_tot[keep]
    expected = (d_tot / n_tot)[:, None] * n
    o_minus_e = (d - expected).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(n_tot > 1, d_tot * (n_tot - d_tot) / (n_tot**2 * (n_tot - 1)), 0.0)
    cov = -np.einsum("t,ti,tj->ij", w, n, n)
    cov[np.diag_indices(k)] += ((w * n_tot)[:, None] * n).sum(axis=0)
    stat = float(o_minus_e[:-1] @ np.linalg.pinv(cov[:-1, :-1]) @ o_minus_e[:-1])
    dof = k - 1
    return LogRank(stat, dof, float(chdtrc(dof, stat)))
