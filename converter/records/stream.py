"""Record sets read a partition of subjects at a time, so memory follows the partition, not the registry.

A CSV folder has each subject's records spread over every form file, so it is read in one streaming pass per
form file: runs of whole records are cut from the bytes (never inside a quoted field), parsed with the same
code as :func:`converter.records.csv_io.read_form_csv`, and each row is spilled to the partition of its
subject (:func:`converter.records.partitions.partition_of`, CRC-32 of SUBJID) with its row number in the file.
:func:`load_csv_part` puts one partition's spilled rows back together as raw tables whose messages still name
the original file and row. An ODM file keeps each subject in one ``SubjectData`` element, so it is cut into
runs of whole subjects instead (:func:`converter.records.odm.odm_slices`); nothing is spilled.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from converter.errors import Problem, problem
from converter.records.checks import RawRead, RawTable, empty_raw
from converter.records.csv_io import form_file, form_files, header_names, header_problems, parse_rows
from converter.records.partitions import partition_of
from converter.records.schema import Form, FormSchema

#: bytes of a form file parsed at a time while spilling
CHUNK_BYTES = 1 << 25


class RowLabels(Sequence[str]):
    """``row N`` of each row of a partition: its record number in the original file, made when asked for."""

    def __init__(self, rows: np.ndarray[Any, Any]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return RowLabels(self.rows[i])
        return f"row {int(self.rows[i])}"


@dataclass(frozen=True)
class CsvPlan:
    """Where each form's rows come from, how many partitions, and the folder's structural problems."""

    folder: Path
    files: dict[str, Path | None]
    parts: int
    subjects: int
    problems: list[Problem]


def count_subjects(files: dict[str, Path | None], schema: FormSchema) -> int:
    """Distinct SUBJID values of the first form keyed by subject alone (one row per subject), read as a column."""
    for oid, form in schema.forms.items():
        path = files.get(oid)
        if path is None or tuple(form.key) != ("SUBJID",):
            continue
        try:
            col = pd.read_csv(path, usecols=["SUBJID"], dtype=str, keep_default_na=False, engine="c")
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue  # the spill pass reports what is wrong with the file
        return int(col["SUBJID"].nunique())
    return 0


def plan_csv(folder: Path, schema: FormSchema, subjects_per_part: int) -> CsvPlan:
    files, problems = form_files(folder, schema)
    n = count_subjects(files, schema)
    parts = max(1, -(-n // max(1, subjects_per_part)))
    return CsvPlan(folder=folder, files=files, parts=parts, subjects=n, problems=problems)


def _cut(data: bytes, quotes_before: int) -> int:
    """End (exclusive) of the last whole record in ``data``: after a line end outside quotes; 0 if none."""
    end = len(data)
    while True:
        nl = data.rfind(b"\n", 0, end)
        if nl < 0:
            return 0
        if (quotes_before + data.count(b'"', 0, nl)) % 2 == 0:
            return nl + 1
        end = nl


def _pieces(path: Path, chunk: int) -> Iterator[tuple[bytes, bytes, int, Problem | None]]:
    """(header line, run of whole records, line number of its first line, problem) of a form file."""
    file = str(path)
    with path.open("rb") as fh:
        data = fh.read(chunk).removeprefix(b"\xef\xbb\xbf")
        while b"\n" not in data:
            more = fh.read(chunk)
            if not more:
                break
            data += more
        nl = data.find(b"\n")
        head = data if nl < 0 else data[: nl + 1]
        buf = data[len(head) :]
        line = 2
        yielded = False
        while True:
            more = fh.read(chunk)
            final = not more
            buf += more
            cut = len(buf) if final else _cut(buf, 0)
            piece, buf = buf[:cut], buf[cut:]
            if piece.strip():
                try:
                    piece.decode("utf-8")
                except UnicodeDecodeError as err:
                    at = line + piece.count(b"\n", 0, err.start)
                    msg = f"not UTF-8: byte 0x{piece[err.start]:02X} in line {at} (save the file as UTF-8)"
                    bad = piece[err.start : err.start + 4].hex(" ")
                    yield head, b"", line, problem(file, f"line {at}", "", bad, "encoding", msg)
                    return
                yield head, piece, line, None
                yielded = True
            line += piece.count(b"\n")
            if final:
                if not yielded and head.strip():
                    yield head, b"", line, None  # a header and no records
                return


def spill_csv_form(path: Path, form: Form, parts: int, workdir: Path, chunk: int = CHUNK_BYTES) -> list[Problem]:
    """One streaming pass over a form file: each run of records parsed and its rows spilled to the partition of
    their subject (``workdir/part-NNNNN/<FORM>.pkl``, pickled (frame, row numbers) runs). Returns the file's
    problems (header, encoding, unreadable records), with the file's own lines and rows."""
    file = str(path)
    header: list[str] | None = None
    problems: list[Problem] = []
    rows_before = 0
    sinks: dict[int, Any] = {}
    try:
        for head, piece, line, bad in _pieces(path, chunk):
            if header is None:
                try:
                    header = header_names(head.decode("utf-8"))
                except UnicodeDecodeError:
                    return [problem(file, "line 1", "", "", "encoding", "not UTF-8 in the header line")]
                if not header:
                    return [problem(file, "", "", "", "empty-file", "empty file: expected a header line")]
                problems += header_problems(file, header, form)[0]
            if bad is not None:
                return [*problems, bad]
            if not piece:
                continue
            frame, found = parse_rows(head + piece, file, form, header, first_row=rows_before + 1, first_line=line)
            problems += found
            if frame is None:
                return problems
            rows = np.arange(rows_before + 1, rows_before + 1 + len(frame), dtype=np.int64)
            rows_before += len(frame)
            subj = frame["SUBJID"] if "SUBJID" in frame.columns else pd.Series([""] * len(frame), dtype=object)
            pno = partition_of(subj.fillna(""), parts)
            for i in np.unique(pno).tolist():
                sel = pno == i
                fh = sinks.get(i)
                if fh is None:
                    folder = workdir / f"part-{i:05d}"
                    folder.mkdir(parents=True, exist_ok=True)
                    fh = sinks[i] = open(folder / f"{form.oid}.pkl", "wb")  # noqa: SIM115
                pickle.dump((frame[sel].reset_index(drop=True), rows[sel]), fh, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as err:
        return [*problems, problem(file, "", "", "", "io", f"cannot read: {err.strerror or err}")]
    finally:
        for fh in sinks.values():
            fh.close()
    if header is None:
        return [problem(file, "", "", "", "empty-file", "empty file: expected a header line")]
    return problems


def load_csv_part(plan: CsvPlan, schema: FormSchema, part_dir: Path) -> RawRead:
    """One partition's raw tables from its spilled runs; messages name the original file and row."""
    tables: dict[str, RawTable] = {}
    for oid, form in schema.forms.items():
        path = plan.files.get(oid)
        file = str(path if path is not None else form_file(plan.folder, oid))
        spill = part_dir / f"{oid}.pkl"
        if path is None or not spill.exists():
            tables[oid] = empty_raw(form, file)
            continue
        frames: list[pd.DataFrame] = []
        rows: list[np.ndarray[Any, Any]] = []
        with spill.open("rb") as fh:
            while True:
                try:
                    f, r = pickle.load(fh)
                except EOFError:
                    break
                frames.append(f)
                rows.append(r)
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        missing = tuple(c for c in form.columns if c not in frame.columns)
        tables[oid] = RawTable(form=oid, file=file, frame=frame, where=RowLabels(np.concatenate(rows)),
                               missing_columns=missing)  # fmt: skip
    return RawRead(tables=tables, problems=[])
