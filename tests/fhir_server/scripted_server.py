"""A loopback HTTP server that answers what a test scripts, byte for byte, for the upload's guard tests.

Servers that misbehave in ways a real FHIR server (tests/fhir_server/server.mjs) does not: a 200 web page, a
``batch-response``, a body trickled one byte every few seconds, a 300 MB answer, a redirect to another
origin, an echo of the Authorization header. Written for these tests (no third-party code, same licence as
the project).

A script is a function ``(request) -> Reply``; :class:`Reply` is the raw answer as chunks of bytes, written
with ``pause`` seconds between them. The server records every request (method, path, headers, body) and how
many bytes of each answer it managed to write before the client went away (``written``).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A raw HTTP/1.1 answer: ``chunks`` written one after the other, ``pause`` seconds apart."""

    chunks: Iterable[bytes]
    pause: float = 0.0


def head(status: int, headers: dict[str, str] | None = None, reason: str = "X") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(
    status: int, body: bytes | str | dict[str, Any], ctype: str = "application/fhir+json", **headers: str
) -> Reply:
    """A whole answer with a Content-Length."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
    hdrs = {
        "Content-Type": ctype,
        "Content-Length": str(len(data)),
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    return Reply([head(status, hdrs) + data])


def trickle(data: bytes, pause: float, *, headers_too: bool = False) -> Reply:
    """``data`` (a whole answer or only its body) one byte at a time, ``pause`` seconds apart."""
    if headers_too:
        return Reply((data[i : i + 1] for i in range(len(data))), pause)
    hdr = head(200, {"Content-Type": "application/fhir+json", "Content-Length": str(len(data))})
    return Reply(_chain([hdr], (data[i : i + 1] for i in range(len(data)))), pause)


def endless(total: int, chunk: int = 1 << 16, declared: bool = False) -> Reply:
    """A 200 answer of ``total`` bytes of JSON-ish filler, chunked (or with its Content-Length declared)."""
    if declared:
        hdr = head(200, {"Content-Type": "application/fhir+json", "Content-Length": str(total)})
        return Reply(_chain([hdr], _filler(total, chunk, framed=False)))
    hdr = head(200, {"Content-Type": "application/fhir+json", "Transfer-Encoding": "chunked"})
    return Reply(_chain([hdr], _filler(total, chunk, framed=True), [b"0\r\n\r\n"]))


def _filler(total: int, chunk: int, framed: bool) -> Iterator[bytes]:
    block = b" " * chunk
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if framed else piece


def _chain(*parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield from part


class ScriptedServer:
    """``with ScriptedServer(script) as srv:`` ... ``srv.url`` (``http://127.0.0.1:PORT/``)."""

    def __init__(self, script: Callable[[Request], Reply], tls: tuple[Path, Path] | None = None) -> None:
        self.script = script
        self.requests: list[Request] = []
        self.written: list[int] = []  # bytes of each answer written before it ended or the client left
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                              self.rfile.read(length) if length else b"")  # fmt: skip
                with outer.lock:
                    outer.requests.append(req)
                reply = outer.script(req)
                n = 0
                try:
                    for i, piece in enumerate(reply.chunks):
                        if i and reply.pause and outer.stopping.wait(reply.pause):
                            break
                        self.wfile.write(piece)
                        self.wfile.flush()
                        n += len(piece)
                except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError):
                    self.close_connection = True
                finally:
                    with outer.lock:
                        outer.written.append(n)

            do_GET = do_POST = do_PUT = do_DELETE = do_CONNECT = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # (certificate, key) PEM files: HTTPS
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def transaction_response(n: int, status: str = "201 Created", kind: str = "transaction-response") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [{"response": {"status": status, "location": f"Patient/p{i}/_history/1"}} for i in range(n)],
    }


def entries_of(req: Request) -> int:
    return len(req.json().get("entry") or [])


@dataclass
class Recorder:
    """A script that answers every transaction with a proper transaction-response, and records nothing else."""

    seen: list[Request] = field(default_factory=list)

    def __call__(self, req: Request) -> Reply:
        self.seen.append(req)
        return answer(200, transaction_response(entries_of(req)))
