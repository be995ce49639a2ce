"""The bytes of a SAS XPORT version 5 file, made with numpy: what ``pyreadstat.write_xport(...,
file_format_version=5)`` (ReadStat 1.1's writer, the one pyreadstat 1.3 bundles) writes for the same columns,
byte for byte, apart from the creation timestamp (the time of writing).

:func:`converter.io.xpt.write_xpt` checks a frame first and then calls :func:`xport_bytes`; pyreadstat's writer
took a Python step per value (through narwhals) where this takes a few numpy operations per column. The layout:

* 80-byte records, blank padded: the library header, the first real header (``SAS SAS SASLIB 6.06 bsd4.2`` and
  the timestamp), the timestamp again, the member and descriptor headers, the member record (the table name),
  the file label record, the NAMESTR header (the number of variables), one 140-byte NAMESTR per variable, the
  OBS header, then the observations back to back, the last record padded with blanks;
* a NAMESTR: type (1 numeric, 2 character), 0, storage width, number (1-based), name (8) and label (40) blank
  padded, the format's name (8, blank padded), width, decimals, justification (1 for a number), 2 zero bytes,
  8 blanks and two zero shorts (no informat), the position in the observation, 52 zero bytes;
* a number as an 8-byte IBM float (exact for every double in the IBM range: the 53 bits of an IEEE mantissa fit
  the 56 of IBM's, whatever the hex shift), zero as 8 zero bytes, missing as ``.`` and 7 zero bytes;
* a character value blank padded to its variable's storage width ("" and missing are all blanks).

Values must be what :func:`converter.io.xpt.check_for_xpt` allows (ASCII, within the widths and the IBM range,
no negative zero); nothing is checked here. The tests compare these bytes with pyreadstat's.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from converter.io.sas_formats import SasFormat

__all__ = ["XportColumn", "ibm_words", "xport_bytes", "xport_timestamp"]

RECORD = 80
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MISSING = np.uint64(0x2E << 56)


@dataclass(frozen=True)
class XportColumn:
    """One variable: ``values`` is a float64 array (NaN missing) for a number, an object array of ``str``
    (``""`` for missing) for a character variable of storage ``width`` bytes."""

    name: str
    label: str
    numeric: bool
    width: int
    format: SasFormat | None
    values: np.ndarray[Any, np.dtype[Any]]


def xport_timestamp(now: float | None = None) -> bytes:
    """``DDMONYY:HH:MM:SS`` in local time, as ReadStat writes it."""
    t = time.localtime(now)
    text = f"{t.tm_mday:02d}{_MONTHS[t.tm_mon - 1]}{t.tm_year % 100:02d}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    return text.encode("ascii")


def _record(text: bytes) -> bytes:
    return text[:RECORD].ljust(RECORD, b" ")


def _header(name: bytes, *nums: int) -> bytes:
    digits = b"".join(b"%05d" % n for n in (*nums, 0, 0, 0, 0, 0, 0)[:6])
    return _record(b"HEADER RECORD*******" + name.ljust(8) + b"HEADER RECORD!!!!!!!" + digits)


def _pad(text: str, size: int) -> bytes:
    return text.encode("ascii")[:size].ljust(size, b" ")


def _namestr(i: int, col: XportColumn, pos: int) -> bytes:
    fmt = col.format
    head = struct.pack(">hhhh", 1 if col.numeric else 2, 0, col.width, i + 1)
    body = _pad(col.name, 8) + _pad(col.label, 40) + _pad(fmt.name if fmt else "", 8)
    tail = struct.pack(
        ">hhhh", (fmt.width or 0) if fmt else 0, (fmt.decimals or 0) if fmt else 0, 1 if col.numeric else 0, 0
    )
    return head + body + tail + b" " * 8 + struct.pack(">hhi", 0, 0, pos) + bytes(52)


def ibm_words(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Each double as the 64-bit word of its IBM float (sign, excess-64 hex exponent, 56-bit fraction), NaN as
    SAS missing (``.``), zero (either sign) as 0, as ReadStat's ``ieee2xpt`` (SAS TS-140) makes it: x = 1.m *
    2**e goes in exactly with hex exponent (e >> 2) + 65 and the mantissa shifted left by e & 3; e > 248 (from
    2**249 on) becomes the largest IBM magnitude 0x7FFFFFFFFFFFFFFF with the sign, e < -260 (below 16**-65, and
    subnormals) becomes 0. Infinite values are not handled."""
    x = np.asarray(values, dtype=np.float64)
    bits = x.view(np.uint64)
    out = np.zeros(len(x), dtype=np.uint64)
    nonzero = (x != 0.0) & ~np.isnan(x)
    b = bits[nonzero]
    e = ((b >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64) - 1023
    shift = (e & 3).astype(np.uint64)
    fraction = ((b & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52)) << shift
    exponent = ((e >> 2) + 65).astype(np.uint64) << np.uint64(56)
    sign = b & np.uint64(1 << 63)
    word = sign | (exponent & np.uint64(0x7F << 56)) | fraction
    word[e > 248] = sign[e > 248] | np.uint64(0x7FFFFFFFFFFFFFFF)
    word[e < -260] = 0
    out[nonzero] = word
    out[np.isnan(x)] = _MISSING
    return out


def _char_block(values: np.ndarray[Any, np.dtype[Any]], width: int, rows: int) -> np.ndarray[Any, np.dtype[Any]]:
    if width == 0 or rows == 0:
        return np.zeros((rows, width), dtype=np.uint8)
    fixed = np.asarray(values, dtype=f"S{width}")  # ASCII, NUL padded (values hold no NUL: checked)
    block = fixed.view(np.uint8).reshape(rows, width).copy()
    block[block == 0] = 32
    return block


def xport_bytes(
    table_name: str, file_label: str, columns: Sequence[XportColumn], *, timestamp: bytes | None = None
) -> bytes:
    """The whole file (see the module doc)."""
    stamp = xport_timestamp() if timestamp is None else timestamp
    rows = len(columns[0].values) if columns else 0
    parts = [
        _header(b"LIBRARY"),
        _record(b"SAS     SAS     SASLIB  6.06    bsd4.2  " + b" " * 24 + stamp.rjust(16)),
        _record(stamp),
        _header(b"MEMBER", 0, 0, 0, 160, 0, 140),
        _header(b"DSCRPTR"),
        _record(b"SAS     " + _pad(table_name, 8) + b"SASDATA 6.06    bsd4.2  " + b" " * 24 + stamp.rjust(16)),
        _record(stamp.rjust(16) + b" " * 16 + _pad(file_label, 40) + b" " * 8),
        _header(b"NAMESTR", 0, len(columns)),
    ]
    pos = 0
    names = []
    for i, col in enumerate(columns):
        names.append(_namestr(i, col, pos))
        pos += col.width
    namestrs = b"".join(names)
    parts.append(namestrs + b" " * (-len(namestrs) % RECORD))
    parts.append(_header(b"OBS"))
    table = np.empty((rows, pos), dtype=np.uint8)
    at = 0
    for col in columns:
        if col.numeric:
            words = ibm_words(col.values).astype(">u8")
            table[:, at : at + 8] = words.view(np.uint8).reshape(rows, 8)
        else:
            table[:, at : at + col.width] = _char_block(col.values, col.width, rows)
        at += col.width
    data = table.tobytes()
    parts.append(data + b" " * (-len(data) % RECORD))
    return b"".join(parts)
