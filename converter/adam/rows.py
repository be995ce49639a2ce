"""The rows of a dataset no rule changes where a rule's ``filter`` holds, evaluated once per build, and those rows
with only the columns a rule reads.

Copying every column of the filtered rows is most of what a filter of a large dataset costs (LB's two MRD filters
keep 9,429 and 7,564 of 86,105 rows, 28 columns each; the string objects of every copied cell are touched). A
``merge`` reads its ``by`` and ``order`` columns and one value per picked record; a ``merge_flag`` only its keys.
:func:`narrow_rows` gives them the filtered rows of just those columns, noted as taken from the dataset
(:func:`converter.adam.codes.note_rows`), so their key codes are the dataset's, taken by position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from converter.adam.codes import note_rows
from converter.adam.shared import shared
from converter.spec.expr import evaluate_mask

__all__ = ["kept", "narrow_rows", "rows_at"]


def kept(frame: pd.DataFrame, condition: Any) -> np.ndarray | None:
    """Where ``condition`` (a parsed spec expression, or None) holds in ``frame``, as a boolean mask; None when it
    holds for every row (or there is no condition, or no row). Shared within a build."""

    def make() -> np.ndarray | None:
        if condition is None or frame.empty:
            return None
        keep: np.ndarray = evaluate_mask(condition, frame)
        return None if keep.all() else keep

    return shared(("kept", condition), (frame,), make)


def narrow_rows(frame: pd.DataFrame, condition: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The rows of ``frame`` where ``condition`` holds (as :func:`converter.adam.common.rows_of` gives them: same
    index labels, same values and types) with only ``columns`` (each once, in the order given, all in ``frame``);
    shared within a build, noted as taken from ``frame``. When every row is kept: ``frame`` itself, not a copy."""
    names = tuple(dict.fromkeys(columns))

    def make() -> pd.DataFrame:
        keep = kept(frame, condition)
        if keep is None:  # every row: the frame itself (its other columns are not read), not a copy
            return frame
        return rows_at(frame, np.flatnonzero(keep), names)

    return shared(("narrow rows", condition, names), (frame,), make)


def rows_at(frame: pd.DataFrame, positions: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """The rows of ``frame`` at ``positions`` with only ``columns`` (each once, in the order given), noted as taken
    from ``frame`` (their key codes are its); ``frame`` itself when the positions are every row in order."""
    if len(positions) == len(frame) and bool((positions == np.arange(len(frame))).all()):
        return frame
    rows = pd.DataFrame({c: frame[c].array.take(positions) for c in dict.fromkeys(columns)},
                        index=frame.index.take(positions), copy=False)  # fmt: skip
    return note_rows(rows, frame, positions)
