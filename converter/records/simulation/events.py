"""Causes of death, adverse events and the lab results behind them, drawn column-wise from the model.

The toxicities with published counts are exact quotas of subjects; each toxicity's mechanism is its ``kind``
(see :data:`~converter.records.simulation.model.TOXICITY_KINDS`), its term, grades, timing and lab come from
the model. The draws run in a fixed order: causes of death and their fatal events, then the toxicities
(dose-or-transplant, dose-related, course-episodes, term-episodes, after-transplant), the other events and
the routine labs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from converter.records.simulation.cohort import Baseline
from converter.records.simulation.draws import (
    BArr,
    FArr,
    IArr,
    OArr,
    cat,
    grades,
    ints,
    labels,
    lognormal,
    pick,
    quota,
    take,
)
from converter.records.simulation.model import schedule, toxicity
from converter.records.simulation.outcome import Outcome

__all__ = ["AeRows", "Events", "LabRows", "draw_events", "lab_tests"]


class AeRows:
    """Adverse events as column parts: subject, term index, start and end day, grade, key and fatal flags."""

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


def lab_tests(P: dict[str, Any]) -> tuple[str, ...]:
    """The lab tests (``labs.units``), alphabetical: the LAB key order."""
    return tuple(sorted(str(t) for t in P["labs"]["units"]))


@dataclass
class LabRows:
    """Lab results as column parts; ``prio`` decides which of two results of a day and test is kept."""

    tests: tuple[str, ...]
    subj: list[IArr] = field(default_factory=list)
    day: list[IArr] = field(default_factory=list)
    test: list[IArr] = field(default_factory=list)
    value: list[FArr] = field(default_factory=list)
    prio: list[IArr] = field(default_factory=list)

    def add(self, subj: IArr, day: IArr, test: str, value: npt.NDArray[Any], prio: int) -> None:
        self.subj.append(np.asarray(subj, dtype=np.int64))
        self.day.append(np.asarray(day, dtype=np.int64))
        self.test.append(np.full(len(subj), self.tests.index(test), dtype=np.int64))
        self.value.append(np.asarray(value, dtype=np.float64))
        self.prio.append(np.full(len(subj), prio, dtype=np.int64))


@dataclass
class Events:
    cause: OArr  # cause of death per subject (None if alive)
    ae: dict[str, npt.NDArray[Any]]
    labs: LabRows


def _study_doses(b: Baseline, o: Outcome, P: dict[str, Any]) -> tuple[IArr, IArr]:
    """Days of the study drug's doses actually given (n x its administrations, a prefix) and their count."""
    drug = str(P["treatment"]["study_drug"])
    items = [it for it in schedule(P) if str(it["drug"]) == drug]
    days = np.stack([b.s[:, it["course"] - 1] + it["day"] - 1 for it in items], axis=1)
    given = (np.asarray([it["course"] for it in items])[None, :] <= o.ncourse[:, None]) & (days < o.dose_stop[:, None])
    return days, given.sum(axis=1).astype(np.int64)


def _kth_dose(rng: np.random.Generator, days: IArr, count: IArr) -> IArr:
    k = np.minimum(np.floor(rng.random(len(count)) * np.maximum(count, 1)).astype(np.int64), days.shape[1] - 1)
    return take(days, k)


def _graded_values(rng: np.random.Generator, lab: dict[str, Any], gr: IArr, scale: float = 1.0) -> FArr:
    """A lab value per event by grade: ``grade_4`` range for grade 4+, else ``grade_3`` (drawn in that order)."""
    hi, lo = lab["grade_4"], lab["grade_3"]
    m = len(gr)
    vals = np.where(gr >= 4, rng.uniform(float(hi[0]), float(hi[1]), m), rng.uniform(float(lo[0]), float(lo[1]), m))
    return np.asarray(vals * scale, dtype=np.float64)


def draw_events(b: Baseline, o: Outcome, rng: np.random.Generator, P: dict[str, Any], wbc: FArr) -> Events:
    """Causes of death, adverse events and the labs behind them."""
    n = b.n
    rows = np.arange(n)
    T, C = P["targets"], P["targets"]["counts"]
    dz = P["deaths"]
    tid = {t: i for i, t in enumerate(P["terms"])}
    L, D, dead = o.L, o.D, o.dead
    ae = AeRows()
    labs = LabRows(lab_tests(P))
    doses, n_doses = _study_doses(b, o, P)
    last_dose = take(doses, np.maximum(n_doses, 1) - 1)

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
        cause[mask] = labels(dz[key])[cat(rng, n, dz[key])][mask]
    nrm_dead = dead & o.resp & o.nrm
    vz = toxicity(P, "dose-or-transplant")
    ref = np.where(o.sct, o.sct_day, last_dose)
    fatal_ok = nrm_dead & (D - ref <= int(vz["fatal_window_days"])) & (D - ref >= int(vz["fatal_min_days"]))
    k_vz = quota(n, C[vz["count"]], T["of"])
    vz_fatal = pick(rng, fatal_ok.astype(np.float64), int(np.floor(k_vz * float(vz["fatal_share"]) + 0.5)))
    cause[vz_fatal] = str(vz["cause"])
    c_sct = labels(dz["in_remission_after_sct"])[cat(rng, n, dz["in_remission_after_sct"])]
    c_no = labels(dz["in_remission_no_sct"])[cat(rng, n, dz["in_remission_no_sct"])]
    c_nrm = np.where(o.sct, c_sct, c_no)
    te = dz["too_early"]
    too_early = (c_nrm == str(te["cause"])) & (D - o.sct_day < int(te["min_days_after_transplant"]))
    c_nrm = np.where(too_early, str(te["instead"]), c_nrm)
    rest = nrm_dead & ~vz_fatal
    cause[rest] = c_nrm[rest]

    # fatal AEs (none for causes without fatal_events)
    after_sct = {str(c) for c in dz["after_transplant_causes"]}
    for cz, pts in dz["fatal_events"].items():
        sel = rows[dead & (cause == cz)]
        if not len(sel):
            continue
        term = np.asarray([tid[p] for p in pts], dtype=np.int64)[rng.integers(0, len(pts), len(sel))]
        floor_d = np.where(o.sct[sel] & (cz in after_sct), o.sct_day[sel] + 1, 0)
        st = np.clip(D[sel] - ints(rng, dz["fatal_onset_days"], len(sel)), floor_d, D[sel])
        ae.add(sel, term, st, D[sel], 5, key=True, fatal=True)

    # --- dose-or-transplant: the fatal cases above, the others after the transplant or a study-drug dose
    fsel = rows[vz_fatal]
    f_on = np.clip(D[fsel] - ints(rng, vz["fatal_onset_days"], len(fsel)), ref[fsel] + 1, D[fsel])
    ae.add(fsel, tid[vz["term"]], f_on, D[fsel], 5, key=True, fatal=True)
    use_sct = o.sct & (rng.random(n) < float(vz["after_sct_share"]))
    on = np.where(
        use_sct,
        o.sct_day + ints(rng, vz["onset_after_sct_days"], n),
        _kth_dose(rng, doses, n_doses) + ints(rng, vz["onset_after_ino_days"], n),
    )
    ok = on < L
    w = np.where(ok, np.where(use_sct, float(vz["weight_sct"]), 1.0), 1e-6)
    vz_other = pick(rng, np.where(vz_fatal, 0.0, w), k_vz - int(vz_fatal.sum()))
    on = np.minimum(on, L)
    vsel = rows[vz_other]
    ae.add(
        vsel,
        tid[vz["term"]],
        on[vsel],
        on[vsel] + ints(rng, vz["duration_days"], len(vsel)),
        grades(rng, vz["grades"], len(vsel)),
        key=True,
    )
    vz_on = np.full(n, -1, dtype=np.int64)
    vz_on[fsel], vz_on[vsel] = f_on, on[vsel]
    vz_any = vz_fatal | vz_other
    vb = vz["lab"]["range"]
    va = rows[vz_any]
    labs.add(va, vz_on[va], vz["lab"]["test"], np.round(rng.uniform(float(vb[0]), float(vb[1]), len(va)), 1), 1)

    # --- dose-related (grade 3-4), more likely among the dose-or-transplant cases
    hz = toxicity(P, "dose-related")
    hb = pick(rng, np.where(vz_any, float(hz["weight_after_event"]), 1.0), quota(n, C[hz["count"]], T["of"]))
    lo_e, hi_e = (int(x) for x in hz["onset_after_event_days"])
    h_on = np.where(
        vz_any,
        vz_on + rng.integers(lo_e, hi_e + 1, n),
        _kth_dose(rng, doses, n_doses) + ints(rng, hz["onset_after_ino_days"], n),
    )
    h_on = np.minimum(h_on, L)
    hs = rows[hb]
    hg = grades(rng, hz["grades"], len(hs))
    ae.add(hs, tid[hz["term"]], h_on[hs], h_on[hs] + ints(rng, hz["duration_days"], len(hs)), hg, key=True)
    scale = float(P["labs"][hz["lab"]["scale"]]) if "scale" in hz["lab"] else 1.0
    labs.add(hs, h_on[hs], hz["lab"]["test"], np.round(_graded_values(rng, hz["lab"], hg, scale), 1), 0)

    thr = _course_episodes(b, o, rng, P, ae, labs, tid)
    _term_episodes(o, rng, P, ae, tid)

    # --- after transplant (not for the deaths of `not_for_cause`, which have their grade-5 event)
    gz = toxicity(P, "after-transplant")
    st = o.sct_day + ints(rng, gz["onset_after_sct_days"], n)
    keep = o.sct & (cause != str(gz["not_for_cause"])) & (st <= L) & (rng.random(n) < float(gz["probability"]))
    sel = rows[keep]
    ae.add(
        sel,
        tid[gz["term"]],
        st[sel],
        st[sel] + ints(rng, gz["duration_days"], len(sel)),
        grades(rng, gz["grades"], len(sel)),
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
                st[sel] + ints(rng, ev["duration_days"], len(sel)),
                grades(rng, ev["grades"], len(sel)),
                key=False,
            )

    _routine_labs(b, o, rng, P, labs, wbc, thr)
    return Events(cause, ae.arrays(), labs)


def _course_episodes(
    b: Baseline, o: Outcome, rng: np.random.Generator, P: dict[str, Any], ae: AeRows, labs: LabRows, tid: dict[str, int]
) -> BArr:
    """Grade 3-4 episodes in courses 1, 3, 5 ... (exact quota of subjects), low-grade ones for some others;
    returns who has the grade 3-4 episodes."""
    n, rows, L = b.n, np.arange(b.n), o.L
    T, C = P["targets"], P["targets"]["counts"]
    tz = toxicity(P, "course-episodes")
    term, test = tid[tz["term"]], str(tz["lab"]["test"])
    weight = np.where(int(tz["min_alive_days"]) <= L, 1.0, float(tz["other_weight"]))
    thr = pick(rng, weight, quota(n, C[tz["count"]], T["of"]))
    n_ep = np.asarray([int(k) for k in tz["episodes"]], dtype=np.int64)[cat(rng, n, tz["episodes"])]
    for j in range(max(int(k) for k in tz["episodes"])):
        c = 2 * j
        if c >= b.s.shape[1]:
            break
        st = b.s[:, c] + ints(rng, tz["onset_course_day"], n) - 1
        keep = thr & (n_ep > j) & (((c < o.ncourse) & (st <= L)) if j else True)
        st = np.minimum(st, L) if j == 0 else st
        sel = rows[keep]
        gr = grades(rng, tz["grades"], len(sel))
        ae.add(sel, term, st[sel], st[sel] + ints(rng, tz["duration_days"], len(sel)), gr, key=True)
        labs.add(sel, st[sel], test, np.round(_graded_values(rng, tz["lab"], gr), 1), 0)
    lg = tz["low_grade"]
    low = ~thr & (rng.random(n) < float(lg["share"]))
    st = b.s[:, 0] + ints(rng, tz["onset_course_day"], n) - 1
    sel = rows[low & (st <= L)]
    g_lo, g_hi = min(int(k) for k in lg["values"]), max(int(k) for k in lg["values"])
    gr = rng.integers(g_lo, g_hi + 1, len(sel))
    ae.add(sel, term, st[sel], st[sel] + ints(rng, lg["duration_days"], len(sel)), gr, key=False)
    lo_tab = np.zeros(g_hi + 1)
    hi_tab = np.zeros(g_hi + 1)
    for g, (lo, hi) in lg["values"].items():
        lo_tab[int(g)], hi_tab[int(g)] = float(lo), float(hi)
    lo_v, hi_v = lo_tab[gr], hi_tab[gr]
    labs.add(sel, st[sel], test, np.round(lo_v + rng.random(len(sel)) * (hi_v - lo_v), 1), 0)
    return thr


def _term_episodes(o: Outcome, rng: np.random.Generator, P: dict[str, Any], ae: AeRows, tid: dict[str, int]) -> None:
    """Grade 3-4 episodes of terms drawn from a mix (exact quota of subjects), during therapy or after SCT."""
    n, rows, L = len(o.L), np.arange(len(o.L)), o.L
    T, C = P["targets"], P["targets"]["counts"]
    iz = toxicity(P, "term-episodes")
    weight = np.where(int(iz["min_alive_days"]) <= L, 1.0, float(iz["other_weight"]))
    inf = pick(rng, weight, quota(n, C[iz["count"]], T["of"]))
    n_ep = np.asarray([int(k) for k in iz["episodes"]], dtype=np.int64)[cat(rng, n, iz["episodes"])]
    terms = np.asarray([tid[t] for t in iz["terms"]], dtype=np.int64)
    first_day = int(iz["start_day"])
    window = np.maximum(np.minimum(o.eot_day + int(iz["window_after_eot_days"]), L), first_day)
    p_lo, p_hi = (int(x) for x in iz["post_sct_days"])
    for j in range(max(int(k) for k in iz["episodes"])):
        during = first_day + np.floor(rng.random(n) * (window - first_day + 1)).astype(np.int64)
        post = o.sct_day + rng.integers(p_lo, p_hi + 1, n)
        st = np.where(o.sct & (rng.random(n) < float(iz["post_sct_share"])), post, during)
        keep = inf & (n_ep > j) & ((st <= L) if j else True)
        st = np.minimum(st, L)
        sel = rows[keep]
        ae.add(
            sel,
            terms[cat(rng, len(sel), iz["terms"])],
            st[sel],
            st[sel] + ints(rng, iz["duration_days"], len(sel)),
            grades(rng, iz["grades"], len(sel)),
            key=True,
        )


def _routine_labs(
    b: Baseline, o: Outcome, rng: np.random.Generator, P: dict[str, Any], labs: LabRows, wbc: FArr, thr: BArr
) -> None:
    """Routine panel on the first-dose day (baseline) and day 1 of every later course."""
    rows = np.arange(b.n)
    lz = P["labs"]
    rt, lim, dec = lz["routine"], lz["limits"], lz["decimals"]
    from_diag = str(lz["baseline_from_diagnosis"])
    tz = toxicity(P, "course-episodes")
    floor_test, (floor_lo, floor_span) = str(tz["lab"]["test"]), (float(x) for x in tz["others_floor"])
    for k in range(b.s.shape[1]):
        sel = rows[k < o.ncourse]
        day = b.s[sel, k]
        if k == 0:
            state = np.zeros(len(sel), dtype=np.int64)
        else:
            in_rem = o.resp[sel] & (day >= o.r[sel]) & (day < o.E[sel])
            state = np.where(in_rem, 1, 2)
        for test in labs.tests:
            vals = np.zeros(len(sel))
            for si, st_name in enumerate(("baseline", "remission", "active")):
                spec = rt[st_name].get(test)
                if spec is not None:
                    vals = np.where(state == si, lognormal(rng, spec, len(sel)), vals)
            if k == 0 and test == from_diag:
                vals = wbc[sel]
            vals = np.clip(vals, float(lim[test][0]), float(lim[test][1]))
            if test == floor_test and k > 0:
                vals = np.where(thr[sel], vals, np.maximum(vals, floor_lo + rng.uniform(0, floor_span, len(sel))))
            labs.add(sel, day, test, np.round(vals, int(dec[test])), 2)
