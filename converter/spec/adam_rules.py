"""The ADaM rule vocabulary (:data:`ADAM_RULES`): the shared rules of :mod:`converter.spec.rules` plus the
ADaM derivations, and what each reads (for the checks before data). Implemented in :mod:`converter.adam`.

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
``relative_flag``   ``derive_var_relative_flag``                  ANL02FL: assessments up to the first PD
``extreme_event``   ``derive_extreme_event`` + ``event`` /        BOR, CBOR, RSP, CRSP, CB, PD, LSTA: the first
                    ``event_joined`` (confirmation)               event in order over a list of events
``event_attr``      the variables kept from the chosen record     ADT, RSSEQ, AVISIT of the BOR record
``extreme_record``  ``derive_vars_extreme_event`` + ``event``s    DTHCAUS: a fatal AE's term, else a death in DS
                    in several source datasets                    (the first event in order), LSTALVDT
``record_attr``     another of the ``set_values_to`` variables    DTHDOM: the domain of the DTHCAUS record
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

import re
from typing import Any

from converter.spec.rules import SDTM_RULES, SHARED, RuleDef

_DESC = re.compile(r"^desc\((?P<var>[A-Za-z_][A-Za-z0-9_.]*)\)$")

__all__ = [
    "ADAM_RULES",
    "CONFIRM_KEYS",
    "ENUM_ARGS",
    "EVENT_COLUMNS",
    "EVENT_KEYS",
    "RECORD_EVENT_KEYS",
    "ROW_NAME_ARGS",
    "TTE_ATTRS",
    "TTE_KEYS",
    "by_pairs",
    "check_events",
    "check_records",
    "check_tte_sources",
    "dataset_names",
    "enum_problems",
    "is_descending",
    "names_of",
    "order_var",
    "record_set_names",
    "row_names",
]


# --- the vocabulary ------------------------------------------------------------------------------------------
def names_of(*keys: str) -> Any:
    """The target variables a rule reads, from the given (str or list-of-str) arguments."""

    def get(a: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for k in keys:
            v = a.get(k)
            if isinstance(v, str):
                out.append(order_var(v))
            elif isinstance(v, list):
                out += [order_var(x) if isinstance(x, str) else str(x.get("var")) for x in v if x is not None]
        return out

    return get


_MERGE_ARGS = {
    "dataset": "str",
    "var": "str",
    "by?": "list",
    "filter?": "expr",
    "order?": "list",
    "mode?": "enum:first|last",
    "as?": "enum:value|date",
    "values?": "map",
    "default?": "scalar",
    "missing?": "scalar",
    "fallback?": "str",
    "round?": "int",
}

ADAM_ONLY: tuple[RuleDef, ...] = (
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
        {"dataset": "str", "by?": "list", "filter?": "expr", "true?": "scalar", "false?": "scalar"},
        "`true` (default Y) where another dataset has a record for the key that meets `filter`, else `false`",
    ),
    RuleDef(
        "merge_summary",
        "row",
        {
            "dataset": "str",
            "var": "str",
            "fn": "enum:count|n_distinct|sum|mean|min|max",
            "by?": "list",
            "filter?": "expr",
            "missing?": "scalar",
        },
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
        {"sources": "sources", "mode?": "enum:first|last"},
        "the last (or `mode: first`) complete date per subject over several sources [{dataset, date, filter}]",
    ),
    RuleDef(
        "date",
        "row",
        {
            "dtc": "str",
            "impute?": "enum:first|last|mid",
            "highest?": "enum:D|M",
            "not_before?": "strs",
            "not_after?": "strs",
        },
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
            "impute?": "enum:first|last|mid",
            "time?": "enum:first|last",
            "highest?": "enum:s|m|h|D|M",
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
        {
            "start": "str",
            "end": "str",
            "unit?": "enum:days|weeks|months|years",
            "add_one?": "scalar",
            "floor?": "scalar",
            "round?": "int",
        },
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
        {"expr": "expr", "round?": "int"},
        "an arithmetic expression (closed expression language) over source columns and earlier variables, "
        "as a number; `round` rounds it (half away from zero)",
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
        {"events": "sources", "censors": "sources", "start?": "str", "ties?": "enum:first|last"},
        "time-to-event date: the earliest date over the event sources, else the latest over the censoring "
        "sources (of censorings on the same date, the earliest-listed source's, or with `ties: last` the "
        "latest-listed one's, as admiral's derive_param_tte; events on one date: the earliest-listed); each "
        "source {dataset, date, filter?, seq?, description?, srcdom?, srcvar?, cnsr?, evntdesc?, "
        "cnsdtdsc?} (evntdesc/cnsdtdsc: the record's own EVNTDESC/CNSDTDSC, as admiral's set_values_to, e.g. a "
        "censoring Alive / Alive During Study)",
    ),
    RuleDef(
        "tte_attr",
        "row",
        {"of": "str", "attr": "enum:CNSR|DESCRIPTION|EVNTDESC|CNSDTDSC|SRCDOM|SRCVAR|SRCSEQ|ADT"},
        "an attribute of the record a `tte` rule chose: CNSR, DESCRIPTION (of the source), EVNTDESC (events only), "
        "CNSDTDSC (censored only), SRCDOM, SRCVAR, SRCSEQ",
    ),
    RuleDef(
        "extreme_flag",
        "dataset",
        {"by": "strs", "order": "list", "mode?": "enum:first|last", "filter?": "expr", "value?": "scalar"},
        "`value` (default Y) on the first (or `mode: last`) record per `by` group among the records meeting "
        "`filter`, ordered by `order` (first/last occurrence, worst record)",
        targets=names_of("by", "order"),
    ),
    RuleDef(
        "relative_flag",
        "dataset",
        {
            "by": "strs",
            "order": "list",
            "condition": "expr",
            "selection": "enum:before|after",
            "mode?": "enum:first|last",
            "inclusive?": "scalar",
            "flag_no_ref?": "scalar",
            "value?": "scalar",
        },
        "`value` (default Y) on the records of each `by` group before (or `selection: after`) its reference "
        "record, the first (or `mode: last`) record meeting `condition` in the order of `order`; the reference "
        "record itself too unless `inclusive: false`; a group without a reference record is flagged whole "
        "unless `flag_no_ref: false` (e.g. ANL02FL: the assessments up to and including the first PD)",
        targets=names_of("by", "order"),
    ),
    RuleDef(
        "extreme_event",
        "row",
        {
            "dataset": "str",
            "events": "sources",
            "order": "list",
            "by?": "list",
            "filter?": "expr",
            "mode?": "enum:first|last",
            "missing?": "scalar",
        },
        "per key (default USUBJID), the record chosen over a list of `events` among the records of `dataset` "
        "meeting `filter`: each event [{filter?, value | value_of, confirm?, description?}] names the records "
        "it accepts and the value it gives (a constant, or a column of the record); the accepted records of "
        "every event are ordered by `order` (items may name `event`, the event's position from 1, and `value`) "
        "and the first (or `mode: last`) gives the value; `missing` where no event has a record. `confirm` "
        "{var, date, values, min_days, allowed, max?, not_after?} accepts a record only if a later record "
        "(by `date`) has a `var` in `values` at least `min_days` after it, and every record after it up to "
        "the first such one has a `var` in `allowed`, at most `max` {value: n} of a value, and no value after "
        "another that `not_after` {value: [values]} forbids (admiral's event_joined, join_type after, "
        "first_cond_upper)",
    ),
    RuleDef(
        "event_attr",
        "row",
        {"of": "str", "var?": "str"},
        "a column (`var`, default the variable's own name) of the record an `extreme_event` rule chose for "
        "variable `of` (null where no event had a record)",
    ),
    RuleDef(
        "extreme_record",
        "row",
        {"events": "sources", "order": "list", "by?": "list", "mode?": "enum:first|last", "missing?": "scalar"},
        "per key (default USUBJID; 'A=B' renames), the record chosen over the records of several datasets: each "
        "event {dataset, filter?, set} accepts the records of its dataset meeting `filter` and sets variables "
        "(`set`: variable -> a column of the dataset, {value: constant} or {date: column}, a SAS date from a "
        "complete date); the accepted records of all events are ordered by `order` (items name `set` variables "
        "and `event`, the event's position from 1) and the first (or `mode: last`) gives the variable its own "
        "`set` value; `missing` where no event has a record (admiral's derive_vars_extreme_event)",
    ),
    RuleDef(
        "record_attr",
        "row",
        {"of": "str", "var?": "str", "missing?": "scalar"},
        "another `set` variable (`var`, default the variable's own name) of the record an `extreme_record` rule "
        "chose for variable `of`; null where that record's event sets none, `missing` where no event had a record",
    ),
)
#: the ADaM vocabulary: the shared rules, then the ADaM rules
ADAM_RULES: dict[str, RuleDef] = {
    **{name: SDTM_RULES[name] for name in SHARED},
    **{r.name: r for r in ADAM_ONLY},
}


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
    "event_attr": ("of",),
    "record_attr": ("of",),
}


#: arguments with a closed set of values: (rule, argument) -> the values (from the ``enum:`` kinds)
ENUM_ARGS: dict[tuple[str, str], tuple[str, ...]] = {
    (r.name, arg.rstrip("?")): tuple(kind[5:].split("|"))
    for r in ADAM_RULES.values()
    for arg, kind in r.args.items()
    if kind.startswith("enum:")
}


def enum_problems(rule: str, args: dict[str, Any]) -> list[str]:
    return [
        f"{arg} must be one of {', '.join(allowed)} (got {args[arg]!r})"
        for (name, arg), allowed in ENUM_ARGS.items()
        if name == rule and arg in args and args[arg] not in allowed
    ]


def row_names(rule: str, args: dict[str, Any]) -> list[str]:
    """Names of row variables a row rule reads (for checks before data)."""
    names: list[str] = list(names_of(*ROW_NAME_ARGS.get(rule, ()))(args))
    if rule in ("merge", "merge_flag", "merge_summary", "extreme_record"):
        names += [left for left, _ in by_pairs(args)]
    if rule == "merge" and args.get("fallback"):
        names.append(str(args["fallback"]))
    return names


def dataset_names(rule: str, args: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, variable) pairs a rule reads from another dataset (for checks before data)."""
    out: list[tuple[str, str]] = []
    if rule in ("merge", "merge_flag", "merge_summary"):
        ds = str(args["dataset"])
        out += [(ds, right) for _, right in by_pairs(args)]
        out += [(ds, v) for v in names_of("order")(args)]
        if args.get("var"):
            out.append((ds, str(args["var"])))
    elif rule == "supp":
        out += [(str(args["dataset"]), v) for v in ("USUBJID", "QNAM", "QVAL", "IDVAR", "IDVARVAL")]
    elif rule == "extreme_date":
        out += [(str(s["dataset"]), str(s["date"])) for s in args.get("sources") or [] if isinstance(s, dict)]
    elif rule == "extreme_event":
        ds = str(args["dataset"])
        out += [(ds, right) for _, right in by_pairs(args)]
        out += [(ds, v) for v in names_of("order")(args) if v not in EVENT_COLUMNS]
        for ev in args.get("events") or []:
            if isinstance(ev, dict):
                out += [(ds, str(ev["value_of"]))] if ev.get("value_of") else []
                conf = ev.get("confirm")
                out += [(ds, str(conf[k])) for k in ("var", "date") if conf.get(k)] if isinstance(conf, dict) else []
    elif rule == "extreme_record":
        for ev in args.get("events") or []:
            if isinstance(ev, dict) and "dataset" in ev:
                ds = str(ev["dataset"])
                out += [(ds, right) for _, right in by_pairs(args)]
                for spec in _record_sets(ev).values():
                    col = spec if isinstance(spec, str) else spec.get("date") if isinstance(spec, dict) else None
                    out += [(ds, str(col))] if col else []
    elif rule == "tte":
        for kind in ("events", "censors"):
            for s in args.get(kind) or []:
                if isinstance(s, dict) and "dataset" in s:
                    out += [(str(s["dataset"]), str(s[k])) for k in ("date", "seq") if s.get(k)]
    return out


def order_var(item: str) -> str:
    """The variable of an order item: ``VAR`` or ``desc(VAR)``."""
    m = _DESC.match(item.strip())
    return m.group("var") if m else item.strip()


def by_pairs(a: dict[str, Any]) -> list[tuple[str, str]]:
    """`by` as (left, right) variable pairs: "USUBJID" or "RSDTC=LBDTC" (left name = right name)."""
    raw = a.get("by", ["USUBJID"])
    out: list[tuple[str, str]] = []
    for item in raw or []:
        left, _, right = str(item).partition("=")
        out.append((left.strip(), (right or left).strip()))
    return out


#: the columns an ``extreme_event`` order may name besides the dataset's: the event's position (from 1), its value
EVENT_COLUMNS = ("event", "value")
EVENT_KEYS = {"filter", "value", "value_of", "confirm", "description"}
CONFIRM_KEYS = {"var", "date", "values", "min_days", "allowed", "max", "not_after"}
_CONFIRM_REQUIRED = ("var", "date", "values", "min_days", "allowed")


def check_events(args: dict[str, Any]) -> list[str]:
    """Problems with an ``extreme_event`` rule's events (for spec checks before data)."""
    out: list[str] = [] if args.get("events") else ["extreme_event: events must list at least one event"]
    for i, ev in enumerate(args.get("events") or []):
        body = {k: v for k, v in ev.items() if k != "__line__"} if isinstance(ev, dict) else {}
        out += [f"extreme_event events[{i}]: unknown key {k!r} (allowed: {', '.join(sorted(EVENT_KEYS))})"
                for k in sorted(set(body) - EVENT_KEYS)]  # fmt: skip
        if ("value" in body) == ("value_of" in body):
            out.append(f"extreme_event events[{i}]: give exactly one of value, value_of")
        if "confirm" not in body:
            continue
        conf = body["confirm"]
        if not isinstance(conf, dict):
            out.append(f"extreme_event events[{i}]: confirm must be a mapping")
            continue
        keys = set(conf) - {"__line__"}
        out += [f"extreme_event events[{i}] confirm: unknown key {k!r} (allowed: {', '.join(sorted(CONFIRM_KEYS))})"
                for k in sorted(keys - CONFIRM_KEYS)]  # fmt: skip
        out += [f"extreme_event events[{i}] confirm: {k} is required" for k in _CONFIRM_REQUIRED if k not in keys]
        for k in ("values", "allowed"):
            if k in conf and not (isinstance(conf[k], list) and all(isinstance(x, str) for x in conf[k])):
                out.append(f"extreme_event events[{i}] confirm: {k} must be a list of texts")
        if "min_days" in conf and not (isinstance(conf["min_days"], int) and not isinstance(conf["min_days"], bool)):
            out.append(f"extreme_event events[{i}] confirm: min_days must be an integer")
        for k in ("max", "not_after"):
            if k in conf and not isinstance(conf[k], dict):
                out.append(f"extreme_event events[{i}] confirm: {k} must be a mapping")
    return out


RECORD_EVENT_KEYS = {"dataset", "filter", "set"}


def _record_sets(ev: dict[str, Any]) -> dict[str, Any]:
    given = ev.get("set")
    return {k: v for k, v in given.items() if k != "__line__"} if isinstance(given, dict) else {}


def record_set_names(args: dict[str, Any]) -> list[str]:
    """The variables an ``extreme_record`` rule's events set, in the order they first appear."""
    names = [k for ev in args.get("events") or [] if isinstance(ev, dict) for k in _record_sets(ev)]
    return list(dict.fromkeys(names))


def check_records(args: dict[str, Any]) -> list[str]:
    """Problems with an ``extreme_record`` rule's events and order (for spec checks before data)."""
    out: list[str] = [] if args.get("events") else ["extreme_record: events must list at least one event"]
    reserved = {"event", *(right for _, right in by_pairs(args))}
    for i, ev in enumerate(args.get("events") or []):
        body = {k: v for k, v in ev.items() if k != "__line__"} if isinstance(ev, dict) else {}
        out += [f"extreme_record events[{i}]: unknown key {k!r} (allowed: {', '.join(sorted(RECORD_EVENT_KEYS))})"
                for k in sorted(set(body) - RECORD_EVENT_KEYS)]  # fmt: skip
        out += [f"extreme_record events[{i}]: {k} is required" for k in ("dataset", "set") if k not in body]
        if "set" in body and not isinstance(body["set"], dict):
            out.append(f"extreme_record events[{i}]: set must be a mapping variable -> column")
        for name, spec in _record_sets(body).items():
            at = f"extreme_record events[{i}] set {name}"
            if name in reserved:
                out.append(f"{at}: {name} is a key or `event`, it cannot be set")
            if isinstance(spec, dict):
                keys = set(spec) - {"__line__"}
                if len(keys) != 1 or not keys <= {"value", "date"}:
                    out.append(f"{at}: give a column, {{value: constant}} or {{date: column}}")
            elif not isinstance(spec, str):
                out.append(f"{at}: give a column, {{value: constant}} or {{date: column}}")
    known = {"event", *record_set_names(args)}
    for item in args.get("order") or []:
        var = order_var(item) if isinstance(item, str) else str(item.get("var")) if isinstance(item, dict) else ""
        if var not in known:
            out.append(f"extreme_record order: {var or repr(item)} is neither `event` nor a variable the events set")
    return out


TTE_KEYS = {"dataset", "date", "filter", "seq", "description", "srcdom", "srcvar", "cnsr", "evntdesc", "cnsdtdsc"}
TTE_ATTRS: tuple[str, ...] = ENUM_ARGS[("tte_attr", "attr")]


def check_tte_sources(args: dict[str, Any]) -> list[str]:
    """Problems with a tte rule's event/censor source lists (for spec checks before data)."""
    out: list[str] = []
    for kind in ("events", "censors"):
        for i, src in enumerate(args.get(kind) or []):
            if not isinstance(src, dict):
                out.append(f"tte {kind}[{i}] must be a mapping")
                continue
            body = {k: v for k, v in src.items() if k != "__line__"}
            for k in sorted(set(body) - TTE_KEYS):
                out.append(f"tte {kind}[{i}]: unknown key {k!r} (allowed: {', '.join(sorted(TTE_KEYS))})")
            for k in ("dataset", "date"):
                if k not in body:
                    out.append(f"tte {kind}[{i}]: {k} is required")
    return out


def is_descending(item: str) -> bool:
    """Whether an order item is ``desc(VAR)``."""
    return bool(_DESC.match(item.strip()))
