"""De-identification rules as data: load ``mappings/deid/sdtm.yaml`` and check it before any data is read.

The file's header documents the closed vocabulary. Every rule is parsed into a :class:`Rule`; a key or argument
outside the vocabulary is a :class:`~converter.errors.SpecError` naming file and line. :func:`rule_for` finds the
rule of one variable of one dataset (dataset-specific first, then ``common``, then ``--`` suffix patterns); a
variable with none stops the run, so a new variable can never pass unreviewed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.spec.yamlines import line_of, load_yaml_lines, strip_lines

__all__ = ["CLASSES", "DeidRules", "Rule", "load_deid_rules", "rule_for"]

CLASSES = ("direct", "quasi", "none")
_SIMPLE = ("keep", "remove", "offset", "study_offset", "year")
_RECODE = ("subject", "site")


@dataclass(frozen=True)
class Rule:
    """One rule: ``kind`` in keep/remove/offset/year/recode/copy/generalise/cap_age/by, with its arguments."""

    kind: str
    arg: Any = None  # recode: subject|site; copy: VAR; generalise: value; cap_age: (over, to)
    by: str | None = None  # by: the deciding variable
    cases: Mapping[str, Rule] = field(default_factory=dict)
    otherwise: Rule | None = None


@dataclass(frozen=True)
class VariableRule:
    cls: str
    rule: Rule
    why: str
    line: int


@dataclass(frozen=True)
class DeidRules:
    file: Path
    standard: str
    k: int
    offset_min: int
    offset_max: int
    common: Mapping[str, VariableRule]
    datasets: Mapping[str, Mapping[str, VariableRule]]


def _parse_rule(node: Any, where: str, errors: list[str], nested: bool = False) -> Rule | None:
    if isinstance(node, str):
        if node in _SIMPLE:
            return Rule(node)
        errors.append(f"{where}: unknown rule {node!r} (one of {', '.join(_SIMPLE)}, or a mapping)")
        return None
    if not isinstance(node, dict):
        errors.append(f"{where}: a rule is a name or a mapping, not {type(node).__name__}")
        return None
    body = strip_lines(node)
    if "by" in body and not nested:
        extra = set(body) - {"by", "rules", "else"}
        if extra or not isinstance(body.get("rules"), dict) or not isinstance(body["by"], str):
            errors.append(f"{where}: `by` takes a variable name and `rules:` (a mapping), optionally `else:`")
            return None
        cases = {}
        for value, sub in node["rules"].items():
            if value == "__line__":
                continue
            parsed = _parse_rule(sub, f"{where} ({body['by']} = {value})", errors, nested=True)
            if parsed is not None:
                cases[str(value)] = parsed
        otherwise = _parse_rule(node["else"], f"{where} (else)", errors, nested=True) if "else" in node else None
        return Rule("by", by=body["by"], cases=cases, otherwise=otherwise)
    if len(body) != 1:
        errors.append(f"{where}: a rule mapping has exactly one key, got {sorted(body)}")
        return None
    ((kind, arg),) = body.items()
    if kind == "recode" and arg in _RECODE:
        return Rule("recode", arg)
    if kind == "copy" and isinstance(arg, str) and arg:
        return Rule("copy", arg)
    if kind == "generalise" and isinstance(arg, dict) and set(arg) == {"to"}:
        return Rule("generalise", arg["to"])
    if (kind == "cap_age" and isinstance(arg, dict) and set(arg) == {"over", "to"}
            and isinstance(arg["over"], int) and isinstance(arg["to"], int) and arg["to"] >= arg["over"]):  # fmt: skip
        return Rule("cap_age", (int(arg["over"]), int(arg["to"])))
    errors.append(f"{where}: invalid rule {body!r} (recode: subject|site, copy: VAR, generalise: {{to: V}}, "
                  "cap_age: {over: N, to: M}, by: VAR)")  # fmt: skip
    return None


def _variables(node: Any, file: Path, section: str, errors: list[str]) -> dict[str, VariableRule]:
    out: dict[str, VariableRule] = {}
    if not isinstance(node, dict):
        errors.append(f"{file}: `{section}` must be a mapping of variable -> rule")
        return out
    for name, spec in node.items():
        if name == "__line__":
            continue
        line = line_of(spec) or line_of(node)
        where = f"{file}:{line}: {section}.{name}"
        if not isinstance(spec, dict) or set(strip_lines(spec)) != {"class", "rule", "why"}:
            errors.append(f"{where}: needs exactly `class`, `rule` and `why`")
            continue
        if spec["class"] not in CLASSES:
            errors.append(f"{where}: class must be one of {', '.join(CLASSES)}")
            continue
        if not str(spec["why"] or "").strip():
            errors.append(f"{where}: `why` must say why the rule is right")
            continue
        rule = _parse_rule(spec["rule"], where, errors)
        if rule is not None:
            out[str(name)] = VariableRule(spec["class"], rule, str(spec["why"]), line)
    return out


def load_deid_rules(file: Path, k: int | None = None) -> DeidRules:
    """The rules of ``file``, checked; ``k`` overrides the file's ``small_cell_k``."""
    if not file.is_file():
        raise SpecError([f"{file}: no de-identification rules (expected mappings/deid/sdtm.yaml)"])
    doc = load_yaml_lines(file)
    errors: list[str] = []
    if not isinstance(doc, dict):
        raise SpecError([f"{file}: must be a mapping"])
    allowed = {"standard", "small_cell_k", "offset_days", "common", "datasets", "__line__"}
    for key in set(doc) - allowed:
        errors.append(f"{file}: unknown key {key!r} (allowed: {', '.join(sorted(allowed - {'__line__'}))})")
    offs = strip_lines(doc.get("offset_days") or {})
    lo, hi = offs.get("min"), offs.get("max")
    if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi):
        errors.append(f"{file}: offset_days needs whole numbers 1 <= min <= max (a zero offset would keep a date)")
        lo, hi = 1, 1
    kk = k if k is not None else doc.get("small_cell_k", 5)
    if not isinstance(kk, int) or kk < 1:
        errors.append(f"{file}: small_cell_k must be a whole number >= 1")
        kk = 1
    common = _variables(doc.get("common") or {}, file, "common", errors)
    datasets: dict[str, dict[str, VariableRule]] = {}
    for ds, node in (doc.get("datasets") or {}).items():
        if ds != "__line__":
            datasets[str(ds).upper()] = _variables(node, file, f"datasets.{ds}", errors)
    if errors:
        raise SpecError(errors)
    return DeidRules(file, str(doc.get("standard", "")), kk, lo, hi, common, datasets)


def rule_for(rules: DeidRules, dataset: str, variable: str) -> VariableRule | None:
    """The rule of ``dataset.variable``: the dataset's own, then ``common``, then a ``--`` suffix pattern of the
    dataset's prefix (AESTDTC matches ``--STDTC`` in AE and in SUPPAE's parent AE)."""
    own = rules.datasets.get(dataset.upper(), {})
    if variable in own:
        return own[variable]
    if variable in rules.common:
        return rules.common[variable]
    prefix = dataset.upper()[:2]
    if variable.startswith(prefix):
        pattern = "--" + variable[len(prefix):]
        return own.get(pattern) or rules.common.get(pattern)
    return None
