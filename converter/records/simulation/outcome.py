"""What happens to each subject, drawn column-wise: response (exact quotas), transplant, remission and
death (mixture-cure Weibull per state, accelerated per stratum, stratified uniforms), courses given, end of
treatment, follow-up and the response assessments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from converter.records.simulation.cohort import Baseline
from converter.records.simulation.draws import (
    NEVER,
    BArr,
    IArr,
    OArr,
    by_stratum,
    cat,
    cure_weibull_days,
    ints,
    labels,
    pick,
    pick_groups,
    pick_within,
    quota,
    strat_uniform,
    take,
)
from converter.records.simulation.model import strata

__all__ = ["Outcome", "draw_outcome"]


@dataclass
class Outcome:
    resp: BArr
    cr: BArr
    best: IArr  # index into response.codes
    first: IArr  # value of the first remission assessment (responders)
    mrdneg: BArr
    rc: IArr  # course whose assessment first shows the response
    r: IArr  # first response day
    sct: BArr
    sct_day: IArr
    E: IArr  # end of remission (relapse or death in remission), NEVER if none
    nrm: BArr  # remission ends by death
    D: IArr  # death day (NEVER if none within reach)
    nr_type: IArr  # index into response.codes for non-responders
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


def draw_outcome(b: Baseline, g: np.random.Generator, P: dict[str, Any]) -> Outcome:
    """One draw of what happens to every subject: response, transplant, remission, death, therapy, follow-up."""
    n, salv, s, a = b.n, b.stratum, b.s, b.a
    S = strata(P)
    R = {str(c): i for i, c in enumerate(P["response"]["codes"])}
    ends = P["treatment"]["end_reasons"]
    T, C = P["targets"], P["targets"]["counts"]
    rp, tp, sv, tr = P["response"], P["transplant"], P["survival"], P["treatment"]
    rows = np.arange(n)

    # --- response (exact quotas)
    ns = len(S)
    k_resp = quota(n, C["responders"], T["of"])
    resp = pick_within(g, by_stratum(rp["responder_weight"], S, salv), k_resp, salv, ns)
    k_cr = min(quota(n, C["complete_response"], T["of"]), k_resp)
    cr = pick(g, np.where(resp, by_stratum(rp["cr_weight"], S, salv), 0.0), k_cr)
    other = np.asarray([R[str(c)] for c in rp["other_responses"]], dtype=np.int64)[cat(g, n, rp["other_responses"])]
    nr_type = np.asarray([R[str(c)] for c in rp["nonresponse"]], dtype=np.int64)[cat(g, n, rp["nonresponse"])]
    best = np.where(cr, R[str(rp["complete"])], np.where(resp, other, nr_type))
    seen = [R[str(c)] for c in rp["cr_first_seen_as_codes"]]
    seen_as = np.where(g.random(n) < 0.5, seen[0], seen[1])
    first = np.where(cr & (g.random(n) < float(rp["cr_first_seen_as"])), seen_as, best)
    k_mrd = min(quota(n, C["mrd_negative"], T["of"]), k_resp)
    mrdneg = pick(g, np.where(resp, np.where(cr, float(rp["mrd_weight_cr"]), 1.0), 0.0), k_mrd)
    rc = np.where(resp & (g.random(n) < float(rp["first_response_course_2"])), 2, 1).astype(np.int64)
    r = take(s, rc - 1) + take(a, rc - 1)

    # --- transplant (exact quota among responders)
    knots = np.asarray(tp["weight_by_age"], dtype=np.float64)
    w_age = knots[np.searchsorted(knots[:, 0], b.age, side="right") - 1, 1]
    w_sct = by_stratum(tp["weight_by_stratum"], S, salv) * np.maximum(w_age, 1e-6)
    w_sct = w_sct * np.where(b.prior_transplant, float(tp["weight_prior_sct"]), 1.0)
    sct = pick_within(g, np.where(resp, w_sct, 0.0), min(quota(n, C["transplant"], T["of"]), k_resp), salv, ns)
    kb = np.asarray([int(k) for k in tp["courses_before"]], dtype=np.int64)[cat(g, n, tp["courses_before"])]
    ksct = np.maximum(kb, rc)
    sct_day = np.where(sct, take(s, ksct - 1) + ints(g, tp["days_after_last_course"], n), NEVER)

    # --- survival: remission end for responders, death for non-responders (stratified draws)
    groups = np.where(resp, salv * 2 + sct, 6 + salv).astype(np.int64)
    u = strat_uniform(g, groups)
    rn, rs, nr = sv["remission_no_sct"], sv["remission_after_sct"], sv["nonresponder"]
    f_time = np.asarray([float(sv["stratum_effect"][x]["time"]) for x in S])[salv]
    f_cure = np.asarray([float(sv["stratum_effect"][x]["cure"]) for x in S])[salv]
    mrd_t = np.where(mrdneg, 1.0, float(sv["mrd_positive"]["time"]))
    mrd_c = np.where(mrdneg, 1.0, float(sv["mrd_positive"]["cure"]))
    cure = np.where(sct, float(rs["cure"]), float(rn["cure"])) * f_cure * mrd_c
    med = np.where(sct, float(rs["median"]), float(rn["median"])) * f_time * mrd_t
    shape = np.where(sct, float(rs["shape"]), float(rn["shape"]))
    mins = sv["min_days"]
    t_rem = cure_weibull_days(u, np.clip(cure, 0.0, 0.95), med, shape)
    t_rem = np.maximum(t_rem, np.where(sct, float(mins["post_sct"]), float(mins["remission"])))
    E_f = np.where(sct, sct_day, r) + t_rem
    # deaths in remission: an exact share of each (stratum x transplant) cell
    cell = np.where(resp, salv * 2 + sct, 2 * ns).astype(np.int64)
    size = np.bincount(cell, minlength=2 * ns + 1)[: 2 * ns]
    p_nrm = np.tile([float(rn["nrm"]), float(rs["nrm"])], ns)
    alloc = np.r_[np.floor(size * p_nrm + g.random(2 * ns)).astype(np.int64), 0]
    nrm = pick_groups(g, resp.astype(np.float64), cell, alloc)
    pr = sv["post_relapse"]
    u_prs = strat_uniform(g, np.where(resp, salv, ns).astype(np.int64))
    prs = cure_weibull_days(u_prs, np.zeros(n), float(pr["median"]) * f_time, np.full(n, float(pr["shape"])))
    prs = np.maximum(prs, float(mins["post_relapse"]))
    t_nr = cure_weibull_days(
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
    early_rsn = labels(tr["early_stop_reasons"])[cat(g, n, tr["early_stop_reasons"])]
    base_k = np.zeros(len(R), dtype=np.int64)
    extra_p = np.zeros(len(R), dtype=np.float64)
    for code, k in tr["nonresponder_courses"].items():
        base_k[R[str(code)]] = int(k)
    for code, p in (tr.get("nonresponder_extra_course") or {}).items():
        extra_p[R[str(code)]] = float(p)
    k_nr = base_k[nr_type] + (g.random(n) < extra_p[nr_type])
    kplan = np.where(resp, np.where(sct, ksct, k_rn), k_nr).astype(np.int64)
    dose_stop = np.where(resp, E, D)
    given = (np.arange(kmax)[None, :] < kplan[:, None]) & (s < dose_stop[:, None])
    ncourse = given.sum(axis=1).astype(np.int64)

    cd = int(tr["course_days"])
    plan_end_rn = take(s, k_rn - 1) + cd
    nr_assess = take(s, k_nr - 1) + take(a, k_nr - 1)
    eot_rn = np.where(plan_end_rn >= E, E, plan_end_rn)
    rsn_rn = np.where(
        plan_end_rn >= E,
        np.where(nrm, ends["death"], ends["relapse"]),
        np.where(k_rn == kmax, ends["completed"], early_rsn),
    )
    eot_nr = np.where(nr_assess >= D, D, nr_assess)
    rsn_nr = np.where(
        nr_assess >= D,
        ends["death"],
        np.where(nr_type == R[str(rp["progression"])], ends["progression"], ends["no_response"]),
    )
    eot_rs = np.minimum(take(s, np.maximum(ncourse, 1) - 1) + cd, sct_day - 1)
    eot_day = np.where(resp, np.where(sct, eot_rs, eot_rn), eot_nr).astype(np.int64)
    eot_reason = np.where(resp, np.where(sct, ends["transplant"], rsn_rn), rsn_nr).astype(object)

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

    return Outcome(
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
