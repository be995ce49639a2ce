"""``inoconv upload FHIR_DIR --server URL``: the typer command (register it with ``app.command("upload")``).

Exit codes: 0 all bundles accepted (or already accepted); 1 some bundle rejected or not sent; 2 bad input
(missing directory, non-JSON bundle, bad option), nothing sent; 130 interrupted (rerun to resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from converter.upload.client import Progress, ProgressCallback, UploadSummary


def upload_command(
    fhir_dir: Annotated[
        Path,
        typer.Argument(
            help="Output directory of the FHIR stage: bundles/*.json (study.json first) or ndjson/<Type>.ndjson.",
            show_default=False,
        ),
    ],
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="INOCONV_FHIR_SERVER",
            help="Base URL of the FHIR R4 server, e.g. https://fhir.example.org/fhir.",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="Bearer token. Prefer --token-file or the INOCONV_FHIR_TOKEN variable: options show in `ps`.",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="File holding the bearer token.", show_default=False),
    ] = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Resources per bundle when building bundles from NDJSON.")
    ] = 100,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Bundles posted in parallel.")
    ] = 4,
    force: Annotated[
        bool, typer.Option("--force", help="Resend bundles the journal says were already accepted.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the bundles and count; send nothing.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per HTTP request.")] = 60.0,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify the server's TLS certificate.")
    ] = False,
    journal: Annotated[
        Path | None,
        typer.Option(
            "--journal", help="Journal file (default FHIR_DIR/.upload-journal.jsonl).", show_default=False
        ),
    ] = None,
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", min=1, max=20, help="Tries per bundle before giving up.")
    ] = 6,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Upload FHIR R4 transaction Bundles to a FHIR server: idempotent, resumable, with retries."""
    from rich.console import Console

    from converter.errors import InputError
    from converter.upload.auth import redact
    from converter.upload.client import RetryPolicy, upload

    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False)
    if not dry_run and not server:
        err.print("[red]error:[/red] --server URL is required (or INOCONV_FHIR_SERVER), unless --dry-run")
        raise typer.Exit(2)
    secrets = (token,)

    try:
        with _progress(err, quiet or dry_run) as on_progress:
            summary = upload(
                fhir_dir,
                server or "http://dry-run.invalid/",
                token=token,
                batch=batch,
                concurrency=concurrency,
                force=force,
                dry_run=dry_run,
                timeout=timeout,
                verify=not insecure,
                progress=on_progress,
                token_file=token_file,
                journal_path=journal,
                retry=RetryPolicy(max_attempts=max_attempts),
            )
    except InputError as exc:
        err.print(redact(exc.render(limit=50), *secrets), markup=False)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted; rerun the same command to resume")
        raise typer.Exit(130) from None
    except OSError as exc:  # e.g. the journal cannot be written
        err.print(redact(f"error: {exc}", *secrets), markup=False)
        raise typer.Exit(1) from None

    _report(out, summary)
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)


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

            bar.console.print(f"[red]rejected[/red] {escape(f'{p.bundle}: {p.message}')}", highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _report(out: Console, summary: UploadSummary) -> None:
    from rich.table import Table

    s = summary
    if s.dry_run:
        out.print(f"dry run: {s.total_bundles} bundle(s) from {s.source}/ are valid transaction Bundles; nothing sent")
    types = sorted(set(s.planned) | set(s.created) | set(s.updated) | set(s.unchanged) | set(s.deleted))
    table = Table(title=None if s.dry_run else f"upload to {s.server}")
    table.add_column("resource type")
    table.add_column("in bundles", justify="right")
    if not s.dry_run:
        for col in ("created", "updated", "unchanged"):
            table.add_column(col, justify="right")
    for t in types:
        row = [t, str(s.planned.get(t, 0))]
        if not s.dry_run:
            row += [str(s.created.get(t, 0)), str(s.updated.get(t, 0)), str(s.unchanged.get(t, 0))]
        table.add_row(*row)
    out.print(table)
    if s.dry_run:
        for note in s.notes:
            out.print(note, markup=False)
        return
    out.print(
        f"bundles: {s.total_bundles} total, {s.sent} sent, {s.skipped} skipped (already accepted), "
        f"{len(s.rejected)} rejected, {s.not_sent} not sent; {s.retries} retries; {s.elapsed:.1f}s"
    )
    for rej in s.rejected:
        out.print(rej.render(), markup=False, highlight=False)
    for note in s.notes:
        out.print(note, markup=False)
    if s.journal:
        out.print(f"journal: {s.journal}", markup=False)
    if s.interrupted:
        out.print("interrupted: rerun the same command to resume")
