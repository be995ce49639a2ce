"""What the ADaM rules share: reading row variables, SAS dates, content-determined ordering, key matching.

Dates in ADaM are SAS day counts (days since 1960-01-01) in integer variables with a ``DATE9.`` format (datetimes:
seconds since 1960, ``DATETIME20.``). A rule reading a date accepts either such a number or an ISO 8601 text (SDTM
``--DTC``); only complete dates are used unless a ``date``/``datetime`` rule states an imputation.

Order independence: whenever a rule picks one record among several (``merge`` first/last, ``extreme_flag``,
``tte`` ties), records are ordered by the spec's ``order`` and then by the content of every other column, so the
result depends on the data only, never on the order the rows arrive in. Order items: ``VAR`` (ascending),
``desc(VAR)`` (descending), or ``{var: VAR, rank: [best, ..., worst]}`` (a categorical order, values outside the
list last). Nulls sort last in either direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from converter.adam.codes import codes_of, column_codes, frame_codes, key_codes, note_rows
from converter.adam.rows import kept
from converter.adam.shared import shared
from converter.errors import problem
from converter.frames import constant_column, null_column, text_column
from converter.sdtm.context import RowContext, as_text, missing_column
from converter.spec.adam_rules import by_pairs, is_descending, order_var

__all__ = [
    "MONTH_DAYS",
    "SAS_EPOCH",
    "UNIT_DAYS",
    "as_sas_date",
    "ascii_iso_days",
    "dates_of",
    "env_of",
    "is_numeric",
    "iso_to_sas",
    "key_frame",
    "lookup_values",
    "match_keys",
    "matched",
    "order_key",
    "order_positions",
    "partial_dates",
    "pick",
    "report_rows",
    "right_rows",
    "rows_of",
    "sas_round",
    "sas_to_iso",
    "series_text",
    "shared_pick",
    "sibling_rule",
    "sort_keys",
    "sortable",
    "sorted_positions",
    "take_matched",
    "text_of",
    "untied_picks",
    "untied_positions",
    "value_of",
]

SAS_EPOCH = pd.Timestamp("1960-01-01")
_SAS_ORDINAL = 1959 * 365 + 1959 // 4 - 1959 // 100 + 1959 // 400  # days from 0001-01-01 to 1960-01-01
MONTH_DAYS = 365.25 / 12
UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "months": MONTH_DAYS, "years": 365.25}


def value_of(ctx: RowContext, name: str) -> pd.Series:
    """An earlier target variable, else a column of the source rows."""
    if name in ctx.target:
        return ctx.target[name]
    if name in ctx.frame.columns:
        return ctx.frame[name]
    raise missing_column(ctx.spec, ctx.var, f"{name}, which is neither an earlier variable nor a column of its source")


def env_of(ctx: RowContext) -> pd.DataFrame:
    """Source columns overlaid with the target columns computed so far (for filters and expressions)."""
    env = pd.DataFrame({c: ctx.frame[c] for c in ctx.frame.columns if "." not in c}, index=ctx.frame.index)
    for k, v in ctx.target.items():
        env[k] = v
    return env


def sas_round(values: pd.Series, digits: int) -> pd.Series:
    """Round half away from zero (SAS ROUND, the convention of submitted analyses), not half to even."""
    num = pd.to_numeric(values, errors="coerce").astype("float64")
    scale = 10.0**digits
    arr = num.to_numpy(dtype=float)
    scaled = np.abs(arr) * scale
    rounded = np.floor(scaled + 0.5 + 1e-9 * np.maximum(1.0, scaled)) / scale
    return pd.Series(np.sign(arr) * rounded, index=num.index, dtype="float64")


def iso_to_sas(col: pd.Series) -> pd.Series:
    """Complete ISO 8601 dates (YYYY-MM-DD, any time part ignored) -> SAS day numbers (float64, NaN otherwise)."""
    codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=True)
    days = _iso_days(np.asarray(uniques, dtype=object))  # each distinct value parsed once; only text can be a date
    out = np.full(len(codes), np.nan) if not len(days) else np.where(codes < 0, np.nan, days.take(np.maximum(codes, 0)))
    return pd.Series(out, index=col.index, dtype="float64")


_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9])  # the digit places of YYYY-MM-DD
_CUMULATIVE_DAYS = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])


def _iso_days(values: np.ndarray) -> np.ndarray:
    """SAS day numbers of distinct values (NaN for anything but a text whose first ten characters are a date).

    The dates pandas reads (``pd.to_datetime(format="%Y-%m-%d", errors="coerce")``) are decided by
    :func:`ascii_iso_days` for texts of ASCII digits in the form YYYY-MM-DD with a year from 1678 to 2251 (where
    pandas' nanosecond dates hold the day and its difference from 1960); any other text of ten characters (other
    digits, years outside that range) goes to pandas as before, so the result is pandas' for every value."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # str only: numpy cuts them to ten characters
        heads = values.astype("<U10")
    else:
        heads = np.array([v[:10] if isinstance(v, str) else "" for v in values], dtype="<U10")
    out, decided = ascii_iso_days(heads)
    if not len(out):
        return out
    slow = (np.char.str_len(heads) == 10) & ~decided  # ten characters pandas may read
    if slow.any():
        texts = pd.Series(heads[slow].astype(object), dtype=object)
        parsed = pd.to_datetime(texts, format="%Y-%m-%d", errors="coerce")
        out[slow] = ((parsed - SAS_EPOCH).dt.days).to_numpy(dtype="float64")
    return out


def ascii_iso_days(heads: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For texts (at most ten characters each) of the form YYYY-MM-DD in ASCII digits with a year from 1678 to
    2251: their SAS day numbers (NaN for an impossible day or month, e.g. 2021-02-30) and True in the second
    array; the other texts get NaN and False (the caller decides them)."""
    out = np.full(len(heads), np.nan)
    if not len(heads):
        return out, np.zeros(0, dtype=bool)
    chars = np.array(heads, dtype="<U10")
    full = np.char.str_len(chars) == 10
    cp = chars.view(np.uint32).reshape(len(chars), 10).astype(np.int64)
    digits = cp[:, _DIGITS] - 48
    form = full & (cp[:, 4] == 45) & (cp[:, 7] == 45) & ((digits >= 0) & (digits <= 9)).all(axis=1)
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 4] * 10 + digits[:, 5]
    day = digits[:, 6] * 10 + digits[:, 7]
    decided = form & (year >= 1678) & (year <= 2251)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok_month = (month >= 1) & (month <= 12)
    m0 = np.where(ok_month, month - 1, 0)
    month_len = np.diff(np.append(_CUMULATIVE_DAYS, 365))[m0] + ((m0 == 1) & leap)
    valid = decided & ok_month & (day >= 1) & (day <= month_len)
    y = year - 1  # days from 0001-01-01 (proleptic Gregorian), then from 1960-01-01
    ordinal = y * 365 + y // 4 - y // 100 + y // 400 + _CUMULATIVE_DAYS[m0] + ((m0 > 1) & leap) + day - 1
    from_epoch = ordinal - _SAS_ORDINAL
    out[valid] = from_epoch[valid]
    return out, decided


def as_sas_date(col: pd.Series) -> pd.Series:
    """A date column as SAS day numbers: numbers are taken as they are, ISO text is converted (complete only)."""
    if is_numeric(col):
        return pd.to_numeric(col, errors="coerce").astype("float64")
    return iso_to_sas(col)


def sas_to_iso(col: pd.Series) -> pd.Series:
    days = pd.to_numeric(col, errors="coerce")
    dt = SAS_EPOCH + pd.to_timedelta(days, unit="D")
    return text_column(dt.dt.strftime("%Y-%m-%d"))


def partial_dates(col: pd.Series) -> pd.Series:
    """True where an ISO date is present but not complete (YYYY or YYYY-MM)."""
    if is_numeric(col):
        return pd.Series(False, index=col.index)
    codes, texts = pd.factorize(text_column(col).to_numpy(dtype=object), use_na_sentinel=True)  # str or None
    short = np.array([len(t) < 10 for t in texts], dtype=bool)  # per distinct text
    partial = short.take(np.maximum(codes, 0)) & (codes >= 0) if len(short) else np.zeros(len(codes), dtype=bool)
    return pd.Series(partial, index=col.index, name=col.name)


def key_frame(values: Sequence[pd.Series], index: pd.Index) -> pd.DataFrame:
    """Join keys as text (numbers compare by value: 1.0 and 1 are the same key)."""
    return pd.DataFrame({f"__k{i}": as_text(v).to_numpy() for i, v in enumerate(values)}, index=index)


def is_numeric(col: pd.Series) -> bool:
    """A numeric column, or an object column (stacked sources) whose values are all numbers."""
    if col.dtype.kind in "fiu" or str(col.dtype) in ("Int64", "Float64"):
        return True
    if col.dtype != object:
        return False
    kind = pd.api.types.infer_dtype(col, skipna=True)
    return kind in ("integer", "floating", "mixed-integer-float", "decimal")


def sortable(col: pd.Series) -> pd.Series:
    """Numbers as float64 (NaN for missing), anything else as text (None for missing)."""
    if is_numeric(col):
        return pd.to_numeric(col, errors="coerce").astype("float64")
    return as_text(col)


def text_of(df: pd.DataFrame, col: str) -> pd.Series:
    """``as_text`` of a column of ``df``, shared within a build (see :mod:`converter.adam.shared`)."""
    return shared(("text", col), (df,), lambda: as_text(df[col]))


def dates_of(df: pd.DataFrame, col: str) -> pd.Series:
    """``as_sas_date`` of a column of ``df``, shared within a build."""
    return shared(("dates", col), (df,), lambda: as_sas_date(df[col]))


def _sortable_of(df: pd.DataFrame, col: str) -> pd.Series:
    return shared(("sortable", col), (df,), lambda: sortable(df[col]))


def order_key(order: Sequence[Any]) -> tuple[Any, ...]:
    """The order items as a hashable value (what they say, not where the spec says it)."""
    return tuple((str(i["var"]), tuple(str(v) for v in i.get("rank") or []), bool(i.get("desc")))
                 if isinstance(i, dict) else str(i) for i in order or [])  # fmt: skip


def order_positions(df: pd.DataFrame, order: Sequence[Any], descending: bool = False,
                    by: Sequence[str] = (), *, share: bool = False) -> np.ndarray:  # fmt: skip
    """Row positions of ``df`` in the order of the order items, then of every other column's content (see
    :func:`_positions`)."""
    return cast(np.ndarray, _positions(df, order, descending, by, share, untied_only=False))  # never None here


def untied_positions(df: pd.DataFrame, order: Sequence[Any], descending: bool = False,
                     by: Sequence[str] = ()) -> np.ndarray | None:  # fmt: skip
    """:func:`order_positions` when no two records of a ``by`` group tie on every order item (the other
    columns' content is then not needed: ``df`` may hold only the ``by`` and order columns), else None."""
    return _positions(df, order, descending, by, False, untied_only=True)


def _positions(df: pd.DataFrame, order: Sequence[Any], descending: bool, by: Sequence[str], share: bool,
               untied_only: bool) -> np.ndarray | None:  # fmt: skip
    """Row positions of ``df`` in the order of the order items, then of every other column's content.

    Nulls sort last in every direction. ``descending`` reverses each order item (for ``mode: last``). The
    content tie-break is computed only when records of one ``by`` group tie on every order item. Only the key
    columns are sorted, as integer codes (:func:`_sort_codes`, the order pandas' stable multi-column sort
    gives); the caller takes the rows it needs (usually one per group, not the whole frame). With ``share`` (a
    frame no rule changes: a right dataset or rows of it) the column texts are shared in the build.
    """
    n = len(df)
    keys, used = _order_codes(df, order, descending, share)
    if n == 0:
        return np.arange(0)
    groups = [_group_codes(df, b, share) for b in by] + keys
    tied = n > 1 if not groups else bool(pd.Series(_combined(groups)).duplicated().any())
    if tied and untied_only:
        return None
    if tied:  # break ties on content, never on row position
        for c in sorted(set(df.columns) - used):
            col = _sortable_of(df, c) if share else sortable(df[c])
            keys.append(_sort_codes(col if col.dtype.kind == "f" else col.fillna(""), not descending))
    if not keys:
        return np.arange(n)
    positions: np.ndarray = np.argsort(_combined(keys), kind="stable")
    return positions


def _order_codes(df: pd.DataFrame, order: Sequence[Any], descending: bool,
                 share: bool) -> tuple[list[np.ndarray], set[str]]:  # fmt: skip
    """Integer sort codes of each order item (:func:`_sort_codes`), and the columns they read."""
    keys: list[np.ndarray] = []
    used: set[str] = set()
    for item in order or []:
        if isinstance(item, dict):
            var = str(item["var"])
            rank = {str(v): j for j, v in enumerate(item.get("rank") or [])}
            col = (text_of(df, var) if share else as_text(df[var])).map(rank).astype("float64")
            asc = not bool(item.get("desc"))
        else:
            var = order_var(str(item))
            asc = not is_descending(str(item))
            text = _shared_text_sort_codes(df, var) if share else _text_sort_codes(df[var])
            if text is not None:  # text (str) values: ranked from their distinct values
                codes, n = text
                used.add(var)
                keys.append(codes if asc != descending else np.where(codes == n, n, n - codes - 1))
                continue
            col = _sortable_of(df, var) if share else sortable(df[var])
        used.add(var)
        keys.append(_sort_codes(col, asc != descending))
    return keys, used


def _shared_text_sort_codes(df: pd.DataFrame, var: str) -> tuple[np.ndarray, int] | None:
    return shared(("text sort codes", var), (df,), lambda: _text_sort_codes(df[var]))


def _text_sort_codes(col: pd.Series) -> tuple[np.ndarray, int] | None:
    """:func:`_sort_codes` (ascending) of ``sortable(col)`` for an object column of ``str`` (and missing values),
    and its null code: one factorisation of the values, their distinct texts ('' none) ranked, spread by code
    (no text copy of the column, no sorted factorisation of every row). None for any other column."""
    if col.dtype != object:
        return None
    codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=True)
    values = np.asarray(uniques, dtype=object)
    if len(values) and pd.api.types.infer_dtype(values, skipna=False) != "string":
        return None  # numbers, booleans, mixed: sortable decides (numbers by value; True and 1 are one value here)
    texts = values.copy()
    texts[texts == ""] = None
    rank, distinct = pd.factorize(texts, sort=True, use_na_sentinel=True)
    n = len(distinct)
    per = np.append(np.where(rank < 0, n, rank), n)  # the final n: code -1 (missing)
    ranked: np.ndarray = per[codes].astype(np.int64)
    return ranked, n


def _group_codes(df: pd.DataFrame, col: str, share: bool) -> np.ndarray:
    """Codes (from 1; 0 for null) of a ``by`` column's texts: equal codes, equal texts. A shared frame's are the
    build's codes (:mod:`converter.adam.codes`), taken from the frame its rows come from."""
    if share:
        return frame_codes(df, col, codes_of())
    if df[col].dtype == object:  # str values (and missing ones): numbered per distinct value, '' none, no text copy
        at, uniques = pd.factorize(df[col].to_numpy(dtype=object), use_na_sentinel=True)
        values = np.asarray(uniques, dtype=object)
        if not len(values) or pd.api.types.infer_dtype(values, skipna=False) == "string":
            text = values != ""
            number = np.zeros(len(values) + 1, dtype=np.int64)  # the final 0: code -1 (missing)
            number[:-1][text] = np.arange(1, int(text.sum()) + 1)
            numbered: np.ndarray = number[at]
            return numbered
    codes: np.ndarray = pd.factorize(as_text(df[col]).to_numpy(dtype=object))[0] + 1
    return codes


def _value_groups(df: pd.DataFrame, by: Sequence[str], share: bool) -> int:
    """How many ``by`` groups ``df`` has as ``DataFrame.duplicated`` tells them apart (values as they are, not
    as texts), which is how :func:`_pick` keeps one record per group."""

    def make() -> int:
        return len(df) - int(df[list(by)].duplicated().sum())

    return shared(("value groups", tuple(by)), (df,), make) if share else make()


def _text_as_is(df: pd.DataFrame, col: str, codes: np.ndarray, share: bool) -> bool:
    """Whether a ``by`` column's texts are its values (an object column of non-empty ``str`` only, which
    ``as_text`` keeps as they are), so its texts group the records as its values do. ``codes`` are its
    :func:`_group_codes` (0: no text, i.e. a null or an empty string)."""

    def make() -> bool:
        values = df[col]
        return bool(values.dtype == object and len(codes) and codes.min() > 0
                    and pd.api.types.infer_dtype(values, skipna=False) == "string")  # fmt: skip

    return shared(("text as is", col), (df,), make) if share else make()


def sorted_positions(columns: Sequence[pd.Series]) -> np.ndarray:
    """Row positions in the order of ``DataFrame.sort_values`` on these columns (ascending, stable, nulls last),
    for numeric columns and text columns (``str`` or None): one int64 key of their sort codes, one stable sort."""
    keys = [_sort_codes(c.astype("float64") if c.dtype.kind in "iub" else c, True) for c in columns]
    positions: np.ndarray = np.argsort(_combined(keys), kind="stable")
    return positions


def _sort_codes(col: pd.Series, ascending: bool) -> np.ndarray:
    """Integer codes of a column (float64 or text) that sort as pandas sorts it: the codes of its sorted
    distinct values, nulls after every value whichever the direction (``na_position="last"``)."""
    values = col.to_numpy() if col.dtype.kind == "f" else col.to_numpy(dtype=object)
    codes, distinct = pd.factorize(values, sort=True, use_na_sentinel=True)
    n = len(distinct)
    null = codes < 0
    return np.where(null, n, codes if ascending else n - codes - 1)


def _combined(codes: Sequence[np.ndarray]) -> np.ndarray:
    """One int64 key per row that orders (and equates) rows as the non-negative ``codes`` do, the first array
    first (a mixed radix; compressed to the ranks of its distinct values before it could overflow)."""
    key = codes[0].astype(np.int64)
    span = int(key.max()) + 1 if len(key) else 1
    for c in codes[1:]:
        width = int(c.max()) + 1 if len(c) else 1
        if span * width >= 2**62:
            distinct, at = np.unique(key, return_inverse=True)
            key, span = at.reshape(-1).astype(np.int64), len(distinct)
        key = key * width + c
        span *= width
    return key


def sort_keys(df: pd.DataFrame, order: Sequence[Any], descending: bool = False, by: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` ordered by the order items, then by every other column's content (content-determined order);
    see :func:`order_positions`."""
    if df.empty:
        return df
    return df.iloc[order_positions(df, order, descending, by)]


def pick(df: pd.DataFrame, by: Sequence[str], order: Sequence[Any], mode: str) -> pd.DataFrame:
    """The first (or last) record per ``by`` group in the order of ``order`` (nulls never win)."""
    if mode not in ("first", "last"):
        raise ValueError(f"mode must be first or last (got {mode!r})")
    if df.empty:
        return df
    return _pick(df, by, order, mode, share=False)


def shared_pick(df: pd.DataFrame, by: Sequence[str], order: Sequence[Any], mode: str) -> pd.DataFrame:
    """:func:`pick` on a frame no rule changes (a right dataset or rows of it), shared within a build."""
    if mode not in ("first", "last"):
        raise ValueError(f"mode must be first or last (got {mode!r})")
    if df.empty:
        return df
    return shared(("pick", tuple(by), order_key(order), mode), (df,), lambda: _pick(df, by, order, mode, share=True))


def _pick(df: pd.DataFrame, by: Sequence[str], order: Sequence[Any], mode: str, share: bool) -> pd.DataFrame:
    descending = mode == "last"
    if by:
        untied = untied_picks(df, by, order, descending, share)
        if untied is not None:
            return _rows_at(df, untied, share)
    pos = order_positions(df, order, descending=descending, by=by, share=share)
    if not by:
        return _rows_at(df, pos[:1], share)
    first = ~df[list(by)].iloc[pos].duplicated(keep="first").to_numpy()  # one row per group, in ranked order
    return _rows_at(df, pos[first], share)


def _rows_at(df: pd.DataFrame, positions: np.ndarray, share: bool) -> pd.DataFrame:
    """The rows of ``df`` at ``positions``; of a shared frame, noted as taken from it (their key codes are its)."""
    if share and len(positions) == len(df) and bool((positions == np.arange(len(df))).all()):
        return df  # every row in its order: the shared frame itself, not a copy of it
    rows: pd.DataFrame = df.iloc[positions]
    return note_rows(rows, df, positions) if share else rows


def untied_picks(df: pd.DataFrame, by: Sequence[str], order: Sequence[Any], descending: bool,
                 share: bool = False) -> np.ndarray | None:  # fmt: skip
    """The positions :func:`_pick` takes, when no two records of a ``by`` group tie on every order item and the
    groups of the ``by`` texts are those of the values (else None: the general path decides).

    Then the order items alone rank each group's records: one unstable sort of (group, order codes), whose keys
    are all distinct, puts each group's first record first; those records are returned in the order of their
    order codes, then of their position (what the stable sort of the general path gives them)."""
    keys, _ = _order_codes(df, order, descending, share)
    groups = [_group_codes(df, b, share) for b in by]
    key = _combined([*groups, *keys])
    ranked = np.argsort(key)
    sorted_key = key[ranked]
    if len(key) > 1 and bool((sorted_key[1:] == sorted_key[:-1]).any()):
        return None  # ties: the content of the other columns decides
    group = _combined(groups)[ranked]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    as_is = all(_text_as_is(df, b, g, share) for b, g in zip(by, groups, strict=True))
    if not as_is and int(first.sum()) != _value_groups(df, by, share):
        return None  # texts join values that differ (1 and "1"): groups as DataFrame.duplicated sees them
    chosen = ranked[first]
    if not keys:
        return np.sort(chosen)
    return chosen[np.lexsort((chosen, _combined(keys)[chosen]))]


def right_rows(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    name = a["dataset"]
    if name not in ctx.built:
        raise missing_column(ctx.spec, ctx.var, f"dataset {name}, which is not built before it (add it to depends)")
    return rows_of(ctx.built[name], a.get("filter"))


def rows_of(frame: pd.DataFrame, condition: Any) -> pd.DataFrame:
    """The rows of a dataset no rule changes (SDTM input, an ADaM dataset built before) where ``condition`` (a
    parsed spec expression, or None) holds; shared within a build."""
    return shared(("rows", condition), (frame,), lambda: _filtered(frame, condition))


def _filtered(frame: pd.DataFrame, condition: Any) -> pd.DataFrame:
    """``filter_rows``, the rows noted as taken from ``frame`` (their key codes are its)."""
    keep = kept(frame, condition)  # the condition evaluated once per build (shared with narrow_rows)
    if keep is None:  # every row (EX where EXDOSE > 0): the frame itself, not a copy of it
        return frame
    return note_rows(frame[keep], frame, np.flatnonzero(keep))


def series_text(col: pd.Series) -> pd.Series:
    """``as_text`` of a column no rule changes (a source column, a variable computed before), shared in a build."""
    return shared(("text",), (col,), lambda: as_text(col))


def match_keys(ctx: RowContext, a: dict[str, Any], right: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Left keys (one row per source row) and right keys (one row per right record), as text frames."""
    pairs = by_pairs(a)
    left = key_frame([value_of(ctx, lft) for lft, _ in pairs], ctx.frame.index)
    rkeys = key_frame([right[rgt] for _, rgt in pairs], right.index)
    return left, rkeys


def lookup_values(left: pd.DataFrame, right: pd.DataFrame, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per left row: the value of the (unique) right record with the same keys, and whether one matched."""
    n = len(left)
    if len(right) == 0:
        return null_column(n, left.index), pd.Series(False, index=left.index)
    if left.shape[1] == 0:  # no keys: the one selected record applies to every row
        v = values.iloc[0]
        return constant_column(v, n, left.index), pd.Series(True, index=left.index)
    rindex = _key_index(right)
    if not rindex.is_unique:
        raise ValueError(f"{int(rindex.duplicated().sum())} right records share their keys (a many-to-one "
                         "lookup needs one record per key)")  # fmt: skip
    at = rindex.get_indexer(_key_index(left))  # -1: no record with these keys (null keys match null keys)
    hit = at >= 0
    out = values.to_numpy(dtype=object).take(np.where(hit, at, 0)) if len(values) else np.full(n, None, object)
    out[~hit] = np.nan
    return pd.Series(out, index=left.index, dtype=object), pd.Series(hit, index=left.index)


def matched(ctx: RowContext, a: dict[str, Any], right: pd.DataFrame, unique: bool = True) -> np.ndarray:
    """Per source row: the position in ``right`` of the record with the same ``by`` keys (as text; -1: none).

    With ``unique`` the right records must have distinct keys (a many-to-one lookup), else any record with the
    keys matches (the position is then meaningful only as found / not found). Without keys every row matches
    the first record. The key texts, indexes and positions are shared within a build.
    """
    n = len(ctx.frame)
    if len(right) == 0:
        return np.full(n, -1, dtype=np.intp)
    pairs = by_pairs(a)
    if not pairs:
        return np.zeros(n, dtype=np.intp)
    lefts = tuple(value_of(ctx, lft) for lft, _ in pairs)
    cols = tuple(rgt for _, rgt in pairs)
    codes = codes_of()  # the keys' texts as the build's codes: one int64 per row
    lcodes = [column_codes(s, codes) for s in lefts]
    rcodes = [frame_codes(right, c, codes) for c in cols]
    lkey, rkey = key_codes(lcodes, len(codes)), key_codes(rcodes, len(codes))
    if lkey is None or rkey is None:  # too many keys for one int64: their texts
        lindex = shared(("keys",), lefts, lambda: _index_of([series_text(s) for s in lefts]))
        rindex = shared(("keys", cols), (right,), lambda: _index_of([text_of(right, c) for c in cols]))
    else:
        width = len(codes) if len(pairs) > 1 else 0  # one key: its codes as they are
        lindex = shared(("key index", width), (*lcodes,), lambda: pd.Index(lkey))
        rindex = shared(("key index", width), (*rcodes,), lambda: pd.Index(rkey))
    if unique and not rindex.is_unique:
        raise ValueError(f"{int(rindex.duplicated().sum())} right records share their keys (a many-to-one "
                         "lookup needs one record per key)")  # fmt: skip
    if not unique:
        rindex = shared(("distinct",), (rindex,), rindex.unique)
    at: np.ndarray = shared(("at",), (lindex, rindex), lambda: rindex.get_indexer(lindex))
    return at


def take_matched(values: pd.Series, at: np.ndarray, index: pd.Index) -> tuple[pd.Series, pd.Series]:
    """Per row: the value at position ``at`` of ``values`` (NaN where ``at`` is -1), and whether one matched;
    as :func:`lookup_values` gives them."""
    n = len(at)
    hit = at >= 0
    if len(values) == 0:
        return null_column(n, index), pd.Series(hit, index=index)
    out = values.to_numpy(dtype=object).take(np.where(hit, at, 0))
    out[~hit] = np.nan
    return pd.Series(out, index=index, dtype=object), pd.Series(hit, index=index)


def _index_of(cols: Sequence[pd.Series]) -> pd.Index:
    """Key columns (text) as one index for hash lookups (see :func:`_tuple_index`)."""
    return _tuple_index([c.to_numpy(dtype=object) for c in cols])


def _key_index(keys: pd.DataFrame) -> pd.Index:
    """The key columns as one index for hash lookups (see :func:`_tuple_index`)."""
    return _tuple_index([keys[c].to_numpy(dtype=object) for c in keys.columns])


def _tuple_index(arrays: Sequence[np.ndarray]) -> pd.Index:
    """Key texts (``str`` or None) as one object index: the texts for one key, else a tuple per row (equal
    where every text is equal, None matching None, as a MultiIndex of the texts matches them), hashed without
    the sorted levels a MultiIndex builds."""
    if len(arrays) == 1:
        return pd.Index(arrays[0], dtype=object)
    rows = np.fromiter(zip(*arrays, strict=True), dtype=object, count=len(arrays[0]))
    return pd.Index(rows, dtype=object, tupleize_cols=False)


def report_rows(ctx: RowContext, rows: np.ndarray, field: str, values: pd.Series, rule: str, msg: str) -> None:
    for i in rows[:50]:
        ctx.problems.append(
            problem(ctx.file, str(ctx.labels.iloc[int(i)]), field, values.iloc[int(i)], rule,
                    f"{ctx.spec.name}.{ctx.var.name}: {msg}")
        )  # fmt: skip


def sibling_rule(ctx: RowContext, of: str, name: str) -> dict[str, Any]:
    rule = ctx.spec.variable(of).rule_for(ctx.source.id)
    if rule is None or rule.name != name:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: {of} has no {name} rule for source {ctx.source.id}")
    args: dict[str, Any] = rule.args
    return args
