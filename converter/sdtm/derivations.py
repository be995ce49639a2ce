"""Named SDTM derivations: the spec's escape hatch where no generic rule fits.

Each takes the row context and the spec's ``args`` and returns a column. Keep this list short: a derivation
that two trials need belongs in the generic vocabulary instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from converter.frames import first_positions, keep_where, null_column
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
    field_, form, smallest = str(args["field"]), str(args["form"]), args.get("fn", "min") == "min"
    keys = {k: ctx.col(k) for k in by}
    step = int(args.get("next", 0))
    if step:
        last = by[-1]
        keys[last] = pd.to_numeric(keys[last], errors="coerce") + step
    left = {k: as_text(v).to_numpy() for k, v in keys.items()}
    memo_key = ("group_date", form, tuple(by), field_, smallest)
    if memo_key not in ctx.memo:  # the form's groups, once per build for every variable that reads them
        ctx.memo[memo_key] = _group_extremes(ctx.records[form][[*by, field_]].dropna(), by, field_, smallest)
    groups = ctx.memo[memo_key]
    found = None if groups is None else _find_groups(groups, by, left)
    if found is None:  # by fields of mixed types, or a merge that would not be many-to-one
        src = ctx.records[form][[*by, field_]].dropna()
        found = _group_extreme_merge(src, by, field_, smallest, left)
    out = pd.Series(found, index=ctx.frame.index)
    days = int(args.get("days", 0))
    if days:
        shifted = full_dates(out) + pd.Timedelta(days=days)
        text = shifted.dt.strftime("%Y-%m-%d").astype(object)
        out = keep_where(text, shifted.notna())
    if args.get("fallback"):
        out = out.where(out.notna(), as_text(ctx.col(str(args["fallback"]))))
    return out.astype(object)


def _group_extremes(
    src: pd.DataFrame, by: list[str], field_: str, smallest: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """Each group of ``src`` (its rows with equal ``by`` values): the smallest (largest) text of ``field_``
    (missing sorts last; None where it is missing) and the group's ``by`` values as text, found by codes. None
    where the by fields hold values of mixed types (the merge path then decides)."""
    n = len(src)
    value_codes, values = pd.factorize(as_text(src[field_]).to_numpy(), sort=True, use_na_sentinel=True)
    value_codes = np.where(value_codes < 0, len(values), value_codes)  # missing after every text
    group = np.zeros(n, dtype=np.int64)
    for k in by:
        col = src[k]
        codes, uniques = pd.factorize(col.to_numpy(), use_na_sentinel=True)
        if col.dtype == object and not all(isinstance(u, str) for u in uniques):
            return None
        group = pd.factorize(group * max(len(uniques), 1) + codes)[0]
    groups = int(group.max()) + 1 if n else 0
    best = np.full(groups, len(values) if smallest else -1, dtype=np.int64)
    (np.minimum if smallest else np.maximum).at(best, group, value_codes)
    first = np.full(groups, n, dtype=np.int64)
    np.minimum.at(first, group, np.arange(n))  # one row per group: its by values (all equal) as text
    right = {k: as_text(src[k].iloc[first]).to_numpy() for k in by}
    extremes = np.empty(len(values) + 1, dtype=object)  # the last: None (the group's extreme is missing)
    extremes[: len(values)] = values
    return extremes[best], right


def _find_groups(groups: tuple[np.ndarray, dict[str, np.ndarray]], by: list[str], left: dict[str, np.ndarray]) -> (
    np.ndarray | None
):
    """``_group_extreme_merge`` by codes: the extreme of :func:`_group_extremes` for each row of ``left`` by its
    keys' texts; NaN where no group matches. None where the groups' keys are not unique (a merge that would not
    be many-to-one)."""
    texts, right = groups
    where, unique = first_positions([left[k] for k in by], [right[k] for k in by])  # None matches None
    if not unique:
        return None
    out = np.full(len(where), np.nan, dtype=object)
    out[where >= 0] = texts[where[where >= 0]]
    return out


def _group_extreme_merge(
    src: pd.DataFrame, by: list[str], field_: str, smallest: bool, left: dict[str, np.ndarray]
) -> np.ndarray:
    src = src.assign(**{field_: as_text(src[field_])})
    ordered = src.sort_values([field_, *by], kind="mergesort")
    agg = ordered.drop_duplicates(by, keep="first" if smallest else "last")
    right = agg.assign(**{k: as_text(agg[k]) for k in by})
    merged = pd.DataFrame(left).merge(right, on=by, how="left", validate="many_to_one")
    out: np.ndarray = merged[field_].to_numpy(dtype=object)
    return out
