"""CSV folder of CRF records: one ``<FORM OID>.csv`` per form.

Written as UTF-8 without BOM, ``\\n`` line ends, header = the form's field names in schema order, every form
present even when it has no records, missing values as empty fields, numbers in their shortest exact text
(``12``, ``0.1``), quoting only where a value needs it (comma, quote, line end, leading/trailing space).

Read with pandas' C parser as strings only (``dtype=str, keep_default_na=False``): nothing is coerced
silently, ``""`` means missing, and the record checks judge every value. Accepted: a UTF-8 BOM, ``\\r\\n``,
``\\n`` or ``\\r`` line ends (mixed too), quoted fields of any size, non-ASCII text. Reported (as problems,
never tracebacks): bytes that are not UTF-8 (with the line), an empty file, an unparseable line, rows with
fewer fields than the header, duplicated / unknown / missing columns, unknown or missing form files.
``row N`` in messages counts data records from 1 (the header and blank lines not counted).

Hostile values (the rule of :mod:`converter.text`, ``control-character``): a value holding a control character
(C0 including CR and LF inside a quoted value, DEL, C1; tab allowed, CSV holds it) is refused with file, row
and field, found column-wise after parsing (:func:`converter.text.control_mask`). A file holding a NUL byte is
not given to pandas at all: its C parser ends a value at a NUL (``10<NUL>01`` is read as ``10``, which can merge
two subjects into one); the csv module reads it instead, only to name every value that holds a control character.

Limits: a field (the bytes between two separators outside quotes) longer than :data:`MAX_FIELD_BYTES` (1 MiB)
is refused before parsing, with its line, so one runaway quote or a huge value cannot make pandas build a
string the size of the file; a CRF value is at most a few hundred characters. Memory is about three times the
file's size (its bytes, the separator positions, the parsed strings); registry-sized input is read in runs of
records by :mod:`converter.records.stream`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import Problem, problem
from converter.io.atomic import atomic_dir, atomic_write
from converter.records.checks import field_strings
from converter.records.raw import RawRead, RawTable, empty_raw
from converter.records.schema import Form, FormSchema, load_forms
from converter.text import CONTROL_RULE, control_mask, escape_controls, first_control

_NEEDS_QUOTES = re.compile(r'[",\r\n]|^\s|\s$')
_NEEDS_QUOTES_JOINED = re.compile(r'[",\r\n]|^\s|\s$|\s\0|\0\s')


#: longest field accepted, in bytes (separators outside quotes delimit fields)
MAX_FIELD_BYTES = 1 << 20
#: problems of one kind listed per file before the rest are left out
MAX_LISTED = 1000


def form_file(folder: Path, form: str) -> Path:
    return folder / f"{form}.csv"


# ------------------------------------------------------------------------------------------------- writer


def _csv_cells(strings: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Canonical strings (``None`` = missing) as CSV cells, quoted where needed."""
    out = strings.copy()
    present = np.asarray(pd.notna(out), dtype=bool)
    out[~present] = ""
    vals = out[present]
    if len(vals) and _NEEDS_QUOTES_JOINED.search("\0".join(vals.tolist())):
        out[present] = [('"' + v.replace('"', '""') + '"') if _NEEDS_QUOTES.search(v) else v for v in vals]
    return out


def form_csv_text(frame: pd.DataFrame, form: Form) -> str:
    """The CSV text of one form: header line, then one line per record."""
    header = ",".join(form.columns) + "\n"
    n = len(frame)
    if n == 0:
        return header
    cols: list[np.ndarray[Any, Any]] = []
    for name, f in form.fields.items():
        if name in frame.columns:
            cols.append(_csv_cells(field_strings(frame[name], f)))
        else:
            cols.append(np.full(n, "", dtype=object))
    sep = np.full(n, ",", dtype=object)
    parts: list[np.ndarray[Any, Any]] = []
    for k, c in enumerate(cols):
        if k:
            parts.append(sep)
        parts.append(c)
    parts.append(np.full(n, "\n", dtype=object))
    return header + "".join(np.stack(parts, axis=1).ravel().tolist())


def write_csv_files(records: Mapping[str, pd.DataFrame], folder: Path, schema: FormSchema) -> None:
    """Write every form of the schema into ``folder`` (which must exist), each file atomically."""
    unknown = set(records) - set(schema.forms)
    if unknown:
        raise ValueError(f"forms not in the schema: {sorted(unknown)}")
    for oid, form in schema.forms.items():
        frame = records.get(oid)
        text = form_csv_text(frame if frame is not None else pd.DataFrame(columns=form.columns), form)
        with atomic_write(form_file(folder, oid), fsync=False) as fh:
            fh.write(text.encode("utf-8"))


def write_csv(records: Mapping[str, pd.DataFrame], folder: Path | str, schema: FormSchema | None = None) -> None:
    """Write the CSV folder as a whole (it appears complete or not at all).

    An existing folder is replaced only if it holds nothing but ``*.csv`` files (a previous record folder);
    anything else there is an error rather than silently deleted.
    """
    schema = schema or load_forms()
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise FileExistsError(f"{folder}: exists and is not a folder")
        other = [p.name for p in folder.iterdir() if not (p.is_file() and p.suffix.lower() == ".csv")]
        if other:
            listed = ", ".join(sorted(other)[:5])
            raise FileExistsError(f"{folder}: not replaced, it holds more than a record folder's CSV files ({listed})")
    with atomic_dir(folder) as tmp:
        write_csv_files(records, tmp, schema)


# ------------------------------------------------------------------------------------------------- reader


def _decode_problem(file: str, data: bytes, err: UnicodeDecodeError) -> Problem:
    line = data.count(b"\n", 0, err.start) + 1
    bad = data[err.start : err.start + 4]
    return problem(
        file,
        f"line {line}",
        "",
        bad.hex(" "),
        "encoding",
        f"not UTF-8: byte 0x{data[err.start]:02X} at byte offset {err.start} (save the file as UTF-8)",
    )


def header_names(text_start: str) -> list[str]:
    """The header's field names, parsed with the csv module (no pandas mangling of duplicates)."""
    reader = csv.reader(io.StringIO(text_start, newline=""))
    try:
        return next(reader)
    except (StopIteration, csv.Error):
        return []


def field_layout(data: bytes, limit: int = MAX_FIELD_BYTES) -> tuple[int | None, np.ndarray[Any, Any]]:
    """(byte offset of the first field longer than ``limit`` bytes or None, fields per non-blank record) of CSV
    bytes, vectorised over one scan of the bytes.

    Quotes toggle (``""`` inside quotes toggles twice); commas and line ends count only outside quotes. A field is
    delimited by commas, LFs and CRs; a record ends at an LF or a lone CR. The counts tell a short record from one
    whose last fields are empty, which pandas' parser reads alike; the long field, a stray quote (the parser would
    swallow the rest of the text into one value).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if len(buf) == 0:
        return None, np.zeros(0, dtype=np.int64)
    quotes = np.flatnonzero(buf == 34)
    commas = np.flatnonzero(buf == 44)
    lf = buf == 10
    cr = buf == 13
    breaks = np.flatnonzero(lf | cr)  # LFs and CRs, where fields end
    if len(quotes):
        commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
        breaks = breaks[np.searchsorted(quotes, breaks) % 2 == 0]
    long: int | None = None
    # a field lies between two line breaks: when no stretch between breaks is longer than the limit, no field is
    # (the usual case, decided without the commas); else the separators, two sorted runs the stable sort (timsort)
    # merges in one pass
    if len(buf) > limit and np.diff(breaks, prepend=-1, append=len(buf)).max() - 1 > limit:
        seps = np.sort(np.concatenate([commas, breaks]), kind="stable")
        bounds = np.concatenate(([-1], seps, [len(buf)]))
        over = np.flatnonzero(np.diff(bounds) - 1 > limit)
        long = int(bounds[over[0]] + 1) if len(over) else None
    # records end at an LF, or at a CR not followed by an LF
    at = breaks
    is_cr = buf[at] == 13
    follow = np.minimum(at + 1, len(buf) - 1)
    lone = ~is_cr | (at + 1 >= len(buf)) | (buf[follow] != 10)
    ends = at[lone]
    if len(ends) == 0 or ends[-1] != len(buf) - 1:
        ends = np.append(ends, len(buf))
    starts = np.concatenate(([0], ends[:-1] + 1))
    length = ends - starts
    # a CRLF record ends at its LF: the CR before it is not content
    length -= (ends < len(buf)) & (buf[np.minimum(ends, len(buf) - 1)] == 10) & (ends > 0) & cr[np.maximum(ends - 1, 0)]
    fields = np.searchsorted(commas, ends) - np.searchsorted(commas, starts) + 1
    return long, np.asarray(fields[length > 0], dtype=np.int64)


def header_problems(file: str, header: list[str], form: Form) -> tuple[list[Problem], tuple[str, ...]]:
    """Duplicated, unknown and missing columns of a form file's header; and the missing columns."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(problem(file, "line 1", name, "", "duplicate-column", f"column {name!r} appears twice"))
        seen.add(name)
    for name in header:
        if name not in form.fields:
            problems.append(
                problem(file, "line 1", name, "", "unknown-column", f"column {name!r} is not a field of {form.oid}")
            )
    missing = tuple(c for c in form.columns if c not in seen)
    for name in missing:
        problems.append(
            problem(file, "line 1", name, "", "missing-column", f"column {name!r} of {form.oid} is missing")
        )
    return problems, missing


def parse_rows(
    data: bytes, file: str, form: Form, header: list[str], first_row: int = 1, first_line: int = 2
) -> tuple[pd.DataFrame | None, list[Problem]]:
    """The form fields of CSV bytes that start with the header line (object strings, ``None`` = empty).

    ``data`` is a whole file or the header line followed by a run of whole records cut from it; ``first_row``
    and ``first_line`` are the number of its first data record and of the line after the header in the file,
    so messages name the record and line of the file. ``None`` when the text is not readable as CSV.
    """
    problems: list[Problem] = []
    if b"\0" in data:  # pandas' C parser would end the value at the NUL: name the values, read nothing
        return None, nul_problems(data, file, header, first_row)
    long, counts = field_layout(data)
    if long is not None:
        line = data.count(b"\n", 0, long) + first_line - 1
        msg = f"a field longer than {MAX_FIELD_BYTES} bytes, the limit (a stray quote makes one of the rest)"
        return None, [problem(file, f"line {line}", "", "", "limit", msg)]
    try:
        raw = pd.read_csv(
            io.BytesIO(data),
            header=None,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            engine="c",
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        return None, [problem(file, "", "", "", "empty-file", "empty file: expected a header line")]
    except (pd.errors.ParserError, ValueError) as err:
        msg = str(err).strip()
        m = re.search(r"line (\d+)", msg)
        where = f"line {int(m.group(1)) + first_line - 2}" if m else ""
        if m and first_line != 2:
            msg = msg.replace(m.group(0), where)
        return None, [problem(file, where, "", "", "csv", f"not readable as CSV: {msg}")]
    body = raw.iloc[1:]
    width = raw.shape[1]
    if width != len(header):
        # the C parser sizes rows by the first line; a header with fewer fields than later rows is an error there
        header = header[:width] + [f"column {k + 1}" for k in range(len(header), width)]
    arr = body.to_numpy(dtype=object)
    if len(counts) == len(raw):  # the parser pads short records with "": find them in the raw text
        for i in np.flatnonzero(counts[1:] < width)[:1000]:
            problems.append(
                problem(
                    file,
                    f"row {int(i) + first_row}",
                    "",
                    "",
                    "csv",
                    f"{counts[i + 1]} fields where the header has {width}",
                )
            )
    keep: dict[str, np.ndarray[Any, Any]] = {}
    for k, name in enumerate(header):
        if name in form.fields and name not in keep:
            col = arr[:, k].copy() if arr.size else np.zeros(0, dtype=object)
            # every value text (no record padded with NaN): the empty ones, without pd.isna's look at each
            text = pd.api.types.infer_dtype(col, skipna=False) == "string"
            col[(col == "") if text else (pd.isna(col) | (col == ""))] = None
            keep[name] = col
    frame = pd.DataFrame(keep, columns=list(keep), dtype=object) if keep else pd.DataFrame(index=range(len(body)))
    if not no_control_in_values(data, len(raw)):
        problems += control_problems(frame, file, first_row)
    return frame, problems


#: the bytes that are never a control character nor part of one: printable ASCII and tab
_PLAIN_BYTES = bytes(range(32, 127)) + b"\t"


def no_control_in_values(data: bytes, lines: int) -> bool:
    """Whether no value parsed from CSV bytes can hold a control character (tab aside), judged on the bytes:
    True only when every control character of ``data`` is an LF that ends one of the ``lines`` lines the
    parser read (header included; no CR, no blank line), and the rest is printable ASCII, tab, or UTF-8 text
    without controls. False means "look at the values" (:func:`control_problems`), never that one holds one.

    An LF inside a quoted value leaves the parser fewer lines than LFs (each line it reads ends at an LF of
    its own, the last one perhaps at the end of the bytes), so the count proves none is there."""
    rest = data.translate(None, _PLAIN_BYTES)  # the LFs, the other controls and the non-ASCII bytes
    if b"\r" in rest or b"\n\n" in data or data.startswith(b"\n"):
        return False
    ends = rest.count(b"\n")
    if lines != ends + (0 if data.endswith(b"\n") else 1):
        return False
    try:
        other = rest.replace(b"\n", b"").decode("utf-8")  # whole UTF-8 sequences: their bytes are all >= 0x80
    except UnicodeDecodeError:
        return False
    return first_control(other, allow_tab=True) is None


def _control_message(value: str) -> str:
    at = first_control(value, allow_tab=True) or 0
    return f"control character {escape_controls(value[at])} at position {at + 1}: refused in a value (tab aside)"


def control_problems(
    frame: pd.DataFrame, file: str, first_row: int = 1, where: Callable[[int], str] | None = None
) -> list[Problem]:
    """A problem (rule ``control-character``) per value of ``frame`` holding a control character, tab allowed;
    column-wise, each distinct value tested once. A row is named ``row N`` (``first_row`` is the record number
    of the frame's first row) or by ``where(i)``."""
    out: list[Problem] = []
    for name in frame.columns:
        hits = np.flatnonzero(control_mask(frame[name], allow_tab=True))
        for i in hits[:MAX_LISTED].tolist():
            value = str(frame[name].iat[i])
            record = where(i) if where is not None else f"row {i + first_row}"
            out.append(problem(file, record, str(name), value, CONTROL_RULE, _control_message(value)))
        if len(hits) > MAX_LISTED:
            more = f"{len(hits) - MAX_LISTED} more values with control characters in this column"
            out.append(problem(file, "", str(name), "", CONTROL_RULE, more))
    return out


def keyed_control_problems(frame: pd.DataFrame, file: str, form: Form) -> list[Problem]:
    """:func:`control_problems` for rows without row numbers (Spark), each named by its form's key fields."""

    def where(i: int) -> str:
        return " ".join(f"{k}={escape_controls(frame[k].iat[i])}" for k in form.key if k in frame.columns)

    return control_problems(frame, file, where=where)


def nul_problems(data: bytes, file: str, header: list[str], first_row: int = 1) -> list[Problem]:
    """The values holding control characters of CSV bytes that hold a NUL, read by the csv module (which keeps
    NUL, unlike pandas' parser); a NUL outside any value (e.g. in the header) is named by its line."""
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    out: list[Problem] = []
    row = first_row - 1
    try:
        next(reader, None)  # the header: its names are judged by header_problems
        for rec in reader:
            if not rec or rec == [""]:
                continue
            row += 1
            for k, value in enumerate(rec):
                if len(out) < MAX_LISTED and first_control(value, allow_tab=True) is not None:
                    name = header[k] if k < len(header) else f"column {k + 1}"
                    out.append(problem(file, f"row {row}", name, value, CONTROL_RULE, _control_message(value)))
    except csv.Error as err:
        out.append(problem(file, f"row {row + 1}", "", "", "csv", f"not readable as CSV: {err}"))
    if not out:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        out.append(problem(file, f"line {line}", "", "", CONTROL_RULE, "a NUL byte: refused in a CSV file"))
    return out


def read_form_csv(path: Path, form: Form) -> tuple[RawTable, list[Problem]]:
    file = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return empty_raw(form, file), [problem(file, "", "", "", "io", f"cannot read: {err.strerror or err}")]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        head_text = data[: 1 << 16].decode("utf-8", errors="ignore")
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return empty_raw(form, file), [_decode_problem(file, data, err)]
    if not data.strip():
        return empty_raw(form, file), [problem(file, "", "", "", "empty-file", "empty file: expected a header line")]
    header = header_names(head_text)
    problems, missing = header_problems(file, header, form)
    frame, found = parse_rows(data, file, form, header)
    if frame is None:
        return empty_raw(form, file), [*problems, *found]
    return RawTable(form=form.oid, file=file, frame=frame, row_offset=1, missing_columns=missing), problems + found


def form_files(folder: Path, schema: FormSchema) -> tuple[dict[str, Path | None], list[Problem]]:
    """Each form's CSV file in a record folder (``None`` when missing), with the unknown and missing files."""
    problems: list[Problem] = []
    files = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() == ".csv"}
    for stem, p in files.items():
        if stem not in schema.forms:
            problems.append(problem(str(p), "", "", stem, "unknown-form", f"{p.name}: no form {stem!r} in the schema"))
    found: dict[str, Path | None] = {}
    for oid in schema.forms:
        found[oid] = files.get(oid)
        if found[oid] is None:
            problems.append(
                problem(str(form_file(folder, oid)), "", "", "", "missing-form", f"no {oid}.csv in the folder")
            )
    return found, problems


def read_csv_folder(folder: Path | str, schema: FormSchema | None = None) -> RawRead:
    """Read a CSV record folder into raw per-form tables plus every structural problem."""
    schema = schema or load_forms()
    folder = Path(folder)
    tables: dict[str, RawTable] = {}
    files, problems = form_files(folder, schema)
    for oid, form in schema.forms.items():
        path = files[oid]
        if path is None:
            tables[oid] = empty_raw(form, str(form_file(folder, oid)))
            continue
        table, found = read_form_csv(path, form)
        tables[oid] = table
        problems += found
    return RawRead(tables=tables, problems=problems)
