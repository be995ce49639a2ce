"""Response rules (pharmaverse admiral / admiralonco): ``extreme_event`` (``derive_extreme_event`` with a list of
``event`` / ``event_joined`` definitions: best overall response, confirmed response, first progression, last
assessment), its companion ``event_attr`` (the variables kept from the chosen record) and the dataset-phase
``relative_flag`` (``derive_var_relative_flag``: the records before or after a reference record, e.g. the
assessments up to the first progression).

Everything that makes a derivation a study's (which records, the events and their order, the confirmation
window, the values allowed in between) is stated in the spec; the rules know no response criteria.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from converter.adam.common import (
    as_sas_date,
    key_frame,
    lookup_values,
    order_positions,
    pick,
    sibling_rule,
    value_of,
)
from converter.adam.shared import shared
from converter.frames import keep_where
from converter.sdtm.context import DatasetContext, RowContext, as_text, dataset_rule, missing_column, row_rule
from converter.spec.adam_rules import EVENT_COLUMNS, by_pairs
from converter.spec.expr import evaluate_mask, filter_rows

__all__ = ["confirmed", "event_choice", "relative_positions"]


# --- confirmation (admiral's event_joined, join_type "after", first_cond_upper) --------------------------------
def confirmed(rows: pd.DataFrame, by: Sequence[str], conf: dict[str, Any]) -> np.ndarray:
    """Per record of ``rows``: whether a later record of its ``by`` group (in the order of ``conf['date']``)
    confirms it: the first later record whose ``var`` is in ``values`` and whose date is at least ``min_days``
    after the record's closes a window; every record of the window (after the record, up to and including the
    closing one) has a ``var`` in ``allowed``, at most ``max[value]`` records of a value, and no record of a
    value ``not_after`` names after a record of one of the values it lists. No closing record: not confirmed."""
    n = len(rows)
    if n == 0:
        return np.zeros(0, dtype=bool)
    date_var, var = str(conf["date"]), str(conf["var"])
    pos = order_positions(rows, [*by, date_var], by=())  # groups together, by date, ties broken on content
    srt = rows.iloc[pos]
    grp = pd.factorize(pd.MultiIndex.from_arrays([as_text(srt[b]).fillna("") for b in by]) if by else
                       pd.Index(np.zeros(n, dtype=int)))[0]  # fmt: skip
    rank = pd.Series(grp).groupby(grp).cumcount().to_numpy()
    left = pd.DataFrame({"g": grp, "i": np.arange(n), "r": rank,
                         "d": as_sas_date(srt[date_var]).to_numpy(dtype=float)})  # fmt: skip
    right = left.assign(v=as_text(srt[var]).to_numpy(dtype=object))
    pairs = left.merge(right, on="g", suffixes=("", "_j"))
    pairs = pairs[pairs["r_j"] > pairs["r"]]
    closes = pairs["v"].isin(list(conf["values"])).to_numpy() & (
        pairs["d_j"].to_numpy() >= pairs["d"].to_numpy() + float(conf["min_days"])
    )
    upper = pd.Series(np.where(closes, pairs["r_j"], np.inf), index=pairs.index).groupby(pairs["i"]).min()
    window = pairs[pairs["r_j"].to_numpy() <= upper.reindex(pairs["i"]).to_numpy()]
    ok = pd.Series(True, index=upper.index[np.isfinite(upper.to_numpy())])
    if len(ok) and len(window):
        outside = (~window["v"].isin(list(conf["allowed"]))).astype(int).groupby(window["i"]).sum()
        ok &= outside.reindex(ok.index, fill_value=0).to_numpy() == 0
        for value, most in _items(conf.get("max")):
            count = (window["v"] == value).astype(int).groupby(window["i"]).sum().reindex(ok.index, fill_value=0)
            ok &= count.to_numpy() <= int(most)
        for later, earlier in _items(conf.get("not_after")):
            earlier_vals = [earlier] if isinstance(earlier, str) else list(earlier)
            last_later = window["r_j"].where(window["v"] == later).groupby(window["i"]).max()
            first_earlier = window["r_j"].where(window["v"].isin(earlier_vals)).groupby(window["i"]).min()
            bad = (last_later > first_earlier).reindex(ok.index, fill_value=False)  # NaN on either side: no breach
            ok &= ~bad
    out_sorted = np.zeros(n, dtype=bool)
    out_sorted[ok.index[ok.to_numpy(dtype=bool)].to_numpy(dtype=int)] = True
    out = np.zeros(n, dtype=bool)
    out[pos] = out_sorted
    return out


def _items(mapping: Any) -> list[tuple[str, Any]]:
    return [(str(k), v) for k, v in (mapping or {}).items() if k != "__line__"]


# --- extreme_event / event_attr --------------------------------------------------------------------------------
def event_choice(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    """Per source row: the record an ``extreme_event`` rule chose (the dataset's columns plus ``event`` and
    ``value``; all null where no event has a record). The rule and its ``event_attr`` companions of one source
    share the result within a build (:func:`converter.adam.shared.shared`)."""
    data = ctx.built.get(str(a["dataset"]))
    if data is None:
        what = f"dataset {a['dataset']}, which is not built before it (add it to depends)"
        raise missing_column(ctx.spec, ctx.var, what)
    key = ("extreme_event", repr(sorted((k, repr(v)) for k, v in a.items())))
    return shared(key, (ctx.frame, data), lambda: _choose(ctx, data, a))


def _choose(ctx: RowContext, data: pd.DataFrame, a: dict[str, Any]) -> pd.DataFrame:
    clash = [c for c in EVENT_COLUMNS if c in data.columns]
    if clash:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: dataset {a['dataset']} has columns {clash}, the names "
                         "extreme_event gives the event's position and value")  # fmt: skip
    pairs = by_pairs(a)
    rows = filter_rows(data, a.get("filter")).reset_index(drop=True)
    pieces = []
    for k, ev in enumerate(a["events"], start=1):
        accept = evaluate_mask(ev["filter"], rows) if ev.get("filter") is not None else np.ones(len(rows), dtype=bool)
        if ev.get("confirm") and accept.any():
            accept &= confirmed(rows, [r for _, r in pairs], ev["confirm"])
        piece = rows[accept].copy()
        piece["event"] = k
        piece["value"] = piece[ev["value_of"]].astype(object) if ev.get("value_of") else ev.get("value")
        pieces.append(piece)
    cand = pd.concat(pieces, ignore_index=True)
    chosen = pick(cand, [r for _, r in pairs], list(a["order"]), str(a.get("mode", "first"))).reset_index(drop=True)
    left = key_frame([value_of(ctx, lft) for lft, _ in pairs], ctx.frame.index)
    right = key_frame([chosen[r] for _, r in pairs], chosen.index)
    at, hit = lookup_values(left, right, pd.Series(np.arange(len(chosen)), dtype=object))
    take = np.where(hit.to_numpy(dtype=bool), pd.to_numeric(at).fillna(0).to_numpy(dtype=int), 0)
    out = pd.DataFrame(
        {c: keep_where(pd.Series(chosen[c].to_numpy(dtype=object).take(take) if len(chosen) else
                                 np.full(len(take), None, dtype=object), index=ctx.frame.index), hit)
         for c in chosen.columns},
        index=ctx.frame.index,
    )  # fmt: skip
    out["__hit"] = hit.to_numpy(dtype=bool)
    return out


@row_rule("extreme_event")
def _extreme_event(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    ch = event_choice(ctx, a)
    out = ch["value"].astype(object)
    if "missing" in a:
        out = out.where(ch["__hit"], a["missing"])
    return out


@row_rule("event_attr")
def _event_attr(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    args = sibling_rule(ctx, str(a["of"]), "extreme_event")
    ch = event_choice(ctx, args)
    var = str(a.get("var") or ctx.var.name)
    if var not in ch.columns:
        what = f"{var} of {args['dataset']} (event_attr), which that dataset does not have"
        raise missing_column(ctx.spec, ctx.var, what)
    return ch[var].astype(object)


# --- relative_flag ---------------------------------------------------------------------------------------------
def relative_positions(df: pd.DataFrame, a: dict[str, Any]) -> np.ndarray:
    """Whether each record of ``df`` is on the flagged side of its ``by`` group's reference record (see the
    ``relative_flag`` rule)."""
    n = len(df)
    by = list(a["by"])
    pos = order_positions(df, [*by, *a["order"]])
    srt = df.iloc[pos]
    grp = pd.factorize(pd.MultiIndex.from_arrays([as_text(srt[b]).fillna("") for b in by]) if by else
                       pd.Index(np.zeros(n, dtype=int)))[0]  # fmt: skip
    rank = pd.Series(np.arange(n, dtype=float))
    cond = evaluate_mask(a["condition"], srt)
    ref_rank = rank.where(cond)
    ref = (ref_rank.groupby(grp).transform("min" if a.get("mode", "first") == "first" else "max")).to_numpy()
    inclusive = a.get("inclusive", True) is not False
    r = rank.to_numpy()
    before = a["selection"] == "before"
    lower, upper = (np.less_equal, np.less) if before else (np.greater_equal, np.greater)
    side = (lower if inclusive else upper)(r, ref)
    no_ref = np.isnan(ref)
    flag = np.where(no_ref, a.get("flag_no_ref", True) is not False, side)
    out = np.zeros(n, dtype=bool)
    out[pos] = flag
    return out


@dataset_rule("relative_flag")
def _relative_flag(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    df = ctx.frame.drop(columns=[ctx.var.name], errors="ignore")
    out = pd.Series(np.full(len(df), None, dtype=object), index=df.index)
    if len(df):
        out[relative_positions(df, a)] = a.get("value", "Y")
    return out
