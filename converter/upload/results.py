"""What an upload reports: per-bundle rejections, the summary, progress events, the retry policy.

Everything here is plain data. Text that came from the server (diagnostics, a body) is stored already redacted
and with its control characters escaped (:func:`converter.text.escape_controls`); rendering escapes the rest
(bundle names, fullUrls from the files), so nothing prints a control character raw.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from converter.text import escape_controls

__all__ = [
    "BundleRejection",
    "FhirServerError",
    "Interrupted",
    "IssueReport",
    "Progress",
    "ProgressCallback",
    "RetryPolicy",
    "UploadFailure",
    "UploadSummary",
    "parse_retry_after",
]


@dataclass(frozen=True)
class IssueReport:
    """One issue of a rejected bundle, placed as precisely as the server allowed."""

    severity: str
    code: str
    diagnostics: str
    entry_index: int | None = None
    full_url: str | None = None
    element: str | None = None

    def __str__(self) -> str:
        where = []
        if self.entry_index is not None:
            where.append(f"entry {self.entry_index}")
        if self.full_url:
            where.append(self.full_url)
        if self.element:
            where.append(self.element)
        head = " ".join(where) or "bundle"
        return escape_controls(f"{head}: [{self.severity}/{self.code}] {self.diagnostics}")


@dataclass(frozen=True)
class BundleRejection:
    """A bundle the server finally refused (or that could not be sent, or whose answer was not an acceptance)."""

    bundle: str
    status: int | None
    message: str
    issues: tuple[IssueReport, ...] = ()

    def render(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "not sent"
        lines = [escape_controls(f"{self.bundle}: {status}: {self.message}")]
        lines.extend(f"  - {issue}" for issue in self.issues)
        return "\n".join(lines)


@dataclass
class UploadSummary:
    server: str
    source: str
    dry_run: bool
    total_bundles: int
    planned: dict[str, int] = field(default_factory=dict)
    planned_deletes: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    skipped: int = 0
    rejected: list[BundleRejection] = field(default_factory=list)
    not_sent: int = 0
    retries: int = 0
    resources_sent: int = 0
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    interrupted: bool = False
    journal: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.not_sent and not self.interrupted

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if self.ok else 1


@dataclass(frozen=True)
class Progress:
    """What the progress callback gets, after each bundle (and each retry)."""

    event: str  # start | accepted | skipped | rejected | retry | done
    bundle: str | None
    total: int
    done: int
    sent: int
    skipped: int
    rejected: int
    retries: int
    resources: int
    elapsed: float
    message: str = ""

    @property
    def rate(self) -> float:
        """Bundles sent per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def resource_rate(self) -> float:
        return self.resources / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 0.5  # seconds; attempt n waits uniform(0, min(cap, base * 2**(n-1)))
    cap: float = 30.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * (2 ** (attempt - 1))))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Interrupted(Exception):
    """The upload was asked to stop (Ctrl-C or ``stop.set()``) while waiting."""


class UploadFailure(Exception):
    """One bundle (or one request) failed for good; ``fatal`` stops the whole upload (e.g. 401/403)."""

    def __init__(self, rejection: BundleRejection, fatal: bool = False) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection
        self.fatal = fatal


class FhirServerError(RuntimeError):
    """Reading from the server failed (search, paging, count); the message is redacted and escaped."""
