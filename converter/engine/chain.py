"""The chain records -> SDTM -> ADaM -> FHIR NDJSON for one partition of subjects, as pure functions (no I/O).

Every engine calls these same functions: the local streaming engine (:mod:`converter.engine.stream`) in worker
processes, the Spark engine in its pandas UDFs. :func:`load_chain` loads and checks every spec once, before any
data is read, and builds what belongs to the study rather than to a subject: the trial-design datasets (TS, TA,
TE) and the study-level FHIR resources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from converter.errors import Problem
from converter.records.model import Records

FHIR_CHUNK = 500  # subjects whose resources are built at once (resources are dicts, far bigger than rows)


@dataclass
class Chain:
    """Specs, CT and study-level results, loaded and checked once; shared read-only by every partition."""

    forms: Any
    sdtm_specs: dict[str, Any]
    subject_specs: dict[str, Any]
    ct: Any
    study_sets: dict[str, pd.DataFrame]
    fhir: tuple[Any, Any, Any] | None
    study_ndjson: dict[str, bytes]
    made: frozenset[str]
    adam_specs: dict[str, Any]


def load_chain(fhir: bool = True) -> Chain:
    """Every spec of every stage checked, study-level SDTM datasets and FHIR resources built."""
    from converter.adam.pipeline import load_adam_specs
    from converter.records.model import empty_frame
    from converter.records.partitions import is_study_level
    from converter.sdtm.build import build_all
    from converter.sdtm.pipeline import load_sdtm_specs

    specs, ct, forms = load_sdtm_specs()
    adam_specs, _ = load_adam_specs()  # errors in the ADaM specs stop the run before any data is read
    study = {n: s for n, s in specs.items() if is_study_level(s)}
    empty = {oid: empty_frame(f) for oid, f in forms.forms.items()}
    study_sets, _ = build_all(study, empty, ct, forms)
    fhir_stage: tuple[Any, Any, Any] | None = None
    made: frozenset[str] = frozenset()
    study_ndjson: dict[str, bytes] = {}
    if fhir:
        from converter.fhir.mapping import load_fhir_stage
        from converter.fhir.ndjson import ndjson_lines
        from converter.fhir.to_fhir import Builder

        fhir_stage = load_fhir_stage()
        result = Builder(*fhir_stage).build(study_sets, levels=("study",))
        made = frozenset(r.uuid for r in result.resources)
        study_ndjson = ndjson_lines(result)
    return Chain(
        forms=forms,
        sdtm_specs=specs,
        subject_specs={n: s for n, s in specs.items() if n not in study},
        ct=ct,
        study_sets=study_sets,
        fhir=fhir_stage,
        study_ndjson=study_ndjson,
        made=made,
        adam_specs=adam_specs,
    )


def sdtm_of(chain: Chain, records: Records) -> tuple[dict[str, pd.DataFrame], Any]:
    """The subject-level SDTM datasets of a partition's records (in key order) and the record accounting."""
    from converter.records.partitions import stack
    from converter.sdtm.build import build_all

    frames, accounting = build_all(chain.subject_specs, records, chain.ct, chain.forms)
    return stack([frames], chain.sdtm_specs), accounting


def adam_of(chain: Chain, sdtm: Mapping[str, pd.DataFrame]) -> Any:
    """The ADaM datasets (and cross-dataset check failures) of a partition's subject-level SDTM datasets."""
    from converter.adam.pipeline import sdtm_to_adam

    return sdtm_to_adam({**chain.study_sets, **sdtm})


def ndjson_of(
    chain: Chain, sdtm: Mapping[str, pd.DataFrame], chunk: int = FHIR_CHUNK
) -> Iterator[tuple[dict[str, bytes], list[Problem]]]:
    """The subject-level FHIR resources of a partition as NDJSON (type -> lines), ``chunk`` subjects at a time,
    with the problems met (references that resolve nowhere, duplicate identifiers)."""
    from converter.fhir.ndjson import ndjson_lines
    from converter.fhir.to_fhir import Builder, no_gc, subject_partitions

    if chain.fhir is None:
        return
    for part in subject_partitions(sdtm, chunk):
        with no_gc():
            result = Builder(*chain.fhir).build(part, levels=("subject",), made_elsewhere=chain.made)
        yield ndjson_lines(result), result.problems


def findings_of(
    chain: Chain, sdtm: Mapping[str, pd.DataFrame], adam: Mapping[str, pd.DataFrame], with_study: bool
) -> list[Any]:
    """The SDTM and ADaM conformance rules of ``inoconv validate`` on a partition's datasets (row numbers are
    the partition's, so they are dropped: the subject says where). Findings on the study-level datasets only
    ``with_study`` (one partition reports them)."""
    import dataclasses

    from converter.validate.adam_rules import run_adam_rules
    from converter.validate.sdtm_rules import run_sdtm_rules

    found = run_sdtm_rules({**chain.study_sets, **sdtm}, chain.sdtm_specs, chain.ct)
    found += run_adam_rules(dict(adam), chain.adam_specs)
    return [
        dataclasses.replace(f, row=None) if f.row is not None else f
        for f in found
        if with_study or f.dataset not in chain.study_sets
    ]
