"""converter.io.forked: a function run in a forked child gives back its value or its exception, as run here would."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from converter.errors import ConformanceError, InputError, problem
from converter.io import forked

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


@pytest.fixture(params=["fork", "here"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "fork":
        if not hasattr(os, "fork"):
            pytest.skip("no os.fork on this platform")
        monkeypatch.setattr(forked, "parallel", lambda: True)
    else:
        monkeypatch.setenv("INOCONV_WORKERS", "1")
    return str(request.param)


def test_the_value_comes_back_and_the_child_writes_files(mode: str, tmp_path: Path) -> None:
    def work() -> tuple[int, list[str]]:
        (tmp_path / "made.txt").write_text(f"by {os.getpid()}", encoding="utf-8")
        return os.getpid(), ["a line"] * 5000  # more than a pipe holds

    job = forked.start(work)
    pid, lines = job.result()
    assert lines == ["a line"] * 5000
    assert (pid != os.getpid()) == (mode == "fork")
    assert (tmp_path / "made.txt").read_text(encoding="utf-8") == f"by {pid}"


def test_exceptions_come_back_with_their_class_and_content(mode: str) -> None:
    def bad_input() -> None:
        raise InputError([problem("dm.xpt", "row 3", "AGE", "x", "type", "not a number")], context="sdtm")

    with pytest.raises(InputError) as exc:
        forked.start(bad_input).result()
    assert exc.value.context == "sdtm"
    assert [p.message for p in exc.value.problems] == ["not a number"]
    assert str(exc.value) == "sdtm: 1 problem(s) in the input\n  dm.xpt:row 3:AGE: [type] not a number (value 'x')"

    def not_conformant() -> None:
        raise ConformanceError(["AE.AETERM: too long", "DM: no spec"])

    with pytest.raises(ConformanceError) as cexc:
        forked.start(not_conformant).result()
    assert cexc.value.messages == ["AE.AETERM: too long", "DM: no spec"]
    assert cexc.value.exit_code == 1


@needs_fork
def test_a_child_that_dies_is_an_error_not_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked, "parallel", lambda: True)
    job = forked.start(lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(forked.ChildFailed, match="without a result"):
        job.result()


@needs_fork
def test_cancel_stops_a_running_child(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(forked, "parallel", lambda: True)
    marker = tmp_path / "finished"
    job = forked.start(lambda: (time.sleep(30), marker.write_text("x")))
    pid = job.pid
    assert pid is not None
    job.cancel()
    assert job.pid is None and not marker.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and waited for: no such process any more


def test_one_worker_or_no_fork_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INOCONV_WORKERS", "1")
    assert not forked.parallel()
    job = forked.start(os.getpid)
    assert job.pid is None and job.result() == os.getpid()
    monkeypatch.delenv("INOCONV_WORKERS")
    monkeypatch.delattr(os, "fork", raising=False)
    assert not forked.parallel()


def test_a_prepared_job_warms_up_waits_for_go_and_gets_its_message(mode: str, tmp_path: Path) -> None:
    """prepare(): the child runs ``warm`` at once, then waits; go(message) hands it the bytes (more than a pipe
    holds) before ``fn`` runs. Run here (no fork), warm and receive are skipped and go() runs ``fn``."""
    seen: list[bytes] = []
    marker = tmp_path / "warm"
    job = forked.prepare(lambda: marker.write_text(str(os.getpid())), lambda: (os.getpid(), list(seen)), seen.append)
    with pytest.raises(RuntimeError, match="after go"):
        job.result()
    if mode == "fork":
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.read_text() == str(job.pid)  # warmed up in the child before go()
    big = bytes(range(256)) * 2000
    job.go(lambda: big)
    pid, got = job.result()
    if mode == "fork":
        assert pid != os.getpid() and got == [big]
    else:
        assert pid == os.getpid() and got == [] and not marker.exists()


@needs_fork
def test_a_prepared_job_cancelled_before_go_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cancel() (this process failing before go) ends the waiting child without running ``fn``; a warm-up that
    raises is ignored."""
    monkeypatch.setattr(forked, "parallel", lambda: True)
    ran = tmp_path / "ran"

    def bad_warm() -> None:
        raise ValueError("warm-up failed")

    job = forked.prepare(bad_warm, lambda: ran.write_text("x"))
    pid = job.pid
    assert pid is not None
    job.cancel()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not ran.exists()
    job = forked.prepare(bad_warm, lambda: 7)
    job.go()
    assert job.result() == 7



@pytest.fixture
def message_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files forked's send() makes (to check none is left behind)."""
    made: list[str] = []
    real_mkstemp = tempfile.mkstemp

    def noting_mkstemp(*args: object, **kwargs: object) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        if "inoconv-message." in name:
            made.append(name)
        return fd, name

    monkeypatch.setattr(forked.tempfile, "mkstemp", noting_mkstemp)
    return made


def test_a_running_child_takes_later_messages_in_order(mode: str, message_files: list[str]) -> None:
    """send() after go(): the child reads each message with next_message(), in order, when it wants them; the last
    None says nothing more comes (the parent waits for the result). Run here, send() does nothing and
    next_message() has nothing: the caller runs the job after what it would have sent is ready."""

    def work() -> list[bytes | None]:
        return [forked.next_message(), forked.next_message(), forked.next_message()]

    job = forked.prepare(lambda: None, work)
    job.go()
    big = bytes(range(256)) * 4000  # more than a pipe holds: it goes through a file
    job.send(lambda: big)
    job.send(lambda: b"second")
    got = job.result()
    if mode == "fork":
        assert got == [big, b"second", None] and len(message_files) == 2
    else:
        assert got == [None, None, None] and message_files == []
    assert not any(Path(m).exists() for m in message_files)  # each taken and removed by the child
    with pytest.raises(RuntimeError, match="after go"):
        forked.prepare(lambda: None, lambda: 0).send(lambda: b"x")


@needs_fork
def test_send_never_waits_for_a_busy_or_ended_child(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, message_files: list[str]
) -> None:
    """A child that does not read its messages (busy until this process says so through a file, or ended by an
    error) does not hold up send(); the messages it never took are removed once its result is known."""
    monkeypatch.setattr(forked, "parallel", lambda: True)
    sent = tmp_path / "sent"

    def busy() -> str:
        deadline = time.monotonic() + 60  # a send() that waited for this child would only return after it ended
        while not sent.exists():
            if time.monotonic() > deadline:
                return "never told"
            time.sleep(0.01)
        return "done"

    job = forked.prepare(lambda: None, busy)
    job.go()
    for _ in range(3):
        job.send(lambda: b"x" * 1_000_000)
    sent.write_text("x")
    assert job.result() == "done"
    assert len(message_files) == 3 and not any(Path(m).exists() for m in message_files)

    def fails() -> None:
        raise ValueError("broken early")

    job = forked.prepare(lambda: None, fails)
    job.go()
    assert job.pid is not None
    os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOWAIT)  # the child has ended (and is left to result() to reap)
    job.send(lambda: b"late")  # no error here: result() says how the child ended
    with pytest.raises(ValueError, match="broken early"):
        job.result()


def test_the_child_tells_the_parent_what_it_can_take_over(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tell_parent() in the child, hear() in the parent: the messages in order, then None once the child ended.
    Run here, tell_parent() sends nothing and says so (False: the caller does the work itself), hear() has
    nothing. A message the parent never heard is removed with the job."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the message files of both processes go here

    def work() -> list[bool]:
        return [forked.tell_parent(b"adam written"), forked.tell_parent(bytes(300_000))]

    job = forked.prepare(lambda: None, work)
    job.go()
    if mode == "fork":
        assert job.hear() == b"adam written"
        assert job.hear() == bytes(300_000)
        assert job.hear() is None  # the child has ended
        assert job.result() == [True, True]
    else:
        assert job.result() == [False, False] and job.hear() is None
    unheard = forked.prepare(lambda: None, lambda: forked.tell_parent(b"never heard"))
    unheard.go()
    assert unheard.result() is (mode == "fork")
    assert not list(tmp_path.glob("inoconv-message.*"))  # every file of a message is gone, heard or not
