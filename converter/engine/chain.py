"""The chain records -> SDTM -> ADaM -> FHIR NDJSON for one partition of subjects.

:func:`run_partition` is THE per-partition function: every engine calls it, the local streaming engine
(:mod:`converter.engine.stream`) in worker processes, the Spark engine (:mod:`converter.engine.spark`) in its
Arrow UDFs; the engines only read a partition's raw tables, schedule partitions and merge what comes back. Its
steps (:func:`sdtm_of`, :func:`adam_of`, :func:`ndjson_of`, :func:`findings_of`) are pure functions; what they
produce is handed to a :class:`~converter.engine.outputs.PartitionFiles`, the one place that writes.
:func:`load_chain` loads and checks every spec once, before any
data is read, and builds what belongs to the study rather than to a subject: the trial-design datasets (TS, TA,
TE) and the study-level FHIR resources.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from converter.engine.outputs import MAX_PROBLEMS, PartitionFiles, PartResult, peak_mib
from converter.errors import Problem
from converter.records.model import Records
from converter.records.raw import RawRead

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
        result = Builder(*fhir_stage, text=True).build(study_sets, levels=("study",))
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
) -> Iterator[tuple[dict[str, list[bytes]], list[Problem]]]:
    """The subject-level FHIR resources of a partition as NDJSON (type -> its lines in build order, each without
    its newline), ``chunk`` subjects at a time, with the problems met (references that resolve nowhere, duplicate
    identifiers). Built as one column of lines per source (``Builder(columnar=True)``), no object per resource."""
    from converter.fhir.to_fhir import Builder, no_gc, subject_partitions

    if chain.fhir is None:
        return
    for part in subject_partitions(sdtm, chunk):
        with no_gc():
            result = Builder(*chain.fhir, columnar=True).build(part, levels=("subject",), made_elsewhere=chain.made)
        yield lines_by_type(result), result.problems


def lines_by_type(result: Any) -> dict[str, list[bytes]]:
    """The NDJSON lines of a ``Builder(columnar=True)`` result per resource type, in build order (its sources'
    columns of lines put end to end; the result's blocks are spent)."""
    by_type: dict[str, list[bytes]] = {}
    for block in result.blocks:
        got = by_type.get(block.rtype)
        if got is None:
            by_type[block.rtype] = block.lines
        else:
            got += block.lines
    result.blocks.clear()
    return by_type


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


def subjects_of(raw: RawRead) -> list[str]:
    """Every subject identifier of a partition's raw tables, sorted."""
    subj = [t.frame["SUBJID"] for t in raw.tables.values() if "SUBJID" in t.frame.columns and len(t.frame)]
    return sorted(set(pd.concat(subj, ignore_index=True).dropna().astype(str))) if subj else []


def run_partition(chain: Chain, index: int, raw: RawRead, files: PartitionFiles, rules: bool = True) -> PartResult:
    """One partition of subjects, start to finish: the record checks of its raw tables (with the problems the
    reader met), the typing, then :func:`sdtm_of`, :func:`adam_of`, with ``rules`` :func:`findings_of`, and
    :func:`ndjson_of` when the chain has a FHIR stage, each result handed to ``files``. Findings on the
    study-level datasets go to ``study_findings`` (the engine reports them once). Problems in the records stop
    the partition before any file is written. CPU seconds per stage in ``seconds`` (``parquet``: writing the SDTM and
    ADaM datasets, apart from the steps that make them; ``fhir`` includes writing its NDJSON)."""
    import time
    from collections import Counter

    from converter.records.checks import check_tables, typed_records

    res = PartResult(index=index)
    clock = time.process_time()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.process_time()
        res.seconds[stage] = res.seconds.get(stage, 0.0) + now - clock
        clock = now

    report = check_tables(raw.tables, chain.forms)
    res.problems = (raw.problems + report.errors)[:MAX_PROBLEMS]
    res.warnings = len(report.warnings)
    res.subjects = subjects_of(raw)
    if res.problems:
        lap("read")
        return res
    records = typed_records(raw.tables, chain.forms, report.parsed)
    raw.tables.clear()  # the typed records replace the raw text (the caller's RawRead is spent)
    del report
    lap("read")

    frames, res.accounting = sdtm_of(chain, records)
    del records
    lap("sdtm")
    res.sdtm_rows = files.datasets("sdtm", frames)
    lap("parquet")

    adam = adam_of(chain, frames)
    res.adam_checks = adam.checks
    lap("adam")
    res.adam_rows = files.datasets("adam", adam.datasets)
    lap("parquet")
    if rules:
        found = findings_of(chain, frames, adam.datasets, with_study=True)
        res.study_findings = [f for f in found if f.dataset in chain.study_sets]
        found = [f for f in found if f.dataset not in chain.study_sets]
        res.rule_counts = dict(Counter(f"{f.severity}:{f.rule_id}" for f in found))
        res.findings = found[:MAX_PROBLEMS]
        lap("validate")
    del adam

    if chain.fhir is not None:
        for lines, problems in ndjson_of(chain, frames):
            res.fhir_problems += problems[: MAX_PROBLEMS - len(res.fhir_problems)]
            for rtype, n in files.ndjson(lines).items():
                res.fhir_counts[rtype] = res.fhir_counts.get(rtype, 0) + n
        files.close()
        res.written = dict(files.written)
        lap("fhir")
    res.peak_rss_mib = peak_mib()
    return res
