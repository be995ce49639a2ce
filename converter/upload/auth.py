"""Credentials for the FHIR server: a bearer token that is never printed, logged or put in an error.

The token comes from, in this order: the ``--token`` option, the ``--token-file`` file, the
``INOCONV_FHIR_TOKEN`` environment variable. It is held in a :class:`Secret` whose ``repr``/``str`` are
``'***'``; :func:`redact` scrubs it - whole, or any run of :data:`FRAGMENT` of its characters, in case a
server echoes part of it - (and any ``Bearer ...`` value or URL password) out of any text that could reach a
user, a log or a report.

A token is one line of visible ASCII (RFC 6750 ``b64token`` and the usual JWTs are): a token file with more
than one line, or a token with a space or control character, is refused without showing any of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from converter.errors import InputError, problem

TOKEN_ENV = "INOCONV_FHIR_TOKEN"
MASK = "***"
FRAGMENT = 6  # a run this long of a token's characters is masked wherever it appears
MAX_TOKEN_FILE = 64 * 1024

_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:access_token|token|api_key|apikey|key|password)=)[^&\s]+")


class Secret:
    """A string that does not show itself: ``repr``/``str``/format all give ``'***'``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[object, ...]:  # no pickling of the value by accident
        raise TypeError("Secret cannot be pickled")


def _clean(raw: str) -> str:
    value = raw.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    return value


def _checked(value: str, where: str) -> Secret:
    """``value`` as a :class:`Secret` if it can be a bearer token; else :class:`InputError`, showing none of it."""
    for i, ch in enumerate(value, start=1):
        if not "!" <= ch <= "~":
            raise InputError(
                problem(
                    where, "", "", "", "token",
                    f"the token holds a character that cannot be in a bearer token (character {i}: a space, a "
                    "control or a non-ASCII character); the token is not shown",
                )
            )  # fmt: skip
    return Secret(value)


def _read_token_file(path: Path) -> Secret:
    where = str(path)

    def bad(message: str) -> InputError:
        return InputError(problem(where, "", "", "", "token-file", message))

    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOKEN_FILE + 1)
    except FileNotFoundError:
        raise bad("token file does not exist") from None
    except OSError as exc:
        raise bad(f"token file cannot be read ({type(exc).__name__})") from None
    if len(raw) > MAX_TOKEN_FILE:
        raise bad(f"token file is larger than {MAX_TOKEN_FILE // 1024} KiB: it must hold one line, the token")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("token file is not UTF-8 text") from None
    body = text[:-1] if text.endswith("\n") else text
    body = body[:-1] if body.endswith("\r") else body
    lines = body.count("\n") + body.count("\r") + 1
    if lines > 1:
        raise bad(f"token file must hold one line, the token; it has {lines} lines (none of them is shown)")
    value = _clean(body)
    if not value:
        raise bad("token file is empty")
    return _checked(value, where)


def resolve_token(
    token: str | Secret | None = None,
    token_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Secret | None:
    """The bearer token to use, or ``None`` for an open server. Bad token file -> :class:`InputError`."""
    if isinstance(token, Secret):
        return token if token else None
    if token:
        return _checked(_clean(token), "--token")
    if token_file is not None:
        return _read_token_file(Path(token_file))
    environ = os.environ if env is None else env
    value = _clean(environ.get(TOKEN_ENV, ""))
    return _checked(value, TOKEN_ENV) if value else None


def safe_url(url: str) -> str:
    """The URL without user:password (and without secret-looking query values), for display and keys."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact(text: str, *secrets: Secret | str | None) -> str:
    """``text`` with every given secret, any ``Bearer <value>`` and any URL password replaced by ``***``."""
    out = text
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value:
            out = _mask_fragments(out.replace(value, MASK), value)
    out = _BEARER.sub(lambda m: m.group(1) + MASK, out)
    out = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", out)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, out)


def _mask_fragments(text: str, secret: str) -> str:
    """``text`` with every run of :data:`FRAGMENT` or more characters of ``secret`` replaced by ``***``."""
    if len(secret) < 2 * FRAGMENT or len(text) < FRAGMENT:
        return text
    grams = {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}
    hidden = [False] * len(text)
    for i in range(len(text) - FRAGMENT + 1):
        if text[i : i + FRAGMENT] in grams:
            hidden[i : i + FRAGMENT] = [True] * FRAGMENT
    if not any(hidden):
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        if not hidden[i]:
            out.append(ch)
        elif i == 0 or not hidden[i - 1]:
            out.append(MASK)
    return "".join(out)
