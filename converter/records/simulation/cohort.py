"""The cohort at baseline: sex and age (exact published statistics), strata, dates, the course calendar.

Everything is drawn for all subjects at once, in a fixed order (the cohort is reproducible per seed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from converter.records.simulation.draws import (
    BArr,
    FArr,
    IArr,
    by_stratum,
    day,
    ints,
    pick,
    quota,
    quota_split,
    weekday_back,
    weekday_forward,
)
from converter.records.simulation.model import strata

__all__ = ["Baseline", "draw_baseline"]


@dataclass
class Baseline:
    n: int
    female: BArr
    age: IArr
    stratum: IArr  # index into the model's strata
    consent: IArr  # epoch days
    enrol: IArr
    start: IArr  # first dose (course 1 day 1)
    s: IArr  # (n, courses): day 1 of each course, days from the first dose
    a: IArr  # (n, courses): response assessment, days after day 1 of the course
    cpot: IArr  # last contact if alive at the cut-off, days from the first dose
    ltfu: BArr
    ltfu_u: FArr
    amended: BArr
    subgroups: dict[str, BArr]  # treatment.subgroups: membership per subgroup
    prior_transplant: BArr


def _ages(rng: np.random.Generator, n: int, P: dict[str, Any]) -> IArr:
    tg = P["targets"]["age"]
    knots = np.asarray(P["demography"]["age_quantiles"], dtype=np.float64)
    u = (rng.permutation(n) + rng.random(n)) / max(n, 1)
    ages = np.floor(np.interp(u, knots[:, 0], knots[:, 1])).astype(np.int64)
    ages = np.clip(ages, tg["min"], tg["max"])
    srt = np.sort(ages)
    med = int(tg["median"])
    if n >= 3:
        srt[0], srt[-1] = tg["min"], tg["max"]
        half = n // 2
        if n % 2:
            srt[half] = med
            srt[1:half] = np.minimum(srt[1:half], med)
            srt[half + 1 : -1] = np.maximum(srt[half + 1 : -1], med)
        else:
            srt[half - 1] = srt[half] = med
            srt[1 : half - 1] = np.minimum(srt[1 : half - 1], med)
            srt[half + 1 : -1] = np.maximum(srt[half + 1 : -1], med)
    elif n == 1:
        srt[0] = med
    out: IArr = srt[rng.permutation(n)]
    return out


def draw_baseline(rng: np.random.Generator, n: int, P: dict[str, Any]) -> Baseline:
    T = P["targets"]
    cal = P["calendar"]
    tr = P["treatment"]
    female = pick(rng, np.ones(n), quota(n, T["counts"]["female"], T["of"]))
    age = _ages(rng, n, P)
    sizes = quota_split(n, P["diagnosis"]["strata"])
    stratum = np.repeat(np.arange(len(strata(P)), dtype=np.int64), sizes)[rng.permutation(n)]

    knots_d = np.asarray([day(d) for d, _ in cal["accrual_cdf"]], dtype=np.float64)
    knots_p = np.asarray([float(p) for _, p in cal["accrual_cdf"]], dtype=np.float64)
    u = (rng.permutation(n) + rng.random(n)) / max(n, 1)
    enrol = weekday_forward(np.floor(np.interp(u, knots_p, knots_d)).astype(np.int64))
    consent = weekday_back(enrol - ints(rng, cal["consent_to_enrolment_days"], n))
    start = weekday_forward(enrol + ints(rng, cal["enrolment_to_first_dose_days"], n))

    k = int(tr["max_courses"])
    s = np.zeros((n, k), dtype=np.int64)
    for c in range(1, k):
        delay = np.minimum(rng.poisson(float(tr["delay_mean_days"]), n), int(tr["delay_max_days"]))
        nxt = start + s[:, c - 1] + int(tr["course_days"]) + delay
        s[:, c] = weekday_forward(nxt) - start
    lo, hi = (int(d) - 1 for d in tr["assessment_day"])
    a = rng.integers(lo, hi + 1, size=(n, k)).astype(np.int64)

    cpot = day(cal["data_cutoff"]) - start - ints(rng, cal["last_contact_lag_days"], n)
    ltfu = rng.random(n) < float(cal["lost_to_follow_up"])
    ltfu_u = rng.random(n)
    amended = start >= day(tr["amendment_date"])
    subgroups = {str(g): rng.random(n) < float(p) for g, p in (tr.get("subgroups") or {}).items()}
    prior = rng.random(n) < by_stratum(P["diagnosis"]["prior_transplant"], strata(P), stratum)
    return Baseline(n, female, age, stratum, consent, enrol, start, s, a, cpot, ltfu, ltfu_u, amended, subgroups, prior)
