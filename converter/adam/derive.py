"""The ADaM rules that derive from the record itself: ``group`` (categories), ``compute`` (an arithmetic spec
expression) and the dataset-phase ``extreme_flag`` (admiral's ``derive_vars_cat``, ``mutate``,
``derive_var_extreme_flag``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from converter.adam.common import env_of, pick, report_rows, sas_round, untied_picks, untied_positions, value_of
from converter.sdtm.context import DatasetContext, RowContext, as_text, dataset_rule, row_rule
from converter.spec.adam_rules import order_var
from converter.spec.expr import evaluate, filter_rows

__all__: list[str] = []  # rule implementations register themselves (converter.sdtm.context.ROW / DATASET)

_OPS = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal}


@row_rule("group")
def _group(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    src = value_of(ctx, a["var"])
    out = np.full(len(src), None, dtype=object)  # set by masks as a numpy array (a Series' setitem is slower)
    decided = np.zeros(len(src), dtype=bool)
    if a.get("ranges"):
        num = pd.to_numeric(src, errors="coerce").to_numpy(dtype=float)
        for rng in a["ranges"]:
            hit = ~np.isnan(num) & ~decided
            for op, fn in _OPS.items():
                if op in rng:
                    hit &= fn(num, float(rng[op]))
            out[hit] = rng["value"]
            decided |= hit
    elif "values" in a:
        mapping = {str(k): v for k, v in a["values"].items() if k != "__line__"}
        txt = as_text(src)
        hit = txt.isin(list(mapping)).to_numpy(dtype=bool)
        out[hit] = txt[hit].map(mapping).to_numpy(dtype=object)
        decided |= hit
    else:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: group needs ranges or values")
    present = src.notna().to_numpy(dtype=bool)
    rest = present & ~decided
    if rest.any():
        if a.get("keep"):
            out[rest] = src[rest].to_numpy(dtype=object)
        elif "default" in a:
            out[rest] = a["default"]
        else:
            report_rows(ctx, np.flatnonzero(rest), a["var"], as_text(src), "group", "value falls in no group")
    if "missing" in a:
        out[~present] = a["missing"]
    return pd.Series(out, index=src.index, dtype=object)


@row_rule("compute")
def _compute(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    env = env_of(ctx)
    for c in [c for c in env.columns if c in a["expr"].names]:  # the columns the expression reads
        if str(env[c].dtype) in ("Int64", "Float64", "boolean"):
            env[c] = env[c].astype("float64")
        elif env[c].dtype == object and env[c].map(lambda v: isinstance(v, int | float), na_action="ignore").all():
            env[c] = pd.to_numeric(env[c], errors="coerce")
    res = evaluate(a["expr"], env) if len(env) else pd.Series([], dtype="float64")  # parsed at spec load
    out = pd.to_numeric(pd.Series(res, index=env.index), errors="coerce").astype("float64")
    if a.get("round") is not None:
        out = sas_round(out, int(a["round"]))
    return out


# --- dataset-phase flags ---------------------------------------------------------------------------------------
@dataset_rule("extreme_flag")
def _extreme_flag(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    df = ctx.frame
    out = pd.Series(np.full(len(df), None, dtype=object), index=df.index)
    by, order, mode, condition = list(a["by"]), a["order"], a.get("mode", "first"), a.get("filter")
    read = {*by, *(str(i["var"]) if isinstance(i, dict) else order_var(str(i)) for i in order or []),
            *(condition.names if condition is not None else ())}  # fmt: skip
    if ctx.var.name not in read:  # first the columns the flag reads; every other column only to break a tie
        narrow = filter_rows(df[[c for c in df.columns if c in read]], condition)
        if narrow.empty:
            return out
        chosen_at = untied_picks(narrow, by, order, mode == "last") if by else None  # as pick() chooses
        if chosen_at is not None:
            out.loc[narrow.index[chosen_at]] = a.get("value", "Y")
            return out
        pos = untied_positions(narrow, order, mode == "last", by)
        if pos is not None:
            first = ~narrow[by].iloc[pos].duplicated(keep="first").to_numpy()  # as pick() chooses
            out.loc[narrow.index[pos[first]]] = a.get("value", "Y")
            return out
    cand = filter_rows(df.drop(columns=[ctx.var.name], errors="ignore"), condition)
    if cand.empty:
        return out
    chosen = pick(cand, by, order, mode)
    out.loc[chosen.index] = a.get("value", "Y")
    return out
