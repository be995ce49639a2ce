"""Column helpers of the FHIR builder (:mod:`converter.fhir.to_fhir`): SDTM columns as Python values or text,
row filters, identifier templates rendered a whole column at once, a row's label for problems, the SDTM
datasets cut into groups of subjects (:func:`subject_partitions`), and the rows of a child group linked to their
parent rows (:func:`link_children`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

from converter.errors import Problem, problem
from converter.fhir.mapping import ChildSpec, SourceSpec, Template
from converter.fhir.transforms import as_text
from converter.spec.expr import Expr, evaluate_mask, filter_rows

_TEMPLATE_FIELD = re.compile(r"\{([A-Z][A-Z0-9_]*)(?::(lower|upper))?\}")


def column_values(df: pd.DataFrame, var: str) -> list[Any]:
    """A column as Python values, ``None`` for missing (NaN, NA, empty string)."""
    col = df[var]
    if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        arr = col.to_numpy(dtype=object, copy=True)  # text only: no numpy scalars to unwrap
        arr[np.asarray(col.isna(), dtype=bool) | (arr == "")] = None
        return list(arr.tolist())
    mask = col.isna().tolist()
    vals = col.astype(object).tolist()
    if col.dtype == object:
        return [
            None if m or (isinstance(v, str) and v == "") else (v.item() if isinstance(v, np.generic) else v)
            for v, m in zip(vals, mask, strict=True)
        ]
    return [None if m else v for v, m in zip(vals, mask, strict=True)]


class Factored(Sequence[Any]):
    """A column as codes into its distinct values, so that what is done once per distinct value (a transform, a
    JSON text) need not be done again per row; row by row (a sequence) only when read so."""

    __slots__ = ("_rows", "_table", "codes", "distinct")

    def __init__(self, codes: np.ndarray[Any, np.dtype[np.intp]], distinct: list[Any]) -> None:
        self.codes = codes
        self.distinct = distinct
        self._rows: list[Any] | None = None
        self._table: np.ndarray[Any, np.dtype[np.object_]] | None = None

    def _values(self) -> np.ndarray[Any, np.dtype[np.object_]]:
        if self._table is None:
            table = np.empty(len(self.distinct), dtype=object)
            for i, v in enumerate(self.distinct):  # one by one: a list among the values stays one object
                table[i] = v
            self._table = table
        return self._table

    def rows(self) -> list[Any]:
        """The values row by row (made once)."""
        if self._rows is None:
            self._rows = self._values()[self.codes].tolist()
        return self._rows

    def values_at(self, rows: np.ndarray[Any, np.dtype[np.intp]]) -> list[Any]:
        """The values of the rows ``rows``, in that order (a list)."""
        return list(self._values()[self.codes[rows]].tolist())

    def __len__(self) -> int:
        return len(self.codes)

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return self.rows()[i]
        return self.distinct[self.codes[i]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows())

    def take(self, rows: list[int]) -> Factored:
        """The rows ``rows``, in that order."""
        return Factored(self.codes[rows], self.distinct)

    def where(self, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Factored:
        """None where ``mask`` is False."""
        distinct = [*self.distinct, None]
        return Factored(np.where(mask, self.codes, len(distinct) - 1), distinct)


def column_factors(df: pd.DataFrame, var: str) -> Factored | None:
    """:func:`column_values` as a :class:`Factored` column, for text, float and integer columns (None for the
    others, and where the distinct values would not be the values: objects other than text, a negative zero)."""
    col = df[var]
    if col.dtype == object:
        if pd.api.types.infer_dtype(col, skipna=True) not in ("string", "empty"):
            return None  # other objects: 1, 1.0 and True would be one key
        arr = col.to_numpy(dtype=object)
    elif col.dtype == np.float64:
        arr = col.to_numpy()
        if bool(((arr == 0) & np.signbit(arr)).any()):
            return None
    elif pd.api.types.is_integer_dtype(col.dtype):  # int64, Int64 (--SEQ, VISITNUM, study days): Python ints
        arr = col.array if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) else col.to_numpy()
    else:
        return None
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)  # NaN, None, NA -> -1
    distinct: list[Any] = [None if u == "" else u for u in uniques.tolist()]
    distinct.append(None)
    return Factored(np.where(codes < 0, len(distinct) - 1, codes), distinct)


def text_values(df: pd.DataFrame, var: str) -> list[str | None]:
    """A column as SDTM text (:func:`as_text` of each value); text columns need no conversion."""
    col = df[var]
    if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        return column_values(df, var)
    if col.dtype.kind in "iuf" and len(col):  # whole numbers (--SEQ): str(int(v)), as as_text gives them
        nan = np.asarray(col.isna(), dtype=bool)
        arr = col.to_numpy(dtype=np.float64, na_value=np.nan)
        vals = arr[~nan]
        if np.all(np.isfinite(vals)) and np.all(np.abs(vals) < 1e15) and np.all(vals == np.floor(vals)):
            texts = list(map(str, vals.astype(np.int64).tolist()))
            if not nan.any():
                return texts  # type: ignore[return-value]
            out: list[str | None] = [None] * len(arr)
            for i, t in zip(np.flatnonzero(~nan).tolist(), texts, strict=True):
                out[i] = t
            return out
    return [as_text(x) for x in column_values(df, var)]


def with_columns(df: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """``df`` with any missing named column added as all-missing (an absent variable is simply absent)."""
    missing = [n for n in names if n not in df.columns]
    if not missing:
        return df
    extra = pd.DataFrame({n: pd.Series([None] * len(df), index=df.index, dtype=object) for n in missing})
    return pd.concat([df, extra], axis=1)


def eval_mask(df: pd.DataFrame, expr: Expr) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Where a spec condition holds (parsed at load; an absent variable is all missing, False where missing)."""
    return evaluate_mask(expr, df, absent_as_null=True)


def query(df: pd.DataFrame, expr: Expr | None) -> pd.DataFrame:
    return filter_rows(df, expr, absent_as_null=True)


def _pieces(template: Template) -> list[str | tuple[str, str | None]]:
    out: list[str | tuple[str, str | None]] = []
    pos = 0
    for m in _TEMPLATE_FIELD.finditer(template.text):
        if m.start() > pos:
            out.append(template.text[pos : m.start()])
        out.append((m.group(1), m.group(2)))
        pos = m.end()
    if pos < len(template.text):
        out.append(template.text[pos:])
    return out


Texts = Callable[[pd.DataFrame, str], list[str | None]]


def render(template: Template, df: pd.DataFrame, texts: Texts = text_values) -> list[str | None]:
    """A template per row; ``None`` where a field's variable is missing (whole columns at a time).

    ``texts``: how a column is read as text (:func:`text_values`, or a memo of it)."""
    n = len(df)
    pieces = _pieces(template)
    if any(isinstance(pc, tuple) and pc[0] not in df.columns for pc in pieces):
        return [None] * n
    return _joined(pieces, {pc[0]: texts(df, pc[0]) for pc in pieces if isinstance(pc, tuple)}, n)


def _joined(
    pieces: list[str | tuple[str, str | None]], texts: Mapping[str, list[str | None]], n: int
) -> list[str | None]:
    """The pieces joined per row, the fields' variables read from ``texts`` (None where one is missing)."""
    cols: list[list[str | None] | str] = []
    for pc in pieces:
        if isinstance(pc, str):
            cols.append(pc)
            continue
        var, case = pc
        col = texts[var]
        if case is not None:
            memo: dict[str | None, str | None] = {None: None}
            for x in col:
                if x not in memo:
                    memo[x] = x.lower() if case == "lower" else x.upper()  # type: ignore[union-attr]
            col = [memo[x] for x in col]
        cols.append(col)
    if len(cols) == 1 and not isinstance(cols[0], str):
        return list(cols[0])
    fields = [c for c in cols if not isinstance(c, str)]
    if not any(None in c for c in fields):  # every field present: one format per row
        fmt = "".join(c.replace("%", "%%") if isinstance(c, str) else "%s" for c in cols)
        if not fields:
            return [fmt % ()] * n
        return list(map(fmt.__mod__, zip(*fields, strict=True)))
    result: list[str | None] = [""] * n
    for c in cols:
        if isinstance(c, str):
            result = [None if r is None else r + c for r in result]
        else:
            result = [None if r is None or x is None else r + x for r, x in zip(result, c, strict=True)]
    return result


def render_distinct(
    templates: Sequence[Template], df: pd.DataFrame, texts: Texts = text_values
) -> tuple[np.ndarray[Any, np.dtype[np.intp]], list[tuple[str | None, ...]]]:
    """:func:`render` of each template, per row as a code into the distinct tuples of rendered texts (in the
    order first seen): each distinct combination of the fields' values rendered once."""
    n = len(df)
    pieces = [_pieces(t) for t in templates]
    names = list(dict.fromkeys(pc[0] for ps in pieces for pc in ps if isinstance(pc, tuple) and pc[0] in df.columns))
    cols = {v: texts(df, v) for v in names}
    combo = np.zeros(n, dtype=np.int64)
    for v in names:
        codes, uniques = pd.factorize(np.asarray(cols[v], dtype=object), use_na_sentinel=True)
        combo = pd.factorize(combo * (len(uniques) + 1) + (codes + 1))[0]
    _u, firsts = np.unique(combo, return_index=True)  # combo numbers in first-seen order: firsts ascending
    rows = firsts.tolist()
    distinct = {v: [col[i] for i in rows] for v, col in cols.items()}
    rendered = [
        [None] * len(rows)
        if any(isinstance(pc, tuple) and pc[0] not in df.columns for pc in ps)
        else _joined(ps, distinct, len(rows))
        for ps in pieces
    ]
    index: dict[tuple[str | None, ...], int] = {}
    to_index = [index.setdefault(t, len(index)) for t in zip(*rendered, strict=True)]
    return np.asarray(to_index, dtype=np.intp)[combo], list(index)


def render_per_distinct(template: Template, df: pd.DataFrame, texts: Texts) -> list[str | None]:
    """:func:`render` of a template with few distinct texts (an identifier system): once per distinct value."""
    codes, distinct = render_distinct([template], df, texts)
    table = np.empty(len(distinct), dtype=object)
    table[:] = [t[0] for t in distinct]
    return list(table[codes].tolist())


def row_label(df: pd.DataFrame, i: int, keys: Iterable[str]) -> str:
    parts = []
    for k in keys:
        if k in df.columns:
            v = df[k].iloc[i]
            if not (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA):
                parts.append(f"{k}={as_text(v)}")
    return f"row {i + 1}" + (f" ({', '.join(parts)})" if parts else "")


def subject_partitions(datasets: Mapping[str, pd.DataFrame], size: int) -> Iterator[dict[str, pd.DataFrame]]:
    """The subject-level datasets (those with USUBJID) cut into groups of ``size`` subjects, in USUBJID order."""
    groups: dict[str, dict[Any, Any]] = {}
    subjects: set[Any] = set()
    for name, df in datasets.items():
        if "USUBJID" in df.columns and len(df):
            g: dict[Any, Any] = dict(df.groupby("USUBJID", sort=False, dropna=True).indices)
            groups[name] = g
            subjects |= set(g)
    ordered = sorted(subjects, key=str)
    for start in range(0, len(ordered), max(1, size)):
        chunk = ordered[start : start + size]
        part: dict[str, pd.DataFrame] = {}
        for name, gi in groups.items():
            idx = [gi[u] for u in chunk if u in gi]
            if idx:
                part[name] = datasets[name].iloc[np.sort(np.concatenate(idx))].reset_index(drop=True)
        yield part


def link_children(
    child: ChildSpec, source: SourceSpec, parent: pd.DataFrame, cdf: pd.DataFrame
) -> tuple[list[int | None], list[Problem]]:
    """The parent row of each child row (``None``, reported, when there is none), and those reports."""
    problems: list[Problem] = []

    def orphan(i: int, msg: str) -> None:
        label = row_label(cdf, i, ["USUBJID", "IDVAR", "IDVARVAL", "QNAM", "TSPARMCD", "DSSEQ"])
        problems.append(problem(child.dataset, label, "", "", "fhir-link", f"not carried to FHIR: {msg}"))

    n = len(cdf)
    out: list[int | None] = [None] * n
    ptype = source.dataset or "study"
    if child.supp:
        usub_p = [as_text(v) for v in column_values(parent, "USUBJID")] if "USUBJID" in parent.columns else []
        usub_c = [as_text(v) for v in column_values(with_columns(cdf, ["USUBJID"]), "USUBJID")]
        cdf2 = with_columns(cdf, ["IDVAR", "IDVARVAL"])
        idvar = [as_text(v) for v in column_values(cdf2, "IDVAR")]
        idval = [as_text(v) for v in column_values(cdf2, "IDVARVAL")]
        by_subject: dict[str, list[int]] = {}
        for j, u in enumerate(usub_p):
            if u is not None:
                by_subject.setdefault(u, []).append(j)
        index: dict[str, dict[tuple[str, str], int]] = {}
        for i in range(n):
            u = usub_c[i]
            rows = by_subject.get(u or "", [])
            if idvar[i] is None:
                if len(rows) == 1:
                    out[i] = rows[0]
                elif len(rows) > 1:
                    orphan(i, f"IDVAR is empty but {ptype} has {len(rows)} rows for the subject")
                    continue
            else:
                iv = idvar[i]
                assert iv is not None
                if iv not in parent.columns:
                    orphan(i, f"IDVAR {iv} is not a variable of {ptype}")
                    continue
                if iv not in index:
                    vals = [as_text(v) for v in column_values(parent, iv)]
                    index[iv] = {(a, b): j for j, (a, b) in enumerate(zip(usub_p, vals, strict=True)) if a and b}
                out[i] = index[iv].get((u or "", idval[i] or ""))
            if out[i] is None:
                orphan(i, f"no {ptype} row of the subject with {idvar[i]} = {idval[i]}")
        return out, problems
    pkeys = list(child.link.values())
    ckeys = list(child.link.keys())
    pcols = [[as_text(v) for v in column_values(with_columns(parent, pkeys), k)] for k in pkeys]
    ccols = [[as_text(v) for v in column_values(with_columns(cdf, ckeys), k)] for k in ckeys]
    pindex: dict[tuple[str | None, ...], int] = {}
    for j in range(len(parent)):
        pindex.setdefault(tuple(c[j] for c in pcols), j)
    for i in range(n):
        out[i] = pindex.get(tuple(c[i] for c in ccols))
        if out[i] is None:
            orphan(i, f"no {ptype} row with {', '.join(ckeys)} = {', '.join(str(c[i]) for c in ccols)}")
    return out, problems
