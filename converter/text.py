"""One rule for control characters, for every reader and every message.

A value that holds a control character (Unicode category ``Cc``: the C0 controls U+0000-U+001F, DEL U+007F and
the C1 controls U+0080-U+009F; and the noncharacters U+FFFE/U+FFFF, which no XML document can hold) is refused
at input, naming file, record and field: a NUL truncates a value in C
libraries (the CSV and XPT writers among them) and can merge two keys into one; the others reach terminals and
spreadsheets as commands. Tab is the one exception, and only where the format allows it (``allow_tab=True``).

Messages never print a control character raw: :func:`escape_controls` shows each as ``\\xNN`` / ``\\uNNNN``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CONTROL_RULE",
    "control_mask",
    "escape_controls",
    "escape_controls_lines",
    "first_control",
]

CONTROL_RULE = "control-character"

# Cc, plus the two noncharacters U+FFFE and U+FFFF, which no XML document (ODM, define.xml) can hold either
_CONTROLS = "\x00-\x1f\x7f-\x9f\ufffe\uffff"
_ANY = re.compile(f"[{_CONTROLS}]")
_NO_TAB = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ufffe\uffff]")


def _pattern(allow_tab: bool) -> re.Pattern[str]:
    return _NO_TAB if allow_tab else _ANY


def first_control(text: str, allow_tab: bool = False) -> int | None:
    """Index of the first refused control character in ``text``, or None."""
    m = _pattern(allow_tab).search(text)
    return m.start() if m else None


def control_mask(values: pd.Series, allow_tab: bool = False) -> np.ndarray:
    """Boolean array: which values of a column hold a refused control character (column-wise, each distinct
    text value tested once; non-text values are never flagged)."""
    if len(values) == 0 or not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
        return np.zeros(len(values), dtype=bool)
    pat = _pattern(allow_tab)
    try:  # the common case, no control character anywhere: one look at the column's text, no factorize
        joined = "".join(filter(None, values.tolist()))
        if joined.isprintable() or pat.search(joined) is None:  # printable (C speed) implies no Cc at all
            return np.zeros(len(values), dtype=bool)
    except TypeError:  # values that are not text: judged one by one below
        pass
    codes, uniques = pd.factorize(values, sort=False)
    hit = np.fromiter((isinstance(u, str) and pat.search(u) is not None for u in uniques), dtype=bool,
                      count=len(uniques))  # fmt: skip
    out = np.zeros(len(values), dtype=bool)
    known = codes >= 0
    out[known] = hit[codes[known]]
    return out


def _escape_one(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(value: Any) -> str:
    """``str(value)`` with every control character (tab, CR and LF included) shown as an escape."""
    text = "" if value is None else str(value)
    return _ANY.sub(_escape_one, text) if _ANY.search(text) else text


def escape_controls_lines(message: Any) -> str:
    """A message for the terminal: every line through :func:`escape_controls`, the line breaks between them kept
    (a multi-line table stays a table; a CR, tab or escape in a user's name or value is shown, not obeyed)."""
    return "\n".join(escape_controls(line) for line in str(message).split("\n"))
