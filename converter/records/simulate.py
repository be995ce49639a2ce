"""The synthetic cohort: the public entry point of :mod:`converter.records.simulation`.

``simulate(n, seed)`` returns :data:`~converter.records.model.Records` (every form of ``forms.yaml``,
normalised) for ``n`` subjects, drawn from the clinical model in ``mappings/records/simulation.yaml``.
``DEFAULT_SEED`` is the model's calibrated default seed (``calibration.default_seed``), read from the model
when first asked for.
"""

from __future__ import annotations

from converter.records.simulation import (
    DAYS_PER_MONTH,
    check_model,
    default_seed,
    km,
    load_parameters,
    logrank_p,
    quota,
    simulate,
    simulation_path,
)

__all__ = [
    "DAYS_PER_MONTH",
    "DEFAULT_SEED",
    "check_model",
    "default_seed",
    "km",
    "load_parameters",
    "logrank_p",
    "quota",
    "simulate",
    "simulation_path",
]

DEFAULT_SEED: int


def __getattr__(name: str) -> int:
    if name == "DEFAULT_SEED":
        return default_seed()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
