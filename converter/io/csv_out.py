"""CSV files for people: a cell a spreadsheet would run as a formula is written so that it shows as text.

Excel, LibreOffice Calc and Google Sheets treat a cell whose first character is ``=``, ``+``, ``-`` or ``@`` as a
formula, and a leading tab or CR (or NUL) can hide such a start; RFC 4180 quoting does not stop it. OWASP's
guidance (CSV Injection; ASVS 5.0 requirement 1.2.10) is to prefix such a cell with a single quote ``'``, which
the spreadsheets take as "this is text" and do not show. :func:`neutralise` does exactly that, with one
exception, decided here: a cell that is a plain decimal number as a whole (``-1.5``, ``+3``, ``-2.5e-05``) stays
as it is. A number cannot carry a formula, and a reviewer sorting a column of differences or days needs it to
stay numeric. Anything else starting with a trigger (``-1+1``, ``=HYPERLINK(...)``, ``@SUM(A1)``, ``-`` alone)
gets the quote. Non-text cells (int, float, None) are left to the csv module. Quoting stays the csv module's.

One writer for every CSV meant to be opened by a person: :func:`writer` and :func:`dict_writer` wrap the csv
module's, :func:`write_frame` replaces ``DataFrame.to_csv`` (column-wise). Used for ``validate/findings.csv``,
``accounting.csv``, ``tosdtm-report.csv``, ``tosdtm-problems.csv`` and a dataset ``tosdtm`` writes as CSV.
Not for CRF record folders (:mod:`converter.records.csv_io`): they are an interchange format read back by
inoconv and by EDC systems, and every value must survive byte for byte.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

__all__ = ["FORMULA_TRIGGERS", "SafeDictWriter", "SafeWriter", "dict_writer", "neutralise", "neutralise_column",
           "write_frame", "writer"]  # fmt: skip

#: first characters that make a spreadsheet evaluate a cell (OWASP CSV Injection)
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """``value`` as a cell that a spreadsheet shows as text: ``'`` before a formula start (see the module)."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and _PLAIN_NUMBER.fullmatch(value) is None:
        return "'" + value
    return value


def neutralise_column(col: pd.Series) -> pd.Series:
    """:func:`neutralise` for a whole column: text columns only, each distinct value judged once."""
    if not (col.dtype == object or isinstance(col.dtype, pd.StringDtype)) or len(col) == 0:
        return col
    codes, uniques = pd.factorize(col, sort=False)
    fixed = np.array([neutralise(u) for u in uniques], dtype=object)
    changed = np.array([f is not u for f, u in zip(fixed, uniques, strict=True)], dtype=bool)
    if not changed.any():
        return col
    out = col.to_numpy(dtype=object, copy=True)
    hit = (codes >= 0) & changed[np.maximum(codes, 0)]
    out[hit] = fixed[codes[hit]]
    return pd.Series(out, index=col.index, name=col.name, dtype=object)


class SafeWriter:
    """``csv.writer`` whose rows are neutralised first."""

    def __init__(self, fh: IO[str], **kw: Any) -> None:
        self._w = csv.writer(fh, **kw)

    def writerow(self, row: Sequence[Any]) -> Any:
        return self._w.writerow([neutralise(v) for v in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        self._w.writerows([neutralise(v) for v in row] for row in rows)


class SafeDictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """``csv.DictWriter`` whose rows are neutralised first (the header too: field names are text cells)."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: neutralise(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        super().writerows({k: neutralise(v) for k, v in r.items()} for r in rowdicts)


def writer(fh: IO[str], **kw: Any) -> SafeWriter:
    """The csv module's ``writer(fh, **kw)``, neutralising every cell."""
    return SafeWriter(fh, **kw)


def dict_writer(fh: IO[str], fieldnames: Sequence[str], **kw: Any) -> SafeDictWriter:
    """The csv module's ``DictWriter(fh, fieldnames, **kw)``, neutralising every cell."""
    return SafeDictWriter(fh, fieldnames=fieldnames, **kw)


def write_frame(frame: pd.DataFrame, path: Path | str, **kw: Any) -> None:
    """``frame.to_csv(path, index=False, **kw)`` with every text column neutralised (column-wise)."""
    safe = frame.copy(deep=False)
    for name in safe.columns:
        safe[name] = neutralise_column(safe[name])
    safe.to_csv(path, index=False, **kw)
