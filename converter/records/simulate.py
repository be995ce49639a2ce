"""A synthetic NCT01371630 cohort whose aggregates match the publication.

No patient-level data of the trial is public, so the project ships a simulated cohort:
``simulate(n, seed)`` returns :data:`~converter.records.model.Records` (every form of ``forms.yaml``,
normalised: the same frames ``normalise_all`` gives) for ``n`` subjects. Every parameter and every choice the
publication leaves open lives in ``mappings/records/simulation.yaml``; this module is the mechanism.

What holds, for every seed:

* the published counts as exact quotas ``round(n * count / 59)``: sex; responders and CR (best response over
  the RESP records); MRD-negative responders; transplants; subjects with grade 3-4 thrombocytopenia, grade 3-4
  infection (SOC), grade 3-4 hyperbilirubinaemia, VOD (any grade); age median / min / max exactly (n >= 3);
* consistent histories: consent <= enrolment < first dose; courses of mini-hyper-CVD + inotuzumab per the
  protocol schedule (one EXPOS row per drug / course / day), stopping at death, relapse or transplant;
  nothing dated after death or the last contact; first response before relapse and transplant; causes of
  death that fit what happened; lab results behind the graded toxicities.

Survival (OS from the first dose to death, censored at the last contact; RFS from the first response to
relapse or death, censored at the last response assessment; months = days / 30.4375): times come from
mixture-cure Weibull models per disease state, accelerated by salvage line, drawn with stratified uniforms.
For ``calibration.min_n <= n <= calibration.max_n`` (30..1000) up to ``calibration.max_subdraws`` outcome
draws (seeded by ``[seed, k]``) are tried in order and the first whose Kaplan-Meier figures meet every target
within the internal tolerance, under both day conventions, is kept.

Measured at n = 59: about 0.6% of single draws meet every (internal) target; each of seeds 0..99 finds one
(median sub-draw 110, max 1134 of 2500), and all 100 cohorts meet the published tolerances when analysed
from the records with lifelines. The default seed (sub-draw 246): 30 F / 29 M, age 35 (18-87), 46
responders, 35 CR, 38 MRD-negative, 26 SCT, 48 / 43 / 8 / 9 subjects with grade 3-4 thrombocytopenia /
infection / hyperbilirubinaemia and VOD; OS median 10.7 months, 1-year 0.47 (salvage 1 / 2 / 3+: 0.59 /
0.29 / 0.36, log-rank p = 0.012); RFS median 7.6, 1-year 0.43; reverse-KM median follow-up 23.9 months
(the same through the SDTM and ADaM stages).

Everything is generated column-wise with numpy (Python loops run over courses, schedule items, AE terms and
candidate sub-draws only, never over subjects or rows), deterministic per seed
(``numpy.random.Generator(PCG64(seed))``); n = 100,000 takes about 5 s (about 1 GB peak).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import yaml
from scipy import stats

from converter.errors import SpecError
from converter.paths import mappings_dir
from converter.records.model import Records
from converter.records.schema import Form, FormSchema, load_forms

DEFAULT_SEED: int = 1371630
DAYS_PER_MONTH = 30.4375
SALVAGE = ("1", "2", "3+")
NEVER = 10_000_000  # "no event" sentinel in days


IArr = npt.NDArray[np.int64]
FArr = npt.NDArray[np.float64]
BArr = npt.NDArray[np.bool_]
OArr = npt.NDArray[np.object_]

RESPONDER_CODES = ("CR", "CRp", "CRi", "MCR")
RESP_CODES = ("CR", "CRp", "CRi", "MCR", "PR", "NR", "PD")
_R = {c: i for i, c in enumerate(RESP_CODES)}
LAB_TESTS = ("BILI", "HGB", "NEUT", "PLAT", "WBC")  # alphabetical: the LAB key order
_EPOCH = np.datetime64("1970-01-01", "D")


# --------------------------------------------------------------------------------------------- parameters


def simulation_path() -> Path:
    return mappings_dir() / "records" / "simulation.yaml"


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict):
        raise SpecError([f"{path}: not a simulation parameter file (expected a mapping)"])
    return doc


def load_parameters(path: Path | None = None) -> dict[str, Any]:
    """The simulation parameters (``mappings/records/simulation.yaml``) as a plain mapping (a fresh copy)."""
    return copy.deepcopy(_load((path or simulation_path()).resolve()))


def _day(text: str) -> int:
    return int((np.datetime64(str(text), "D") - _EPOCH).astype(np.int64))


def quota(n: int, count: int, of: int) -> int:
    """The scaled exact count ``round(n * count / of)`` (half up)."""
    return int(np.floor(n * count / of + 0.5))


# ------------------------------------------------------------------------------------------ random helpers


def _cat(rng: np.random.Generator, n: int, probs: Mapping[Any, float]) -> IArr:
    """Categorical draws: indexes into ``list(probs)``."""
    p = np.asarray([float(v) for v in probs.values()], dtype=np.float64)
    cum = np.cumsum(p / p.sum())
    idx = np.searchsorted(cum, rng.random(n), side="right")
    return np.minimum(idx, len(p) - 1).astype(np.int64)


def _labels(probs: Mapping[Any, float]) -> OArr:
    return np.asarray([str(k) for k in probs], dtype=object)


def _ints(rng: np.random.Generator, lohi: Sequence[int], n: int) -> IArr:
    return rng.integers(int(lohi[0]), int(lohi[1]) + 1, size=n).astype(np.int64)


def _pick(rng: np.random.Generator, weights: FArr, k: int) -> BArr:
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


def _allocate(k: int, weight: FArr, room: IArr) -> IArr:
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


def _pick_groups(rng: np.random.Generator, weights: FArr, groups: IArr, alloc: IArr) -> BArr:
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


def _pick_within(rng: np.random.Generator, weights: FArr, k: int, groups: IArr, ngroups: int) -> BArr:
    """``k`` subjects, allocated to groups in proportion to their summed weights, then sampled within each."""
    wsum = np.asarray(np.bincount(groups, weights=weights, minlength=ngroups), dtype=np.float64)
    room = np.bincount(groups, weights=(weights > 0).astype(np.float64), minlength=ngroups).astype(np.int64)
    return _pick_groups(rng, weights, groups, _allocate(k, wsum, room))


def _strat_uniform(rng: np.random.Generator, groups: IArr) -> FArr:
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


def _quota_split(n: int, probs: Mapping[Any, float]) -> IArr:
    """Exact group sizes for ``n`` (largest remainder)."""
    p = np.asarray([float(v) for v in probs.values()], dtype=np.float64)
    p = p / p.sum()
    raw = p * n
    sizes = np.floor(raw).astype(np.int64)
    rest = n - int(sizes.sum())
    if rest > 0:
        sizes[np.argsort(-(raw - sizes), kind="stable")[:rest]] += 1
    return np.asarray(sizes, dtype=np.int64)


def _cure_weibull_days(u: FArr, cure: FArr, median: FArr, shape: FArr) -> FArr:
    """Inverse CDF of a mixture-cure Weibull (months in, days out); cured -> inf."""
    cured = u >= 1.0 - cure
    p = np.clip(u / np.maximum(1.0 - cure, 1e-9), 0.0, 1 - 1e-12)
    t = median * (-np.log1p(-p) / np.log(2.0)) ** (1.0 / shape)
    return np.where(cured, np.inf, t * DAYS_PER_MONTH)


def _weekday_forward(days: IArr) -> IArr:
    wd = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return days + np.where(wd == 5, 2, np.where(wd == 6, 1, 0))


def _weekday_back(days: IArr) -> IArr:
    wd = (days + 3) % 7
    return days - np.where(wd == 5, 1, np.where(wd == 6, 2, 0))


def _by_salvage(table: Mapping[str, Any], salv: IArr) -> FArr:
    return np.asarray([float(table[s]) for s in SALVAGE], dtype=np.float64)[salv]


def _take(matrix: IArr, col: IArr) -> IArr:
    """``matrix[i, col[i]]`` for every row i."""
    return np.take_along_axis(matrix, col[:, None], axis=1)[:, 0]


# ------------------------------------------------------------------------------------------- date strings


def _date_strings(days: IArr, missing: BArr | None = None) -> OArr:
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


def _month_strings(days: IArr) -> OArr:
    out = np.empty(len(days), dtype=object)
    if len(days):
        lo, hi = int(days.min()), int(days.max())
        lut = np.datetime_as_string(np.arange(lo, hi + 1).astype("datetime64[D]").astype("datetime64[M]"))
        out[:] = lut.astype(object)[days - lo]
    return out


# ----------------------------------------------------------------------------------------------- baseline


@dataclass
class _Baseline:
    n: int
    female: BArr
    age: IArr
    salv: IArr  # 0, 1, 2 for salvage 1, 2, 3+
    consent: IArr  # epoch days
    enrol: IArr
    start: IArr  # first dose (course 1 day 1)
    s: IArr  # (n, courses): day 1 of each course, days from the first dose
    a: IArr  # (n, courses): marrow assessment, days after day 1 of the course
    cpot: IArr  # last contact if alive at the cut-off, days from the first dose
    ltfu: BArr
    ltfu_u: FArr
    amended: BArr
    cd20: BArr
    prior_sct: BArr


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
    return srt[rng.permutation(n)]


def _baseline(rng: np.random.Generator, n: int, P: dict[str, Any]) -> _Baseline:
    T = P["targets"]
    cal = P["calendar"]
    tr = P["treatment"]
    female = _pick(rng, np.ones(n), quota(n, T["counts"]["female"], T["of"]))
    age = _ages(rng, n, P)
    sizes = _quota_split(n, P["diagnosis"]["salvage"])
    salv = np.repeat(np.arange(len(SALVAGE), dtype=np.int64), sizes)[rng.permutation(n)]

    knots_d = np.asarray([_day(d) for d, _ in cal["accrual_cdf"]], dtype=np.float64)
    knots_p = np.asarray([float(p) for _, p in cal["accrual_cdf"]], dtype=np.float64)
    u = (rng.permutation(n) + rng.random(n)) / max(n, 1)
    enrol = _weekday_forward(np.floor(np.interp(u, knots_p, knots_d)).astype(np.int64))
    consent = _weekday_back(enrol - _ints(rng, cal["consent_to_enrolment_days"], n))
    start = _weekday_forward(enrol + _ints(rng, cal["enrolment_to_first_dose_days"], n))

    k = int(tr["max_courses"])
    s = np.zeros((n, k), dtype=np.int64)
    for c in range(1, k):
        delay = np.minimum(rng.poisson(float(tr["delay_mean_days"]), n), int(tr["delay_max_days"]))
        nxt = start + s[:, c - 1] + int(tr["course_days"]) + delay
        s[:, c] = _weekday_forward(nxt) - start
    lo, hi = (int(d) - 1 for d in tr["assessment_day"])
    a = rng.integers(lo, hi + 1, size=(n, k)).astype(np.int64)

    cpot = _day(cal["data_cutoff"]) - start - _ints(rng, cal["last_contact_lag_days"], n)
    ltfu = rng.random(n) < float(cal["lost_to_follow_up"])
    ltfu_u = rng.random(n)
    amended = start >= _day(tr["amendment_date"])
    cd20 = rng.random(n) < float(tr["cd20_positive"])
    prior_sct = rng.random(n) < _by_salvage(P["diagnosis"]["prior_sct"], salv)
    return _Baseline(n, female, age, salv, consent, enrol, start, s, a, cpot, ltfu, ltfu_u, amended, cd20, prior_sct)


# ------------------------------------------------------------------------------------------------ outcome


@dataclass
class _Outcome:
    resp: BArr
    cr: BArr
    best: IArr  # index into RESP_CODES
    first: IArr  # value of the first remission assessment (responders)
    mrdneg: BArr
    rc: IArr  # course whose assessment first shows the response
    r: IArr  # first response day
    sct: BArr
    sct_day: IArr
    E: IArr  # end of remission (relapse or death in remission), NEVER if none
    nrm: BArr  # remission ends by death
    D: IArr  # death day (NEVER if none within reach)
    nr_type: IArr  # index into RESP_CODES for non-responders
    ncourse: IArr
    dose_stop: IArr  # no administration on or after this day
    eot_day: IArr
    eot_reason: OArr
    L: IArr  # last known alive (death day if dead)
    dead: BArr
    lost: BArr
    relapsed: BArr  # relapse observed
    rs_subj: IArr  # RESP rows
    rs_day: IArr
    rs_course: IArr  # 0 = follow-up (no course)
    last_resp: IArr
    subdraw: int = 0


def _draw_outcome(b: _Baseline, g: np.random.Generator, P: dict[str, Any]) -> _Outcome:
    n, salv, s, a = b.n, b.salv, b.s, b.a
    T, C = P["targets"], P["targets"]["counts"]
    rp, tp, sv, tr = P["response"], P["transplant"], P["survival"], P["treatment"]
    rows = np.arange(n)

    # --- response (exact quotas)
    ns = len(SALVAGE)
    k_resp = quota(n, C["responders"], T["of"])
    resp = _pick_within(g, _by_salvage(rp["responder_weight"], salv), k_resp, salv, ns)
    k_cr = min(quota(n, C["complete_response"], T["of"]), k_resp)
    cr = _pick(g, np.where(resp, _by_salvage(rp["cr_weight"], salv), 0.0), k_cr)
    other = np.asarray([_R[str(c)] for c in rp["other_responses"]], dtype=np.int64)[_cat(g, n, rp["other_responses"])]
    nr_type = np.asarray([_R[str(c)] for c in rp["nonresponse"]], dtype=np.int64)[_cat(g, n, rp["nonresponse"])]
    best = np.where(cr, _R["CR"], np.where(resp, other, nr_type))
    seen_as = np.where(g.random(n) < 0.5, _R["CRp"], _R["CRi"])
    first = np.where(cr & (g.random(n) < float(rp["cr_first_seen_as"])), seen_as, best)
    k_mrd = min(quota(n, C["mrd_negative"], T["of"]), k_resp)
    mrdneg = _pick(g, np.where(resp, np.where(cr, float(rp["mrd_weight_cr"]), 1.0), 0.0), k_mrd)
    rc = np.where(resp & (g.random(n) < float(rp["first_response_course_2"])), 2, 1).astype(np.int64)
    r = _take(s, rc - 1) + _take(a, rc - 1)

    # --- transplant (exact quota among responders)
    knots = np.asarray(tp["weight_by_age"], dtype=np.float64)
    w_age = knots[np.searchsorted(knots[:, 0], b.age, side="right") - 1, 1]
    w_sct = _by_salvage(tp["weight_by_salvage"], salv) * np.maximum(w_age, 1e-6)
    w_sct = w_sct * np.where(b.prior_sct, float(tp["weight_prior_sct"]), 1.0)
    sct = _pick_within(g, np.where(resp, w_sct, 0.0), min(quota(n, C["transplant"], T["of"]), k_resp), salv, ns)
    kb = np.asarray([int(k) for k in tp["courses_before"]], dtype=np.int64)[_cat(g, n, tp["courses_before"])]
    ksct = np.maximum(kb, rc)
    sct_day = np.where(sct, _take(s, ksct - 1) + _ints(g, tp["days_after_last_course"], n), NEVER)

    # --- survival: remission end for responders, death for non-responders (stratified draws)
    groups = np.where(resp, salv * 2 + sct, 6 + salv).astype(np.int64)
    u = _strat_uniform(g, groups)
    rn, rs, nr = sv["remission_no_sct"], sv["remission_after_sct"], sv["nonresponder"]
    f_time = np.asarray([float(sv["salvage_effect"][x]["time"]) for x in SALVAGE])[salv]
    f_cure = np.asarray([float(sv["salvage_effect"][x]["cure"]) for x in SALVAGE])[salv]
    mrd_t = np.where(mrdneg, 1.0, float(sv["mrd_positive"]["time"]))
    mrd_c = np.where(mrdneg, 1.0, float(sv["mrd_positive"]["cure"]))
    cure = np.where(sct, float(rs["cure"]), float(rn["cure"])) * f_cure * mrd_c
    med = np.where(sct, float(rs["median"]), float(rn["median"])) * f_time * mrd_t
    shape = np.where(sct, float(rs["shape"]), float(rn["shape"]))
    mins = sv["min_days"]
    t_rem = _cure_weibull_days(u, np.clip(cure, 0.0, 0.95), med, shape)
    t_rem = np.maximum(t_rem, np.where(sct, float(mins["post_sct"]), float(mins["remission"])))
    E_f = np.where(sct, sct_day, r) + t_rem
    # deaths in remission: an exact share of each (salvage line x transplant) cell
    cell = np.where(resp, salv * 2 + sct, 2 * ns).astype(np.int64)
    size = np.bincount(cell, minlength=2 * ns + 1)[: 2 * ns]
    p_nrm = np.tile([float(rn["nrm"]), float(rs["nrm"])], ns)
    alloc = np.r_[np.floor(size * p_nrm + g.random(2 * ns)).astype(np.int64), 0]
    nrm = _pick_groups(g, resp.astype(np.float64), cell, alloc)
    pr = sv["post_relapse"]
    u_prs = _strat_uniform(g, np.where(resp, salv, ns).astype(np.int64))
    prs = _cure_weibull_days(u_prs, np.zeros(n), float(pr["median"]) * f_time, np.full(n, float(pr["shape"])))
    prs = np.maximum(prs, float(mins["post_relapse"]))
    t_nr = _cure_weibull_days(
        u, np.clip(float(nr["cure"]) * f_cure, 0, 0.95), float(nr["median"]) * f_time, np.full(n, float(nr["shape"]))
    )
    t_nr = np.maximum(t_nr, float(mins["death"]))
    D_f = np.where(resp, np.where(nrm, E_f, E_f + prs), t_nr)
    E = np.where(resp & np.isfinite(E_f), np.minimum(np.floor(E_f), NEVER), NEVER).astype(np.int64)
    D = np.where(np.isfinite(D_f), np.minimum(np.floor(D_f), NEVER), NEVER).astype(np.int64)
    D = np.where(resp & nrm, E, D)

    # --- therapy: courses and end of treatment
    kmax = s.shape[1]
    early = resp & ~sct & (g.random(n) < float(tr["early_stop"]))
    k_rn = np.where(early, np.maximum(g.integers(3, kmax, size=n), rc), kmax).astype(np.int64)
    early_rsn = _labels(tr["early_stop_reasons"])[_cat(g, n, tr["early_stop_reasons"])]
    k_nr = np.where(nr_type == _R["PD"], 1, np.where((nr_type == _R["PR"]) & (g.random(n) < 0.5), 3, 2))
    kplan = np.where(resp, np.where(sct, ksct, k_rn), k_nr).astype(np.int64)
    dose_stop = np.where(resp, E, D)
    given = (np.arange(kmax)[None, :] < kplan[:, None]) & (s < dose_stop[:, None])
    ncourse = given.sum(axis=1).astype(np.int64)

    cd = int(tr["course_days"])
    plan_end_rn = _take(s, k_rn - 1) + cd
    nr_assess = _take(s, k_nr - 1) + _take(a, k_nr - 1)
    eot_rn = np.where(plan_end_rn >= E, E, plan_end_rn)
    rsn_rn = np.where(
        plan_end_rn >= E, np.where(nrm, "DEATH", "PROGRESSIVE DISEASE"), np.where(k_rn == kmax, "COMPLETED", early_rsn)
    )
    eot_nr = np.where(nr_assess >= D, D, nr_assess)
    rsn_nr = np.where(nr_assess >= D, "DEATH", np.where(nr_type == _R["PD"], "PROGRESSIVE DISEASE", "NO RESPONSE"))
    eot_rs = np.minimum(_take(s, np.maximum(ncourse, 1) - 1) + cd, sct_day - 1)
    eot_day = np.where(resp, np.where(sct, eot_rs, eot_rn), eot_nr).astype(np.int64)
    eot_reason = np.where(resp, np.where(sct, "TRANSPLANT", rsn_rn), rsn_nr).astype(object)

    # --- follow-up: last contact, loss to follow-up, what is observed
    floor_c = np.maximum(eot_day, np.where(sct, sct_day, 0)) + 1
    c_last = np.maximum(b.cpot, floor_c)
    base_l = floor_c + 30
    lost = b.ltfu & (b.cpot - base_l > 60)
    c_last = np.where(lost, base_l + np.floor(b.ltfu_u * (b.cpot - base_l)).astype(np.int64), c_last)
    dead = c_last >= D
    lost &= ~dead
    L = np.where(dead, D, c_last).astype(np.int64)
    relapsed = resp & ~nrm & (E <= L)

    # --- response assessments (RESP rows)
    subj_parts: list[IArr] = []
    day_parts: list[IArr] = []
    course_parts: list[IArr] = []
    assess = {int(k) for k in tr["assessment_courses"]}
    bound_t = np.where(resp, np.minimum(np.minimum(E, D), sct_day), D)
    for k in range(1, kmax + 1):
        day = s[:, k - 1] + a[:, k - 1]
        keep = (k <= ncourse) & (day < bound_t) & (day <= L)
        keep &= np.where(resp, k in assess, k <= k_nr)
        subj_parts.append(rows[keep])
        day_parts.append(day[keep])
        course_parts.append(np.full(int(keep.sum()), k, dtype=np.int64))
    interval, jit = int(rp["followup_interval_days"]), int(rp["followup_jitter_days"])
    fu0 = np.where(sct, sct_day + 30, eot_day + 63)
    bound_f = np.minimum(np.minimum(E - 4, D - 1), L)
    m = np.where(resp & (fu0 + jit <= bound_f), (bound_f - jit - fu0) // interval + 1, 0).astype(np.int64)
    fsubj = np.repeat(rows, m)
    j = np.arange(len(fsubj)) - np.repeat(np.cumsum(m) - m, m)
    fday = fu0[fsubj] + interval * j + g.integers(-jit, jit + 1, size=len(fsubj))
    subj_parts.append(fsubj)
    day_parts.append(fday)
    course_parts.append(np.zeros(len(fsubj), dtype=np.int64))
    rs_subj = np.concatenate(subj_parts)
    rs_day = np.concatenate(day_parts)
    rs_course = np.concatenate(course_parts)
    order = np.lexsort((rs_day, rs_subj))
    rs_subj, rs_day, rs_course = rs_subj[order], rs_day[order], rs_course[order]
    last_resp = np.full(n, -1, dtype=np.int64)
    if len(rs_subj):
        ends = np.r_[np.flatnonzero(rs_subj[1:] != rs_subj[:-1]), len(rs_subj) - 1]
        last_resp[rs_subj[ends]] = rs_day[ends]

    return _Outcome(
        resp=resp,
        cr=cr,
        best=best,
        first=first,
        mrdneg=mrdneg,
        rc=rc,
        r=r,
        sct=sct,
        sct_day=sct_day,
        E=E,
        nrm=nrm,
        D=D,
        nr_type=nr_type,
        ncourse=ncourse,
        dose_stop=dose_stop,
        eot_day=eot_day,
        eot_reason=eot_reason,
        L=L,
        dead=dead,
        lost=lost,
        relapsed=relapsed,
        rs_subj=rs_subj,
        rs_day=rs_day,
        rs_course=rs_course,
        last_resp=last_resp,
    )


# ------------------------------------------------------------------------------------ survival statistics


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


def _endpoints(b: _Baseline, o: _Outcome, plus: int, with_logrank: bool = True) -> dict[str, float]:
    """The published survival figures of one cohort draw, as the ADaM stage computes them."""
    m = DAYS_PER_MONTH
    t_os = (o.L + plus) / m
    rsp = o.resp
    ev_day = np.where(o.relapsed, o.E, o.D)
    rfs_event = (o.relapsed | o.dead)[rsp]
    t_rfs = (np.where(o.relapsed | o.dead, ev_day, o.last_resp) - o.r + plus)[rsp] / m
    out: dict[str, float] = {}
    for name, (tt, ee) in {"os": (t_os, o.dead), "rfs": (t_rfs, rfs_event), "fu": (t_os, ~o.dead)}.items():
        out[f"{name}_median_lo"], out[f"{name}_median_hi"], out[f"{name}_1y"] = _curve(tt, ee)
    for i, lab in enumerate(SALVAGE):
        sel = b.salv == i
        out[f"os_1y_{lab}"] = _curve(t_os[sel], o.dead[sel])[2] if sel.any() else float("nan")
    out["logrank_p"] = logrank_p(t_os, o.dead, b.salv) if with_logrank else 0.0
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
    for lab in SALVAGE:
        worst += over(e[f"os_1y_{lab}"], sv["os_1y_by_salvage"][lab], tol["rate"])
    worst += max(0.0, e["logrank_p"] - tol["logrank_p_max"]) * 20
    return worst


def _outcome(b: _Baseline, seed: int, P: dict[str, Any]) -> _Outcome:
    cal = P["calibration"]
    tol = {k: float(v) for k, v in cal["tolerance"].items()}
    if not int(cal["min_n"]) <= b.n <= int(cal["max_n"]):
        return _draw_outcome(b, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0]))), P)
    best: tuple[float, _Outcome] | None = None
    for k in range(int(cal["max_subdraws"])):
        g = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k])))
        o = _draw_outcome(b, g, P)
        o.subdraw = k
        miss = _miss(_endpoints(b, o, 0, with_logrank=False), P, tol)  # cheap screen first
        if miss == 0.0:
            miss = max(_miss(_endpoints(b, o, plus), P, tol) for plus in (0, 1))
            if miss == 0.0:
                return o
        if best is None or miss < best[0]:
            best = (miss, o)
    assert best is not None
    return best[1]


# ------------------------------------------------------------------------------------------------ records


class _Frame:
    """Columns of one form, built in key order, turned into the canonical (normalised) frame."""

    def __init__(self, form: Form, n: int) -> None:
        self.form = form
        self.n = n
        self.cols: dict[str, Any] = {}

    def set(self, name: str, values: Any) -> None:
        self.cols[name] = values

    def frame(self) -> pd.DataFrame:
        """The frame; every column a fresh array (the generator shares arrays between forms), no consolidation."""
        out: dict[str, Any] = {}
        n = self.n
        for name, f in self.form.fields.items():
            v = self.cols.get(name)
            if f.type == "integer":
                if v is None:
                    vals, miss = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
                elif isinstance(v, tuple):
                    vals, miss = np.array(v[0], dtype=np.int64), np.array(v[1], dtype=bool)
                else:
                    vals, miss = np.array(v, dtype=np.int64), np.zeros(n, dtype=bool)
                out[name] = pd.arrays.IntegerArray(vals, miss)
            elif f.type == "float":
                out[name] = np.full(n, np.nan) if v is None else np.array(v, dtype=np.float64)
            else:
                out[name] = pd.Series(
                    np.full(n, v, dtype=object) if v is None or isinstance(v, str) else np.array(v, dtype=object),
                    dtype=object,
                    copy=False,
                )
        return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)


class _Built:
    """Forms turned into canonical frames as soon as their columns are ready (keeps peak memory down)."""

    def __init__(self, schema: FormSchema) -> None:
        self.schema = schema
        self.frames: dict[str, pd.DataFrame] = {}

    def __setitem__(self, oid: str, value: tuple[int, dict[str, Any]]) -> None:
        form = self.schema.forms.get(oid)
        if form is None:
            return
        m_rows, cols = value
        fr = _Frame(form, m_rows)
        for name, values in cols.items():
            if name in form.fields:
                fr.set(name, values)
        self.frames[oid] = fr.frame()

    def records(self) -> Records:
        return {oid: self.frames.get(oid, _Frame(form, 0).frame()) for oid, form in self.schema.forms.items()}


def _choose(cond: BArr, yes: str, no: str) -> OArr:
    """``yes`` where ``cond`` else ``no``, as shared ``str`` objects."""
    return np.asarray([no, yes], dtype=object)[cond.astype(np.int64)]


def _subject_ids(n: int, P: dict[str, Any]) -> OArr:
    ids = P["ids"]
    if n <= int(ids["small_max_n"]):
        return np.arange(int(ids["small_base"]) + 1, int(ids["small_base"]) + 1 + n).astype(str).astype(object)
    width = max(int(ids["large_width"]), len(str(n)))
    if width > 8:
        raise ValueError(f"n = {n} needs SUBJID longer than 8 characters")
    return np.char.zfill(np.arange(1, n + 1).astype(str), width).astype(object)


def _lognormal(rng: np.random.Generator, spec: Sequence[float], size: int) -> FArr:
    return np.asarray(float(spec[0]) * np.exp(float(spec[1]) * rng.standard_normal(size)), dtype=np.float64)


def _birth_dates(rng: np.random.Generator, consent: IArr, age: IArr) -> IArr:
    """Birth dates consistent with the integer age at consent."""
    dt = consent.astype("datetime64[D]")
    y = dt.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (dt - dt.astype("datetime64[M]")).astype(np.int64) + 1
    dd = np.where((mo == 2) & (dd == 29), 28, dd)
    anniv = pd.to_datetime(pd.DataFrame({"year": y - age, "month": mo, "day": dd})).to_numpy().astype("datetime64[D]")
    back = rng.integers(0, 365, size=len(consent))
    return np.asarray((anniv - _EPOCH).astype(np.int64) - back, dtype=np.int64)


def _courses_of(spec: Any, kmax: int) -> list[int]:
    if spec == "odd":
        return list(range(1, kmax + 1, 2))
    if spec == "even":
        return list(range(2, kmax + 1, 2))
    return [int(c) for c in spec]


def _schedule(P: dict[str, Any]) -> list[dict[str, Any]]:
    """The protocol's administrations, one item per course / drug / day, in EXPOS key order."""
    kmax = int(P["treatment"]["max_courses"])
    items: list[dict[str, Any]] = []
    for it in P["treatment"]["schedule"]:
        for c in _courses_of(it["courses"], kmax):
            for d in it["days"]:
                items.append({**it, "course": c, "day": int(d)})
    keys = [(i["course"], str(i["drug"]), i["day"]) for i in items]
    if len(set(keys)) != len(keys):
        raise SpecError(["simulation.yaml treatment.schedule: two administrations share course, drug and day"])
    order = sorted(range(len(items)), key=lambda i: keys[i])
    return [items[i] for i in order]


class _AeRows:
    def __init__(self) -> None:
        self.parts: dict[str, list[Any]] = {k: [] for k in ("subj", "term", "start", "end", "grade", "key", "fatal")}

    def add(
        self, subj: IArr, term: IArr | int, start: IArr, end: IArr, grade: IArr | int, key: bool, fatal: bool = False
    ) -> None:
        m = len(subj)
        self.parts["subj"].append(np.asarray(subj, dtype=np.int64))
        self.parts["term"].append(np.broadcast_to(np.asarray(term, dtype=np.int64), (m,)))
        self.parts["start"].append(np.asarray(start, dtype=np.int64))
        self.parts["end"].append(np.asarray(end, dtype=np.int64))
        self.parts["grade"].append(np.broadcast_to(np.asarray(grade, dtype=np.int64), (m,)))
        self.parts["key"].append(np.full(m, key))
        self.parts["fatal"].append(np.full(m, fatal))

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in self.parts.items()}


def _validate(P: dict[str, Any], schema: FormSchema) -> None:
    errors: list[str] = []

    def codes(form: str, field: str) -> set[str]:
        return set(schema.form(form).fields[field].codes)

    def check(values: Any, form: str, field: str, where: str) -> None:
        allowed = codes(form, field)
        bad = sorted({str(v) for v in values} - allowed) if allowed else []
        if bad:
            errors.append(f"simulation.yaml {where}: {bad} not codes of {form}.{field}")

    check(P["diagnosis"]["salvage"], "DIAG", "SALVLN", "diagnosis.salvage")
    check(SALVAGE, "DIAG", "SALVLN", "salvage lines")
    check(P["diagnosis"]["cytogenetics"], "DIAG", "CYTOGEN", "diagnosis.cytogenetics")
    check(P["demography"]["race"], "DEMOG", "RACE", "demography.race")
    check(P["demography"]["ethnic"], "DEMOG", "ETHNIC", "demography.ethnic")
    check([i["drug"] for i in P["treatment"]["schedule"]], "EXPOS", "DRUG", "treatment.schedule")
    check([i["unit"] for i in P["treatment"]["schedule"]], "EXPOS", "DOSEU", "treatment.schedule")
    check([i["freq"] for i in P["treatment"]["schedule"]], "EXPOS", "FREQ", "treatment.schedule")
    check([i["route"] for i in P["treatment"]["schedule"]], "EXPOS", "ROUTE", "treatment.schedule")
    check(P["treatment"]["early_stop_reasons"], "EOT", "EOTRSN", "treatment.early_stop_reasons")
    check(RESP_CODES, "RESP", "RESP", "response codes")
    check(P["transplant"]["donor"], "SCT", "DONOR", "transplant.donor")
    check(P["response"]["relapse_site"], "RELAPSE", "RELSITE", "response.relapse_site")
    dz = P["deaths"]
    for k in (
        "nonresponder_early",
        "nonresponder_late",
        "after_relapse",
        "in_remission_after_sct",
        "in_remission_no_sct",
        "fatal_events",
    ):
        check(dz[k], "DEATH", "DTHCAUS", f"deaths.{k}")
    check(P["labs"]["units"], "LAB", "LBTEST", "labs.units")
    check(P["labs"]["units"].values(), "LAB", "LBUNIT", "labs.units")
    terms = P["terms"]
    used = [p for v in dz["fatal_events"].values() for p in v]
    used += list(P["toxicity"]["infection"]["terms"]) + [e["pt"] for e in P["other_events"]]
    used += [
        "Thrombocytopenia",
        "Hyperbilirubinaemia",
        "Venoocclusive liver disease",
        "Acute graft versus host disease",
    ]
    missing = sorted({u for u in used if u not in terms})
    if missing:
        errors.append(f"simulation.yaml: terms {missing} used but not defined under `terms`")
    for t, spec in terms.items():
        if spec["rel"] not in codes("AE", "AEREL"):
            errors.append(f"simulation.yaml terms.{t}: rel {spec['rel']!r} is not an AEREL code")
    for e in P["other_events"]:
        hi = max(int(gr) for gr in e["grades"])
        soc = terms[e["pt"]]["soc"]
        if hi >= 3 and (
            e["pt"] in ("Thrombocytopenia", "Hyperbilirubinaemia", "Venoocclusive liver disease")
            or soc == "Infections and infestations"
        ):
            errors.append(f"simulation.yaml other_events {e['pt']}: grade 3+ would change a published count")
    if not {1, 2} <= {int(k) for k in P["treatment"]["assessment_courses"]}:
        errors.append("simulation.yaml treatment.assessment_courses must include courses 1 and 2")
    if errors:
        raise SpecError(errors)


def simulate(n: int = 59, seed: int = DEFAULT_SEED, schema: FormSchema | None = None) -> Records:
    """A synthetic cohort of ``n`` subjects: every form of ``schema`` (default ``forms.yaml``), normalised.

    Deterministic per ``seed``. The published counts hold exactly (scaled as ``round(n * count / 59)``); at
    n = 59 and the default seed the survival figures meet the published targets (see the module docstring).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    schema = schema or load_forms()
    P = load_parameters()
    _validate(P, schema)
    rng = np.random.Generator(np.random.PCG64(seed))
    b = _baseline(rng, n, P)
    o = _outcome(b, seed, P)
    return _records(b, o, rng, P, schema)


def _ino_doses(b: _Baseline, o: _Outcome, P: dict[str, Any]) -> tuple[IArr, IArr]:
    """Days of the inotuzumab doses actually given (n x courses-with-inotuzumab, a prefix) and their count."""
    items = [it for it in _schedule(P) if str(it["drug"]) == "INOTUZUMAB OZOGAMICIN"]
    days = np.stack([b.s[:, it["course"] - 1] + it["day"] - 1 for it in items], axis=1)
    given = (np.asarray([it["course"] for it in items])[None, :] <= o.ncourse[:, None]) & (days < o.dose_stop[:, None])
    return days, given.sum(axis=1).astype(np.int64)


def _kth_dose(rng: np.random.Generator, days: IArr, count: IArr) -> IArr:
    k = np.minimum(np.floor(rng.random(len(count)) * np.maximum(count, 1)).astype(np.int64), days.shape[1] - 1)
    return _take(days, k)


def _records(b: _Baseline, o: _Outcome, rng: np.random.Generator, P: dict[str, Any], schema: FormSchema) -> Records:
    n = b.n
    ids = _subject_ids(n, P)
    built = _Built(schema)
    rows = np.arange(n)

    # ---------------------------------------------------------------- ENROL, DEMOG, DIAG
    inv = P["ids"]["investigators"]
    built["ENROL"] = (
        n,
        {
            "SUBJID": ids,
            "SITEID": str(P["ids"]["site"]),
            "CONSDT": _date_strings(b.consent),
            "ENRLDT": _date_strings(b.enrol),
            "INVNAM": _labels(inv)[_cat(rng, n, inv)],
        },
    )
    dm = P["demography"]
    built["DEMOG"] = (
        n,
        {
            "SUBJID": ids,
            "BRTHDT": _date_strings(_birth_dates(rng, b.consent, b.age)),
            "AGE": b.age,
            "SEX": _choose(b.female, "F", "M"),
            "RACE": _labels(dm["race"])[_cat(rng, n, dm["race"])],
            "ETHNIC": _labels(dm["ethnic"])[_cat(rng, n, dm["ethnic"])],
            "COUNTRY": str(dm["country"]),
        },
    )

    dg = P["diagnosis"]
    rng_m = np.asarray([dg["months_since_diagnosis"][s] for s in SALVAGE], dtype=np.float64)[b.salv]
    months = rng_m[:, 0] + rng.random(n) * (rng_m[:, 1] - rng_m[:, 0])
    diag_day = b.enrol - np.floor(months * DAYS_PER_MONTH).astype(np.int64)
    diagdt = np.where(
        rng.random(n) < float(dg["partial_diagnosis_date"]), _month_strings(diag_day), _date_strings(diag_day)
    )
    ph = rng.random(n) < float(dg["ph_positive"])
    cyto = _labels(dg["cytogenetics"])[_cat(rng, n, dg["cytogenetics"])]
    cyto[ph] = "T(9;22)"
    wbc: FArr = np.asarray(np.round(np.clip(_lognormal(rng, dg["wbc_lognormal"], n), 0.2, 300.0), 1), dtype=np.float64)
    extra = np.minimum(rng.geometric(float(dg["extra_prior_regimens"]), n) - 1, 3)
    nprior = np.where(b.salv == 0, 1, np.where(b.salv == 1, 2, 3 + extra)).astype(np.int64)
    blin_ok = b.enrol >= _day(dg["blinatumomab_available"])
    prblin = blin_ok & (rng.random(n) < _by_salvage(dg["prior_blinatumomab"], b.salv))
    reg = _labels(dg["frontline"])[_cat(rng, n, dg["frontline"])].astype(str)
    for k in range(1, int(nprior.max())):
        name = _labels(dg["salvage_regimens"])[_cat(rng, n, dg["salvage_regimens"])].astype(str)
        name = np.where(prblin & (k == nprior - 1), "Blinatumomab", name)
        reg = np.where(k < nprior, np.char.add(np.char.add(reg, "; "), name), reg)
    ba, bb = dg["bm_blast_beta"]
    ca, cb = dg["cd22_beta"]
    built["DIAG"] = (
        n,
        {
            "SUBJID": ids,
            "DIAGDT": diagdt,
            "SALVLN": np.asarray(SALVAGE, dtype=object)[b.salv],
            "PHSTAT": _choose(ph, "POSITIVE", "NEGATIVE"),
            "CYTOGEN": cyto,
            "BMBLAST": np.round(5.0 + 93.0 * rng.beta(float(ba), float(bb), n), 1),
            "CD22PCT": np.round(20.0 + 80.0 * rng.beta(float(ca), float(cb), n), 1),
            "WBC": wbc,
            "NPRIOR": nprior,
            "PRIORREG": reg.astype(object),
            "PRSCT": _choose(b.prior_sct, "Y", "N"),
            "PRBLIN": _choose(prblin, "Y", "N"),
        },
    )

    built["EXPOS"] = _expos_rows(b, o, P, ids)

    # ---------------------------------------------------------------- RESP
    built["RESP"] = _resp_rows(o, rng, P, ids, b.start)

    # ---------------------------------------------------------------- SCT, RELAPSE, EOT, FU
    tp = P["transplant"]
    sc = rows[o.sct]
    built["SCT"] = (
        len(sc),
        {
            "SUBJID": ids[sc],
            "SCTDT": _date_strings(b.start[sc] + o.sct_day[sc]),
            "DONOR": _labels(tp["donor"])[_cat(rng, len(sc), tp["donor"])],
        },
    )
    rl = rows[o.relapsed]
    site = P["response"]["relapse_site"]
    built["RELAPSE"] = (
        len(rl),
        {
            "SUBJID": ids[rl],
            "RELDT": _date_strings(b.start[rl] + o.E[rl]),
            "RELSITE": _labels(site)[_cat(rng, len(rl), site)],
        },
    )
    built["EOT"] = (
        n,
        {"SUBJID": ids, "EOTDT": _date_strings(b.start + o.eot_day), "NCOURSE": o.ncourse, "EOTRSN": o.eot_reason},
    )
    fustat = np.asarray(["ALIVE", "DEAD", "LOST TO FOLLOW-UP"], dtype=object)[
        np.where(o.dead, 1, np.where(o.lost, 2, 0))
    ]
    built["FU"] = (n, {"SUBJID": ids, "LSTALVDT": _date_strings(b.start + o.L), "FUSTAT": fustat})

    # ---------------------------------------------------------------- DEATH, AE, LAB
    cause, ae, labs = _toxicity(b, o, rng, P, wbc)
    dd = rows[o.dead]
    built["DEATH"] = (len(dd), {"SUBJID": ids[dd], "DTHDT": _date_strings(b.start[dd] + o.D[dd]), "DTHCAUS": cause[dd]})
    built["AE"] = _ae_frame(ae, o, rng, P, ids, b.start)
    built["LAB"] = _lab_frame(labs, P, ids, b.start)

    return built.records()


def _expos_rows(b: _Baseline, o: _Outcome, P: dict[str, Any], ids: OArr) -> tuple[int, dict[str, Any]]:
    """One EXPOS row per drug / course / day actually given."""
    n = b.n
    sched = _schedule(P)
    give = np.zeros((n, len(sched)), dtype=bool)
    for t, it in enumerate(sched):
        c = it["course"]
        m = (c <= o.ncourse) & (b.s[:, c - 1] + it["day"] - 1 < o.dose_stop)
        if it.get("when") == "cd20":
            m &= b.cd20
        give[:, t] = m
    si, ti = np.nonzero(give)
    s_course = np.asarray([it["course"] for it in sched], dtype=np.int64)
    s_day = np.asarray([it["day"] for it in sched], dtype=np.int64)
    s_dose = np.asarray([float(it["dose"]) for it in sched])
    s_amend = np.asarray([float(it.get("amended_dose", it["dose"])) for it in sched])

    def obj(key: str) -> OArr:
        return np.asarray([str(it[key]) for it in sched], dtype=object)

    adm = b.start[si] + b.s[si, s_course[ti] - 1] + s_day[ti] - 1
    return len(si), {
        "SUBJID": ids[si],
        "COURSE": s_course[ti],
        "DRUG": obj("drug")[ti],
        "DAY": s_day[ti],
        "ADMDT": _date_strings(adm),
        "DOSE": np.where(b.amended[si], s_amend[ti], s_dose[ti]),
        "DOSEU": obj("unit")[ti],
        "FREQ": obj("freq")[ti],
        "ROUTE": obj("route")[ti],
    }


def _resp_rows(
    o: _Outcome, rng: np.random.Generator, P: dict[str, Any], ids: OArr, start: IArr
) -> tuple[int, dict[str, Any]]:
    rp = P["response"]
    subj, day, course = o.rs_subj, o.rs_day, o.rs_course
    m = len(subj)
    resp = o.resp[subj]
    r = o.r[subj]
    rem = resp & (day >= r)
    first_row = resp & (day == r)
    n_rem = np.bincount(subj[rem], minlength=len(o.resp))[subj]
    firstpos = np.r_[True, subj[1:] != subj[:-1]] if m else np.zeros(0, dtype=bool)
    pre_val = np.where(rng.random(m) < 0.7, _R["PR"], _R["NR"])
    nr_t = o.nr_type[subj]
    nr_val = np.where(nr_t == _R["PR"], np.where(firstpos | (rng.random(m) < 0.5), _R["PR"], _R["NR"]), nr_t)
    val = np.where(
        rem, np.where(first_row & (n_rem >= 2), o.first[subj], o.best[subj]), np.where(resp, pre_val, nr_val)
    )
    neg = o.mrdneg[subj]
    late_neg = first_row & (n_rem >= 2) & (rng.random(m) >= float(rp["mrd_negative_from_first"]))
    mrd_codes = np.asarray(["NEGATIVE", "POSITIVE", "NOT DONE"], dtype=object)
    mrd_rem = np.where(neg & ~late_neg, 0, np.where(rng.random(m) < float(rp["mrd_not_done"]), 2, 1))
    mrd_act = np.where(rng.random(m) < 0.7, 2, 1)
    mrd_i = np.where(rem, mrd_rem, mrd_act)
    mrd = mrd_codes[mrd_i]
    blast = np.select(
        [val <= _R["MCR"], val == _R["PR"], val == _R["NR"]],
        [rng.uniform(0.0, 4.9, m), rng.uniform(5.0, 25.0, m), rng.uniform(10.0, 90.0, m)],
        rng.uniform(30.0, 98.0, m),
    )
    blast = np.round(blast, 1)
    lo, hi = (float(x) for x in rp["mrd_positive_level"])
    lvl_rem = np.exp(rng.uniform(np.log(lo), np.log(hi), m))
    lvl = np.where(mrd_i == 1, np.where(rem, lvl_rem, np.clip(blast * rng.uniform(0.5, 1.0, m), lo, 100.0)), np.nan)
    lvl = np.round(lvl, 3)
    return m, {
        "SUBJID": ids[subj],
        "ASMDT": _date_strings(start[subj] + day),
        "COURSE": (course, course == 0),
        "RESP": np.asarray(RESP_CODES, dtype=object)[val],
        "BMBLAST": blast,
        "MRDRES": mrd,
        "MRDLVL": lvl,
    }


@dataclass
class _Labs:
    subj: list[IArr]
    day: list[IArr]
    test: list[IArr]
    value: list[FArr]
    prio: list[IArr]

    def add(self, subj: IArr, day: IArr, test: str, value: npt.NDArray[Any], prio: int) -> None:
        self.subj.append(np.asarray(subj, dtype=np.int64))
        self.day.append(np.asarray(day, dtype=np.int64))
        self.test.append(np.full(len(subj), LAB_TESTS.index(test), dtype=np.int64))
        self.value.append(np.asarray(value, dtype=np.float64))
        self.prio.append(np.full(len(subj), prio, dtype=np.int64))


def _grades(rng: np.random.Generator, spec: Mapping[Any, float], m: int) -> IArr:
    return np.asarray([int(k) for k in spec], dtype=np.int64)[_cat(rng, m, spec)]


def _toxicity(
    b: _Baseline, o: _Outcome, rng: np.random.Generator, P: dict[str, Any], wbc: FArr
) -> tuple[OArr, dict[str, npt.NDArray[Any]], _Labs]:
    """Causes of death, adverse events and the labs behind them."""
    n = b.n
    rows = np.arange(n)
    T, C = P["targets"], P["targets"]["counts"]
    tx, dz = P["toxicity"], P["deaths"]
    term_names = list(P["terms"])
    tid = {t: i for i, t in enumerate(term_names)}
    L, D, dead = o.L, o.D, o.dead
    ae = _AeRows()
    labs = _Labs([], [], [], [], [])
    uln = float(P["labs"]["bilirubin_uln"])
    ino_days, n_ino = _ino_doses(b, o, P)
    last_ino = _take(ino_days, np.maximum(n_ino, 1) - 1)

    # --- causes of death
    cause = np.empty(n, dtype=object)
    cause[:] = None
    nr_dead = dead & ~o.resp
    early = nr_dead & (int(dz["nonresponder_early_days"]) > D)
    for mask, key in (
        (early, "nonresponder_early"),
        (nr_dead & ~early, "nonresponder_late"),
        (dead & o.resp & ~o.nrm, "after_relapse"),
    ):
        cause[mask] = _labels(dz[key])[_cat(rng, n, dz[key])][mask]
    nrm_dead = dead & o.resp & o.nrm
    vz = tx["vod"]
    ref = np.where(o.sct, o.sct_day, last_ino)
    fatal_ok = nrm_dead & (D - ref <= int(vz["fatal_window_days"])) & (D - ref >= 10)
    k_vod = quota(n, C["vod"], T["of"])
    vod_fatal = _pick(rng, fatal_ok.astype(np.float64), int(np.floor(k_vod * float(vz["fatal_share"]) + 0.5)))
    cause[vod_fatal] = "VENO-OCCLUSIVE DISEASE"
    c_sct = _labels(dz["in_remission_after_sct"])[_cat(rng, n, dz["in_remission_after_sct"])]
    c_no = _labels(dz["in_remission_no_sct"])[_cat(rng, n, dz["in_remission_no_sct"])]
    c_nrm = np.where(o.sct, c_sct, c_no)
    too_early = (c_nrm == "GRAFT VERSUS HOST DISEASE") & (D - o.sct_day < int(dz["gvhd_min_days_after_sct"]))
    c_nrm = np.where(too_early, "TRANSPLANT-RELATED", c_nrm)
    rest = nrm_dead & ~vod_fatal
    cause[rest] = c_nrm[rest]

    # fatal AEs (none for disease progression)
    fe = dz["fatal_events"]
    for cz, pts in fe.items():
        sel = rows[dead & (cause == cz)]
        if not len(sel):
            continue
        term = np.asarray([tid[p] for p in pts], dtype=np.int64)[rng.integers(0, len(pts), len(sel))]
        floor_d = np.where(
            o.sct[sel] & (cz in ("GRAFT VERSUS HOST DISEASE", "TRANSPLANT-RELATED")), o.sct_day[sel] + 1, 0
        )
        st = np.clip(D[sel] - _ints(rng, dz["fatal_onset_days"], len(sel)), floor_d, D[sel])
        ae.add(sel, term, st, D[sel], 5, key=True, fatal=True)

    # --- VOD: fatal ones above, the rest non-fatal after SCT or an inotuzumab dose
    fsel = rows[vod_fatal]
    f_on = np.clip(D[fsel] - _ints(rng, vz["fatal_onset_days"], len(fsel)), ref[fsel] + 1, D[fsel])
    ae.add(fsel, tid["Venoocclusive liver disease"], f_on, D[fsel], 5, key=True, fatal=True)
    use_sct = o.sct & (rng.random(n) < 0.75)
    on = np.where(
        use_sct,
        o.sct_day + _ints(rng, vz["onset_after_sct_days"], n),
        _kth_dose(rng, ino_days, n_ino) + _ints(rng, vz["onset_after_ino_days"], n),
    )
    ok = on < L
    w = np.where(ok, np.where(use_sct, float(vz["weight_sct"]), 1.0), 1e-6)
    vod_nf = _pick(rng, np.where(vod_fatal, 0.0, w), k_vod - int(vod_fatal.sum()))
    on = np.minimum(on, L)
    vsel = rows[vod_nf]
    ae.add(
        vsel,
        tid["Venoocclusive liver disease"],
        on[vsel],
        on[vsel] + _ints(rng, vz["duration_days"], len(vsel)),
        _grades(rng, vz["grades"], len(vsel)),
        key=True,
    )
    vod_on = np.full(n, -1, dtype=np.int64)
    vod_on[fsel], vod_on[vsel] = f_on, on[vsel]
    vod_any = vod_fatal | vod_nf
    vb = P["labs"]["vod_bilirubin"]
    va = rows[vod_any]
    labs.add(va, vod_on[va], "BILI", np.round(rng.uniform(float(vb[0]), float(vb[1]), len(va)), 1), 1)

    # --- grade 3-4 hyperbilirubinaemia
    hz = tx["hyperbilirubinaemia"]
    hb = _pick(
        rng, np.where(vod_any, float(hz["weight_vod"]), 1.0), quota(n, C["grade34_hyperbilirubinaemia"], T["of"])
    )
    h_on = np.where(
        vod_any,
        vod_on + rng.integers(0, 4, n),
        _kth_dose(rng, ino_days, n_ino) + _ints(rng, hz["onset_after_ino_days"], n),
    )
    h_on = np.minimum(h_on, L)
    hs = rows[hb]
    hg = _grades(rng, hz["grades"], len(hs))
    ae.add(hs, tid["Hyperbilirubinaemia"], h_on[hs], h_on[hs] + _ints(rng, hz["duration_days"], len(hs)), hg, key=True)
    hval = np.where(hg >= 4, rng.uniform(10.2, 20.0, len(hs)), rng.uniform(3.1, 9.9, len(hs))) * uln
    labs.add(hs, h_on[hs], "BILI", np.round(hval, 1), 0)

    # --- grade 3-4 (prolonged) thrombocytopenia: one episode in each of courses 1, 3, 5 ...
    tz = tx["thrombocytopenia"]
    thr = _pick(
        rng, np.where(int(tz["min_alive_days"]) <= L, 1.0, 0.15), quota(n, C["grade34_thrombocytopenia"], T["of"])
    )
    n_ep = np.asarray([int(k) for k in tz["episodes"]], dtype=np.int64)[_cat(rng, n, tz["episodes"])]
    for j in range(max(int(k) for k in tz["episodes"])):
        c = 2 * j
        if c >= b.s.shape[1]:
            break
        st = b.s[:, c] + _ints(rng, tz["onset_course_day"], n) - 1
        keep = thr & (n_ep > j) & (((c < o.ncourse) & (st <= L)) if j else True)
        st = np.minimum(st, L) if j == 0 else st
        sel = rows[keep]
        gr = _grades(rng, tz["grades"], len(sel))
        ae.add(sel, tid["Thrombocytopenia"], st[sel], st[sel] + _ints(rng, tz["duration_days"], len(sel)), gr, key=True)
        plt = np.where(gr >= 4, rng.uniform(5.0, 24.9, len(sel)), rng.uniform(25.0, 49.9, len(sel)))
        labs.add(sel, st[sel], "PLAT", np.round(plt, 1), 0)
    low = ~thr & (rng.random(n) < float(tz["low_grade_others"]))
    st = b.s[:, 0] + _ints(rng, tz["onset_course_day"], n) - 1
    sel = rows[low & (st <= L)]
    gr = rng.integers(1, 3, len(sel))
    ae.add(sel, tid["Thrombocytopenia"], st[sel], st[sel] + _ints(rng, [7, 21], len(sel)), gr, key=False)
    lg = P["labs"]["low_grade_platelets"]
    lo_v = np.where(gr == 1, float(lg[1][0]), float(lg[2][0]))
    hi_v = np.where(gr == 1, float(lg[1][1]), float(lg[2][1]))
    labs.add(sel, st[sel], "PLAT", np.round(lo_v + rng.random(len(sel)) * (hi_v - lo_v), 1), 0)

    # --- grade 3-4 infections
    iz = tx["infection"]
    inf = _pick(rng, np.where(L >= 7, 1.0, 0.2), quota(n, C["grade34_infection"], T["of"]))
    n_ep = np.asarray([int(k) for k in iz["episodes"]], dtype=np.int64)[_cat(rng, n, iz["episodes"])]
    inf_terms = np.asarray([tid[t] for t in iz["terms"]], dtype=np.int64)
    window = np.maximum(np.minimum(o.eot_day + 30, L), 5)
    for j in range(max(int(k) for k in iz["episodes"])):
        during = 5 + np.floor(rng.random(n) * (window - 4)).astype(np.int64)
        post = o.sct_day + rng.integers(5, 101, n)
        st = np.where(o.sct & (rng.random(n) < float(iz["post_sct_share"])), post, during)
        keep = inf & (n_ep > j) & ((st <= L) if j else True)
        st = np.minimum(st, L)
        sel = rows[keep]
        ae.add(
            sel,
            inf_terms[_cat(rng, len(sel), iz["terms"])],
            st[sel],
            st[sel] + _ints(rng, iz["duration_days"], len(sel)),
            _grades(rng, iz["grades"], len(sel)),
            key=True,
        )

    # --- acute GVHD after transplant (not for GVHD deaths, which have their grade-5 event)
    gz = tx["gvhd"]
    st = o.sct_day + _ints(rng, gz["onset_after_sct_days"], n)
    sel = rows[o.sct & (cause != "GRAFT VERSUS HOST DISEASE") & (st <= L) & (rng.random(n) < float(gz["probability"]))]
    ae.add(
        sel,
        tid["Acute graft versus host disease"],
        st[sel],
        st[sel] + _ints(rng, gz["duration_days"], len(sel)),
        _grades(rng, gz["grades"], len(sel)),
        key=False,
    )

    # --- other adverse events during therapy
    wa = np.maximum(np.minimum(o.eot_day + int(P["adverse_events"]["window_after_eot_days"]), L), 0)
    for ev in P["other_events"]:
        first = rng.random(n) < float(ev["probability"])
        second = first & (rng.random(n) < float(ev["repeat"]))
        for occ in (first, second):
            st = np.floor(rng.random(n) * (wa + 1)).astype(np.int64)
            sel = rows[occ]
            ae.add(
                sel,
                tid[ev["pt"]],
                st[sel],
                st[sel] + _ints(rng, ev["duration_days"], len(sel)),
                _grades(rng, ev["grades"], len(sel)),
                key=False,
            )

    # --- routine labs: first-dose day (baseline) and day 1 of every later course
    lz = P["labs"]
    rt, lim = lz["routine"], lz["limits"]
    kmax = b.s.shape[1]
    for k in range(kmax):
        sel = rows[k < o.ncourse]
        day = b.s[sel, k]
        if k == 0:
            state = np.zeros(len(sel), dtype=np.int64)
        else:
            in_rem = o.resp[sel] & (day >= o.r[sel]) & (day < o.E[sel])
            state = np.where(in_rem, 1, 2)
        for test in LAB_TESTS:
            vals = np.zeros(len(sel))
            for si, st_name in enumerate(("baseline", "remission", "active")):
                spec = rt[st_name].get(test)
                if spec is not None:
                    vals = np.where(state == si, _lognormal(rng, spec, len(sel)), vals)
            if k == 0 and test == "WBC":
                vals = wbc[sel]
            vals = np.clip(vals, float(lim[test][0]), float(lim[test][1]))
            if test == "PLAT" and k > 0:
                vals = np.where(thr[sel], vals, np.maximum(vals, 50.0 + rng.uniform(0, 30, len(sel))))
            labs.add(sel, day, test, np.round(vals, 2 if test in ("NEUT", "BILI") else 1), 2)
    return cause, ae.arrays(), labs


def _ae_frame(
    a: dict[str, npt.NDArray[Any]], o: _Outcome, rng: np.random.Generator, P: dict[str, Any], ids: OArr, start: IArr
) -> tuple[int, dict[str, Any]]:
    order = np.lexsort((a["term"], a["start"], a["subj"]))
    a = {k: v[order] for k, v in a.items()}
    subj, term, st, en, grade = a["subj"], a["term"], a["start"], a["end"], a["grade"]
    key, fatal = a["key"].astype(bool), a["fatal"].astype(bool)
    m = len(subj)
    first = np.searchsorted(subj, subj, side="left")
    spid = np.arange(m) - first + 1
    L = o.L[subj]
    ongoing = ~fatal & (en > L)
    az = P["adverse_events"]
    out_codes = np.asarray(
        [
            "FATAL",
            "RECOVERING/RESOLVING",
            "NOT RECOVERED/NOT RESOLVED",
            "RECOVERED/RESOLVED WITH SEQUELAE",
            "RECOVERED/RESOLVED",
        ],
        dtype=object,
    )
    out = out_codes[
        np.where(
            fatal,
            0,
            np.where(
                ongoing,
                np.where(~o.dead[subj] & (rng.random(m) < float(az["recovering_when_ongoing"])), 1, 2),
                np.where(rng.random(m) < float(az["sequelae"]), 3, 4),
            ),
        )
    ]
    partial = ~key & ~fatal & ~ongoing & (rng.random(m) < float(az["partial_end_date"]))
    end_days = start[subj] + en
    end_str = _date_strings(end_days, missing=ongoing)
    if partial.any():
        end_str[partial] = _month_strings(end_days[partial])
    terms = P["terms"]
    names = list(terms)
    pt = np.asarray(names, dtype=object)
    soc = np.asarray([terms[t]["soc"] for t in names], dtype=object)
    verb = np.asarray([terms[t]["verbatim"] for t in names], dtype=object)
    rel = np.asarray([terms[t]["rel"] for t in names], dtype=object)
    ser_p = np.asarray([float(terms[t]["serious"]) for t in names])
    ser = (grade >= 4) | (rng.random(m) < ser_p[term])
    vod = _choose(term == names.index("Venoocclusive liver disease"), "Y", "N")
    return m, {
        "SUBJID": ids[subj],
        "AESPID": spid,
        "AETERM": verb[term],
        "AEPT": pt[term],
        "AESOC": soc[term],
        "AESTDT": _date_strings(start[subj] + st),
        "AEENDT": end_str,
        "AEGRADE": grade,
        "AESER": _choose(ser, "Y", "N"),
        "AEREL": rel[term],
        "AEOUT": out,
        "AEVOD": vod,
    }


def _lab_frame(lb: _Labs, P: dict[str, Any], ids: OArr, start: IArr) -> tuple[int, dict[str, Any]]:
    subj, day, test = np.concatenate(lb.subj), np.concatenate(lb.day), np.concatenate(lb.test)
    value, prio = np.concatenate(lb.value), np.concatenate(lb.prio)
    order = np.lexsort((prio, test, day, subj))
    subj, day, test, value = subj[order], day[order], test[order], value[order]
    keep = np.r_[True, (subj[1:] != subj[:-1]) | (day[1:] != day[:-1]) | (test[1:] != test[:-1])]
    subj, day, test, value = subj[keep], day[keep], test[keep], value[keep]
    units = np.asarray([str(P["labs"]["units"][t]) for t in LAB_TESTS], dtype=object)
    return len(subj), {
        "SUBJID": ids[subj],
        "LBDT": _date_strings(start[subj] + day),
        "LBTEST": np.asarray(LAB_TESTS, dtype=object)[test],
        "LBVAL": value,
        "LBUNIT": units[test],
    }
