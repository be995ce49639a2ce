"""Random draws, exact quotas and date strings: the column-wise building blocks of the cohort generator.

Every function draws for all subjects at once (numpy arrays), never per row; the order of the draws is part
of the output (a cohort is reproducible per seed), so callers keep it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

DAYS_PER_MONTH = 30.4375
NEVER = 10_000_000  # "no event" sentinel in days

IArr = npt.NDArray[np.int64]
FArr = npt.NDArray[np.float64]
BArr = npt.NDArray[np.bool_]
OArr = npt.NDArray[np.object_]

EPOCH = np.datetime64("1970-01-01", "D")


def day(text: str) -> int:
    return int((np.datetime64(str(text), "D") - EPOCH).astype(np.int64))


def quota(n: int, count: int, of: int) -> int:
    """The scaled exact count ``round(n * count / of)`` (half up)."""
    return int(np.floor(n * count / of + 0.5))


# ------------------------------------------------------------------------------------------ random helpers


def cat(rng: np.random.Generator, n: int, probs: Mapping[Any, float]) -> IArr:
    """Categorical draws: indexes into ``list(probs)``."""
    p = np.asarray([float(v) for v in probs.values()], dtype=np.float64)
    cum = np.cumsum(p / p.sum())
    idx = np.searchsorted(cum, rng.random(n), side="right")
    return np.minimum(idx, len(p) - 1).astype(np.int64)


def labels(probs: Mapping[Any, float]) -> OArr:
    return np.asarray([str(k) for k in probs], dtype=object)


def ints(rng: np.random.Generator, lohi: Sequence[int], n: int) -> IArr:
    return rng.integers(int(lohi[0]), int(lohi[1]) + 1, size=n).astype(np.int64)


def pick(rng: np.random.Generator, weights: FArr, k: int) -> BArr:
    """Weighted sampling of ``k`` subjects without replacement (Gumbel top-k) among weights > 0."""
    n = len(weights)
    mask = np.zeros(n, dtype=bool)
    eligible = weights > 0
    k = min(k, int(eligible.sum()))
    if k <= 0:
        return mask
    with np.errstate(divide="ignore"):
        key = np.where(eligible, np.log(np.where(eligible, weights, 1.0)) + rng.gumbel(size=n), -np.inf)
    mask[np.argsort(-key, kind="stable")[:k]] = True
    return mask


def allocate(k: int, weight: FArr, room: IArr) -> IArr:
    """Split ``k`` over groups in proportion to ``weight`` (largest remainder), never above ``room``."""
    alloc = np.zeros(len(weight), dtype=np.int64)
    k = min(k, int(room.sum()))
    for _ in range(len(weight) + 1):
        left = k - int(alloc.sum())
        open_ = (alloc < room) & (weight > 0)
        if left <= 0 or not open_.any():
            break
        raw = np.where(open_, weight, 0.0) / weight[open_].sum() * left
        add = np.minimum(np.floor(raw).astype(np.int64), room - alloc)
        rest = left - int(add.sum())
        frac = np.where(open_ & (alloc + add < room), raw - np.floor(raw), -1.0)
        for i in np.argsort(-frac, kind="stable")[: max(rest, 0)]:
            if frac[i] >= 0:
                add[i] += 1
        alloc += add
    return alloc


def pick_groups(rng: np.random.Generator, weights: FArr, groups: IArr, alloc: IArr) -> BArr:
    """Weighted sampling without replacement of ``alloc[g]`` subjects within each group ``g``."""
    n = len(weights)
    with np.errstate(divide="ignore"):
        key = np.where(weights > 0, np.log(np.where(weights > 0, weights, 1.0)) + rng.gumbel(size=n), -np.inf)
    order = np.lexsort((-key, groups))
    gs = groups[order]
    starts = np.searchsorted(gs, gs, side="left")
    rank = np.arange(n) - starts
    mask = np.zeros(n, dtype=bool)
    mask[order] = (rank < alloc[gs]) & np.isfinite(key[order])
    return mask


def pick_within(rng: np.random.Generator, weights: FArr, k: int, groups: IArr, ngroups: int) -> BArr:
    """``k`` subjects, allocated to groups in proportion to their summed weights, then sampled within each."""
    wsum = np.asarray(np.bincount(groups, weights=weights, minlength=ngroups), dtype=np.float64)
    room = np.bincount(groups, weights=(weights > 0).astype(np.float64), minlength=ngroups).astype(np.int64)
    return pick_groups(rng, weights, groups, allocate(k, wsum, room))


def strat_uniform(rng: np.random.Generator, groups: IArr) -> FArr:
    """Uniforms stratified within each group: one draw in each 1/m slice of (0, 1) for a group of size m."""
    n = len(groups)
    jitter = rng.random(n)
    order = np.lexsort((rng.random(n), groups))
    gs = groups[order]
    starts = np.r_[0, np.flatnonzero(gs[1:] != gs[:-1]) + 1] if n else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, n])
    pos = np.arange(n) - np.repeat(starts, sizes)
    u = np.empty(n, dtype=np.float64)
    u[order] = (pos + jitter[order]) / np.repeat(sizes, sizes)
    return np.clip(u, 1e-12, 1 - 1e-12)


def quota_split(n: int, probs: Mapping[Any, float]) -> IArr:
    """Exact group sizes for ``n`` (largest remainder)."""
    p = np.asarray([float(v) for v in probs.values()], dtype=np.float64)
    p = p / p.sum()
    raw = p * n
    sizes = np.floor(raw).astype(np.int64)
    rest = n - int(sizes.sum())
    if rest > 0:
        sizes[np.argsort(-(raw - sizes), kind="stable")[:rest]] += 1
    return np.asarray(sizes, dtype=np.int64)


def cure_weibull_days(u: FArr, cure: FArr, median: FArr, shape: FArr) -> FArr:
    """Inverse CDF of a mixture-cure Weibull (months in, days out); cured -> inf."""
    cured = u >= 1.0 - cure
    p = np.clip(u / np.maximum(1.0 - cure, 1e-9), 0.0, 1 - 1e-12)
    t = median * (-np.log1p(-p) / np.log(2.0)) ** (1.0 / shape)
    return np.where(cured, np.inf, t * DAYS_PER_MONTH)


def weekday_forward(days: IArr) -> IArr:
    wd = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return days + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))


def weekday_back(days: IArr) -> IArr:
    wd = (days + 3) % 7
    return days - np.where(wd == 5, 1, np.where(wd == 6, 2, 0))


def by_stratum(table: Mapping[str, Any], strata: Sequence[str], stratum: IArr) -> FArr:
    """A per-stratum parameter, for each subject (``stratum``: index into ``strata``)."""
    return np.asarray([float(table[s]) for s in strata], dtype=np.float64)[stratum]


def take(matrix: IArr, col: IArr) -> IArr:
    """``matrix[i, col[i]]`` for every row i."""
    return np.take_along_axis(matrix, col[:, None], axis=1)[:, 0]


# ------------------------------------------------------------------------------------------- date strings


def date_strings(days: IArr, missing: BArr | None = None) -> OArr:
    """ISO dates for epoch day numbers, as shared ``str`` objects (one per calendar day); ``None`` where missing."""
    if len(days) == 0:
        return np.empty(0, dtype=object)
    ok = None if missing is None else ~missing
    valid = days if ok is None else days[ok]
    if len(valid) == 0:
        return np.full(len(days), None, dtype=object)
    lo, hi = int(valid.min()), int(valid.max())
    lut = np.datetime_as_string(np.arange(lo, hi + 2).astype("datetime64[D]"), unit="D").astype(object)
    lut[-1] = None
    idx = days - lo if ok is None else np.where(ok, days - lo, hi - lo + 1)
    return np.asarray(lut[idx], dtype=object)


def month_strings(days: IArr) -> OArr:
    out = np.empty(len(days), dtype=object)
    if len(days):
        lo, hi = int(days.min()), int(days.max())
        lut = np.datetime_as_string(np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]"))
        out[:] = lut.astype(object)[days - lo]
    return out


def lognormal(rng: np.random.Generator, spec: Sequence[float], size: int) -> FArr:
    """``median * exp(sigma * N(0, 1))`` for ``spec = [median, sigma]``."""
    return np.asarray(float(spec[0]) * np.exp(float(spec[1]) * rng.standard_normal(size)), dtype=np.float64)


def grades(rng: np.random.Generator, spec: Mapping[Any, float], m: int) -> IArr:
    """Integer grades drawn from ``{grade: probability}``."""
    return np.asarray([int(k) for k in spec], dtype=np.int64)[cat(rng, m, spec)]


def choose(cond: BArr, yes: str, no: str) -> OArr:
    """``yes`` where ``cond`` else ``no``, as shared ``str`` objects."""
    return np.asarray([no, yes], dtype=object)[cond.astype(np.int64)]


def uniform(rng: np.random.Generator, lohi: Sequence[float], m: int) -> FArr:
    """``m`` uniform draws in ``[lo, hi)``."""
    return np.asarray(rng.uniform(float(lohi[0]), float(lohi[1]), m), dtype=np.float64)


def scaled_beta(rng: np.random.Generator, spec: Mapping[str, Any], n: int) -> FArr:
    """``from + span * Beta(a, b)`` for ``spec = {beta: [a, b], from, span}``."""
    a, b = (float(x) for x in spec["beta"])
    return np.asarray(float(spec["from"]) + float(spec["span"]) * rng.beta(a, b, n), dtype=np.float64)
