"""Run a function in a forked child process while this one goes on; its result comes back through a file.

``inoconv run`` has independent stages (FHIR and its checks need only the SDTM package; ADaM and the report need
only ADaM): on a machine with two cores :func:`start` runs one of them in a child, which starts as a copy of this
process (libraries already imported, nothing pickled on the way in). The child's return value (or the exception
it raised) is pickled into a temporary file and read back by :meth:`Job.result`, which waits for the child.

Where ``os.fork`` does not exist, with one core, or with ``INOCONV_WORKERS=1`` in the environment, ``start`` runs
the function at once in this process and ``result`` gives its outcome: the same results, one after the other.

:func:`prepare` forks a child early that warms up (imports, specs) and waits for :meth:`Job.go`: work that needs
another stage's output can get its start-up cost done while that stage runs on the other core. After ``go``,
:meth:`Job.send` hands the running child more (what this process made since), which the child takes with
:func:`next_message` when it needs it; this process never waits for the child to take it. The other way,
:func:`tell_parent` in the child gives this process what :meth:`Job.hear` waits for (work it can take over).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class ChildFailed(RuntimeError):
    """The child ended without a result (killed, or its exception could not be pickled): what is known of it."""


def parallel() -> bool:
    """True where a job can run beside this process: ``os.fork`` exists, two cores or more, not switched off."""
    return hasattr(os, "fork") and (os.cpu_count() or 1) > 1 and os.environ.get("INOCONV_WORKERS", "") != "1"


class Job(Generic[T]):
    """One function running in a child process (or already run here: see :func:`start`)."""

    def __init__(
        self,
        fn: Callable[[], T],
        fork: bool,
        warm: Callable[[], object] | None = None,
        receive: Callable[[bytes], object] | None = None,
    ) -> None:
        self.pid: int | None = None
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._fn: Callable[[], T] | None = None
        self._gate: int | None = None  # write end of the pipe the child waits on (a job started by prepare())
        self._started = False  # go() was called
        self._sent: list[Path] = []  # files of send()'s messages (removed by the child that reads them, else here)
        self._back: int | None = None  # read end of the pipe of the child's tell_parent() messages
        self._receive = receive
        if not fork:
            if warm is not None:  # run at go(): nothing to overlap here
                self._fn = fn
                return
            self._run_here(fn)
            return
        gate_r = back_w = -1
        if warm is not None:
            gate_r, self._gate = os.pipe()
            self._back, back_w = os.pipe()
        fd, name = tempfile.mkstemp(prefix="inoconv-job.", suffix=".pickle")
        os.close(fd)
        self._file = Path(name)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()  # what is buffered now is written once, by this process
        pid = os.fork()
        if pid == 0:  # the child: run, write the outcome, leave without running this process's exit handlers
            code = 1
            try:
                if warm is not None:
                    os.close(self._gate)  # type: ignore[arg-type]
                    os.close(self._back)  # type: ignore[arg-type]
                    _set_pipes(gate_r, back_w)
                    _warm_quietly(warm)
                    message = _read_message(gate_r)
                    if message is None:  # the parent stopped (or ended) before go()
                        os._exit(0)
                    if receive is not None:
                        receive(message)
                self._file.write_bytes(_outcome(fn))
                code = 0
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self.pid = pid
        if warm is not None:
            os.close(gate_r)
            os.close(back_w)

    def _run_here(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except Exception as exc:  # given back by result(), as the child's would be
            self._error = exc
        self._done = True

    @property
    def forked(self) -> bool:
        """The job runs (or waits to run) in a child process."""
        return self.pid is not None

    def go(self, message: Callable[[], bytes] | None = None) -> None:
        """Let a job started by :func:`prepare` run (here and now where it was not forked); ``message`` makes the
        bytes its ``receive`` is given first, in the child (not called where the job runs here)."""
        if self._started:
            raise RuntimeError("go() was called already")
        self._started = True
        if self._fn is not None:
            fn, self._fn = self._fn, None
            self._run_here(fn)
        elif self._gate is not None:
            data = message() if message is not None and self._receive is not None else b""
            try:
                with os.fdopen(self._gate, "wb", closefd=False) as pipe:
                    pipe.write(b"g" + struct.pack("<Q", len(data)) + data)
            except OSError:  # the child is gone: result() says how it ended
                self._close_gate()

    def send(self, message: Callable[[], bytes]) -> None:
        """After :meth:`go`, hand the child ``message()`` (called only where the job runs in a child), which it
        reads with :func:`next_message`. The bytes go through a file and the pipe carries only its name, so this
        returns at once whatever the child is doing; a child that has ended is not an error here."""
        if not self._started:
            raise RuntimeError("send() comes after go()")
        if self._gate is None:
            return
        try:
            self._sent.append(_put(self._gate, message()))
        except OSError:
            self._close_gate()

    def hear(self) -> bytes | None:
        """Wait for the child's next :func:`tell_parent` message; None once the child has ended without another
        (or where the job does not run in a child)."""
        if self._back is None:
            return None
        message = _take(self._back)
        if message is None:
            self._close_back()
        return message

    def _close_back(self) -> None:
        """Drop what the child told and was not heard (its files too); the child has ended or is being stopped."""
        if self._back is None:
            return
        back, self._back = self._back, None
        try:
            os.set_blocking(back, False)  # what is in the pipe now; nothing is waited for
            with contextlib.suppress(BlockingIOError):
                while _take(back) is not None:
                    pass
        finally:
            os.close(back)

    def _close_gate(self) -> None:
        if self._gate is not None:
            with contextlib.suppress(OSError):
                os.close(self._gate)  # a child waiting in next_message() reads end-of-file
            self._gate = None

    def _forget_sent(self) -> None:
        for path in self._sent:
            path.unlink(missing_ok=True)  # a message the child never took
        self._sent = []

    def result(self) -> T:
        """Wait for the job; its return value, or its exception raised here."""
        if self._fn is not None or (self._gate is not None and not self._started):
            raise RuntimeError("a prepared job gives its result after go()")
        self._close_gate()  # nothing more will be sent
        if not self._done:
            self._wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def _wait(self) -> None:
        assert self.pid is not None
        try:
            _, status = os.waitpid(self.pid, 0)
            self.pid = None
            try:
                kind, payload = pickle.loads(self._file.read_bytes())
            except (OSError, EOFError, pickle.UnpicklingError):
                kind, payload = "error", ChildFailed(f"the child process ended without a result (status {status})")
        finally:
            self._file.unlink(missing_ok=True)
            self._forget_sent()
            self._close_back()
        self._done = True
        if kind == "value":
            self._value = payload
        elif isinstance(payload, BaseException):
            self._error = payload
        else:
            self._error = _rebuilt(*payload)

    def cancel(self) -> None:
        """Stop the child if it still runs (this process is failing); its result is dropped."""
        self._fn = None
        self._close_gate()  # a waiting child reads end-of-file and leaves
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
                os.waitpid(self.pid, 0)
            self.pid = None
            self._file.unlink(missing_ok=True)
        self._forget_sent()
        self._close_back()
        self._done = True


def start(fn: Callable[[], T]) -> Job[T]:
    """``fn`` in a forked child where :func:`parallel` allows it, else run here and now."""
    return Job(fn, fork=parallel())


def prepare(
    warm: Callable[[], object], fn: Callable[[], T], receive: Callable[[bytes], object] | None = None
) -> Job[T]:
    """A child forked now that runs ``warm`` (imports, specs: what ``fn`` will need, while this process does
    something else), then waits: :meth:`Job.go` lets it run ``receive`` on the message ``go`` sends, then ``fn``;
    :meth:`Job.cancel`, or this process ending, makes it leave without running either. Where :func:`parallel`
    does not allow a child, ``warm`` and ``receive`` are skipped and ``go`` runs ``fn`` here. An exception of
    ``warm`` is ignored (``fn`` meets the same problem and reports it)."""
    return Job(fn, fork=parallel(), warm=warm, receive=receive)


_inbox: int | None = None  # in a child of prepare(): the pipe its job's messages come through
_outbox: int | None = None  # ... and the pipe of its tell_parent() messages


def _set_pipes(inbox: int, outbox: int) -> None:
    global _inbox, _outbox
    _inbox, _outbox = inbox, outbox


def next_message() -> bytes | None:
    """In the child of a job of :func:`prepare`, the next message :meth:`Job.send` gave it, waiting for it; None
    where there is none to wait for: this process is not such a child, or the parent will send nothing more (it
    closed the pipe: it waits for the result, or stopped)."""
    return None if _inbox is None else _take(_inbox)


def tell_parent(message: bytes) -> bool:
    """In the child of a job of :func:`prepare`, hand the parent ``message`` (what :meth:`Job.hear` gives); it goes
    through a file, so this never waits for the parent. False where this process is not such a child (nothing
    sent: the caller does the work itself)."""
    if _outbox is None:
        return False
    _put(_outbox, message)
    return True


def _put(fd: int, message: bytes) -> Path:
    """``message`` in a new temporary file whose name goes down the pipe ``fd`` (a write far below a pipe's atomic
    size: it never waits for the reader). OSError where the reader is gone."""
    handle, name = tempfile.mkstemp(prefix="inoconv-message.", suffix=".pickle")
    with os.fdopen(handle, "wb") as f:
        f.write(message)
    path = os.fsencode(name)
    try:
        os.write(fd, b"f" + struct.pack("<Q", len(path)) + path)
    except OSError:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _take(fd: int) -> bytes | None:
    """The next message :func:`_put` sent down ``fd`` (its file read and removed), waiting for it; None at end of
    file (the writer closed its end: it ended, or sends nothing more)."""
    head = _read_exactly(fd, 9)
    if head is None or head[:1] != b"f":
        return None
    name = _read_exactly(fd, struct.unpack("<Q", head[1:])[0])
    if name is None:
        return None
    path = Path(os.fsdecode(name))
    try:
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> bytes | None:
    """The message :meth:`Job.go` writes (``g``, its length, its bytes); None at end of file (no go)."""
    head = _read_exactly(fd, 9)
    if head is None or head[:1] != b"g":
        return None
    body = _read_exactly(fd, struct.unpack("<Q", head[1:])[0])
    return body


def _warm_quietly(warm: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):
        warm()


def _outcome(fn: Callable[[], object]) -> bytes:
    """``fn``'s value, or its exception as class, arguments and attributes, pickled (what cannot be pickled: a
    :class:`ChildFailed` with the traceback)."""
    try:
        return pickle.dumps(("value", fn()))
    except BaseException as exc:  # every outcome goes back to the parent, Ctrl-C too
        try:
            return pickle.dumps(("error", (type(exc), exc.args, dict(getattr(exc, "__dict__", {})))))
        except Exception:
            return pickle.dumps(("error", ChildFailed("".join(traceback.format_exception(exc)))))


def _rebuilt(cls: type[BaseException], args: tuple[object, ...], state: dict[str, object]) -> BaseException:
    """The child's exception as it was: same class, arguments and attributes. (Pickling an exception calls its
    class with ``args`` again, which is wrong for one whose ``__init__`` takes something else, such as the
    problems of :class:`converter.errors.InputError`.)"""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc
