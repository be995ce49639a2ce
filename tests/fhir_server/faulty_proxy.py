"""A fault-injecting HTTP proxy for the upload tests, loopback only.

It listens on 127.0.0.1 and forwards each request to a real FHIR server (also on loopback). With a seeded
RNG it replaces some requests by a fault:

* ``503``      - answers 503 with ``Retry-After: 0`` or ``1`` (request not forwarded);
* ``429``      - answers 429 with ``Retry-After`` as seconds (0/1) or as an HTTP date (request not forwarded);
* ``drop_req`` - reads half the request body, then closes the connection (request not forwarded);
* ``drop_resp``- forwards the request (the server does the work), sends the status line, the headers and
  half the body, then closes: the client never learns the outcome and must retry idempotently;
* ``delay``    - forwards, then waits ``delay`` seconds (set it beyond the client's timeout) before
  answering: the server did the work, the client timed out.

Bounded: at most ``max_faults`` faults (afterwards every request passes), and the proxy shuts itself down
``lifetime`` seconds after it starts. Only loopback upstreams are accepted.

Run by hand: ``python tests/fhir_server/faulty_proxy.py --upstream http://127.0.0.1:PORT --seed 7`` prints
``LISTENING 127.0.0.1:PORT`` first. In tests, use :class:`FaultyProxy` as a context manager.
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import http.client
import ipaddress
import random
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import urlsplit

FAULTS = ("503", "429", "drop_req", "drop_resp", "delay")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FaultyProxy:
    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        fault_rate: float = 0.5,
        faults: Sequence[str] = FAULTS,
        max_faults: int = 20,
        delay: float = 2.0,
        lifetime: float = 120.0,
        methods: Sequence[str] = ("POST",),
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not _loopback(parts.hostname):
            raise ValueError(f"upstream must be http on loopback, got {upstream!r}")
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.max_faults = max_faults
        self.delay = delay
        self.lifetime = lifetime
        self.methods = {m.upper() for m in methods}
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FaultyProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, name="faulty-proxy", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def injected(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "pass")

    # -- decisions --------------------------------------------------------------------------------------------

    def _decide(self, method: str) -> str:
        with self._lock:
            if method not in self.methods or self.injected >= self.max_faults:
                fault = "pass"
            elif self.rng.random() < self.fault_rate:
                fault = self.rng.choice(self.faults)
            else:
                fault = "pass"
            self.counts[fault] += 1
            return fault

    def _retry_after(self) -> str:
        with self._lock:
            pick = self.rng.randrange(3)
        if pick == 2:  # an HTTP date one second ahead
            return email.utils.formatdate(time.time() + 1, usegmt=True)
        return str(pick)

    # -- handler ----------------------------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _body(self, limit: int | None = None) -> bytes:
                length = int(self.headers.get("content-length") or 0)
                want = length if limit is None else min(limit, length)
                return self.rfile.read(want) if want else b""

            def _simple(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
                try:
                    headers = {
                        k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"content-length"}
                    }
                    headers["content-length"] = str(len(body))
                    conn.request(self.command, self.path, body=body if body else None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    return resp.status, resp.reason, resp.getheaders(), data
                finally:
                    conn.close()

            def _relay(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status, reason)
                for k, v in headers:
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def _handle(self) -> None:
                fault = proxy._decide(self.command)
                oo = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}'
                if fault in ("503", "429"):
                    self._body()
                    status = 503 if fault == "503" else 429
                    self._simple(
                        status,
                        {"retry-after": proxy._retry_after(), "content-type": "application/fhir+json"},
                        oo,
                    )
                    return
                if fault == "drop_req":
                    length = int(self.headers.get("content-length") or 0)
                    self._body(limit=length // 2)
                    self._drop()
                    return
                body = self._body()
                status, reason, headers, data = self._forward(body)
                if fault == "drop_resp":
                    self.send_response(status, reason)
                    self.send_header("content-type", "application/fhir+json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self._drop()
                    return
                if fault == "delay":
                    time.sleep(proxy.delay)
                try:
                    self._relay(status, reason, headers, data)
                except OSError:  # the client gave up (delay) - fine
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--max-faults", type=int, default=20)
    ap.add_argument("--delay", type=float, default=2.0)
    ap.add_argument("--lifetime", type=float, default=120.0)
    args = ap.parse_args(argv)
    proxy = FaultyProxy(
        args.upstream,
        seed=args.seed,
        fault_rate=args.rate,
        faults=[f for f in args.faults.split(",") if f],
        max_faults=args.max_faults,
        delay=args.delay,
        lifetime=args.lifetime,
        port=args.port,
    )
    print(f"LISTENING 127.0.0.1:{proxy.port}", flush=True)
    proxy.start()
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(args.lifetime)
    proxy.stop()
    print(dict(proxy.counts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
