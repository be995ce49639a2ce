"""SAS XPORT version 5 output (the FDA transport format), checked first, written as pyreadstat writes it.

A writer writes whatever it is given (pyreadstat's, whose bytes :mod:`converter.io.xpt_write` makes with numpy):
it silently cuts labels over 40 characters, lets values over 200 bytes and non-ASCII text through, and sizes a
character variable by its longest value. So every rule of the format
(and of the FDA's use of it) is checked *before* writing, by :func:`check_for_xpt`, and :func:`write_xpt` raises
:class:`~converter.errors.ConformanceError` listing every problem rather than writing a file that a reviewer's
tools would reject or read differently.

Data contract (see ``converter.frames``): the frame's columns are exactly ``spec.column_names`` in spec order;
character variables (spec type not integer/float) are ``object`` columns of ``str`` or ``None``; numeric ones are
float64/Int64 with NaN/NA for missing. ADaM numeric dates are integer variables with a date format (``DATE9.``)
holding SAS day counts since 1960-01-01; they are written as plain numbers with that format.

Length policy (shared with Dataset-JSON and Define-XML through :func:`char_lengths`): a character variable's XPT
storage width is ``spec.length`` when the spec gives one, else its longest value in bytes (at least 1).
Values are blank padded to that width (trailing blanks are not significant in SAS: every reader strips them), so
values read back unchanged; a frame without rows keeps the widths too.

Numbers are 8-byte IBM floating point: every IEEE double in the IBM range converts exactly (checked against
``pyreadstat.read_xport``); negative zero is written as zero. Two known quirks of ``pandas.read_sas`` (not of the
files): it reads IBM zero as 5.397605e-79 (= 16**-65, pandas issue #50670) and it cannot read a file without
observations (StopIteration); pyreadstat reads both correctly.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from converter.errors import ConformanceError
from converter.io.sas_formats import SAS_EPOCH as SAS_EPOCH
from converter.io.sas_formats import SasFormat as SasFormat
from converter.io.sas_formats import parse_sas_format
from converter.io.sas_formats import temporal_kind as temporal_kind
from converter.io.xpt_read import read_plain_v5
from converter.io.xpt_values import control_problems, label_problems, value_problems
from converter.io.xpt_write import XportColumn, xport_bytes
from converter.spec.model import DatasetSpec, VariableSpec

XPT_MAX_NAME = 8
XPT_MAX_LABEL = 40
XPT_MAX_CHAR = 200
XPT_NUMERIC_WIDTH = 8
#: Largest magnitude an 8-byte IBM float holds (16**63 * (1 - 16**-14)); smallest normalised is 16**-65.
IBM_MAX = 16.0**63 * (1 - 16.0**-14)
IBM_MIN = 16.0**-65
#: Magnitudes from here on are written as the largest IBM word (ReadStat's ieee2xpt, which the writer follows,
#: saturates from 2**249: its exponent arithmetic), so they would not read back: refused before writing.
XPT_STORED_BELOW = 2.0**249
MAX_LISTED = 20  # rows listed per variable and rule; the rest are counted

_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
_LIBRARY_HEADER = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"


# --- shared helpers (also used by the Dataset-JSON and Define-XML writers) ------------------------------------------
def is_char(var: VariableSpec) -> bool:
    return not var.numeric


def char_lengths(df: pd.DataFrame | None, spec: DatasetSpec) -> dict[str, int]:
    """Width of every character variable: ``spec.length`` if given, else the longest value in bytes (min 1)."""
    out: dict[str, int] = {}
    for var in spec.variables:
        if not is_char(var):
            continue
        if var.length is not None:
            out[var.name] = var.length
        elif df is not None and var.name in df.columns:
            out[var.name] = max(1, longest_bytes(df[var.name]))
        else:
            out[var.name] = 1
    return out


def longest_bytes(col: pd.Series) -> int:
    """Longest ``str`` value of a column in UTF-8 bytes (0 when there is none)."""
    values = col.to_numpy(dtype=object)
    uniq = _unique(values)
    return max((len(v.encode("utf-8")) for v in (values if uniq is None else uniq) if isinstance(v, str)), default=0)


def row_labels(df: pd.DataFrame) -> Callable[[int], str]:
    """Row position -> "row 12 (USUBJID X-001)" for messages (1-based, subject when the frame has one)."""
    subj = df["USUBJID"].to_numpy(dtype=object) if "USUBJID" in df.columns else None

    def label(i: int) -> str:
        if subj is not None and isinstance(subj[i], str):
            return f"row {i + 1} (USUBJID {subj[i]})"
        return f"row {i + 1}"

    return label


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


class _Collector:
    """Problems of one dataset, with at most MAX_LISTED rows listed per (variable, rule)."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.items: list[str] = []
        self._counts: dict[tuple[str, str], int] = {}

    def add(self, msg: str, var: str = "") -> None:
        where = f"{self.dataset}.{var}" if var else self.dataset
        self.items.append(f"{where}: {msg}")

    def add_row(self, var: str, rule: str, msg: str) -> None:
        key = (var, rule)
        n = self._counts.get(key, 0) + 1
        self._counts[key] = n
        if n <= MAX_LISTED:
            self.add(msg, var)

    def finish(self) -> list[str]:
        for (var, rule), n in self._counts.items():
            if n > MAX_LISTED:
                self.add(f"... and {n - MAX_LISTED} more rows breaking the same rule ({rule})", var)
        return self.items


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


def _is_printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()  # for ASCII: exactly 0x20-0x7E, in C, not per character


# --- checks ----------------------------------------------------------------------------------------------------------
def check_spec_for_xpt(spec: DatasetSpec) -> list[str]:
    """Metadata rules of XPORT v5: names, labels, formats, declared lengths (no data needed)."""
    err = _Collector(spec.name)
    if not _NAME.match(spec.name):
        err.add(f"dataset name {spec.name!r} must be 1-8 upper-case ASCII letters, digits or _, starting with a letter")
    if not spec.label:
        err.add("dataset label is missing")
    elif len(spec.label) > XPT_MAX_LABEL or not _is_printable_ascii(spec.label):
        err.add(
            f"dataset label {spec.label!r} must be at most {XPT_MAX_LABEL} printable ASCII characters "
            f"(has {len(spec.label)})"
        )
    names = [v.name for v in spec.variables]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        err.add("variable defined more than once", dup)
    for var in spec.variables:
        if not _NAME.match(var.name):
            err.add(
                f"variable name {var.name!r} must be 1-8 upper-case ASCII letters, digits or _, starting with a letter",
                var.name,
            )
        if not var.label:
            err.add("variable label is missing", var.name)
        elif len(var.label) > XPT_MAX_LABEL or not _is_printable_ascii(var.label):
            err.add(
                f"variable label {var.label!r} must be at most {XPT_MAX_LABEL} printable ASCII characters "
                f"(has {len(var.label)})",
                var.name,
            )
        if var.format:
            parsed = parse_sas_format(var.format)
            if parsed is None:
                err.add(f"format {var.format!r} is not a SAS format (NAMEw.d)", var.name)
            elif len(parsed.name) > XPT_MAX_NAME:
                err.add(f"format name {parsed.name!r} is longer than {XPT_MAX_NAME} characters", var.name)
            elif parsed.name.startswith("$") != is_char(var):
                kind = "character" if is_char(var) else "numeric"
                err.add(f"format {var.format!r} does not fit a {kind} variable", var.name)
        if is_char(var) and var.length is not None and not 1 <= var.length <= XPT_MAX_CHAR:
            err.add(f"declared length {var.length} is outside 1..{XPT_MAX_CHAR}", var.name)
    for k in spec.keys:
        if k not in names:
            err.add(f"key {k} is not a variable of the dataset")
    return err.finish()


def check_for_xpt(df: pd.DataFrame, spec: DatasetSpec) -> list[str]:
    """Every reason the frame cannot be written as a conformant XPORT v5 file (empty list: it can).

    Checks the spec's metadata (see :func:`check_spec_for_xpt`), that the columns are exactly the spec's in spec
    order, every value (type, ASCII, printable, <= 200 bytes, <= declared length, no trailing blanks, numbers
    finite and in the IBM range, integers whole) and that rows are sorted by ``spec.keys``.
    """
    problems = check_spec_for_xpt(spec)
    err = _Collector(spec.name)
    expected = spec.column_names
    actual = [str(c) for c in df.columns]
    if actual != expected:
        missing = [c for c in expected if c not in actual]
        extra = [c for c in actual if c not in expected]
        if missing:
            err.add(f"columns missing from the data: {missing}")
        if extra:
            err.add(f"columns not in the spec: {extra}")
        if not missing and not extra:
            err.add(f"columns are not in spec order: got {actual}, spec says {expected}")
        if len(set(actual)) != len(actual):
            err.add(f"duplicate columns: {sorted({c for c in actual if actual.count(c) > 1})}")
    label = row_labels(df)
    present = {c for c in actual if actual.count(c) == 1}
    for var in spec.variables:
        if var.name in present:
            if is_char(var):
                _check_char(df[var.name], var, err, label)
            else:
                _check_numeric(df[var.name], var, err, label)
    keys = [k for k in spec.keys if k in present]
    if keys and len(keys) == len(spec.keys) and len(df) > 1:
        try:
            pos = _first_unsorted(df, keys)
        except TypeError as exc:  # mixed value types in a key (reported above per value)
            err.add(f"rows cannot be ordered by the keys {keys}: {exc}")
            pos = None
        if pos is not None:
            err.add(
                f"rows are not sorted by the keys {keys}: {label(pos)} belongs before earlier rows "
                "(sort with converter.io.xpt.prepare_for_xpt)"
            )
    return problems + err.finish()


def _char_value_problems(v: object, limit: int) -> list[tuple[str, str]]:
    """(rule, message) for one non-missing value of a character variable; the row is added by the caller."""
    if not isinstance(v, str):
        return [
            ("type", f"value {_short(v)} of type {type(v).__name__} in a character variable (expected str or None)")
        ]
    if not v.isascii():
        bad = sorted({c for c in v if not c.isascii()})
        return [("ascii", f"value {_short(v)} is not ASCII (characters {bad})")]
    out: list[tuple[str, str]] = []
    if not _is_printable_ascii(v):
        out.append(("printable", f"value {_short(v)} has control characters"))
    n = len(v)
    if n > XPT_MAX_CHAR:
        out.append(("200", f"value of {n} bytes exceeds the XPT limit of {XPT_MAX_CHAR} ({_short(v)})"))
    elif n > limit:
        out.append(("length", f"value of {n} bytes exceeds the declared length {limit} ({_short(v)})"))
    if v != v.rstrip(" "):
        out.append(("blanks", f"value {_short(v)} has trailing blanks, which XPT does not keep"))
    return out


def _unique(values: np.ndarray[Any, np.dtype[Any]]) -> list[Any] | None:
    try:
        return list(pd.unique(values))
    except TypeError:  # unhashable values
        return None


def _same_value(values: np.ndarray[Any, np.dtype[Any]], u: object) -> np.ndarray[Any, np.dtype[np.bool_]]:
    return np.fromiter((x is u or (type(x) is type(u) and x == u) for x in values), dtype=bool, count=len(values))


def _check_char(col: pd.Series, var: VariableSpec, err: _Collector, label: Callable[[int], str]) -> None:
    """Each distinct value is checked once (clinical columns repeat few values); offending rows are then listed
    in row order."""
    limit = min(var.length, XPT_MAX_CHAR) if var.length is not None else XPT_MAX_CHAR
    values = col.to_numpy(dtype=object)
    found: list[tuple[int, str, str]] = []
    uniq = _unique(values)
    if uniq is None:
        for i, v in enumerate(values):
            if not _is_missing(v):
                found += [(i, rule, msg) for rule, msg in _char_value_problems(v, limit)]
    else:
        for u in uniq:
            if _is_missing(u):
                continue
            problems = _char_value_problems(u, limit)
            if problems:
                rows = np.flatnonzero(_same_value(values, u))
                found += [(int(i), rule, msg) for i in rows for rule, msg in problems]
    for i, rule, msg in sorted(found, key=lambda f: f[0]):
        err.add_row(var.name, rule, f"{label(i)}: {msg}")


def numeric_values(col: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """A numeric column as float64 (NaN for missing); None when it holds anything but numbers and missing.

    Accepts float/int/Int64 dtypes and ``object`` columns of int/float/None (e.g. an all-missing column).
    """
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_numeric_dtype(dtype):
        return np.asarray(col.astype("float64").to_numpy(na_value=np.nan), dtype=np.float64)
    if pd.api.types.is_object_dtype(dtype):
        values = col.to_numpy(dtype=object)
        if all(
            _is_missing(v) or (isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool))
            for v in values
        ):
            return np.array([np.nan if _is_missing(v) else float(v) for v in values], dtype=np.float64)
    return None


def _check_numeric(col: pd.Series, var: VariableSpec, err: _Collector, label: Callable[[int], str]) -> None:
    values = numeric_values(col)
    if values is None:
        err.add(
            f"{var.type} variable has dtype {col.dtype} with non-numeric values (expected float64 or Int64)", var.name
        )
        return
    finite = np.isfinite(values)
    bad = ~finite & ~np.isnan(values)
    for i in np.flatnonzero(bad):
        err.add_row(var.name, "finite", f"{label(int(i))}: value {values[i]} cannot be stored in XPT")
    safe = np.where(finite, values, 0.0)
    mag = np.abs(safe)
    out = (mag >= XPT_STORED_BELOW) | ((mag < IBM_MIN) & (mag != 0.0))
    for i in np.flatnonzero(out):
        err.add_row(var.name, "range", f"{label(int(i))}: value {values[i]!r} is outside the IBM float range of XPT")
    if var.type == "integer":
        for i in np.flatnonzero(np.floor(safe) != safe):
            err.add_row(
                var.name,
                "integer",
                f"{label(int(i))}: value {values[i]!r} of an integer variable is not a whole number",
            )


def _sort_order(df: pd.DataFrame, keys: Sequence[str]) -> np.ndarray[Any, np.dtype[np.intp]]:
    """Row positions in SAS sort order by keys (missing first, stable)."""
    frame = df[list(keys)].reset_index(drop=True)
    idx = frame.sort_values(list(keys), na_position="first", kind="mergesort").index
    return np.asarray(idx, dtype=np.intp)


def _first_unsorted(df: pd.DataFrame, keys: Sequence[str]) -> int | None:
    order = _sort_order(df, keys)
    wrong = np.flatnonzero(order != np.arange(len(order)))
    return int(order[wrong[0]]) if len(wrong) else None


def prepare_for_xpt(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The frame sorted by ``spec.keys`` as SAS sorts (missing first, stable), with a fresh RangeIndex.

    The one documented place where rows are reordered; :func:`check_for_xpt` only checks the order.
    """
    keys = [k for k in spec.keys if k in df.columns]
    if not keys:
        return df.reset_index(drop=True)
    return df.iloc[_sort_order(df, keys)].reset_index(drop=True)


# --- writing -------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def temp_path_for(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed over ``path`` when the block succeeds.

    For writers that need a file name rather than a file object (pyreadstat); file-object writers use
    :func:`atomic_file`.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_file(path: Path) -> contextlib.AbstractContextManager[IO[bytes]]:
    """A binary file object whose content replaces ``path`` only when the block succeeds.

    :func:`converter.io.atomic.atomic_write` (the project's helper) when it is there, else the same through
    :func:`temp_path_for`.
    """
    try:
        from converter.io.atomic import atomic_write
    except ImportError:  # pragma: no cover - the helper module is optional for these writers
        return _atomic_file_fallback(path)
    return atomic_write(path)


@contextlib.contextmanager
def _atomic_file_fallback(path: Path) -> Iterator[IO[bytes]]:
    with temp_path_for(path) as tmp, open(tmp, "wb") as fh:
        yield fh


def writer_columns(df: pd.DataFrame, spec: DatasetSpec) -> list[XportColumn]:
    """The frame's variables in spec order as :func:`converter.io.xpt_write.xport_bytes` takes them: character
    values ``str`` ("" for missing) with the storage width of :func:`char_lengths`, numbers float64 (NaN
    missing, -0.0 as 0.0)."""
    widths = char_lengths(df, spec)
    cols: list[XportColumn] = []
    for var in sorted(spec.variables, key=lambda v: v.order):
        col = df[var.name]
        fmt = parse_sas_format(var.format) if var.format else None
        if is_char(var):
            values = col.to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = ""
            cols.append(XportColumn(var.name, var.label, False, widths[var.name], fmt, values))
        else:
            num = numeric_values(col)
            assert num is not None  # checked by check_for_xpt
            cols.append(XportColumn(var.name, var.label, True, XPT_NUMERIC_WIDTH, fmt, num + 0.0))  # -0.0 -> 0.0
    return cols


def write_xpt(df: pd.DataFrame, spec: DatasetSpec, path: Path | str, *, checked: bool = False) -> Path:
    """Check, then write ``df`` as SAS XPORT version 5 at ``path`` (atomically). Raises ConformanceError.
    ``checked=True``: the caller has just run :func:`check_for_xpt` on this frame and spec and it found nothing.
    The bytes are pyreadstat's (:mod:`converter.io.xpt_write`)."""
    problems = [] if checked else check_for_xpt(df, spec)
    if problems:
        raise ConformanceError(problems)
    path = Path(path)
    data = xport_bytes(spec.name, spec.label, writer_columns(df, spec))
    with temp_path_for(path) as tmp:
        tmp.write_bytes(data)
    return path


# --- reading -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnMeta:
    name: str
    label: str
    numeric: bool
    length: int | None = None  # XPT storage width / Dataset-JSON length
    format: str | None = None  # SAS display format, e.g. "DATE9."
    data_type: str | None = None  # Dataset-JSON dataType
    target_data_type: str | None = None
    key_sequence: int | None = None
    item_oid: str | None = None


@dataclass(frozen=True)
class DatasetMeta:
    name: str
    label: str
    columns: tuple[ColumnMeta, ...]
    records: int
    extra: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> ColumnMeta:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name}.{name} is not in the file")


def plain_texts(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """An object array of ``str`` and missing values only, as a copy with "" and every missing value as None, made
    at once; None when ``values`` holds anything else (the caller then goes value by value)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return None
    out = values.copy()
    gone = pd.isna(values)
    kept = ~gone
    gone[kept] = values[kept] == ""
    out[gone] = None
    return out


def normalise_char(col: pd.Series) -> pd.Series:
    """Character column back to the data contract: object dtype, ``str`` or ``None`` ("" and NaN -> None)."""
    values = col.to_numpy(dtype=object)
    texts = plain_texts(values)
    if texts is not None:
        return pd.Series(texts, index=col.index, dtype=object, name=col.name)
    out = np.empty(len(values), dtype=object)
    out[:] = None
    for i, v in enumerate(values):
        if isinstance(v, bytes):
            v = v.decode("ascii")
        if isinstance(v, str) and v != "":
            out[i] = v
    return pd.Series(out, index=col.index, dtype=object, name=col.name)


def read_xpt(path: Path | str) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read an XPT file back to the data contract: character -> str/None, numeric -> float64 (dates stay day counts).

    A file that is not a readable SAS transport file (truncated, empty, another format) raises InputError
    naming the file, not the reader library's exception; so does a character value or label holding a control
    character (:mod:`converter.io.xpt_values`: found in the raw bytes, since pyreadstat ends a value at NUL).
    Bytes read before in this process are not parsed again (:mod:`converter.io.read_cache`).
    """
    from converter.io.read_cache import by_content

    return by_content(Path(path), "xpt", _read_checked)


def _read_checked(p: Path) -> tuple[pd.DataFrame, DatasetMeta]:
    from converter.errors import InputError, Problem, problem

    try:
        if p.stat().st_size == 0:
            raise InputError(problem(str(p), "", "", "", "xpt", "empty file: not a SAS transport (XPT) file"))
        with p.open("rb") as fh:
            head = fh.read(80)
        if not head.startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!") and not head.startswith(
            b"HEADER RECORD*******LIBV8   HEADER RECORD!!!!!!!"
        ):
            msg = "not a SAS transport (XPT) file: the library header record is missing"
            raise InputError(problem(str(p), "record 1", "", head[:40].decode("latin-1"), "xpt", msg))
        plain = _read_plain(p) if head.startswith(_LIBRARY_HEADER) else None
        raw: list[Problem] | None = []  # a plain file's text is printable ASCII: no control character in it
        if plain is not None:
            df, meta = plain
        else:
            raw = control_problems(p) if head.startswith(_LIBRARY_HEADER) else None
            if raw:
                raise InputError(raw, context=str(p))
            df, meta = _read_xpt(p)
    except InputError:
        raise
    except Exception as exc:  # pyreadstat's ReadstatError and decoding errors carry no file name
        raise InputError(problem(str(p), "", "", "", "xpt", f"cannot read the XPT file: {exc}")) from None
    problems = label_problems(str(p), {"": meta.label, **{c.name: c.label for c in meta.columns}})
    if raw is None:
        problems += value_problems(str(p), df)
    if problems:
        raise InputError(problems, context=str(p))
    return df, meta


def _column_meta(name: str, label: str | None, numeric: bool, width: int | None, fmt: str | None) -> ColumnMeta:
    parsed = parse_sas_format(fmt if fmt and "." in fmt else f"{fmt}.") if fmt else None
    return ColumnMeta(name, label or "", numeric, length=width, format=str(parsed) if parsed else None)


def _read_plain(path: Path) -> tuple[pd.DataFrame, DatasetMeta] | None:
    """The file read by :func:`converter.io.xpt_read.read_plain_v5` (what pyreadstat gives, for a v5 file of
    the plain layout), else None: pyreadstat reads it."""
    try:
        plain = read_plain_v5(path.read_bytes())
    except Exception:  # any surprise: pyreadstat reads the file and words what is wrong
        return None
    if plain is None:
        return None
    columns = tuple(_column_meta(c.name, c.label, c.numeric, c.width, c.format) for c in plain.columns)
    df = plain.frame
    meta = DatasetMeta(plain.table_name, plain.file_label, columns, len(df), {"format": "xport", "version": 5})
    return df, meta


def _read_xpt(path: Path) -> tuple[pd.DataFrame, DatasetMeta]:
    import pyreadstat  # imported only for a file the numpy reader leaves to it

    df, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
    types = meta.readstat_variable_types
    widths = meta.variable_storage_width
    formats = meta.original_variable_types
    columns: list[ColumnMeta] = []
    for name, label in zip(meta.column_names, meta.column_labels, strict=True):
        numeric = types[name] != "string"
        columns.append(_column_meta(name, label, numeric, widths.get(name), formats.get(name)))
        if numeric:
            df[name] = df[name].astype("float64")
        else:
            df[name] = normalise_char(df[name])
    df = df.reset_index(drop=True)
    return df, DatasetMeta(
        name=meta.table_name or "",
        label=meta.file_label or "",
        columns=tuple(columns),
        records=len(df),
        extra={"format": "xport", "version": xpt_version(path)},
    )


def xpt_version(path: Path | str) -> int:
    """5 or 8, from the library header record (V8 files start with 'LIBV8')."""
    with open(path, "rb") as fh:
        first = fh.read(80)
    if first.startswith(_LIBRARY_HEADER):
        return 5
    if first.startswith(b"HEADER RECORD*******LIBV8"):
        return 8
    raise ValueError(f"{path}: not a SAS XPORT file")
