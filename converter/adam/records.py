"""One record chosen per key over several datasets: ``extreme_record`` (admiral's ``derive_vars_extreme_event``
with ``event`` sources in several source datasets, e.g. the cause of death from a fatal AE or a death in DS) and
``record_attr`` (another variable the chosen record's event sets, e.g. DTHDOM beside DTHCAUS).

Each event names a dataset, the records it accepts (``filter``) and the values it sets (``set``: variable ->
a column of its dataset, ``{value: constant}`` or ``{date: column}`` for a SAS date from a complete ISO date or
a SAS date). The accepted records of all events are stacked; per key the first (or ``mode: last``) in the order
of ``order`` is chosen, whose items name the ``set`` variables and ``event`` (the event's position from 1).
Ties are broken by the content of the records (never by their arrival order), as every ADaM rule picks."""

from __future__ import annotations

from typing import Any

import pandas as pd

from converter.adam.common import as_sas_date, matched, pick, right_rows, sibling_rule, take_matched
from converter.adam.shared import shared
from converter.sdtm.context import RowContext, row_rule
from converter.spec.adam_rules import by_pairs, record_set_names

__all__ = ["record_choice"]


def _set_value(df: pd.DataFrame, spec: Any) -> pd.Series:
    """The values one ``set`` entry gives the records of ``df``."""
    if isinstance(spec, str):
        return df[spec].astype(object)
    body = {k: v for k, v in spec.items() if k != "__line__"}
    if "date" in body:
        return as_sas_date(df[str(body["date"])]).astype(object)
    return pd.Series([body["value"]] * len(df), index=df.index, dtype=object)


def _candidates(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    """The accepted records of every event: by columns (right names), the ``set`` variables and ``event``."""
    rights = [r for _, r in by_pairs(a)]
    names = record_set_names(a)
    parts: list[pd.DataFrame] = []
    for i, ev in enumerate(a["events"], start=1):
        df = right_rows(ctx, {"dataset": ev["dataset"], "filter": ev.get("filter")})
        given = {k: v for k, v in (ev.get("set") or {}).items() if k != "__line__"}
        cols: dict[str, Any] = {r: df[r].astype(object) for r in rights}
        for name in names:
            cols[name] = _set_value(df, given[name]) if name in given else pd.Series(None, index=df.index, dtype=object)
        cols["event"] = pd.Series(i, index=df.index, dtype="float64")
        parts.append(pd.DataFrame(cols, index=df.index).reset_index(drop=True))
    return pd.concat(parts, ignore_index=True)


def record_choice(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    """The record an ``extreme_record`` rule chooses per key (one row per key; shared within a build)."""
    frames = tuple(ctx.built[str(ev["dataset"])] for ev in a["events"] if ev["dataset"] in ctx.built)
    key = ("extreme_record", repr(sorted((k, repr(v)) for k, v in a.items())))

    def make() -> pd.DataFrame:
        cands = _candidates(ctx, a)
        return pick(cands, [r for _, r in by_pairs(a)], a["order"], str(a.get("mode", "first")))

    return shared(key, frames, make)


def _values(ctx: RowContext, a: dict[str, Any], var: str, missing: dict[str, Any]) -> pd.Series:
    """Per row: ``var`` as the chosen record's event set it (null where it sets none); where no event has a
    record for the row's key, ``missing["missing"]`` if given, else null."""
    chosen = record_choice(ctx, a)
    column = chosen[var] if var in chosen.columns else pd.Series(None, index=chosen.index, dtype=object)
    out, hit = take_matched(column, matched(ctx, a, chosen), ctx.frame.index)
    if "missing" in missing:
        out = out.where(hit.to_numpy(dtype=bool), missing["missing"])
    return out


@row_rule("extreme_record")
def _extreme_record(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _values(ctx, a, ctx.var.name, a)


@row_rule("record_attr")
def _record_attr(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    args = sibling_rule(ctx, str(a["of"]), "extreme_record")
    return _values(ctx, args, str(a.get("var") or ctx.var.name), a)
