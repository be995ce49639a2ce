"""Credentials for the FHIR server: a bearer token that is never printed, logged or put in an error.

The token comes from, in this order: the ``--token`` option, the ``--token-file`` file, the
``INOCONV_FHIR_TOKEN`` environment variable. It is held in a :class:`Secret` whose ``repr``/``str`` are
``'***'``; :func:`redact` scrubs it (and any ``Bearer ...`` value or URL password) out of any text that
could reach a user, a log or a report.
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


def resolve_token(
    token: str | Secret | None = None,
    token_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Secret | None:
    """The bearer token to use, or ``None`` for an open server. Bad token file -> :class:`InputError`."""
    if isinstance(token, Secret):
        return token if token else None
    if token:
        return Secret(_clean(token))
    if token_file is not None:
        path = Path(token_file)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(
                problem(str(path), "", "", "", "token-file", "token file does not exist")
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(
                problem(str(path), "", "", "", "token-file", f"token file cannot be read ({type(exc).__name__})")
            ) from None
        value = _clean(text)
        if not value:
            raise InputError(problem(str(path), "", "", "", "token-file", "token file is empty"))
        return Secret(value)
    environ = os.environ if env is None else env
    value = _clean(environ.get(TOKEN_ENV, ""))
    return Secret(value) if value else None


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
            out = out.replace(value, MASK)
    out = _BEARER.sub(lambda m: m.group(1) + MASK, out)
    out = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", out)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, out)
