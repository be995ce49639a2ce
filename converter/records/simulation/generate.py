"""``simulate``: a synthetic cohort from the model, deterministic per seed."""

from __future__ import annotations

import numpy as np

from converter.records.model import Records
from converter.records.schema import FormSchema, load_forms
from converter.records.simulation.calibration import calibrated_outcome
from converter.records.simulation.cohort import draw_baseline
from converter.records.simulation.model import check_model, default_seed, load_parameters
from converter.records.simulation.writer import write_records

__all__ = ["simulate"]


def simulate(n: int = 59, seed: int | None = None, schema: FormSchema | None = None) -> Records:
    """A synthetic cohort of ``n`` subjects: every form of ``schema`` (default ``forms.yaml``), normalised.

    Deterministic per ``seed`` (default: the model's calibrated ``calibration.default_seed``). The published
    counts hold exactly (scaled as ``round(n * count / targets.of)``); for ``calibration.min_n <= n <=
    calibration.max_n`` the survival figures are calibrated to the targets.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    schema = schema or load_forms()
    P = load_parameters()
    check_model(P, schema)
    seed = default_seed() if seed is None else seed
    rng = np.random.Generator(np.random.PCG64(seed))
    b = draw_baseline(rng, n, P)
    o = calibrated_outcome(b, seed, P)
    return write_records(b, o, rng, P, schema)
