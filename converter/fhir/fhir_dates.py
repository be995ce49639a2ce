"""SDTM ISO 8601 dates and date-times as FHIR ``date`` / ``dateTime`` values (:func:`fhir_date`): the value itself
when FHIR can hold it, else its longest representable prefix (YYYY-MM-DD, YYYY-MM, YYYY) marked not exact (the
forward transforms of :mod:`converter.fhir.transforms` then keep the SDTM value in the original-value extension).
"""

from __future__ import annotations

import datetime as dt
import re

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(\.\d+)?(Z|[+-](?:0\d|1[0-3]):[0-5]\d|[+-]14:00)$"
)


def _valid_date(y: str, m: str | None, d: str | None) -> bool:
    if y == "0000":
        return False
    if m is None:
        return True
    if not 1 <= int(m) <= 12:
        return False
    if d is None:
        return True
    try:
        dt.date(int(y), int(m), int(d))
    except ValueError:
        return False
    return True


_DATES: dict[tuple[str, bool], tuple[str | None, bool]] = {}  # dates repeat across sources and partitions


def fhir_date(value: str, with_time: bool) -> tuple[str | None, bool]:
    """(the FHIR value, exact?) for an ISO 8601 SDTM date/datetime: the longest exact prefix when not exact."""
    got = _DATES.get((value, with_time))
    if got is None:
        if len(_DATES) > 200_000:
            _DATES.clear()
        got = _DATES[(value, with_time)] = _fhir_date(value, with_time)
    return got


def _fhir_date(value: str, with_time: bool) -> tuple[str | None, bool]:
    m = _DATE.match(value)
    if m and _valid_date(m.group(1), m.group(2), m.group(3)):
        return value, True
    if with_time:
        m2 = _DATETIME.match(value)
        if m2 and _valid_date(m2.group(1), m2.group(2), m2.group(3)):
            return value, True
    # longest representable prefix: YYYY-MM-DD, YYYY-MM, YYYY
    for n, groups in ((10, 3), (7, 2), (4, 1)):
        head = value[:n]
        m = _DATE.match(head)
        if (
            m
            and len(head) == n
            and _valid_date(m.group(1), m.group(2) if groups > 1 else None, m.group(3) if groups > 2 else None)
        ):
            return head, False
    return None, False
