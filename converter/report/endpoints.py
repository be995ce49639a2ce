"""The publication's end points, recomputed from the ADaM datasets only (ADSL, ADAE, ADTTE).

Definitions (each reads what the ADaM specs derived; nothing here goes back to SDTM):

* populations: treated = ADSL.SAFFL = Y; response denominators = ADSL.ITTFL = Y.
* overall response = ADSL.RESPFL = Y, complete response = ADSL.CRFL = Y; exact (Clopper-Pearson) 95% CIs.
* MRD negativity among responders = ADSL.MRDNEGFL = Y among RESPFL = Y; transplant = ADSL.TRANSFL = Y.
* grade 3-4 toxicities: subjects with an ADAE record of the category (any CQnnNAM column holding the category
  name the ADAE spec assigns) with ATOXGRN 3 or 4, over treated subjects; VOD at any grade. Every AE recorded on
  study counts (the publication reports toxicities over the whole study, VOD after transplant included), so
  no TRTEMFL filter is applied.
* survival: Kaplan-Meier (lifelines) on ADTTE, AVAL days -> months (/ 30.4375), event = CNSR 0. Median with
  the 95% CI of the log(-log) confidence band, 1-year (12-month) rate with its CI; OS at 1 year by ADTTE.SALVLN
  with the log-rank test across lines; median follow-up by reverse Kaplan-Meier (censorings as events) on OS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from lifelines.utils import median_survival_times
from scipy.stats import beta

DAYS_PER_MONTH = 365.25 / 12  # 30.4375
YEAR_MONTHS = 12.0
TOXICITIES = {  # end point key -> ADAE toxicity category (CQnnNAM value)
    "grade34_thrombocytopenia_prolonged": "PROLONGED THROMBOCYTOPENIA",
    "grade34_infection": "INFECTION",
    "grade34_hyperbilirubinemia": "HYPERBILIRUBINEMIA",
}
VOD_CATEGORY = "VOD"


@dataclass(frozen=True)
class Endpoint:
    """One figure: a count (with its rate and exact CI), a rate, a median (months) or a p-value."""

    key: str
    label: str
    kind: str  # "count" | "rate" | "median" | "pvalue" | "years"
    value: float | None
    n: int | None = None  # denominator (counts, rates) or subjects (survival)
    events: int | None = None  # events behind a survival figure
    ci: tuple[float | None, float | None] | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return d


@dataclass
class SurvivalFit:
    """A Kaplan-Meier fit kept for the plots."""

    label: str
    months: np.ndarray
    event: np.ndarray
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass
class Endpoints:
    items: list[Endpoint]
    fits: dict[str, SurvivalFit]

    def get(self, key: str) -> Endpoint:
        for e in self.items:
            if e.key == key:
                return e
        raise KeyError(key)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial confidence interval."""
    if n == 0:
        return (math.nan, math.nan)
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def _count(key: str, label: str, k: int, n: int, note: str = "") -> Endpoint:
    return Endpoint(key, label, "count", float(k), n=n, ci=clopper_pearson(k, n), note=note)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _fit(months: np.ndarray, event: np.ndarray, label: str) -> KaplanMeierFitter:
    return KaplanMeierFitter(label=label).fit(months, event_observed=event)


def km_median(kmf: KaplanMeierFitter) -> tuple[float | None, tuple[float | None, float | None]]:
    """Median survival (None when not reached) and its 95% CI from the confidence band."""
    med = _finite(float(kmf.median_survival_time_))
    ci = median_survival_times(kmf.confidence_interval_)
    return med, (_finite(float(ci.iloc[0, 0])), _finite(float(ci.iloc[0, 1])))


def km_rate(kmf: KaplanMeierFitter, t: float) -> tuple[float, tuple[float | None, float | None]]:
    """Survival probability at time ``t`` and its 95% CI (the step function's value at t)."""
    rate = float(kmf.survival_function_at_times(t).iloc[0])
    band = kmf.confidence_interval_survival_function_
    upto = band[band.index <= t]
    if upto.empty:
        return rate, (None, None)
    row = upto.iloc[-1]
    return rate, (_finite(float(row.iloc[0])), _finite(float(row.iloc[1])))


def _param(adtte: pd.DataFrame, paramcd: str) -> pd.DataFrame:
    part = adtte[adtte["PARAMCD"] == paramcd]
    if part.empty:
        raise ValueError(f"ADTTE has no PARAMCD {paramcd}")
    return part


def _times(part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    months = pd.to_numeric(part["AVAL"], errors="coerce").to_numpy(dtype=float) / DAYS_PER_MONTH
    event = (pd.to_numeric(part["CNSR"], errors="coerce").to_numpy(dtype=float) == 0).astype(int)
    if np.isnan(months).any():
        raise ValueError(f"ADTTE {part['PARAMCD'].iloc[0]}: AVAL missing for some subjects")
    return months, event


def _survival(key: str, label: str, months: np.ndarray, event: np.ndarray) -> list[Endpoint]:
    kmf = _fit(months, event, label)
    med, med_ci = km_median(kmf)
    rate, rate_ci = km_rate(kmf, YEAR_MONTHS)
    n, ev = len(months), int(event.sum())
    return [
        Endpoint(f"{key}_median", f"{label}: median (months)", "median", med, n=n, events=ev, ci=med_ci),
        Endpoint(f"{key}_1y", f"{label}: 1-year rate", "rate", rate, n=n, events=ev, ci=rate_ci),
    ]


def _flag(df: pd.DataFrame, var: str) -> pd.Series:
    return df[var].eq("Y").fillna(False).astype(bool)


def tox_subjects(adae: pd.DataFrame, category: str, grades: tuple[int, ...] | None) -> set[str]:
    """Subjects with an ADAE record of the category (any CQnnNAM) and, if given, ATOXGRN in ``grades``."""
    cq = [c for c in adae.columns if len(c) == 7 and c.startswith("CQ") and c.endswith("NAM")]
    if not cq:
        raise ValueError("ADAE has no CQnnNAM toxicity category variables")
    hit = np.zeros(len(adae), dtype=bool)
    for c in cq:
        hit |= adae[c].eq(category).fillna(False).to_numpy(dtype=bool)
    if grades is not None:
        grade = pd.to_numeric(adae["ATOXGRN"], errors="coerce")
        hit &= grade.isin(grades).to_numpy(dtype=bool)
    return set(adae.loc[hit, "USUBJID"].dropna())


def compute_endpoints(adam: Mapping[str, pd.DataFrame]) -> Endpoints:
    adsl, adae, adtte = adam["ADSL"], adam["ADAE"], adam["ADTTE"]
    treated = adsl[_flag(adsl, "SAFFL")]
    itt = adsl[_flag(adsl, "ITTFL")]
    n_trt, n_itt = len(treated), len(itt)
    items: list[Endpoint] = [
        Endpoint("treated", "Treated subjects", "count", float(n_trt), n=len(adsl)),
        Endpoint("female", "Female", "count", float((treated["SEX"] == "F").sum()), n=n_trt),
        Endpoint("male", "Male", "count", float((treated["SEX"] == "M").sum()), n=n_trt),
    ]
    age = pd.to_numeric(treated["AGE"], errors="coerce")
    items += [
        Endpoint("age_median", "Age: median (years)", "years", float(age.median()), n=n_trt),
        Endpoint("age_min", "Age: minimum (years)", "years", float(age.min()), n=n_trt),
        Endpoint("age_max", "Age: maximum (years)", "years", float(age.max()), n=n_trt),
    ]
    resp = _flag(itt, "RESPFL")
    n_resp = int(resp.sum())
    items += [
        _count("overall_response", "Overall response (CR, CRp, CRi, marrow CR)", n_resp, n_itt),
        _count("complete_response", "Complete response (CR)", int(_flag(itt, "CRFL").sum()), n_itt),
    ]
    mrd = int((_flag(itt, "MRDNEGFL") & resp).sum())
    rate = mrd / n_resp if n_resp else None
    label = "MRD negativity among responders"
    mrd_ci = clopper_pearson(mrd, n_resp)
    note = f"{mrd}/{n_resp}"
    items.append(Endpoint("mrd_negative_among_responders", label, "rate", rate, n_resp, ci=mrd_ci, note=note))
    items.append(_count("asct", "Allogeneic stem-cell transplant", int(_flag(itt, "TRANSFL").sum()), n_itt))
    safety = set(treated["USUBJID"])
    ae = adae[adae["USUBJID"].isin(safety)]
    labels = {
        "grade34_thrombocytopenia_prolonged": "Grade 3-4 prolonged thrombocytopenia",
        "grade34_infection": "Grade 3-4 infection",
        "grade34_hyperbilirubinemia": "Grade 3-4 hyperbilirubinemia",
    }
    for key, cat in TOXICITIES.items():
        items.append(_count(key, labels[key], len(tox_subjects(ae, cat, (3, 4))), n_trt))
    items.append(_count("vod", "Veno-occlusive disease (any grade)", len(tox_subjects(ae, VOD_CATEGORY, None)), n_trt))

    fits: dict[str, SurvivalFit] = {}
    os_part = _param(adtte, "OS")
    os_m, os_e = _times(os_part)
    items += _survival("os", "Overall survival", os_m, os_e)
    rfs_m, rfs_e = _times(_param(adtte, "RFS"))
    items += _survival("rfs", "Relapse-free survival", rfs_m, rfs_e)
    fits["os"] = SurvivalFit("Overall survival", os_m, os_e)
    fits["rfs"] = SurvivalFit("Relapse-free survival (responders)", rfs_m, rfs_e)

    lines = os_part["SALVLN"].astype(object).where(os_part["SALVLN"].notna(), "missing").to_numpy(dtype=object)
    by_line = SurvivalFit("Overall survival by salvage line", os_m, os_e)
    for line in sorted(set(lines)):
        sel = lines == line
        by_line.groups[str(line)] = (os_m[sel], os_e[sel])
        rate, ci = km_rate(_fit(os_m[sel], os_e[sel], f"Salvage {line}"), YEAR_MONTHS)
        key = "os_1y_salvage_" + str(line).replace("+", "_plus")
        items.append(Endpoint(key, f"Overall survival at 1 year, salvage {line}", "rate", rate, n=int(sel.sum()),
                              events=int(os_e[sel].sum()), ci=ci))  # fmt: skip
    fits["os_by_salvage"] = by_line
    test = multivariate_logrank_test(os_m, lines, os_e)
    items.append(Endpoint("os_by_salvage_logrank_p", "Log-rank test of OS across salvage lines (p)", "pvalue",
                          float(test.p_value), n=len(os_m), events=int(os_e.sum())))  # fmt: skip
    rev = _fit(os_m, 1 - os_e, "Follow-up")
    fu, fu_ci = km_median(rev)
    items.append(Endpoint("median_followup", "Median follow-up, reverse Kaplan-Meier (months)", "median", fu,
                          n=len(os_m), events=int((1 - os_e).sum()), ci=fu_ci))  # fmt: skip
    return Endpoints(items=items, fits=fits)
