"""Run a function in a forked child process while this one goes on; its result comes back through a file.

``inoconv run`` has independent stages (FHIR and its checks need only the SDTM package; ADaM and the report need
only ADaM): on a machine with two cores :func:`start` runs one of them in a child, which starts as a copy of this
process (libraries already imported, nothing pickled on the way in). The child's return value (or the exception
it raised) is pickled into a temporary file and read back by :meth:`Job.result`, which waits for the child.

Where ``os.fork`` does not exist, with one core, or with ``INOCONV_WORKERS=1`` in the environment, ``start`` runs
the function at once in this process and ``result`` gives its outcome: the same results, one after the other.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
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

    def __init__(self, fn: Callable[[], T], fork: bool) -> None:
        self.pid: int | None = None
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None
        if not fork:
            try:
                self._value = fn()
            except Exception as exc:  # given back by result(), as the child's would be
                self._error = exc
            self._done = True
            return
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
                self._file.write_bytes(_outcome(fn))
                code = 0
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        self.pid = pid

    def result(self) -> T:
        """Wait for the job; its return value, or its exception raised here."""
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
        self._done = True
        if kind == "value":
            self._value = payload
        elif isinstance(payload, BaseException):
            self._error = payload
        else:
            self._error = _rebuilt(*payload)

    def cancel(self) -> None:
        """Stop the child if it still runs (this process is failing); its result is dropped."""
        if self.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
                os.waitpid(self.pid, 0)
            self.pid = None
            self._file.unlink(missing_ok=True)
        self._done = True


def start(fn: Callable[[], T]) -> Job[T]:
    """``fn`` in a forked child where :func:`parallel` allows it, else run here and now."""
    return Job(fn, fork=parallel())


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
