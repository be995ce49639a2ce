"""Pytest fixtures for a real FHIR R4 server (tests/fhir_server, Node + Medplum, in memory) on loopback.

Wire into ``tests/conftest.py`` with::

    from conftest_fhir import faulty_fhir_server, fhir_server, fresh_fhir_server  # noqa: F401

Fixtures:

* ``fhir_server`` (session): starts ``node tests/fhir_server/server.mjs 0`` and yields its base URL
  (``http://127.0.0.1:PORT/``); runs ``npm ci`` first when ``node_modules`` is missing. Skipped, with the
  reason, only when ``node`` is not on PATH; any other failure to start is an error.
* ``fresh_fhir_server`` (function): the same server, emptied first (``POST /$reset``); yields the URL.
* ``faulty_fhir_server`` (function): a :class:`FaultyProxy` in front of a fresh server, seeded, bounded in
  faults and lifetime; yields the proxy (``.url`` is the base URL to upload to, ``.counts`` what it did).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
START_TIMEOUT = 60.0


def _load_proxy_module() -> ModuleType:
    name = "inoconv_test_faulty_proxy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SERVER_DIR / "faulty_proxy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


faulty_proxy = _load_proxy_module()
FaultyProxy = faulty_proxy.FaultyProxy


def _ensure_node_modules(npm: str | None) -> None:
    if (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return
    if npm is None:
        pytest.fail("tests/fhir_server/node_modules is missing and npm is not on PATH (run `npm ci` there)")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=SERVER_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"`npm ci` in tests/fhir_server failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


class FhirServerProcess:
    """The node process; ``start()`` returns the base URL."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        node = shutil.which("node")
        if node is None:
            pytest.skip("`node` is not on PATH: the FHIR test server (tests/fhir_server) needs Node.js >= 20.19")
        _ensure_node_modules(shutil.which("npm"))
        env = {**os.environ, "EXIT_ON_STDIN_CLOSE": "1", **self.env}
        self.proc = subprocess.Popen(
            [node, "server.mjs", "0"],
            cwd=SERVER_DIR,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        line = first[0].strip() if first else ""
        if not line.startswith("LISTENING "):
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"FHIR test server did not start (first line {line!r}):\n{err[-4000:]}")
        self.url = f"http://{line.split()[1]}/"
        return self.url

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def reset(url: str, **headers: str) -> None:
    httpx.post(url + "$reset", headers=headers, timeout=10).raise_for_status()


def configure(url: str, **settings: Any) -> dict[str, Any]:
    resp = httpx.post(url + "$config", json=settings, timeout=10)
    resp.raise_for_status()
    out: dict[str, Any] = resp.json()
    return out


def count(url: str, resource_type: str, query: str = "") -> int:
    q = f"?_summary=count{'&' + query if query else ''}"
    resp = httpx.get(f"{url}{resource_type}{q}", timeout=10)
    resp.raise_for_status()
    return int(resp.json()["total"])


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[str]:
    server = FhirServerProcess()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture()
def fresh_fhir_server(fhir_server: str) -> str:
    reset(fhir_server)
    return fhir_server


@pytest.fixture()
def faulty_fhir_server(fresh_fhir_server: str) -> Iterator[Any]:
    proxy = FaultyProxy(
        fresh_fhir_server,
        seed=20240611,
        fault_rate=0.5,
        max_faults=12,
        delay=1.5,
        lifetime=60.0,
    )
    with proxy:
        yield proxy
