"""Progress bars on long work: the one helper every command uses (``stream``, ``sdtm``, ``fhir``, ``tosdtm``,
``validate``; ``upload`` has its own richer bar fed by the upload's own statistics).

A command opens :func:`progress_bar` and hands the :class:`Tick` it yields to the work; the work calls it as it
goes (``tick(total=n)`` once the amount is known, ``tick(step="writing")`` to name the step, ``tick()`` per unit
done). The bar is a rich progress bar on stderr, shown only when both stdout and stderr are terminals and the
user did not ask for ``--quiet``: piped or redirected output, a CI log and the test runner get no progress output
at all (the tick is then a no-op). It disappears when the work ends (``transient``), so what remains on the
screen is the command's own report.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Tick", "no_progress", "progress_bar", "shows_progress"]


class Tick(Protocol):
    """What the work calls: ``advance`` units done; ``total`` (re)sets the amount; ``step`` names the step."""

    def __call__(self, advance: int = 1, *, total: int | None = None, step: str | None = None) -> None: ...


def no_progress(advance: int = 1, *, total: int | None = None, step: str | None = None) -> None:
    """The tick of quiet work: does nothing."""


def shows_progress(quiet: bool = False) -> bool:
    """Whether a bar would be shown: not ``quiet``, and stdout and stderr both terminals."""
    if quiet:
        return False
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


@contextlib.contextmanager
def progress_bar(label: str, *, quiet: bool = False, console: Console | None = None) -> Iterator[Tick]:
    """A bar named ``label`` while the block runs, or :func:`no_progress` (see the module doc).

    ``console``: where to draw (tests give ``Console(force_terminal=True)``); given, it is drawn unless ``quiet``.
    """
    if quiet or (console is None and not shows_progress()):
        yield no_progress
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from converter.text import escape_controls

    con = console if console is not None else Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]{task.fields[label]}[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=con,
        transient=True,
    )
    task = bar.add_task("", total=None, label=escape(label))

    def tick(advance: int = 1, *, total: int | None = None, step: str | None = None) -> None:
        if total is not None:
            bar.update(task, total=total)
        if step is not None:
            bar.update(task, description=escape(escape_controls(step)))
        if advance:
            bar.advance(task, advance)

    with bar:
        yield tick
