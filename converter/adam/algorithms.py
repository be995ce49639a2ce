"""The ADaM rules: declared into the closed vocabulary (:func:`converter.spec.rules.register`) and implemented here.

Modelled on pharmaverse admiral, each rule is one generic derivation whose trial-specific content (datasets,
filters, orders, value maps, event and censoring sources) is stated in the spec:

==================  ===========================================  =================================================
rule                admiral counterpart                          typical use
==================  ===========================================  =================================================
``merge``           ``derive_vars_merged`` (filter, order, mode)  TRTSDT from EX, BOR from RS, DTHCAUS from DS
``merge_flag``      ``derive_var_merged_exist_flag``              SAFFL, TRANSFL, MRDNEGFL
``merge_summary``   ``derive_var_merged_summary``                 number of doses, cumulative dose
``supp``            ``combine_supp`` / metatools                  SALVLN from SUPPDM, AEVOD from SUPPAE
``extreme_date``    ``derive_vars_extreme_event`` (dates)         LSTALVDT over several SDTM dates
``date``            ``derive_vars_dt`` (imputation, min/max)      ASTDT from a partial AESTDTC
``date_flag``       the ``--DTF`` of ``derive_vars_dt``           ASTDTF: what ``date`` imputed (D, M)
``datetime``        ``derive_vars_dtm`` (time first/last)         ASTDTM from a partial AESTDTC with a time part
``time_flag``       the ``--TMF`` of ``derive_vars_dtm``          ASTTMF: what ``datetime`` imputed (H, M, S)
``duration``        ``derive_vars_duration``                      AVAL, TRTDURD
``rel_day``         ``derive_vars_dy``                            ASTDY (no day 0)
``group``           ``derive_vars_cat`` / format functions        AGEGR1, SALVLNN
``compute``         ``mutate`` with an arithmetic expression      BMIBL
``trtemfl``         ``derive_var_trtemfl``                        TRTEMFL with an end window
``tte``             ``derive_param_tte`` + ``event_source`` /     ADT of OS, RFS, DOR: earliest event over the
                    ``censor_source``                             event sources, else latest censoring date
``tte_attr``        the ``set_values_to`` of those sources        CNSR, EVNTDESC, SRCDOM, SRCVAR, SRCSEQ
``extreme_flag``    ``derive_var_extreme_flag``                   AOCCFL, AOCCPFL, ANL01FL (first/last/worst)
==================  ===========================================  =================================================

Dates in ADaM are SAS day counts (days since 1960-01-01) in integer variables with a ``DATE9.`` format (datetimes:
seconds since 1960, ``DATETIME20.``). A rule reading a date accepts either such a number or an ISO 8601 text (SDTM
``--DTC``); only complete dates are used unless a ``date``/``datetime`` rule states an imputation, which
``date_flag``/``time_flag`` then report.

Order independence: whenever a rule picks one record among several (``merge`` first/last, ``extreme_flag``,
``tte`` ties), records are ordered by the spec's ``order`` and then by the content of every other column, so the
result depends on the data only, never on the order the rows arrive in.

Order items: ``VAR`` (ascending), ``desc(VAR)`` (descending), or ``{var: VAR, rank: [best, ..., worst]}`` (a
categorical order, values outside the list last). Nulls sort last in either direction.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import problem
from converter.frames import constant_column, keep_where, null_column, text_column
from converter.sdtm.algorithms import DatasetContext, RowContext, as_text, dataset_rule, row_rule
from converter.spec.rules import RuleDef, register

SAS_EPOCH = pd.Timestamp("1960-01-01")
MONTH_DAYS = 365.25 / 12
UNIT_DAYS = {"days": 1.0, "weeks": 7.0, "months": MONTH_DAYS, "years": 365.25}
_ISO = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DESC = re.compile(r"^desc\((?P<var>[A-Za-z_][A-Za-z0-9_.]*)\)$")


# --- the vocabulary ------------------------------------------------------------------------------------------
def _names(*keys: str) -> Any:
    """The target variables a rule reads, from the given (str or list-of-str) arguments."""

    def get(a: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for k in keys:
            v = a.get(k)
            if isinstance(v, str):
                out.append(_order_var(v))
            elif isinstance(v, list):
                out += [_order_var(x) if isinstance(x, str) else str(x.get("var")) for x in v if x is not None]
        return out

    return get


_MERGE_ARGS = {
    "dataset": "str",
    "var": "str",
    "by?": "list",
    "filter?": "str",
    "order?": "list",
    "mode?": "str",
    "as?": "str",
    "values?": "map",
    "default?": "scalar",
    "missing?": "scalar",
    "fallback?": "str",
    "round?": "int",
}

for _rule in (
    RuleDef(
        "merge",
        "row",
        _MERGE_ARGS,
        "a variable of another dataset merged by key (default USUBJID; 'A=B' renames): records kept by `filter`, "
        "ordered by `order`, the first (or `mode: last`) per key; `as: date` gives a SAS date from a complete ISO "
        "date, `values` maps the value (`default` for unmapped values), `missing` where no record matched, "
        "`fallback` an earlier variable (or source column) taken where nothing was merged; `round` rounds a number "
        "(half away from zero)",
    ),
    RuleDef(
        "merge_flag",
        "row",
        {"dataset": "str", "by?": "list", "filter?": "str", "true?": "scalar", "false?": "scalar"},
        "`true` (default Y) where another dataset has a record for the key that meets `filter`, else `false`",
    ),
    RuleDef(
        "merge_summary",
        "row",
        {"dataset": "str", "var": "str", "fn": "str", "by?": "list", "filter?": "str", "missing?": "scalar"},
        "an aggregate (count, sum, min, max, mean, n_distinct) of another dataset's variable per key",
    ),
    RuleDef(
        "supp",
        "row",
        {"dataset": "str", "qnam": "str"},
        "QVAL of a supplemental qualifier (SUPP--) merged back onto its parent records by USUBJID and IDVAR/IDVARVAL",
    ),
    RuleDef(
        "extreme_date",
        "row",
        {"sources": "list", "mode?": "str"},
        "the last (or `mode: first`) complete date per subject over several sources [{dataset, date, filter}]",
    ),
    RuleDef(
        "date",
        "row",
        {"dtc": "str", "impute?": "str", "highest?": "str", "not_before?": "strs", "not_after?": "strs"},
        "a SAS date from an ISO 8601 date; a partial date is imputed only if `impute` (first, last, mid) is given, "
        "up to `highest` (D: day, M: month and day; default M), kept within the range of the partial date by "
        "`not_before`/`not_after` dates",
    ),
    RuleDef(
        "date_flag",
        "row",
        {"of": "str"},
        "the date imputation flag (--DTF) of a `date` or `datetime` rule's variable: D day imputed, M month and day",
    ),
    RuleDef(
        "datetime",
        "row",
        {
            "dtc": "str",
            "impute?": "str",
            "time?": "str",
            "highest?": "str",
            "not_before?": "strs",
            "not_after?": "strs",
        },
        "a SAS datetime (seconds since 1960) from an ISO 8601 datetime; missing time parts are imputed up to "
        "`highest` (s, m, h; D or M also impute the date as the date rule does, with `impute`) as `time` first "
        "(00:00:00) or last (23:59:59), kept within the partial value's range by `not_before`/`not_after`",
    ),
    RuleDef(
        "time_flag",
        "row",
        {"of": "str"},
        "the time imputation flag (--TMF) of a `datetime` rule's variable: H hours imputed, M minutes, S seconds",
    ),
    RuleDef(
        "duration",
        "row",
        {"start": "str", "end": "str", "unit?": "str", "add_one?": "scalar", "floor?": "scalar", "round?": "int"},
        "end minus start in days, weeks, months (365.25/12 days) or years (365.25 days); `add_one` (default "
        "true) adds one day to a non-negative duration",
    ),
    RuleDef(
        "rel_day",
        "row",
        {"date": "str", "ref": "str"},
        "relative day of a date to a reference date: date - ref + 1 on or after ref, date - ref before (no day 0)",
    ),
    RuleDef(
        "group",
        "row",
        {
            "var": "str",
            "ranges?": "list",
            "values?": "map",
            "default?": "scalar",
            "keep?": "scalar",
            "missing?": "scalar",
        },
        "a category of a variable: numeric `ranges` [{ge/gt/le/lt, value}] (first match) or a `values` map; "
        "`default` for values outside (or `keep: true` to keep them as they are), `missing` for null",
    ),
    RuleDef(
        "compute",
        "row",
        {"expr": "str", "round?": "int"},
        "an arithmetic expression over source and earlier target variables (pandas syntax)",
    ),
    RuleDef(
        "trtemfl",
        "row",
        {"start": "str", "trt_start": "str", "end?": "str", "trt_end?": "str", "window?": "int", "start_dtc?": "str"},
        "treatment-emergent flag: Y when the start date is on or after treatment start and on or before treatment "
        "end + `window` days; Y for a missing start unless the event ended before treatment start or the collected "
        "partial start date (`start_dtc`) ends before treatment start",
    ),
    RuleDef(
        "tte",
        "row",
        {"events": "list", "censors": "list", "start?": "str"},
        "time-to-event date: the earliest date over the event sources, else the latest over the censoring "
        "sources; each source {dataset, date, filter?, seq?, description?, srcdom?, srcvar?, cnsr?}",
    ),
    RuleDef(
        "tte_attr",
        "row",
        {"of": "str", "attr": "str"},
        "an attribute of the record a `tte` rule chose: CNSR, DESCRIPTION (of the source), EVNTDESC (events only), "
        "CNSDTDSC (censored only), SRCDOM, SRCVAR, SRCSEQ",
    ),
    RuleDef(
        "extreme_flag",
        "dataset",
        {"by": "strs", "order": "list", "mode?": "str", "filter?": "str", "value?": "scalar"},
        "`value` (default Y) on the first (or `mode: last`) record per `by` group among the records meeting "
        "`filter`, ordered by `order` (first/last occurrence, worst record)",
        targets=_names("by", "order"),
    ),
):
    register(_rule)


#: arguments that name a variable of the rows being built: an earlier target variable or a source column
ROW_NAME_ARGS: dict[str, tuple[str, ...]] = {
    "date": ("dtc", "not_before", "not_after"),
    "date_flag": ("of",),
    "datetime": ("dtc", "not_before", "not_after"),
    "time_flag": ("of",),
    "duration": ("start", "end"),
    "rel_day": ("date", "ref"),
    "group": ("var",),
    "trtemfl": ("start", "trt_start", "end", "trt_end", "start_dtc"),
    "tte": ("start",),
    "tte_attr": ("of",),
}


#: arguments with a closed set of values (checked before data)
ENUM_ARGS: dict[tuple[str, str], tuple[str, ...]] = {
    ("merge", "mode"): ("first", "last"),
    ("merge", "as"): ("value", "date"),
    ("merge_summary", "fn"): ("count", "n_distinct", "sum", "mean", "min", "max"),
    ("extreme_date", "mode"): ("first", "last"),
    ("extreme_flag", "mode"): ("first", "last"),
    ("date", "impute"): ("first", "last", "mid"),
    ("date", "highest"): ("D", "M"),
    ("datetime", "impute"): ("first", "last", "mid"),
    ("datetime", "time"): ("first", "last"),
    ("datetime", "highest"): ("s", "m", "h", "D", "M"),
    ("duration", "unit"): ("days", "weeks", "months", "years"),
    ("tte_attr", "attr"): ("CNSR", "DESCRIPTION", "EVNTDESC", "CNSDTDSC", "SRCDOM", "SRCVAR", "SRCSEQ", "ADT"),
}


def enum_problems(rule: str, args: dict[str, Any]) -> list[str]:
    return [
        f"{arg} must be one of {', '.join(allowed)} (got {args[arg]!r})"
        for (name, arg), allowed in ENUM_ARGS.items()
        if name == rule and arg in args and args[arg] not in allowed
    ]


def row_names(rule: str, args: dict[str, Any]) -> list[str]:
    """Names of row variables a row rule reads (for checks before data)."""
    names: list[str] = list(_names(*ROW_NAME_ARGS.get(rule, ()))(args))
    if rule in ("merge", "merge_flag", "merge_summary"):
        names += [left for left, _ in _by_pairs(args)]
    if rule == "merge" and args.get("fallback"):
        names.append(str(args["fallback"]))
    return names


def dataset_names(rule: str, args: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, variable) pairs a rule reads from another dataset (for checks before data)."""
    out: list[tuple[str, str]] = []
    if rule in ("merge", "merge_flag", "merge_summary"):
        ds = str(args["dataset"])
        out += [(ds, right) for _, right in _by_pairs(args)]
        out += [(ds, v) for v in _names("order")(args)]
        if args.get("var"):
            out.append((ds, str(args["var"])))
    elif rule == "supp":
        out += [(str(args["dataset"]), v) for v in ("USUBJID", "QNAM", "QVAL", "IDVAR", "IDVARVAL")]
    elif rule == "extreme_date":
        out += [(str(s["dataset"]), str(s["date"])) for s in args.get("sources") or [] if isinstance(s, dict)]
    elif rule == "tte":
        for kind in ("events", "censors"):
            for s in args.get(kind) or []:
                if isinstance(s, dict) and "dataset" in s:
                    out += [(str(s["dataset"]), str(s[k])) for k in ("date", "seq") if s.get(k)]
    return out


# --- helpers ---------------------------------------------------------------------------------------------------
def _order_var(item: str) -> str:
    m = _DESC.match(item.strip())
    return m.group("var") if m else item.strip()


def _value(ctx: RowContext, name: str) -> pd.Series:
    """An earlier target variable, else a column of the source rows."""
    if name in ctx.target:
        return ctx.target[name]
    if name in ctx.frame.columns:
        return ctx.frame[name]
    raise KeyError(f"{ctx.spec.name}.{ctx.var.name}: {name} is neither an earlier variable nor a source column")


def _env(ctx: RowContext) -> pd.DataFrame:
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


def query(df: pd.DataFrame, expr: str | None) -> pd.DataFrame:
    """Rows of ``df`` meeting a pandas expression (python engine: .str methods and ``in`` lists work)."""
    if not expr or df.empty:
        return df
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr))
    used = [c for c in df.columns if c in words]  # eval resolves every column it is given: give it only these
    hit = df[used].eval(expr, engine="python")
    mask = pd.Series(hit, index=df.index).fillna(False).astype(bool)
    return df[mask]


def iso_to_sas(col: pd.Series) -> pd.Series:
    """Complete ISO 8601 dates (YYYY-MM-DD, any time part ignored) -> SAS day numbers (float64, NaN otherwise)."""
    txt = text_column(col)
    head = txt.str.slice(0, 10)
    ok = head.str.len().eq(10).fillna(False).astype(bool)
    parsed = pd.to_datetime(keep_where(head, ok), format="%Y-%m-%d", errors="coerce")
    return ((parsed - SAS_EPOCH).dt.days).astype("float64")


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
    txt = text_column(col)
    return (txt.notna() & (txt.str.len() < 10)).fillna(False).astype(bool)


def _by_pairs(a: dict[str, Any]) -> list[tuple[str, str]]:
    """`by` as (left, right) variable pairs: "USUBJID" or "RSDTC=LBDTC" (left name = right name)."""
    raw = a.get("by", ["USUBJID"])
    out: list[tuple[str, str]] = []
    for item in raw or []:
        left, _, right = str(item).partition("=")
        out.append((left.strip(), (right or left).strip()))
    return out


def _key_frame(values: Sequence[pd.Series], index: pd.Index) -> pd.DataFrame:
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


def _sortable(col: pd.Series) -> pd.Series:
    """Numbers as float64 (NaN for missing), anything else as text (None for missing)."""
    if is_numeric(col):
        return pd.to_numeric(col, errors="coerce").astype("float64")
    return as_text(col)


def sort_keys(df: pd.DataFrame, order: Sequence[Any], descending: bool = False, by: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` ordered by the order items, then by every other column's content (content-determined order).

    Nulls sort last in every direction. ``descending`` reverses each order item (for ``mode: last``). The
    content tie-break is computed only when records of one ``by`` group tie on every order item.
    """
    if df.empty:
        return df
    keys: dict[str, pd.Series] = {}
    ascending: list[bool] = []
    used: set[str] = set()
    for i, item in enumerate(order or []):
        if isinstance(item, dict):
            var = str(item["var"])
            rank = {str(v): j for j, v in enumerate(item.get("rank") or [])}
            col = as_text(df[var]).map(rank).astype("float64")
            asc = not bool(item.get("desc"))
        else:
            var = _order_var(str(item))
            col = _sortable(df[var])
            asc = not bool(_DESC.match(str(item).strip()))
        used.add(var)
        keys[f"__o{i}"] = col
        ascending.append(asc != descending)
    groups = pd.DataFrame({**{f"__b{j}": as_text(df[b]) for j, b in enumerate(by)}, **keys}, index=df.index)
    tied = len(df) > 1 if groups.shape[1] == 0 else bool(groups.duplicated(keep=False).any())
    if tied:  # break ties on content, never on row position
        for j, c in enumerate(sorted(set(df.columns) - used)):
            col = _sortable(df[c])
            keys[f"__t{j}"] = col if col.dtype.kind == "f" else col.fillna("")
            ascending.append(not descending)
    if not keys:
        return df
    kf = pd.DataFrame(keys, index=df.index)
    order_idx = kf.sort_values(list(kf.columns), ascending=ascending, na_position="last", kind="mergesort").index
    return df.loc[order_idx]


def pick(df: pd.DataFrame, by: Sequence[str], order: Sequence[Any], mode: str) -> pd.DataFrame:
    """The first (or last) record per ``by`` group in the order of ``order`` (nulls never win)."""
    if mode not in ("first", "last"):
        raise ValueError(f"mode must be first or last (got {mode!r})")
    ranked = sort_keys(df, order, descending=(mode == "last"), by=by)
    if not by:
        return ranked.head(1)
    return ranked.groupby(list(by), sort=False, dropna=False).head(1)


def _right(ctx: RowContext, a: dict[str, Any]) -> pd.DataFrame:
    name = a["dataset"]
    if name not in ctx.built:
        raise KeyError(f"{ctx.spec.name}.{ctx.var.name}: dataset {name} is not available (add it to depends)")
    return query(ctx.built[name], a.get("filter"))


def _match(ctx: RowContext, a: dict[str, Any], right: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Left keys (one row per source row) and right keys (one row per right record), as text frames."""
    pairs = _by_pairs(a)
    left = _key_frame([_value(ctx, lft) for lft, _ in pairs], ctx.frame.index)
    rkeys = _key_frame([right[rgt] for _, rgt in pairs], right.index)
    return left, rkeys


def _lookup(left: pd.DataFrame, right: pd.DataFrame, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per left row: the value of the (unique) right record with the same keys, and whether one matched."""
    n = len(left)
    if len(right) == 0:
        return null_column(n, left.index), pd.Series(False, index=left.index)
    if left.shape[1] == 0:  # no keys: the one selected record applies to every row
        v = values.iloc[0]
        return constant_column(v, n, left.index), pd.Series(True, index=left.index)
    r = right.assign(__v=values.to_numpy(dtype=object), __hit=True)
    merged = left.merge(r, on=list(left.columns), how="left", validate="many_to_one")
    hit = merged["__hit"].eq(True).fillna(False).to_numpy(dtype=bool)
    return (
        pd.Series(merged["__v"].to_numpy(dtype=object), index=left.index, dtype=object),
        pd.Series(hit, index=left.index),
    )


def _report(ctx: RowContext, rows: np.ndarray, field: str, values: pd.Series, rule: str, msg: str) -> None:
    for i in rows[:50]:
        ctx.problems.append(
            problem(ctx.file, str(ctx.labels.iloc[int(i)]), field, values.iloc[int(i)], rule,
                    f"{ctx.spec.name}.{ctx.var.name}: {msg}")
        )  # fmt: skip


# --- merge rules ---------------------------------------------------------------------------------------------
@row_rule("merge")
def _merge(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    right = _right(ctx, a)
    pairs = _by_pairs(a)
    chosen = pick(right, [r for _, r in pairs], a.get("order") or [], a.get("mode", "first"))
    left, rkeys = _match(ctx, a, chosen)
    out, hit = _lookup(left, rkeys, chosen[a["var"]])
    if a.get("as") == "date":
        bad = hit & partial_dates(out)
        if bad.any():
            _report(ctx, np.flatnonzero(bad.to_numpy()), a["var"], out, "merge",
                    f"partial date from {a['dataset']}.{a['var']}: state an imputation with a date rule")  # fmt: skip
        out = as_sas_date(out).astype(object)
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
                _report(ctx, np.flatnonzero(unmapped.to_numpy()), a["var"], txt, "merge", "value has no mapping")
        out = mapped.astype(object)
    if a.get("round") is not None:
        out = sas_round(out, int(a["round"])).astype(object)
    if "missing" in a:
        out = out.where(hit, a["missing"])
    if a.get("fallback"):
        alt = _value(ctx, a["fallback"])
        alt = as_sas_date(alt) if a.get("as") == "date" else alt
        out = out.where(out.notna(), alt.astype(object))
    return out


@row_rule("merge_flag")
def _merge_flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    right = _right(ctx, a)
    left, rkeys = _match(ctx, a, right)
    rkeys = rkeys.drop_duplicates()
    _, hit = _lookup(left, rkeys, pd.Series(np.ones(len(rkeys)), index=rkeys.index))
    out = constant_column(a.get("false"), len(hit), hit.index)
    out[hit.to_numpy(dtype=bool)] = a.get("true", "Y")
    return out


@row_rule("merge_summary")
def _merge_summary(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    right = _right(ctx, a)
    left, rkeys = _match(ctx, a, right)
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
    out, hit = _lookup(left, aggf[cols], aggf["__v"])
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
    subj = as_text(_value(ctx, "USUBJID"))
    idvars = supp["IDVAR"].fillna("")
    for idvar, part in supp.groupby(idvars, sort=True):
        if str(idvar):
            left = _key_frame([subj, _value(ctx, str(idvar))], ctx.frame.index)
            right = _key_frame([part["USUBJID"], part["IDVARVAL"]], part.index)
        else:
            left = _key_frame([subj], ctx.frame.index)
            right = _key_frame([part["USUBJID"]], part.index)
        dup = right.duplicated()
        if dup.any():
            raise ValueError(f"{a['dataset']}: QNAM {a['qnam']} has more than one record per parent record")
        vals, hit = _lookup(left, right, part["QVAL"])
        out = out.where(~hit, vals)
    return out.astype(object)


@row_rule("extreme_date")
def _extreme_date(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    mode = a.get("mode", "last")
    parts: list[pd.DataFrame] = []
    for src in a["sources"]:
        df = query(ctx.built[src["dataset"]], src.get("filter"))
        dates = as_sas_date(df[src["date"]]).to_numpy()
        parts.append(pd.DataFrame({"k": as_text(df["USUBJID"]).to_numpy(), "d": dates}))
    allp = pd.concat(parts, ignore_index=True).dropna(subset=["d"])
    agg = allp.groupby("k")["d"].max() if mode == "last" else allp.groupby("k")["d"].min()
    return as_text(_value(ctx, "USUBJID")).map(agg).astype(object)


# --- dates -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imputed:
    dates: pd.Series  # float64 SAS dates
    flags: pd.Series  # object: "D", "M" or None


def impute_dates(
    dtc: pd.Series,
    impute: str | None,
    highest: str = "M",
    not_before: Sequence[pd.Series] = (),
    not_after: Sequence[pd.Series] = (),
) -> Imputed:
    """ISO 8601 (partial) dates -> SAS dates, imputing missing day (D) / month and day (M) as admiral does."""
    if impute not in (None, "first", "last", "mid"):
        raise ValueError(f"impute must be first, last or mid (got {impute!r})")
    if highest not in ("D", "M"):
        raise ValueError(f"highest must be D or M (got {highest!r})")
    if is_numeric(dtc):
        return Imputed(as_sas_date(dtc), null_column(len(dtc), dtc.index))
    txt = text_column(dtc).to_numpy(dtype=object)
    n = len(txt)
    value = np.full(n, np.nan)
    low = np.full(n, np.nan)
    high = np.full(n, np.nan)
    flags = np.full(n, None, dtype=object)
    epoch = SAS_EPOCH.date()
    import datetime as _dt

    def day(y: int, m: int, d: int) -> float:
        return float((_dt.date(y, m, d) - epoch).days)

    for i, t in enumerate(txt):  # per value: partial dates need calendar arithmetic
        if t is None:
            continue
        m = _ISO.match(str(t))
        if not m:
            continue
        y, mo, d = int(m.group(1)), m.group(2), m.group(3)
        try:
            if mo and d:
                value[i] = day(y, int(mo), int(d))
                continue
            if impute is None:
                continue
            if mo:
                last = calendar.monthrange(y, int(mo))[1]
                low[i], high[i] = day(y, int(mo), 1), day(y, int(mo), last)
                mid = day(y, int(mo), 15)
                flags[i] = "D"
            elif highest == "M":
                low[i], high[i] = day(y, 1, 1), day(y, 12, 31)
                mid = day(y, 6, 30)
                flags[i] = "M"
            else:
                continue
        except ValueError:
            flags[i] = None
            continue
        value[i] = {"first": low[i], "last": high[i], "mid": mid}[impute]
    imputed = pd.notna(flags)
    for bound in not_before:
        b = as_sas_date(bound).to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value < b)
        value[use] = b[use]
    for bound in not_after:
        b = as_sas_date(bound).to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value > b)
        value[use] = b[use]
    return Imputed(pd.Series(value, index=dtc.index, dtype="float64"), pd.Series(flags, index=dtc.index, dtype=object))


def _imputed(ctx: RowContext, a: dict[str, Any]) -> Imputed:
    return impute_dates(
        _value(ctx, a["dtc"]),
        a.get("impute"),
        str(a.get("highest", "M")),
        [_value(ctx, v) for v in a.get("not_before") or []],
        [_value(ctx, v) for v in a.get("not_after") or []],
    )


@row_rule("date")
def _date(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _imputed(ctx, a).dates.astype(object)


def _sibling_rule(ctx: RowContext, of: str, name: str) -> dict[str, Any]:
    rule = ctx.spec.variable(of).rule_for(ctx.source.id)
    if rule is None or rule.name != name:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: {of} has no {name} rule for source {ctx.source.id}")
    args: dict[str, Any] = rule.args
    return args


@row_rule("date_flag")
def _date_flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    rule = ctx.spec.variable(a["of"]).rule_for(ctx.source.id)
    if rule is not None and rule.name == "datetime":
        return _imputed_dtm(ctx, rule.args).date_flags
    return _imputed(ctx, _sibling_rule(ctx, a["of"], "date")).flags


_TIME = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2}))?)?")
_LEVELS = ("s", "m", "h", "D", "M")


@dataclass(frozen=True)
class ImputedDatetime:
    seconds: pd.Series  # float64 SAS datetimes
    date_flags: pd.Series  # "D", "M" or None
    time_flags: pd.Series  # "H", "M", "S" or None


def impute_datetimes(
    dtc: pd.Series,
    impute: str | None = None,
    time: str = "first",
    highest: str = "h",
    not_before: Sequence[pd.Series] = (),
    not_after: Sequence[pd.Series] = (),
) -> ImputedDatetime:
    """ISO 8601 (partial) datetimes -> SAS datetimes, imputing as admiral's derive_vars_dtm, with DTF and TMF."""
    if highest not in _LEVELS:
        raise ValueError(f"highest must be one of {_LEVELS} (got {highest!r})")
    if time not in ("first", "last"):
        raise ValueError(f"time must be first or last (got {time!r})")
    if is_numeric(dtc):
        none = null_column(len(dtc), dtc.index)
        return ImputedDatetime(pd.to_numeric(dtc, errors="coerce").astype("float64"), none, none)
    txt = text_column(dtc).to_numpy(dtype=object)
    date_part = pd.Series([t.split("T", 1)[0] if t else None for t in txt], index=dtc.index, dtype=object)
    time_part = [t.split("T", 1)[1] if t and "T" in t else None for t in txt]
    level = _LEVELS.index(highest)
    date_level = highest if highest in ("D", "M") else "M"
    dates = {
        w: impute_dates(date_part, (impute or "first") if w == "value" else w, date_level)
        if level >= _LEVELS.index("D")
        else impute_dates(date_part, None)
        for w in ("value", "first", "last")
    }
    n = len(txt)
    hms = np.full((n, 3), -1, dtype=int)  # -1: missing component
    for i, t in enumerate(time_part):
        m = _TIME.match(t) if t else None
        if m:
            for j in range(3):
                if m.group(j + 1) is not None:
                    hms[i, j] = int(m.group(j + 1))
    date_imputed = dates["value"].flags.notna().to_numpy(dtype=bool)
    hms[date_imputed] = -1
    missing = hms < 0
    first_missing = np.where(missing.any(axis=1), missing.argmax(axis=1), 3)  # 0 h, 1 m, 2 s, 3 none
    need = np.array([_LEVELS.index(x) for x in ("h", "m", "s")] + [-1])[first_missing]
    ok = dates["value"].dates.notna().to_numpy(dtype=bool) & (need <= level)
    fill = {"first": np.array([0, 0, 0]), "last": np.array([23, 59, 59])}

    def seconds(which: str, day: pd.Series) -> np.ndarray:
        full = np.where(missing, fill[which], hms)
        secs: np.ndarray = day.to_numpy(dtype=float) * 86400.0 + full @ np.array([3600.0, 60.0, 1.0])
        return secs

    value = np.where(ok, seconds(time, dates["value"].dates), np.nan)
    low = seconds("first", dates["first"].dates)
    high = seconds("last", dates["last"].dates)
    imputed = ok & (first_missing < 3)
    for bound in not_before:
        b = pd.to_numeric(bound, errors="coerce").to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value < b)
        value[use] = b[use]
    for bound in not_after:
        b = pd.to_numeric(bound, errors="coerce").to_numpy(dtype=float)
        use = imputed & ~np.isnan(b) & (b >= low) & (b <= high) & (value > b)
        value[use] = b[use]
    tmf = np.full(n, None, dtype=object)
    tmf[imputed] = np.array(["H", "M", "S"], dtype=object)[first_missing[imputed]]
    dtf = keep_where(dates["value"].flags, ok)
    return ImputedDatetime(
        pd.Series(value, index=dtc.index, dtype="float64"), dtf, pd.Series(tmf, index=dtc.index, dtype=object)
    )


def _imputed_dtm(ctx: RowContext, a: dict[str, Any]) -> ImputedDatetime:
    return impute_datetimes(
        _value(ctx, a["dtc"]),
        a.get("impute"),
        str(a.get("time", "first")),
        str(a.get("highest", "h")),
        [_value(ctx, v) for v in a.get("not_before") or []],
        [_value(ctx, v) for v in a.get("not_after") or []],
    )


@row_rule("datetime")
def _datetime(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _imputed_dtm(ctx, a).seconds.astype(object)


@row_rule("time_flag")
def _time_flag(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    return _imputed_dtm(ctx, _sibling_rule(ctx, a["of"], "datetime")).time_flags


@row_rule("duration")
def _duration(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    start = as_sas_date(_value(ctx, a["start"]))
    end = as_sas_date(_value(ctx, a["end"]))
    days = end - start
    if a.get("add_one", True):
        days = days.where(days < 0, days + 1)
    unit = a.get("unit", "days")
    if unit not in UNIT_DAYS:
        raise ValueError(f"duration unit must be one of {list(UNIT_DAYS)} (got {unit!r})")
    out = days / UNIT_DAYS[unit]
    if a.get("floor"):
        out = np.floor(out)
    if a.get("round") is not None:
        out = sas_round(out, int(a["round"]))
    return out.astype(object)


@row_rule("rel_day")
def _rel_day(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    d = as_sas_date(_value(ctx, a["date"]))
    ref = as_sas_date(_value(ctx, a["ref"]))
    diff = d - ref
    return diff.where(diff < 0, diff + 1).astype(object)


# --- categories and expressions ------------------------------------------------------------------------------------
_OPS = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal}


@row_rule("group")
def _group(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    src = _value(ctx, a["var"])
    out = null_column(len(src), src.index)
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
            _report(ctx, np.flatnonzero(rest), a["var"], as_text(src), "group", "value falls in no group")
    if "missing" in a:
        out[~present] = a["missing"]
    return out


@row_rule("compute")
def _compute(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    env = _env(ctx)
    for c in env.columns:
        if str(env[c].dtype) in ("Int64", "Float64", "boolean"):
            env[c] = env[c].astype("float64")
        elif env[c].dtype == object and env[c].map(lambda v: isinstance(v, int | float), na_action="ignore").all():
            env[c] = pd.to_numeric(env[c], errors="coerce")
    res = env.eval(a["expr"], engine="python") if len(env) else pd.Series([], dtype="float64")
    out = pd.to_numeric(pd.Series(res, index=env.index), errors="coerce").astype("float64")
    if a.get("round") is not None:
        out = sas_round(out, int(a["round"]))
    return out.astype(object)


@row_rule("trtemfl")
def _trtemfl(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    start = as_sas_date(_value(ctx, a["start"])).to_numpy(dtype=float)
    trt_start = as_sas_date(_value(ctx, a["trt_start"])).to_numpy(dtype=float)
    end = as_sas_date(_value(ctx, a["end"])).to_numpy(dtype=float) if a.get("end") else np.full(len(start), np.nan)
    if a.get("trt_end") and a.get("window") is not None:
        window_end = as_sas_date(_value(ctx, a["trt_end"])).to_numpy(dtype=float) + float(a["window"])
    else:
        window_end = np.full(len(start), np.nan)
    if a.get("start_dtc"):  # the latest day a partial start date can be
        latest = impute_dates(_value(ctx, a["start_dtc"]), "last").dates.to_numpy(dtype=float)
    else:
        latest = np.full(len(start), np.nan)
    with np.errstate(invalid="ignore"):
        partial_before = np.isnan(start) & ~np.isnan(latest) & (latest < trt_start)
        ended_before = (~np.isnan(end) & (end < trt_start)) | partial_before
        in_window = np.isnan(window_end) | (start <= window_end)
        y = ~np.isnan(trt_start) & ~ended_before & (np.isnan(start) | ((start >= trt_start) & in_window))
    return keep_where(constant_column("Y", len(start), ctx.frame.index), y)


# --- time to event -------------------------------------------------------------------------------------------------
_TTE_KEYS = {"dataset", "date", "filter", "seq", "description", "srcdom", "srcvar", "cnsr"}
TTE_ATTRS = ENUM_ARGS[("tte_attr", "attr")]


def check_tte_sources(args: dict[str, Any]) -> list[str]:
    """Problems with a tte rule's event/censor source lists (for spec checks before data)."""
    out: list[str] = []
    for kind in ("events", "censors"):
        for i, src in enumerate(args.get(kind) or []):
            if not isinstance(src, dict):
                out.append(f"tte {kind}[{i}] must be a mapping")
                continue
            body = {k: v for k, v in src.items() if k != "__line__"}
            for k in sorted(set(body) - _TTE_KEYS):
                out.append(f"tte {kind}[{i}]: unknown key {k!r} (allowed: {', '.join(sorted(_TTE_KEYS))})")
            for k in ("dataset", "date"):
                if k not in body:
                    out.append(f"tte {kind}[{i}]: {k} is required")
    return out


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
    cands: list[pd.DataFrame] = []
    for kind, items in (("event", a["events"]), ("censor", a["censors"])):
        for i, src in enumerate(items):
            df = query(ctx.built[src["dataset"]], src.get("filter"))
            seq = df[src["seq"]] if src.get("seq") else pd.Series(np.nan, index=df.index)
            cands.append(
                pd.DataFrame(
                    {
                        "k": as_text(df["USUBJID"]).to_numpy(dtype=object),
                        "ADT": as_sas_date(df[src["date"]]).to_numpy(dtype=float),
                        "kind": 0 if kind == "event" else 1,
                        "src": i,
                        "SRCSEQ": pd.to_numeric(seq, errors="coerce").to_numpy(dtype=float),
                        "CNSR": int(src.get("cnsr", 0 if kind == "event" else 1)),
                        "EVNTDESC": src.get("description"),
                        "SRCDOM": src.get("srcdom", src["dataset"]),
                        "SRCVAR": src.get("srcvar", src["date"]),
                    }
                )
            )
    allc = pd.concat(cands, ignore_index=True).dropna(subset=["ADT"])
    # events: earliest date first; censorings: latest date first; then source order and sequence number
    allc["__o"] = np.where(allc["kind"] == 0, allc["ADT"], -allc["ADT"])
    allc = allc.sort_values(["k", "kind", "__o", "src", "SRCSEQ"], kind="mergesort", na_position="last")
    best = allc.groupby("k", sort=False).head(1).set_index("k")
    subj = as_text(_value(ctx, "USUBJID"))
    out = best.reindex(subj.to_numpy(dtype=object))
    out.index = ctx.frame.index
    return out


@row_rule("tte")
def _tte(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    ch = tte_choice(ctx, a)
    none = ch["ADT"].isna()
    if none.any():
        _report(ctx, np.flatnonzero(none.to_numpy()), "USUBJID", as_text(_value(ctx, "USUBJID")), "tte",
                "no event and no censoring date in any source")  # fmt: skip
    return ch["ADT"].astype(object)


@row_rule("tte_attr")
def _tte_attr(ctx: RowContext, a: dict[str, Any]) -> pd.Series:
    attr = a["attr"]
    if attr not in TTE_ATTRS:
        raise ValueError(f"{ctx.spec.name}.{ctx.var.name}: tte_attr attr must be one of {TTE_ATTRS}")
    ch = tte_choice(ctx, _sibling_rule(ctx, a["of"], "tte"))
    censored = ch["CNSR"].fillna(0).to_numpy() > 0
    if attr in ("DESCRIPTION", "EVNTDESC", "CNSDTDSC"):
        desc = ch["EVNTDESC"].astype(object)
        keep = {"DESCRIPTION": np.ones(len(desc), dtype=bool), "EVNTDESC": ~censored, "CNSDTDSC": censored}[attr]
        return keep_where(desc, keep)
    return keep_where(ch[attr].astype(object), ch[attr].notna())


# --- dataset-phase flags ---------------------------------------------------------------------------------------
@dataset_rule("extreme_flag")
def _extreme_flag(ctx: DatasetContext, a: dict[str, Any]) -> pd.Series:
    df = ctx.frame
    out = pd.Series(np.full(len(df), None, dtype=object), index=df.index)
    cand = query(df.drop(columns=[ctx.var.name], errors="ignore"), a.get("filter"))
    if cand.empty:
        return out
    chosen = pick(cand, list(a["by"]), a["order"], a.get("mode", "first"))
    out.loc[chosen.index] = a.get("value", "Y")
    return out
