"""A synthetic cohort generator driven by a clinical model (``mappings/records/simulation.yaml``).

No patient-level data of a trial may be public; the generator draws a cohort whose aggregates reproduce the
published ones and whose histories are internally consistent. Everything about the trial is in the model:
strata, response codes, terms and MedDRA SOCs, grades, rates, time windows, the dosing schedule, the
toxicities (each a generator ``kind``), the calibration targets and seed, and which form field receives each
drawn quantity. This package is the mechanism:

``model``        loading the model and checking it against forms.yaml (and the MedDRA SOCs)
``draws``        column-wise random draws, exact quotas, date strings
``cohort``       baseline: sex, age, strata, dates, the course calendar
``outcome``      response, transplant, remission, death, therapy, follow-up, assessments
``calibration``  Kaplan-Meier / log-rank and the choice of the sub-draw that meets the survival targets
``events``       causes of death, adverse events, labs
``writer``       the records of every form
``generate``     :func:`simulate`

What holds, for every seed: the published counts as exact quotas ``round(n * count / of)`` (sex, responders,
complete responses, MRD-negative responders, transplants, the subjects with each counted toxicity) and the
age median / min / max (n >= 3); consistent histories (consent <= enrolment < first dose; courses per the
schedule, stopping at death, relapse or transplant; nothing after death or the last contact; causes of death
that fit). Survival times come from mixture-cure Weibull models per disease state, accelerated per stratum,
drawn with stratified uniforms; for ``calibration.min_n <= n <= calibration.max_n`` up to
``calibration.max_subdraws`` outcome draws (seeded by ``[seed, k]``) are tried in order and the first whose
Kaplan-Meier figures meet every target within the internal tolerance, under both day conventions, is kept.

Everything is generated column-wise with numpy (Python loops run over courses, schedule items, AE terms and
candidate sub-draws only, never over subjects or rows), deterministic per seed
(``numpy.random.Generator(PCG64(seed))``); n = 100,000 takes about 5 s (about 1 GB peak).
"""

from __future__ import annotations

from converter.records.simulation.calibration import km, logrank_p
from converter.records.simulation.draws import DAYS_PER_MONTH, quota
from converter.records.simulation.generate import simulate
from converter.records.simulation.model import check_model, default_seed, load_parameters, simulation_path

__all__ = [
    "DAYS_PER_MONTH",
    "check_model",
    "default_seed",
    "km",
    "load_parameters",
    "logrank_p",
    "quota",
    "simulate",
    "simulation_path",
]
