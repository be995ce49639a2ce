"""``inoconv upload FHIR_DIR --server URL``: the typer command (register it with ``app.command("upload")``).

The one binding of the options (:mod:`.options`) to the command line: ``inoconv upload`` and
``python -m converter.upload`` both register :func:`upload_command`.

Exit codes: 0 all bundles accepted (or already accepted); 1 some bundle rejected or not sent; 2 bad input
(missing directory, non-JSON bundle, an entry that is not a create/update - DELETE without --allow-delete -,
plain http to a host that is not loopback, a token file that is not one line, a bad option), every problem
listed and nothing sent; 130 interrupted (rerun to resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from converter.upload.options import DEFAULTS, HELP, SERVER_ENV, TOKEN_WARNING, UploadOptions

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from converter.upload.results import Progress, ProgressCallback, UploadSummary


def upload_command(
    fhir_dir: Annotated[Path, typer.Argument(help=HELP["fhir_dir"], show_default=False)],
    server: Annotated[
        str | None, typer.Option("--server", envvar=SERVER_ENV, help=HELP["server"], show_default=False)
    ] = DEFAULTS.server,
    token: Annotated[str | None, typer.Option("--token", help=HELP["token"], show_default=False)] = DEFAULTS.token,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help=HELP["token_file"], show_default=False)
    ] = DEFAULTS.token_file,
    batch: Annotated[int, typer.Option("--batch", min=1, help=HELP["batch"])] = DEFAULTS.batch,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help=HELP["concurrency"])
    ] = DEFAULTS.concurrency,
    force: Annotated[bool, typer.Option("--force", help=HELP["force"])] = DEFAULTS.force,
    dry_run: Annotated[bool, typer.Option("--dry-run", help=HELP["dry_run"])] = DEFAULTS.dry_run,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help=HELP["timeout"])] = DEFAULTS.timeout,
    insecure: Annotated[bool, typer.Option("--insecure", help=HELP["insecure"])] = DEFAULTS.insecure,
    allow_insecure_http: Annotated[
        bool, typer.Option("--allow-insecure-http", help=HELP["allow_insecure_http"])
    ] = DEFAULTS.allow_insecure_http,
    allow_delete: Annotated[bool, typer.Option("--allow-delete", help=HELP["allow_delete"])] = DEFAULTS.allow_delete,
    identified: Annotated[bool, typer.Option("--identified", help=HELP["identified"])] = DEFAULTS.identified,
    max_answer_mib: Annotated[
        int, typer.Option("--max-answer-mib", min=1, max=4096, help=HELP["max_answer_mib"])
    ] = DEFAULTS.max_answer_mib,
    journal: Annotated[
        Path | None, typer.Option("--journal", help=HELP["journal"], show_default=False)
    ] = DEFAULTS.journal,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, max=20, help=HELP["max_attempts"])
    ] = DEFAULTS.max_attempts,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help=HELP["quiet"])] = DEFAULTS.quiet,
) -> None:
    """Upload FHIR R4 transaction Bundles to a FHIR server: idempotent, resumable, with retries."""
    options = UploadOptions(
        server=server, token=token, token_file=token_file, batch=batch, concurrency=concurrency, force=force,
        dry_run=dry_run, timeout=timeout, insecure=insecure, allow_insecure_http=allow_insecure_http,
        allow_delete=allow_delete, identified=identified, max_answer_mib=max_answer_mib, journal=journal,
        max_attempts=max_attempts, quiet=quiet,
    )  # fmt: skip
    code = run_upload(fhir_dir, options)
    if code:
        raise typer.Exit(code)


def run_upload(fhir_dir: Path, options: UploadOptions) -> int:
    """Run the upload with ``options``, print the summary; the exit code (0, 1, 2 or 130)."""
    from rich.console import Console

    from converter.deid.mark import MARK_FILE, is_deidentified
    from converter.errors import InputError, problem
    from converter.io.package_kind import expect_kind
    from converter.upload.auth import redact
    from converter.upload.client import upload
    from converter.upload.results import RetryPolicy

    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False)
    o = options
    if not o.dry_run and not o.server:
        err.print(f"error: --server URL is required (or {SERVER_ENV}), unless --dry-run", markup=False)
        return 2
    if o.token:
        err.print(TOKEN_WARNING, markup=False)
    secrets = (o.token,)

    try:
        expect_kind(Path(fhir_dir), "upload", ["fhir"])
        if not o.dry_run and not o.identified and not is_deidentified(Path(fhir_dir)):
            raise InputError(problem(str(fhir_dir), "", "", "", "not-deidentified",
                                     f"is not marked de-identified (no {MARK_FILE} from `inoconv deid`): de-identify "
                                     "the SDTM with `inoconv deid`, then `inoconv fhir` it, or give --identified when "
                                     "this server may hold identifiable data"))  # fmt: skip
        with _progress(err, o.quiet or o.dry_run) as on_progress:
            summary = upload(
                fhir_dir,
                o.server or "http://dry-run.invalid/",
                token=o.token,
                batch=o.batch,
                concurrency=o.concurrency,
                force=o.force,
                dry_run=o.dry_run,
                timeout=o.timeout,
                verify=not o.insecure,
                progress=on_progress,
                token_file=o.token_file,
                journal_path=o.journal,
                allow_insecure_http=o.allow_insecure_http,
                allow_delete=o.allow_delete,
                max_answer_bytes=o.max_answer_bytes,
                retry=RetryPolicy(max_attempts=o.max_attempts),
            )
    except InputError as exc:
        err.print(redact(exc.render(limit=50), *secrets), markup=False)
        return 2
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume")
        return 130
    except OSError as exc:  # e.g. the journal cannot be written
        err.print(redact(f"error: {exc}", *secrets), markup=False)
        return 1

    _report(out, summary)
    return summary.exit_code


class _progress:
    """A rich progress bar on stderr fed by the upload's progress callback (or nothing, if quiet)."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.bar: RichProgress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressCallback | None:
        if self.quiet:
            return None
        return self.on_progress

    def _start(self) -> tuple[RichProgress, TaskID]:
        # started on the first event, so bad input (raised before any) shows no empty bar
        if self.bar is None or self.task is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]upload[/bold]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task("upload", total=None, stats="")
        return self.bar, self.task

    def on_progress(self, p: Progress) -> None:
        bar, task = self._start()
        stats = (
            f"sent {p.sent} skipped {p.skipped} rejected {p.rejected} retries {p.retries} "
            f"{p.rate:.1f} bundles/s {p.resource_rate:.0f} res/s"
        )
        bar.update(task, total=p.total, completed=p.done, stats=stats)
        if p.event == "rejected":
            from rich.markup import escape

            from converter.text import escape_controls

            shown = escape(escape_controls(f"{p.bundle}: {p.message}"))
            bar.console.print(f"[red]rejected[/red] {shown}", highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _report(out: Console, summary: UploadSummary) -> None:
    from rich.markup import escape
    from rich.table import Table

    from converter.text import escape_controls, escape_controls_lines

    s = summary
    if s.dry_run:  # the folder and the server are the user's: never markup, never a raw control character
        out.print(escape_controls(f"dry run: {s.total_bundles} bundle(s) from {s.source}/ are valid transaction "
                                  "Bundles; nothing sent"), markup=False)  # fmt: skip
    deletes = bool(s.planned_deletes or s.deleted)
    kinds = (s.planned, s.planned_deletes, s.created, s.updated, s.unchanged, s.deleted)
    types = sorted(set().union(*kinds))
    table = Table(title=None if s.dry_run else escape(escape_controls(f"upload to {s.server}")))
    table.add_column("resource type")
    table.add_column("in bundles", justify="right")
    if deletes:
        table.add_column("to delete", justify="right")
    if not s.dry_run:
        for col in ("created", "updated", "unchanged") + (("deleted",) if deletes else ()):
            table.add_column(col, justify="right")
    for t in types:
        row = [t, str(s.planned.get(t, 0))]
        if deletes:
            row.append(str(s.planned_deletes.get(t, 0)))
        if not s.dry_run:
            row += [str(s.created.get(t, 0)), str(s.updated.get(t, 0)), str(s.unchanged.get(t, 0))]
            if deletes:
                row.append(str(s.deleted.get(t, 0)))
        table.add_row(*row)
    out.print(table)
    if s.dry_run:
        for note in s.notes:
            out.print(escape_controls_lines(note), markup=False)
        return
    deleted = sum(s.deleted.values())
    out.print(
        f"bundles: {s.total_bundles} total, {s.sent} sent, {s.skipped} skipped (already accepted), "
        f"{len(s.rejected)} rejected, {s.not_sent} not sent; {s.retries} retries; "
        + (f"{deleted} resource(s) deleted; " if deletes else "")
        + f"{s.elapsed:.1f}s",
        markup=False,
    )
    for rej in s.rejected:
        out.print(rej.render(), markup=False, highlight=False)
    for note in s.notes:
        out.print(escape_controls_lines(note), markup=False)
    if s.journal:
        out.print(escape_controls(f"journal: {s.journal}"), markup=False)
    if s.interrupted:
        out.print("interrupted: rerun the same command to resume")
