"""The record cross-checks forms.yaml declares, run column-wise over the raw tables of a record set.

The rules are data (:mod:`converter.records.cross_spec`): date order between form fields, a subject's
record in one form requiring one in another, a field required when others hold given codes. A rule whose
form or field the tables lack is skipped (the readers report missing forms and columns). Dates compare at
their common precision (``2013-02`` vs ``2013-02-14`` compares the months). Every problem names the file,
the record (key fields and row), the field, the value and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from converter.records.cross_spec import ANY, CrossChecks, OrderRule, RequiredIfRule, SubjectRule
from converter.records.raw import MAX_PER_RULE, ProblemSink, RawTable, column, present
from converter.records.schema import FormSchema

__all__ = ["run_cross_checks"]

Parsed = Mapping[str, Mapping[Any, Any]]


def run_cross_checks(
    checks: CrossChecks, tables: Mapping[str, RawTable], parsed: Parsed, schema: FormSchema, sink: ProblemSink
) -> None:
    """Every declared cross-check over ``tables``; ``parsed``: the field checks' parsed columns per form."""
    for srule in checks.subjects:
        _check_subjects(srule, tables, schema, sink)
    for rrule in checks.required_if:
        _check_required_if(rrule, tables, parsed, schema, sink)
    for orule in _expand_order_rules(checks.order, schema):
        _check_order(orule, tables, parsed, schema, sink)


# ------------------------------------------------------------------------------------------ conditions


def _when_mask(table: RawTable, when: tuple[tuple[str, tuple[str, ...]], ...]) -> np.ndarray[Any, Any] | None:
    """Rows meeting every condition (a field's raw value among the codes); None when a field is absent."""
    mask = np.ones(len(table.frame), dtype=bool)
    for name, values in when:
        if name not in table.frame.columns:
            return None
        mask &= pd.Series(column(table.frame, name), dtype=object).isin(list(values)).to_numpy()
    return mask


def _describe(when: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    return " and ".join(f"{name} is {' or '.join(values)}" for name, values in when)


# ------------------------------------------------------------------------------------------ subject-in


def _check_subjects(rule: SubjectRule, tables: Mapping[str, RawTable], schema: FormSchema, sink: ProblemSink) -> None:
    target = tables.get(rule.in_form)
    if target is None or "SUBJID" not in target.frame.columns:
        return
    ids = column(target.frame, "SUBJID")
    known = pd.Index(ids[present(ids)])
    sources = [o for o in tables if o != rule.in_form] if rule.form == "*" else [rule.form]
    for oid in sources:
        table = tables.get(oid)
        if table is None or "SUBJID" not in table.frame.columns or oid not in schema.forms:
            continue
        subj = column(table.frame, "SUBJID")
        mask = present(subj) & ~pd.Series(subj, dtype=object).isin(known).to_numpy()
        if rule.when:
            cond = _when_mask(table, rule.when)
            if cond is None:
                continue
            mask &= cond
        rows = np.flatnonzero(mask)
        message = f"{rule.message} ({_describe(rule.when)})" if rule.when else rule.message
        sink.add(table, schema.forms[oid], rows, "SUBJID", subj[rows], rule.rule, message, rule.severity)


# ----------------------------------------------------------------------------------------- required-if


def _check_required_if(
    rule: RequiredIfRule, tables: Mapping[str, RawTable], parsed: Parsed, schema: FormSchema, sink: ProblemSink
) -> None:
    table = tables.get(rule.form)
    if table is None or rule.field not in table.frame.columns:
        return
    cond = _when_mask(table, rule.when)
    if cond is None:
        return
    have = parsed.get(rule.form, {}).get(("present", rule.field))
    if have is None:
        have = present(column(table.frame, rule.field))
    rows = np.flatnonzero(cond & ~np.asarray(have, dtype=bool))
    sink.add(
        table,
        schema.forms[rule.form],
        rows,
        rule.field,
        None,
        rule.rule,
        f"{rule.message} (required when {_describe(rule.when)})",
        rule.severity,
    )


# ------------------------------------------------------------------------------------------ date order


def _subject_dates(table: RawTable, parsed: Mapping[Any, Any], name: str, unique: bool) -> tuple[Any, ...]:
    """(rows, SUBJIDs, precisions, texts) of the valid dates of a field; ``unique``: first per subject."""
    prec, text = parsed[name]
    subj = column(table.frame, "SUBJID")
    rows = np.flatnonzero((prec > 0) & present(subj))
    if unique and len(rows):
        first = ~pd.Index(subj[rows]).duplicated()
        rows = rows[first]
    return rows, subj[rows], prec[rows], text[rows]


def later_than(a_prec: Any, a_text: Any, b_prec: Any, b_text: Any) -> np.ndarray[Any, Any]:
    """Mask: date a after date b at their common precision (both valid)."""
    a_prec, b_prec = np.asarray(a_prec), np.asarray(b_prec)
    a_text, b_text = np.asarray(a_text, dtype="U10"), np.asarray(b_text, dtype="U10")
    common = np.minimum(a_prec, b_prec)
    out = np.zeros(len(common), dtype=bool)
    for p in (4, 7, 10):
        m = common == p
        if m.any():
            out[m] = a_text[m].astype(f"U{p}") > b_text[m].astype(f"U{p}")
    return out


def _expand_order_rules(rules: tuple[OrderRule, ...], schema: FormSchema) -> list[OrderRule]:
    out: list[OrderRule] = []
    explicit = {(r.earlier, r.later) for r in rules if r.earlier != ANY}
    for r in rules:
        if r.earlier != ANY:
            out.append(r)
            continue
        covered = {e for (e, later) in explicit if later == r.later} | {r.later}
        for oid, form in schema.forms.items():
            if oid == r.later[0]:
                continue
            for f in form.fields.values():
                if f.type == "date" and (oid, f.name) not in covered:
                    out.append(OrderRule(r.rule, (oid, f.name), r.later, r.message, "earlier", r.severity))
    return out


def _check_order(
    rule: OrderRule, tables: Mapping[str, RawTable], parsed: Parsed, schema: FormSchema, sink: ProblemSink
) -> None:
    (ef, en), (lf, ln) = rule.earlier, rule.later
    if ef not in tables or lf not in tables or en not in parsed.get(ef, {}) or ln not in parsed.get(lf, {}):
        return
    if ef == lf:
        table = tables[ef]
        (ep, et), (lp, lt) = parsed[ef][en], parsed[ef][ln]
        both = (ep > 0) & (lp > 0)
        bad = np.flatnonzero(both)[later_than(ep[both], et[both], lp[both], lt[both])]
        name = en if rule.report == "earlier" else ln
        vals = [f"{et[i]} > {lt[i]}" for i in bad[:MAX_PER_RULE]]
        sink.add(table, schema.forms[ef], bad, name, vals, rule.rule, rule.message, rule.severity)
        return
    if "SUBJID" not in tables[ef].frame.columns or "SUBJID" not in tables[lf].frame.columns:
        return
    # join on SUBJID: the non-repeating side (one date per subject) is looked up from the other side
    one_is_later = not schema.forms[lf].repeating or schema.forms[ef].repeating
    e_rows, e_subj, e_prec, e_text = _subject_dates(tables[ef], parsed[ef], en, unique=not one_is_later)
    l_rows, l_subj, l_prec, l_text = _subject_dates(tables[lf], parsed[lf], ln, unique=one_is_later)
    if len(e_rows) == 0 or len(l_rows) == 0:
        return
    if one_is_later:
        pos = pd.Index(l_subj).get_indexer(e_subj)
        ei = np.flatnonzero(pos >= 0)
        li = pos[ei]
    else:
        pos = pd.Index(e_subj).get_indexer(l_subj)
        li = np.flatnonzero(pos >= 0)
        ei = pos[li]
    bad = later_than(e_prec[ei], e_text[ei], l_prec[li], l_text[li])
    ei, li = ei[bad], li[bad]
    side, form_oid, name = ("e", ef, en) if rule.report == "earlier" else ("l", lf, ln)
    rows = e_rows[ei] if side == "e" else l_rows[li]
    vals = [f"{a} > {b}" for a, b in zip(e_text[ei[:MAX_PER_RULE]], l_text[li[:MAX_PER_RULE]], strict=True)]
    other = f"{lf}.{ln}" if side == "e" else f"{ef}.{en}"
    sink.add(
        tables[form_oid],
        schema.forms[form_oid],
        rows,
        name,
        vals,
        rule.rule,
        f"{rule.message} ({other})",
        rule.severity,
    )
