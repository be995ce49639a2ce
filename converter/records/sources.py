"""Read and write CRF record sets: ODM-XML 1.3.2 files and CSV folders, checked as a whole.

``read_records(path)`` detects the format by content (a folder is a CSV record folder; a file must be
XML whose root is ODM), reads raw strings, runs every record check and raises one
:class:`~converter.errors.InputError` listing every problem; otherwise it returns canonical
:data:`~converter.records.model.Records`. ``write_records(records, path, fmt)`` writes atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd

from converter.errors import InputError, Problem, problem
from converter.records.checks import check_tables, typed_records
from converter.records.csv_io import read_csv_folder, write_csv
from converter.records.model import Records
from converter.records.odm import TAG_ODM, read_odm, sniff_root, write_odm
from converter.records.raw import RawRead
from converter.records.schema import FormSchema, load_forms

Format = Literal["odm", "csv"]
FORMATS: tuple[Format, ...] = ("odm", "csv")
log = logging.getLogger(__name__)


def _fail(path: Path, rule: str, message: str, record: str = "") -> InputError:
    return InputError([problem(str(path), record, "", "", rule, message)], context=str(path))


def detect_format(path: Path | str) -> Format:
    """``"csv"`` for a folder, ``"odm"`` for an ODM-XML file; otherwise an InputError saying what it is.

    Judged by content, not by name: an empty file, a ``.xml`` that is really CSV or text, XML whose root is
    not ``ODM`` are all rejected with a message naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "not-found", "no such file or folder")
    if path.is_dir():
        return "csv"
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as err:
        raise _fail(path, "io", f"cannot read: {err.strerror or err}") from None
    if not head.strip():
        raise _fail(path, "empty-file", "empty file: expected an ODM-XML document or a folder of CSV files")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith((b"\xff\xfe", b"\xfe\xff")) or start[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        raise _fail(path, "encoding", "UTF-16 text: save the ODM file as UTF-8")
    if not start.startswith(b"<"):
        looks = "CSV" if b"," in head.split(b"\n", 1)[0] else "text"
        raise _fail(path, "format", f"not XML (it looks like {looks}): expected an ODM-XML file or a CSV folder")
    root = sniff_root(path)
    if root is None:
        return "odm"  # XML, but broken early: the reader reports the parse error with its line
    if root != TAG_ODM:
        raise _fail(path, "format", f"XML but not ODM 1.3: the root element is {root}", record="line 1")
    return "odm"


def read_raw(path: Path | str, schema: FormSchema | None = None, *, validate: bool = True) -> RawRead:
    """The raw tables and reading problems of an ODM file or CSV folder (no record checks yet)."""
    path = Path(path)
    schema = schema or load_forms()
    fmt = detect_format(path)
    if fmt == "csv":
        return read_csv_folder(path, schema)
    return read_odm(path, schema, validate=validate)


def read_records(
    path: Path | str,
    schema: FormSchema | None = None,
    *,
    validate: bool = True,
    warnings: list[Problem] | None = None,
) -> Records:
    """Read, check and type a record set; one InputError with every problem if anything is wrong.

    ``validate=False`` skips the ODM XSD validation (the slowest part for very large files); every record
    check still runs. Warnings (e.g. ``event-after-death``) do not fail the read: they are logged and, when
    a list is given as ``warnings``, appended to it.
    """
    path = Path(path)
    schema = schema or load_forms()
    raw = read_raw(path, schema, validate=validate)
    report = check_tables(raw.tables, schema)
    problems = raw.problems + report.errors
    if warnings is not None:
        warnings.extend(report.warnings)
    for w in report.warnings[:20]:
        log.warning("%s", w)
    if problems:
        raise InputError(problems, context=str(path))
    return typed_records(raw.tables, schema, report.parsed)


def write_records(
    records: Mapping[str, pd.DataFrame],
    path: Path | str,
    fmt: Format,
    schema: FormSchema | None = None,
    *,
    creation_datetime: str | None = None,
) -> None:
    """Write ``records`` as an ODM file (``fmt="odm"``) or a CSV folder (``fmt="csv"``), atomically."""
    schema = schema or load_forms()
    path = Path(path)
    if fmt == "odm":
        write_odm(records, path, schema, creation_datetime=creation_datetime)
    elif fmt == "csv":
        write_csv(records, path, schema)
    else:
        raise ValueError(f"unknown record format {fmt!r}; use one of {', '.join(FORMATS)}")
