"""Key texts as integer codes, one dictionary per build: each column a rule joins or groups on is hashed once.

The ADaM rules match and group records by the text of their keys (``as_text``: numbers by value, ``1.0`` and
``1`` the same key, missing and ``''`` no text). Hashing those texts again for every filtered frame, pick and
lookup is most of what such a rule costs. Here a build keeps one dictionary of texts (:func:`codes_of`): 0 for no
text, 1, 2, ... for each distinct text in the order first seen, so equal codes mean equal texts in every frame
of the build (USUBJID of EX, of LB and of ADSL alike; RSDTC and LBDTC alike). A column is coded once per build
(its distinct values made text, looked up in the dictionary, spread back over the rows); the rows a rule takes
from a frame (:func:`note_rows`: filtered rows, the record picked per group) take their codes from the frame's
by position, without hashing anything.

Outside a build (:func:`converter.adam.shared.shared_results`) nothing is kept: each call of :func:`codes_of`
starts a dictionary of its own, so codes are comparable only within what one call codes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from converter.adam.shared import shared
from converter.sdtm.context import as_text

__all__ = ["Codes", "codes_of", "column_codes", "frame_codes", "key_codes", "note_rows", "rows_from"]


class Codes:
    """A dictionary of texts: 0 for no text (null or ``''``), 1, 2, ... for each distinct text."""

    def __init__(self) -> None:
        self._known = pd.Index([], dtype=object)  # the text of code i + 1 at position i

    def __len__(self) -> int:
        return len(self._known) + 1

    def of(self, values: np.ndarray) -> np.ndarray:
        """The code of each value's text (as :func:`as_text` makes it), as int64."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = _distinct_texts(np.asarray(uniques, dtype=object))
        if texts is None:  # a boolean beside numbers: factorize joined values whose texts differ (True and 1)
            codes, uniques = pd.factorize(as_text(pd.Series(values, dtype=object)).to_numpy(), use_na_sentinel=True)
            texts = np.asarray(uniques, dtype=object)
        at = self._known.get_indexer(pd.Index(texts, dtype=object))  # -1: not seen (no text is never seen)
        blank = pd.isna(texts)
        new = (at < 0) & ~blank
        if new.any():  # texts seen for the first time (two distinct values may share one: 1 and "1")
            fresh, distinct = pd.factorize(texts[new])
            at[new] = len(self._known) + fresh
            self._known = self._known.append(pd.Index(distinct, dtype=object))
        of_unique = np.where(blank, 0, at + 1).astype(np.int64)
        out: np.ndarray = np.where(codes < 0, 0, of_unique.take(np.maximum(codes, 0))) if len(of_unique) else \
            np.zeros(len(codes), dtype=np.int64)  # fmt: skip
        return out


def _distinct_texts(uniques: np.ndarray) -> np.ndarray | None:
    """``as_text`` of distinct values (None where there is no text); None when a boolean is among other values
    (``pd.factorize`` takes True for 1, whose texts differ)."""
    if pd.api.types.infer_dtype(uniques, skipna=False) == "string":
        texts = uniques.copy()
        texts[texts == ""] = None
        return texts
    flags = [isinstance(u, bool | np.bool_) for u in uniques]
    if any(flags) and not all(flags):
        return None
    return as_text(pd.Series(uniques, dtype=object)).to_numpy()


def codes_of() -> Codes:
    """The build's dictionary of texts (a new one outside a build)."""
    return shared(("text codes",), (), Codes)


def column_codes(col: pd.Series, codes: Codes) -> np.ndarray:
    """The codes of a column no rule changes (a source column, a variable computed before), shared in a build."""
    return shared(("codes",), (col, codes), lambda: codes.of(col.to_numpy(dtype=object)))


def note_rows(rows: pd.DataFrame, frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """Record (within a build) that ``rows`` are the rows of ``frame`` at ``positions``; returns ``rows``."""
    shared(("rows from",), (rows,), lambda: (frame, positions))
    return rows


def rows_from(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The frame and positions ``rows`` were taken from (:func:`note_rows`), or None."""
    found: tuple[pd.DataFrame, np.ndarray] | None = shared(("rows from",), (rows,), lambda: None)
    return found


def frame_codes(df: pd.DataFrame, col: str, codes: Codes) -> np.ndarray:
    """The codes of a column of a frame no rule changes; rows taken from another frame take its codes."""

    def make() -> np.ndarray:
        origin = rows_from(df)
        if origin is not None:
            frame, positions = origin
            taken: np.ndarray = frame_codes(frame, col, codes).take(positions)
            return taken
        return codes.of(df[col].to_numpy(dtype=object))

    return shared(("frame codes", col), (df, codes), make)


def key_codes(columns: Sequence[np.ndarray], width: int) -> np.ndarray | None:
    """One int64 per row for the codes of several key columns (each below ``width``): equal where every code is
    equal (one column: its codes as they are); None when they would not fit in 62 bits."""
    if len(columns) == 1:
        return columns[0]
    if width ** len(columns) >= 2**62:
        return None
    key = np.zeros(len(columns[0]) if columns else 0, dtype=np.int64)
    for c in columns:
        key = key * width + c
    return key
