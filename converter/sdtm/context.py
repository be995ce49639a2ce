"""What a rule implementation sees, and the registry of implementations.

Row rules take a :class:`RowContext` (the source rows of one spec source, the columns computed so far) and
return a Series aligned to the source rows. Dataset rules take a :class:`DatasetContext` (the stacked target
frame) and return a Series aligned to it. The implementations register themselves by rule name
(:func:`row_rule`, :func:`dataset_rule`): the SDTM rules in :mod:`converter.sdtm.algorithms`, the ADaM rules in
:mod:`converter.adam`; the vocabularies they implement are declared in :mod:`converter.spec.rules` and
:mod:`converter.spec.adam_rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import MissingColumnError, Problem
from converter.frames import text_column
from converter.records.model import Records
from converter.records.schema import FormSchema
from converter.spec.model import DatasetSpec, SourceSpec, Terminology, VariableSpec
from converter.spec.vocabulary import rule_def

__all__ = [
    "DATASET",
    "ROW",
    "DatasetContext",
    "DatasetFn",
    "FrameMemo",
    "RowContext",
    "RowFn",
    "as_text",
    "dataset_rule",
    "full_dates",
    "missing_column",
    "row_rule",
]


@dataclass
class RowContext:
    frame: pd.DataFrame  # source rows: bare field names plus FORM.FIELD for joined forms
    labels: Any  # RecordLabels: .iloc[i] gives a readable label of row i, for problems ("SUBJID=1001 AESPID=3")
    file: str  # where the rows came from (form name / file), for problems
    records: Records
    built: dict[str, pd.DataFrame]
    ct: Terminology
    schema: FormSchema | None
    spec: DatasetSpec
    source: SourceSpec
    var: VariableSpec
    target: dict[str, pd.Series]  # target columns computed so far for these rows
    problems: list[Problem] = field(default_factory=list)
    # what the rules of one build share: results that depend on the records alone (a form's per-subject or
    # per-group aggregates), made once per build_all for every variable that asks for the same
    memo: dict[Any, Any] = field(default_factory=dict)

    def col(self, name: str) -> pd.Series:
        if name in self.frame.columns:
            return self.frame[name]
        raise missing_column(self.spec, self.var, f"source field {name}, which source {self.source.id} does not have")

    def subject_ids(self) -> pd.Series:
        return self.col("SUBJID")


class FrameMemo:
    """What the dataset rules of one dataset share: results read from columns of the frame being built (the
    dates of a --DTC column, the reference dates of its subjects), each kept until one of the columns it read is
    written (:meth:`written`, called by the build after each dataset rule)."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[frozenset[str], Any]] = {}

    def get(self, key: Hashable, reads: frozenset[str], make: Callable[[], Any]) -> Any:
        """The result kept under ``key``, made by ``make()`` (reading the columns ``reads``) when there is none."""
        got = self._entries.get(key)
        if got is None:
            got = self._entries[key] = (reads, make())
        return got[1]

    def written(self, column: str) -> None:
        """``column`` of the frame was replaced: every result that read it is dropped."""
        self._entries = {k: e for k, e in self._entries.items() if column not in e[0]}


@dataclass
class DatasetContext:
    frame: pd.DataFrame  # the stacked target frame
    built: dict[str, pd.DataFrame]
    ct: Terminology
    spec: DatasetSpec
    var: VariableSpec
    problems: list[Problem] = field(default_factory=list)
    memo: FrameMemo = field(default_factory=FrameMemo)  # shared by the dataset rules of one frame


def missing_column(spec: DatasetSpec, var: VariableSpec, what: str) -> MissingColumnError:
    """The error of a rule of ``spec``'s ``var`` that reads ``what`` (a column its input lacks), naming the spec
    file and the variable's line."""
    where = f"{spec.path.name}:{var.line}: " if spec.path is not None and var.line else ""
    return MissingColumnError([f"{where}{spec.name}.{var.name} reads {what}"])


RowFn = Callable[[RowContext, dict[str, Any]], pd.Series]
DatasetFn = Callable[[DatasetContext, dict[str, Any]], pd.Series]
ROW: dict[str, RowFn] = {}
DATASET: dict[str, DatasetFn] = {}


def row_rule(name: str) -> Callable[[RowFn], RowFn]:
    def deco(fn: RowFn) -> RowFn:
        assert rule_def(name).phase == "row", name
        ROW[name] = fn
        return fn

    return deco


def dataset_rule(name: str) -> Callable[[DatasetFn], DatasetFn]:
    def deco(fn: DatasetFn) -> DatasetFn:
        assert rule_def(name).phase == "dataset", name
        DATASET[name] = fn
        return fn

    return deco


# --- helpers ---------------------------------------------------------------------------------------------------
def as_text(col: pd.Series) -> pd.Series:
    """Any column as text: numbers as their shortest exact text (12.0 -> "12"), missing -> None."""
    return text_column(col)


def full_dates(col: pd.Series) -> pd.Series:
    """ISO 8601 text -> datetime64 for complete dates (YYYY-MM-DD...), NaT for partial or missing.

    Each distinct text is parsed once (dates repeat a lot across rows).
    """
    codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=True)
    heads = np.array([str(u)[:10] for u in uniques], dtype=object)
    ok = np.array([len(h) == 10 for h in heads], dtype=bool)
    candidates = heads.copy()
    candidates[~ok] = None
    parsed = pd.to_datetime(pd.Series(candidates, dtype=object), format="%Y-%m-%d", errors="coerce")
    values = parsed.to_numpy(dtype="datetime64[ns]")
    out = np.full(len(codes), np.datetime64("NaT"), dtype="datetime64[ns]")
    hit = codes >= 0
    out[hit] = values[codes[hit]]
    return pd.Series(out, index=col.index)
