"""The drawn cohort as records: every form of forms.yaml, canonical (normalised) frames, written where the
model's ``records:`` section says (per role, a form and the field of each item).

The draws made here (investigators, demography, the diagnosis form, response assessment details, donors,
relapse sites, AE outcomes) keep their fixed order, so a cohort is reproducible per seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from converter.records.model import Records
from converter.records.schema import Form, FormSchema
from converter.records.simulation.cohort import Baseline
from converter.records.simulation.draws import (
    DAYS_PER_MONTH,
    EPOCH,
    FArr,
    IArr,
    OArr,
    by_stratum,
    cat,
    choose,
    date_strings,
    day,
    labels,
    lognormal,
    month_strings,
    scaled_beta,
    uniform,
)
from converter.records.simulation.events import LabRows, draw_events
from converter.records.simulation.model import MEDDRA_KEYS, meddra_socs, schedule, strata
from converter.records.simulation.outcome import Outcome

__all__ = ["write_records"]


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

    def __init__(self, schema: FormSchema, roles: dict[str, dict[str, str]]) -> None:
        self.schema = schema
        self.roles = roles
        self.frames: dict[str, pd.DataFrame] = {}

    def put(self, role: str, m_rows: int, items: dict[str, Any]) -> None:
        """The ``m_rows`` records of a role: ``items`` by item name, written to the role's form and fields."""
        spec = self.roles.get(role)
        if spec is None:  # an optional role the model leaves out
            return
        form = self.schema.forms.get(spec["form"])
        if form is None:
            return
        fr = _Frame(form, m_rows)
        for item, values in items.items():
            name = spec.get(item)
            if name in form.fields:
                fr.set(name, values)
        self.frames[form.oid] = fr.frame()

    def records(self) -> Records:
        return {oid: self.frames.get(oid, _Frame(form, 0).frame()) for oid, form in self.schema.forms.items()}


def _subject_ids(n: int, P: dict[str, Any]) -> OArr:
    ids = P["ids"]
    if n <= int(ids["small_max_n"]):
        return np.arange(int(ids["small_base"]) + 1, int(ids["small_base"]) + 1 + n).astype(str).astype(object)
    width = max(int(ids["large_width"]), len(str(n)))
    if width > 8:
        raise ValueError(f"n = {n} needs SUBJID longer than 8 characters")
    return np.char.zfill(np.arange(1, n + 1).astype(str), width).astype(object)


def _birth_dates(rng: np.random.Generator, consent: IArr, age: IArr) -> IArr:
    """Birth dates consistent with the integer age at consent."""
    dt = consent.astype("datetime64[D]")
    y = dt.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (dt - dt.astype("datetime64[M]")).astype(np.int64) + 1
    dd = np.where((mo == 2) & (dd == 29), 28, dd)
    anniv = pd.to_datetime(pd.DataFrame({"year": y - age, "month": mo, "day": dd})).to_numpy().astype("datetime64[D]")
    back = rng.integers(0, 365, size=len(consent))
    return np.asarray((anniv - EPOCH).astype(np.int64) - back, dtype=np.int64)


def write_records(b: Baseline, o: Outcome, rng: np.random.Generator, P: dict[str, Any], schema: FormSchema) -> Records:
    """Every form of ``schema`` for the drawn cohort (subject-level forms first, then events and labs)."""
    n = b.n
    ids = _subject_ids(n, P)
    built = _Built(schema, P["records"])
    rows = np.arange(n)
    yes, no = (str(c) for c in P["records"]["yes_no"])

    inv = P["ids"]["investigators"]
    built.put(
        "enrolment",
        n,
        {
            "subject": ids,
            "site": str(P["ids"]["site"]),
            "consent": date_strings(b.consent),
            "enrolment": date_strings(b.enrol),
            "investigator": labels(inv)[cat(rng, n, inv)],
        },
    )
    dm = P["demography"]
    built.put(
        "demography",
        n,
        {
            "subject": ids,
            "birth": date_strings(_birth_dates(rng, b.consent, b.age)),
            "age": b.age,
            "sex": choose(b.female, str(dm["sex_codes"]["female"]), str(dm["sex_codes"]["male"])),
            "race": labels(dm["race"])[cat(rng, n, dm["race"])],
            "ethnic": labels(dm["ethnic"])[cat(rng, n, dm["ethnic"])],
            "country": str(dm["country"]),
        },
    )
    wbc = _diagnosis(b, rng, P, ids, built, yes, no)
    built.put("dosing", *_dosing_rows(b, o, P, ids))
    m_rs, rs_items = _response_rows(o, rng, P, ids, b.start)
    built.put("response", m_rs, {**rs_items, "visit": visit_codes(P, b, o, o.rs_subj, o.rs_day)})

    tp = P["transplant"]
    sc = rows[o.sct]
    built.put(
        "transplant",
        len(sc),
        {
            "subject": ids[sc],
            "date": date_strings(b.start[sc] + o.sct_day[sc]),
            "donor": labels(tp["donor"])[cat(rng, len(sc), tp["donor"])],
        },
    )
    rl = rows[o.relapsed]
    site = P["response"]["relapse_site"]
    built.put(
        "relapse",
        len(rl),
        {
            "subject": ids[rl],
            "date": date_strings(b.start[rl] + o.E[rl]),
            "visit": visit_codes(P, b, o, rl, o.E[rl]),
            "site": labels(site)[cat(rng, len(rl), site)],
        },
    )
    built.put(
        "end_of_treatment",
        n,
        {"subject": ids, "date": date_strings(b.start + o.eot_day), "courses": o.ncourse, "reason": o.eot_reason},
    )
    st = P["follow_up"]["status"]
    status_codes = np.asarray([st["alive"], st["dead"], st["lost"]], dtype=object)
    status = status_codes[np.where(o.dead, 1, np.where(o.lost, 2, 0))]
    built.put("follow_up", n, {"subject": ids, "last_alive": date_strings(b.start + o.L), "status": status})

    ev = draw_events(b, o, rng, P, wbc)
    dd = rows[o.dead]
    built.put(
        "death", len(dd), {"subject": ids[dd], "date": date_strings(b.start[dd] + o.D[dd]), "cause": ev.cause[dd]}
    )
    built.put("adverse_events", *_ae_rows(ev.ae, o, rng, P, ids, b.start, yes, no))
    care = _supportive_care_rows(b, o, rng, P, ids)  # its draws change nothing else
    _response_counts(ev.labs, rng, P, o, rs_items["response"])  # after every other draw: derived values
    built.put("labs", *_lab_rows(ev.labs, P, ids, b, o))
    built.put("supportive_care", *care)
    return built.records()


def _response_counts(labs: LabRows, rng: np.random.Generator, P: dict[str, Any], o: Outcome, codes: OArr) -> None:
    """The blood counts on each remission assessment's date that agree with its category (labs.response_counts:
    category -> test -> [low, high], uniform); priority -1: they replace a routine count of the same day and test."""
    spec = P["labs"].get("response_counts") or {}
    for cat_code, tests in spec.items():
        sel = np.flatnonzero(codes == str(cat_code))
        for test, (lo, hi) in tests.items():
            v = float(lo) + rng.random(len(sel)) * (float(hi) - float(lo))
            labs.add(o.rs_subj[sel], o.rs_day[sel], str(test), np.round(v, int(P["labs"]["decimals"][test])), -1)


def _supportive_care_rows(
    b: Baseline, o: Outcome, rng: np.random.Generator, P: dict[str, Any], ids: OArr
) -> tuple[int, dict[str, Any]]:
    """One record per supportive-care agent a subject receives (``supportive_care`` of the model; none without)."""
    agents = P.get("supportive_care") or []
    n = b.n
    if not agents or n == 0:
        return 0, {"subject": np.empty(0, dtype=object)}
    share = np.asarray([float(a["share"]) for a in agents])
    given = rng.random((n, len(agents))) < share[None, :]
    si, ai = np.nonzero(given)
    first = b.start[si] + np.asarray([int(a.get("start_day", 0)) for a in agents], dtype=np.int64)[ai]
    days = np.asarray([int(a.get("days", 0)) for a in agents], dtype=np.int64)[ai]
    eot = b.start[si] + o.eot_day[si]
    last = np.where(days > 0, first + days - 1, np.maximum(eot, first))
    alive = b.start[si] + o.L[si]  # nothing is given after the last day the subject is known alive
    first, last = np.minimum(first, alive), np.minimum(last, alive)
    number = np.zeros(len(si), dtype=np.int64)
    if len(si):
        number = (np.arange(len(si)) - np.searchsorted(si, si)) + 1  # 1..k per subject (si is sorted)
    return len(si), {
        "subject": ids[si],
        "number": number,
        "treatment": np.asarray([str(a["treatment"]) for a in agents], dtype=object)[ai],
        "indication": np.asarray([str(a.get("indication", "")) or None for a in agents], dtype=object)[ai],
        "start": date_strings(first),
        "end": date_strings(last),
    }


def _diagnosis(
    b: Baseline, rng: np.random.Generator, P: dict[str, Any], ids: OArr, built: _Built, yes: str, no: str
) -> FArr:
    """The diagnosis form; returns the baseline WBC (the routine labs' baseline value)."""
    n = b.n
    S = strata(P)
    dg = P["diagnosis"]
    rng_m = np.asarray([dg["months_since_diagnosis"][s] for s in S], dtype=np.float64)[b.stratum]
    months = rng_m[:, 0] + rng.random(n) * (rng_m[:, 1] - rng_m[:, 0])
    diag_day = b.enrol - np.floor(months * DAYS_PER_MONTH).astype(np.int64)
    diagdt = np.where(
        rng.random(n) < float(dg["partial_diagnosis_date"]), month_strings(diag_day), date_strings(diag_day)
    )
    mk = dg["marker"]
    positive = rng.random(n) < float(mk["positive"])
    cyto = labels(dg["cytogenetics"])[cat(rng, n, dg["cytogenetics"])]
    cyto[positive] = str(mk["cytogenetics"])
    lo_w, hi_w = (float(x) for x in dg["wbc_limits"])
    wbc: FArr = np.asarray(np.round(np.clip(lognormal(rng, dg["wbc_lognormal"], n), lo_w, hi_w), 1), dtype=np.float64)
    xp = dg["extra_prior_regimens"]
    extra = np.minimum(rng.geometric(float(xp["p"]), n) - 1, int(xp["max"]))
    base = np.asarray([int(dg["prior_regimens"][s]) for s in S], dtype=np.int64)[b.stratum]
    is_open = np.asarray([s in {str(x) for x in xp["open"]} for s in S], dtype=bool)[b.stratum]
    nprior = (base + np.where(is_open, extra, 0)).astype(np.int64)
    pa = dg["prior_agent"]
    agent_ok = b.enrol >= day(pa["available"])
    agent = agent_ok & (rng.random(n) < by_stratum(pa["share"], S, b.stratum))
    reg = labels(dg["frontline"])[cat(rng, n, dg["frontline"])].astype(str)
    names = [reg]
    for k in range(1, int(nprior.max())):
        name = labels(dg["later_regimens"])[cat(rng, n, dg["later_regimens"])].astype(str)
        name = np.where(agent & (k == nprior - 1), str(pa["regimen"]), name)
        names.append(name)
        reg = np.where(k < nprior, np.char.add(np.char.add(reg, "; "), name), reg)
    _prior_therapy_rows(names, nprior, ids, built)
    mb, te = dg["marrow_blasts"], dg["target_expression"]
    built.put(
        "diagnosis",
        n,
        {
            "subject": ids,
            "date": diagdt,
            "stratum": np.asarray(S, dtype=object)[b.stratum],
            "marker": choose(positive, str(mk["codes"]["positive"]), str(mk["codes"]["negative"])),
            "cytogenetics": cyto,
            "marrow_blasts": np.round(scaled_beta(rng, mb, n), 1),
            "target_expression": np.round(scaled_beta(rng, te, n), 1),
            "wbc": wbc,
            "prior_regimens": nprior,
            "prior_regimen_names": reg.astype(object),
            "prior_transplant": choose(b.prior_transplant, yes, no),
            "prior_agent": choose(agent, yes, no),
        },
    )
    return wbc


def _prior_therapy_rows(names: list[Any], nprior: IArr, ids: OArr, built: _Built) -> None:
    """One prior-therapy row per prior regimen (the same draws as the diagnosis form's list; none of its own)."""
    n = len(nprior)
    k = np.arange(len(names), dtype=np.int64)
    given = k[None, :] < nprior[:, None]
    si, ki = np.nonzero(given)
    table = np.asarray(names, dtype=object).T if n else np.empty((0, len(names)), dtype=object)
    built.put(
        "prior_therapy",
        len(si),
        {
            "subject": ids[si],
            "number": ki + 1,
            "treatment": table[si, ki],
        },
    )


def _dosing_rows(b: Baseline, o: Outcome, P: dict[str, Any], ids: OArr) -> tuple[int, dict[str, Any]]:
    """One dosing row per drug / course / day actually given."""
    n = b.n
    sched = schedule(P)
    give = np.zeros((n, len(sched)), dtype=bool)
    for t, it in enumerate(sched):
        c = it["course"]
        m = (c <= o.ncourse) & (b.s[:, c - 1] + it["day"] - 1 < o.dose_stop)
        if "when" in it:
            m &= b.subgroups[str(it["when"])]
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
        "subject": ids[si],
        "course": s_course[ti],
        "drug": obj("drug")[ti],
        "day": s_day[ti],
        "date": date_strings(adm),
        "dose": np.where(b.amended[si], s_amend[ti], s_dose[ti]),
        "unit": obj("unit")[ti],
        "frequency": obj("freq")[ti],
        "route": obj("route")[ti],
    }


def _response_rows(
    o: Outcome, rng: np.random.Generator, P: dict[str, Any], ids: OArr, start: IArr
) -> tuple[int, dict[str, Any]]:
    rp = P["response"]
    codes = [str(c) for c in rp["codes"]]
    R = {c: i for i, c in enumerate(codes)}
    last_responder = len(rp["other_responses"])  # responders come first: the complete response, then the others
    partial, none = R[str(rp["partial"])], R[str(rp["no_response"])]
    subj, day_, course = o.rs_subj, o.rs_day, o.rs_course
    m = len(subj)
    resp = o.resp[subj]
    r = o.r[subj]
    rem = resp & (day_ >= r)
    first_row = resp & (day_ == r)
    n_rem = np.bincount(subj[rem], minlength=len(o.resp))[subj]
    firstpos = np.r_[True, subj[1:] != subj[:-1]] if m else np.zeros(0, dtype=bool)
    pre_val = np.where(rng.random(m) < float(rp["partial_before_response"]), partial, none)
    nr_t = o.nr_type[subj]
    nr_val = np.where(nr_t == partial, np.where(firstpos | (rng.random(m) < 0.5), partial, none), nr_t)
    val = np.where(
        rem, np.where(first_row & (n_rem >= 2), o.first[subj], o.best[subj]), np.where(resp, pre_val, nr_val)
    )
    neg = o.mrdneg[subj]
    late_neg = first_row & (n_rem >= 2) & (rng.random(m) >= float(rp["mrd_negative_from_first"]))
    mc = rp["mrd_codes"]
    mrd_codes = np.asarray([mc["negative"], mc["positive"], mc["not_done"]], dtype=object)
    mrd_rem = np.where(neg & ~late_neg, 0, np.where(rng.random(m) < float(rp["mrd_not_done"]), 2, 1))
    mrd_act = np.where(rng.random(m) < float(rp["mrd_not_done_active"]), 2, 1)
    mrd_i = np.where(rem, mrd_rem, mrd_act)
    mrd = mrd_codes[mrd_i]
    bl = rp["marrow_blasts"]
    blast = np.select(
        [val <= last_responder, val == partial, val == none],
        [
            uniform(rng, bl["responder"], m),
            uniform(rng, bl["partial"], m),
            uniform(rng, bl["none"], m),
        ],
        uniform(rng, bl["progression"], m),
    )
    blast = np.round(blast, 1)
    lo, hi = (float(x) for x in rp["mrd_positive_level"])
    lvl_rem = np.exp(rng.uniform(np.log(lo), np.log(hi), m))
    lvl = np.where(mrd_i == 1, np.where(rem, lvl_rem, np.clip(blast * rng.uniform(0.5, 1.0, m), lo, 100.0)), np.nan)
    lvl = np.round(lvl, 3)
    return m, {
        "subject": ids[subj],
        "date": date_strings(start[subj] + day_),
        "course": (course, course == 0),
        "response": np.asarray(codes, dtype=object)[val],
        "marrow_blasts": blast,
        "mrd": mrd,
        "mrd_level": lvl,
    }


def _ae_rows(
    a: dict[str, npt.NDArray[Any]],
    o: Outcome,
    rng: np.random.Generator,
    P: dict[str, Any],
    ids: OArr,
    start: IArr,
    yes: str,
    no: str,
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
    oc = az["outcomes"]
    out_codes = np.asarray(
        [oc["fatal"], oc["recovering"], oc["not_recovered"], oc["sequelae"], oc["recovered"]], dtype=object
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
    end_str = date_strings(end_days, missing=ongoing)
    if partial.any():
        end_str[partial] = month_strings(end_days[partial])
    terms = P["terms"]
    names = list(terms)
    pt = np.asarray(names, dtype=object)
    soc = np.asarray([terms[t]["soc"] for t in names], dtype=object)
    verb = np.asarray([terms[t]["verbatim"] for t in names], dtype=object)
    rel = np.asarray([terms[t]["rel"] for t in names], dtype=object)
    ser_p = np.asarray([float(terms[t]["serious"]) for t in names])
    ser = (grade >= 4) | (rng.random(m) < ser_p[term])
    flagged = np.isin(term, [names.index(t) for t in az["flag_terms"]])
    coding = _meddra_items(P, names, term)
    criteria = {
        crit: np.where(ser, choose(np.isin(grade, [int(g) for g in (grades or [])]), yes, no), np.asarray(None)).astype(
            object
        )
        for crit, grades in az["seriousness"].items()
    }
    act = az["action"]
    after = st > o.eot_day[subj]
    action = np.where(
        after,
        act["after_treatment"],
        np.where(
            fatal,
            act["fatal"],
            np.where(ser | (grade >= int(act["interrupt_from_grade"])), act["interrupted"], act["other"]),
        ),
    ).astype(object)
    return m, {
        "subject": ids[subj],
        "number": spid,
        "verbatim": verb[term],
        "term": pt[term],
        "soc": soc[term],
        "start": date_strings(start[subj] + st),
        "end": end_str,
        "grade": grade,
        "serious": choose(ser, yes, no),
        "relationship": rel[term],
        "outcome": out,
        "flag": choose(flagged, yes, no),
        **coding,
        **criteria,
        "action": action,
    }


def _meddra_items(P: dict[str, Any], names: list[str], term: IArr) -> dict[str, Any]:
    """The MedDRA coding of each event (``meddra`` of the model; null where a code is unconfirmed) and the
    SOC code of its primary SOC (mappings/ct/meddra-soc.yaml)."""
    md, socs = P["meddra"], meddra_socs()
    items: dict[str, Any] = {}
    for key in MEDDRA_KEYS:
        table = [md[t].get(key) for t in names]
        if key.endswith("_code"):
            vals = np.asarray([0 if v is None else int(v) for v in table], dtype=np.int64)[term]
            items[key] = (vals, np.asarray([v is None for v in table], dtype=bool)[term])
        else:
            items[key] = np.asarray(table, dtype=object)[term]
    items["soc_code"] = np.asarray([int(socs[P["terms"][t]["soc"]]) for t in names], dtype=np.int64)[term]
    return items


def visit_codes(P: dict[str, Any], b: Baseline, o: Outcome, subj: IArr, day: IArr) -> OArr:
    """The visit (``treatment.visits``) of records of subjects ``subj`` on ``day`` (days from the first dose):
    screening before the first dose, course n from its day 1 until the next course given starts, follow-up
    after the end of treatment."""
    vz = P["treatment"]["visits"]
    starts = b.s[subj]
    k_all = starts.shape[1]
    given = np.arange(k_all)[None, :] < o.ncourse[subj][:, None]
    k = ((starts <= day[:, None]) & given).sum(axis=1)
    names = [str(vz["screening"])] + [str(vz["course"]).format(n=i) for i in range(1, k_all + 1)]
    codes = np.asarray([*names, str(vz["follow_up"])], dtype=object)
    out: OArr = codes[np.where(day > o.eot_day[subj], k_all + 1, k)]
    return out


def _lab_rows(lb: LabRows, P: dict[str, Any], ids: OArr, b: Baseline, o: Outcome) -> tuple[int, dict[str, Any]]:
    subj, day_, test = np.concatenate(lb.subj), np.concatenate(lb.day), np.concatenate(lb.test)
    value, prio = np.concatenate(lb.value), np.concatenate(lb.prio)
    order = np.lexsort((prio, test, day_, subj))
    subj, day_, test, value = subj[order], day_[order], test[order], value[order]
    keep = np.r_[True, (subj[1:] != subj[:-1]) | (day_[1:] != day_[:-1]) | (test[1:] != test[:-1])]
    subj, day_, test, value = subj[keep], day_[keep], test[keep], value[keep]
    units = np.asarray([str(P["labs"]["units"][t]) for t in lb.tests], dtype=object)
    return len(subj), {
        "subject": ids[subj],
        "date": date_strings(b.start[subj] + day_),
        "visit": visit_codes(P, b, o, subj, day_),
        "test": np.asarray(lb.tests, dtype=object)[test],
        "value": value,
        "unit": units[test],
    }
