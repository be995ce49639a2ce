"""The ``inoconv`` command line: one thin function per subcommand.

Heavy modules (pandas, lxml, fhir.resources, lifelines, matplotlib) are imported inside the commands, so
``inoconv --help`` answers at once. Errors in user input print the problem table and exit 2; output that
would not be conformant exits 1; nothing prints a traceback.
"""

from __future__ import annotations

import atexit
import functools
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

app = typer.Typer(
    name="inoconv",
    help="Spec-driven converter between clinical-trial data standards: EDC records (ODM-XML/CSV) -> SDTM -> "
    "ADaM -> published end points, and SDTM <-> FHIR R4.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_OUT = Path("inoconv-out")

OVERWRITE_HELP = ("Write into a non-empty --out that inoconv did not write (its files of other names stay; "
                  "same names are replaced)")  # fmt: skip
Overwrite = Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar (none is drawn either when output is not a terminal)")
]


def _flags_without_metavar() -> None:
    """Boolean flags take no value: show ``--force``, not ``--force <bool>``, in every command's --help."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_inoconv", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        if self.is_flag and self.metavar is None:
            return None
        return shown(self, ctx)

    display_type_rich._inoconv = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_metavar()


def _command_line() -> list[str]:
    """The command line for the manifest: as typed, or (called in-process, e.g. by a test) rebuilt from the
    parsed parameters."""
    import sys

    from typer.main import get_current_context  # type: ignore[attr-defined]  # typer's own (vendored) click

    argv0 = Path(sys.argv[0]) if sys.argv else Path()
    if argv0.name.startswith("inoconv") or argv0.parent.name == "converter":  # the script, or python -m converter.cli
        return ["inoconv", *sys.argv[1:]]
    ctx = get_current_context(silent=True)
    if ctx is None:
        return ["inoconv"]
    words = ["inoconv", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value is None or value is False or param.expose_value is False:
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
        else:
            words += [param.opts[0]] + ([] if value is True else [str(value)])
    return words


def _version(value: bool) -> None:
    if value:
        from converter import __version__

        typer.echo(f"inoconv {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Spec-driven converter between clinical-trial data standards."""


def _echo(msg: str) -> None:
    """Print to stdout with every control character escaped (paths, values and names are the user's)."""
    from converter.text import escape_controls_lines

    typer.echo(escape_controls_lines(msg))


def _echo_err(msg: str) -> None:
    from converter.text import escape_controls_lines

    # a file name, a value or a library's message may hold control characters: never print one raw
    typer.echo(escape_controls_lines(msg), err=True)


def handles_errors(fn: F) -> F:
    """Turn the project's error types into a readable message and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from converter.errors import ConformanceError, InputError, SpecError

        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            _echo_err(exc.render(limit=200))
            raise typer.Exit(exc.exit_code) from None
        except SpecError as exc:
            _echo_err("Invalid mapping spec:\n" + "\n".join(f"  {m}" for m in exc.messages))
            raise typer.Exit(exc.exit_code) from None
        except ConformanceError as exc:
            _echo_err("Not written: the output would not be conformant:\n" + "\n".join(f"  {m}" for m in exc.messages))
            raise typer.Exit(exc.exit_code) from None
        except FileNotFoundError as exc:
            _echo_err(f"No such file or folder: {exc.filename or exc}")
            raise typer.Exit(2) from None
        except OSError as exc:  # disk full, read-only folder, permission denied: the path and the system's reason
            where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "(no path)"
            _echo_err(f"Cannot read or write {where}: {exc.strerror or exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _echo_err("Interrupted.")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # last resort: a bug of ours, said plainly; INOCONV_DEBUG=1 shows the traceback
            import os

            if os.environ.get("INOCONV_DEBUG"):
                raise
            _echo_err(f"internal error ({type(exc).__name__}): {exc}\n(this is a bug in inoconv: please report it "
                      "with the command; set INOCONV_DEBUG=1 for the traceback)")  # fmt: skip
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@handles_errors
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder (CSV) or file (ODM-XML) to write")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of subjects")] = 59,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default: the calibrated seed)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="odm or csv")] = "odm",
    created: Annotated[
        str | None, typer.Option("--creation-datetime", help="ODM CreationDateTime (default: now), reproducible files")
    ] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a synthetic cohort calibrated to the trial's published aggregates (mappings/records/simulation.yaml)."""
    from converter.records.simulate import DEFAULT_SEED
    from converter.records.simulate import simulate as run_sim
    from converter.records.sources import write_records

    if fmt not in ("odm", "csv"):
        raise typer.BadParameter("--format must be odm or csv")
    from converter.io.outdir import output_file, output_folder

    if fmt == "odm":  # one file: replaced only when inoconv wrote it (OUT.manifest.json beside it)
        with output_file(out, overwrite=overwrite, command=_command_line()) as staged:
            records = run_sim(n=n, seed=DEFAULT_SEED if seed is None else seed)
            write_records(records, staged, "odm", creation_datetime=created)
    else:
        with output_folder(out, overwrite=overwrite, command=_command_line()) as dest:
            records = run_sim(n=n, seed=DEFAULT_SEED if seed is None else seed)
            write_records(records, dest.path, "csv", creation_datetime=created)
    rows = sum(len(df) for df in records.values())
    _echo(f"wrote {n} subjects, {rows} records in {len(records)} forms to {out} ({fmt})")


@app.command()
@handles_errors
def sdtm(
    source: Annotated[Path, typer.Argument(help="ODM-XML file or folder of CSV files (one per CRF form)")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "sdtm",
    engine: Annotated[str, typer.Option("--engine", help="local, or spark (extra inoconv[spark])")] = "local",
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="Subject partitions (memory per step)")] = 1,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Spark: also write Parquet by dataset here")] = None,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Skip ODM XSD validation (huge files)")] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Records -> SDTM: XPT v5, Dataset-JSON and define.xml, driven by mappings/sdtm."""
    import contextlib

    from converter.io.outdir import output_folder, require_inputs
    from converter.io.progress import progress_bar
    from converter.stages import run_sdtm

    if engine not in ("local", "spark"):
        raise typer.BadParameter("--engine must be local or spark")
    from converter.io.package_kind import expect_kind

    require_inputs([source])
    with contextlib.ExitStack() as stack:  # --out checked before the input is looked at
        dest = stack.enter_context(output_folder(out, inputs=[source], overwrite=overwrite, command=_command_line()))
        expect_kind(source, "sdtm", ("records-csv", "records-odm"))
        pq = None
        if parquet is not None:  # a second output folder, under the same rule
            pq = stack.enter_context(
                output_folder(parquet, inputs=[source, out], overwrite=overwrite, command=_command_line())
            ).path
        tick = stack.enter_context(progress_bar("sdtm", quiet=quiet))
        run_sdtm(source, dest.path, echo=dest.echo(_echo), engine=engine, partitions=partitions, parquet=pq,
                 validate=not no_validate, progress=tick)  # fmt: skip


@app.command()
@handles_errors
def stream(
    source: Annotated[Path, typer.Argument(help="ODM-XML file or folder of CSV files (one per CRF form)")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "stream",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Partitions converted at once (processes)")] = 2,
    subjects: Annotated[int, typer.Option("--subjects", min=1, help="Subjects per partition (memory)")] = 2000,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Skip ODM XSD validation (huge files)")] = False,
    no_fhir: Annotated[bool, typer.Option("--no-fhir", help="Stop at ADaM (no FHIR NDJSON)")] = False,
    no_rules: Annotated[bool, typer.Option("--no-rules", help="Skip the SDTM/ADaM conformance rules")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local, or spark (extra inoconv[spark])")] = "local",
    partitions: Annotated[
        int | None, typer.Option("--partitions", min=1, help="Spark: subject partitions (default: one per --subjects)")
    ] = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Registry-sized input: records -> SDTM -> ADaM -> FHIR NDJSON, a partition of subjects at a time.

    Writes Parquet per dataset and partition, FHIR Bulk Data NDJSON, accounting.csv and stream.json.
    """
    from converter.io.outdir import output_folder

    if engine not in ("local", "spark"):
        raise typer.BadParameter("--engine must be local or spark")
    with output_folder(out, inputs=[source], overwrite=overwrite, command=_command_line()) as dest:
        if engine == "spark":
            from converter.engine.spark import stream_on_spark

            rep = stream_on_spark(source, dest.path, partitions=partitions, subjects_per_partition=subjects,
                                  validate=not no_validate, fhir=not no_fhir, rules=not no_rules, cores=workers,
                                  echo=dest.echo(_echo), shown_as=out)  # fmt: skip
        else:
            from converter.engine.stream import run_stream
            from converter.io.progress import progress_bar

            with progress_bar("stream", quiet=quiet) as tick:
                rep = run_stream(source, dest.path, workers=workers, subjects_per_partition=subjects,
                                 validate=not no_validate, fhir=not no_fhir, rules=not no_rules,
                                 echo=dest.echo(_echo), shown_as=out, progress=tick)  # fmt: skip
        dest.written.update(rep.written)  # the NDJSON parts, hashed by the workers as they wrote them
    _echo(
        f"{rep.subjects} subjects in {rep.partitions} partitions: {rep.records} source records "
        f"({rep.rejected} rejected, see accounting.csv), {sum(rep.sdtm_rows.values())} SDTM rows, "
        f"{sum(rep.adam_rows.values())} ADaM rows, {sum(rep.fhir_counts.values())} FHIR resources -> {out} "
        f"({rep.wall_seconds['total']:.1f} s)"
    )
    for line in rep.adam_checks[:20]:
        _echo_err(f"ADaM check failed: {line}")
    for prob in rep.fhir_problems[:20]:
        _echo_err(f"FHIR: {prob}")
    errors = {k: v for k, v in rep.rule_counts.items() if k.startswith("error:")}
    if rep.rule_counts:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(rep.rule_counts.items()))
        _echo(f"conformance findings (validate/findings.csv): {listed}")
    if rep.adam_checks or rep.fhir_problems or errors:
        raise typer.Exit(1)


@app.command()
@handles_errors
def adam(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder written by `inoconv sdtm`")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "adam",
    overwrite: Overwrite = False,
) -> None:
    """SDTM -> ADaM (ADSL, ADTTE, ADAE, ADRS): XPT v5, Dataset-JSON and define.xml."""
    from converter.adam.commands import adam_command
    from converter.io.outdir import output_folder

    with output_folder(out, inputs=[sdtm_dir], overwrite=overwrite, command=_command_line()) as dest:
        adam_command(sdtm_dir, dest.path, dest.echo(_echo))


@app.command()
@handles_errors
def report(
    adam_dir: Annotated[Path, typer.Argument(help="ADaM folder written by `inoconv adam`")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "report",
    overwrite: Overwrite = False,
) -> None:
    """The publication's end points recomputed from ADaM, compared with the published values."""
    from converter.io.outdir import output_folder
    from converter.report.commands import report_command

    with output_folder(out, inputs=[adam_dir], overwrite=overwrite, command=_command_line()) as dest:
        code = report_command(adam_dir, dest.path, dest.echo(_echo))
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def guides(
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "guides",
    overwrite: Overwrite = False,
) -> None:
    """The reviewer's guides (cSDRG, ADRG) from the specs, as Markdown and HTML."""
    from converter.guides import write_guides
    from converter.io.outdir import output_folder

    with output_folder(out, inputs=[], overwrite=overwrite, command=_command_line()) as dest:
        for path in write_guides(dest.path):
            _echo(f"wrote {path.name}")


@app.command()
@handles_errors
def fhir(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "fhir",
    strict: Annotated[bool, typer.Option("--strict", help="Validate every resource with the R4 models")] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """SDTM -> FHIR R4: a transaction Bundle per subject plus the study, and NDJSON per resource type."""
    from converter.fhir.commands import fhir_command
    from converter.io.outdir import output_folder
    from converter.io.progress import progress_bar

    with (
        output_folder(out, inputs=[sdtm_dir], overwrite=overwrite, command=_command_line()) as dest,
        progress_bar("fhir", quiet=quiet) as tick,
    ):
        code = fhir_command(sdtm_dir, dest.path, strict, dest.echo(_echo), progress=tick)
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def tosdtm(
    fhir_path: Annotated[Path, typer.Argument(help="Bundle JSON, NDJSON file, or a folder of them")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "sdtm-from-fhir",
    partitions: Annotated[
        int, typer.Option("--partitions", min=0, help="Stream in N partitions of subjects (Parquet parts); 0: whole")
    ] = 0,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Trusted input: skip the R4 check of each resource")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Check each resource with the R4B models (slow), not the fast check")
    ] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """FHIR R4 bundles or NDJSON -> SDTM datasets; reports what it cannot convert, resource by resource."""
    from converter.fhir.commands import tosdtm_command
    from converter.io.outdir import output_folder
    from converter.io.progress import progress_bar

    with (
        output_folder(out, inputs=[fhir_path], overwrite=overwrite, command=_command_line()) as dest,
        progress_bar("tosdtm", quiet=quiet) as tick,
    ):
        code = tosdtm_command(fhir_path, dest.path, echo=dest.echo(_echo), partitions=partitions,
                              validate=not no_validate, progress=tick, strict=strict)  # fmt: skip
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def roundtrip(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder")],
) -> None:
    """SDTM -> FHIR -> SDTM, compared variable by variable; exit 1 when anything mapped came back different."""
    from converter.fhir.commands import roundtrip_command
    from converter.io.outdir import require_inputs

    require_inputs([sdtm_dir])
    code = roundtrip_command(sdtm_dir, echo=_echo)
    if code:
        raise typer.Exit(code)


def _upload_command() -> Callable[..., None]:
    # the options, defaults and help are defined once, in converter/upload/options.py; this module is light
    # (typer and the options: httpx and rich load only when the upload runs)
    from converter.upload.commands import upload_command

    return upload_command


app.command("upload")(handles_errors(_upload_command()))


@app.command()
@handles_errors
def validate(
    folder: Annotated[Path, typer.Argument(help="An SDTM, ADaM or FHIR folder, or the whole `inoconv run` output")],
    fail_on: Annotated[str, typer.Option("--fail-on", help="error or warning")] = "error",
    out: Annotated[Path | None, typer.Option("--out", help="Where to write findings.json/.csv")] = None,
    overwrite: Overwrite = False,
    meddra: Annotated[
        Path | None, typer.Option("--meddra", help="MedDRA's MedAscii folder (llt.asc, pt.asc, mdhier.asc ...)")
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Spec level against these specs (a mappings folder or SDTM spec YAML files)"),
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Check FHIR resources with the R4B models (slow), not the fast check")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Conformance report for a package: the standard's rules (SDTMIG 3.4) on any package; the study's specs
    (--spec, else the package's define.xml) on top; define.xml, FHIR, round trip."""
    from converter.io.outdir import require_inputs
    from converter.io.progress import progress_bar
    from converter.validate.commands import validate_command

    require_inputs([folder])
    if out is None:
        with progress_bar("validate", quiet=quiet) as tick:
            code = validate_command(folder, fail_on=fail_on, out=None, echo=_echo, meddra=meddra, spec=spec,
                                    progress=tick, strict=strict)  # fmt: skip
    else:
        from converter.io.outdir import output_folder

        with (
            output_folder(out, inputs=[folder], overwrite=overwrite, command=_command_line()) as dest,
            progress_bar("validate", quiet=quiet) as tick,
        ):
            code = validate_command(folder, fail_on=fail_on, out=dest.path, echo=dest.echo(_echo),
                                    meddra=meddra, spec=spec, progress=tick, strict=strict)  # fmt: skip
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def verify(
    path: Annotated[Path, typer.Argument(help="An output folder (or a file written by simulate) with its manifest")],
) -> None:
    """Re-hash an output folder against its manifest.json: exit 0 intact; 1 a file added, missing or changed."""
    from converter.io.manifest import verify_path
    from converter.io.outdir import require_inputs

    require_inputs([path])
    rep = verify_path(path)
    if rep is None:
        from converter.errors import InputError, problem

        raise InputError(problem(str(path), "", "", "", "verify", "has no inoconv manifest.json (inoconv did not "
                                 "write it, or it was written before manifests existed)"))  # fmt: skip
    for line in rep.lines():
        _echo(line)
    m = rep.manifest
    cmd = " ".join(m.command)
    cmd = cmd if len(cmd) <= 100 else cmd[:97] + "..."
    _echo(f"{path}: written by inoconv {m.version} at {m.created} ({cmd}); "
               f"{rep.checked} of {len(m.outputs)} files re-hashed: "
               + ("intact" if rep.intact else f"{len(rep.changed)} changed, {len(rep.missing)} missing, "
                  f"{len(rep.added)} added"))  # fmt: skip
    if not rep.intact:
        raise typer.Exit(1)


@app.command()
@handles_errors
def deid(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder to de-identify")],
    out: Annotated[Path, typer.Option("--out", help="Output folder for the de-identified package")],
    key: Annotated[
        Path | None, typer.Option("--key", help="Key file (secret, ids, offsets): owner-only, never in --out")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", min=1, help="Smallest cell size (default: the rules' k)")] = None,
    overwrite: Overwrite = False,
) -> None:
    """De-identify an SDTM package by the rules in mappings/deid (PhUSE shape), with a residual check."""
    from converter.deid.commands import deid_command

    code = deid_command(sdtm_dir, out, key=key, k=k, echo=_echo, overwrite=overwrite)
    if code:
        raise typer.Exit(code)


@app.command("deid-check")
@handles_errors
def deid_check(
    deid_dir: Annotated[Path, typer.Argument(help="A de-identified SDTM folder")],
    original: Annotated[Path, typer.Option("--original", help="The SDTM folder it was made from")],
) -> None:
    """Residual check: does a de-identified package still hold an identifier of the original? Exit 1 if so."""
    from converter.deid.commands import deid_check_command

    if deid_check_command(deid_dir, original, echo=_echo):
        raise typer.Exit(1)


@app.command()
@handles_errors
def run(
    source: Annotated[Path | None, typer.Argument(help="ODM-XML or CSV folder (default: the bundled example)")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT,
    overwrite: Overwrite = False,
) -> None:
    """Every stage on the bundled example (or SOURCE): records -> SDTM -> ADaM -> report, SDTM -> FHIR."""
    from converter.stages import run_all

    code = run_all(source, out, echo=_echo, overwrite=overwrite, command=_command_line())
    if code:
        raise typer.Exit(code)


def main() -> None:
    """The console script. When the command is done and no other thread runs, the process leaves at once (stdout
    and stderr flushed, exit handlers run, files already closed by then) instead of tearing the interpreter down
    object by object: after ``inoconv run`` that teardown alone took 0.6 s."""
    try:
        app(prog_name="inoconv")
    except SystemExit as exc:
        code = exc.code
        if (code is None or isinstance(code, int)) and threading.active_count() == 1:
            _leave(code or 0)
        raise


def _leave(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe (inoconv ... | head): what Python's own exit would meet too
            code = code or 1
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":
    main()
