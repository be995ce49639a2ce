"""``inoconv sdtm --engine spark``: the SDTM datasets built per subject partition on Spark, brought to the driver.

:func:`sdtm_long` groups the long record table (:func:`converter.engine.spark.records_to_long`,
:func:`read_csv_forms`) by subject partition (:func:`converter.engine.spark.part_column`, the CRC-32 of the local
engine) and runs in ``applyInPandas`` the record checks, the typing and the spec engine, returning one row per
dataset holding its rows as exact text in an Arrow IPC blob; :func:`collect_sdtm` turns that into the typed
datasets (with the study-level ones), and :func:`write_parquet` writes them by dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from converter.engine.spark import (
    ACCOUNTING,
    DATASET_COL,
    FORM_COL,
    PART_COL,
    PAYLOAD_COL,
    PROBLEMS,
    part_column,
    text_frame,
)
from converter.frames import none_for_missing
from converter.records.checks import RawTable, check_tables, typed_records
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

__all__ = ["collect_sdtm", "read_csv_forms", "sdtm_long", "write_parquet"]


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
    blobs = [_ipc(text_frame(datasets[n])) for n in names]
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


def sdtm_long(long: SparkDataFrame, n_parts: int, mappings: Path | None = None) -> SparkDataFrame:
    """The SDTM rows of every subject-level dataset, as a long text table, computed per subject partition."""
    from pyspark.sql import types as T

    load_sdtm_specs(mappings)  # spec errors on the driver, before any task starts
    job = _Job(mappings=str(mappings) if mappings else None)
    part = part_column(n_parts)
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
