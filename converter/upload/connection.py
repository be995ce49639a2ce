"""One FHIR server over HTTP: the token, retries, an overall deadline and a size limit per answer, origins.

* Each request (connect, send, status line, headers, body) must be done within ``timeout`` seconds in total
  (:mod:`.transport`); a server that trickles its answer is cut off at the deadline, then retried.
* An answer is read streaming and refused once it passes ``max_answer_bytes`` (a declared ``Content-Length``
  over the limit is refused before reading): memory stays bounded whatever the server sends.
* The bearer token goes only to the ``--server`` origin (scheme, host, port). Redirects are followed only
  within that origin (any 3xx for GET, 307/308 for other methods); a redirect elsewhere is refused.
* Plain ``http://`` is allowed only to a loopback host, unless ``allow_insecure_http``.
* 429, 5xx, 408, 409, 425, connection errors and timeouts are retried with exponential backoff and full
  jitter, honouring ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from converter.errors import InputError, problem
from converter.text import escape_controls
from converter.upload.auth import Secret, redact, safe_url
from converter.upload.results import BundleRejection, Interrupted, RetryPolicy, UploadFailure, parse_retry_after
from converter.upload.transport import DeadlineTransport, deadline, is_loopback

__all__ = ["Answer", "FhirHttp", "check_server", "origin_of"]

log = logging.getLogger("converter.upload")

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
FHIR_JSON = "application/fhir+json"
MAX_REDIRECTS = 5
_DEFAULT_PORT = {"http": 80, "https": 443}
# the HTTP libraries' loggers: at DEBUG, httpcore logs the answers' headers, which a server may fill with the
# token it was sent; their records are redacted while a FhirHttp is open
_LIBRARY_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
                    "httpcore.socks")  # fmt: skip


class _RedactRecords(logging.Filter):
    def __init__(self, redactor: Callable[[str], str]) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORT.get(scheme, 0)


def check_server(server: str, allow_insecure_http: bool = False) -> None:
    """An http(s) URL with a host; plain http only to loopback unless allowed. Else :class:`InputError`."""
    try:
        parts = urlsplit(server)
        _ = parts.port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            problem("--server", "", "", safe_url(server), "option", "server must be an http(s) URL with a host")
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure_http:
        raise InputError(
            problem(
                "--server",
                "",
                "",
                safe_url(server),
                "insecure-http",
                "plain http:// to a host that is not loopback would send the token and the patients' data "
                "unencrypted; use https:// (or --allow-insecure-http on a network you trust)",
            )
        )


@dataclass(frozen=True)
class Answer:
    """A server's answer, read whole (within the deadline and the size limit)."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes

    def json(self) -> Any:
        """The body as JSON; ValueError if it is not."""
        return json.loads(self.content)

    def words(self, limit: int = 300) -> str:
        """The start of the body as text, control characters escaped (for a message)."""
        text = self.content[: limit * 4].decode("utf-8", errors="replace").strip()
        text = " ".join(text.split())
        short = text if len(text) <= limit else text[:limit] + "..."
        return escape_controls(short) or "(empty body)"


class _TooLarge(Exception):
    pass


class FhirHttp:
    """An httpx client for one FHIR server: the bearer token (own origin only), deadlines, limits, retries."""

    def __init__(
        self,
        server: str,
        token: Secret | None,
        *,
        timeout: float,
        verify: bool,
        retry: RetryPolicy,
        max_answer_bytes: int,
        allow_insecure_http: bool = False,
        pool: int = 4,
        stop: threading.Event | None = None,
        on_retry: Callable[[str], None] | None = None,
        seed: int | None = None,
    ) -> None:
        check_server(server, allow_insecure_http)
        self.server = server
        self.base = server.rstrip("/") + "/"
        self.origin = origin_of(self.base)
        # POST transactions to the base itself: "http://h/fhir", or "http://h/" for a server at the root
        self.transaction_url = self.base if urlsplit(self.base).path in ("", "/") else self.base[:-1]
        self.token = token
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.retry = retry
        self.stop = stop or threading.Event()
        self.on_retry = on_retry
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        limits = httpx.Limits(max_connections=max(pool, 1) + 1, max_keepalive_connections=max(pool, 1))
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers={"Accept": FHIR_JSON, "Accept-Encoding": "identity", "User-Agent": "inoconv-upload"},
            follow_redirects=False,
            transport=DeadlineTransport(server, verify=verify, limits=limits),
        )
        self._log_filter = _RedactRecords(self.redact)
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(self._log_filter)

    def __repr__(self) -> str:
        return f"FhirHttp(server={safe_url(self.server)!r}, token={'***' if self.token else None})"

    def close(self) -> None:
        self.client.close()
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).removeFilter(self._log_filter)

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
            raise Interrupted()

    def _headers(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.token and origin_of(url) == self.origin:  # never to another origin
            headers["Authorization"] = f"Bearer {self.token.reveal()}"
        return headers

    def _fail(self, what: str, status: int | None, message: str, fatal: bool = False) -> UploadFailure:
        return UploadFailure(BundleRejection(what, status, escape_controls(self.redact(message))), fatal=fatal)

    def _once(self, method: str, url: str, content: bytes | None, headers: Mapping[str, str] | None) -> Answer:
        """One request and its whole answer, within the deadline; raises httpx errors or :class:`_TooLarge`."""
        with deadline(self.timeout):
            request = self.client.build_request(method, url, content=content, headers=self._headers(url, headers))
            resp = self.client.send(request, stream=True)
            try:
                declared = resp.headers.get("content-length", "")
                if declared.strip().isdigit() and int(declared) > self.max_answer_bytes:
                    raise _TooLarge(f"the answer declares {int(declared):,} bytes")
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_answer_bytes:
                        raise _TooLarge(f"more than {self.max_answer_bytes:,} bytes and still coming")
                    chunks.append(chunk)
            finally:
                resp.close()
        return Answer(resp.status_code, resp.reason_phrase, resp.headers, b"".join(chunks))

    def _redirect(self, method: str, url: str, answer: Answer, what: str) -> str:
        """Where a 3xx answer may be followed, or :class:`UploadFailure` if it may not."""
        location = answer.headers.get("location")
        status = answer.status_code
        if not location:
            raise self._fail(what, status, f"HTTP {status} redirect without a Location")
        target: str = urljoin(url, str(location))
        shown = safe_url(target)
        if origin_of(target) != self.origin:
            raise self._fail(
                what,
                status,
                f"the server redirected to another origin ({shown}); not followed: the token and the data go "
                "only to the --server origin",
            )
        if method not in ("GET", "HEAD") and status not in (307, 308):
            raise self._fail(
                what,
                status,
                f"the server redirected a {method} (HTTP {status}) to {shown}; not re-sent as another method: "
                "give the final URL as --server",
            )
        return target

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Answer:
        """Send with retries; the first answer that is not retryable, or :class:`UploadFailure`."""
        what = what or safe_url(url)
        last = ""
        last_status: int | None = None
        hops = 0
        attempt = 0
        while attempt < self.retry.max_attempts:
            attempt += 1
            if self.stop.is_set():
                raise Interrupted()
            wait_for: float | None = None
            try:
                answer = self._once(method, url, content, headers)
            except _TooLarge as exc:
                raise self._fail(
                    what,
                    None,
                    f"answer refused: {exc}, over the {self.max_answer_bytes:,}-byte limit (--max-answer-mib)",
                ) from None
            except httpx.TimeoutException as exc:
                last = f"{type(exc).__name__}: no complete answer within the {self.timeout:g}s deadline"
                last_status = None
            except httpx.TransportError as exc:  # connect/read/write errors, dropped connections
                last = f"{type(exc).__name__}: {self.redact(str(exc)) or 'connection error'}"
                last_status = None
            else:
                if answer.status_code in REDIRECT_STATUS:
                    hops += 1
                    if hops > MAX_REDIRECTS:
                        raise self._fail(what, answer.status_code, f"more than {MAX_REDIRECTS} redirects")
                    url = self._redirect(method, url, answer, what)
                    attempt -= 1  # a redirect is not a failed attempt
                    continue
                if answer.status_code not in RETRY_STATUS:
                    return answer
                last = f"HTTP {answer.status_code}"
                last_status = answer.status_code
                ra = parse_retry_after(answer.headers.get("retry-after"))
                if ra is not None:
                    wait_for = min(ra, self.retry.max_retry_after)
            if attempt >= self.retry.max_attempts:
                break
            if wait_for is None:
                with self._rng_lock:
                    wait_for = self.retry.backoff(attempt, self._rng)
            msg = escape_controls(
                self.redact(f"{what}: {last}; retry {attempt}/{self.retry.max_attempts - 1} in {wait_for:.2f}s")
            )
            log.info("%s", msg)
            if self.on_retry is not None:
                self.on_retry(msg)
            self._wait(wait_for)
        raise self._fail(what, last_status, f"gave up after {self.retry.max_attempts} attempts (last: {last})")

    def get_json(self, url: str, what: str = "") -> dict[str, Any]:
        what = what or safe_url(url)
        answer = self.request("GET", url, what=what)
        if answer.status_code >= 300:
            raise self._fail(
                what,
                answer.status_code,
                f"GET failed: {outcome_text(answer)}",
                fatal=answer.status_code in FATAL_STATUS,
            )
        try:
            data = answer.json()
        except ValueError:
            raise self._fail(what, answer.status_code, f"answer is not JSON: {answer.words()}") from None
        if not isinstance(data, dict):
            raise self._fail(what, answer.status_code, "answer is not a JSON object")
        return data


def outcome_text(answer: Answer) -> str:
    """The server's words in an error answer: an OperationOutcome's diagnostics, else the start of the body."""
    try:
        data = answer.json()
    except ValueError:
        return answer.words()
    if isinstance(data, dict) and data.get("resourceType") == "OperationOutcome":
        texts = [
            str(i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code"))
            for i in data.get("issue", [])
            if isinstance(i, dict)
        ]
        return escape_controls("; ".join(texts)) or answer.reason_phrase
    return answer.words()
