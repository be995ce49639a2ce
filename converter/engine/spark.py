"""The conversion on Apache Spark: the same per-partition function as the local engine, run in Spark tasks.

:func:`run_stream_spark` (``inoconv stream --engine spark``) runs the whole chain, records -> SDTM -> ADaM ->
FHIR NDJSON, in one Spark task per subject partition calling :func:`converter.engine.chain.run_partition`, the
function the local streaming engine calls; each task writes its partition's files into the shared output folder
in the layout of ``inoconv stream`` (:mod:`converter.engine.outputs`); only counts, accounting and problems travel
back to the driver. ``inoconv sdtm --engine spark`` (SDTM only, brought to the driver) is
:mod:`converter.engine.spark_sdtm`.

A CSV folder is read as the local engine reads it, in Python tasks that Spark schedules (``reader="files"``, the
default): one task per form file cuts it by subject partition into the output's staging folder
(:func:`spill_on_spark`, the local engine's :func:`converter.records.stream.spill_csv_form`), then one task per
partition puts its rows together and converts them (:func:`convert_spilled`). The input must then be at the same
path on every executor (as the output already must). With ``reader="spark"`` Spark's CSV reader reads the forms
(every field as text), stacks them into one long table with a ``__form__`` column, keyed by a subject partition
number computed in Spark (:func:`part_column`) with the same CRC-32 as the local engine
(:func:`converter.records.partitions.partition_of`; a test compares the two on many identifiers); a shuffle gives
each task exactly one partition and ``mapInArrow`` turns only each form's own columns into pandas
(:func:`chain_long`). That path costs about 20 s more CPU per 10,000 subjects (benchmarks/RESULTS.md); an ODM file,
read on the driver, takes it too. :func:`main` is the driver program of a cluster job (``spark-submit``) and of
``python -m converter.engine.spark``. No mapping is implemented twice.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

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
from converter.engine.spark_jvm import session_jvm_options
from converter.engine.stream import csv_header_problems
from converter.errors import Problem
from converter.frames import none_for_missing, text_column
from converter.records.checks import RawTable, empty_raw
from converter.records.csv_io import keyed_control_problems
from converter.records.raw import RawRead
from converter.records.schema import FormSchema
from converter.records.stream import CsvPlan
from converter.sdtm.build import Accounting

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

FORM_COL, PART_COL, DATASET_COL, PAYLOAD_COL = "__form__", "__part__", "__dataset__", "__payload__"
PROBLEMS, ACCOUNTING = "__problems__", "__accounting__"


def worker_python() -> str:
    """The interpreter a local session's Python workers run: ``PYSPARK_PYTHON`` when the user sets it, else this
    process's own (``sys.executable``), never whichever ``python3`` is first on PATH (a venv that is not activated
    would otherwise hand the tasks an interpreter without pandas, pyarrow or inoconv)."""
    return os.environ.get("PYSPARK_PYTHON") or sys.executable


#: The daemon of a local session's Python workers: PySpark's, started with the chain's modules imported, so its
#: workers are forked warm (:mod:`converter.engine.spark_daemon`)
DAEMON_MODULE = "converter.engine.spark_daemon"


def local_session(app: str = "inoconv", cores: int = 2, jvm_options: str = "") -> SparkSession:
    """A local Spark session (``local[cores]``) with Arrow transfers, its workers on :func:`worker_python` forked
    by :data:`DAEMON_MODULE`, ``jvm_options`` for the driver JVM (e.g.
    :func:`~converter.engine.spark_jvm.session_jvm_options`); on a cluster use the provided session."""
    from pyspark.sql import SparkSession

    python = worker_python()
    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = python  # read once, when the SparkContext starts
    try:
        builder = SparkSession.builder
        if jvm_options:
            builder = builder.config("spark.driver.extraJavaOptions", jvm_options)
        return (
            builder.master(f"local[{cores}]")
            .appName(app)
            .config("spark.pyspark.python", python)
            .config("spark.python.daemon.module", DAEMON_MODULE)
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.shuffle.partitions", str(max(cores * 2, 2)))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "4g")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
    finally:
        if before is None:
            os.environ.pop("PYSPARK_PYTHON", None)


def text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as exact text (numbers by their shortest exact form), None for missing."""
    return pd.DataFrame({c: text_column(df[c]) for c in df.columns}, index=df.index)


def records_to_long(spark: SparkSession, records: Mapping[str, pd.DataFrame]) -> SparkDataFrame:
    """In-memory Records as the long Spark table (for tests and for callers that already hold pandas)."""
    from functools import reduce

    from pyspark.sql import types as T

    frames = []
    for oid, df in records.items():
        text = text_frame(df)
        schema = T.StructType([T.StructField(c, T.StringType()) for c in text.columns])
        sdf = spark.createDataFrame(none_for_missing(text), schema=schema)
        from pyspark.sql import functions as F

        frames.append(sdf.withColumn(FORM_COL, F.lit(oid)))
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


RESULT_COL, KEY_COL = "__result__", "__task__"


@dataclass(frozen=True)
class _ChainJob:
    """What every task of the chain needs, shipped with the UDF (the checked specs travel pickled, so the
    executors need the package, not the ``mappings/`` folder): the chain, where to write, each form's file."""

    chain: Any
    work: str
    files: dict[str, str]
    missing: dict[str, tuple[str, ...]]
    rules: bool = True


def _raw_tables(job: _ChainJob, table: Any) -> dict[str, RawTable]:
    """Each form's rows of one partition (an Arrow table of the long layout) as the raw tables of the readers."""
    import pyarrow.compute as pc

    tables: dict[str, RawTable] = {}
    for oid, form in job.chain.forms.forms.items():
        file = job.files.get(oid, f"{oid}.csv")
        missing = job.missing.get(oid, ())
        rows = table.filter(pc.equal(table[FORM_COL], oid))
        if not rows.num_rows:
            tables[oid] = empty_raw(form, file)
            continue
        present = [c for c in form.columns if c not in missing]
        frame = none_for_missing(rows.select(present).to_pandas())
        tables[oid] = RawTable(form=oid, file=file, frame=frame, missing_columns=missing)
    return tables


def chain_partition(job: _ChainJob, index: int, table: Any) -> PartResult:
    """One subject partition inside a Spark task: its raw tables read from the Arrow table (with the control
    characters of its key fields, which the local readers check while reading), then
    :func:`converter.engine.chain.run_partition`, the files written under ``job.work`` as ``inoconv stream``
    writes them."""
    from converter.engine.chain import run_partition

    tables = _raw_tables(job, table)
    del table
    forms = job.chain.forms.forms
    controls = [p for oid, t in tables.items() for p in keyed_control_problems(t.frame, t.file, forms[oid])]
    with PartitionFiles(Path(job.work), index) as files:
        return run_partition(job.chain, index, RawRead(tables, controls), files, job.rules)


def part_column(n_parts: int) -> Any:
    """The subject partition of each row, in Spark: CRC-32 of SUBJID modulo ``n_parts``, as
    :func:`converter.records.partitions.partition_of` computes it (a missing SUBJID counts as ``""``)."""
    from pyspark.sql import functions as F

    subj = F.coalesce(F.col("SUBJID"), F.lit(""))
    return F.pmod(F.crc32(F.encode(subj, "UTF-8")), F.lit(max(n_parts, 1))).cast("int")


def chain_long(long: SparkDataFrame, n_parts: int, job: _ChainJob) -> SparkDataFrame:
    """One row per subject partition (the pickled result of :func:`chain_partition`), computed by
    :func:`chain_partition` in ``mapInArrow`` on the subject-partitioned records; each partition's files are
    written by its task."""
    import pickle

    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField(RESULT_COL, T.BinaryType())])

    def udf(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.compute as pc

        received = list(batches)
        if not received:  # a task whose partition holds no subject gets no batch at all
            return
        table = pa.Table.from_batches(received)
        if not table.num_rows:
            return
        for index in sorted(pc.unique(table[PART_COL]).to_pylist()):  # one, unless the task keys are ignored
            rows = table.filter(pc.equal(table[PART_COL], index))
            res = chain_partition(job, int(index), rows)
            del rows
            yield pa.RecordBatch.from_pydict({RESULT_COL: [pickle.dumps(res, protocol=pickle.HIGHEST_PROTOCOL)]})

    # One task per subject partition, holding all its records: repartition(n, key) is a shuffle into n tasks
    # that adaptive execution leaves as it is, and the key of partition i is a number that Spark's hash
    # partitioning sends to task i. Arrow batches, not pandas: the long table is wide and mostly empty (the
    # union of every form's fields), and only each form's own columns are turned into pandas.
    n = max(n_parts, 1)
    keys = F.array(*[F.lit(k) for k in _task_keys(long.sparkSession, n)])
    keyed = long.withColumn(PART_COL, part_column(n)).withColumn(KEY_COL, F.element_at(keys, F.col(PART_COL) + 1))
    return keyed.repartition(n, KEY_COL).mapInArrow(udf, schema=schema)


def _task_keys(spark: SparkSession, n: int) -> list[int]:
    """For each task 0..n-1 the smallest integer that hash partitioning into n tasks sends there (Spark's
    ``repartition`` places rows by ``pmod(hash(key), n)``, which is what ``F.hash`` computes)."""
    from pyspark.sql import functions as F

    key = F.col("id").cast("int")
    rows = (
        spark.range(0, 64 * n + 64)
        .select(key.alias("k"), F.pmod(F.hash(key), F.lit(n)).alias("task"))
        .groupBy("task")
        .agg(F.min("k").alias("k"))
        .collect()
    )
    found = {int(r["task"]): int(r["k"]) for r in rows}
    return [found[i] for i in range(n)]


def _csv_header(path: Path) -> list[str]:
    import csv

    with path.open(newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh), [])


def read_csv_source(
    spark: SparkSession, folder: Path, forms: FormSchema
) -> tuple[SparkDataFrame | None, dict[str, str], dict[str, tuple[str, ...]], list[Problem]]:
    """A CSV record folder as the long Spark table (every field as text, ``__form__``), each form's file, its
    missing columns, and the folder's structural problems (unknown or missing forms and columns), found by the
    same functions as the local readers."""
    from functools import reduce

    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from converter.records.csv_io import form_files, header_problems

    paths, problems = form_files(folder, forms)
    files = {oid: str(p) for oid, p in paths.items() if p is not None}
    missing: dict[str, tuple[str, ...]] = {}
    frames = []
    for oid, path in paths.items():
        if path is None:
            continue
        form = forms.forms[oid]
        header = _csv_header(path)
        found, gone = header_problems(str(path), header, form)
        problems += found
        missing[oid] = gone
        names: list[str] = []
        for c in header:  # a duplicated column (reported above) gets a name Spark accepts
            names.append(c if c not in names else f"{c}#{len(names)}")
        text = T.StructType([T.StructField(c, T.StringType()) for c in names])
        sdf = spark.read.csv(str(path), schema=text, header=True, emptyValue=None, encoding="UTF-8",
                             multiLine=True, escape='"')  # fmt: skip
        cols = [F.col(c) if c in sdf.columns else F.lit(None).cast("string").alias(c) for c in form.columns]
        frames.append(sdf.select(*cols).withColumn(FORM_COL, F.lit(oid)))
    long = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames) if frames else None
    return long, files, missing, problems


def _whole_waves(spark: SparkSession, subjects: int, per_partition: int) -> int:
    """One partition per ``per_partition`` subjects, rounded up to a whole number of waves of tasks."""
    cores = max(1, spark.sparkContext.defaultParallelism)
    return cores * max(1, -(-subjects // (max(1, per_partition) * cores)))


def spill_on_spark(spark: SparkSession, plan: CsvPlan, forms: FormSchema, spill: Path) -> list[Problem]:
    """The local engine's spill pass as Spark tasks, one per form file (largest first):
    :func:`converter.records.stream.spill_csv_form` cuts each file by subject partition into ``spill`` (under the
    shared output folder). Returns the files' problems (encoding, unreadable records), with their lines and rows."""
    from converter.records.stream import spill_csv_form

    jobs = sorted(((str(p), oid) for oid, p in plan.files.items() if p is not None),
                  key=lambda j: -Path(j[0]).stat().st_size)  # fmt: skip
    if not jobs:
        return []
    n, chosen = plan.parts, {oid: forms.forms[oid] for _, oid in jobs}

    def spill_file(job: tuple[str, str]) -> list[Problem]:
        return spill_csv_form(Path(job[0]), chosen[job[1]], n, spill)

    found: list[list[Problem]] = spark.sparkContext.parallelize(jobs, len(jobs)).map(spill_file).collect()
    by_form = {oid: problems for (_, oid), problems in zip(jobs, found, strict=True)}
    return [p for oid in plan.files if oid in by_form for p in by_form[oid]]  # form order, as the local engine


def convert_spilled(spark: SparkSession, plan: CsvPlan, spill: Path, job: _ChainJob) -> list[PartResult]:
    """Each subject partition in its own Spark task: :func:`converter.records.stream.load_csv_part` puts its
    spilled rows together (messages name the original file and row), then
    :func:`converter.engine.chain.run_partition` converts them and writes its files, as in ``inoconv stream``."""

    def convert(index: int) -> PartResult:
        from converter.engine.chain import run_partition
        from converter.records.stream import load_csv_part

        raw = load_csv_part(plan, job.chain.forms, spill / f"part-{index:05d}")
        with PartitionFiles(Path(job.work), index) as files:
            return run_partition(job.chain, index, raw, files, job.rules)

    results: list[PartResult] = spark.sparkContext.parallelize(range(plan.parts), plan.parts).map(convert).collect()
    return results


def run_stream_spark(
    spark: SparkSession,
    source: Path,
    out: Path,
    *,
    partitions: int | None = None,
    subjects_per_partition: int = 2000,
    validate: bool = True,
    fhir: bool = True,
    rules: bool = True,
    echo: Callable[[str], Any] = print,
    shown_as: Path | None = None,
    reader: str = "files",
) -> StreamReport:
    """``inoconv stream`` on Spark: ``source`` (a CSV folder read by Spark, or an ODM file read on the driver)
    converted per subject partition into ``out``, with the layout, ``accounting.csv``, conformance findings and
    ``stream.json`` of :func:`converter.engine.stream.run_stream`, and identical datasets and resources.
    ``partitions`` defaults to one per ``subjects_per_partition`` subjects, rounded up to a multiple of the
    session's default parallelism.

    ``out`` must be visible to every executor at the same path (local disk for ``local[N]``; a shared mount on
    a cluster). The folder is built beside it and put in place only when every partition converted; bad input
    raises InputError with every problem of every partition, and nothing is left behind.

    ``reader`` (CSV only): ``"files"`` (default) lets Python tasks read the form files themselves, as the local
    engine's workers do (:func:`spill_on_spark`, :func:`convert_spilled`), so ``source`` must be at the same path
    on every executor too; ``"spark"`` reads them with Spark's CSV reader and brings each partition's records
    together in a shuffle (:func:`chain_long`), for input only the JVM reaches (slower: see benchmarks/RESULTS.md)."""
    import dataclasses
    import pickle
    import shutil
    import time

    from converter.engine.chain import load_chain
    from converter.errors import InputError
    from converter.io.atomic import atomic_dir
    from converter.records.csv_io import form_files
    from converter.records.sources import detect_format, read_records
    from converter.records.stream import count_subjects, plan_csv

    if reader not in ("files", "spark"):
        raise ValueError(f"reader must be 'files' or 'spark', not {reader!r}")
    wall0 = time.perf_counter()
    fmt = detect_format(source)
    rep = StreamReport()
    t = time.perf_counter()
    chain = load_chain(fhir=fhir)
    rep.wall_seconds["specs"] = time.perf_counter() - t
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as work:
        nd = ndjson_dir(work)
        nd.mkdir(parents=True, exist_ok=True)
        for rtype, data in chain.study_ndjson.items():
            (nd / f"{rtype}.study.ndjson").write_bytes(data)
            rep.fhir_counts[rtype] = data.count(b"\n")
        t = time.perf_counter()
        job = _ChainJob(chain=chain, work=str(work), files={}, missing={}, rules=rules)
        if fmt == "csv" and reader == "files":  # Python tasks read the files; Spark only schedules
            plan = plan_csv(source, chain.forms, subjects_per_partition)
            structural = csv_header_problems(plan.files, chain.forms) + plan.problems
            if structural:  # as the local engine: every header checked before any Spark job runs
                raise InputError(structural, context=str(source))
            if partitions is None:
                partitions = _whole_waves(spark, plan.subjects, subjects_per_partition)
            plan = dataclasses.replace(plan, parts=partitions)
            echo(f"stream (Spark {spark.sparkContext.master}): {source}; {partitions} subject partitions")
            spill = work / ".spill"
            problems = spill_on_spark(spark, plan, chain.forms, spill)
            rep.wall_seconds["spill"] = time.perf_counter() - t
            t = time.perf_counter()
            results = convert_spilled(spark, plan, spill, job)
        else:
            if fmt == "csv":
                paths, structural = form_files(source, chain.forms)
                structural = csv_header_problems(paths, chain.forms) + structural
                if structural:
                    raise InputError(structural, context=str(source))
                long, files, missing, problems = read_csv_source(spark, source, chain.forms)
            else:  # an ODM file is one XML document: read and checked on the driver, then spread out
                recs = read_records(source, chain.forms, validate=validate)
                long, files, missing, problems = records_to_long(spark, recs), {}, {}, []
            if long is None:
                raise InputError(problems, context=str(source))
            if partitions is None:
                if fmt == "csv":
                    subjects = count_subjects(form_files(source, chain.forms)[0], chain.forms)
                else:
                    subjects = len(set().union(*(set(df["SUBJID"].dropna().astype(str)) for df in recs.values())))
                partitions = _whole_waves(spark, subjects, subjects_per_partition)
            rep.wall_seconds["read"] = time.perf_counter() - t
            echo(f"stream (Spark {spark.sparkContext.master}): {source}; {partitions} subject partitions")
            t = time.perf_counter()
            job = dataclasses.replace(job, files=files, missing=missing)
            results = [pickle.loads(bytes(r[RESULT_COL])) for r in chain_long(long, partitions, job).collect()]
        rep.wall_seconds["partitions"] = time.perf_counter() - t
        shutil.rmtree(work / ".spill", ignore_errors=True)
        accounting = Accounting()
        subjects_seen: set[str] = set()
        worker_peak = 0.0
        study: list[Any] = []
        for res in sorted(results, key=lambda r: r.index):
            problems += res.problems
            subjects_seen.update(res.subjects)
            rep.partitions += 1
            worker_peak = max(worker_peak, res.peak_rss_mib)
            if not res.problems:
                merge_result(rep, res, accounting, study)
        add_study_findings(rep, study)
        if problems:
            raise InputError(problems, context=str(source))
        rep.subjects = len(subjects_seen)
        finish_run(work, chain.study_sets, rules, shown_as or out, rep, accounting)
        rep.peak_rss_mib = {"driver": peak_mib(), "largest_worker": worker_peak}
        rep.wall_seconds["total"] = time.perf_counter() - wall0
        stats = {**rep.as_dict(), "engine": "spark", "master": spark.sparkContext.master}
        (work / "stream.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2))
    return rep


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live descendants, with their reaped children (Linux
    ``/proc``; 0 elsewhere): for a local session, the JVM and its Python workers."""
    import os

    hz = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        ticks[int(entry)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += ticks.get(p, 0)
        todo += [c for c, parent in parents.items() if parent == p]
    return total / hz


def process_peak_mib(pid: int) -> float:
    """A live process's peak resident memory in MiB (``VmHWM`` in Linux ``/proc``; 0 elsewhere): for a local
    session, the JVM (driver and executor in one)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next((int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:")), 0.0)
    except OSError:
        return 0.0


def stream_on_spark(
    source: Path,
    out: Path,
    *,
    partitions: int | None = None,
    subjects_per_partition: int = 2000,
    validate: bool = True,
    fhir: bool = True,
    rules: bool = True,
    cores: int | None = None,
    echo: Callable[[str], Any] = print,
    shown_as: Path | None = None,
    reader: str = "files",
) -> StreamReport:
    """:func:`run_stream_spark` in the active Spark session (under ``spark-submit``, in a notebook), or else in
    a local one (``local[cores]``, all cores by default) that is stopped afterwards. For a local session,
    ``stream.json`` also gets ``jvm_cpu_seconds`` (the CPU of the JVM and its Python workers) and
    ``jvm_peak_rss_mib`` (the JVM's peak memory; the Python workers' is ``peak_rss_mib.largest_worker``)."""
    import os

    from pyspark.sql import SparkSession

    from converter.io.package_kind import expect_kind

    expect_kind(Path(source), "stream", ("records-csv", "records-odm"))  # before a JVM starts
    existing = SparkSession.getActiveSession()
    jvm = session_jvm_options(light=reader == "files") if existing is None else ""
    spark = existing or local_session(cores=cores or os.cpu_count() or 2, jvm_options=jvm)
    try:
        if existing is None:
            spark.sparkContext.setLogLevel("ERROR")
        rep = run_stream_spark(spark, source, out, partitions=partitions, subjects_per_partition=subjects_per_partition,
                               validate=validate, fhir=fhir, rules=rules, echo=echo, shown_as=shown_as,
                               reader=reader)  # fmt: skip
        gateway = getattr(spark.sparkContext, "_gateway", None)
        proc = getattr(gateway, "proc", None)
        if existing is None and proc is not None and (out / "stream.json").exists():
            stats = orjson.loads((out / "stream.json").read_bytes())
            stats["jvm_cpu_seconds"] = round(process_tree_cpu(proc.pid), 1)
            stats["jvm_peak_rss_mib"] = round(process_peak_mib(proc.pid), 1)
            (out / "stream.json").write_bytes(orjson.dumps(stats, option=orjson.OPT_INDENT_2))
        return rep
    finally:
        if existing is None:
            spark.stop()


def main(argv: list[str] | None = None) -> int:
    """The driver program of a cluster job (``spark-submit job.py SOURCE --out DIR``, where job.py calls this),
    also ``python -m converter.engine.spark`` locally. Exit 0, 1 (conformance errors, failed ADaM checks or
    FHIR problems) or 2 (bad input)."""
    import argparse
    import sys

    from converter.errors import InputError

    ap = argparse.ArgumentParser(prog="inoconv-spark", description="records -> SDTM -> ADaM -> FHIR on Spark")
    ap.add_argument("source", type=Path, help="CSV folder (one file per CRF form) or ODM-XML file")
    ap.add_argument("--out", type=Path, required=True, help="output folder, visible to every executor")
    ap.add_argument("--partitions", type=int, default=None, help="subject partitions (default: from --subjects)")
    ap.add_argument("--subjects", type=int, default=2000, help="subjects per partition when --partitions is not given")
    ap.add_argument("--cores", type=int, default=None, help="local session only: local[N] (default: all cores)")
    ap.add_argument("--reader", choices=("files", "spark"), default="files",
                    help="CSV: Python tasks read the files (SOURCE on every executor) or Spark's reader")  # fmt: skip
    ap.add_argument("--no-validate", action="store_true", help="skip ODM XSD validation")
    ap.add_argument("--no-fhir", action="store_true", help="stop at ADaM")
    ap.add_argument("--no-rules", action="store_true", help="skip the SDTM/ADaM conformance rules")
    ap.add_argument("--overwrite", action="store_true", help="write into a non-empty --out inoconv did not write")
    args = ap.parse_args(argv)
    from converter.io.outdir import output_folder

    try:
        with output_folder(
            args.out,
            inputs=[args.source],
            overwrite=args.overwrite,
            command=["inoconv-spark", *(sys.argv[1:] if argv is None else argv)],
        ) as dest:
            rep = stream_on_spark(args.source, dest.path, partitions=args.partitions,
                                  subjects_per_partition=args.subjects, validate=not args.no_validate,
                                  fhir=not args.no_fhir, rules=not args.no_rules, cores=args.cores,
                                  shown_as=args.out, reader=args.reader)  # fmt: skip
            dest.written.update(rep.written)  # the NDJSON parts, hashed by the tasks as they wrote them
    except InputError as err:
        print(err, file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permissions: the path and the reason
        print(f"Cannot read or write {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in rep.as_dict().items() if k != "adam_check_failures"}, indent=1))
    errors = [k for k in rep.rule_counts if k.startswith("error:")]
    return 1 if rep.adam_checks or rep.fhir_problems or errors else 0


if __name__ == "__main__":  # pragma: no cover
    from converter.engine.spark import main as _main  # the package's module, not __main__: tasks pickle by name

    raise SystemExit(_main())
