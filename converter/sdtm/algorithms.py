"""Implementations of the SDTM rule vocabulary (:mod:`converter.spec.rules`), one function per rule, column-wise.

Row rules take a :class:`~converter.sdtm.context.RowContext` and return a Series aligned to the source rows;
dataset rules take a :class:`~converter.sdtm.context.DatasetContext` and return a Series aligned to the stacked
target frame (both, and the registries ``ROW``/``DATASET``, live in :mod:`converter.sdtm.context`). Nothing loops over
rows in Python; everything a rule needs is in one subject's data, so a partition of subjects converts on its own.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import problem
from converter.frames import constant_column, keep_where, text_column
from converter.sdtm.context import (
    DATASET,
    ROW,
    DatasetContext,
    RowContext,
    as_text,
    dataset_rule,
    full_dates,
    row_rule,
)
from converter.sdtm.derivations import DERIVATIONS
from converter.spec.expr import evaluate_mask, filter_rows

__all__ = ["DATASET", "ROW", "DatasetContext", "RowContext", "as_text", "dataset_rule", "full_dates", "row_rule"]


# --- row rules -------------------------------------------------------------------------------------------------
@row_rule("field")
def _field(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return ctx.col(a["field"]).copy()


@row_rule("assign")
def _assign(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return constant_column(a["value"], len(ctx.frame), ctx.frame.index)


@row_rule("ct")
def _ct(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    cl = ctx.ct.get(a["codelist"])
    codes, raw = _texts_by_code(ctx.col(a["field"]))  # per distinct value: its text; the last code is missing
    mapping = cl.collected_map()
    mapped = np.array([None if v is None else mapping.get(v.upper()) for v in raw], dtype=object)
    bad = np.array([v is not None for v in raw], dtype=bool) & np.array([m is None for m in mapped], dtype=bool)
    if bad.any():
        if cl.extensible:
            mapped[bad] = raw[bad]  # a sponsor extension of an extensible list is kept as collected
        else:
            for i in np.flatnonzero(bad[codes]):
                ctx.problems.append(
                    problem(
                        ctx.file,
                        str(ctx.labels.iloc[i]),
                        a["field"],
                        raw[codes[i]],
                        "ct",
                        f"{ctx.spec.name}.{ctx.var.name}: not in non-extensible codelist {cl.id} ({cl.code})",
                    )
                )
    final = text_column(pd.Series(mapped, dtype=object)).to_numpy()
    return pd.Series(final[codes], index=ctx.frame.index, dtype=object)


@row_rule("map")
def _map(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    codes, raw = _texts_by_code(ctx.col(a["field"]))  # per distinct value: its text; the last code is missing
    values = {str(k): v for k, v in a["values"].items() if k != "__line__"}
    mapped = np.array([None if t is None else values.get(t) for t in raw], dtype=object)
    to_none = {k for k, v in values.items() if v is None}
    bad = np.array([t is not None and m is None and t not in to_none for t, m in zip(raw, mapped, strict=True)],
                   dtype=bool)  # fmt: skip
    if bad.any():
        if "default" in a:
            mapped[bad] = a["default"]
        else:
            for i in np.flatnonzero(bad[codes]):
                ctx.problems.append(
                    problem(ctx.file, str(ctx.labels.iloc[i]), a["field"], raw[codes[i]], "map",
                            f"{ctx.spec.name}.{ctx.var.name}: value has no mapping in the spec")
                )
    return pd.Series(mapped[codes], index=ctx.frame.index, dtype=object)


@row_rule("iso_date")
def _iso_date(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return text_column(ctx.col(a["field"]))  # records hold ISO 8601 already (checked on read); partial kept


@row_rule("iso_datetime")
def _iso_datetime(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    d = text_column(ctx.col(a["date"]))
    if not a.get("time"):
        return d
    t = text_column(ctx.col(a["time"]))
    both = d.notna() & t.notna() & (d.str.len() == 10)
    joined = (d.fillna("") + "T" + t.fillna("")).astype(object)
    return joined.where(both, d)


@row_rule("usubjid")
def _usubjid(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    study = a.get("study") or (ctx.schema.study.oid if ctx.schema else "")
    codes, ids = _texts_by_code(ctx.col(a["field"]))  # each distinct subject once
    joined = np.array([None if t is None else study + "-" + t for t in ids], dtype=object)
    return pd.Series(joined[codes], index=ctx.frame.index, dtype=object)


@row_rule("template")
def _template(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    tmpl = str(a["template"])
    fields = [f for _, f, _, _ in string.Formatter().parse(tmpl) if f]
    n = len(ctx.frame)
    if not fields:
        return constant_column(tmpl, n, ctx.frame.index)
    names = list(dict.fromkeys(fields))
    combo = np.zeros(n, dtype=np.int64)
    per_field: list[tuple[np.ndarray, np.ndarray]] = []
    for f in names:  # each field's distinct values as text once; the rows by their combination of values
        codes, text = _texts_by_code(ctx.col(f))
        per_field.append((codes, text))
        combo = pd.factorize(combo * (len(text) + 1) + codes)[0]
    if not n:
        return pd.Series(np.empty(0, dtype=object), index=ctx.frame.index, dtype=object)
    firsts = np.full(int(combo.max()) + 1, n, dtype=np.int64)
    np.minimum.at(firsts, combo, np.arange(n))  # one row per combination
    rows = [text[codes[firsts]] for codes, text in per_field]
    formatted = np.array(
        [None if any(v is None for v in row) else tmpl.format(**dict(zip(names, row, strict=True)))
         for row in zip(*rows, strict=True)],
        dtype=object,
    )  # fmt: skip
    return pd.Series(formatted[combo], index=ctx.frame.index, dtype=object)


def _texts_by_code(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a column's values and the text (``as_text``) of each code; the last code (-1) is missing.

    Numbers and text are made text once per distinct value; an object column holding anything but text is made
    text value by value first (values that compare equal, 1 and True, may have different texts)."""
    values = col.to_numpy()
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if col.dtype == object and not all(isinstance(u, str) for u in uniques):
        codes, uniques = pd.factorize(as_text(col).to_numpy(), use_na_sentinel=True)
    text = np.empty(len(uniques) + 1, dtype=object)  # the last: None
    text[: len(uniques)] = as_text(pd.Series(uniques)).to_numpy()
    return np.where(codes < 0, len(uniques), codes), text


@row_rule("flag")
def _flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    col = ctx.col(a["field"])
    hit = col.notna() if a.get("value") is None else (as_text(col) == str(a["value"]))
    return keep_where(constant_column("Y", len(hit), ctx.frame.index), hit.to_numpy(dtype=bool))


@row_rule("case")
def _case(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    read = set().union(*(cond.names for cond, _ in a["when"]))  # only the columns the conditions read
    env = pd.DataFrame({c: ctx.frame[c] for c in ctx.frame.columns if "." not in c and c in read and c not in
                        ctx.target} | {k: v for k, v in ctx.target.items() if k in read}, index=ctx.frame.index)
    out = constant_column(a.get("else"), len(env), env.index)
    decided = pd.Series(False, index=env.index)
    for cond, value in a["when"]:  # conditions parsed at spec load (converter.spec.expr)
        hit = pd.Series(evaluate_mask(cond, env), index=env.index) & ~decided
        out = out.where(~hit, value)
        decided |= hit
    return out.astype(object)


@row_rule("subject_agg")
def _subject_agg(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    fn = a["fn"]
    key = ("subject_agg", a["form"], a.get("where"), a["field"], fn)
    if key not in ctx.memo:  # once per build for every variable that asks for the same
        ctx.memo[key] = _per_subject(ctx.records[a["form"]], a.get("where"), a["field"], fn)
    res = ctx.subject_ids().map(ctx.memo[key])
    if fn == "count":
        res = res.fillna(0)
    return res


def _per_subject(src: pd.DataFrame, where: Any, field: str, fn: str) -> pd.Series:
    """``fn`` of ``field`` over each subject's records of ``src`` (where ``where`` holds), by SUBJID."""
    if where is not None:
        src = filter_rows(src, where)
    vals = src[["SUBJID", field]].dropna()
    grouped = vals.groupby("SUBJID", sort=False)[field]
    if fn in ("min", "max"):  # ISO 8601 text sorts chronologically at equal precision; sort, not per-group min
        ordered = vals.sort_values([field, "SUBJID"], kind="mergesort")
        agg: pd.Series = ordered.drop_duplicates("SUBJID", keep="first" if fn == "min" else "last").set_index(
            "SUBJID")[field]  # fmt: skip
        return agg
    if fn == "count":
        return grouped.count()
    if fn in ("first", "last"):
        return grouped.first() if fn == "first" else grouped.last()
    raise ValueError(f"subject_agg: fn must be min, max, count, first or last (got {fn})")


@row_rule("lookup")
def _lookup(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    other = ctx.built[a["dataset"]]
    by = list(a.get("by") or ["USUBJID"])
    left = pd.DataFrame({k: ctx.target[k] if k in ctx.target else ctx.col(k) for k in by}, index=ctx.frame.index)
    right = other[[*by, a["var"]]].drop_duplicates(subset=by)
    merged = left.merge(right, on=by, how="left", validate="many_to_one")
    return pd.Series(merged[a["var"]].to_numpy(), index=ctx.frame.index)


@row_rule("derivation")
def _derivation(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    fn = DERIVATIONS.get(a["name"])
    if fn is None:
        raise KeyError(f"unknown derivation {a['name']!r} (known: {', '.join(DERIVATIONS)})")
    result: pd.Series = fn(ctx, dict(a.get("args") or {}))
    return result


# --- dataset rules ---------------------------------------------------------------------------------------------
@dataset_rule("copy")
def _copy(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    col: pd.Series = ctx.frame[a["var"]].copy()
    return col


@dataset_rule("seq")
def _seq(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    by = list(a.get("by") or ["USUBJID"])
    order = [c for c in a["order"] if c not in by]
    df = ctx.frame
    if df.empty:
        return pd.Series([], index=df.index, dtype="float64")
    sort_cols = by + order
    keys = [_seq_sort_keys(df[c]) for c in sort_cols]
    if any(k is None for k in keys) or any(df[c].isna().any() for c in by):
        return _seq_sorted_frame(df, by, sort_cols)
    flat = [k for col in keys if col is not None for k in col]
    ranked = np.lexsort(flat[::-1])  # stable: the order of a mergesort of the columns
    change = np.zeros(len(df) - 1, dtype=bool)
    for col in keys[: len(by)]:  # a new group wherever a by value changes along the sorted rows (by leads the sort)
        for k in col or []:
            ordered = k[ranked]
            change |= ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(np.r_[True, change])
    run = np.repeat(starts, np.diff(np.r_[starts, len(df)]))
    seq = np.empty(len(df), dtype="float64")
    seq[ranked] = np.arange(len(df)) - run + 1
    return pd.Series(seq, index=df.index)


def _seq_sort_keys(col: pd.Series) -> list[np.ndarray] | None:
    """Lexsort keys giving the order of ``_seq_sorted_frame``'s sort of this column: text by its sorted codes,
    missing values last (as '\uffff'); numbers by a null flag (missing last) and their values. None for any
    other column (mixed, dates, extension types) or text at or above '\uffff': those take the sort_values path."""
    if col.dtype == object:
        values = col.to_numpy()
        if pd.api.types.infer_dtype(values, skipna=False) in _NUMBER_KINDS:
            return _object_number_keys(values)  # numbers held as objects (a stacked frame): sorted as numbers
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
        if not all(isinstance(u, str) and u < "\uffff" for u in uniques):
            return None
        return [np.where(codes < 0, len(uniques), codes)]
    if isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiub":
        values = col.to_numpy()
        null = pd.isna(values)
        return [null, np.where(null, 0, values) if null.any() else values]
    return None


_NUMBER_KINDS = ("integer", "integer-na", "floating", "mixed-integer-float")  # infer_dtype's kinds of numbers


def _object_number_keys(values: np.ndarray) -> list[np.ndarray] | None:
    """Lexsort keys of an object column of Python/numpy ints and floats, as floats: a null flag (NaN last, as
    ``_seq_sorted_frame``'s '\uffff' sorts after every number) and the values (equal values tied, as its stable
    sort ties them); None when a value is too large for a float to hold every integer exactly."""
    try:
        numbers = values.astype("float64")
    except (TypeError, ValueError, OverflowError):
        return None
    null = np.isnan(numbers)
    known = np.where(null, 0.0, numbers)
    if (np.abs(known) >= 2.0**53).any():
        return None
    return [null, known]


def _seq_sorted_frame(df: pd.DataFrame, by: list[str], sort_cols: list[str]) -> pd.Series:
    keyed = df[sort_cols].copy()
    for c in sort_cols:  # sort numbers as numbers, text as text, nulls last
        if keyed[c].dtype == object:
            keyed[c] = keyed[c].where(keyed[c].notna(), "\uffff")  # no fillna: it would downcast (FutureWarning)
    ranked = keyed.sort_values(sort_cols, kind="mergesort", na_position="last")
    seq = ranked.groupby(by, sort=False).cumcount() + 1
    return seq.reindex(df.index).astype("float64")


def _dates(ctx: DatasetContext, column: str) -> pd.Series:
    """``full_dates`` of a column of the frame, once per frame for every rule that reads it (until it changes)."""
    dates: pd.Series = ctx.memo.get(("dates", column), frozenset([column]), lambda: full_dates(ctx.frame[column]))
    return dates


def _reference(ctx: DatasetContext, ref: str) -> pd.Series:
    """A per-row reference date (datetime64) from 'DATASET.VAR' merged by USUBJID, once per frame for every rule
    that asks for it (until the frame's USUBJID, or the variable when it is the frame's own, changes)."""
    ds, var = ref.split(".", 1)
    reads = frozenset(["USUBJID", var] if ds == ctx.spec.name else ["USUBJID"])
    dates: pd.Series = ctx.memo.get(("reference", ref), reads, lambda: _reference_dates(ctx, ds, var))
    return dates


def _reference_dates(ctx: DatasetContext, ds: str, var: str) -> pd.Series:
    """The dates of :func:`_reference`."""
    other = ctx.frame if ds == ctx.spec.name else ctx.built[ds]
    subjects = ctx.frame["USUBJID"]
    codes, uniques = pd.factorize(subjects.to_numpy(dtype=object), use_na_sentinel=True)
    if (codes < 0).any():  # missing subjects: the map of the whole column, as it always was
        refs = other[["USUBJID", var]].drop_duplicates("USUBJID").set_index("USUBJID")[var]
        return full_dates(subjects.map(refs))
    ids = pd.Index(other["USUBJID"].to_numpy(dtype=object))
    first = ~ids.duplicated()  # each subject's first row, as drop_duplicates keeps
    where = ids[first].get_indexer(pd.Index(uniques))
    known = other[var].to_numpy(dtype=object)[first]
    values = np.empty(len(where), dtype=object)  # None where the subject has no row
    values[where >= 0] = known[where[where >= 0]]
    dates = full_dates(pd.Series(values, dtype=object)).to_numpy()  # once per subject
    return pd.Series(dates[codes], index=subjects.index)


@dataset_rule("study_day")
def _study_day(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    ref = _reference(ctx, a.get("ref") or "DM.RFSTDTC")
    day = _dates(ctx, a["dtc"])
    diff = (day - ref).dt.days
    return diff.where(diff < 0, diff + 1).astype("float64")  # no day 0


@dataset_rule("epoch")
def _epoch(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    names = {"before": "SCREENING", "during": "TREATMENT", "after": "FOLLOW-UP"} | dict(a.get("map") or {})
    start = _reference(ctx, a.get("start") or "DM.RFXSTDTC")
    end = _reference(ctx, a.get("end") or "DM.RFXENDTC")
    day = _dates(ctx, a["dtc"])
    out = np.full(len(day), None, dtype=object)
    known = day.notna().to_numpy() & start.notna().to_numpy()
    before = known & (day < start).to_numpy()
    after = known & end.notna().to_numpy() & (day > end).to_numpy()
    during = known & ~before & ~after
    out[before], out[during], out[after] = names["before"], names["during"], names["after"]
    return pd.Series(out, index=ctx.frame.index, dtype=object)


@dataset_rule("baseline_flag")
def _baseline_flag(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    df = ctx.frame
    ref = _reference(ctx, a.get("ref") or "DM.RFSTDTC")
    day = _dates(ctx, a["dtc"])
    ok = df[a["value"]].notna() & day.notna() & ref.notna() & (day <= ref)
    out = pd.Series(np.full(len(df), None, dtype=object), index=df.index)
    if ok.any():
        cand = df.loc[ok, ["USUBJID", *a["by"]]].assign(_day=day[ok])
        last = cand.sort_values([*["USUBJID", *a["by"]], "_day"], kind="mergesort").groupby(
            ["USUBJID", *a["by"]], sort=False
        ).tail(1)
        out.loc[last.index] = "Y"
    return out
