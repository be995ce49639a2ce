"""One dataset delivered twice: ``xx.xpt`` and ``xx.json`` (Dataset-JSON) must say the same.

``inoconv sdtm`` and ``adam`` write every dataset as XPT v5 and as Dataset-JSON 1.1; a reviewer may open either.
:func:`compare_pair` reads both findings as errors on the Dataset-JSON file (INO-PKG-005) when they differ in

* rows (how many), columns (which, in which order), types (character / numeric);
* the dataset label, a variable's label, a character variable's length;
* values: each column compared whole (text exactly, missing as missing; numbers to 1e-12 relative, since XPT
  stores IBM floating point), the first differing row given with both values.

:func:`check_dataset_json` reports what the Dataset-JSON 1.1 rules refuse in the file itself (INO-PKG-006).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from converter.io.datasetjson import validate_dataset_json
from converter.text import escape_controls
from converter.validate.common import DatasetInfo, finding
from converter.validate.findings import Finding

__all__ = ["check_dataset_json", "compare_pair"]

_MAX_PER_PAIR = 20  # value findings per pair of files (one per column), the rest counted in one


def check_dataset_json(path: Path, dataset: str, file: str) -> list[Finding]:
    """What the Dataset-JSON 1.1 rules refuse in ``path`` (required attributes, types of row values, ...)."""
    prefix = f"{path}: "
    return [
        finding("INO-PKG-006", dataset, message=m.removeprefix(prefix), file=file) for m in validate_dataset_json(path)
    ]


def _show(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "missing"
    text = escape_controls(v)
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _differing(x: pd.Series, j: pd.Series) -> np.ndarray:
    """Boolean array: rows where the two columns differ (both missing is equal)."""
    xn = pd.api.types.is_numeric_dtype(x.dtype)
    jn = pd.api.types.is_numeric_dtype(j.dtype)
    if xn and jn:
        a = x.to_numpy(dtype="float64", na_value=np.nan)
        b = j.to_numpy(dtype="float64", na_value=np.nan)
        both_na = np.isnan(a) & np.isnan(b)
        close = np.isclose(a, b, rtol=1e-12, atol=0.0)
        return np.asarray(~(close | both_na), dtype=bool)
    a_na = x.isna().to_numpy()
    b_na = j.isna().to_numpy()
    same = (x.astype(object).to_numpy() == j.astype(object).to_numpy()) & ~a_na & ~b_na
    return np.asarray(~(same | (a_na & b_na)), dtype=bool)


def compare_pair(
    dataset: str,
    xpt: tuple[pd.DataFrame, DatasetInfo],
    json: tuple[pd.DataFrame, DatasetInfo],
    file: str,
    *,
    known_equal: bool = False,
) -> list[Finding]:
    """Findings (on ``file``, the Dataset-JSON) where the Dataset-JSON says other than the XPT of ``dataset``.

    ``known_equal``: the caller knows the two frames are exactly equal (columns, dtypes, rows, values; what
    :func:`converter.io.package.known_same_frames` says of the files they were read from): the value comparison,
    which then finds nothing, is not done again. The labels and lengths are compared all the same."""
    (xdf, xinfo), (jdf, jinfo) = xpt, json
    out: list[Finding] = []

    def add(variable: str, message: str, row: int | None = None, count: int = 1) -> None:
        out.append(finding("INO-PKG-005", dataset, variable, message, row=row, count=count, file=file))

    if len(xdf) != len(jdf):
        add("", f"{len(jdf)} row(s) in the Dataset-JSON, {len(xdf)} in the XPT")
    xcols, jcols = [str(c) for c in xdf.columns], [str(c) for c in jdf.columns]
    for c in [c for c in xcols if c not in jcols]:
        add(c, f"{c} is in the XPT, not in the Dataset-JSON")
    for c in [c for c in jcols if c not in xcols]:
        add(c, f"{c} is in the Dataset-JSON, not in the XPT")
    common = [c for c in xcols if c in jcols]
    if [c for c in jcols if c in common] != common:
        add("", "the variables are in another order than in the XPT")
    if xinfo.label != jinfo.label:
        add("", f"dataset label {jinfo.label!r}, the XPT says {xinfo.label!r}")
    for c in common:
        xc, jc = xinfo.column(c), jinfo.column(c)
        if xc is None or jc is None:
            continue
        if xc.numeric != jc.numeric:
            kinds = ("numeric" if jc.numeric else "character", "numeric" if xc.numeric else "character")
            add(c, f"{c} is {kinds[0]} in the Dataset-JSON, {kinds[1]} in the XPT")
            continue
        if xc.label != jc.label:
            add(c, f"label {jc.label!r}, the XPT says {xc.label!r}")
        if not xc.numeric and jc.length is not None and xc.length is not None and xc.length != jc.length:
            add(c, f"length {jc.length}, the XPT says {xc.length}")
    if len(xdf) != len(jdf) or known_equal:
        return out  # rows cannot be paired, or no value differs
    shown = 0
    for c in common:
        xc = xinfo.column(c)
        jc = jinfo.column(c)
        if xc is not None and jc is not None and xc.numeric != jc.numeric:
            continue
        diff = _differing(xdf[c].reset_index(drop=True), jdf[c].reset_index(drop=True))
        n = int(diff.sum())
        if not n:
            continue
        if shown >= _MAX_PER_PAIR:
            add(c, f"{n} value(s) differ", count=n)
            continue
        shown += 1
        i = int(diff.argmax())
        add(c, f"{n} value(s) differ; row {i + 1}: {_show(jdf[c].iloc[i])} in the Dataset-JSON, "
               f"{_show(xdf[c].iloc[i])} in the XPT", row=i + 1, count=n)  # fmt: skip
    return out
