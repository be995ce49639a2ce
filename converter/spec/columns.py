"""Which columns each expression of a dataset spec sees, and the expressions that read a column it will not have.

Checked before any data is read (:func:`converter.spec.loader.check_specs`), with the spec's file and line:

- a source's ``where``: the fields of its form and joined forms, the variables of its ``dataset:`` (an input
  dataset's columns, or the variables of a spec built before), or the keys of its inline ``rows``;
- ``case`` conditions and ``compute`` expressions: the source columns and every variable before this one;
- ``subject_agg`` ``where``: the fields of the rule's form;
- a ``filter`` of ``merge``/``merge_flag``/``merge_summary`` and of the ``sources``/``events``/``censors`` of
  ``extreme_date``/``tte``: the variables of the dataset named beside it;
- ``filter`` of ``extreme_event`` and of its ``events``: the variables of the rule's ``dataset``;
- ``extreme_flag`` ``filter``, ``relative_flag`` ``condition``: every variable of the dataset but the flag itself.

Where the columns of a dataset are not known (an input dataset named without its columns), its expressions are
checked when it is known, i.e. when the data is read (the ADaM loader passes the SDTM columns).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from converter.spec.expr import Expr, check_columns
from converter.spec.form_fields import FormsIndex
from converter.spec.model import DatasetSpec, SourceSpec

__all__ = ["expression_column_problems", "source_columns"]

_DATASET_FILTERS = ("merge", "merge_flag", "merge_summary")
_SOURCE_LISTS = {"extreme_date": ("sources",), "tte": ("events", "censors")}


def source_columns(
    src: SourceSpec, forms: FormsIndex | None, datasets: Mapping[str, Collection[str]]
) -> set[str] | None:
    """The columns the rows of a source have (bare names), or None when unknown."""
    if src.rows:
        return {str(k) for row in src.rows for k in row}
    if src.dataset is not None:
        cols = datasets.get(src.dataset)
        return set(cols) if cols is not None else None
    if src.form is None or forms is None or src.form not in forms.forms:
        return None
    out: set[str] = {"SUBJID"}
    for f in (src.form, *src.join):
        if f in forms.forms:
            out |= set(forms.forms[f].fields)
    return out


def _check(expr: Any, columns: Collection[str] | None, where: str, out: list[str]) -> None:
    if isinstance(expr, Expr) and columns is not None:
        out.extend(check_columns(expr, columns, where=where))


def expression_column_problems(
    spec: DatasetSpec, forms: FormsIndex | None, datasets: Mapping[str, Collection[str]]
) -> list[str]:
    """Messages for every column an expression of ``spec`` reads that its rows will not have.

    ``datasets``: the columns of every dataset the spec may read (input datasets and specs built before)."""
    out: list[str] = []
    cols = {s.id: source_columns(s, forms, datasets) for s in spec.sources}
    for s in spec.sources:
        _check(s.where, cols[s.id], f"source {s.id} where", out)
    all_vars = [v.name for v in spec.variables]
    earlier: set[str] = set()
    for v in spec.variables:
        for sid, rule in v.rules.items():
            a = rule.args
            where = f"variable {v.name} rule {rule.name}"
            if rule.name in ("case", "compute"):
                exprs = [p[0] for p in a.get("when") or ()] if rule.name == "case" else [a.get("expr")]
                for s in spec.sources:
                    if sid in ("*", s.id) and cols[s.id] is not None:
                        for e in exprs:
                            _check(e, (cols[s.id] or set()) | earlier, f"{where} (source {s.id})", out)
            elif rule.name == "subject_agg" and forms is not None and a.get("form") in forms.forms:
                _check(a.get("where"), {"SUBJID", *forms.forms[a["form"]].fields}, where, out)
            elif rule.name in _DATASET_FILTERS:
                _check(a.get("filter"), datasets.get(str(a.get("dataset"))), where, out)
            elif rule.name in _SOURCE_LISTS:
                for key in _SOURCE_LISTS[rule.name]:
                    for i, item in enumerate(a.get(key) or ()):
                        if isinstance(item, dict):
                            ds = datasets.get(str(item.get("dataset")))
                            _check(item.get("filter"), ds, f"{where} {key}[{i}]", out)
            elif rule.name == "extreme_event":
                ds = datasets.get(str(a.get("dataset")))
                _check(a.get("filter"), ds, where, out)
                for i, item in enumerate(a.get("events") or ()):
                    if isinstance(item, dict):
                        _check(item.get("filter"), ds, f"{where} events[{i}]", out)
            elif rule.name in ("extreme_flag", "relative_flag"):
                _check(a.get("filter" if rule.name == "extreme_flag" else "condition"),
                       [n for n in all_vars if n != v.name], where, out)  # fmt: skip
        earlier.add(v.name)
    return list(dict.fromkeys(out))
