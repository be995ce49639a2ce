"""Named SDTM derivations: the spec's escape hatch where no generic rule fits.

Each takes the row context and the spec's ``args`` and returns a column. Keep this list short: a derivation
that two trials need belongs in the generic vocabulary instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from converter.frames import keep_where, null_column
from converter.sdtm.context import RowContext, as_text, full_dates

__all__ = ["DERIVATIONS", "Derivation", "derivation", "first_present", "group_date", "latest_date"]

Derivation = Callable[[RowContext, dict[str, Any]], pd.Series]
DERIVATIONS: dict[str, Derivation] = {}


def derivation(name: str) -> Callable[[Derivation], Derivation]:
    def deco(fn: Derivation) -> Derivation:
        DERIVATIONS[name] = fn
        return fn

    return deco


@derivation("latest_date")
def latest_date(ctx: RowContext, args: dict[str, Any]) -> pd.Series:
    """The latest of several ISO 8601 date fields / earlier target variables (text compare at full precision)."""
    cols = [ctx.target[c] if c in ctx.target else ctx.col(c) for c in args["of"]]
    frame = pd.concat([as_text(c) for c in cols], axis=1)
    latest: pd.Series = frame.fillna("").max(axis=1)
    return keep_where(latest, frame.notna().any(axis=1))


@derivation("first_present")
def first_present(ctx: RowContext, args: dict[str, Any]) -> pd.Series:
    """The first non-missing of several source fields / earlier target variables, in the order given."""
    out = null_column(len(ctx.frame), ctx.frame.index)
    for name in args["of"]:
        col = as_text(ctx.target[name] if name in ctx.target else ctx.col(name))
        out = out.where(out.notna(), col)
    return out.astype(object)


@derivation("group_date")
def group_date(ctx: RowContext, args: dict[str, Any]) -> pd.Series:
    """The earliest (``fn: min``) or latest (``fn: max``) ISO 8601 date of another form's field over that form's
    records with the row's subject and the same values of the ``by`` fields, e.g. a course's first and last
    administration: ``{form: EXPOS, field: ADMDT, by: [COURSE], fn: min}``. ``next: 1`` takes the group whose last
    ``by`` field is the row's plus one (the next course); ``days`` shifts the date (``-1``: the day before);
    ``fallback`` names a source field taken where no group matched. Dates compare as text at full precision;
    a shifted date must be complete (a partial one gives null)."""
    by = ["SUBJID", *args.get("by", [])]
    field_ = str(args["field"])
    src = ctx.records[str(args["form"])][[*by, field_]].dropna()
    src = src.assign(**{field_: as_text(src[field_])})
    ordered = src.sort_values([field_, *by], kind="mergesort")
    agg = ordered.drop_duplicates(by, keep="first" if args.get("fn", "min") == "min" else "last")
    keys = {k: ctx.col(k) for k in by}
    step = int(args.get("next", 0))
    if step:
        last = by[-1]
        keys[last] = pd.to_numeric(keys[last], errors="coerce") + step
    left = pd.DataFrame({k: as_text(v) for k, v in keys.items()}, index=ctx.frame.index)
    right = agg.assign(**{k: as_text(agg[k]) for k in by})
    merged = left.merge(right, on=by, how="left", validate="many_to_one")
    out = pd.Series(merged[field_].to_numpy(dtype=object), index=ctx.frame.index)
    days = int(args.get("days", 0))
    if days:
        shifted = full_dates(out) + pd.Timedelta(days=days)
        text = shifted.dt.strftime("%Y-%m-%d").astype(object)
        out = keep_where(text, shifted.notna())
    if args.get("fallback"):
        out = out.where(out.notna(), as_text(ctx.col(str(args["fallback"]))))
    return out.astype(object)
