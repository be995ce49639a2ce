"""Streaming conversion: records on disk -> SDTM -> ADaM -> FHIR NDJSON, one partition of subjects at a time.

The whole chain is a pure function of one partition's records, so a registry is converted partition by
partition, ``workers`` partitions at once in separate processes, and peak memory follows the partition size,
not the registry. Every partition runs the same functions as the whole-study commands:
:func:`converter.records.checks.check_tables` and ``typed_records``, the SDTM engine
(:func:`converter.sdtm.build.build_all`), :func:`converter.adam.pipeline.sdtm_to_adam` and the FHIR builder.
Study-level datasets (TS, TA, TE) and resources (ResearchStudy, ...) are built once, up front.

Output (built in a staging folder, in place only when every partition converted):

    OUT/sdtm/<DS>/part-NNNNN.parquet     every SDTM dataset, a Parquet file per partition (study-level: part-00000)
    OUT/adam/<DS>/part-NNNNN.parquet     every ADaM dataset, likewise
    OUT/fhir/ndjson/<Type>.NNNNN.ndjson  FHIR Bulk Data files per partition (listed in OUT/fhir/manifest.json)
    OUT/accounting.csv                   every source form: records read, in SDTM rows, rejected and why
    OUT/validate/findings.{json,csv}     the SDTM and ADaM conformance rules of ``inoconv validate``, per partition
    OUT/stream.json                      counts, partitions, seconds per stage, peak memory

Bad input: every problem of every partition is collected (file, record, field, rule) and reported together as
one InputError; nothing is put in place.
"""

from __future__ import annotations

import concurrent.futures
import csv
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from converter.engine.chain import Chain, load_chain, run_partition
from converter.engine.outputs import (
    PartitionFiles,
    PartResult,
    StreamReport,
    add_study_findings,
    finish_run,
    merge_result,
    ndjson_dir,
    peak_mib,
)
from converter.errors import InputError, Problem, problem
from converter.io.progress import Tick, no_progress
from converter.records.odm import OdmSlice
from converter.records.schema import FormSchema
from converter.records.stream import CsvPlan

Echo = Callable[[str], Any]
SUBJECTS_PER_PARTITION = 2000


@dataclass
class _Context:
    """What every partition needs: the chain (specs, study-level results) and where to write."""

    chain: Chain
    work: Path
    out: Path
    rules: bool = True


_CTX: _Context | None = None


def _init_worker(ctx: _Context) -> None:
    global _CTX
    _CTX = ctx


# --- the parts of a source ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Part:
    index: int
    odm: OdmSlice | None = None
    csv: tuple[CsvPlan, str] | None = None  # the plan and the partition's spill folder


def _spill_form(args: tuple[Path, str, int, Path]) -> list[Problem]:
    from converter.records.stream import spill_csv_form

    assert _CTX is not None
    path, oid, parts, work = args
    return spill_csv_form(path, _CTX.chain.forms.forms[oid], parts, work)


def _read_part(ctx: _Context, part: _Part) -> Any:
    from converter.records.odm import read_odm_slice
    from converter.records.stream import load_csv_part

    if part.odm is not None:
        return read_odm_slice(part.odm, ctx.chain.forms)
    assert part.csv is not None
    plan, folder = part.csv
    return load_csv_part(plan, ctx.chain.forms, Path(folder))


# --- one partition, start to finish ------------------------------------------------------------------------------
def convert_partition(part: _Part) -> PartResult:
    """Read one partition and run :func:`converter.engine.chain.run_partition` on it, its files written under the
    staging folder. Runs in a worker."""
    ctx = _CTX
    assert ctx is not None
    with PartitionFiles(ctx.work, part.index) as files:
        return run_partition(ctx.chain, part.index, _read_part(ctx, part), files, ctx.rules)


# --- the whole run -----------------------------------------------------------------------------------------------
def _pool(workers: int, ctx: _Context) -> concurrent.futures.ProcessPoolExecutor:
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=max(1, workers), mp_context=multiprocessing.get_context(method),
        initializer=_init_worker, initargs=(ctx,),
    )  # fmt: skip


def csv_header_problems(files: Mapping[str, Path | None], forms: FormSchema) -> list[Problem]:
    """Every form file's header line against its form (duplicated, unknown and missing columns; not UTF-8; no
    header), read before any record: the local engine checks what the Spark driver checks, first."""
    from converter.records.csv_io import header_problems

    problems: list[Problem] = []
    for oid, path in files.items():
        if path is None:
            continue
        with path.open("rb") as fh:
            first = fh.readline(1 << 20)
        try:
            header = next(csv.reader([first.decode("utf-8-sig").rstrip("\r\n")]), [])
        except UnicodeDecodeError:
            problems.append(problem(str(path), "line 1", "", "", "encoding", "not UTF-8 in the header line"))
            continue
        except csv.Error as exc:
            problems.append(problem(str(path), "line 1", "", "", "csv", f"the header line cannot be read: {exc}"))
            continue
        if not header:
            problems.append(problem(str(path), "", "", "", "empty-file", "empty file: expected a header line"))
            continue
        problems += header_problems(str(path), header, forms.forms[oid])[0]
    return problems


def _csv_parts(
    pool: concurrent.futures.ProcessPoolExecutor, source: Path, ctx: _Context, size: int, echo: Echo
) -> tuple[list[_Part], list[Problem]]:
    from converter.records.stream import plan_csv

    plan = plan_csv(source, ctx.chain.forms, size)
    structural = csv_header_problems(plan.files, ctx.chain.forms) + plan.problems
    if structural:  # before any row is read: no partition can convert with a wrong header
        raise InputError(structural, context=str(source))
    echo(f"stream: {plan.subjects} subjects in {source}; {plan.parts} partitions; spilling the form files")
    spill = ctx.work / ".spill"
    jobs = [(p, oid, plan.parts, spill) for oid, p in plan.files.items() if p is not None]
    # the largest files first, so that the workers finish together (the smallest fill the gaps at the end);
    # the problems are still reported in the files' order
    order = sorted(range(len(jobs)), key=lambda i: -_size(jobs[i][0]))
    found = dict(zip(order, pool.map(_spill_form, [jobs[i] for i in order]), strict=True))
    problems: list[Problem] = [p for i in range(len(jobs)) for p in found[i]]
    parts = [_Part(i, csv=(plan, str(spill / f"part-{i:05d}"))) for i in range(plan.parts)]
    return parts, problems


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the spill reports it


def _odm_parts(source: Path, size: int) -> Iterator[_Part]:
    from converter.records.odm import odm_slices

    for i, sl in enumerate(odm_slices(source, size)):
        yield _Part(i, odm=sl)


def run_stream(
    source: Path,
    out: Path,
    *,
    workers: int = 2,
    subjects_per_partition: int = SUBJECTS_PER_PARTITION,
    validate: bool = True,
    fhir: bool = True,
    rules: bool = True,
    echo: Echo = print,
    shown_as: Path | None = None,
    progress: Tick = no_progress,
) -> StreamReport:
    """Convert ``source`` (ODM-XML file or CSV folder) partition by partition into ``out`` (see the module doc).

    Raises InputError with every problem of the input (nothing is written then). ``out`` must not exist or be
    empty (the CLI gives the staging folder of :func:`converter.io.outdir.output_folder`; ``shown_as`` is the
    folder it becomes, named in the Bulk Data manifest). ``progress``: ticked once per partition converted."""
    from converter.io.atomic import atomic_dir
    from converter.io.package_kind import expect_kind
    from converter.records.sources import detect_format
    from converter.sdtm.build import Accounting

    wall0 = time.perf_counter()
    expect_kind(Path(source), "stream", ("records-csv", "records-odm"))
    fmt = detect_format(source)
    rep = StreamReport()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as work:
        t = time.perf_counter()
        ctx = _Context(chain=load_chain(fhir=fhir), work=work, out=shown_as or out, rules=rules)
        ndjson_dir(work).mkdir(parents=True, exist_ok=True)
        for rtype, data in ctx.chain.study_ndjson.items():
            (ndjson_dir(work) / f"{rtype}.study.ndjson").write_bytes(data)
            rep.fhir_counts[rtype] = data.count(b"\n")
        rep.wall_seconds["specs"] = time.perf_counter() - t
        problems: list[Problem] = []
        accounting = Accounting()
        study: list[Any] = []
        seen: dict[str, int] = {}
        with _pool(workers, ctx) as pool:
            doc_check: concurrent.futures.Future[list[Problem]] | None = None
            t = time.perf_counter()
            if fmt == "odm":
                from converter.records.odm import odm_document_problems, odm_stream_problems

                problems += odm_stream_problems(source)
                if problems:
                    raise InputError(problems, context=str(source))
                doc_check = pool.submit(odm_document_problems, source, ctx.chain.forms, validate)
                parts: Iterator[_Part] | list[_Part] = _odm_parts(source, subjects_per_partition)
            else:
                progress(0, step="spilling the form files")
                parts, problems = _csv_parts(pool, source, ctx, subjects_per_partition, echo)
                rep.wall_seconds["spill"] = time.perf_counter() - t
                progress(0, total=len(parts))
            progress(0, step="partitions")
            t = time.perf_counter()
            done = 0
            worker_peak = 0.0  # each worker's own peak, as its partitions report it (it spilled and converted)
            for res in _bounded_map(pool, convert_partition, parts, 2 * max(1, workers)):
                done += 1
                worker_peak = max(worker_peak, res.peak_rss_mib)
                progress()
                rep.partitions += 1
                problems += res.problems
                for s in res.subjects:
                    if s in seen and seen[s] != res.index:
                        msg = (f"subject in two places of the file (partitions {seen[s]} and {res.index}): "
                               "the streaming reader needs each subject's data together")  # fmt: skip
                        problems.append(problem(str(source), "", "SUBJID", s, "odm-stream", msg))
                    seen[s] = res.index
                if res.problems:
                    echo(f"partition {res.index}: {len(res.problems)} problems")
                    continue
                merge_result(rep, res, accounting, study)
                echo(
                    f"partition {res.index}: {len(res.subjects)} subjects, {sum(res.sdtm_rows.values())} SDTM rows, "
                    f"{sum(res.fhir_counts.values())} resources ({res.peak_rss_mib:.0f} MiB)"
                )
            if doc_check is not None:
                problems = doc_check.result() + problems
            rep.wall_seconds["partitions"] = time.perf_counter() - t
        if problems:
            raise InputError(problems, context=str(source))
        shutil.rmtree(work / ".spill", ignore_errors=True)
        add_study_findings(rep, study)
        rep.subjects = len(seen)
        finish_run(work, ctx.chain.study_sets, ctx.rules, ctx.out, rep, accounting)
        # not RUSAGE_CHILDREN: that is the largest of every child this process ever waited for, whatever it ran
        rep.peak_rss_mib = {"parent": peak_mib(), "largest_worker": worker_peak}
        rep.wall_seconds["total"] = time.perf_counter() - wall0
        (work / "stream.json").write_bytes(orjson.dumps(rep.as_dict(), option=orjson.OPT_INDENT_2))
    return rep


def _bounded_map(
    pool: concurrent.futures.ProcessPoolExecutor,
    fn: Callable[[_Part], PartResult],
    parts: Iterator[_Part] | list[_Part],
    ahead: int,
) -> Iterator[PartResult]:
    """``pool.map`` that keeps at most ``ahead`` partitions submitted (an ODM file is cut while it converts)."""
    pending: set[concurrent.futures.Future[PartResult]] = set()
    for part in parts:
        pending.add(pool.submit(fn, part))
        if len(pending) >= ahead:
            finished, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for f in finished:
                yield f.result()
    for f in concurrent.futures.as_completed(pending):
        yield f.result()


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))
