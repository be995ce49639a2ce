"""The output folder of ``inoconv fhir``: ``bundles/study.json``, ``bundles/<USUBJID>.json``, ``ndjson/<Type>.ndjson``.

Subjects are converted in partitions (a pure function of the partition's rows), each written out before the next
is built, so memory stays flat whatever the number of subjects. The folder appears whole or not at all
(:func:`converter.io.atomic.atomic_dir`). Under ``strict`` every Bundle is validated with the R4 models, every
reference must resolve (``urn:uuid`` inside the subject's Bundle, conditional references against the study
Bundle) and every identifier must be unique; any failure raises ConformanceError and nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from converter.errors import ConformanceError, Problem
from converter.fhir.bundles import iter_bundles
from converter.fhir.mapping import FhirSpecs
from converter.fhir.ndjson import NdjsonWriter
from converter.fhir.provenance import Origin, stamp
from converter.fhir.resource_checks import parse_conditional, validate_resource
from converter.fhir.to_fhir import Builder, FhirResult, no_gc, subject_partitions
from converter.spec.model import DatasetSpec, Terminology

PARTITION = 500  # subjects per partition


@dataclass
class FhirWrite:
    bundles: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


class _StrictChecks:
    """References and identifiers across all Bundles, R4 validation of each (only under ``strict``)."""

    def __init__(self) -> None:
        self.idents: dict[tuple[str, str, str], str] = {}
        self.messages: list[str] = []
        self.conditional: list[tuple[str, int, str]] = []

    def bundle(self, name: str, data: bytes) -> None:
        bundle = orjson.loads(data)
        for element, msg in validate_resource(bundle):
            self.messages.append(f"bundles/{name}: {element}: {msg}")
        full = {e.get("fullUrl") for e in bundle.get("entry", ())}
        for i, e in enumerate(bundle.get("entry", ())):
            res = e.get("resource", {})
            rtype = res.get("resourceType", "")
            ids = res.get("identifier")
            for ident in ids if isinstance(ids, list) else [ids] if isinstance(ids, dict) else []:
                key = (rtype, str(ident.get("system")), str(ident.get("value")))
                if key in self.idents and self.idents[key] != f"{name} entry[{i}]":
                    self.messages.append(f"bundles/{name}: entry[{i}]: identifier {key} also in {self.idents[key]}")
                self.idents.setdefault(key, f"{name} entry[{i}]")
            for ref in _refs(res):
                if ref.startswith("urn:uuid:"):
                    if ref not in full:
                        self.messages.append(f"bundles/{name}: entry[{i}]: {ref} is not an entry of the Bundle")
                elif parse_conditional(ref) is None:
                    self.messages.append(f"bundles/{name}: entry[{i}]: unexpected reference {ref}")
                else:
                    self.conditional.append((name, i, ref))

    def finish(self) -> list[str]:
        for name, i, ref in self.conditional:
            cond = parse_conditional(ref)
            assert cond is not None
            if cond not in self.idents:
                self.messages.append(f"bundles/{name}: entry[{i}]: {ref} matches no resource of the output")
        return self.messages


def _refs(node: Any) -> list[str]:
    out: list[str] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            ref = cur.get("reference")
            if isinstance(ref, str):
                out.append(ref)
            stack.extend(v for v in cur.values() if isinstance(v, dict | list))
        elif isinstance(cur, list):
            stack.extend(v for v in cur if isinstance(v, dict | list))
    return out


@dataclass
class NdjsonPartition:
    """What :func:`write_ndjson_partition` wrote: resources per type, the problems met, and the ids of the
    resources made (pass those of the study level as ``made_elsewhere`` to the subject partitions)."""

    counts: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    made: frozenset[str] = frozenset()

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


def write_ndjson_partition(
    datasets: Mapping[str, pd.DataFrame],
    ndjson: Path | NdjsonWriter,
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    levels: tuple[str, ...] = ("subject",),
    made_elsewhere: frozenset[str] = frozenset(),
    chunk: int = PARTITION,
) -> NdjsonPartition:
    """SDTM frames -> FHIR Bulk Data NDJSON only (no Bundles): ``<Type>.ndjson`` in the folder ``ndjson`` (created;
    files opened, appended to, and closed here) or through an open :class:`NdjsonWriter` (left open).

    For a streaming pipeline: once ``levels=("study",)`` on the study-level datasets (its ``made`` is then the
    ``made_elsewhere`` of every subject partition), then per subject partition ``levels=("subject",)`` into that
    partition's folder. Subject-level sources are built ``chunk`` subjects at a time (memory stays flat); within
    a file, resources come in USUBJID order, then in the order the specs build them. References to resources
    neither built here nor in ``made_elsewhere`` and duplicate identifiers are problems, not errors.
    """
    report = NdjsonPartition()
    made: set[str] = set()
    writer = NdjsonWriter(ndjson) if isinstance(ndjson, Path) else ndjson
    owned = isinstance(ndjson, Path)
    if owned:
        writer.__enter__()
    try:

        def emit(result: FhirResult) -> None:
            counts = writer.write(result)
            report.problems.extend(result.problems)
            for k, v in counts.items():
                report.counts[k] = report.counts.get(k, 0) + v
            made.update(r.uuid for r in result.resources)

        if "study" in levels:
            with no_gc():
                study = Builder(specs, ct, sdtm_specs, text=True)
                emit(study.build(datasets, levels=("study",), made_elsewhere=made_elsewhere))
        if "subject" in levels:
            elsewhere = made_elsewhere | frozenset(made)
            for part in subject_partitions(datasets, chunk):
                with no_gc():
                    built = Builder(specs, ct, sdtm_specs, text=True)
                    emit(built.build(part, levels=("subject",), made_elsewhere=elsewhere))
    finally:
        if owned:
            writer.close()
    report.counts = dict(sorted(report.counts.items()))
    report.made = frozenset(made)
    return report


def write_fhir_dir(
    datasets: Mapping[str, pd.DataFrame],
    out: Path,
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    strict: bool = False,
    partition: int = PARTITION,
    origin: Origin | None = None,
    deid_mark: Path | None = None,
) -> FhirWrite:
    """Convert and write the whole FHIR output folder; returns counts and the problems of the input.

    ``origin``: every Bundle gets its Provenance (and, when de-identified, every resource the security label; see
    :mod:`converter.fhir.provenance`). ``deid_mark``: the input's ``deid.json``, copied into the folder."""
    from converter.io.atomic import atomic_dir

    t0 = time.perf_counter()
    report = FhirWrite()
    checks = _StrictChecks() if strict else None
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as tmp:
        bdir = tmp / "bundles"
        bdir.mkdir()
        if deid_mark is not None:
            (tmp / deid_mark.name).write_bytes(deid_mark.read_bytes())
        taken: set[str] = set()
        # each resource made as text once for the NDJSON and the Bundles (one template per shape for both);
        # de-identified input: as dicts, which stamp labels
        texts = origin is None or not origin.deidentified
        with NdjsonWriter(tmp / "ndjson") as nd:
            # GC paused per partition while its resources live (build, stamp, write): no cycles among them, and
            # every collection rescanned them all
            with no_gc():
                study = Builder(specs, ct, sdtm_specs, bundle_texts=texts).build(datasets, levels=("study",))
                made = frozenset(r.uuid for r in study.resources)
                key = _study_key(study)
                if origin is not None:
                    stamp(study, origin, key)
                _emit(study, specs, bdir, taken, nd, report, checks)
            for part in subject_partitions(datasets, partition):
                with no_gc():
                    result = Builder(specs, ct, sdtm_specs, bundle_texts=texts).build(
                        part, levels=("subject",), made_elsewhere=made
                    )
                    if origin is not None:
                        stamp(result, origin, key)
                    _emit(result, specs, bdir, taken, nd, report, checks)
                del result
        if checks is not None:
            report.invalid = checks.finish()
            if report.invalid:
                raise ConformanceError(report.invalid[:200])
    report.seconds = time.perf_counter() - t0
    return report


def _study_key(study: FhirResult) -> str:
    """The conversion's study, for Provenance ids: the identifier values of its ResearchStudy resources."""
    return ",".join(sorted(r.value for r in study.resources if r.rtype == "ResearchStudy"))


def _emit(
    result: FhirResult,
    specs: FhirSpecs,
    bdir: Path,
    taken: set[str],
    nd: NdjsonWriter,
    report: FhirWrite,
    checks: _StrictChecks | None,
) -> None:
    report.problems.extend(result.problems)
    for name, data in iter_bundles(result, specs, taken):
        (bdir / name).write_bytes(data)
        report.bundles += 1
        if checks is not None:
            checks.bundle(name, data)
    for k, v in nd.write(result).items():
        report.counts[k] = report.counts.get(k, 0) + v
