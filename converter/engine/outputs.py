"""What the engines write and report, shared by the local streaming engine and the Spark engine.

A partition's files (:class:`PartitionFiles`: ``sdtm/<DS>/part-NNNNN.parquet``, ``adam/<DS>/part-NNNNN.parquet``,
``fhir/ndjson/<Type>.NNNNN.ndjson``), a partition's outcome (:class:`PartResult`), the run's report
(:class:`StreamReport`, :func:`merge_result`) and the files written once the partitions are done
(:func:`finish_run`: study-level datasets, ``accounting.csv``, the conformance findings, the Bulk Data manifest).
Both engines write exactly these, so their output folders have one layout.
"""

from __future__ import annotations

import io
import resource
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import pandas as pd

from converter.errors import Problem
from converter.io.csv_out import dict_writer
from converter.io.hashed import Written, open_hashed, written
from converter.io.settle import close_settled

_BUFFER = 1 << 20  # bytes buffered per open NDJSON file
_BLOCK = 1024  # NDJSON lines joined per write (~2 MB of FHIR resources: past _BUFFER, written through)
MAX_PROBLEMS = 1000  # problems, findings kept per partition and per run (every one is counted)


def peak_mib() -> float:
    """This process's peak resident memory in MiB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ndjson_dir(work: Path) -> Path:
    return work / "fhir" / "ndjson"


def write_parquet_part(frames: Mapping[str, pd.DataFrame], root: Path, index: int) -> dict[str, int]:
    """Each dataset as ``root/<DS>/part-NNNNN.parquet``; returns the rows written per dataset.

    The file ``df.to_parquet(path, index=False)`` writes, byte for byte (Snappy, dictionaries, statistics, the
    pandas metadata), with the columns converted to Arrow in this thread: pyarrow's default hands them to a
    thread pool per frame, which costs more than it saves on a worker that has one core to itself."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for name, df in frames.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{index:05d}.parquet"
        if df.attrs:  # pandas adds them to the file's metadata
            df.to_parquet(path, index=False)
        else:
            pq.write_table(pa.Table.from_pandas(df, preserve_index=False, nthreads=1), path, compression="snappy")
        counts[name] = len(df)
    return counts


class PartitionFiles:
    """Where one partition's results go, under ``work``: a context manager that closes its NDJSON files."""

    def __init__(self, work: Path, index: int) -> None:
        self.work = work
        self.index = index
        self._ndjson: dict[str, io.BufferedWriter] = {}
        #: the NDJSON files closed so far, hashed as written, by path relative to ``work``
        self.written: dict[str, Written] = {}

    def datasets(self, stage: str, frames: Mapping[str, pd.DataFrame]) -> dict[str, int]:
        """The datasets of ``stage`` (``sdtm``, ``adam``) as Parquet; the rows written per dataset."""
        return write_parquet_part(frames, self.work / stage, self.index)

    def ndjson(self, lines: Mapping[str, Sequence[bytes]]) -> dict[str, int]:
        """NDJSON lines (each without its newline) appended to the partition's file of each resource type; the
        resources written per type. The lines are joined ``_BLOCK`` at a time (a few MB, past the file's buffer,
        so each block goes to the OS as it is), never a type's lines into one copy: a fresh buffer of tens of MB
        per type is page-faulted in and freed each time (RESULTS, issue 19's fourth pass), and ``writelines``
        calls the buffer's ``write`` once per line and once per newline."""
        counts: dict[str, int] = {}
        for rtype, texts in lines.items():
            fh = self._ndjson.get(rtype)
            if fh is None:
                folder = ndjson_dir(self.work)
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{rtype}.{self.index:05d}.ndjson"
                fh = self._ndjson[rtype] = open_hashed(path, _BUFFER)
            for start in range(0, len(texts), _BLOCK):
                block = list(texts[start : start + _BLOCK])
                block.append(b"")  # the block's last newline
                fh.write(b"\n".join(block))
            counts[rtype] = len(texts)
        return counts

    def close(self) -> None:
        """Each NDJSON file closed on disk and out of the page cache (:func:`~converter.io.settle.close_settled`:
        a long run writes far more than the cache holds, and nothing reads these files back during it)."""
        try:
            for fh in self._ndjson.values():
                close_settled(fh)
                self.written[Path(fh.name).relative_to(self.work).as_posix()] = written(fh)
        finally:
            for fh in self._ndjson.values():
                fh.close()
            self._ndjson.clear()

    def __enter__(self) -> PartitionFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


@dataclass
class PartResult:
    """One partition's outcome: counts, accounting and problems (only small things cross processes)."""

    index: int
    subjects: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: int = 0
    accounting: Any = None
    sdtm_rows: dict[str, int] = field(default_factory=dict)
    adam_rows: dict[str, int] = field(default_factory=dict)
    adam_checks: list[str] = field(default_factory=list)
    fhir_counts: dict[str, int] = field(default_factory=dict)
    fhir_problems: list[Problem] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)  # findings on subject-level datasets (first MAX_PROBLEMS)
    rule_counts: dict[str, int] = field(default_factory=dict)  # "severity:rule" -> findings
    study_findings: list[Any] = field(default_factory=list)  # findings on the study-level datasets (TS, TA, ...)
    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    written: dict[str, Written] = field(default_factory=dict)  # the partition's NDJSON files, hashed as written


@dataclass
class StreamReport:
    partitions: int = 0
    subjects: int = 0
    records: int = 0
    rejected: int = 0
    sdtm_rows: dict[str, int] = field(default_factory=dict)
    adam_rows: dict[str, int] = field(default_factory=dict)
    fhir_counts: dict[str, int] = field(default_factory=dict)
    adam_checks: list[str] = field(default_factory=list)
    fhir_problems: list[Problem] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)
    rule_counts: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    study_from: int | None = None  # the partition whose study-level findings are reported
    #: files hashed as they were written (relative to the output folder), for its manifest; not in stream.json
    written: dict[str, Written] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "subjects": self.subjects,
            "source_records": self.records,
            "rejected_records": self.rejected,
            "sdtm_rows": dict(sorted(self.sdtm_rows.items())),
            "adam_rows": dict(sorted(self.adam_rows.items())),
            "fhir_resources": dict(sorted(self.fhir_counts.items())),
            "adam_check_failures": self.adam_checks[:100],
            "fhir_problems": len(self.fhir_problems),
            "conformance_findings": dict(sorted(self.rule_counts.items())),
            "warnings": self.warnings,
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "wall_seconds": {k: round(v, 2) for k, v in self.wall_seconds.items()},
            "peak_rss_mib": self.peak_rss_mib,
        }


def merge_result(rep: StreamReport, res: PartResult, accounting: Any, study: list[Any]) -> None:
    """A converted partition's counts, accounting and findings added to the run's; ``study`` collects the
    study-level findings of the lowest-numbered partition (every partition finds the same ones)."""
    accounting.merge(res.accounting)
    for target, src in ((rep.sdtm_rows, res.sdtm_rows), (rep.adam_rows, res.adam_rows),
                        (rep.fhir_counts, res.fhir_counts)):  # fmt: skip
        for k, v in src.items():
            target[k] = target.get(k, 0) + v
    for k, sec in res.seconds.items():
        rep.cpu_seconds[k] = rep.cpu_seconds.get(k, 0.0) + sec
    rep.written.update(res.written)
    rep.adam_checks += res.adam_checks
    rep.fhir_problems += res.fhir_problems
    rep.findings += res.findings[: MAX_PROBLEMS - len(rep.findings)]
    for rule, n in res.rule_counts.items():
        rep.rule_counts[rule] = rep.rule_counts.get(rule, 0) + n
    rep.warnings += res.warnings
    if rep.study_from is None or res.index < rep.study_from:
        rep.study_from = res.index
        study[:] = res.study_findings


def add_study_findings(rep: StreamReport, study: list[Any]) -> None:
    """The study-level findings (kept by :func:`merge_result`) counted and reported once."""
    for f in study:
        rep.findings.append(f)
        rule = f"{f.severity}:{f.rule_id}"
        rep.rule_counts[rule] = rep.rule_counts.get(rule, 0) + 1


def finish_run(
    work: Path, study_sets: Mapping[str, pd.DataFrame], rules: bool, shown_as: Path, rep: StreamReport, accounting: Any
) -> None:
    """Study-level datasets (``part-00000``), ``accounting.csv``, the conformance findings (with ``rules``) and the
    NDJSON Bulk Data manifest (its ``request`` is ``shown_as``, the folder the output becomes)."""
    counts = write_parquet_part(study_sets, work / "sdtm", 0)
    for k, v in counts.items():
        rep.sdtm_rows[k] = rep.sdtm_rows.get(k, 0) + v
    rows = accounting.rows()
    rep.records = sum(int(r["records"]) for r in rows)
    rep.rejected = accounting.rejected()
    if rules:
        from converter.validate.findings import write_reports

        write_reports(rep.findings, work / "validate")
    with (work / "accounting.csv").open("w", newline="", encoding="utf-8") as fh:
        w = dict_writer(fh, fieldnames=["form", "records", "in_target_rows", "rejected", "targets", "reasons"])
        w.writeheader()
        w.writerows(rows)
    nd = ndjson_dir(work)
    if nd.is_dir():  # a Bulk Data style manifest beside (not among) the NDJSON files
        output = [{"type": f.name.split(".", 1)[0], "url": f"ndjson/{f.name}"} for f in sorted(nd.glob("*.ndjson"))]
        manifest = {"transactionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request": str(shown_as),
                    "requiresAccessToken": False, "output": output, "error": []}  # fmt: skip
        (nd.parent / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
