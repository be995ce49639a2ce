"""The conversion on Apache Spark: the same per-subject functions, run as pandas UDFs.

Two entry points. :func:`run_stream_spark` (``inoconv stream --engine spark``) runs the whole chain, records ->
SDTM -> ADaM -> FHIR NDJSON, on each subject partition inside one ``mapInArrow`` UDF, calling the same
functions as the local streaming engine (:mod:`converter.engine.chain`), and each task writes its partition's
files into the shared output folder in the layout of ``inoconv stream``; only counts, accounting and problems
travel back to the driver. :func:`sdtm_long` / :func:`collect_sdtm` (``inoconv sdtm --engine spark``) build
the SDTM datasets only and bring them to the driver, for the submission package.

The CRF forms are read by Spark (CSV with every field as text), stacked into one long table with a ``__form__``
column, and keyed by a subject partition number computed in Spark with the same CRC-32 as the local engine
(:func:`converter.records.partitions.partition_of`). For ``inoconv stream`` a shuffle gives each task exactly one
partition and ``mapInArrow`` turns only each form's own columns into pandas (:func:`chain_long`). For
``inoconv sdtm`` each group runs in ``applyInPandas`` the record checks, the typing and the spec engine, and
returns one row per dataset holding its rows as exact text in an Arrow IPC blob; :func:`collect_sdtm` turns
that into the typed datasets, and :func:`write_parquet` writes them by dataset. :func:`main` is the driver
program of a cluster job (``spark-submit``) and of ``python -m converter.engine.spark``.
No mapping is implemented twice.
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

from converter.engine.stream import PartResult, StreamReport, csv_header_problems
from converter.errors import Problem
from converter.frames import none_for_missing, text_column
from converter.records.checks import RawTable, check_tables, empty_raw, typed_records
from converter.records.csv_io import keyed_control_problems
from converter.records.model import empty_frame
from converter.records.partitions import is_study_level
from converter.records.schema import FormSchema
from converter.sdtm.build import Accounting, build_all, cast_column, finalise
from converter.sdtm.pipeline import SdtmResult, load_sdtm_specs
from converter.spec.model import DatasetSpec, Terminology

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


def local_session(app: str = "inoconv", cores: int = 2) -> SparkSession:
    """A local Spark session (``local[cores]``) with Arrow transfers, its workers on :func:`worker_python`;
    on a cluster use the provided session."""
    from pyspark.sql import SparkSession

    python = worker_python()
    before = os.environ.get("PYSPARK_PYTHON")
    os.environ["PYSPARK_PYTHON"] = python  # read once, when the SparkContext starts
    try:
        return (
            SparkSession.builder.master(f"local[{cores}]")
            .appName(app)
            .config("spark.pyspark.python", python)
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


def _to_text(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as exact text (numbers by their shortest exact form), None for missing."""
    return pd.DataFrame({c: text_column(df[c]) for c in df.columns}, index=df.index)


@dataclass(frozen=True)
class _Job:
    """What every task needs: picklable, shipped to the executors with the UDF."""

    mappings: str | None


def _ipc(df: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _from_ipc(blob: bytes) -> pd.DataFrame:
    import pyarrow as pa

    frame: pd.DataFrame = pa.ipc.open_stream(blob).read_all().to_pandas()
    return frame


def _run_partition(job: _Job, pdf: pd.DataFrame) -> pd.DataFrame:
    """One subject partition: checks, typing, every subject-level dataset. Returns one row per dataset
    (an Arrow IPC blob of its rows as exact text), plus problems or the source-record accounting."""
    specs, ct, forms = load_sdtm_specs(Path(job.mappings) if job.mappings else None)
    subject = {n: s for n, s in specs.items() if not is_study_level(s)}
    tables: dict[str, RawTable] = {}
    for oid, form in forms.forms.items():
        rows = pdf[pdf[FORM_COL] == oid]
        frame = none_for_missing(rows[list(form.columns)].reset_index(drop=True))
        tables[oid] = RawTable(form=oid, file=f"{oid}.csv", frame=frame)
    report = check_tables(tables, forms)
    errors = [p for oid, t in tables.items() for p in keyed_control_problems(t.frame, t.file, forms.forms[oid])]
    errors += report.errors
    if errors:
        payload = json.dumps([p.as_dict() for p in errors]).encode("utf-8")
        return pd.DataFrame({DATASET_COL: [PROBLEMS], PAYLOAD_COL: [payload]})
    records = typed_records(tables, forms)
    datasets, acc = build_all(subject, records, ct, forms)
    names = [n for n, df in datasets.items() if len(df)]
    blobs = [_ipc(_to_text(datasets[n])) for n in names]
    acc_rows = [
        {"form": a.form, "records": a.records, "mapped": int(a.mapped.sum()), "targets": a.targets,
         "left_out": a.left_out}
        for a in acc.forms.values()
    ]  # fmt: skip
    names.append(ACCOUNTING)
    blobs.append(json.dumps(acc_rows).encode("utf-8"))
    return pd.DataFrame({DATASET_COL: names, PAYLOAD_COL: blobs})


def read_csv_forms(spark: SparkSession, folder: str, forms: FormSchema) -> SparkDataFrame:
    """The CSV record folder as one long Spark table: every field as text, plus ``__form__``."""
    from functools import reduce

    from pyspark.sql import functions as F

    frames = []
    for oid, form in forms.forms.items():
        path = f"{folder.rstrip('/')}/{oid}.csv"
        sdf = spark.read.csv(path, header=True, inferSchema=False, emptyValue=None, encoding="UTF-8",
                             multiLine=True, escape='"')  # fmt: skip
        for c in form.columns:
            if c not in sdf.columns:
                sdf = sdf.withColumn(c, F.lit(None).cast("string"))
        frames.append(sdf.select(*form.columns).withColumn(FORM_COL, F.lit(oid)))
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def records_to_long(spark: SparkSession, records: Mapping[str, pd.DataFrame]) -> SparkDataFrame:
    """In-memory Records as the long Spark table (for tests and for callers that already hold pandas)."""
    from functools import reduce

    from pyspark.sql import types as T

    frames = []
    for oid, df in records.items():
        text = _to_text(df)
        schema = T.StructType([T.StructField(c, T.StringType()) for c in text.columns])
        sdf = spark.createDataFrame(none_for_missing(text), schema=schema)
        from pyspark.sql import functions as F

        frames.append(sdf.withColumn(FORM_COL, F.lit(oid)))
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def sdtm_long(long: SparkDataFrame, n_parts: int, mappings: Path | None = None) -> SparkDataFrame:
    """The SDTM rows of every subject-level dataset, as a long text table, computed per subject partition."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    load_sdtm_specs(mappings)  # spec errors on the driver, before any task starts
    job = _Job(mappings=str(mappings) if mappings else None)
    part = F.pmod(F.crc32(F.encode(F.col("SUBJID"), "UTF-8")), F.lit(max(n_parts, 1))).cast("int")
    schema = T.StructType([T.StructField(DATASET_COL, T.StringType()), T.StructField(PAYLOAD_COL, T.BinaryType())])

    def udf(pdf: pd.DataFrame) -> pd.DataFrame:
        return _run_partition(job, pdf.drop(columns=[PART_COL]))

    return long.withColumn(PART_COL, part).groupBy(PART_COL).applyInPandas(udf, schema=schema)


def _typed(text: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    cols = {}
    for v in spec.variables:
        raw = text[v.name] if v.name in text.columns else pd.Series([None] * len(text), dtype=object)
        cols[v.name] = cast_column(pd.to_numeric(raw) if v.numeric else raw, v.type)
    return finalise(pd.DataFrame(cols, index=text.index), spec)


def collect_sdtm(result: SparkDataFrame, mappings: Path | None = None) -> SdtmResult:
    """Bring the long result to the driver as typed SDTM datasets (plus study-level ones), like the local engine."""
    from converter.errors import InputError, Problem

    specs, ct, forms = load_sdtm_specs(mappings)
    pdf = result.toPandas()
    problems = pdf[pdf[DATASET_COL] == PROBLEMS]
    if len(problems):
        found = [Problem(**p) for payload in problems[PAYLOAD_COL] for p in json.loads(bytes(payload))]
        raise InputError(found, context="records (Spark engine)")
    return _assemble(pdf, specs, ct, forms)


def _assemble(pdf: pd.DataFrame, specs: dict[str, DatasetSpec], ct: Terminology, forms: FormSchema) -> SdtmResult:
    import numpy as np

    from converter.sdtm.build import FormAccount

    study = {n: s for n, s in specs.items() if is_study_level(s)}
    empty = {oid: empty_frame(f) for oid, f in forms.forms.items()}
    study_sets, _ = build_all(study, empty, ct, forms)
    datasets: dict[str, pd.DataFrame] = {}
    for name, spec in specs.items():
        if name in study_sets:
            datasets[name] = study_sets[name]
        else:
            blobs = [_from_ipc(bytes(b)) for b in pdf.loc[pdf[DATASET_COL] == name, PAYLOAD_COL]]
            rows = pd.concat(blobs, ignore_index=True) if blobs else pd.DataFrame(columns=spec.column_names)
            datasets[name] = _typed(rows, spec)
    accounting = Accounting()
    for payload in pdf.loc[pdf[DATASET_COL] == ACCOUNTING, PAYLOAD_COL]:
        part = Accounting()
        for a in json.loads(bytes(payload)):
            mapped = np.zeros(a["records"], dtype=bool)
            mapped[: a["mapped"]] = True
            part.forms[a["form"]] = FormAccount(a["form"], a["records"], mapped, a["targets"], a["left_out"])
        accounting.merge(part)
    return SdtmResult(datasets=datasets, specs=specs, ct=ct, accounting=accounting, forms=forms)


def write_parquet(datasets: Mapping[str, pd.DataFrame], out: str) -> None:
    """Typed datasets as Parquet, one folder per dataset (``out/<DATASET>/part-0.parquet``)."""
    for name, df in datasets.items():
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        df.to_parquet(folder / "part-0.parquet", index=False)


# --- the whole chain: inoconv stream --engine spark ------------------------------------------------------------
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


def chain_partition(job: _ChainJob, index: int, table: Any) -> tuple[PartResult, list[Any]]:
    """One subject partition, start to finish, inside a Spark task: the record checks and typing, then
    :func:`~converter.engine.chain.sdtm_of`, :func:`~converter.engine.chain.adam_of` and
    :func:`~converter.engine.chain.ndjson_of`, each result written as ``inoconv stream`` writes it
    (``sdtm/<DS>/part-NNNNN.parquet``, ``adam/...``, ``fhir/ndjson/<Type>.NNNNN.ndjson``) under ``job.work``,
    and with ``job.rules`` the conformance rules (:func:`~converter.engine.chain.findings_of`). Returns the
    partition's result and its findings on the study-level datasets."""
    import time
    from collections import Counter

    from converter.engine.chain import adam_of, findings_of, ndjson_of, sdtm_of
    from converter.engine.stream import MAX_PROBLEMS, _peak_mib, _write_parquet
    from converter.records.checks import check_tables, typed_records

    chain = job.chain
    work = Path(job.work)
    res = PartResult(index=index)
    clock = time.process_time()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.process_time()
        res.seconds[stage] = res.seconds.get(stage, 0.0) + now - clock
        clock = now

    tables = _raw_tables(job, table)
    report = check_tables(tables, chain.forms)
    forms = chain.forms.forms
    controls = [p for oid, t in tables.items() for p in keyed_control_problems(t.frame, t.file, forms[oid])]
    res.problems = (controls + report.errors)[:MAX_PROBLEMS]
    res.warnings = len(report.warnings)
    res.subjects = sorted(str(s) for s in table["SUBJID"].unique().to_pylist() if s is not None)
    del table
    if res.problems:
        lap("read")
        return res, []
    records = typed_records(tables, chain.forms, report.parsed)
    del tables, report
    lap("read")

    frames, res.accounting = sdtm_of(chain, records)
    del records
    res.sdtm_rows = _write_parquet(frames, work / "sdtm", index)
    lap("sdtm")

    adam = adam_of(chain, frames)
    res.adam_checks = adam.checks
    res.adam_rows = _write_parquet(adam.datasets, work / "adam", index)
    lap("adam")
    study_findings: list[Any] = []
    if job.rules:  # findings on the study-level datasets are kept by the driver from one partition only
        found = findings_of(chain, frames, adam.datasets, with_study=True)
        study_findings = [f for f in found if f.dataset in chain.study_sets]
        found = [f for f in found if f.dataset not in chain.study_sets]
        res.rule_counts = dict(Counter(f"{f.severity}:{f.rule_id}" for f in found))
        res.findings = found[:MAX_PROBLEMS]
        lap("validate")
    del adam

    if chain.fhir is not None:
        folder = work / "fhir" / "ndjson"
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, Any] = {}
        try:
            for lines, problems in ndjson_of(chain, frames):
                res.fhir_problems += problems[: MAX_PROBLEMS - len(res.fhir_problems)]
                for rtype, data in lines.items():
                    fh = files.get(rtype)
                    if fh is None:
                        fh = files[rtype] = open(folder / f"{rtype}.{index:05d}.ndjson", "wb")  # noqa: SIM115
                    fh.write(data)
                    res.fhir_counts[rtype] = res.fhir_counts.get(rtype, 0) + data.count(b"\n")
        finally:
            for fh in files.values():
                fh.close()
        lap("fhir")
    res.peak_rss_mib = _peak_mib()
    return res, study_findings


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
) -> StreamReport:
    """``inoconv stream`` on Spark: ``source`` (a CSV folder read by Spark, or an ODM file read on the driver)
    converted per subject partition into ``out``, with the layout, ``accounting.csv``, conformance findings and
    ``stream.json`` of :func:`converter.engine.stream.run_stream`, and identical datasets and resources.
    ``partitions`` defaults to one per ``subjects_per_partition`` subjects, rounded up to a multiple of the
    session's default parallelism.

    ``out`` must be visible to every executor at the same path (local disk for ``local[N]``; a shared mount on
    a cluster). The folder is built beside it and put in place only when every partition converted; bad input
    raises InputError with every problem of every partition, and nothing is left behind."""
    import pickle
    import time

    from converter.engine.chain import load_chain
    from converter.engine.stream import _Context, _finish, _merge, _peak_mib
    from converter.errors import InputError
    from converter.io.atomic import atomic_dir
    from converter.records.csv_io import form_files
    from converter.records.sources import detect_format, read_records
    from converter.records.stream import count_subjects
    from converter.sdtm.build import Accounting

    wall0 = time.perf_counter()
    fmt = detect_format(source)
    rep = StreamReport()
    t = time.perf_counter()
    chain = load_chain(fhir=fhir)
    rep.wall_seconds["specs"] = time.perf_counter() - t
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as work:
        nd = work / "fhir" / "ndjson"
        nd.mkdir(parents=True, exist_ok=True)
        for rtype, data in chain.study_ndjson.items():
            (nd / f"{rtype}.study.ndjson").write_bytes(data)
            rep.fhir_counts[rtype] = data.count(b"\n")
        t = time.perf_counter()
        if fmt == "csv":
            paths, structural = form_files(source, chain.forms)
            structural = csv_header_problems(paths, chain.forms) + structural
            if structural:  # as the local engine: every header checked before any Spark job runs
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
            cores = max(1, spark.sparkContext.defaultParallelism)  # a whole number of waves of tasks
            partitions = cores * max(1, -(-subjects // (max(1, subjects_per_partition) * cores)))
        rep.wall_seconds["read"] = time.perf_counter() - t
        echo(f"stream (Spark {spark.sparkContext.master}): {source}; {partitions} subject partitions")
        t = time.perf_counter()
        job = _ChainJob(chain=chain, work=str(work), files=files, missing=missing, rules=rules)
        results = [pickle.loads(bytes(r[RESULT_COL])) for r in chain_long(long, partitions, job).collect()]
        rep.wall_seconds["partitions"] = time.perf_counter() - t
        accounting = Accounting()
        subjects_seen: set[str] = set()
        worker_peak = 0.0
        study_findings: list[Any] | None = None
        for res, study in sorted(results, key=lambda r: r[0].index):
            problems += res.problems
            subjects_seen.update(res.subjects)
            rep.partitions += 1
            worker_peak = max(worker_peak, res.peak_rss_mib)
            if not res.problems:
                _merge(rep, res, accounting)
                if study_findings is None:
                    study_findings = study
        for f in study_findings or []:
            rep.findings.append(f)
            rule = f"{f.severity}:{f.rule_id}"
            rep.rule_counts[rule] = rep.rule_counts.get(rule, 0) + 1
        if problems:
            raise InputError(problems, context=str(source))
        rep.subjects = len(subjects_seen)
        _finish(work, _Context(chain=chain, work=work, out=shown_as or out, rules=rules), rep, accounting)
        rep.peak_rss_mib = {"driver": _peak_mib(), "largest_worker": worker_peak}
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
) -> StreamReport:
    """:func:`run_stream_spark` in the active Spark session (under ``spark-submit``, in a notebook), or else in
    a local one (``local[cores]``, all cores by default) that is stopped afterwards. For a local session,
    ``stream.json`` also gets ``jvm_cpu_seconds``: the CPU of the JVM and its Python workers."""
    import os

    from pyspark.sql import SparkSession

    from converter.io.package_kind import expect_kind

    expect_kind(Path(source), "stream", ("records-csv", "records-odm"))  # before a JVM starts
    existing = SparkSession.getActiveSession()
    spark = existing or local_session(cores=cores or os.cpu_count() or 2)
    try:
        if existing is None:
            spark.sparkContext.setLogLevel("ERROR")
        rep = run_stream_spark(spark, source, out, partitions=partitions, subjects_per_partition=subjects_per_partition,
                               validate=validate, fhir=fhir, rules=rules, echo=echo, shown_as=shown_as)  # fmt: skip
        gateway = getattr(spark.sparkContext, "_gateway", None)
        proc = getattr(gateway, "proc", None)
        if existing is None and proc is not None and (out / "stream.json").exists():
            stats = orjson.loads((out / "stream.json").read_bytes())
            stats["jvm_cpu_seconds"] = round(process_tree_cpu(proc.pid), 1)
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
                                  shown_as=args.out)  # fmt: skip
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
