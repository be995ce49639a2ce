"""The ADaM rules that read another dataset by key: ``merge``, ``merge_flag``, ``merge_summary``, ``supp``,
``extreme_date`` (admiral's ``derive_vars_merged``, ``derive_var_merged_exist_flag``,
``derive_var_merged_summary``, ``combine_supp``, ``derive_vars_extreme_event``). Filters are spec expressions,
parsed when the spec was loaded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from converter.adam.codes import codes_of, column_codes, frame_codes, key_codes
from converter.adam.common import (
    as_sas_date,
    dates_of,
    key_frame,
    lookup_values,
    match_keys,
    matched,
    order_key,
    partial_dates,
    report_rows,
    right_rows,
    sas_round,
    shared_pick,
    take_matched,
    untied_picks,
    value_of,
)
from converter.adam.rows import kept, narrow_rows, rows_at
from converter.adam.shared import shared
from converter.frames import constant_column, null_column
from converter.sdtm.context import RowContext, as_text, row_rule
from converter.spec.adam_rules import by_pairs, order_var

__all__: list[str] = []  # rule implementations register themselves (converter.sdtm.context.ROW)


def _order_columns(order: list[Any]) -> list[str]:
    return [str(i["var"]) if isinstance(i, dict) else order_var(str(i)) for i in order]


def _picked(ctx: RowContext, a: dict[str, Any]) -> tuple[pd.DataFrame, pd.Series]:
    """The record ``merge`` picks per ``by`` group (as :func:`shared_pick` picks it from the filtered rows) and
    its ``var`` value. When no two records of a group tie on the order items, the pick reads the ``by`` and order
    columns alone (:func:`narrow_rows`, shared by the merges of one filter, by and order) and the value is taken
    from the dataset by position; else the whole filtered rows decide (every column breaks ties)."""
    by, order, mode = [r for _, r in by_pairs(a)], list(a.get("order") or []), a.get("mode", "first")
    frame = ctx.built.get(a["dataset"])
    read = [*by, *_order_columns(order)]
    if frame is not None and by and mode in ("first", "last") and {*read, a["var"]} <= set(frame.columns):
        narrow = narrow_rows(frame, a.get("filter"), read)

        def untied() -> tuple[pd.DataFrame, np.ndarray] | None:
            at = untied_picks(narrow, by, order, mode == "last", share=True) if len(narrow) else np.arange(0)
            return None if at is None else (rows_at(narrow, at, read), at)  # the columns read, not every column

        found = shared(("untied pick", tuple(by), order_key(order), mode), (narrow,), untied)
        if found is not None:
            rows, at = found
            keep = kept(frame, a.get("filter"))
            positions = at if keep is None else np.flatnonzero(keep)[at]
            return rows, frame[a["var"]].iloc[positions]
    chosen = shared_pick(right_rows(ctx, a), by, order, mode)
    return chosen, chosen[a["var"]]


@row_rule("merge")
def _merge(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    chosen, values = _picked(ctx, a)
    out, hit = take_matched(values, matched(ctx, a, chosen), ctx.frame.index)
    if a.get("as") == "date":
        bad = hit & partial_dates(out)
        if bad.any():
            report_rows(ctx, np.flatnonzero(bad.to_numpy()), a["var"], out, "merge",
                    f"partial date from {a['dataset']}.{a['var']}: state an imputation with a date rule")  # fmt: skip
        out = as_sas_date(out)
    elif a.get("as") not in (None, "value"):
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: merge `as` must be value or date")
    if "values" in a:
        mapping = {str(k): v for k, v in a["values"].items() if k != "__line__"}
        txt = as_text(out)
        mapped = txt.map(mapping)
        unmapped = hit & txt.notna() & ~txt.isin(list(mapping))
        if unmapped.any():
            if "default" in a:
                mapped = mapped.where(~unmapped, a["default"])
            else:
                report_rows(ctx, np.flatnonzero(unmapped.to_numpy()), a["var"], txt, "merge", "value has no mapping")
        out = mapped.astype(object)
    if a.get("round") is not None:
        out = sas_round(out, int(a["round"])).astype(object)
    if "missing" in a:
        out = out.where(hit, a["missing"])
    if a.get("fallback"):
        alt = value_of(ctx, a["fallback"])
        alt = as_sas_date(alt) if a.get("as") == "date" else alt
        out = out.astype(object).where(out.notna(), alt.astype(object))
    return out


@row_rule("merge_flag")
def _merge_flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    frame, by = ctx.built.get(a["dataset"]), [r for _, r in by_pairs(a)]
    if frame is not None and set(by) <= set(frame.columns):  # only the keys are read: their columns alone
        right = narrow_rows(frame, a.get("filter"), by)
    else:
        right = right_rows(ctx, a)
    hit = matched(ctx, a, right, unique=False) >= 0
    out = constant_column(a.get("false"), len(hit), ctx.frame.index)
    out[hit] = a.get("true", "Y")
    return out


@row_rule("merge_summary")
def _merge_summary(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    right = right_rows(ctx, a)
    left, rkeys = match_keys(ctx, a, right)
    cols = list(rkeys.columns)
    vals = right[a["var"]]
    fn = a["fn"]
    work = rkeys.assign(__v=vals.to_numpy())
    grouped = work.groupby(cols, sort=False, dropna=False)["__v"] if cols else None
    if fn == "count":
        agg = grouped.count() if grouped is not None else pd.Series([work["__v"].count()])
    elif fn == "n_distinct":
        agg = grouped.nunique() if grouped is not None else pd.Series([work["__v"].nunique()])
    elif fn in ("sum", "mean", "min", "max"):
        num = pd.to_numeric(work["__v"], errors="coerce") if fn in ("sum", "mean") else work["__v"]
        work = work.assign(__v=num)
        g = work.groupby(cols, sort=False, dropna=False)["__v"] if cols else None
        agg = g.agg(fn) if g is not None else pd.Series([work["__v"].agg(fn)])
    else:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: merge_summary fn must be count, n_distinct, sum, mean, "
                         f"min or max (got {fn})")  # fmt: skip
    aggf = agg.reset_index()
    aggf.columns = [*cols, "__v"] if cols else ["__i", "__v"]
    out, hit = lookup_values(left, aggf[cols], aggf["__v"])
    if fn in ("count", "n_distinct"):
        out = out.where(hit, 0)
    if "missing" in a:
        out = out.where(hit, a["missing"])
    return out


@row_rule("supp")
def _supp(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    supp = ctx.built[a["dataset"]]
    supp = supp[supp["QNAM"] == a["qnam"]]
    out = null_column(len(ctx.frame), ctx.frame.index)
    codes = codes_of()  # keys as the build's codes: one int64 per record
    idvars = supp["IDVAR"].fillna("")
    for idvar, part in supp.groupby(idvars.to_numpy(dtype=object), sort=True):  # an array: no lookup of a Series key
        lefts = [value_of(ctx, "USUBJID"), *([value_of(ctx, str(idvar))] if str(idvar) else [])]
        rights = [part["USUBJID"], *([part["IDVARVAL"]] if str(idvar) else [])]
        lcodes = [column_codes(c, codes) for c in lefts]
        rcodes = [codes.of(c.to_numpy(dtype=object)) for c in rights]
        lkey, rkey = key_codes(lcodes, len(codes)), key_codes(rcodes, len(codes))
        if lkey is None or rkey is None:  # too many distinct texts for one int64: the texts
            left, right = key_frame(lefts, ctx.frame.index), key_frame(rights, part.index)
            if right.duplicated().any():
                raise ValueError(f"{a['dataset']}: QNAM {a['qnam']} has more than one record per parent record")
            vals, hit = lookup_values(left, right, part["QVAL"])
        else:
            rindex = pd.Index(rkey)
            if rindex.has_duplicates:
                raise ValueError(f"{a['dataset']}: QNAM {a['qnam']} has more than one record per parent record")
            vals, hit = take_matched(part["QVAL"], rindex.get_indexer(pd.Index(lkey)), ctx.frame.index)
        out = out.where(~hit, vals)
    return out.astype(object)


@row_rule("extreme_date")
def _extreme_date(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    mode = a.get("mode", "last")
    codes = codes_of()  # subjects as the build's codes (0: none)
    keys: list[np.ndarray] = []
    days: list[np.ndarray] = []
    for src in a["sources"]:  # rows, subject codes and SAS dates shared with the other rules reading them
        df = narrow_rows(ctx.built[src["dataset"]], src.get("filter"), ["USUBJID", src["date"]])  # what is read
        keys.append(frame_codes(df, "USUBJID", codes))
        days.append(dates_of(df, src["date"]).to_numpy(dtype=float))
    subject = value_of(ctx, "USUBJID")
    left = column_codes(subject, codes)
    k, d = np.concatenate(keys), np.concatenate(days)
    dated = ~np.isnan(d) & (k > 0)
    extreme = np.full(len(codes), -np.inf if mode == "last" else np.inf)
    (np.maximum if mode == "last" else np.minimum).at(extreme, k[dated], d[dated])  # per subject code
    found = np.zeros(len(codes), dtype=bool)
    found[k[dated]] = True
    return pd.Series(np.where(found, extreme, np.nan).take(left), index=subject.index, dtype="float64")
