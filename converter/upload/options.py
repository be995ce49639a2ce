"""The options of ``inoconv upload``, defined once: name, default and help of each.

:class:`UploadOptions` holds the values (its defaults are the command's defaults) and :data:`HELP` the help
text of each; :func:`converter.upload.commands.upload_command` binds them to the command line (``inoconv upload``
and ``python -m converter.upload`` register that same function), and :func:`converter.upload.client.upload`
takes its defaults from :data:`DEFAULTS`. This module imports nothing heavy: the CLI reads it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULTS", "HELP", "MIB", "SERVER_ENV", "TOKEN_WARNING", "UploadOptions"]

MIB = 1024 * 1024
SERVER_ENV = "INOCONV_FHIR_SERVER"
TOKEN_WARNING = (
    "warning: --token puts the token on the command line, where other users see it (ps, shell history); "
    "prefer --token-file or the INOCONV_FHIR_TOKEN variable"
)


@dataclass(frozen=True)
class UploadOptions:
    """Every upload option with its default."""

    server: str | None = None
    token: str | None = None
    token_file: Path | None = None
    batch: int = 100
    concurrency: int = 4
    force: bool = False
    dry_run: bool = False
    timeout: float = 60.0
    insecure: bool = False
    allow_insecure_http: bool = False
    allow_delete: bool = False
    identified: bool = False
    max_answer_mib: int = 64
    journal: Path | None = None
    max_attempts: int = 6
    quiet: bool = False

    @property
    def max_answer_bytes(self) -> int:
        return self.max_answer_mib * MIB


DEFAULTS = UploadOptions()

HELP: dict[str, str] = {
    "fhir_dir": "Output directory of the FHIR stage: bundles/*.json (study.json first) or ndjson/<Type>.ndjson.",
    "server": f"Base URL of the FHIR R4 server, e.g. https://fhir.example.org/fhir (or {SERVER_ENV}).",
    "token": "Bearer token. Prefer --token-file or the INOCONV_FHIR_TOKEN variable: options show in `ps`.",
    "token_file": "File holding the bearer token, on one line.",
    "batch": "Resources per bundle when building bundles from NDJSON.",
    "concurrency": "Bundles posted in parallel.",
    "force": "Resend bundles the journal says were already accepted.",
    "dry_run": "Check the bundles and count; send nothing.",
    "timeout": "Seconds for each request in total: connect, send, the server's work and its whole answer.",
    "insecure": "Do not verify the server's TLS certificate.",
    "allow_insecure_http": "Allow plain http:// to a host that is not loopback (token and data unencrypted).",
    "allow_delete": "Allow DELETE entries in the bundles (refused otherwise); the summary counts them.",
    "identified": "Upload a package that is not marked de-identified by inoconv deid (the server may hold "
    "identifiable data).",
    "max_answer_mib": "Largest answer read from the server, in MiB; a larger one is refused.",
    "journal": "Journal file (default FHIR_DIR/.upload-journal.jsonl).",
    "max_attempts": "Tries per bundle before giving up.",
    "quiet": "No progress bar.",
}
