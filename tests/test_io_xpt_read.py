"""The numpy reader of plain XPT v5 files gives pyreadstat's frames and metadata, and leaves every other file to
pyreadstat."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from converter.io import xpt
from converter.io.sas_formats import parse_sas_format
from converter.io.xpt_read import read_plain_v5
from converter.io.xpt_write import XportColumn, xport_bytes


def _both(path: Path) -> tuple[tuple[pd.DataFrame, xpt.DatasetMeta], tuple[pd.DataFrame, xpt.DatasetMeta]]:
    plain = xpt._read_plain(path)
    assert plain is not None, "a plain file"
    return plain, xpt._read_xpt(path)


def _same(path: Path) -> None:
    (df, meta), (ref, ref_meta) = _both(path)
    pd.testing.assert_frame_equal(df, ref, check_exact=True)
    assert meta == ref_meta


def _file(tmp_path: Path, columns: list[XportColumn], name: str = "t.xpt", label: str = "Lab") -> Path:
    path = tmp_path / name
    path.write_bytes(xport_bytes("TT", label, columns))
    return path


def _num(name: str, values: np.ndarray, fmt: str | None = None, label: str = "N") -> XportColumn:
    return XportColumn(name, label, True, 8, parse_sas_format(fmt) if fmt else None, values)


def _chr(name: str, values: list[str], width: int, label: str = "C") -> XportColumn:
    return XportColumn(name, label, False, width, None, np.array(values, dtype=object))


def test_random_ibm_words_read_as_pyreadstat_reads_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**63, 4000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 4000, dtype=np.uint64)
    special = [0, 0x2E << 56, 0x41 << 56, 0x5F << 56, 0x80 << 56, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF,
               0x0000000000000001, 0x4100000000000001, 0x2020202020202020]  # fmt: skip
    words = np.concatenate([words, np.array(special, dtype=np.uint64)])
    path = _file(tmp_path, [_num("X", np.zeros(len(words)))])
    data = bytearray(path.read_bytes())
    start = data.find(b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!") + 80
    data[start : start + 8 * len(words)] = words.astype(">u8").tobytes()
    path.write_bytes(bytes(data))
    _same(path)


@pytest.mark.parametrize("rows", [0, 1, 2, 9, 10, 11, 40])
def test_text_numbers_formats_and_blank_rows(tmp_path: Path, rows: int) -> None:
    rng = np.random.default_rng(rows)
    words = ["", "a", " lead", "x" * 12, "q;\"'<&>", "A B"]
    cols = [
        _chr("C1", [words[i % len(words)] for i in range(rows)], 12, label=""),
        _num("D", rng.normal(0, 1e5, rows), "DATE9."),
        _num("F", np.where(np.arange(rows) % 3 == 0, np.nan, rng.normal(0, 1, rows)), "8.2", label="A label"),
        _num("G", rng.normal(0, 1, rows), "BEST12."),
        _chr("E", [""] * rows, 3),
    ]
    _same(_file(tmp_path, cols))
    _same(_file(tmp_path, [_chr("C", [""] * rows, 7)], name="blank.xpt"))  # all blank: trailing rows dropped
    _same(_file(tmp_path, [_chr("C", ["" if i % 2 else "v" for i in range(rows)], 2)], name="some.xpt"))


def test_odd_widths(tmp_path: Path) -> None:
    for width in (1, 5, 79, 80, 81, 200):
        _same(_file(tmp_path, [_chr("C", ["v", "", "w" * width], width)], name=f"w{width}.xpt"))
        cols = [_chr("C", ["v", "", ""], width), _num("N", np.array([np.nan, 1.0, np.nan]))]
        _same(_file(tmp_path, cols, name=f"n{width}.xpt"))


def _namestr_edit(path: Path, offset: int, raw: bytes) -> None:
    data = bytearray(path.read_bytes())
    data[640 + offset : 640 + offset + len(raw)] = raw
    path.write_bytes(bytes(data))


def test_files_not_plain_are_left_to_pyreadstat(tmp_path: Path) -> None:
    def fresh(name: str) -> Path:
        return _file(tmp_path, [_chr("C", ["ab", "c"], 4), _num("N", np.array([1.0, 2.0]))], name=name)

    cases = {
        "short.xpt": lambda p: _namestr_edit(p, 144, struct.pack(">h", 4)),  # a number of 4 bytes
        "type.xpt": lambda p: _namestr_edit(p, 0, struct.pack(">h", 3)),
        "pos.xpt": lambda p: _namestr_edit(p, 84, struct.pack(">i", 2)),
        "name.xpt": lambda p: _namestr_edit(p, 8, b"\xe9"),
        "value.xpt": lambda p: p.write_bytes(p.read_bytes().replace(b"ab  ", b"a\x00b ")),
        "ctrl.xpt": lambda p: p.write_bytes(p.read_bytes().replace(b"ab  ", b"a\tb ")),
        "obs.xpt": lambda p: p.write_bytes(p.read_bytes().replace(b"OBS     HEADER", b"OBX     HEADER")),
    }
    for name, edit in cases.items():
        path = fresh(name)
        edit(path)
        assert read_plain_v5(path.read_bytes()) is None, name
        assert xpt._read_plain(path) is None, name
    assert read_plain_v5(b"") is None
    assert xpt._read_plain(fresh("ok.xpt")) is not None


def test_read_xpt_errors_unchanged_for_control_characters(tmp_path: Path) -> None:
    from converter.errors import InputError

    path = _file(tmp_path, [_chr("C", ["ab", "c"], 4)])
    path.write_bytes(path.read_bytes().replace(b"ab  ", b"a\x01b "))
    with pytest.raises(InputError) as info:
        xpt.read_xpt(path)
    assert "row 1" in str(info.value) and "control character" in str(info.value)


def test_define_check_reads_plain_headers_as_pyreadstat(tmp_path: Path) -> None:
    import pyreadstat

    from converter.io import define_check

    cases = [
        _file(tmp_path, [_num("A", np.array([1.0]), label=""), _chr("B", ["x"], 3)], name="a.xpt", label=""),
        _file(tmp_path, [_chr("B", ["x", ""], 30, label="Some label"), _num("N", np.zeros(2), "DATE9.")], name="b.xpt"),
    ]
    for path in cases:
        ours = define_check._xpt_header(path)
        assert isinstance(ours, define_check._XptHeader)
        _, ref = pyreadstat.read_xport(str(path), metadataonly=True)
        assert ours.column_names == ref.column_names and ours.column_labels == ref.column_labels
        assert ours.file_label == ref.file_label and ours.variable_storage_width == ref.variable_storage_width
