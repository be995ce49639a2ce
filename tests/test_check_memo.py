"""Checks remembered per process under the contents they read (converter.io.check_memo): ``inoconv run`` writes a
package, verifies it, and validates the same bytes later in the same process; the second run of a check is a
lookup. A changed byte anywhere the check reads gives another key: the check runs again and its finding appears,
the same findings as a process that never saw the package (the memo cleared)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mini_records import mini_records
from test_validate_folder import write

from converter.io import check_memo, read_cache
from converter.io.define_check import crosscheck_define
from converter.io.xpt import read_xpt
from converter.validate.findings import Finding
from converter.validate.folder import validate_folder


@pytest.fixture(scope="module")
def sdtm():
    from converter.sdtm.pipeline import records_to_sdtm

    return records_to_sdtm(mini_records())


def _validate(folder: Path) -> list[Finding]:
    return validate_folder(folder, families=("sdtm",), roundtrip=False)


def _cold(folder: Path) -> list[Finding]:
    """What a process that never wrote nor checked the package finds."""
    check_memo.clear()
    read_cache.clear()
    return _validate(folder)


def _change_one_byte(path: Path, old: bytes, new: bytes, after: bytes = b"") -> None:
    assert len(old) == len(new) and old != new
    data = path.read_bytes()
    at = data.index(old, data.index(after) if after else 0)
    changed = data[:at] + new + data[at + len(old) :]
    assert sum(a != b for a, b in zip(data, changed, strict=True)) == 1
    path.write_bytes(changed)


def test_validate_after_write_looks_the_checks_up(sdtm, tmp_path: Path) -> None:
    check_memo.clear()
    folder = write(sdtm, tmp_path / "sdtm")  # the verification remembers define.xml, the cross-check, XPT == JSON
    before = check_memo.stats()["reused"]
    warm = _validate(folder)
    assert check_memo.stats()["reused"] - before >= 2 * len(sdtm.datasets)  # a cross-check and a pair per dataset
    assert warm == _cold(folder)
    assert not [f for f in warm if f.rule_id.startswith(("INO-DEFINE", "INO-PKG-005"))]


@pytest.mark.parametrize(
    ("file", "old", "new", "after", "rule", "says"),
    [
        # a value of the Dataset-JSON: XPT == JSON no longer known, the values compared again
        ("dm.json", b',"F",', b',"U",', b'"rows"', "INO-PKG-005", "value(s) differ"),
        # define.xml: AGE's Length, the cross-check (and the XSD check) again
        (
            "define.xml",
            b'Length="8" SASFieldName="AGE"',
            b'Length="1" SASFieldName="AGE"',
            b"",
            "INO-DEFINE-002",
            "Length 1 is shorter",
        ),
        # the XPT's dataset label: the def:leaf check and the pair's labels again
        ("dm.xpt", b"Demographics", b"Demographicz", b"", "INO-DEFINE-002", "label 'Demographicz' differs"),
        ("dm.xpt", b"Demographics", b"Demographicz", b"", "INO-PKG-005", "dataset label"),
    ],
)
def test_a_changed_byte_runs_the_check_again(sdtm, tmp_path: Path, file, old, new, after, rule, says) -> None:
    check_memo.clear()
    folder = write(sdtm, tmp_path / "sdtm")
    _change_one_byte(folder / file, old, new, after)
    warm = _validate(folder)
    assert [f for f in warm if f.rule_id == rule and f.dataset == "DM" and says in f.message], warm
    assert warm == _cold(folder)


def test_the_spec_is_part_of_the_key(sdtm, tmp_path: Path) -> None:
    folder = write(sdtm, tmp_path / "sdtm")
    spec = sdtm.specs["DM"]
    data = {"DM": (read_xpt(folder / "dm.xpt")[0], spec)}
    sources = {"DM": folder / "dm.xpt"}
    assert not [p for p in crosscheck_define(folder / "define.xml", data, sources) if p.startswith("DM.")]
    sex = next(v for v in spec.variables if v.name == "SEX")
    other = dataclasses.replace(spec, variables=tuple(dataclasses.replace(v, codelist="NY") if v is sex else v
                                                      for v in spec.variables))  # fmt: skip
    data = {"DM": (read_xpt(folder / "dm.xpt")[0], other)}
    want = crosscheck_define(folder / "define.xml", data)  # no sources: computed, never remembered
    assert "DM.SEX: the spec names codelist NY but define.xml references CL.SEX" in want
    assert crosscheck_define(folder / "define.xml", data, sources) == want


def test_frames_exactly_equal_have_no_value_to_compare() -> None:
    """compare_pair's ``known_equal`` skips the value comparison only: on frames that write_package's check calls
    exactly equal (pandas' assert_frame_equal, check_exact), the comparison finds nothing, missing values of either
    kind, -0.0, infinities and mixed objects included."""
    import numpy as np
    import pandas as pd

    from converter.validate.common import DatasetInfo
    from converter.validate.pairs import compare_pair

    rng = np.random.default_rng(15)
    pools = {
        "text": ["A", "b", "", " x", None, np.nan, "ÄÖ"],
        "num": [0.0, -0.0, 1.5, np.nan, np.inf, -np.inf, 1e-300, 3.0],
        "obj": [1, 1.0, "1", None, np.nan, True],
    }
    info = DatasetInfo(name="XX", label="L")

    def twin(v: object) -> object:
        """Another value pandas may call the same: the other missing, the other zero, 1 as float."""
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return np.nan if v is None else None
        return {0.0: -0.0, 1: 1.0}.get(v, v) if not isinstance(v, (bool, str)) else v

    checked = twins = 0
    for _ in range(300):
        n = int(rng.integers(0, 6))
        cols = {}
        for name, pool in pools.items():
            a = [pool[i] for i in rng.integers(0, len(pool), n)]
            b = [twin(v) if rng.random() < 0.5 else pool[int(rng.integers(len(pool)))] if rng.random() < 0.1 else v
                 for v in a]  # fmt: skip
            dtype = "float64" if name == "num" else object
            cols[name] = (pd.Series(a, dtype=dtype), pd.Series(b, dtype=dtype))
        x = pd.DataFrame({k: v[0] for k, v in cols.items()})
        j = pd.DataFrame({k: v[1] for k, v in cols.items()})
        try:  # write_package's check (converter.io.package._same)
            pd.testing.assert_frame_equal(x, j, check_exact=True)
        except AssertionError:
            continue
        checked += 1
        twins += any(repr(a) != repr(b) for c in x.columns for a, b in zip(x[c], j[c], strict=True))
        assert compare_pair("XX", (x, info), (j, info), "xx.json") == []
    assert checked >= 30 and twins >= 10
