"""lxml's parse errors as text a user reads: the line once, the message as text (never a Python bytes literal).

lxml words a syntax error differently by how the document was parsed: ``Opening and ending tag mismatch: A line
3 and B, line 3, column 18 (file.xml, line 3)`` from a plain parse, ``line 52: b"Couldn't find end of Start Tag
X"`` (a bytes literal) when a schema validates while parsing, and an ``error_log`` of entries with their own
line. :func:`xml_error` turns any of them into ``(line, message)``; :func:`describe_xml_error` into one sentence.
"""

from __future__ import annotations

import ast
import re

from lxml import etree

__all__ = ["describe_xml_error", "xml_error"]

_WRAPPED = re.compile(r"line (\d+): (b(['\"]).*\3)", re.S)  # "line 52: b'...'" / 'line 52: b"..."'
_WHERE = re.compile(r",? \((?:[^()]*, )?line \d+\)$")  # lxml's " (file.xml, line 3)" suffix
_COLUMN = re.compile(r"^(.*), line (\d+), column (\d+)$", re.S)


def _text(literal: str) -> str:
    try:
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError):
        return literal
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def xml_error(exc: etree.XMLSyntaxError | etree.XMLSchemaParseError | etree.XSLTParseError) -> tuple[int | None, str]:
    """The line (None when lxml gives none) and the message of an lxml error, as plain text."""
    msg = str(getattr(exc, "msg", None) or "").strip()
    line: int | None = getattr(exc, "lineno", None) or None
    if not msg:  # the error log keeps earlier parses' entries too: its last error is this one's
        entries = [e for e in getattr(exc, "error_log", ()) if e.level_name in ("ERROR", "FATAL")]
        if not entries:
            return line, str(exc).strip()
        return (entries[-1].line or None), entries[-1].message.strip()
    wrapped = _WRAPPED.fullmatch(msg)
    if wrapped:
        line, msg = int(wrapped.group(1)), _text(wrapped.group(2)).strip()
    msg = _WHERE.sub("", msg)
    at = _COLUMN.fullmatch(msg)
    if at and line is not None and int(at.group(2)) == line:
        msg = f"{at.group(1)} (column {at.group(3)})"
    return line, msg


def describe_xml_error(exc: etree.XMLSyntaxError | etree.XMLSchemaParseError | etree.XSLTParseError) -> str:
    """``line 52: Couldn't find end of Start Tag ItemGroupRef`` (the line once, then the message)."""
    line, msg = xml_error(exc)
    return f"line {line}: {msg}" if line else msg
