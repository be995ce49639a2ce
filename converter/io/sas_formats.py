"""SAS display formats: parsed (``DATE9.`` -> name DATE, width 9) and classified as date, datetime or time.

Shared by the XPT, Dataset-JSON and Define-XML writers and the XPT reader (:mod:`converter.io.xpt` re-exports
:class:`SasFormat`, :func:`parse_sas_format` and :func:`temporal_kind`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

__all__ = ["SAS_EPOCH", "SasFormat", "parse_sas_format", "temporal_kind"]

_SAS_FORMAT = re.compile(r"^(?P<name>\$?(?:[A-Z_](?:[A-Z0-9_]*[A-Z_])?)?)(?P<w>\d*)\.(?P<d>\d*)$")

# SAS formats that make a number a date (days since 1960-01-01), a datetime (seconds) or a time (seconds).
_DATE_FORMATS = frozenset(
    {"DATE", "E8601DA", "IS8601DA", "B8601DA", "YYMMDD", "MMDDYY", "DDMMYY", "WORDDATE", "WORDDATX", "WEEKDATE",
     "WEEKDATX", "MONYY", "YYMON", "DAY", "JULIAN", "NENGO", "YYQ", "EURDFDE", "MINGUO"}
)  # fmt: skip
_DATETIME_FORMATS = frozenset({"DATETIME", "E8601DT", "IS8601DT", "B8601DT", "DATEAMPM", "E8601DN"})
_TIME_FORMATS = frozenset({"TIME", "TOD", "E8601TM", "IS8601TM", "B8601TM", "HHMM", "HOUR", "MMSS", "TIMEAMPM"})
SAS_EPOCH = pd.Timestamp("1960-01-01")


@dataclass(frozen=True)
class SasFormat:
    name: str  # "" for w.d, "$CHAR", "DATE", ...
    width: int | None
    decimals: int | None

    def __str__(self) -> str:
        w = "" if self.width is None else str(self.width)
        d = "" if self.decimals is None else str(self.decimals)
        return f"{self.name}{w}.{d}"


def parse_sas_format(text: str) -> SasFormat | None:
    """``DATE9.`` -> SasFormat("DATE", 9, None); ``8.2`` -> ("", 8, 2); None when not a SAS format."""
    m = _SAS_FORMAT.match(text.strip().upper())
    if not m or (not m["name"] and not m["w"]):
        return None
    return SasFormat(m["name"], int(m["w"]) if m["w"] else None, int(m["d"]) if m["d"] else None)


def temporal_kind(fmt: str | None) -> str | None:
    """'date' / 'datetime' / 'time' when a numeric variable's SAS format makes it one, else None."""
    parsed = parse_sas_format(fmt) if fmt else None
    if parsed is None:
        return None
    name = parsed.name
    if name in _DATE_FORMATS or name.startswith(("YYMMDD", "MMDDYY", "DDMMYY")):
        return "date"
    if name in _DATETIME_FORMATS:
        return "datetime"
    if name in _TIME_FORMATS:
        return "time"
    return None
