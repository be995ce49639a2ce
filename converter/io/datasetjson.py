"""CDISC Dataset-JSON v1.1 (and its NDJSON form): writer, reader and a structural validator.

Follows the Dataset-JSON v1.1 specification (CDISC, 2024-12-05): top-level attributes in the documented order
(datasetJSONCreationDateTime, datasetJSONVersion "1.1.0", fileOID, dbLastModifiedDateTime, originator,
sourceSystem {name, version}, studyOID, metaDataVersionOID, metaDataRef, itemGroupOID, records, name, label,
columns, rows); ``columns`` hold itemOID, name, label, dataType, targetDataType, length, displayFormat,
keySequence; missing values are ``null``. The NDJSON form (``.ndjson``) has the metadata object on line 1 and one
row array per following line.

Data types (spec type -> dataType):

* character variables -> ``string``; SDTM ISO 8601 ``date``/``datetime``/``time`` variables keep that dataType
  (their JSON values are the ISO strings); ``partialDate`` and the other ISO 8601 variants -> ``string``;
* ``integer`` -> ``integer``; ``float`` -> ``float`` (JSON numbers; orjson writes the shortest repr, so doubles
  round-trip exactly);
* a numeric variable with a SAS date/datetime/time format (ADaM ``TRTSDT``, ``DATE9.``) -> dataType ``date`` /
  ``datetime`` / ``time`` with ``targetDataType: integer``: the JSON value is the ISO 8601 string and the reader
  converts it back to the SAS number (days or seconds since 1960-01-01), as the specification's ADaM example does.

Character ``length`` is the XPT storage width (:func:`converter.io.xpt.char_lengths`), so both files describe the
same variable. Rows are written in chunks straight to the file with orjson: no second copy of the data as
Python objects. :func:`read_dataset_json` returns the same frame as :func:`converter.io.xpt.read_xpt`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd

from converter import __version__
from converter.errors import ConformanceError, InputError, Problem, problem
from converter.io.xpt import (
    ColumnMeta,
    DatasetMeta,
    atomic_file,
    char_lengths,
    is_char,
    numeric_values,
    plain_texts,
    row_labels,
    temporal_kind,
)
from converter.spec.model import DatasetSpec, VariableSpec
from converter.text import CONTROL_RULE, control_mask, escape_controls, first_control

DATASET_JSON_VERSION = "1.1.0"
DATA_TYPES = ("string", "integer", "decimal", "float", "double", "boolean", "datetime", "date", "time", "URI")
TARGET_DATA_TYPES = ("integer", "decimal")
CHUNK_ROWS = 20_000
#: values with control characters listed per column before the rest are counted
MAX_LISTED = 20
_EPOCH_DATE = dt.date(1960, 1, 1)
_EPOCH_ORDINAL = _EPOCH_DATE.toordinal()
_EPOCH_DT = dt.datetime(1960, 1, 1)
_DATETIME_RE = re.compile(
    r"^([0-9]{4})-((0[1-9])|(1[0-2]))-((0[1-9])|([1-2][0-9])|(3[0-1]))T(([0-1][0-9])|(2[0-3])):([0-5][0-9])"
    r"(:([0-5][0-9]))(\.[0-9]+)?((([+-])(([0-1][0-9])|(2[0-3])):[0-5][0-9])|Z)?$"
)
_VERSION_RE = re.compile(r"^1\.1(\.(0|([1-9][0-9]*)))?$")
_ISO_TYPES = {"date": "date", "datetime": "datetime", "time": "time"}
# SAS numbers that Python's date/datetime (years 1..9999) and a time of day (0..24h) can express
_TEMPORAL_RANGE = {
    "date": (1 - _EPOCH_ORDINAL, dt.date.max.toordinal() - _EPOCH_ORDINAL + 1),
    "datetime": ((dt.datetime.min - _EPOCH_DT).total_seconds(), (dt.datetime.max - _EPOCH_DT).total_seconds()),
    "time": (0.0, 86400.0),
}


def item_group_oid(dataset: str) -> str:
    return f"IG.{dataset}"


def item_oid(dataset: str, variable: str) -> str:
    return f"IT.{dataset}.{variable}"


def column_type(var: VariableSpec) -> tuple[str, str | None]:
    """(dataType, targetDataType) of a spec variable, see the module doc."""
    if is_char(var):
        return _ISO_TYPES.get(var.type, "string"), None
    kind = temporal_kind(var.format)
    if kind is not None:
        return kind, "integer"
    return ("integer" if var.type == "integer" else "float"), None


def columns_metadata(df: pd.DataFrame | None, spec: DatasetSpec) -> list[dict[str, Any]]:
    """The ``columns`` array for a dataset (attribute order as in the specification)."""
    lengths = char_lengths(df, spec)
    keys = {k: i for i, k in enumerate(spec.keys, start=1)}
    out: list[dict[str, Any]] = []
    for var in sorted(spec.variables, key=lambda v: v.order):
        data_type, target = column_type(var)
        col: dict[str, Any] = {
            "itemOID": item_oid(spec.name, var.name),
            "name": var.name,
            "label": var.label,
            "dataType": data_type,
        }
        if target:
            col["targetDataType"] = target
        if var.name in lengths:
            col["length"] = lengths[var.name]
        if var.format:
            col["displayFormat"] = var.format
        if var.name in keys:
            col["keySequence"] = keys[var.name]
        out.append(col)
    return out


# --- value conversion ----------------------------------------------------------------------------------------------
def _iso_date(days: float) -> str:
    return dt.date.fromordinal(_EPOCH_ORDINAL + int(days)).isoformat()


def _iso_datetime(seconds: float) -> str:
    value = _EPOCH_DT + dt.timedelta(seconds=seconds)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


def _iso_time(seconds: float) -> str:
    whole = int(seconds)
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    frac = seconds - whole
    return text + (f"{frac:.6f}"[1:].rstrip("0") if frac else "")


def _from_iso(kind: str, text: str) -> float:
    if kind == "date":
        return float(dt.date.fromisoformat(text[:10]).toordinal() - _EPOCH_ORDINAL)
    if kind == "datetime":
        return (dt.datetime.fromisoformat(text).replace(tzinfo=None) - _EPOCH_DT).total_seconds()
    t = dt.time.fromisoformat(text)
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


_TO_ISO = {"date": _iso_date, "datetime": _iso_datetime, "time": _iso_time}


def _json_column(col: pd.Series, var: VariableSpec) -> list[Any]:
    """One column as JSON-ready Python values (None for missing)."""
    if is_char(var):
        text = col.to_numpy(dtype=object)
        texts = plain_texts(text)  # str and missing only: at once
        if texts is not None:
            return list(texts.tolist())
        return [v if isinstance(v, str) and v != "" else None for v in text]
    values = numeric_values(col)
    if values is None:
        raise ConformanceError([f"{var.name}: numeric variable holds non-numeric values"])
    data_type, _ = column_type(var)
    conv = _TO_ISO.get(data_type)
    if conv is not None:
        return [None if math.isnan(x) else conv(x) for x in values.tolist()]
    if data_type == "integer":
        return [None if math.isnan(x) else int(x) for x in values.tolist()]
    return [None if math.isnan(x) else x + 0.0 for x in values.tolist()]  # + 0.0: no negative zero, as in XPT


def check_for_dataset_json(df: pd.DataFrame, spec: DatasetSpec) -> list[str]:
    """Problems that stop a faithful Dataset-JSON file: column set/order, value types, non-finite numbers,
    fractional integers, temporal numbers outside what ISO 8601 can say."""
    problems: list[str] = []
    actual = [str(c) for c in df.columns]
    if actual != spec.column_names:
        problems.append(f"{spec.name}: columns {actual} are not the spec's {spec.column_names} in order")
        return problems
    label = row_labels(df)
    for var in spec.variables:
        col = df[var.name]
        if is_char(var):
            for pos, v in enumerate(col.to_numpy(dtype=object)):
                if v is not None and not isinstance(v, str) and not pd.isna(v):
                    problems.append(f"{spec.name}.{var.name}: {label(pos)}: {v!r} in a character variable")
            continue
        values = numeric_values(col)
        if values is None:
            problems.append(f"{spec.name}.{var.name}: numeric variable has dtype {col.dtype} with non-numbers")
            continue
        for i in np.flatnonzero(np.isinf(values)):
            problems.append(f"{spec.name}.{var.name}: {label(int(i))}: {values[i]} is not a JSON number")
        data_type, _ = column_type(var)
        finite = np.where(np.isfinite(values), values, 0.0)
        if var.type == "integer" or data_type == "date":
            for i in np.flatnonzero(np.floor(finite) != finite):
                problems.append(f"{spec.name}.{var.name}: {label(int(i))}: {values[i]!r} is not a whole number")
        if data_type in _TO_ISO:
            low, high = _TEMPORAL_RANGE[data_type]
            for i in np.flatnonzero((finite < low) | (finite >= high)):
                problems.append(f"{spec.name}.{var.name}: {label(int(i))}: {values[i]!r} is not a valid {data_type}")
    return problems


# --- writing -------------------------------------------------------------------------------------------------------
def _row_chunks(df: pd.DataFrame, spec: DatasetSpec, chunk_rows: int) -> Iterator[list[tuple[Any, ...]]]:
    ordered = sorted(spec.variables, key=lambda v: v.order)
    for start in range(0, len(df), chunk_rows):
        part = df.iloc[start : start + chunk_rows]
        cols = [_json_column(part[v.name], v) for v in ordered]
        yield list(zip(*cols, strict=True))


def dataset_header(
    df: pd.DataFrame,
    spec: DatasetSpec,
    *,
    study_oid: str | None = None,
    metadata_version_oid: str | None = None,
    metadata_ref: str | None = "define.xml",
    originator: str | None = None,
    source_system: tuple[str, str] | None = None,
    db_last_modified: str | None = None,
    created: str | None = None,
    file_oid: str | None = None,
) -> dict[str, Any]:
    """Top-level attributes (everything but ``rows``) in the specification's order; None-valued ones left out."""
    if source_system is None:
        source_system = ("inoconv", __version__)
    header: dict[str, Any] = {
        "datasetJSONCreationDateTime": created or dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "datasetJSONVersion": DATASET_JSON_VERSION,
        "fileOID": file_oid or f"{study_oid or 'STUDY'}.{spec.name}",
        "dbLastModifiedDateTime": db_last_modified,
        "originator": originator,
        "sourceSystem": {"name": source_system[0], "version": source_system[1]},
        "studyOID": study_oid,
        "metaDataVersionOID": metadata_version_oid,
        "metaDataRef": metadata_ref,
        "itemGroupOID": item_group_oid(spec.name),
        "records": len(df),
        "name": spec.name,
        "label": spec.label,
        "columns": columns_metadata(df, spec),
    }
    return {k: v for k, v in header.items() if v is not None}


def write_dataset_json(
    df: pd.DataFrame,
    spec: DatasetSpec,
    path: Path | str,
    *,
    ndjson: bool | None = None,
    chunk_rows: int = CHUNK_ROWS,
    checked: bool = False,
    **header: Any,
) -> Path:
    """Write ``df`` as Dataset-JSON v1.1 (``.ndjson`` suffix or ``ndjson=True``: the NDJSON form), atomically.

    ``header`` keywords go to :func:`dataset_header` (study_oid, metadata_version_oid, metadata_ref, originator,
    source_system, db_last_modified, created, file_oid). Raises ConformanceError when
    :func:`check_for_dataset_json` finds problems; ``checked=True``: the caller has just run it on this frame and
    spec and it found none (:func:`converter.io.package.write_package` checks the whole package first).
    """
    problems = [] if checked else check_for_dataset_json(df, spec)
    if problems:
        raise ConformanceError(problems)
    path = Path(path)
    if ndjson is None:
        ndjson = path.suffix.lower() == ".ndjson"
    head = dataset_header(df, spec, **header)
    with atomic_file(path) as fh:
        if ndjson:
            _write_ndjson(fh, head, df, spec, chunk_rows)
        else:
            _write_json(fh, head, df, spec, chunk_rows)
    return path


def _write_json(fh: IO[bytes], head: dict[str, Any], df: pd.DataFrame, spec: DatasetSpec, chunk_rows: int) -> None:
    fh.write(orjson.dumps(head)[:-1])  # drop the closing brace: "rows" comes last
    fh.write(b',"rows":[')
    first = True
    for rows in _row_chunks(df, spec, chunk_rows):
        if not first:
            fh.write(b",")
        fh.write(orjson.dumps(rows)[1:-1])
        first = False
    fh.write(b"]}")


def _write_ndjson(fh: IO[bytes], head: dict[str, Any], df: pd.DataFrame, spec: DatasetSpec, chunk_rows: int) -> None:
    fh.write(orjson.dumps(head) + b"\n")
    for rows in _row_chunks(df, spec, chunk_rows):
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))


# --- reading -------------------------------------------------------------------------------------------------------
def load_dataset_json(path: Path | str) -> tuple[dict[str, Any], list[list[Any]]]:
    """(metadata object, rows) of a Dataset-JSON file in either form (NDJSON by suffix or by content)."""
    raw = Path(path).read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(problem(str(path), "byte 0", "", "", "encoding", "UTF-16 text: Dataset-JSON is UTF-8"))
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (editors on Windows add one): not content
        raw = raw[3:]
    if not raw.strip():
        raise ValueError("empty file")
    first_line, _, rest = raw.partition(b"\n")
    ndjson = str(path).lower().endswith(".ndjson")
    if not ndjson and rest.strip():
        try:
            head = orjson.loads(first_line)
            ndjson = isinstance(head, dict) and "rows" not in head and rest.lstrip().startswith(b"[")
        except orjson.JSONDecodeError:
            ndjson = False
    if ndjson:
        head = orjson.loads(first_line)
        rows = [orjson.loads(line) for line in rest.splitlines() if line.strip()]
        return head, rows
    doc = orjson.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a Dataset-JSON file holds one JSON object")
    rows = doc.pop("rows", None) or []
    return doc, rows


def read_dataset_json(path: Path | str) -> tuple[pd.DataFrame, DatasetMeta]:
    """Read Dataset-JSON (either form) back to the data contract, as :func:`converter.io.xpt.read_xpt` does:
    character -> str/None ("" -> None), numbers -> float64, ISO dates with targetDataType integer -> SAS numbers.

    A file that is not Dataset-JSON (not JSON, truncated, not UTF-8, rows that do not fit the columns) raises
    InputError naming the file and where in it; so does a name, label or character value holding a control
    character (:func:`control_problems`: the rule of :mod:`converter.text`, tab allowed). Bytes read before in
    this process are not parsed again (:mod:`converter.io.read_cache`)."""
    from converter.io.read_cache import by_content

    return by_content(Path(path), "dataset-json", _read_checked)


def _read_checked(path: Path) -> tuple[pd.DataFrame, DatasetMeta]:
    try:
        return _read_dataset_json(path)
    except InputError:
        raise
    except orjson.JSONDecodeError as exc:
        raise InputError(problem(str(path), f"line {exc.lineno} column {exc.colno}", "", "", "json",
                                 f"not valid JSON: {exc.msg}")) from None  # fmt: skip
    except UnicodeDecodeError as exc:
        raise InputError(problem(str(path), f"byte {exc.start}", "", "", "encoding", "not UTF-8 text")) from None
    except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
        msg = f"not a readable Dataset-JSON file: {exc}"
        raise InputError(problem(str(path), "", "", "", "dataset-json", msg)) from None


def _read_dataset_json(path: Path | str) -> tuple[pd.DataFrame, DatasetMeta]:
    head, rows = load_dataset_json(path)
    cols = head.get("columns") or []
    n = len(rows)
    if head.get("records") != n:
        raise ValueError(f"{path}: records says {head.get('records')}, the file has {n} rows")
    width = len(cols)
    for i, r in enumerate(rows):
        if not isinstance(r, list) or len(r) != width:
            raise ValueError(
                f"{path}: row {i + 1} has {len(r) if isinstance(r, list) else '?'} values, {width} columns are defined"
            )
    data: dict[str, pd.Series] = {}
    metas: list[ColumnMeta] = []
    by_column = list(zip(*rows, strict=True)) if rows else [()] * width  # rows -> columns at once
    for j, c in enumerate(cols):
        values = by_column[j]
        data_type = c.get("dataType", "string")
        target = c.get("targetDataType")
        numeric = data_type in ("integer", "decimal", "float", "double", "boolean") or target in TARGET_DATA_TYPES
        if numeric:
            data[c["name"]] = pd.Series(_to_float(values, data_type, target), dtype="float64")
        else:
            obj = np.empty(n, dtype=object)
            obj[:] = [v if isinstance(v, str) and v != "" else None for v in values]
            data[c["name"]] = pd.Series(obj, dtype=object)
        metas.append(
            ColumnMeta(
                name=c["name"],
                label=c.get("label", ""),
                numeric=numeric,
                length=c.get("length"),
                format=c.get("displayFormat"),
                data_type=data_type,
                target_data_type=target,
                key_sequence=c.get("keySequence"),
                item_oid=c.get("itemOID"),
            )
        )
    df = pd.DataFrame(data, index=pd.RangeIndex(n)) if cols else pd.DataFrame(index=pd.RangeIndex(n))
    problems = control_problems(str(path), head, df)
    if problems:
        raise InputError(problems, context=str(path))
    extra = {k: v for k, v in head.items() if k not in ("columns", "name", "label", "records")}
    return df, DatasetMeta(
        name=head.get("name", ""), label=head.get("label", ""), columns=tuple(metas), records=n, extra=extra
    )


def _control_message(value: str) -> str:
    at = first_control(value, allow_tab=True) or 0
    return f"control character {escape_controls(value[at])} at position {at + 1}: refused (tab aside)"


def control_problems(file: str, head: dict[str, Any], df: pd.DataFrame) -> list[Problem]:
    """Control characters (:mod:`converter.text`, tab allowed: JSON holds it) in the metadata's names and labels
    and, column-wise, in the character values; values listed per column up to ``MAX_LISTED``."""
    out: list[Problem] = []
    texts = [("name", "", head.get("name")), ("label", "", head.get("label"))]
    for c in head.get("columns") or []:
        if isinstance(c, dict):
            texts += [(key, str(c.get("name", "")), c.get(key)) for key in ("name", "label")]
    for record, field, text in texts:
        if isinstance(text, str) and first_control(text, allow_tab=True) is not None:
            out.append(problem(file, record, field, text, CONTROL_RULE, _control_message(text)))
    for name in df.columns:
        if df[name].dtype != object:
            continue
        hits = np.flatnonzero(control_mask(df[name], allow_tab=True))
        for i in hits[:MAX_LISTED].tolist():
            value = str(df[name].iat[i])
            out.append(problem(file, f"row {i + 1}", str(name), value, CONTROL_RULE, _control_message(value)))
        if len(hits) > MAX_LISTED:
            more = f"{len(hits) - MAX_LISTED} more values with control characters"
            out.append(problem(file, "", str(name), "", CONTROL_RULE, more))
    return out


def _to_float(values: Sequence[Any], data_type: str, target: str | None) -> list[float]:
    out: list[float] = []
    for v in values:
        if v is None or v == "":
            out.append(math.nan)
        elif isinstance(v, str):
            out.append(_from_iso(data_type, v) if data_type in _TO_ISO else float(v))
        else:
            out.append(float(v))
    return out


# --- validation ----------------------------------------------------------------------------------------------------
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "decimal": (str,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "datetime": (str,),
    "date": (str,),
    "time": (str,),
    "URI": (str,),
}


def validate_dataset_json(path: Path | str) -> list[str]:
    """Structural check of a Dataset-JSON v1.1 file against the specification's rules: required attributes,
    version and date-time patterns, column attributes and enumerations, and every row value's JSON type."""
    problems: list[str] = []
    try:
        head, rows = load_dataset_json(path)
    except (ValueError, orjson.JSONDecodeError) as exc:
        return [f"{path}: not JSON: {exc}"]
    for key in ("datasetJSONCreationDateTime", "datasetJSONVersion", "itemGroupOID", "records", "name", "label",
                "columns"):  # fmt: skip
        if key not in head:
            problems.append(f"{path}: required attribute {key} is missing")
    if not _VERSION_RE.match(str(head.get("datasetJSONVersion", ""))):
        problems.append(f"{path}: datasetJSONVersion {head.get('datasetJSONVersion')!r} is not 1.1.x")
    for key in ("datasetJSONCreationDateTime", "dbLastModifiedDateTime"):
        if key in head and not _DATETIME_RE.match(str(head[key])):
            problems.append(f"{path}: {key} {head[key]!r} is not an ISO 8601 date-time")
    ss = head.get("sourceSystem")
    if ss is not None and not (isinstance(ss, dict) and "name" in ss and "version" in ss):
        problems.append(f"{path}: sourceSystem needs name and version")
    cols = head.get("columns") or []
    for c in cols:
        where = f"{path}: column {c.get('name')}"
        for key in ("itemOID", "name", "label", "dataType"):
            if key not in c:
                problems.append(f"{where}: {key} is missing")
        if c.get("dataType") not in DATA_TYPES:
            problems.append(f"{where}: dataType {c.get('dataType')!r} not in {DATA_TYPES}")
        if "targetDataType" in c and c["targetDataType"] not in TARGET_DATA_TYPES:
            problems.append(f"{where}: targetDataType {c['targetDataType']!r} not in {TARGET_DATA_TYPES}")
        for key in ("length", "keySequence"):
            if key in c and not (isinstance(c[key], int) and c[key] >= 1):
                problems.append(f"{where}: {key} must be an integer >= 1")
    if head.get("records") != len(rows):
        problems.append(f"{path}: records {head.get('records')} but {len(rows)} rows")
    types = [_JSON_TYPES.get(c.get("dataType", ""), (str,)) for c in cols]
    bad = 0
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(cols):
            problems.append(f"{path}: row {i + 1} does not have {len(cols)} values")
            continue
        for j, v in enumerate(row):
            ok = v is None or (isinstance(v, types[j]) and not (isinstance(v, bool) and bool not in types[j]))
            if not ok:
                bad += 1
                if bad <= 20:
                    problems.append(
                        f"{path}: row {i + 1} column {cols[j].get('name')}: {v!r} is not {cols[j].get('dataType')}"
                    )
    if bad > 20:
        problems.append(f"{path}: ... and {bad - 20} more values of the wrong type")
    return problems
