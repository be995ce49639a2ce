"""Problems found in user input, reported together, never one at a time.

A :class:`Problem` names where (file, record, field), what (value) and which rule it broke. Readers and
checks collect them and raise one :class:`InputError`; the CLI prints the table and exits with code 2.

Nothing here prints a control character raw (a value, a file name or a parser's message may hold one): problems,
the context of an :class:`InputError` and the messages of :class:`SpecError` and :class:`ConformanceError` are
shown through :func:`converter.text.escape_controls`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from converter.text import escape_controls


@dataclass(frozen=True)
class Problem:
    file: str
    record: str
    field: str
    value: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def __str__(self) -> str:
        where = escape_controls(":".join(p for p in (self.file, self.record, self.field) if p))
        val = f" (value '{self.value}')" if self.value else ""
        return f"{where}: [{self.rule}] {escape_controls(self.message)}{val}"


def _short(value: object, limit: int = 60) -> str:
    text = escape_controls(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem(file: str, record: str, field: str, value: object, rule: str, message: str) -> Problem:
    return Problem(file=file, record=record, field=field, value=_short(value), rule=rule, message=message)


class InputError(Exception):
    """Bad user input: one or more problems, all reported together (exit code 2)."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem] | Problem, context: str = "") -> None:
        self.problems: list[Problem] = [problems] if isinstance(problems, Problem) else list(problems)
        self.context = context
        super().__init__(self.render(limit=20))

    def render(self, limit: int | None = None) -> str:
        shown = self.problems if limit is None else self.problems[:limit]
        head = f"{escape_controls(self.context)}: " if self.context else ""
        lines = [f"{head}{len(self.problems)} problem(s) in the input"]
        lines += [f"  {p}" for p in shown]
        if limit is not None and len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)


def _escaped_lines(messages: Iterable[str]) -> list[str]:
    """Messages as printable text: each line's control characters escaped (line breaks kept)."""
    return ["\n".join(escape_controls(line) for line in str(m).split("\n")) for m in messages]


class SpecError(Exception):
    """A mapping spec is invalid; raised before any data is read (exit code 2)."""

    exit_code = 2

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = _escaped_lines(messages)
        super().__init__("\n".join(self.messages))


class MissingColumnError(SpecError, KeyError):
    """A spec's rule reads a column that its source does not have: the spec names a variable the input lacks (the
    spec is wrong, or the input is not the package it was written for). Exit code 2, as a spec error, naming the
    spec file and line; a KeyError too, for code that looks a column up and tries something else."""


class ConformanceError(Exception):
    """Output would not be conformant (e.g. an XPT label over 40 characters); nothing was written."""

    exit_code = 1

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = _escaped_lines(messages)
        super().__init__("\n".join(self.messages))
