"""Upload FHIR R4 transaction Bundles to a FHIR server: idempotent, resumable, robust, visible.

* Idempotent: the bundles' entries are conditional creates/updates, so resending creates nothing new.
* Resumable: every bundle the server accepts is recorded in a fsync'ed journal (:mod:`.journal`); a rerun
  skips those (same name, same sha256, same server) unless ``force``.
* Robust: httpx with timeouts; 429, 5xx, 408, 409, connection errors, timeouts and unreadable answers are
  retried with exponential backoff and full jitter, honouring ``Retry-After`` (seconds or HTTP date), at
  most ``RetryPolicy.max_attempts`` tries. Any other 4xx rejects that bundle: the OperationOutcome is
  reported per bundle (entry index, fullUrl, element, the server's diagnostics) and the others go on.
  401/403 stop the upload (every other bundle would get the same answer).
* Concurrency: the bundles of one wave go out ``concurrency`` at a time; the study bundle is a wave alone.
* Secure: the token lives in a :class:`~converter.upload.auth.Secret`; every message is redacted.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from converter.errors import InputError, problem
from converter.upload.auth import Secret, redact, resolve_token, safe_url
from converter.upload.bundles import (
    BundleJob,
    EntryInfo,
    JsonDict,
    UploadPlan,
    canonical_bytes,
    load_job_body,
    plan_upload,
    rewrite_references,
)
from converter.upload.journal import JOURNAL_NAME, Journal

log = logging.getLogger("converter.upload")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403})
_FHIR_JSON = "application/fhir+json"
_ENTRY_EXPR = re.compile(r"Bundle\.entry\[(\d+)\](?:\.resource)?(?:\.(.+))?")
_ENTRY_TEXT = re.compile(r"\bentry\[?\s?(\d+)\]?")


# ---------------------------------------------------------------------------------------------------------
# results


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
        return f"{head}: [{self.severity}/{self.code}] {self.diagnostics}"


@dataclass(frozen=True)
class BundleRejection:
    """A bundle the server finally refused (or that could not be sent)."""

    bundle: str
    status: int | None
    message: str
    issues: tuple[IssueReport, ...] = ()

    def render(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "not sent"
        lines = [f"{self.bundle}: {status}: {self.message}"]
        lines.extend(f"  - {issue}" for issue in self.issues)
        return "\n".join(lines)


@dataclass
class UploadSummary:
    server: str
    source: str
    dry_run: bool
    total_bundles: int
    planned: dict[str, int] = field(default_factory=dict)
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


class _Interrupted(Exception):
    pass


class _Failure(Exception):
    def __init__(self, rejection: BundleRejection, fatal: bool = False) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection
        self.fatal = fatal


# ---------------------------------------------------------------------------------------------------------
# HTTP with retries


class FhirHttp:
    """An httpx client with the bearer token, retries and redaction."""

    def __init__(
        self,
        server: str,
        token: Secret | None,
        *,
        timeout: float,
        verify: bool,
        retry: RetryPolicy,
        pool: int = 4,
        stop: threading.Event | None = None,
        on_retry: Callable[[str], None] | None = None,
        seed: int | None = None,
    ) -> None:
        check_server(server)
        self.server = server
        self.base = server.rstrip("/") + "/"
        # POST transactions to the base itself: "http://h/fhir", or "http://h/" for a server at the root
        self.transaction_url = self.base if urlsplit(self.base).path in ("", "/") else self.base[:-1]
        self.token = token
        self.retry = retry
        self.stop = stop or threading.Event()
        self.on_retry = on_retry
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        headers = {"Accept": _FHIR_JSON, "User-Agent": "inoconv-upload"}
        if token:
            headers["Authorization"] = f"Bearer {token.reveal()}"
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            verify=verify,
            headers=headers,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(pool, 1) + 1, max_keepalive_connections=max(pool, 1)),
        )

    def __repr__(self) -> str:
        return f"FhirHttp(server={safe_url(self.server)!r}, token={'***' if self.token else None})"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> FhirHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        return redact(text, self.token)

    def pause(self, attempt: int) -> None:
        """Sleep the backoff for ``attempt`` (interruptible by ``stop``)."""
        with self._rng_lock:
            seconds = self.retry.backoff(attempt, self._rng)
        self._wait(seconds)

    def _wait(self, seconds: float) -> None:
        if self.stop.wait(max(0.0, seconds)):
            raise _Interrupted()

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> httpx.Response:
        """Send with retries; returns the first non-retryable response, raises :class:`_Failure` if none."""
        last = ""
        last_status: int | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            if self.stop.is_set():
                raise _Interrupted()
            wait_for: float | None = None
            try:
                resp = self.client.request(method, url, content=content, headers=headers)
            except httpx.TransportError as exc:  # connect/read/write errors, timeouts, dropped connections
                last = f"{type(exc).__name__}: {self.redact(str(exc)) or 'connection error'}"
                last_status = None
            else:
                if resp.status_code not in RETRY_STATUS:
                    return resp
                last = f"HTTP {resp.status_code}"
                last_status = resp.status_code
                ra = parse_retry_after(resp.headers.get("retry-after"))
                if ra is not None:
                    wait_for = min(ra, self.retry.max_retry_after)
            if attempt == self.retry.max_attempts:
                break
            if wait_for is None:
                with self._rng_lock:
                    wait_for = self.retry.backoff(attempt, self._rng)
            msg = f"{what or url}: {last}; retry {attempt}/{self.retry.max_attempts - 1} in {wait_for:.2f}s"
            log.info("%s", self.redact(msg))
            if self.on_retry is not None:
                self.on_retry(self.redact(msg))
            self._wait(wait_for)
        raise _Failure(
            BundleRejection(
                bundle=what or safe_url(url),
                status=last_status,
                message=self.redact(f"gave up after {self.retry.max_attempts} attempts (last: {last})"),
            )
        )

    def get_json(self, url: str, what: str = "") -> JsonDict:
        resp = self.request("GET", url, what=what)
        if resp.status_code >= 400:
            raise _Failure(
                BundleRejection(
                    bundle=what or safe_url(url),
                    status=resp.status_code,
                    message=self.redact(f"GET failed: {_outcome_text(resp)}"),
                ),
                fatal=resp.status_code in FATAL_STATUS,
            )
        try:
            data = resp.json()
        except ValueError:
            raise _Failure(
                BundleRejection(what or safe_url(url), resp.status_code, "answer is not JSON")
            ) from None
        if not isinstance(data, dict):
            raise _Failure(BundleRejection(what or safe_url(url), resp.status_code, "answer is not a JSON object"))
        return data


def check_server(server: str) -> None:
    try:
        parts = urlsplit(server)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            problem("--server", "", "", safe_url(server), "option", "server must be an http(s) URL with a host")
        )


def _outcome_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        texts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code"))
            for i in data.get("issue", [])
            if isinstance(i, dict)
        ]
        return "; ".join(texts) or resp.reason_phrase
    return resp.reason_phrase


# ---------------------------------------------------------------------------------------------------------
# OperationOutcome -> per entry reports


def outcome_issues(outcome: object, entries: list[EntryInfo], redactor: Callable[[str], str]) -> list[IssueReport]:
    """The issues of an OperationOutcome, each placed on its bundle entry where the server says which."""
    if not isinstance(outcome, dict):
        return []
    by_index = {e.index: e for e in entries}
    out: list[IssueReport] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        diag = str(issue.get("diagnostics") or (details or {}).get("text") or "")
        paths = [p for p in (issue.get("expression") or []) + (issue.get("location") or []) if isinstance(p, str)]
        index: int | None = None
        element: str | None = None
        for p in paths:
            m = _ENTRY_EXPR.search(p)
            if m:
                index = int(m.group(1))
                element = m.group(2)
                break
        if index is None:
            m2 = _ENTRY_TEXT.search(diag)
            if m2:
                index = int(m2.group(1))
            if paths:
                element = paths[0]
        info = by_index.get(index) if index is not None else None
        if element and info and info.resource_type and not element.startswith(info.resource_type):
            element = f"{info.resource_type}.{element}"
        out.append(
            IssueReport(
                severity=str(issue.get("severity") or "error"),
                code=str(issue.get("code") or "unknown"),
                diagnostics=redactor(diag),
                entry_index=index,
                full_url=info.full_url if info else None,
                element=element,
            )
        )
    return out


def _status_code(status: object) -> int | None:
    if not isinstance(status, str):
        return None
    m = re.match(r"\s*(\d{3})", status)
    return int(m.group(1)) if m else None


def _location_ref(location: object, base: str) -> str | None:
    """``Type/id`` out of a response.location (relative or absolute, with or without _history)."""
    if not isinstance(location, str) or not location:
        return None
    loc = location[len(base) :] if location.startswith(base) else location
    parts = [p for p in urlsplit(loc).path.split("/") if p]
    for i in range(len(parts) - 1):
        if re.fullmatch(r"[A-Z][A-Za-z]+", parts[i]) and parts[i + 1] != "_history":
            return f"{parts[i]}/{parts[i + 1]}"
    return None


# ---------------------------------------------------------------------------------------------------------
# the upload


class _Run:
    def __init__(
        self,
        plan: UploadPlan,
        http: FhirHttp,
        journal: Journal,
        summary: UploadSummary,
        progress: ProgressCallback | None,
        force: bool,
        concurrency: int,
    ) -> None:
        self.plan = plan
        self.http = http
        self.journal = journal
        self.summary = summary
        self.progress = progress
        self.force = force
        self.concurrency = max(1, concurrency)
        self.lock = threading.Lock()
        self.start = time.monotonic()
        self.done = 0
        self.ids: dict[str, str] = {}  # NDJSON "Type/id" -> server "Type/id"
        self.fatal = False

    # -- progress ---------------------------------------------------------------------------------------------

    def emit(self, event: str, bundle: str | None = None, message: str = "") -> None:
        if self.progress is None:
            return
        s = self.summary
        with self.lock:
            snap = Progress(
                event=event,
                bundle=bundle,
                total=s.total_bundles,
                done=self.done,
                sent=s.sent,
                skipped=s.skipped,
                rejected=len(s.rejected),
                retries=s.retries,
                resources=s.resources_sent,
                elapsed=time.monotonic() - self.start,
                message=message,
            )
            self.progress(snap)

    def on_retry(self, message: str) -> None:
        with self.lock:
            self.summary.retries += 1
        self.emit("retry", message=message)

    # -- one bundle -------------------------------------------------------------------------------------------

    def body_for(self, job: BundleJob) -> tuple[bytes, JsonDict]:
        if job.path is not None:
            try:
                return load_job_body(job)
            except (OSError, ValueError) as exc:
                raise _Failure(BundleRejection(job.name, None, f"cannot re-read bundle: {exc}")) from None
            except InputError as exc:
                raise _Failure(BundleRejection(job.name, None, str(exc.problems[0]))) from None
        assert job.content is not None
        content: JsonDict = json.loads(json.dumps(job.content))
        if job.external:
            missing = [ref for ref in sorted(job.external) if self.resolve(ref) is None]
            if missing:
                raise _Failure(
                    BundleRejection(
                        job.name,
                        None,
                        "references to resources the server does not hold (their bundle was rejected?): "
                        + ", ".join(missing[:10]),
                    )
                )
            with self.lock:
                ids = dict(self.ids)
            rewrite_references(content, lambda ref: ids.get(ref) if ref in job.external else None)
        return canonical_bytes(content), content

    def resolve(self, ref: str) -> str | None:
        with self.lock:
            if ref in self.ids:
                return self.ids[ref]
        ident = self.plan.identifiers.get(ref)
        if ident is None:
            return None
        rtype, search = ident
        try:
            data = self.http.get_json(f"{self.http.base}{rtype}?{search}", what=f"lookup {ref}")
        except _Failure:
            return None
        hits = [
            e["resource"]
            for e in data.get("entry") or []
            if isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("id")
        ]
        if len(hits) != 1:
            return None
        found = f"{rtype}/{hits[0]['id']}"
        with self.lock:
            self.ids[ref] = found
        return found

    def send(self, job: BundleJob) -> None:
        body, content = self.body_for(job)
        for attempt in range(1, self.http.retry.max_attempts + 1):
            resp = self.http.request(
                "POST",
                self.http.transaction_url,
                content=body,
                headers={"Content-Type": _FHIR_JSON, "Prefer": "return=minimal"},
                what=job.name,
            )
            if resp.status_code >= 300 or attempt == self.http.retry.max_attempts:
                break
            try:
                resp.json()
                break
            except ValueError:  # a 2xx whose body was garbled on the way: we do not know what happened
                msg = f"{job.name}: HTTP {resp.status_code} with an unreadable body; retry"
                self.on_retry(msg)
                self.http.pause(attempt)
        status = resp.status_code
        if status >= 300:
            issues: list[IssueReport] = []
            message = f"{resp.reason_phrase or 'rejected'}"
            try:
                outcome = resp.json()
                issues = outcome_issues(outcome, job.entries, self.http.redact)
            except ValueError:
                message += f": {resp.text[:300]}"
            fatal = status in FATAL_STATUS
            if fatal:
                message = "the server refused the credentials; stopping"
            raise _Failure(
                BundleRejection(job.name, status, self.http.redact(message), tuple(issues)), fatal=fatal
            )
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("resourceType") != "Bundle":
            # not a FHIR server's transaction-response (a web page, a proxy): do not journal it as accepted
            raise _Failure(
                BundleRejection(
                    job.name, status, f"HTTP {status} but the answer is not a transaction-response Bundle"
                )
            )
        self.accept(job, content, status, answer)

    def accept(self, job: BundleJob, content: JsonDict, status: int, answer: JsonDict) -> None:
        counts: dict[str, dict[str, int]] = {"created": {}, "updated": {}, "unchanged": {}, "deleted": {}}
        failed: list[IssueReport] = []
        ids: dict[str, str] = {}
        by_index = {e.index: e for e in job.entries}
        for i, entry in enumerate(answer.get("entry") or []):
            if not isinstance(entry, dict):
                continue
            response = entry.get("response") if isinstance(entry.get("response"), dict) else {}
            code = _status_code((response or {}).get("status"))
            info = by_index.get(i)
            if code is None or info is None:
                continue
            if code >= 300:
                issues = outcome_issues((response or {}).get("outcome"), job.entries, self.http.redact)
                failed.extend(
                    issues
                    or [IssueReport("error", "processing", f"entry status {code}", i, info.full_url, None)]
                )
                continue
            rtype = info.resource_type or "?"
            if info.method == "DELETE":
                kind = "deleted"
            elif code == 201:
                kind = "created"
            elif info.method in ("PUT", "PATCH"):
                kind = "updated"
            else:
                kind = "unchanged"  # conditional create that matched an existing resource
            counts[kind][rtype] = counts[kind].get(rtype, 0) + 1
            key = job.keys.get(i)
            if key is not None:
                ref = _location_ref((response or {}).get("location"), self.http.base)
                if ref is not None:
                    ids[key] = ref
        if failed:
            raise _Failure(
                BundleRejection(job.name, status, "the server rejected some entries of the transaction", tuple(failed))
            )
        self.journal.record_accepted(
            job.name, job.sha256, self.http.server, status=status, counts=counts, ids=ids or None
        )
        with self.lock:
            self.ids.update(ids)
            s = self.summary
            s.sent += 1
            s.resources_sent += job.resource_count
            for kind, per_type in counts.items():
                target = getattr(s, kind)
                for rtype, n in per_type.items():
                    target[rtype] = target.get(rtype, 0) + n
            self.done += 1
        self.emit("accepted", job.name)

    def reject(self, job: BundleJob, failure: _Failure) -> None:
        with self.lock:
            self.summary.rejected.append(failure.rejection)
            self.done += 1
            if failure.fatal:
                self.fatal = True
                self.http.stop.set()
        log.info("%s", self.http.redact(failure.rejection.render()))
        self.emit("rejected", job.name, failure.rejection.message)

    def process(self, job: BundleJob) -> None:
        try:
            self.send(job)
        except _Failure as failure:
            self.reject(job, failure)

    # -- waves ------------------------------------------------------------------------------------------------

    def run(self) -> None:
        state = self.journal.read(self.http.server)
        for rec in state.accepted.values():
            ids = rec.get("ids")
            if isinstance(ids, dict):
                self.ids.update({k: v for k, v in ids.items() if isinstance(k, str) and isinstance(v, str)})
        self.emit("start")
        waves = self.plan.waves
        for n, wave in enumerate(waves):
            todo: list[BundleJob] = []
            for job in wave:
                if not self.force and (job.name, job.sha256) in state.accepted:
                    with self.lock:
                        self.summary.skipped += 1
                        self.done += 1
                    self.emit("skipped", job.name)
                else:
                    todo.append(job)
            self.run_wave(todo)
            if self.fatal or self.http.stop.is_set():
                break
            if self.plan.source == "bundles" and n == 0 and len(waves) > 1 and self.summary.rejected:
                # the study bundle was refused: the subjects' references to it could not resolve
                self.summary.notes.append("subject bundles not sent: the study bundle was rejected")
                break

    def run_wave(self, jobs: list[BundleJob]) -> None:
        if not jobs:
            return
        if self.concurrency == 1 or len(jobs) == 1:
            for job in jobs:
                if self.http.stop.is_set():
                    return
                try:
                    self.process(job)
                except _Interrupted:
                    return
            return
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="fhir-upload")
        futures: dict[Future[None], BundleJob] = {}
        try:
            it = iter(jobs)
            for job in it:  # keep at most 2x concurrency queued: a stop does not leave much behind
                futures[pool.submit(self.process, job)] = job
                if len(futures) >= 2 * self.concurrency:
                    break
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in finished:
                    self._collect(fut)
                    if not self.http.stop.is_set():
                        nxt = next(it, None)
                        if nxt is not None:
                            f2 = pool.submit(self.process, nxt)
                            futures[f2] = nxt
                            pending.add(f2)
        except BaseException:
            self.http.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self, fut: Future[None]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None and not isinstance(exc, _Interrupted):
            raise exc


def upload(
    fhir_dir: Path,
    server: str,
    token: str | Secret | None = None,
    batch: int = 100,
    concurrency: int = 4,
    force: bool = False,
    dry_run: bool = False,
    timeout: float = 60.0,
    verify: bool = True,
    progress: ProgressCallback | None = None,
    *,
    token_file: Path | None = None,
    journal_path: Path | None = None,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    seed: int | None = None,
) -> UploadSummary:
    """Upload the transaction Bundles of ``fhir_dir`` to ``server``; see the module docstring.

    Raises :class:`~converter.errors.InputError` for bad input (before anything is sent). A Ctrl-C
    (KeyboardInterrupt) or ``stop.set()`` ends the upload after the bundles in flight; the summary then has
    ``interrupted`` set and the journal is consistent, so a rerun resumes.
    """
    fhir_dir = Path(fhir_dir)
    if concurrency < 1:
        raise InputError(problem("--concurrency", "", "", concurrency, "option", "concurrency must be >= 1"))
    if timeout <= 0:
        raise InputError(problem("--timeout", "", "", timeout, "option", "timeout must be > 0 seconds"))
    plan = plan_upload(fhir_dir, batch)
    summary = UploadSummary(
        server=safe_url(server),
        source=plan.source,
        dry_run=dry_run,
        total_bundles=len(plan.jobs),
        planned=plan.counts(),
    )
    entries, bundles = plan.plain_creates()
    if entries:
        summary.notes.append(
            f"{entries} entr{'y is a' if entries == 1 else 'ies are'} plain create(s) (POST without ifNoneExist) "
            f"in {bundles} bundle(s): a retry after a lost answer, or a --force rerun, can duplicate them"
        )
    if dry_run:
        if progress is not None:
            progress(Progress("done", None, summary.total_bundles, 0, 0, 0, 0, 0, 0, 0.0, "dry run"))
        return summary
    check_server(server)
    secret = resolve_token(token, token_file)
    jpath = Path(journal_path) if journal_path is not None else fhir_dir / JOURNAL_NAME
    summary.journal = str(jpath)
    stop_event = stop or threading.Event()
    started = time.monotonic()
    run: _Run | None = None
    http = FhirHttp(
        server,
        secret,
        timeout=timeout,
        verify=verify,
        retry=retry or RetryPolicy(),
        pool=concurrency,
        stop=stop_event,
        seed=seed,
    )
    with http, Journal(jpath) as journal:
        run = _Run(plan, http, journal, summary, progress, force, concurrency)
        http.on_retry = run.on_retry
        try:
            run.run()
        except (KeyboardInterrupt, _Interrupted):
            stop_event.set()
            summary.interrupted = True
        if stop_event.is_set() and not run.fatal:
            summary.interrupted = True
        summary.not_sent = summary.total_bundles - summary.sent - summary.skipped - len(summary.rejected)
        if run.fatal:
            summary.notes.append("upload stopped: the server refused the credentials")
        summary.elapsed = time.monotonic() - started
        run.emit("done")
    return summary


# ---------------------------------------------------------------------------------------------------------
# reading back


def iter_resources(
    server: str,
    resource_type: str,
    params: Mapping[str, str] | None = None,
    *,
    token: str | Secret | None = None,
    token_file: Path | None = None,
    timeout: float = 30.0,
    verify: bool = True,
    page_size: int | None = 100,
    max_pages: int = 100_000,
    retry: RetryPolicy | None = None,
) -> Iterator[JsonDict]:
    """Every resource of ``resource_type`` matching ``params``, following the searchset ``next`` links.

    The token is sent only to the server's own origin: a ``next`` link to another origin is an error.
    """
    secret = resolve_token(token, token_file)
    query = dict(params or {})
    if page_size is not None and "_count" not in query:
        query["_count"] = str(page_size)
    base = server.rstrip("/") + "/"
    url: str | None = f"{base}{resource_type}" + (f"?{urlencode(query, safe='|:/,')}" if query else "")
    origin = urlsplit(base)[:2]
    seen: set[str] = set()
    with FhirHttp(server, secret, timeout=timeout, verify=verify, retry=retry or RetryPolicy()) as http:
        pages = 0
        while url is not None:
            if url in seen or pages >= max_pages:
                raise RuntimeError(f"paging loop or too many pages at {safe_url(url)}")
            seen.add(url)
            pages += 1
            try:
                page = http.get_json(url, what=f"search {resource_type}")
            except _Failure as f:
                raise RuntimeError(f.rejection.render()) from None
            for entry in page.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    search = entry.get("search")
                    if isinstance(search, dict) and search.get("mode") == "include":
                        continue
                    yield entry["resource"]
            url = None
            for link in page.get("link") or []:
                if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                    nxt = urljoin(base, link["url"])
                    if urlsplit(nxt)[:2] != origin:
                        raise RuntimeError(f"next link points at another origin: {safe_url(nxt)}")
                    url = nxt


def fetch_all(
    server: str,
    resource_type: str,
    params: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[JsonDict]:
    """All resources of a type (following ``next`` links) as a list; see :func:`iter_resources`."""
    return list(iter_resources(server, resource_type, params, **kwargs))


def count_resources(
    server: str,
    resource_type: str,
    params: Mapping[str, str] | None = None,
    *,
    token: str | Secret | None = None,
    timeout: float = 30.0,
    verify: bool = True,
) -> int:
    """How many resources match, by ``_summary=count``."""
    query = {**(params or {}), "_summary": "count"}
    url = f"{server.rstrip('/')}/{resource_type}?{urlencode(query, safe='|:/,')}"
    with FhirHttp(server, resolve_token(token), timeout=timeout, verify=verify, retry=RetryPolicy()) as http:
        try:
            data = http.get_json(url, what=f"count {resource_type}")
        except _Failure as f:
            raise RuntimeError(f.rejection.render()) from None
    total = data.get("total")
    if not isinstance(total, int):
        raise RuntimeError(f"server gave no total for {resource_type}")
    return total
