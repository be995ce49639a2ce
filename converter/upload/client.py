"""Upload FHIR R4 transaction Bundles to a FHIR server: idempotent, resumable, robust, visible.

* Idempotent: the bundles' entries are conditional creates/updates, so resending creates nothing new.
  Entries of another kind (GET, PATCH, absolute URLs, and DELETE unless ``allow_delete``) are refused before
  anything is sent (:func:`~converter.upload.bundles.request_refusal`).
* Resumable: a bundle is recorded in a fsync'ed journal (:mod:`.journal`) only when the server answered a real
  ``transaction-response`` with a 2xx for every entry (:mod:`.answers`); a rerun skips those (same name,
  same sha256, same server) unless ``force``.
* Robust (:mod:`.connection`): one overall deadline per request, a size limit on every answer, retries with
  exponential backoff and full jitter for 429/5xx/408/409/425, connection errors and timeouts, honouring
  ``Retry-After``. Any other answer rejects that bundle with the server's words, placed per entry, and the
  others go on; 401/403 stop the upload (every other bundle would get the same answer).
* Concurrency: the bundles of one wave go out ``concurrency`` at a time; the study bundle is a wave alone.
* Secure: the token lives in a :class:`~converter.upload.auth.Secret`, goes only to the server's origin, and
  every message is redacted; plain http only to loopback unless ``allow_insecure_http``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from converter.errors import InputError, Problem, problem
from converter.text import escape_controls
from converter.upload.answers import read_transaction_answer
from converter.upload.auth import Secret, resolve_token, safe_url
from converter.upload.bundles import (
    BundleJob,
    JsonDict,
    UploadPlan,
    canonical_bytes,
    load_job_body,
    plan_upload,
    rewrite_references,
)
from converter.upload.connection import FHIR_JSON, FhirHttp, check_server
from converter.upload.journal import JOURNAL_NAME, Journal
from converter.upload.options import DEFAULTS, MIB
from converter.upload.results import (
    BundleRejection,
    Interrupted,
    Progress,
    ProgressCallback,
    RetryPolicy,
    UploadFailure,
    UploadSummary,
)

__all__ = ["UploadRun", "upload"]

log = logging.getLogger("converter.upload")


class UploadRun:
    """One upload: the plan's waves, sent through one :class:`FhirHttp`, journaled as accepted."""

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
                raise UploadFailure(BundleRejection(job.name, None, f"cannot re-read bundle: {exc}")) from None
            except InputError as exc:
                raise UploadFailure(BundleRejection(job.name, None, str(exc.problems[0]))) from None
        assert job.content is not None
        content: JsonDict = json.loads(json.dumps(job.content))
        if job.external:
            missing = [ref for ref in sorted(job.external) if self.resolve(ref) is None]
            if missing:
                raise UploadFailure(
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
        except UploadFailure:
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
        body, _ = self.body_for(job)
        for attempt in range(1, self.http.retry.max_attempts + 1):
            answer = self.http.request(
                "POST",
                self.http.transaction_url,
                content=body,
                headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"},
                what=job.name,
            )
            if answer.status_code >= 300 or attempt == self.http.retry.max_attempts:
                break
            try:
                answer.json()
                break
            except ValueError:  # a 2xx whose body was garbled on the way: we do not know what happened
                self.on_retry(escape_controls(f"{job.name}: HTTP {answer.status_code} with an unreadable body; retry"))
                self.http.pause(attempt)
        outcome = read_transaction_answer(job, answer, self.http.base, self.http.redact)
        self.journal.record_accepted(
            job.name,
            job.sha256,
            self.http.server,
            status=outcome.status,
            counts=outcome.counts,
            ids=outcome.ids or None,
        )
        with self.lock:
            self.ids.update(outcome.ids)
            s = self.summary
            s.sent += 1
            s.resources_sent += job.resource_count
            for kind, per_type in outcome.counts.items():
                target = getattr(s, kind)
                for rtype, n in per_type.items():
                    target[rtype] = target.get(rtype, 0) + n
            self.done += 1
        self.emit("accepted", job.name)

    def reject(self, job: BundleJob, failure: UploadFailure) -> None:
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
        except UploadFailure as failure:
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
                except Interrupted:
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
        if exc is not None and not isinstance(exc, Interrupted):
            raise exc


def _checked_input(
    fhir_dir: Path,
    server: str,
    token: str | Secret | None,
    token_file: Path | None,
    batch: int,
    allow_delete: bool,
    allow_insecure_http: bool,
    dry_run: bool,
) -> tuple[UploadPlan, Secret | None]:
    """The plan and the token, or one :class:`InputError` with every problem of the server, token and files."""
    problems: list[Problem] = []
    context = ""
    secret: Secret | None = None
    if not dry_run:  # a dry run needs neither a server nor a token
        try:
            check_server(server, allow_insecure_http)
        except InputError as exc:
            problems += exc.problems
        try:
            secret = resolve_token(token, token_file)
        except InputError as exc:
            problems += exc.problems
    try:
        plan = plan_upload(fhir_dir, batch, allow_delete=allow_delete)
    except InputError as exc:
        problems += exc.problems
        context = exc.context
    if problems:
        raise InputError(problems, context=context)
    return plan, secret


def upload(
    fhir_dir: Path,
    server: str,
    token: str | Secret | None = None,
    batch: int = DEFAULTS.batch,
    concurrency: int = DEFAULTS.concurrency,
    force: bool = DEFAULTS.force,
    dry_run: bool = DEFAULTS.dry_run,
    timeout: float = DEFAULTS.timeout,
    verify: bool = not DEFAULTS.insecure,
    progress: ProgressCallback | None = None,
    *,
    token_file: Path | None = None,
    journal_path: Path | None = None,
    allow_insecure_http: bool = DEFAULTS.allow_insecure_http,
    allow_delete: bool = DEFAULTS.allow_delete,
    max_answer_bytes: int = DEFAULTS.max_answer_mib * MIB,
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
    if max_answer_bytes < 1:
        raise InputError(
            problem("--max-answer-mib", "", "", max_answer_bytes, "option", "the answer limit must be positive")
        )
    plan, secret = _checked_input(
        fhir_dir, server, token, token_file, batch, allow_delete, allow_insecure_http, dry_run
    )
    summary = UploadSummary(
        server=safe_url(server),
        source=plan.source,
        dry_run=dry_run,
        total_bundles=len(plan.jobs),
        planned=plan.counts(),
        planned_deletes=plan.counts(deletes=True),
    )
    if summary.planned_deletes:
        n = sum(summary.planned_deletes.values())
        summary.notes.append(f"{n} DELETE entr{'y' if n == 1 else 'ies'} (--allow-delete): they remove data")
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
    jpath = Path(journal_path) if journal_path is not None else fhir_dir / JOURNAL_NAME
    summary.journal = str(jpath)
    stop_event = stop or threading.Event()
    started = time.monotonic()
    http = FhirHttp(
        server,
        secret,
        timeout=timeout,
        verify=verify,
        retry=retry or RetryPolicy(max_attempts=DEFAULTS.max_attempts),
        max_answer_bytes=max_answer_bytes,
        allow_insecure_http=allow_insecure_http,
        pool=concurrency,
        stop=stop_event,
        seed=seed,
    )
    with http, Journal(jpath) as journal:
        run = UploadRun(plan, http, journal, summary, progress, force, concurrency)
        http.on_retry = run.on_retry
        try:
            run.run()
        except (KeyboardInterrupt, Interrupted):
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
