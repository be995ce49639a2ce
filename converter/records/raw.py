"""Source records as read, before any check: raw string tables, and the sink that formats their problems.

Readers (:mod:`converter.records.odm`, :mod:`converter.records.csv_io`) return :class:`RawRead`; the field
checks (:mod:`converter.records.checks`) and the cross-checks (:mod:`converter.records.cross_checks`) report
what they find through one :class:`ProblemSink`, which names file, record (key fields and row), field, value
and rule, and caps the problems per rule at :data:`MAX_PER_RULE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import Problem, problem
from converter.records.schema import Form

__all__ = ["MAX_PER_RULE", "ProblemSink", "RawRead", "RawTable", "column", "empty_raw", "present"]

MAX_PER_RULE = 1000


@dataclass
class RawTable:
    """One form as read: raw strings (``None`` = missing), before any check or typing.

    ``frame`` has the columns the source had, restricted to the form's fields (object dtype, ``str`` or
    ``None``). Each row's place in the source, for messages, is ``where[i]`` when given, else ``row N``
    counted from ``row_offset`` (CSV: data rows from 1), else nothing (ODM: the key fields say it all).
    """

    form: str
    file: str
    frame: pd.DataFrame
    where: Sequence[str] | None = None
    row_offset: int | None = None
    missing_columns: tuple[str, ...] = ()

    def locate(self, i: int) -> str:
        if self.where is not None:
            return self.where[i]
        if self.row_offset is not None:
            return f"row {i + self.row_offset}"
        return ""


@dataclass
class RawRead:
    """What a reader found: the forms as raw strings and the problems met while reading."""

    tables: dict[str, RawTable]
    problems: list[Problem] = field(default_factory=list)


def empty_raw(form: Form, file: str) -> RawTable:
    return RawTable(
        form=form.oid, file=file, frame=pd.DataFrame({c: pd.Series([], dtype=object) for c in form.columns})
    )


def column(frame: pd.DataFrame, name: str) -> np.ndarray[Any, Any]:
    """A raw column as an object array."""
    arr: np.ndarray[Any, Any] = frame[name].to_numpy(dtype=object)
    return arr


def present(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Mask of non-missing raw values (``None``/NaN and ``""`` are missing)."""
    mask = np.asarray(pd.notna(arr), dtype=bool)
    if mask.any():
        mask[mask] = arr[mask] != ""
    return mask


class ProblemSink:
    """Formats the problems of flagged rows, at most MAX_PER_RULE per (file, field, rule)."""

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def add(
        self,
        table: RawTable,
        form: Form,
        rows: np.ndarray[Any, Any],
        field_name: str,
        values: Any,
        rule: str,
        message: str,
        severity: str = "error",
    ) -> None:
        """``rows``: positions in ``table.frame``; ``values``: the value per flagged row (same length)."""
        rows = np.asarray(rows)
        if len(rows) == 0:
            return
        out = self.errors if severity == "error" else self.warnings
        shown = rows[:MAX_PER_RULE]
        vals = list(values[:MAX_PER_RULE]) if values is not None else [""] * len(shown)
        frame = table.frame
        key_cols = [k for k in form.key if k in frame.columns]
        key_data = [frame[k].to_numpy(dtype=object) for k in key_cols]
        for n, i in enumerate(shown):
            i = int(i)
            keys = " ".join(f"{k}={d[i] if d[i] is not None else ''}" for k, d in zip(key_cols, key_data, strict=True))
            loc = table.locate(i)
            record = f"{keys} ({loc})" if keys and loc else (keys or loc)
            out.append(problem(table.file, record, field_name, vals[n], rule, message))
        if len(rows) > MAX_PER_RULE:
            out.append(
                problem(
                    table.file,
                    "",
                    field_name,
                    "",
                    rule,
                    f"... and {len(rows) - MAX_PER_RULE} more records break this rule",
                )
            )
