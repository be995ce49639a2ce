"""The ``inoconv`` command line: one thin function per subcommand.

Heavy modules (pandas, lxml, fhir.resources, lifelines, matplotlib) are imported inside the commands, so
``inoconv --help`` answers at once. Errors in user input print the problem table and exit 2; output that
would not be conformant exits 1; nothing prints a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

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


def _echo_err(msg: str) -> None:
    typer.echo(msg, err=True)


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
            _echo_err(f"File not found: {exc.filename or exc}")
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
) -> None:
    """Write a synthetic cohort calibrated to the published aggregates of NCT01371630."""
    from converter.records.simulate import DEFAULT_SEED
    from converter.records.simulate import simulate as run_sim
    from converter.records.sources import write_records

    if fmt not in ("odm", "csv"):
        raise typer.BadParameter("--format must be odm or csv")
    records = run_sim(n=n, seed=DEFAULT_SEED if seed is None else seed)
    (out.parent if fmt == "odm" else out).mkdir(parents=True, exist_ok=True)
    write_records(records, out, "odm" if fmt == "odm" else "csv", creation_datetime=created)
    rows = sum(len(df) for df in records.values())
    typer.echo(f"wrote {n} subjects, {rows} records in {len(records)} forms to {out} ({fmt})")


@app.command()
@handles_errors
def sdtm(
    source: Annotated[Path, typer.Argument(help="ODM-XML file or folder of CSV files (one per CRF form)")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "sdtm",
    engine: Annotated[str, typer.Option("--engine", help="local, or spark (extra inoconv[spark])")] = "local",
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="Subject partitions (memory per step)")] = 1,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Spark: also write Parquet by dataset here")] = None,
    no_validate: Annotated[bool, typer.Option("--no-validate", help="Skip ODM XSD validation (huge files)")] = False,
) -> None:
    """Records -> SDTM: XPT v5, Dataset-JSON and define.xml, driven by mappings/sdtm."""
    from converter.stages import run_sdtm

    if engine not in ("local", "spark"):
        raise typer.BadParameter("--engine must be local or spark")
    run_sdtm(source, out, echo=typer.echo, engine=engine, partitions=partitions, parquet=parquet,
             validate=not no_validate)  # fmt: skip


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
) -> None:
    """Registry-sized input: records -> SDTM -> ADaM -> FHIR NDJSON, a partition of subjects at a time.

    Writes Parquet per dataset and partition, FHIR Bulk Data NDJSON, accounting.csv and stream.json.
    """
    if engine not in ("local", "spark"):
        raise typer.BadParameter("--engine must be local or spark")
    if engine == "spark":
        from converter.engine.spark import stream_on_spark

        rep = stream_on_spark(source, out, partitions=partitions, subjects_per_partition=subjects,
                              validate=not no_validate, fhir=not no_fhir, rules=not no_rules, cores=workers,
                              echo=typer.echo)  # fmt: skip
    else:
        from converter.engine.stream import run_stream

        rep = run_stream(source, out, workers=workers, subjects_per_partition=subjects, validate=not no_validate,
                         fhir=not no_fhir, rules=not no_rules, echo=typer.echo)  # fmt: skip
    typer.echo(
        f"{rep.subjects} subjects in {rep.partitions} partitions: {rep.records} source records "
        f"({rep.rejected} rejected, see accounting.csv), {sum(rep.sdtm_rows.values())} SDTM rows, "
        f"{sum(rep.adam_rows.values())} ADaM rows, {sum(rep.fhir_counts.values())} FHIR resources -> {out} "
        f"({rep.wall_seconds['total']:.1f} s)"
    )
    for line in rep.adam_checks[:20]:
        typer.echo(f"ADaM check failed: {line}", err=True)
    for prob in rep.fhir_problems[:20]:
        typer.echo(f"FHIR: {prob}", err=True)
    errors = {k: v for k, v in rep.rule_counts.items() if k.startswith("error:")}
    if rep.rule_counts:
        listed = ", ".join(f"{k} x{v}" for k, v in sorted(rep.rule_counts.items()))
        typer.echo(f"conformance findings (validate/findings.csv): {listed}")
    if rep.adam_checks or rep.fhir_problems or errors:
        raise typer.Exit(1)


@app.command()
@handles_errors
def adam(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder written by `inoconv sdtm`")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "adam",
) -> None:
    """SDTM -> ADaM (ADSL, ADTTE, ADAE, ADRS): XPT v5, Dataset-JSON and define.xml."""
    from converter.adam.commands import adam_command

    adam_command(sdtm_dir, out)


@app.command()
@handles_errors
def report(
    adam_dir: Annotated[Path, typer.Argument(help="ADaM folder written by `inoconv adam`")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "report",
) -> None:
    """The publication's end points recomputed from ADaM, compared with the published values."""
    from converter.adam.commands import report_command

    code = report_command(adam_dir, out)
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def fhir(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder")],
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT / "fhir",
    strict: Annotated[bool, typer.Option("--strict", help="Validate every resource with the R4 models")] = False,
) -> None:
    """SDTM -> FHIR R4: a transaction Bundle per subject plus the study, and NDJSON per resource type."""
    from converter.fhir.commands import fhir_command

    code = fhir_command(sdtm_dir, out, strict)
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
        bool, typer.Option("--no-validate", help="Trusted input: skip the R4 model check of each resource")
    ] = False,
) -> None:
    """FHIR R4 bundles or NDJSON -> SDTM datasets; reports what it cannot convert, resource by resource."""
    from converter.fhir.commands import tosdtm_command

    code = tosdtm_command(fhir_path, out, partitions=partitions, validate=not no_validate)
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def roundtrip(
    sdtm_dir: Annotated[Path, typer.Argument(help="SDTM folder")],
) -> None:
    """SDTM -> FHIR -> SDTM, compared variable by variable; exit 1 when anything mapped came back different."""
    from converter.fhir.commands import roundtrip_command

    code = roundtrip_command(sdtm_dir)
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def upload(
    fhir_dir: Annotated[Path, typer.Argument(help="Folder written by `inoconv fhir`")],
    server: Annotated[str, typer.Option("--server", help="FHIR R4 base URL")],
    token: Annotated[str | None, typer.Option("--token", help="Bearer token (or INOCONV_FHIR_TOKEN)")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="File holding the bearer token")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Resources per bundle when built from NDJSON")] = 200,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Bundles in flight")] = 2,
    force: Annotated[bool, typer.Option("--force", help="Re-send bundles the journal says were accepted")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and count; send nothing")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request")] = 30.0,
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify TLS certificates")] = False,
    journal: Annotated[Path | None, typer.Option("--journal", help="Upload journal (default in FHIR_DIR)")] = None,
    max_attempts: Annotated[int, typer.Option("--max-attempts", min=1, max=20, help="Tries per bundle")] = 6,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar")] = False,
) -> None:
    """Upload FHIR bundles to a FHIR R4 server: idempotent, resumable, retrying."""
    from converter.upload.commands import upload_command

    upload_command(
        fhir_dir=fhir_dir, server=server, token=token, token_file=token_file, batch=batch,
        concurrency=concurrency, force=force, dry_run=dry_run, timeout=timeout, insecure=insecure,
        journal=journal, max_attempts=max_attempts, quiet=quiet,
    )  # fmt: skip


@app.command()
@handles_errors
def validate(
    folder: Annotated[Path, typer.Argument(help="An SDTM, ADaM or FHIR folder, or the whole `inoconv run` output")],
    fail_on: Annotated[str, typer.Option("--fail-on", help="error or warning")] = "error",
    out: Annotated[Path | None, typer.Option("--out", help="Where to write findings.json/.csv")] = None,
) -> None:
    """Conformance report for a package: CDISC rules, define.xml, FHIR, round trip."""
    from converter.validate.commands import validate_command

    code = validate_command(folder, fail_on=fail_on, out=out)
    if code:
        raise typer.Exit(code)


@app.command()
@handles_errors
def run(
    source: Annotated[Path | None, typer.Argument(help="ODM-XML or CSV folder (default: the bundled example)")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder")] = DEFAULT_OUT,
) -> None:
    """Every stage on the bundled example (or SOURCE): records -> SDTM -> ADaM -> report, SDTM -> FHIR."""
    from converter.stages import run_all

    code = run_all(source, out, echo=typer.echo)
    if code:
        raise typer.Exit(code)


def main() -> None:
    app(prog_name="inoconv")


if __name__ == "__main__":
    main()
