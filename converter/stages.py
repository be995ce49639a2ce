"""The pipeline's stages as the CLI runs them: read, convert, write, and say what happened.

Each stage function reads its input folder/file, calls the pure conversion code, writes through
:mod:`converter.io`, and reports counts through ``echo``. ``run_all`` chains every stage on one source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from converter.gc_pause import no_gc
from converter.io.progress import Tick, no_progress

Echo = Callable[[str], Any]


@contextlib.contextmanager
def _lasting() -> Iterator[None]:
    """Cyclic GC off while what lives as long as the process is made (modules imported, specs read): a collection
    then would only scan it again and again (0.1-0.3 s of an ``inoconv run`` process's start on Python 3.11).
    Then frozen: later collections leave it out (:func:`gc.freeze`; what it made that was already garbage in a
    cycle is kept, a few objects of an import)."""
    try:
        with no_gc():
            yield
    finally:
        gc.freeze()


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
    hand_on: Callable[[dict[str, Any]], object] | None = None,
) -> dict[str, int]:
    """Records (ODM-XML or CSV folder) -> SDTM package in ``out``; returns rows per dataset.

    ``progress``: ticked per step (read the records, convert them, write the package). ``hand_on``: called with the
    SDTM datasets as the package will read them back (:func:`converter.io.package.as_read_back`: name -> frame)
    once they are made, before the package is written (and verified against those frames).

    ``engine="spark"`` runs the same per-subject conversion on Spark (a CSV folder is read by Spark itself;
    an ODM file is read here first), ``partitions`` subject groups at a time.
    """
    with _lasting():
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
    read_back = None
    if hand_on is not None:
        from converter.io.package import as_read_back

        read_back = as_read_back(result.datasets, result.specs)
        hand_on(read_back)
    write_package(
        out,
        result.datasets,
        result.specs,
        result.ct,
        standard="SDTMIG 3.4",
        study_oid=result.forms.study.oid,
        study_name=result.forms.study.name,
        protocol_name=result.forms.study.protocol,
        read_back=read_back,
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
    with _lasting():  # (pandas and numpy among them: both processes of the run start with them)
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
    """What the ADaM, report, ADaM-rules and round-trip side imports and reads before any data: run in its child while
    the SDTM stage runs here (specs are cached by file stamp, so the stage reads them again only if they changed)."""
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
    _warm_modules()
    if _have("converter.fhir.roundtrip"):  # the round trip, which this side runs once the FHIR is written
        import converter.fhir.roundtrip  # noqa: F401
        from converter.fhir.mapping import load_fhir_stage

        load_fhir_stage()


def _warm_modules() -> None:
    """What the side's stages import only when they run: validate_folder's rule modules (imported at each call,
    the round trip's too) and the package helpers ADaM's stage uses. About 0.04 s that would otherwise fall after
    the warm-up."""
    import importlib

    io = ("converter.io.package_kind", "converter.io.read_cache")
    rules = ("converter.validate.adam_rules", "converter.validate.levels", "converter.validate.sdtm_rules",
             "converter.validate.standard_rules")  # fmt: skip
    for name in (*io, *rules):
        if _have(name):
            importlib.import_module(name)


@dataclasses.dataclass
class _Side:
    """What the ADaM side of a run gives back (from its child): lines to show in the stages' order, the summary
    rows, the exit code, the findings of validate's ``adam`` family and, where it ran the round trip, those of the
    ``roundtrip`` family and the round trip's own line (shown after the FHIR checks)."""

    lines: list[str]
    rows: list[dict[str, object]]
    code: int
    adam: list[Any]
    roundtrip: list[Any] | None = None
    roundtrip_line: str = ""


def _analysis_side(out: Path, final: Path, warmed: list[str], given: dict[str, Any]) -> _Side:
    """ADaM and the report (all they read is ``sdtm/`` and what they write); then, run apart from the parent,
    validate's round trip once the parent says the FHIR is written, else validate's ADaM rules here.

    ``given["sdtm"]``, where the SDTM stage handed it over: the SDTM package's frames as read back
    (:func:`converter.io.package.as_read_back`), so ADaM starts while that package is still being written. Run
    apart, this side tells the parent that ADaM is written (with what it read back, so the parent's ADaM rules
    need not parse it again): the parent, which has the shorter side, runs the ADaM rules; this side waits for the
    SDTM package (the first :func:`converter.io.forked.next_message`) and the FHIR output (the second), then runs
    the round trip."""
    from converter.adam.commands import adam_command
    from converter.io import read_cache
    from converter.io.forked import next_message, tell_parent
    from converter.report.commands import report_command
    from converter.validate.folder import validate_folder

    side = _Side(list(warmed), [], 0, [])  # the warm-up's line, where it ran (in this child, beside the SDTM stage)
    clock = _Clock()

    def adam_stage() -> int:
        adam_command(out / "sdtm", out / "adam", side.lines.append, given.pop("sdtm", None))
        return 0

    def report_stage() -> int:
        # index.html is written once, at the run's end, with the findings (its parts made by the parent meanwhile)
        return report_command(out / "adam", out / "report", side.lines.append, str(final / "adam"), page=False)

    for name, fn in (("adam", adam_stage), ("report", report_stage)):
        side.lines.append(f"--- {name}")
        clock.lap()
        rc = int(fn())
        side.code = max(side.code, rc)
        side.rows.append({"stage": name, "output": str(final / name), "result": "ok" if rc == 0 else f"exit {rc}"})
        side.lines.append(clock.lap(name))
    had = read_cache.keys()  # what the parent has too: the SDTM package it handed over (seeded below)
    if not tell_parent(_caches(skip=had)):
        side.adam = validate_folder(out, families=("adam",))  # not apart: the parent waits for all of this
        side.lines.append(clock.lap("adam rules"))
        return side
    written = next_message()  # the SDTM package is on disk, its read-back frames and checks with it
    if written is not None:
        _seed_caches(written)
        if next_message() is not None:  # the FHIR output is written
            clock.lap()
            side.roundtrip = validate_folder(out, families=("roundtrip",))
            side.roundtrip_line = clock.lap("round trip")
    return side


def _have(module: str) -> bool:
    """``module`` is in this build, found without importing it (the child that runs it imports it)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _caches(skip: frozenset[tuple[str, bytes]] = frozenset()) -> bytes:
    """This process's read cache (less the ``skip`` keys) and check results, for :func:`_seed_caches` in the other
    process of the run: what one side read back and checked, the other need not do again."""
    from converter.io import check_memo, read_cache

    return pickle.dumps((read_cache.snapshot(skip=skip), check_memo.snapshot()), protocol=pickle.HIGHEST_PROTOCOL)


def _seed_caches(data: bytes) -> None:
    from converter.io import check_memo, read_cache

    frames, checks = pickle.loads(data)
    read_cache.seed(frames)
    check_memo.seed(checks)


def _run_stages(source: Path, out: Path, echo: Echo, final: Path) -> int:
    """Every stage into ``out`` (the staging folder that becomes ``final``).

    Two sides after SDTM, each in its own process on a two-core machine (:mod:`converter.io.forked`; one after the
    other where that is not possible). A child forked at the start imports and reads its specs while SDTM runs
    here, gets the SDTM datasets as soon as they are made and builds ADaM and the report while the SDTM package is
    written and verified here, then runs validate's round trip once the FHIR is written. This process does FHIR,
    its checks and validate's SDTM rules, then the ADaM rules and the report page's parts that need no findings
    once the child says ADaM is written (each side hands the other what it read back and checked). If the package
    fails its verification, the run stops there and the child with it. The child's lines are shown in the
    stages' order and the findings in :func:`validate_folder`'s, so the output files are the same either way."""
    from converter.io.forked import Job, prepare

    summary: list[dict[str, object]] = []
    t0 = time.perf_counter()
    clock = _Clock()
    part = _Clock()  # the SDTM stage until its datasets are handed over (the rest writes and verifies the package)
    analysis: Job[_Side] | None = None
    warmed: list[str] = []  # filled in the child, read there by _analysis_side
    given: dict[str, Any] = {}  # what the child is handed (the SDTM frames), read there by _analysis_side

    def warm() -> None:
        clock = _Clock()
        try:
            with _lasting():  # what the warm-up makes (modules, specs, fonts) lives as long as the child
                _warm_analysis_side()
        finally:
            warmed.append(clock.lap("warm up"))

    def receive(message: bytes) -> None:
        given["sdtm"] = pickle.loads(message)  # made by hand_off below, in the parent of this process

    def hand_off(frames: dict[str, Any]) -> None:
        """The SDTM datasets as the package will read back, to the child while the package is written here."""
        if analysis is not None:
            analysis.go(lambda: pickle.dumps(frames, protocol=pickle.HIGHEST_PROTOCOL))
            echo(part.lap("sdtm datasets"))  # of the sdtm line below, the part before the child could start

    if _have("converter.adam.commands") and _have("converter.report.commands"):  # found, imported by the child
        analysis = prepare(warm, lambda: _analysis_side(out, final, warmed, given), receive)
    try:
        early = analysis is not None and analysis.forked
        counts = run_sdtm(source, out / "sdtm", echo, hand_on=hand_off if early else None)
        echo(clock.lap("sdtm"))
        summary.append({"stage": "sdtm", "output": str(final / "sdtm"), "result": f"{len(counts)} datasets"})
        if analysis is not None:
            if analysis.forked:  # the package just read back and checked: the child need not do it again
                analysis.send(_caches)
            else:
                analysis.go()  # runs here and now, on the package as written
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
    apart = analysis is not None and analysis.forked  # the child runs the round trip once the FHIR is written
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
        if apart:
            analysis.send(lambda: b"fhir written")
        late = validate_folder(out, families=("fhir",) if apart else ("fhir", "roundtrip"))
        here.append(clock.lap("fhir checks"))  # validate's share, done here
    early = validate_folder(out, families=("sdtm",))
    here.append(clock.lap("sdtm rules"))
    middle: list[Any] = []
    told = analysis.hear() if apart else None  # ADaM is written: its rules are done here
    prepared = None
    if told is not None:
        _seed_caches(told)
        middle = validate_folder(out, families=("adam",))
        here.append(clock.lap("adam rules"))
        if (out / "report").is_dir():  # the page's parts that do not depend on the findings, while the child ends
            from converter.report.html import prepare_run_view

            prepared = prepare_run_view(out)
            here.append(clock.lap("report view"))
    if analysis is None:
        echo("(ADaM stage not available in this build)")
    else:
        side: _Side = analysis.result()
        for line in side.lines:
            echo(line)
        summary += side.rows
        code = max(code, side.code)
        if told is None:  # the child ran the ADaM rules (not apart: all of its side ran here, before)
            middle = side.adam
        if side.roundtrip is not None:
            late += side.roundtrip  # the fhir family's findings, then the round trip's, as one call gives them
            here.append(side.roundtrip_line)
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
        write_run_view(out, prepared=prepared)  # report/index.html again, now with the findings
    echo(clock.lap("validate"))
    echo("")
    echo(_table(summary, ["stage", "output", "result"]))
    echo(f"done in {time.perf_counter() - t0:.1f} s")
    return code
