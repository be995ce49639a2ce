"""The closed rule vocabularies of the mapping specs: names, arguments, and what each reads.

Two registries, one per standard: :data:`SDTM_RULES` for ``mappings/sdtm`` specs and
:data:`converter.spec.adam_rules.ADAM_RULES` for ``mappings/adam`` specs (the rules both share, such as ``field``,
``case`` or ``seq``, are in both). A spec's ``standard`` (SDTMIG / ADaMIG) picks its vocabulary
(:func:`converter.spec.vocabulary.vocabulary`); a rule of the other standard is an unknown rule there.
``docs/spec-reference.md`` is generated from the registries (``python -m converter.spec.reference``).

A spec names a rule and its arguments (``rule: {ct: {field: SEX, codelist: SEX}}``); a scalar stands for the
rule's first argument (``rule: {iso_date: AESTDT}``). This module only *declares* the vocabulary so specs can be
checked before any data is read; the implementations live with the stage that runs them
(:mod:`converter.sdtm.algorithms`, :mod:`converter.adam.algorithms`) and are looked up by name.

Phases: ``row`` rules compute a column from the source record (and joined forms); ``dataset`` rules run after
all sources are stacked and see the whole (per-subject) target frame: --SEQ, --DY, EPOCH, baseline flags.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: argument kinds: what a spec may give for an argument (``enum:a|b`` is one of the listed texts)
KINDS: dict[str, str] = {
    "str": "a text",
    "strs": "a list of texts",
    "scalar": "a text, number, true/false or null",
    "map": "a mapping",
    "list": "a list",
    "int": "an integer",
    "expr": "an expression of the closed expression language",
    "cases": "a list of [expression, value] pairs",
    "sources": "a list of mappings {dataset, date, filter (an expression), ...}",
    "enum": "one of the listed texts",
}


@dataclass(frozen=True)
class RuleDef:
    name: str
    phase: str  # "row" | "dataset"
    args: dict[str, str]  # arg -> kind; a trailing "?" marks an optional argument
    doc: str
    # names of source fields the rule reads, given its args (for checking specs against forms.yaml)
    fields: Callable[[dict[str, Any]], list[str]] = lambda a: []
    # names of target variables the rule reads (must be earlier in the dataset)
    targets: Callable[[dict[str, Any]], list[str]] = lambda a: []

    @property
    def first_arg(self) -> str:
        return next(iter(self.args)).rstrip("?")


def _f(key: str) -> Callable[[dict[str, Any]], list[str]]:
    return lambda a: [a[key]] if isinstance(a.get(key), str) else list(a.get(key) or [])


def _template_fields(a: dict[str, Any]) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(str(a["template"])) if f]


SDTM_RULES: dict[str, RuleDef] = {}
#: the rules of the SDTM vocabulary that ADaM specs may use as well
SHARED = ("field", "map", "assign", "template", "flag", "case", "lookup", "seq", "copy")


def _add(rule: RuleDef) -> None:
    SDTM_RULES[rule.name] = rule


# --- row rules: from the source record -------------------------------------------------------------------
_add(RuleDef("field", "row", {"field": "str"}, "the collected value of a source field", _f("field")))
_add(
    RuleDef(
        "ct",
        "row",
        {"field": "str", "codelist": "str"},
        "a collected value through a controlled-terminology codelist (collected value, decode or synonym -> "
        "submission value); outside a non-extensible codelist is an error",
        _f("field"),
    )
)
_add(
    RuleDef(
        "map",
        "row",
        {"field": "str", "values": "map", "default?": "scalar"},
        "a collected value through a value map stated in the spec; unmapped values are an error unless a "
        "default is given",
        _f("field"),
    )
)
_add(RuleDef("assign", "row", {"value": "scalar"}, "a constant (Assigned/Protocol origin)"))
_add(
    RuleDef(
        "iso_date",
        "row",
        {"field": "str"},
        "an ISO 8601 date from a date field; partial dates (YYYY, YYYY-MM) are kept as collected",
        _f("field"),
    )
)
_add(
    RuleDef(
        "iso_datetime",
        "row",
        {"date": "str", "time?": "str"},
        "an ISO 8601 datetime from a date and an optional time field",
        lambda a: [a["date"]] + ([a["time"]] if a.get("time") else []),
    )
)
_add(
    RuleDef(
        "usubjid",
        "row",
        {"field": "str", "study?": "str"},
        "the unique subject identifier: STUDYID-SUBJID (study from the forms schema unless given)",
        _f("field"),
    )
)
_add(
    RuleDef(
        "template",
        "row",
        {"template": "str"},
        "a text built from fields: 'COURSE {COURSE}'; empty when any field used is missing",
        _template_fields,
    )
)
_add(
    RuleDef(
        "flag",
        "row",
        {"field": "str", "value?": "scalar"},
        "'Y' where the field is present (or equals value), else null",
        _f("field"),
    )
)
_add(
    RuleDef(
        "case",
        "row",
        {"when": "cases", "else?": "scalar"},
        "the value of the first [condition, value] pair whose condition holds (closed expression language, over "
        "source fields and earlier variables), else `else` (default null)",
    )
)
_add(
    RuleDef(
        "subject_agg",
        "row",
        {"form": "str", "field": "str", "fn": "enum:min|max|count|first|last", "where?": "expr"},
        "a per-subject aggregate (min, max, count, first, last) of another form's field, over the records "
        "meeting `where` (an expression over that form's fields)",
    )
)
_add(
    RuleDef(
        "lookup",
        "row",
        {"dataset": "str", "var": "str", "by?": "strs"},
        "a variable merged from an already built target dataset by subject (or by the given keys)",
    )
)
_add(
    RuleDef(
        "derivation",
        "row",
        {"name": "str", "args?": "map"},
        "a named derivation where no generic rule fits (registered in the stage's derivations module)",
    )
)

# --- dataset rules: after stacking, over the target frame ----------------------------------------------------
_add(
    RuleDef(
        "seq",
        "dataset",
        {"order": "strs", "by?": "strs"},
        "a sequence number 1..n per subject (or per `by`), rows ordered by `order`",
        targets=_f("order"),
    )
)
_add(
    RuleDef(
        "study_day",
        "dataset",
        {"dtc": "str", "ref?": "str"},
        "study day of a --DTC relative to DM.RFSTDTC (or `ref`), no day 0; null for partial dates",
        targets=_f("dtc"),
    )
)
_add(
    RuleDef(
        "epoch",
        "dataset",
        {"dtc": "str", "start?": "str", "end?": "str", "map?": "map"},
        "EPOCH from a --DTC against the subject's reference dates (`start`/`end` as DATASET.VAR, default "
        "DM.RFXSTDTC and DM.RFXENDTC): SCREENING before start, TREATMENT up to end, FOLLOW-UP after",
        targets=_f("dtc"),
    )
)
_add(
    RuleDef(
        "baseline_flag",
        "dataset",
        {"by": "strs", "dtc": "str", "value": "str", "ref?": "str"},
        "'Y' on the last non-missing result on or before the reference start date, per subject and `by`",
        targets=lambda a: [*a["by"], a["dtc"], a["value"]],
    )
)
_add(
    RuleDef(
        "copy",
        "dataset",
        {"var": "str"},
        "the value of another target variable (e.g. --STRESC from --ORRES)",
        targets=_f("var"),
    )
)


#: the SDTM vocabulary under its historical name
RULES = SDTM_RULES


def normalise_args(rule: RuleDef, raw: Any) -> dict[str, Any]:
    """Turn the spec's argument form (scalar shorthand or mapping) into a dict of named arguments."""
    if isinstance(raw, dict):
        return dict(raw)
    return {rule.first_arg: raw}


def check_args(rule: RuleDef, args: dict[str, Any]) -> list[str]:
    """Problems with a rule's arguments, as messages (empty when fine)."""
    problems: list[str] = []
    declared = {k.rstrip("?"): k.endswith("?") for k in rule.args}
    for name in args:
        if name not in declared:
            problems.append(f"rule {rule.name}: unknown argument {name!r} (allowed: {', '.join(declared)})")
    for name, optional in declared.items():
        if name not in args:
            if not optional:
                problems.append(f"rule {rule.name}: missing argument {name!r}")
            continue
        kind = rule.args[name + ("?" if optional else "")]
        value = args[name]
        if kind.startswith("enum:"):
            allowed = kind[5:].split("|")
            if value not in allowed:
                problems.append(f"rule {rule.name}: {name} must be one of {', '.join(allowed)} (got {value!r})")
            continue
        ok = {
            "str": isinstance(value, str),
            "strs": isinstance(value, list) and all(isinstance(v, str) for v in value),
            "scalar": value is None or isinstance(value, str | int | float | bool),
            "map": isinstance(value, dict),
            "list": isinstance(value, list),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "expr": isinstance(value, str),
            "cases": isinstance(value, list)
            and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value),
            "sources": isinstance(value, list) and all(isinstance(p, dict) for p in value),
        }[kind]
        if not ok:
            problems.append(f"rule {rule.name}: argument {name!r} must be {KINDS[kind]}, got {type(value).__name__}")
    return problems


#: parses one expression: (text, what it is for the message, argument name, index in a list argument or None)
Parse = Callable[[str, str, str, "int | None"], Any]


def compile_expressions(rule: RuleDef, args: dict[str, Any], parse: Parse) -> dict[str, Any]:
    """``args`` with every expression argument parsed once by ``parse`` (a checked
    :class:`~converter.spec.expr.Expr`): ``expr`` arguments, the conditions of ``cases``, the ``filter`` of
    each of ``sources``. Call after :func:`check_args` found no problem."""
    out = dict(args)
    for declared, kind in rule.args.items():
        key = declared.rstrip("?")
        value = out.get(key)
        if kind == "expr" and isinstance(value, str):
            out[key] = parse(value, f"rule {rule.name} {key}", key, None)
        elif kind == "cases" and isinstance(value, list):
            out[key] = [[parse(p[0], f"rule {rule.name} {key}[{i}]", key, i), p[1]] for i, p in enumerate(value)]
        elif kind == "sources" and isinstance(value, list):
            out[key] = [
                {**s, "filter": parse(s["filter"], f"rule {rule.name} {key}[{i}] filter", key, i)}
                if isinstance(s.get("filter"), str)
                else s
                for i, s in enumerate(value)
            ]
    return out
