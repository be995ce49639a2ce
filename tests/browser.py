"""Headless Chromium for the tests: open a page (file:// or a loopback http:// folder), count elements, read the
console, take a screenshot.

Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``; ``.ci/install-browser``
installs them) driven through Selenium. The browser starts with ``--headless --no-sandbox --disable-gpu``, QUIC,
first-run, background networking, component updates and sync off, and a fresh profile folder, so it makes no
connection of its own. The console is read through the ``goog:loggingPrefs`` capability (``get_log("browser")``).

:func:`browser_unavailable` says why no browser can be had (the tests skip with that reason); once the binaries
are there, any failure to start is an error, not a skip.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("chromedriver",)
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
)


def _which(names: tuple[str, ...], env: str) -> str | None:
    override = os.environ.get(env)
    if override:
        return override if Path(override).is_file() else None
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
        if found:
            return found
    return None


def chromium_binaries() -> tuple[str | None, str | None]:
    return _which(CHROMIUM_CANDIDATES, "INOCONV_CHROMIUM"), _which(DRIVER_CANDIDATES, "INOCONV_CHROMEDRIVER")


def browser_unavailable() -> str | None:
    """None when a browser test can run, else the reason it cannot (for pytest.skip)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    chrome, driver = chromium_binaries()
    if chrome is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", chrome), ("chromedriver", driver)) if p is None)
        return f"{missing} not found: Debian packages chromium and chromium-driver (bash .ci/install-browser)"
    return None


@dataclass
class ConsoleEntry:
    level: str
    source: str
    message: str


class Browser:
    """One headless Chromium session (use as a context manager)."""

    def __init__(self, width: int = 1280, height: int = 1600) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        chrome, driver = chromium_binaries()
        if chrome is None or driver is None:
            raise RuntimeError(browser_unavailable() or "no browser")
        self.profile = tempfile.mkdtemp(prefix="inoconv-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = chrome
        for flag in CHROME_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self.profile}")
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver: Any = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
        self.driver.set_window_size(width, height)
        self.driver.set_page_load_timeout(30)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, url: str, settle: float = 0.2) -> None:
        self.driver.get(url)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.driver.execute_script("return document.readyState") == "complete":
                break
            time.sleep(0.05)
        time.sleep(settle)

    def count(self, css: str) -> int:
        return len(self.driver.find_elements("css selector", css))

    def texts(self, css: str) -> list[str]:
        return [e.text for e in self.driver.find_elements("css selector", css)]

    def attrs(self, css: str, name: str) -> list[str]:
        return [e.get_attribute(name) or "" for e in self.driver.find_elements("css selector", css)]

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    @property
    def title(self) -> str:
        return str(self.driver.title)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    def body_text(self) -> str:
        return str(self.js("return document.body ? document.body.innerText : ''"))

    def console(self) -> list[ConsoleEntry]:
        """Console entries since the last call (the driver hands each entry out once)."""
        return [
            ConsoleEntry(str(e.get("level")), str(e.get("source", "")), str(e.get("message", "")))
            for e in self.driver.get_log("browser")
        ]

    def console_errors(self) -> list[ConsoleEntry]:
        return [e for e in self.console() if e.level == "SEVERE"]

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (with ``full_page``, the whole document, through DevTools' captureBeyondViewport)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
            )
            path.write_bytes(base64.b64decode(shot["data"]))
        else:
            self.driver.save_screenshot(str(path))
        return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/favicon.ico":  # no icon: answer without a 404 in the console
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration; yields the base URL (no trailing slash)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
