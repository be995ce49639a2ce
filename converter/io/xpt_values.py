"""Control characters in an XPT file's character values, found in the file's own bytes.

pyreadstat ends a character value at its first NUL (``AB<NUL>CD`` is read as ``AB``), so a value that would be
silently cut is only visible in the raw observations. :func:`control_problems` locates every character
variable from the NAMESTR records of a version 5 transport file, takes its bytes from the observation records
(one numpy slice per variable, each byte as latin-1, so C1 bytes 0x80-0x9F count as controls too) and applies
the project's one rule (:mod:`converter.text`; tab is refused here: XPT v5 values are printable ASCII).
Trailing NUL and blank bytes are padding, not content. A column is looked at row by row only when its joined
bytes hold a control character.

Labels (of the dataset and of each variable) are checked on the text pyreadstat returns. A version 8 file is
checked on the values pyreadstat returns (its layout is not parsed here).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd

from converter.errors import Problem, problem
from converter.text import CONTROL_RULE, control_mask, escape_controls, first_control

__all__ = ["MAX_LISTED", "control_problems", "label_problems", "value_problems"]

#: values listed per variable before the rest are counted
MAX_LISTED = 20
_NAMESTR = b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!"
_OBS = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"
_NAMESTR_SIZE = 140


def _message(value: str) -> str:
    at = first_control(value) or 0
    return f"control character {escape_controls(value[at])} at position {at + 1}: refused in an XPT value"


def _column_problems(file: str, name: str, values: pd.Series) -> list[Problem]:
    hits = np.flatnonzero(control_mask(values))
    out = [
        problem(file, f"row {i + 1}", name, values.iat[i], CONTROL_RULE, _message(str(values.iat[i])))
        for i in hits[:MAX_LISTED].tolist()
    ]
    if len(hits) > MAX_LISTED:
        out.append(
            problem(file, "", name, "", CONTROL_RULE, f"{len(hits) - MAX_LISTED} more values with control characters")
        )
    return out


def control_problems(path: Path) -> list[Problem] | None:
    """Every character value of the first member of a v5 XPT file holding a control character, from the raw
    bytes of its observations (the last 80-byte record's blank padding is no observation); None when the
    layout is not a v5 one this reader knows."""
    data = path.read_bytes()
    start = data.find(_NAMESTR)
    obs = data.find(_OBS, max(start, 0))
    if start < 0 or obs < 0:
        return None
    try:
        count = int(data[start + 54 : start + 58])
    except ValueError:
        return None
    file = str(path)
    variables: list[tuple[str, int, int]] = []
    row_length = 0
    for i in range(count):
        off = start + 80 + i * _NAMESTR_SIZE
        if off + _NAMESTR_SIZE > obs:
            return None
        ntype, _hash, width = struct.unpack_from(">hhh", data, off)
        name = data[off + 8 : off + 16].decode("latin-1").rstrip()
        pos = struct.unpack_from(">i", data, off + 84)[0]
        row_length = max(row_length, pos + width)
        if ntype == 2:
            variables.append((name, pos, width))
    body = data[obs + 80 :]
    if row_length <= 0:
        return None
    rows = len(body) // row_length
    while rows and body[(rows - 1) * row_length : rows * row_length].strip(b" ") == b"":
        rows -= 1
    if rows == 0:
        return []
    table = np.frombuffer(body, dtype=np.uint8, count=rows * row_length).reshape(rows, row_length)
    out: list[Problem] = []
    for name, pos, width in variables:
        block = np.ascontiguousarray(table[:, pos : pos + width])
        text = block.tobytes().decode("latin-1")
        if first_control(text) is None:
            continue
        values = pd.Series([text[k : k + width].rstrip(" \x00") for k in range(0, len(text), width)], dtype=object)
        out += _column_problems(file, name, values)
    return out


def value_problems(file: str, frame: pd.DataFrame) -> list[Problem]:
    """Control characters in the character columns of a frame as read (when the raw layout is not known)."""
    out: list[Problem] = []
    for name in frame.columns:
        if frame[name].dtype == object:
            out += _column_problems(file, str(name), frame[name])
    return out


def label_problems(file: str, labels: dict[str, str]) -> list[Problem]:
    """Control characters in labels: ``{"": dataset label, variable name: variable label}``."""
    return [
        problem(file, "label", name, label, CONTROL_RULE, "control character in a label: " + _message(label))
        for name, label in labels.items()
        if label and first_control(label) is not None
    ]
