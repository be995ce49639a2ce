"""A SAS XPORT version 5 file of the plain layout read with numpy, giving what ``pyreadstat.read_xport`` (ReadStat
1.1's reader) gives for it; anything else is left to pyreadstat.

:func:`converter.io.xpt.read_xpt` tries :func:`read_plain_v5` first: pyreadstat's reader calls back into Python for
every value, this takes a few numpy operations per column. It answers only for a file it can vouch for, and
returns None for every other one, which pyreadstat then reads (and words any problem of) as before:

* one member: the library, member, descriptor and NAMESTR headers where they belong, 140-byte NAMESTRs, the OBS
  header right after them, at least one variable, each name unique;
* numbers of 8 bytes (type 1), text (type 2) of at least 1 byte, each variable where the one before it ends;
* names, labels, format names, the table name, the file label and every byte of every character value printable
  ASCII (so no NUL, no control character, nothing an encoding could change).

What it gives, as ReadStat: the observations are every whole row from the OBS header to the end of the file,
all-blank rows at the end dropped (padding) and all-blank rows before a non-blank one kept; text values with their
trailing blanks removed ("" for none left); a number whose last 7 bytes are zero and whose first is not is
missing (NaN), ``0x7FFFFFFF FFFFFFFF`` (either sign) is infinite, the rest are converted as ReadStat's
``xpt2ieee`` (SAS TS-140) does, truncating the at most 3 bits an IBM fraction has beyond a double's; the format as
pyreadstat spells it (name, then ``width.`` when the width is not 0, ``width.decimals`` when the decimals are not
0); names, labels and names of formats with trailing blanks removed. Tests compare the frames and the metadata
with pyreadstat's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PlainColumn", "PlainHeader", "PlainXport", "ibm_to_double", "plain_v5_header", "read_plain_v5"]

_RECORD = 80
_NAMESTR_SIZE = 140
_HEADERS = {
    0: b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!",
    3: b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!",
    4: b"HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!",
    7: b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!",
}
_OBS = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"
_LOW32 = np.uint64(0xFFFFFFFF)


@dataclass(frozen=True)
class PlainColumn:
    name: str
    label: str
    numeric: bool
    width: int
    format: str  # as ReadStat spells it ("" for none)


@dataclass(frozen=True)
class PlainXport:
    frame: pd.DataFrame  # text: str or None ("" read as None); numbers: float64
    table_name: str
    file_label: str
    columns: tuple[PlainColumn, ...]


def _printable(raw: bytes) -> bool:
    return all(32 <= c < 127 for c in raw)


def _text(raw: bytes) -> str | None:
    """The field as ReadStat converts it (trailing blanks and NULs removed), or None when it is not printable."""
    raw = raw.rstrip(b" \x00")
    return raw.decode("ascii") if _printable(raw) else None


def ibm_to_double(words: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """IBM 8-byte floats (as big-endian 64-bit words) to doubles as ReadStat reads them (see the module doc)."""
    w = np.asarray(words, dtype=np.uint64)
    first = w >> np.uint64(56)
    hi32 = w >> np.uint64(32)
    lo32 = w & _LOW32
    shift = np.where(hi32 & np.uint64(0x800000), 3, np.where(hi32 & np.uint64(0x400000), 2,
                     np.where(hi32 & np.uint64(0x200000), 1, 0))).astype(np.uint64)  # fmt: skip
    hi = ((hi32 & np.uint64(0xFFFFFF)) >> shift) & np.uint64(0xFFEFFFFF)
    lo = ((lo32 >> shift) | ((hi32 & np.uint64(7)) << (np.uint64(32) - shift))) & _LOW32
    exponent = (((first & np.uint64(0x7F)).astype(np.int64) - 65) * 4 + shift.astype(np.int64) + 1023).astype(np.uint64)
    hi = hi | (exponent << np.uint64(20)) | (hi32 & np.uint64(0x80000000))
    out: np.ndarray[Any, np.dtype[np.float64]] = ((hi << np.uint64(32)) | lo).view(np.float64).copy()
    out[w == 0] = 0.0
    infinite = ((hi32 & np.uint64(0x7FFFFFFF)) == np.uint64(0x7FFFFFFF)) & (lo32 == _LOW32)
    out[infinite] = np.where((hi32[infinite] & np.uint64(0x80000000)) != 0, -np.inf, np.inf)
    out[(first != 0) & ((w & np.uint64((1 << 56) - 1)) == 0)] = np.nan
    return out


def _char_values(block: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, np.dtype[Any]]:
    rows, width = block.shape
    if rows == 0:
        return np.empty(0, dtype=object)
    kept = block != 32
    lengths = width - np.argmax(kept[:, ::-1], axis=1)
    lengths[~kept.any(axis=1)] = 0
    trimmed = block.copy()
    trimmed[np.arange(width)[None, :] >= lengths[:, None]] = 0
    values = trimmed.view(f"S{width}").ravel().astype(f"U{width}").astype(object)
    values[lengths == 0] = None
    return values


def _columns(data: bytes, count: int) -> list[PlainColumn] | None:
    out: list[PlainColumn] = []
    pos = 0
    for i in range(count):
        off = 8 * _RECORD + i * _NAMESTR_SIZE
        ntype, _hfun, width, _num = struct.unpack_from(">hhhh", data, off)
        nfl, nfd = struct.unpack_from(">hh", data, off + 64)
        npos = struct.unpack_from(">i", data, off + 84)[0]
        name, label = _text(data[off + 8 : off + 16]), _text(data[off + 16 : off + 56])
        fmt_name = _text(data[off + 56 : off + 64].split(b"\x00", 1)[0])
        if name is None or label is None or fmt_name is None or not name or npos != pos:
            return None
        if ntype == 1 and width == 8:
            numeric = True
        elif ntype == 2 and width >= 1:
            numeric = False
        else:
            return None
        if nfd and not nfl:
            return None  # decimals without a width: not seen from pyreadstat
        fmt = f"{fmt_name}{nfl}.{nfd}" if nfd else f"{fmt_name}{nfl}." if nfl else fmt_name
        out.append(PlainColumn(name, label, numeric, width, fmt))
        pos += width
    return out


@dataclass(frozen=True)
class PlainHeader:
    table_name: str
    file_label: str
    columns: tuple[PlainColumn, ...]
    data_start: int  # offset of the first observation


def plain_v5_header(data: bytes) -> PlainHeader | None:
    """The header of a file whose layout is the plain one (module doc; the values are not looked at), else None."""
    if len(data) < 9 * _RECORD or any(data[i * _RECORD : i * _RECORD + 48] != h for i, h in _HEADERS.items()):
        return None
    try:
        count = int(data[7 * _RECORD + 54 : 7 * _RECORD + 58])
    except ValueError:
        return None
    obs = 8 * _RECORD + -(-count * _NAMESTR_SIZE // _RECORD) * _RECORD
    if count < 1 or data[obs : obs + 48] != _OBS or len(data) < obs + _RECORD:
        return None
    table_name = _text(data[5 * _RECORD + 8 : 5 * _RECORD + 16])
    file_label = _text(data[6 * _RECORD + 32 : 6 * _RECORD + 72])
    columns = _columns(data, count)
    if table_name is None or file_label is None or columns is None:
        return None
    if len({c.name for c in columns}) != len(columns):
        return None
    return PlainHeader(table_name, file_label, tuple(columns), obs + _RECORD)


def read_plain_v5(data: bytes) -> PlainXport | None:
    """The file's frame and metadata when its layout is the plain one (module doc), else None."""
    head = plain_v5_header(data)
    if head is None:
        return None
    columns = head.columns
    row_length = sum(c.width for c in columns)
    body = np.frombuffer(data, dtype=np.uint8, offset=head.data_start)
    rows = len(body) // row_length
    table = body[: rows * row_length].reshape(rows, row_length)
    filled = np.flatnonzero((table != 32).any(axis=1))
    table = table[: filled[-1] + 1 if len(filled) else 0]
    frame: dict[str, Any] = {}
    at = 0
    for col in columns:
        block = table[:, at : at + col.width]
        if col.numeric:
            words = np.ascontiguousarray(block).view(">u8").ravel().astype(np.uint64)
            frame[col.name] = pd.Series(ibm_to_double(words), dtype="float64", name=col.name)
        else:
            if ((block < 32) | (block > 126)).any():
                return None
            frame[col.name] = pd.Series(_char_values(np.ascontiguousarray(block)), dtype=object, name=col.name)
        at += col.width
    return PlainXport(pd.DataFrame(frame, index=pd.RangeIndex(len(table))), head.table_name, head.file_label, columns)
