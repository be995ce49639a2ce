"""Apply mapping specs to source data: records (or already built datasets) -> target datasets.

For each spec, in dependency order: every source yields rows (one per source record, after its ``where``),
each variable's rule fills its column, sources are stacked, then dataset rules run (--SEQ, --DY, EPOCH,
baseline flags), values are cast to the spec types and rows sorted by the spec keys.

Every source record is accounted for (:class:`Accounting`): it ends in a target row, is left out by a
documented ``where`` of the spec (with the condition as reason), or is listed as having no target at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import InputError, Problem
from converter.frames import null_column, text_column
from converter.records.model import Records
from converter.records.partitions import sort_order
from converter.records.schema import FormSchema
from converter.sdtm.algorithms import DATASET, ROW, DatasetContext, RowContext
from converter.sdtm.context import FrameMemo
from converter.spec.expr import evaluate_mask
from converter.spec.model import DatasetSpec, SourceSpec, Terminology
from converter.spec.vocabulary import rule_def


@dataclass
class FormAccount:
    form: str
    records: int
    mapped: np.ndarray  # bool per record: ended in at least one target row (or was merged into one)
    targets: dict[str, int] = field(default_factory=dict)  # dataset -> rows made from this form
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> records


@dataclass
class Accounting:
    forms: dict[str, FormAccount] = field(default_factory=dict)

    def start(self, records: Records) -> None:
        for oid, df in records.items():
            self.forms[oid] = FormAccount(oid, len(df), np.zeros(len(df), dtype=bool))

    def account(self, form: str, records: Records) -> FormAccount:
        if form not in self.forms:
            n = len(records[form])
            self.forms[form] = FormAccount(form, n, np.zeros(n, dtype=bool))
        return self.forms[form]

    def rows(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for acc in self.forms.values():
            unmapped = int((~acc.mapped).sum())
            out.append(
                {
                    "form": acc.form,
                    "records": acc.records,
                    "in_target_rows": int(acc.mapped.sum()),
                    "rejected": unmapped,
                    "targets": ", ".join(f"{k}:{v}" for k, v in sorted(acc.targets.items())),
                    "reasons": "; ".join(f"{k} ({v})" for k, v in acc.left_out.items()) if unmapped else "",
                }
            )
        return out

    def merge(self, other: Accounting) -> None:
        """Add another partition's accounting (records of different subjects)."""
        for form, acc in other.forms.items():
            mine = self.forms.get(form)
            if mine is None:
                self.forms[form] = FormAccount(form, acc.records, acc.mapped.copy(), dict(acc.targets),
                                               dict(acc.left_out))  # fmt: skip
                continue
            mine.records += acc.records
            mine.mapped = np.concatenate([mine.mapped, acc.mapped])
            for k, v in acc.targets.items():
                mine.targets[k] = mine.targets.get(k, 0) + v
            for k, v in acc.left_out.items():
                mine.left_out[k] = mine.left_out.get(k, 0) + v

    def rejected(self) -> int:
        return sum(int((~a.mapped).sum()) for a in self.forms.values())


class RecordLabels:
    """Readable record labels ("SUBJID=1001 AESPID=3"), made only for the rows a problem is reported on."""

    def __init__(self, frame: pd.DataFrame, key: tuple[str, ...]) -> None:
        self._frame = frame
        self._key = [k for k in key if k in frame.columns]

    @property
    def iloc(self) -> RecordLabels:
        return self

    def __getitem__(self, i: int) -> str:
        if not self._key:
            return f"row {int(i) + 1}"
        row = self._frame.iloc[int(i)]
        return " ".join(f"{k}={_label_value(row[k])}" for k in self._key)


def _label_value(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _source_frame(
    src: SourceSpec, records: Records, built: Mapping[str, pd.DataFrame], schema: FormSchema | None
) -> tuple[pd.DataFrame, tuple[str, ...], str]:
    """The rows of one source: the form's records with joined forms (by SUBJID), or inline rows."""
    if src.rows:
        return pd.DataFrame(list(src.rows)), (), "spec"
    if src.dataset is not None:  # not copied here: build_dataset filters or copies it
        df = built[src.dataset]
        return df, ("USUBJID",) if "USUBJID" in df.columns else (), src.dataset
    assert src.form is not None
    base = records[src.form].copy()
    base["__rec__"] = np.arange(len(base))
    labels_key = schema.forms[src.form].key if schema and src.form in schema.forms else ("SUBJID",)
    for jf in src.join:
        other = records[jf]
        renamed = other.rename(columns={c: f"{jf}.{c}" for c in other.columns if c != "SUBJID"})
        if other["SUBJID"].duplicated().any():
            raise ValueError(f"source {src.id}: joined form {jf} has more than one record per subject")
        base = base.merge(renamed, on="SUBJID", how="left", validate="many_to_one")
        for c in other.columns:  # bare names for joined fields the primary form doesn't have
            if c != "SUBJID" and c not in base.columns:
                base[c] = base[f"{jf}.{c}"]
    return base, tuple(labels_key), src.form


def build_dataset(
    spec: DatasetSpec,
    records: Records,
    built: Mapping[str, pd.DataFrame],
    ct: Terminology,
    schema: FormSchema | None,
    accounting: Accounting | None = None,
    problems: list[Problem] | None = None,
    memo: dict[Any, Any] | None = None,
) -> pd.DataFrame:
    """One dataset of ``spec``; ``memo`` is shared by the row rules of every dataset built from the same records
    (:attr:`RowContext.memo`)."""
    problems = problems if problems is not None else []
    memo = memo if memo is not None else {}
    pieces: list[tuple[dict[str, pd.Series], pd.Index]] = []
    for src in spec.sources:
        frame, label_key, file = _source_frame(src, records, built, schema)
        if src.where and len(frame):
            keep = evaluate_mask(src.where, frame)  # parsed at spec load
            if accounting is not None and src.form is not None:
                accounting.account(src.form, records).left_out.setdefault(
                    f"{spec.name} where {src.where}", int((~keep).sum())
                )
            frame = frame[keep]  # a copy
        elif src.dataset is not None:
            frame = frame.copy()  # a built dataset: the rules see a copy of their own
        frame.index = pd.RangeIndex(len(frame))  # the frame is this build's own: no copy to renumber it
        labels = RecordLabels(frame, label_key)
        target: dict[str, pd.Series] = {}
        for var in spec.variables:
            rule = var.rule_for(src.id)
            if rule is None:
                if (src.rows or src.dataset is not None) and var.name in frame.columns:
                    target[var.name] = frame[var.name]
                else:
                    target[var.name] = null_column(len(frame), frame.index)
                continue
            if rule_def(rule.name).phase != "row":
                target[var.name] = null_column(len(frame), frame.index)
                continue
            ctx = RowContext(
                frame=frame, labels=labels, file=file, records=records, built=dict(built), ct=ct,
                schema=schema, spec=spec, source=src, var=var, target=target, problems=problems, memo=memo,
            )  # fmt: skip
            target[var.name] = pd.Series(ROW[rule.name](ctx, rule.args).to_numpy(), index=frame.index)
        pieces.append((target, frame.index))  # the columns, aligned to the frame's rows: stacked below
        if accounting is not None and src.form is not None and len(frame):
            for form in (src.form, *src.join):
                acc = accounting.account(form, records)
                if form == src.form:
                    acc.mapped[frame["__rec__"].to_numpy()] = True
                    used = len(frame)
                else:
                    hit = records[form]["SUBJID"].isin(set(frame["SUBJID"])).to_numpy()
                    acc.mapped |= hit
                    used = int(hit.sum())
                acc.targets[spec.name] = acc.targets.get(spec.name, 0) + used
    # copy=False: the columns as they are, not consolidated into blocks (a copy of every value that finalise
    # makes again); dataset rules replace whole columns, never write into them
    if len(pieces) > 1:  # stack as object columns (column by column: fast); finalise() casts to the spec types
        df = pd.DataFrame({c: np.concatenate([p[c].to_numpy(dtype=object) for p, _ in pieces]) for c in pieces[0][0]},
                          copy=False)  # fmt: skip
    else:
        df = pd.DataFrame(pieces[0][0], index=pieces[0][1], copy=False) if pieces else \
            pd.DataFrame(columns=spec.column_names)  # fmt: skip
    frame_memo = FrameMemo()  # what the dataset rules of this frame share, until a column they read is written
    for var in spec.variables:  # dataset rules see the whole stacked frame (one subject or a partition)
        rules = {r.name for r in var.rules.values()}
        dataset_rules = [r for r in var.rules.values() if rule_def(r.name).phase == "dataset"]
        if not dataset_rules:
            continue
        if len(rules) > 1:
            raise ValueError(f"{spec.name}.{var.name}: a dataset rule cannot differ per source")
        rule = dataset_rules[0]
        dctx = DatasetContext(frame=df, built=dict(built), ct=ct, spec=spec, var=var, problems=problems,
                              memo=frame_memo)  # fmt: skip
        df[var.name] = DATASET[rule.name](dctx, rule.args).to_numpy()
        frame_memo.written(var.name)
    return finalise(df, spec)


def cast_column(col: pd.Series, vtype: str) -> pd.Series:
    if vtype == "integer":
        exact = _object_integers(col) if col.dtype == object else None
        if exact is not None:
            return pd.Series(exact, index=col.index, name=col.name)
        floats = _object_floats(col) if col.dtype == object else None
        num = pd.to_numeric(col, errors="coerce") if floats is None else floats
        if num.dtype.kind == "f":  # round and mask at once (astype('Int64') checks every value again)
            values = num.to_numpy()
            null = np.isnan(values)
            if bool((np.abs(values[~null]) < 2.0**53).all()):
                ints = np.where(null, 0.0, np.round(values)).astype(np.int64)
                return pd.Series(pd.arrays.IntegerArray(ints, null), index=col.index, name=col.name)
        return num.round().astype("Int64") if num.notna().any() or len(num) else num.astype("Int64")
    if vtype == "float":
        floats = _object_floats(col) if col.dtype == object else None
        return pd.to_numeric(col, errors="coerce").astype("float64") if floats is None else floats
    return text_column(col)  # numbers become their shortest exact text


def _object_integers(col: pd.Series) -> pd.arrays.IntegerArray | None:
    """An object column of integers (Python or numpy; missing values among them) as ``Int64`` without parsing
    each value as ``to_numeric`` does; None for anything else, or integers a float would not hold exactly
    (``to_numeric`` may pass them through floats)."""
    values = col.to_numpy()
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind == "mixed-integer" and pd.api.types.infer_dtype(values, skipna=True) == "integer":
        kind = "integer-na"  # integers beside None or pd.NA (an Int64 column's values through to_numpy)
    if kind not in ("integer", "integer-na"):
        return None
    null = pd.isna(values) if kind == "integer-na" else np.zeros(len(values), dtype=bool)
    try:
        ints = (np.where(null, 0, values) if kind == "integer-na" else values).astype(np.int64)
    except (TypeError, ValueError, OverflowError):
        return None
    if len(ints) and bool((np.abs(ints) >= 2**53).any()):
        return None
    return pd.arrays.IntegerArray(ints, null)


def _object_floats(col: pd.Series) -> pd.Series | None:
    """An object column of numbers (Python or numpy ints and floats; None, NaN or pd.NA missing) as float64,
    what ``pd.to_numeric(col, errors="coerce")`` gives it, without parsing each value; None for anything else, or
    numbers a float would not hold exactly (from 2**53 on, infinities: ``to_numeric`` decides those)."""
    values = col.to_numpy()
    if pd.api.types.infer_dtype(values, skipna=True) not in ("integer", "floating", "mixed-integer-float"):
        return None
    null = pd.isna(values)
    try:
        floats = (np.where(null, np.nan, values) if null.any() else values).astype(np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if not bool((np.abs(floats[~np.isnan(floats)]) < 2.0**53).all()):
        return None
    return pd.Series(floats, index=col.index, name=col.name)


def final_text(col: pd.Series) -> np.ndarray:
    """The values of ``text_column(col)``: a column of text and missing values only (what most rules give) is
    checked and cleaned per distinct value (missing and '' -> None, the text objects kept as they are); any other
    column goes through ``text_column``."""
    values = col.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # text only, nothing missing: no hashing
        texts: np.ndarray = values.copy()
        texts[values == ""] = None
        return texts
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if not all(isinstance(u, str) for u in uniques):
        out: np.ndarray = text_column(col).to_numpy()
        return out
    blank = [i for i, u in enumerate(uniques) if u == ""]
    drop = codes < 0
    if blank:
        drop |= np.isin(codes, blank)
    out = values.copy()
    if drop.any():
        out[drop] = None
    return out


def finalise(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Spec column order and types, rows sorted by the spec keys (stable, nulls first, as SAS sorts).

    Built from arrays with the index set once (no alignment per column), not consolidated into blocks."""
    n = len(df)
    columns: dict[str, np.ndarray | pd.api.extensions.ExtensionArray] = {}
    for v in spec.ordered:
        if v.name not in df:
            columns[v.name] = cast_column(null_column(n), v.type).array if v.type in ("integer", "float") \
                else np.full(n, None, dtype=object)
        elif v.type in ("integer", "float"):
            cast = cast_column(df[v.name], v.type)
            columns[v.name] = cast.to_numpy() if v.type == "float" else cast.array
        else:
            columns[v.name] = final_text(df[v.name])
    keys = [k for k in spec.keys if k in columns]
    if keys and n:
        order = sort_order([columns[k] for k in keys])
        columns = {c: a[order] for c, a in columns.items()}
    # the arrays as they are (each its own block): consolidating them copies every value; a frame of more than
    # 100 columns is consolidated (pandas warns about inserting a column into a frame of that many blocks)
    return pd.DataFrame(columns, index=pd.RangeIndex(n), copy=len(columns) > 100)


def build_all(
    specs: Mapping[str, DatasetSpec],
    records: Records,
    ct: Terminology,
    schema: FormSchema | None,
    upstream: Mapping[str, pd.DataFrame] | None = None,
) -> tuple[dict[str, pd.DataFrame], Accounting]:
    """Every dataset of the specs (in their dependency order); all CT/map problems raised together."""
    accounting = Accounting()
    accounting.start(records)
    problems: list[Problem] = []
    built: dict[str, pd.DataFrame] = dict(upstream or {})
    out: dict[str, pd.DataFrame] = {}
    memo: dict[Any, Any] = {}  # the records' aggregates the rules share (RowContext.memo)
    for name, spec in specs.items():
        out[name] = build_dataset(spec, records, built, ct, schema, accounting, problems, memo)
        built[name] = out[name]
    if problems:
        raise InputError(problems, context="mapping to target datasets")
    return out, accounting
