"""Time to event: ``tte`` (the earliest date over the event sources, else the latest over the censoring sources:
admiral's ``derive_param_tte`` with ``event_source``/``censor_source``) and ``tte_attr`` (CNSR, EVNTDESC, SRCDOM,
SRCVAR, SRCSEQ of the record chosen).

Ties on one date: events go to the earliest-listed source (and its lowest ``seq``), as admiral; censorings too by
default, or with ``ties: last`` to the latest-listed source (and its highest ``seq``), as admiral's
``derive_param_tte`` documents ("If there are multiple records with the same last date, then the last record in
the order specified in the ``censor_conditions`` argument is selected")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from converter.adam.codes import codes_of, column_codes, frame_codes
from converter.adam.common import dates_of, report_rows, sibling_rule, sorted_positions, value_of
from converter.adam.rows import narrow_rows
from converter.frames import keep_where
from converter.sdtm.context import RowContext, as_text, row_rule
from converter.spec.adam_rules import TTE_ATTRS

__all__ = ["tte_choice"]

_TTE_CACHE: list[tuple[pd.DataFrame, list[pd.DataFrame], str, pd.DataFrame]] = []


def tte_choice(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    """Per source row: the record chosen by a ``tte`` rule (earliest event, else latest censoring date).

    The ``tte`` rule and its ``tte_attr`` companions of one source share the result (same rows, datasets, args).
    """
    key = repr(sorted((k, repr(v)) for k, v in a.items()))
    names = sorted({str(s["dataset"]) for k in ("events", "censors") for s in a[k]})
    used = [ctx.built[n] for n in names]
    for frame, datasets, args, result in _TTE_CACHE:
        if frame is ctx.frame and args == key and all(x is y for x, y in zip(datasets, used, strict=True)):
            return result
    result = _tte_choice(ctx, a)
    _TTE_CACHE[:] = [*_TTE_CACHE[-7:], (ctx.frame, used, key, result)]
    return result


def _tte_choice(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    codes = codes_of()  # subjects as the build's codes (0: none)
    cands: list[pd.DataFrame] = []
    for kind, items in (("event", a["events"]), ("censor", a["censors"])):
        for i, src in enumerate(items):
            read = ["USUBJID", src["date"], *([src["seq"]] if src.get("seq") else [])]  # the columns read
            df = narrow_rows(ctx.built[src["dataset"]], src.get("filter"), read)  # shared with the other rules
            seq = df[src["seq"]] if src.get("seq") else pd.Series(np.nan, index=df.index)
            cands.append(
                pd.DataFrame(
                    {
                        "k": frame_codes(df, "USUBJID", codes),
                        "ADT": dates_of(df, src["date"]).to_numpy(dtype=float),
                        "kind": 0 if kind == "event" else 1,
                        "src": i,
                        "SRCSEQ": pd.to_numeric(seq, errors="coerce").to_numpy(dtype=float),
                        "CNSR": int(src.get("cnsr", 0 if kind == "event" else 1)),
                        "EVNTDESC": src.get("description"),
                        # admiral's set_values_to: a censoring's own EVNTDESC / CNSDTDSC (e.g. Alive / Alive
                        # During Study); by default the description is the event's EVNTDESC or the censoring's CNSDTDSC
                        "__evnt": src.get("evntdesc"),
                        "__cnsd": src.get("cnsdtdsc"),
                        "SRCDOM": src.get("srcdom", src["dataset"]),
                        "SRCVAR": src.get("srcvar", src["date"]),
                    }
                )
            )
    allc = pd.concat(cands, ignore_index=True)
    dated = np.flatnonzero(allc["ADT"].notna().to_numpy())  # a record without a date is never chosen
    # events: earliest date first; censorings: latest date first; then source order and sequence number
    allc["__o"] = np.where(allc["kind"] == 0, allc["ADT"], -allc["ADT"])
    order = ["k", "kind", "__o", "src", "SRCSEQ"]
    if a.get("ties", "first") == "last":  # censorings on one date: the latest-listed source, its last record
        censor = (allc["kind"] == 1).to_numpy()
        allc["__s"] = np.where(censor, -allc["src"], allc["src"])
        allc["__q"] = np.where(censor, -allc["SRCSEQ"], allc["SRCSEQ"])
        order = ["k", "kind", "__o", "__s", "__q"]
    # the dated records in the order of sort_values(order, kind="mergesort", na_position="last")
    ranked = dated[sorted_positions([pd.Series(allc[c].to_numpy()[dated]) for c in order])]
    subject = allc["k"].to_numpy()[ranked]  # 0: no subject (no group)
    first = np.ones(len(ranked), dtype=bool)  # each subject's first record (head(1) of groupby("k"))
    first[1:] = subject[1:] != subject[:-1]
    best: pd.DataFrame = allc.iloc[ranked[first & (subject > 0)]].set_index("k")
    out = best.reindex(column_codes(value_of(ctx, "USUBJID"), codes))
    out.index = ctx.frame.index
    return out


@row_rule("tte")
def _tte(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    ch = tte_choice(ctx, a)
    none = ch["ADT"].isna()
    if none.any():
        report_rows(ctx, np.flatnonzero(none.to_numpy()), "USUBJID", as_text(value_of(ctx, "USUBJID")), "tte",
                "no event and no censoring date in any source")  # fmt: skip
    return ch["ADT"]


@row_rule("tte_attr")
def _tte_attr(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    attr = a["attr"]
    if attr not in TTE_ATTRS:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: tte_attr attr must be one of {TTE_ATTRS}")
    ch = tte_choice(ctx, sibling_rule(ctx, a["of"], "tte"))
    censored = ch["CNSR"].fillna(0).to_numpy() > 0
    if attr in ("DESCRIPTION", "EVNTDESC", "CNSDTDSC"):
        desc = ch["EVNTDESC"].astype(object)
        keep = {"DESCRIPTION": np.ones(len(desc), dtype=bool), "EVNTDESC": ~censored, "CNSDTDSC": censored}[attr]
        own = ch["__evnt" if attr == "EVNTDESC" else "__cnsd"].astype(object) if attr != "DESCRIPTION" else None
        if own is not None and own.notna().any():  # a source that states its own EVNTDESC / CNSDTDSC
            given = own.notna().to_numpy()
            desc = desc.where(~given, own)
            keep = keep | given
        return keep_where(desc, keep)
    return keep_where(ch[attr].astype(object), ch[attr].notna())
