"""The in-memory patient-record model: one pandas DataFrame per CRF form.

``Records`` maps form OID -> frame whose columns are exactly the form's fields, in schema order, with the
canonical dtypes of :attr:`Field.pandas_dtype` (text and ISO 8601 dates as ``str``/``None``: a partial date such
as ``2013-02`` is kept as written). Rows are sorted by the form's key. Every reader returns this shape and
every writer takes it, so ODM -> records -> CSV is lossless by construction.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from converter.frames import null_column, text_column
from converter.records.schema import Form, FormSchema

Records = dict[str, pd.DataFrame]


def empty_frame(form: Form) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype=f.pandas_dtype) for name, f in form.fields.items()})


def normalise(frame: pd.DataFrame, form: Form) -> pd.DataFrame:
    """Columns in schema order with canonical dtypes, missing values as None/NA, rows sorted by key.

    Assumes values are already valid for their type (the readers check first).
    """
    out: dict[str, pd.Series] = {}
    n = len(frame)
    for name, f in form.fields.items():
        col = frame[name] if name in frame.columns else null_column(n, frame.index)
        if f.type == "integer":
            out[name] = pd.to_numeric(col, errors="raise").astype("Int64")
        elif f.type == "float":
            out[name] = pd.to_numeric(col, errors="raise").astype("float64")
        else:
            out[name] = text_column(col)
    df = pd.DataFrame(out, index=frame.index)
    if len(df) and form.key:
        df = df.sort_values(list(form.key), kind="mergesort", na_position="last")
    return df.reset_index(drop=True)


def normalise_all(records: Mapping[str, pd.DataFrame], schema: FormSchema) -> Records:
    """Every form of the schema present (empty where the source had none), each normalised."""
    return {
        oid: normalise(records[oid], form) if oid in records else empty_frame(form)
        for oid, form in schema.forms.items()
    }


def frames_equal(a: Records, b: Records) -> list[str]:
    """Differences between two record sets, as readable lines (empty when equal)."""
    diffs: list[str] = []
    for oid in sorted(set(a) | set(b)):
        if oid not in a or oid not in b:
            diffs.append(f"form {oid} only on one side")
            continue
        fa, fb = a[oid].reset_index(drop=True), b[oid].reset_index(drop=True)
        if list(fa.columns) != list(fb.columns):
            diffs.append(f"form {oid}: columns differ {list(fa.columns)} vs {list(fb.columns)}")
            continue
        if len(fa) != len(fb):
            diffs.append(f"form {oid}: {len(fa)} vs {len(fb)} rows")
            continue
        for col in fa.columns:
            x, y = fa[col], fb[col]
            if x.dtype.kind == "f" or y.dtype.kind == "f":
                same = np.isclose(
                    x.astype(float).to_numpy(), y.astype(float).to_numpy(), rtol=0, atol=1e-9, equal_nan=True
                )
            else:
                same = ((x == y) | (x.isna() & y.isna())).fillna(False).to_numpy(dtype=bool)
            if not same.all():
                i = int(np.argmin(same))
                diffs.append(f"form {oid} field {col} row {i}: {x.iloc[i]!r} vs {y.iloc[i]!r}")
    return diffs
