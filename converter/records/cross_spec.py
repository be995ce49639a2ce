"""The record cross-checks a forms.yaml declares (its ``cross_checks:`` list), parsed and validated.

A cross-check is a rule across fields or forms, run after the field checks. Each entry has ``rule`` (the
name problems carry), ``check`` (one of :data:`CHECK_KINDS`), ``message`` and optional ``severity``
(``error``, the default, or ``warning``). The vocabulary is closed:

``date-order``   ``earlier: FORM.FIELD`` must not come after ``later: FORM.FIELD`` (dates compared at their
                 common precision). Two fields of one form compare within each record; fields of two forms
                 join on SUBJID. ``earlier: "*"`` stands for every date field of every other form that no
                 other rule already orders against ``later``. ``report: earlier | later`` says whose record
                 and field the problem names (default ``earlier``).
``subject-in``   every subject with a record in ``form`` (``"*"``: every other form) has one in ``in``;
                 optional ``when: {FIELD: [codes]}`` limits it to the records of ``form`` with those values.
``required-if``  ``field: FORM.FIELD`` is required in the records whose ``when: {FIELD: [codes]}`` holds
                 (fields of the same form).

With no ``cross_checks:`` section, none run. Every error names the file and the line of the entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converter.spec.yamlines import LINE_KEY, line_of

__all__ = [
    "ANY",
    "CHECK_KINDS",
    "CrossChecks",
    "OrderRule",
    "RequiredIfRule",
    "SubjectRule",
    "at",
    "parse_cross_checks",
]

CHECK_KINDS = ("date-order", "subject-in", "required-if")
SEVERITIES = ("error", "warning")
#: ``earlier: "*"`` / ``form: "*"``: every other date field / form
ANY = ("*", "*")

_KEYS = {
    "date-order": ({"earlier", "later"}, {"report"}),
    "subject-in": ({"form", "in"}, {"when"}),
    "required-if": ({"field", "when"}, set()),
}
_COMMON = {"rule", "check", "message", "severity"}


@dataclass(frozen=True)
class OrderRule:
    """``earlier`` must not come after ``later``; both ``(form, field)``, ``earlier`` may be :data:`ANY`."""

    rule: str
    earlier: tuple[str, str]
    later: tuple[str, str]
    message: str
    report: str = "earlier"
    severity: str = "error"


@dataclass(frozen=True)
class SubjectRule:
    """Every subject of ``form`` (``"*"``: every other form) whose record meets ``when`` has a record in ``in_form``."""

    rule: str
    form: str
    in_form: str
    message: str
    when: tuple[tuple[str, tuple[str, ...]], ...] = ()
    severity: str = "error"


@dataclass(frozen=True)
class RequiredIfRule:
    """``field`` of ``form`` is required in the records whose ``when`` holds (all its conditions)."""

    rule: str
    form: str
    field: str
    when: tuple[tuple[str, tuple[str, ...]], ...]
    message: str
    severity: str = "error"


@dataclass(frozen=True)
class CrossChecks:
    order: tuple[OrderRule, ...] = ()
    subjects: tuple[SubjectRule, ...] = ()
    required_if: tuple[RequiredIfRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.order or self.subjects or self.required_if)


def parse_cross_checks(
    raw: Any, path: Path, fields: Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]]
) -> tuple[CrossChecks, list[str]]:
    """Parse forms.yaml's ``cross_checks:`` list (its mappings carrying ``__line__``) against the forms.

    ``fields``: per form, per field, ``(type, codes)``. Returns the rules and every problem found, each as
    ``file:line: cross_checks[i] (rule): ...``; the caller raises them together with its own.
    """
    errors: list[str] = []
    if raw is None:
        return CrossChecks(), errors
    if not isinstance(raw, list):
        return CrossChecks(), [f"{at(path, line_of(raw))}: cross_checks: expected a list of checks"]
    order: list[OrderRule] = []
    subjects: list[SubjectRule] = []
    required: list[RequiredIfRule] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        line = line_of(entry)
        where = f"{at(path, line)}: cross_checks[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where}: expected a mapping with rule, check and message")
            continue
        err = _Errors(where, str(entry.get("rule", "")), errors)
        kind = entry.get("check")
        if kind not in CHECK_KINDS:
            err(f"check {kind!r} is not one of {', '.join(CHECK_KINDS)}")
            continue
        needed, optional = _KEYS[kind]
        keys = set(entry) - {LINE_KEY}
        if missing := sorted((needed | {"rule", "message"}) - keys):
            err(f"missing {', '.join(missing)}")
        if unknown := sorted(keys - needed - optional - _COMMON):
            err(f"unknown keys {unknown} for a {kind} check")
        rule = entry.get("rule")
        if not isinstance(rule, str) or not rule or not all(c.isalnum() or c == "-" for c in rule):
            err(f"rule {rule!r}: a name of letters, digits and '-'")
            continue
        if rule in seen:
            err(f"rule {rule!r} declared twice")
        seen.add(rule)
        severity = entry.get("severity", "error")
        if severity not in SEVERITIES:
            err(f"severity {severity!r} is not error or warning")
        message = str(entry.get("message", rule))
        if missing:
            continue
        if kind == "date-order":
            later = _ref(entry["later"], fields, err, "later", date=True)
            earlier = ANY if entry["earlier"] == "*" else _ref(entry["earlier"], fields, err, "earlier", date=True)
            report = entry.get("report", "earlier")
            if report not in ("earlier", "later"):
                err(f"report {report!r} is not earlier or later")
            if earlier is not None and later is not None:
                order.append(OrderRule(rule, earlier, later, message, str(report), str(severity)))
        elif kind == "subject-in":
            src, dst = str(entry["form"]), str(entry["in"])
            for role, oid in (("form", src), ("in", dst)):
                if oid not in fields and not (role == "form" and oid == "*"):
                    err(f"{role}: {oid!r} is not a form of this file")
            when = _when(entry.get("when"), fields.get(src, {}), err) if src != "*" else ()
            if src == "*" and entry.get("when") is not None:
                err("when needs one form, not '*'")
            if src == dst:
                err("form and in are the same form")
            subjects.append(SubjectRule(rule, src, dst, message, when or (), str(severity)))
        else:
            ref = _ref(entry["field"], fields, err, "field", date=False)
            if ref is not None:
                when = _when(entry["when"], fields[ref[0]], err)
                if when is not None and not when:
                    err("when: at least one condition")
                if when:
                    required.append(RequiredIfRule(rule, ref[0], ref[1], when, message, str(severity)))
    return CrossChecks(tuple(order), tuple(subjects), tuple(required)), errors


def at(path: Path, line: int) -> str:
    """``file:line`` (``file`` alone when the line is not known)."""
    return f"{path}:{line}" if line else str(path)


class _Errors:
    def __init__(self, where: str, rule: str, errors: list[str]) -> None:
        self.head = f"{where}{f' ({rule})' if rule else ''}"
        self.errors = errors

    def __call__(self, text: str) -> None:
        self.errors.append(f"{self.head}: {text}")


def _ref(
    text: Any, fields: Mapping[str, Mapping[str, tuple[str, tuple[str, ...]]]], err: _Errors, role: str, date: bool
) -> tuple[str, str] | None:
    form, dot, name = str(text).partition(".")
    if not dot or form not in fields or name not in fields[form]:
        err(f"{role}: {text!r} is not FORM.FIELD of a form and field of this file")
        return None
    if date and fields[form][name][0] != "date":
        err(f"{role}: {text} is not a date field")
        return None
    return form, name


def _when(
    raw: Any, form_fields: Mapping[str, tuple[str, tuple[str, ...]]], err: _Errors
) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        err("when: expected {FIELD: [values]}")
        return None
    out: list[tuple[str, tuple[str, ...]]] = []
    for name, values in raw.items():
        if name == LINE_KEY:
            continue
        if name not in form_fields:
            err(f"when: {name!r} is not a field of the form")
            continue
        vals = values if isinstance(values, list) else [values]
        if not vals or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in vals):
            err(f"when: {name}: expected a list of values")
            continue
        codes = form_fields[name][1]
        if bad := [str(v) for v in vals if codes and str(v) not in codes]:
            err(f"when: {name}: {bad} are not codes of the field")
        out.append((str(name), tuple(str(v) for v in vals)))
    return tuple(out)
