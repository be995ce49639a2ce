"""The pipeline's stages as the CLI runs them: read, convert, write, and say what happened.

Each stage function reads its input folder/file, calls the pure conversion code, writes through
:mod:`converter.io`, and reports counts through ``echo``. ``run_all`` chains every stage on one source.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from converter.io.progress import Tick, no_progress

Echo = Callable[[str], Any]


def _table(rows: list[dict[str, object]], cols: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in cols}
    head = "  ".join(c.ljust(widths[c]) for c in cols)
    lines = [head, "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def run_sdtm(
    source: Path,
    out: Path,
    echo: Echo = print,
    engine: str = "local",
    partitions: int = 1,
    parquet: Path | None = None,
    validate: bool = True,
    progress: Tick = no_progress,
) -> dict[str, int]:
    """Records (ODM-XML or CSV folder) -> SDTM package in ``out``; returns rows per dataset.

    ``progress``: ticked per step (read the records, convert them, write the package).

    ``engine="spark"`` runs the same per-subject conversion on Spark (a CSV folder is read by Spark itself;
    an ODM file is read here first), ``partitions`` subject groups at a time.
    """
    from converter.io.package import write_package
    from converter.records.sources import read_records
    from converter.sdtm.pipeline import load_sdtm_specs, records_to_sdtm

    load_sdtm_specs()  # spec errors stop the run before any data is read
    t0 = time.perf_counter()
    progress(0, total=3, step="reading the records" if engine == "local" else "on Spark")
    if engine == "spark":
        result = _sdtm_on_spark(source, partitions, parquet, echo)
    else:
        warnings: list[Any] = []
        records = read_records(source, validate=validate, warnings=warnings)
        for w in warnings[:50]:
            echo(f"warning: {w}")
        if len(warnings) > 50:
            echo(f"warning: ... and {len(warnings) - 50} more")
        progress(step="records -> SDTM")
        result = records_to_sdtm(records, partitions=partitions)
    progress(step="writing the package")
    acc_rows = result.accounting.rows()
    echo("Source records accounted for:")
    echo(_table(acc_rows, ["form", "records", "in_target_rows", "rejected", "targets", "reasons"]))
    total = sum(int(str(r["records"])) for r in acc_rows)
    rejected = result.accounting.rejected()
    echo(f"{total} source records: {total - rejected} in SDTM rows, {rejected} rejected")
    write_package(
        out,
        result.datasets,
        result.specs,
        result.ct,
        standard="SDTMIG 3.4",
        study_oid=result.forms.study.oid,
        study_name=result.forms.study.name,
        protocol_name=result.forms.study.protocol,
    )
    progress(step="done")
    counts = {name: len(df) for name, df in result.datasets.items()}
    echo(f"SDTM: {len(counts)} datasets, {sum(counts.values())} rows -> {out} ({time.perf_counter() - t0:.1f} s)")
    return counts


def _sdtm_on_spark(source: Path, partitions: int, parquet: Path | None, echo: Echo) -> Any:
    from pyspark.sql import SparkSession

    from converter.engine.spark import local_session, records_to_long
    from converter.engine.spark_sdtm import collect_sdtm, read_csv_forms, sdtm_long
    from converter.records.schema import load_forms
    from converter.records.sources import detect_format, read_records

    existing = SparkSession.getActiveSession()  # inside a cluster job or a notebook: use theirs, leave it running
    spark = existing or local_session()
    try:
        if detect_format(source) == "csv":
            long = read_csv_forms(spark, str(source), load_forms())
        else:
            long = records_to_long(spark, read_records(source))
        result = collect_sdtm(sdtm_long(long, max(partitions, 2)))
        if parquet is not None:
            from converter.engine.spark_sdtm import write_parquet

            write_parquet(result.datasets, str(parquet))
            echo(f"Spark: SDTM datasets written as Parquet to {parquet}")
        return result
    finally:
        if existing is None:
            spark.stop()


class _Clock:
    """Wall and CPU time (this process) since the last lap, as each stage's line says it: ``adam: 1.2 s (CPU 1.0 s)``
    (benchmarks/bench_run.py reads these lines)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str = "") -> str:
        wall, cpu = time.perf_counter(), time.process_time()
        line = f"{name}: {wall - self.wall:.2f} s (CPU {cpu - self.cpu:.2f} s)"
        self.wall, self.cpu = wall, cpu
        return line


def run_all(
    source: Path | None,
    out: Path,
    echo: Echo = print,
    *,
    overwrite: bool = False,
    command: list[str] | None = None,
) -> int:
    """Every stage that exists, on ``source`` (default: the bundled example). Returns an exit code.

    ``out`` is an output folder under :func:`converter.io.outdir.output_folder`'s rule: built beside, each
    stage's sub-folder sealed with its own ``manifest.json``, the run folder with one over everything.
    """
    from converter.io.outdir import output_folder
    from converter.paths import example_study_dir

    if source is None:
        ex = example_study_dir()
        candidates = sorted((ex / "odm").glob("*.xml")) if (ex / "odm").exists() else []
        source = candidates[0] if candidates else ex / "csv"
    with output_folder(out, inputs=[source], overwrite=overwrite, command=command) as dest:
        show = dest.echo(echo)
        show(f"inoconv run: {source} -> {out}")
        code = _run_stages(source, dest.path, show, out)
        _seal_stages(source, dest.path, out, command)
    return code


def _seal_stages(source: Path, work: Path, out: Path, command: list[str] | None) -> None:
    """Each stage's sub-folder gets its manifest; inputs named by where they will be, hashed where they are."""
    from converter.io.manifest import FileEntry, file_entries
    from converter.io.outdir import seal_folder

    staged, final = str(work.resolve()), str(out.resolve())

    def entries(paths: list[Path]) -> tuple[FileEntry, ...]:
        found = file_entries([p.resolve() for p in paths if p.exists()])
        return tuple(FileEntry(e.path.replace(staged, final, 1), e.sha256, e.bytes) for e in found)

    reads = {"sdtm": [source], "adam": [work / "sdtm"], "fhir": [work / "sdtm"], "report": [work / "adam"]}
    for stage, inputs in reads.items():
        if (work / stage).is_dir():
            seal_folder(work / stage, command=command, input_entries=entries(inputs), notes={"stage": stage})
    if (work / "validate").is_dir():
        read = [work / s for s in ("sdtm", "adam", "fhir", "report") if (work / s).is_dir()]
        seal_folder(work / "validate", command=command, input_entries=entries(read), notes={"stage": "validate"})


def _warm_analysis_side() -> None:
    """What the ADaM, report and ADaM-rules side imports and reads before any data: run in its child while the SDTM
    stage runs here (specs are cached by file stamp, so the stage reads them again only if they changed)."""
    from converter.adam.commands import adam_command  # noqa: F401 - imported for the side's start
    from converter.adam.pipeline import load_adam_specs
    from converter.paths import mappings_dir
    from converter.report.commands import report_command  # noqa: F401
    from converter.report.render import warm_figures
    from converter.report.spec import load_analysis_spec
    from converter.spec.loader import load_specs
    from converter.validate.folder import validate_folder  # noqa: F401

    load_specs(mappings_dir() / "sdtm")  # the types of the SDTM package ADaM reads
    load_adam_specs()
    load_analysis_spec()
    warm_figures()


def _analysis_side(
    out: Path, final: Path, warmed: list[str]
) -> tuple[list[str], list[dict[str, object]], int, list[Any]]:
    """ADaM, the report and validate's ADaM rules: all they read is ``sdtm/`` and what they write. Gives the lines
    (shown in the stages' order), the summary rows, the exit code and the findings (the ``adam`` family)."""
    from converter.adam.commands import adam_command
    from converter.report.commands import report_command
    from converter.validate.folder import validate_folder

    lines: list[str] = list(warmed)  # the warm-up's line, where it ran (in this child, beside the SDTM stage)
    rows: list[dict[str, object]] = []
    code = 0
    clock = _Clock()
    def adam_stage() -> int:
        adam_command(out / "sdtm", out / "adam", lines.append)
        return 0

    def report_stage() -> int:
        return report_command(out / "adam", out / "report", lines.append, str(final / "adam"))

    for name, fn in (("adam", adam_stage), ("report", report_stage)):
        lines.append(f"--- {name}")
        clock.lap()
        rc = int(fn())
        code = max(code, rc)
        rows.append({"stage": name, "output": str(final / name), "result": "ok" if rc == 0 else f"exit {rc}"})
        lines.append(clock.lap(name))
    findings = validate_folder(out, families=("adam",))
    lines.append(clock.lap("adam rules"))  # validate's share, done here
    return lines, rows, code, findings


def _have(module: str) -> bool:
    """``module`` is in this build, found without importing it (the child that runs it imports it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _run_stages(source: Path, out: Path, echo: Echo, final: Path) -> int:
    """Every stage into ``out`` (the staging folder that becomes ``final``).

    Two sides after SDTM, each in its own process on a two-core machine (:mod:`converter.io.forked`; one after the
    other where that is not possible): ADaM, the report and validate's ADaM rules in a child forked at the start,
    which imports and reads its specs while SDTM runs here; FHIR, its checks, the round trip and validate's SDTM
    rules here, where the SDTM package just written is still in the read cache. The child's lines are shown in the
    stages' order and the findings in :func:`validate_folder`'s, so the output files are the same either way."""
    from converter.io import read_cache
    from converter.io.forked import Job, prepare

    summary: list[dict[str, object]] = []
    t0 = time.perf_counter()
    clock = _Clock()
    analysis: Job[tuple[list[str], list[dict[str, object]], int, list[Any]]] | None = None
    warmed: list[str] = []  # filled in the child, read there by _analysis_side

    def warm() -> None:
        clock = _Clock()
        try:
            _warm_analysis_side()
        finally:
            warmed.append(clock.lap("warm up"))

    if _have("converter.adam.commands") and _have("converter.report.commands"):  # found, imported by the child
        analysis = prepare(warm, lambda: _analysis_side(out, final, warmed), read_cache.seed)
    try:
        counts = run_sdtm(source, out / "sdtm", echo)
        echo(clock.lap("sdtm"))
        summary.append({"stage": "sdtm", "output": str(final / "sdtm"), "result": f"{len(counts)} datasets"})
        if analysis is not None:
            analysis.go(read_cache.snapshot)  # the package just read back: the child need not parse it again
        return _after_sdtm(out, echo, final, analysis, summary, clock, t0)
    finally:
        if analysis is not None:
            analysis.cancel()  # a stage failed here: the child is not waited for (a no-op once it was)


def _after_sdtm(
    out: Path,
    echo: Echo,
    final: Path,
    analysis: Any,
    summary: list[dict[str, object]],
    clock: _Clock,
    t0: float,
) -> int:
    from converter.validate.folder import validate_folder

    code = 0
    fhir_rc: int | None = None
    here: list[str] = []
    late: list[Any] = []
    try:
        from converter.fhir.commands import fhir_command
    except ImportError:
        here.append("(FHIR stage not available in this build)")
    else:
        here.append("--- fhir")
        clock.lap()
        fhir_rc = int(fhir_command(out / "sdtm", out / "fhir", False, here.append) or 0)
        here.append(clock.lap("fhir"))
        code = max(code, fhir_rc)
        late = validate_folder(out, families=("fhir", "roundtrip"))
        here.append(clock.lap("fhir checks"))  # validate's share, done here
    early = validate_folder(out, families=("sdtm",))
    here.append(clock.lap("sdtm rules"))
    middle: list[Any] = []
    if analysis is None:
        echo("(ADaM stage not available in this build)")
    else:
        lines, rows, rc, middle = analysis.result()
        for line in lines:
            echo(line)
        summary += rows
        code = max(code, rc)
    for line in here:
        echo(line)
    if fhir_rc is not None:
        result = "ok" if fhir_rc == 0 else f"exit {fhir_rc}"
        summary.append({"stage": "fhir", "output": str(final / "fhir"), "result": result})
    echo("--- validate")
    clock.lap()
    from converter.report.html import write_run_view
    from converter.validate.findings import write_reports

    findings = early + middle + late
    write_reports(findings, out / "validate")
    errors = sum(1 for f in findings if f.severity == "error")
    summary.append({"stage": "validate", "output": str(final / "validate"), "result": f"{errors} errors"})
    code = max(code, 1 if errors else 0)
    if (out / "report").exists():
        write_run_view(out)  # report/index.html again, now with the findings linked into define.html
    echo(clock.lap("validate"))
    echo("")
    echo(_table(summary, ["stage", "output", "result"]))
    echo(f"done in {time.perf_counter() - t0:.1f} s")
    return code
