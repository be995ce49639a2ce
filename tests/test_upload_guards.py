"""Upload guards (issues 13 and 18): only a real transaction-response is an acceptance; one deadline and a size
limit per request; plain http only to loopback; the token only to its own origin and never shown, not even in
part; only the requests inoconv writes (DELETE with --allow-delete); the options defined once.

Misbehaving servers are scripted on loopback (tests/fhir_server/scripted_server.py); the DELETE round trip
uses the real FHIR test server (tests/fhir_server, Medplum).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import conftest_fhir
import pytest
import typer
from conftest_fhir import FhirServerProcess, count
from test_upload import FAST, journal_lines, subject_bundle, write_fhir_dir
from typer.testing import CliRunner

from converter.errors import InputError
from converter.upload import (
    DEFAULTS,
    FhirServerError,
    RetryPolicy,
    Secret,
    UploadSummary,
    count_resources,
    fetch_all,
    redact,
    upload,
)
from converter.upload.connection import check_server

fhir_server = conftest_fhir.fhir_server
fresh_fhir_server = conftest_fhir.fresh_fhir_server

MIB = 1024 * 1024
QUICK = RetryPolicy(max_attempts=2, base=0.01, cap=0.05, max_retry_after=0.1)
HANG_GUARD = 180.0  # seconds: only so that a regression fails instead of hanging the suite


def _load(name: str) -> ModuleType:
    path = Path(__file__).resolve().parent / "fhir_server" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"inoconv_test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


srv = _load("scripted_server")
ScriptedServer = srv.ScriptedServer


def bounded(fn: Callable[[], UploadSummary]) -> UploadSummary:
    """``fn()`` in a thread; fails (instead of hanging the suite) if it does not return."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(_capture(fn)), daemon=True)
    t.start()
    t.join(HANG_GUARD)
    assert not t.is_alive(), "the upload hung"
    if isinstance(out[0], BaseException):
        raise out[0]
    result: UploadSummary = out[0]
    return result


def _capture(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BaseException as exc:  # handed to the test thread
        return exc


def no_raw_controls(text: str) -> bool:
    return not any((ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) <= 0x9F for c in text)


# ---------------------------------------------------------------------------------------------------------
# only a transaction-response with a 2xx per entry is an acceptance


def _outcome(diag: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": diag}],
    }


def _entries(req: Any) -> int:
    n: int = srv.entries_of(req)
    return n


CASES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "html page": (lambda r: srv.answer(200, "<html>log in\x1b[31m here</html>", "text/html"), "log in\\x1b[31m here"),
    "empty body": (lambda r: srv.answer(200, b""), "(empty body)"),
    "batch-response": (
        lambda r: srv.answer(200, srv.transaction_response(_entries(r), kind="batch-response")),
        "batch-response",
    ),
    "a searchset": (
        lambda r: srv.answer(200, {"resourceType": "Bundle", "type": "searchset"}),
        "Bundle of type searchset",
    ),
    "too few entries": (lambda r: srv.answer(200, srv.transaction_response(_entries(r) - 1)), "for 6 request entries"),
    "too many entries": (lambda r: srv.answer(200, srv.transaction_response(_entries(r) + 1)), "7 entries for 6"),
    "a 4xx entry": (
        lambda r: srv.answer(200, srv.transaction_response(_entries(r), status="412 Precondition Failed")),
        "entry status 412",
    ),
    "an entry without status": (
        lambda r: srv.answer(
            200, {"resourceType": "Bundle", "type": "transaction-response", "entry": [{}] * _entries(r)}
        ),
        "entry status none",
    ),
    "OperationOutcome 200": (lambda r: srv.answer(200, _outcome("stored nothing\x07")), "stored nothing\\x07"),
    "400 with a web page": (lambda r: srv.answer(400, "<h1>Bad\x00gateway</h1>", "text/html"), "Bad\\x00gateway"),
    "500 every time": (lambda r: srv.answer(500, _outcome("down")), "gave up after 2 attempts (last: HTTP 500)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_only_a_transaction_response_is_an_acceptance(case: str, tmp_path: Path) -> None:
    script, words = CASES[case]
    fhir_dir = tmp_path / "fhir"
    (fhir_dir / "bundles").mkdir(parents=True)
    (fhir_dir / "bundles" / "subject-0001.json").write_text(json.dumps(subject_bundle(1)))  # 6 entries
    with ScriptedServer(script) as server:
        summary = bounded(lambda: upload(fhir_dir, server.url, retry=QUICK))
    assert summary.exit_code == 1 and summary.sent == 0 and len(summary.rejected) == 1
    text = summary.rejected[0].render()
    assert words in text, text
    assert no_raw_controls(text), text
    assert journal_lines(fhir_dir) == []  # nothing journaled: a rerun sends it again


def test_rejections_print_no_control_character_of_the_files_either(tmp_path: Path) -> None:
    fhir_dir = tmp_path / "fhir"
    (fhir_dir / "bundles").mkdir(parents=True)
    b = subject_bundle(1)
    b["entry"][0]["fullUrl"] = "urn:uuid:\x1b]0;title\x07"
    (fhir_dir / "bundles" / "subject\x1b[2J-0001.json").write_text(json.dumps(b))
    outcome = _outcome("Patient.gender: bad\x1b[0m code")
    outcome["issue"][0]["expression"] = ["Bundle.entry[0].resource.gender"]
    with ScriptedServer(lambda r: srv.answer(400, outcome)) as server:
        summary = upload(fhir_dir, server.url, retry=QUICK)
    text = summary.rejected[0].render()
    assert "subject\\x1b[2J-0001.json" in text and "urn:uuid:\\x1b]0;title\\x07" in text, text
    assert "bad\\x1b[0m code" in text and "Patient.gender" in text
    assert no_raw_controls(text)


def test_a_proper_transaction_response_is_journaled(tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 2)
    with ScriptedServer(srv.Recorder()) as server:
        summary = upload(fhir_dir, server.url, retry=QUICK)
    assert summary.ok and summary.sent == 3
    assert summary.created == {
        "AdverseEvent": 2,
        "Observation": 6,
        "Patient": 2,
        "ResearchStudy": 1,
        "ResearchSubject": 2,
    }
    assert sorted(r["bundle"] for r in journal_lines(fhir_dir)) == [
        "study.json",
        "subject-0001.json",
        "subject-0002.json",
    ]


# ---------------------------------------------------------------------------------------------------------
# one deadline per request


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "status line and headers"])
def test_a_server_trickling_bytes_is_cut_at_the_deadline(headers_too: bool, tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 0)  # study.json alone: one entry
    body = json.dumps(srv.transaction_response(1)).encode()
    whole = srv.head(200, {"Content-Type": "application/fhir+json", "Content-Length": str(len(body))}) + body
    data = whole if headers_too else body
    # one byte every 0.3 s: each read succeeds well within the 1.5 s timeout, the whole answer needs ~40 s
    with ScriptedServer(lambda r: srv.trickle(data, 0.3, headers_too=headers_too)) as server:
        summary = bounded(lambda: upload(fhir_dir, server.url, timeout=1.5, retry=QUICK))
        written = list(server.written)
        tried = len(server.requests)
    assert summary.exit_code == 1 and summary.sent == 0
    message = summary.rejected[0].message
    assert "ReadTimeout: no complete answer within the 1.5s deadline" in message, message
    assert tried == 2  # retried once (QUICK), then given up
    assert written and all(n < len(data) for n in written)  # the client left before the answer was complete
    assert journal_lines(fhir_dir) == []


def test_tls_goes_through_the_same_deadline(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("`openssl` is not on PATH: no self-signed certificate for the loopback HTTPS server")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)  # fmt: skip
    fhir_dir = write_fhir_dir(tmp_path / "up", 0)
    with ScriptedServer(srv.Recorder(), tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        refused = upload(fhir_dir, server.url, retry=QUICK)  # self-signed: refused unless --insecure
        assert "CERTIFICATE_VERIFY_FAILED" in refused.rejected[0].message
        accepted = upload(fhir_dir, server.url, retry=QUICK, verify=False)
        assert accepted.ok and accepted.sent == 1
    body = json.dumps(srv.transaction_response(1)).encode()
    with ScriptedServer(lambda r: srv.trickle(body, 0.3), tls=(cert, key)) as server:
        summary = bounded(lambda: upload(fhir_dir, server.url, retry=QUICK, verify=False, timeout=1.5, force=True))
        written = list(server.written)
    assert "no complete answer within the 1.5s deadline" in summary.rejected[0].message
    assert written and all(n < len(body) for n in written)


# ---------------------------------------------------------------------------------------------------------
# a size limit on every answer, memory bounded


def test_a_300_mb_answer_is_refused_at_the_limit_with_bounded_memory(tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 0)
    total = 300 * 1000 * 1000
    with ScriptedServer(lambda r: srv.endless(total)) as server:
        tracemalloc.start()
        try:
            summary = bounded(lambda: upload(fhir_dir, server.url, retry=QUICK, max_answer_bytes=4 * MIB))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        tried = len(server.requests)
    assert summary.exit_code == 1 and summary.sent == 0
    message = summary.rejected[0].message
    assert "answer refused: more than 4,194,304 bytes and still coming" in message, message
    assert "--max-answer-mib" in message
    assert tried == 1  # not retried: the same server would send the same answer
    assert peak < 24 * MIB, peak  # the answer is read up to the limit, not whole


def test_the_default_limit_refuses_a_300_mb_answer(tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 0)
    total = 300 * 1000 * 1000
    assert DEFAULTS.max_answer_bytes == 64 * MIB
    with ScriptedServer(lambda r: srv.endless(total)) as server:
        summary = bounded(lambda: upload(fhir_dir, server.url, retry=QUICK))
        deadline = time.monotonic() + 30  # the server's handler notices the closed connection on its next write
        while not server.written and time.monotonic() < deadline:
            time.sleep(0.05)
        written = list(server.written)
    assert "more than 67,108,864 bytes" in summary.rejected[0].message
    assert written and written[0] < 100 * MIB  # the client stopped reading near the limit, far before 300 MB

    with ScriptedServer(lambda r: srv.endless(total, declared=True)) as server:
        summary = bounded(lambda: upload(fhir_dir, server.url, retry=QUICK))
    assert "the answer declares 300,000,000 bytes" in summary.rejected[0].message
    assert journal_lines(fhir_dir) == []


# ---------------------------------------------------------------------------------------------------------
# plain http, origins, redirects


def test_plain_http_only_to_loopback_unless_allowed(tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 1)
    with pytest.raises(InputError) as err:
        upload(fhir_dir, "http://fhir.example.org/fhir", token="abcdefghijklmnop")
    assert err.value.problems[0].rule == "insecure-http" and "--allow-insecure-http" in str(err.value)
    for ok in ("http://localhost:8/", "http://127.0.0.9:1/fhir", "http://[::1]:8/", "https://fhir.example.org/r4"):
        check_server(ok)
    check_server("http://fhir.example.org/fhir", allow_insecure_http=True)
    assert not (fhir_dir / ".upload-journal.jsonl").exists()

    from converter.cli import app

    res = CliRunner().invoke(app, ["upload", str(fhir_dir), "--server", "http://10.1.2.3/fhir", "--identified"])
    assert res.exit_code == 2 and "--allow-insecure-http" in res.output and "Traceback" not in res.output


def test_redirects_and_next_links_never_take_the_token_elsewhere(tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 0)
    token = "Zq7Xv2Lm9Rt4Kp8Wn3Hs"
    with ScriptedServer(srv.Recorder()) as other:
        # a POST redirected to another origin: not followed
        with ScriptedServer(lambda r: srv.answer(307, b"", Location=other.url + "fhir")) as server:
            summary = upload(fhir_dir, server.url, token=token, retry=QUICK)
            assert server.requests[0].headers["authorization"] == f"Bearer {token}"
        assert "redirected to another origin" in summary.rejected[0].message
        # a search whose next page is at another origin: refused, nothing sent there
        page = {"resourceType": "Bundle", "type": "searchset", "entry": [],
                "link": [{"relation": "next", "url": other.url + "Patient?page=2"}]}  # fmt: skip
        with ScriptedServer(lambda r: srv.answer(200, page)) as server, pytest.raises(FhirServerError) as err:
            fetch_all(server.url, "Patient", token=token)
        assert "another origin" in str(err.value)
        assert other.requests == []

    def same_origin(req: Any) -> Any:
        if req.path == "/":
            return srv.answer(307 if req.method == "POST" else 302, b"", Location="/moved/")
        return srv.answer(200, srv.transaction_response(_entries(req)))

    with ScriptedServer(same_origin) as server:
        summary = upload(fhir_dir, server.url, token=token, retry=QUICK)
        assert summary.ok and summary.sent == 1
        assert [r.path for r in server.requests] == ["/", "/moved/"]
        assert all(r.headers.get("authorization") == f"Bearer {token}" for r in server.requests)

    with ScriptedServer(lambda r: srv.answer(302, b"", Location="/elsewhere")) as server:
        summary = upload(fhir_dir, server.url, token=token, retry=QUICK, force=True)
        assert len(server.requests) == 1  # a POST is not turned into a GET
    assert "not re-sent as another method" in summary.rejected[0].message


def test_environment_proxies_are_used_but_never_for_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fhir_dir = write_fhir_dir(tmp_path, 0)
    token = "Zq7Xv2Lm9Rt4Kp8Wn3Hs"
    with ScriptedServer(lambda r: srv.answer(403, b"")) as proxy, ScriptedServer(srv.Recorder()) as server:
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        assert upload(fhir_dir, server.url, token=token, retry=QUICK).ok  # loopback: straight to the server
        assert proxy.requests == []
        summary = upload(fhir_dir, "https://fhir.invalid/r4", token=token, retry=QUICK, force=True)
    assert summary.rejected and summary.sent == 0
    assert [(r.method, r.path) for r in proxy.requests] == [("CONNECT", "fhir.invalid:443")] * 2  # tunnelled
    assert all("authorization" not in r.headers for r in proxy.requests)  # the token is not the proxy's


# ---------------------------------------------------------------------------------------------------------
# the token: one line, never shown, not even in part


TOKEN = "Zq7Xv2Lm9Rt4Kp8Wn3HsQd6Yf1Bc5Jg0"


def fragments(secret: str, n: int = 6) -> set[str]:
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


def shows_any(text: str, secret: str = TOKEN) -> list[str]:
    return sorted(f for f in fragments(secret) if f in text)


@pytest.mark.parametrize(
    "content",
    [
        f"{TOKEN}\nsecond-line-{TOKEN}\n",
        f"{TOKEN}\r\n\r\n",
        f"\n{TOKEN}\n",
        f"{TOKEN[:10]} {TOKEN[10:]}\n",
        f"{TOKEN}\x00\n",
    ],
    ids=["two lines", "a blank second line", "a blank first line", "a space", "a NUL"],
)
def test_a_token_file_is_one_line_and_never_echoed(content: str, tmp_path: Path) -> None:
    fhir_dir = write_fhir_dir(tmp_path / "a", 1)
    path = tmp_path / "token"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        upload(fhir_dir, "http://127.0.0.1:9/", token_file=path, retry=QUICK)
    shown = err.value.render()
    assert str(path) in shown and ("one line" in shown or "cannot be in a bearer token" in shown)
    assert shows_any(shown) == [] and shows_any(shown, "second-line") == []
    for ok in (f"{TOKEN}\n", f"{TOKEN}\r\n", f"  Bearer {TOKEN}  "):
        path.write_text(ok)
        assert upload(fhir_dir, "http://127.0.0.1:9/", token_file=path, dry_run=True).total_bundles == 2


def test_server_token_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    fhir_dir = _with_entry(tmp_path / "a", {"method": "DELETE", "url": "Patient/p1"})
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n{TOKEN}\n")
    with pytest.raises(InputError) as err:
        upload(fhir_dir, "http://fhir.example.org/", token_file=path)
    rules = [p.rule for p in err.value.problems]
    assert rules == ["insecure-http", "token-file", "request"], err.value.render()
    assert shows_any(err.value.render()) == []


def test_no_part_of_the_token_in_any_output_log_or_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Servers that echo the Authorization header, whole and in pieces, in every kind of answer."""
    caplog.set_level(logging.DEBUG)
    from converter.cli import app

    def echoing(req: Any) -> Any:
        auth = req.headers.get("authorization", "")
        said = f"you sent {auth}; token part {auth[7:20]}... and {auth[-9:]}"
        n = _entries(req)
        if n == 1:  # study.json: a proper answer, with the token in a header (httpcore logs headers at DEBUG)
            return srv.answer(200, srv.transaction_response(1), X_Echo=said)
        if "1010-0001" in req.body.decode():
            return srv.answer(400, _outcome(said))
        if "1010-0002" in req.body.decode():
            return srv.answer(200, {"resourceType": "Bundle", "type": "transaction-response",
                                    "entry": [{"response": {"status": "409 Conflict", "outcome": _outcome(said)}}] * n})  # fmt: skip
        if "1010-0003" in req.body.decode():
            return srv.answer(200, f"<html>{said}</html>", "text/html")
        return srv.answer(401, f"invalid token {said}", "text/plain")

    fhir_dir = write_fhir_dir(tmp_path / "run", 4)
    token_file = tmp_path / "secret" / "token"
    token_file.parent.mkdir()
    token_file.write_text(TOKEN + "\n")
    runner = CliRunner()
    outputs = []
    with ScriptedServer(echoing) as server:
        args = ["upload", str(fhir_dir), "--server", server.url, "--concurrency", "1", "--max-attempts", "2", "--identified"]
        res = runner.invoke(app, [*args, "--token-file", str(token_file)])
        outputs.append(res.output)
        assert res.exit_code == 1, res.output
        res = runner.invoke(app, [*args, "--token", TOKEN, "--force"])
        outputs.append(res.output)
        assert res.exit_code == 1 and res.output.count("warning: --token puts the token on the command line") == 1
        summary = upload(fhir_dir, server.url, token=TOKEN, retry=QUICK, force=True, concurrency=1)
        sent = [r.headers.get("authorization") for r in server.requests]
    assert sent and all(s == f"Bearer {TOKEN}" for s in sent)  # the server did get the token (and echoed it)
    rendered = "\n".join(r.render() for r in summary.rejected)
    assert "401" in rendered and "409" in rendered and "you sent" in rendered  # the server's words are shown
    captured = capfd.readouterr()
    texts = {"cli": "\n".join(outputs), "log": caplog.text, "out": captured.out + captured.err,
             "summary": repr(summary) + rendered}  # fmt: skip
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != token_file:
            texts[str(path)] = path.read_text(errors="replace")
    assert any(str(p).endswith(".upload-journal.jsonl") for p in texts)
    leaks = {where: shows_any(text) for where, text in texts.items() if shows_any(text)}
    assert leaks == {}


SECURED_TOKEN = "tok-9f8e7d6c5b4a-SECRET"


@pytest.fixture(scope="module")
def secured_server() -> Any:
    """The real FHIR test server, requiring SECURED_TOKEN on every request (401 otherwise)."""
    server = FhirServerProcess(env={"FHIR_TOKEN": SECURED_TOKEN})
    try:
        yield server.start()
    finally:
        server.stop()


def test_token_is_sent_but_never_shown(
    secured_server: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = secured_server
    fhir_dir = write_fhir_dir(tmp_path, 2)

    denied = upload(fhir_dir, url, token="wrong-" + SECURED_TOKEN, retry=FAST)
    assert denied.exit_code == 1 and denied.rejected[0].status == 401 and denied.sent == 0
    assert denied.not_sent == 2  # 401 stops the upload

    (tmp_path / "token").write_text(SECURED_TOKEN + "\n")
    ok = upload(fhir_dir, url, token_file=tmp_path / "token", retry=FAST)
    assert ok.ok and ok.sent == 3
    assert fetch_all(url, "Patient", token=SECURED_TOKEN)
    assert count_resources(url, "Patient", token=SECURED_TOKEN) == 2

    monkeypatch.setenv("INOCONV_FHIR_TOKEN", SECURED_TOKEN)
    again = upload(fhir_dir, url, retry=FAST, force=True)
    assert again.ok and again.sent == 3
    dead = upload(fhir_dir, "http://127.0.0.1:9/", retry=RetryPolicy(max_attempts=2, base=0.01), force=True)
    assert dead.rejected and "ConnectError" in dead.rejected[0].message
    from converter.cli import app

    res = CliRunner().invoke(app, ["upload", str(fhir_dir), "--server", url, "--force", "--identified", "--token", "x" + SECURED_TOKEN])
    assert res.exit_code == 1 and "401" in res.output
    monkeypatch.delenv("INOCONV_FHIR_TOKEN")

    captured = capsys.readouterr()
    shown = [caplog.text, captured.out, captured.err, res.output]
    shown += [repr(x) for x in (denied, ok, again, dead)]
    shown += [r.render() for r in denied.rejected + dead.rejected]
    shown.append((fhir_dir / ".upload-journal.jsonl").read_text())
    assert [shows_any(text, SECURED_TOKEN) for text in shown] == [[]] * len(shown)
    assert repr(Secret(SECURED_TOKEN)) == "Secret('***')" and SECURED_TOKEN not in f"{Secret(SECURED_TOKEN)}"
    assert redact(f"Authorization: Bearer {SECURED_TOKEN}") == "Authorization: Bearer ***"
    assert redact(f"https://user:{SECURED_TOKEN}@host/fhir") == "https://***@host/fhir"
    assert redact(f"it was {SECURED_TOKEN[2:11]}, then {SECURED_TOKEN[-7:]}", SECURED_TOKEN) == "it was ***, then ***"


# ---------------------------------------------------------------------------------------------------------
# only the requests inoconv writes; DELETE with --allow-delete, counted


def _with_entry(tmp_path: Path, request: dict[str, str]) -> Path:
    fhir_dir = write_fhir_dir(tmp_path, 1)
    b = subject_bundle(1)
    b["entry"].append({"request": request})
    (fhir_dir / "bundles" / "subject-0001.json").write_text(json.dumps(b))
    return fhir_dir


@pytest.mark.parametrize(
    ("request_", "allowed_with_flag"),
    [
        ({"method": "DELETE", "url": "Patient/p1"}, True),
        ({"method": "DELETE", "url": "Observation?identifier=https://example.org/x|1"}, True),
        ({"method": "PATCH", "url": "Patient/p1"}, False),
        ({"method": "GET", "url": "Patient?name=x"}, False),
        ({"method": "HEAD", "url": "Patient/p1"}, False),
        ({"method": "DELETE", "url": "https://other.example.org/fhir/Patient/p1"}, False),
        ({"method": "DELETE", "url": "/Patient/p1"}, False),
        ({"method": "DELETE", "url": "Patient"}, False),
        ({"method": "DELETE", "url": "Patient/p1/_history/2"}, False),
    ],
)
def test_requests_other_than_creates_and_updates_are_refused(
    request_: dict[str, str], allowed_with_flag: bool, tmp_path: Path
) -> None:
    fhir_dir = _with_entry(tmp_path, request_)
    with pytest.raises(InputError) as err:
        upload(fhir_dir, "http://127.0.0.1:9/", dry_run=True)
    p = err.value.problems[0]
    assert (p.file, p.record, p.field, p.rule) == ("subject-0001.json", "entry[6]", "request", "request")
    if allowed_with_flag:
        assert "--allow-delete" in p.message
        summary = upload(fhir_dir, "http://127.0.0.1:9/", dry_run=True, allow_delete=True)
        assert summary.planned_deletes == {request_["url"].split("/")[0].split("?")[0]: 1}
    else:
        with pytest.raises(InputError):
            upload(fhir_dir, "http://127.0.0.1:9/", dry_run=True, allow_delete=True)
    for method, url in (("POST", "https://example.org/fhir/Patient"), ("PUT", "Patient/$everything")):
        b = subject_bundle(2)
        b["entry"][0]["request"] = {"method": method, "url": url}
        (fhir_dir / "bundles" / "subject-0001.json").write_text(json.dumps(b))
        with pytest.raises(InputError, match=r"request\.url"):
            upload(fhir_dir, "http://127.0.0.1:9/", dry_run=True, allow_delete=True)


def test_allowed_deletes_are_sent_and_counted(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    fhir_dir = write_fhir_dir(tmp_path / "up", 2)
    assert upload(fhir_dir, url, retry=QUICK).ok
    assert count(url, "AdverseEvent") == 2
    gone = tmp_path / "gone"
    (gone / "bundles").mkdir(parents=True)
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"request": {"method": "DELETE", "url": "AdverseEvent/nct01371630-1010-0001-ae-1"}}]}  # fmt: skip
    (gone / "bundles" / "delete-ae.json").write_text(json.dumps(bundle))

    from converter.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["upload", str(gone), "--server", url, "-q", "--identified"])
    assert res.exit_code == 2 and "--allow-delete" in res.output
    assert count(url, "AdverseEvent") == 2  # nothing sent
    res = runner.invoke(app, ["upload", str(gone), "--server", url, "-q", "--allow-delete", "--identified"])
    assert res.exit_code == 0, res.output
    assert "1 resource(s) deleted" in res.output and "DELETE entr" in res.output
    assert count(url, "AdverseEvent") == 1
    lines = journal_lines(gone)
    assert lines[0]["counts"]["deleted"] == {"AdverseEvent": 1}


# ---------------------------------------------------------------------------------------------------------
# one definition of the options


def _params(app: typer.Typer, name: str | None) -> list[tuple[Any, ...]]:
    cmd = typer.main.get_command(app)
    sub = cmd.commands[name] if name is not None else cmd  # type: ignore[attr-defined]
    return [(p.name, tuple(p.opts), p.default, getattr(p, "help", None), p.required) for p in sub.params]


def test_the_upload_options_are_defined_once() -> None:
    from converter.cli import app as inoconv
    from converter.upload.__main__ import app as module_app
    from converter.upload.options import HELP, UploadOptions

    ours = _params(inoconv, "upload")
    assert ours == _params(module_app, None)  # `inoconv upload` and `python -m converter.upload`: the same
    by_name = {p[0]: p for p in ours}
    fields = {f for f in UploadOptions.__dataclass_fields__}
    assert set(by_name) == fields | {"fhir_dir"} and set(HELP) == set(by_name)
    for name in fields:
        assert by_name[name][2] == getattr(DEFAULTS, name), name
        assert by_name[name][3] == HELP[name], name
    sig = inspect.signature(upload).parameters
    for name in ("batch", "concurrency", "force", "dry_run", "timeout", "allow_insecure_http", "allow_delete"):
        assert sig[name].default == getattr(DEFAULTS, name), name
    assert sig["max_answer_bytes"].default == DEFAULTS.max_answer_bytes
    assert sig["verify"].default is (not DEFAULTS.insecure)
