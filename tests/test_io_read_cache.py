"""Reading the same XPT bytes twice parses them once (converter.io.read_cache): same result, independent copies,
changed or damaged files read again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from converter.errors import InputError
from converter.io import read_cache
from converter.io.xpt import read_xpt, write_xpt
from tests.test_io_xpt import make_frame, make_spec


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    read_cache.clear()


def test_same_bytes_are_parsed_once_and_each_caller_gets_its_own_copy(tmp_path: Path) -> None:
    first = write_xpt(make_frame(), make_spec(), tmp_path / "adsl.xpt")
    second = tmp_path / "elsewhere" / "adsl.xpt"
    second.parent.mkdir()
    shutil.copyfile(first, second)  # the same bytes under another path (a staged file renamed, a copied package)

    df1, meta1 = read_xpt(first)
    assert read_cache.stats() == {"parsed": 1, "reused": 0, "cached": 1}
    df1.loc[0, "SEX"] = "changed by the caller"
    meta1.extra["note"] = "changed by the caller"
    df2, meta2 = read_xpt(second)
    assert read_cache.stats() == {"parsed": 1, "reused": 1, "cached": 1}

    read_cache.clear()
    parsed, parsed_meta = read_xpt(second)  # what a fresh parse gives
    pd.testing.assert_frame_equal(df2, parsed, check_exact=True)
    assert df2.loc[0, "SEX"] == "F"
    assert meta2 == parsed_meta and "note" not in meta2.extra


def test_changed_bytes_are_parsed_again(tmp_path: Path) -> None:
    path = write_xpt(make_frame(), make_spec(), tmp_path / "adsl.xpt")
    assert read_xpt(path)[0]["AGE"].tolist()[0] == 34
    frame = make_frame()
    frame.loc[0, "AGE"] = 35
    write_xpt(frame, make_spec(), path)
    assert read_xpt(path)[0]["AGE"].tolist()[0] == 35
    assert read_cache.stats()["parsed"] == 2


def test_a_damaged_file_fails_every_time_and_is_not_cached(tmp_path: Path) -> None:
    path = write_xpt(make_frame(), make_spec(), tmp_path / "adsl.xpt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for _ in range(2):
        with pytest.raises(InputError) as exc:
            read_xpt(path)
        assert "adsl.xpt" in str(exc.value)
    assert read_cache.stats() == {"parsed": 0, "reused": 0, "cached": 0}


def test_files_over_the_size_limit_are_read_each_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xpt(make_frame(), make_spec(), tmp_path / "adsl.xpt")
    monkeypatch.setattr(read_cache, "MAX_FILE_BYTES", path.stat().st_size - 1)
    read_xpt(path)
    read_xpt(path)
    assert read_cache.stats() == {"parsed": 0, "reused": 0, "cached": 0}


def test_the_least_recently_used_is_dropped_past_the_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = []
    for i in range(3):
        frame = make_frame()
        frame.loc[0, "AGE"] = 40 + i
        paths.append(write_xpt(frame, make_spec(), tmp_path / f"adsl{i}.xpt"))
    monkeypatch.setattr(read_cache, "MAX_TOTAL_BYTES", 2 * paths[0].stat().st_size)
    for p in paths:
        read_xpt(p)
    assert read_cache.stats()["cached"] == 2
    read_xpt(paths[0])  # dropped: parsed again
    read_xpt(paths[2])  # kept
    assert read_cache.stats() == {"parsed": 4, "reused": 1, "cached": 2}


def test_dataset_json_is_cached_apart_from_xpt(tmp_path: Path) -> None:
    from converter.io.datasetjson import read_dataset_json, write_dataset_json

    path = write_dataset_json(make_frame(), make_spec(), tmp_path / "adsl.json")
    xpt = write_xpt(make_frame(), make_spec(), tmp_path / "adsl.xpt")
    df1, meta1 = read_dataset_json(path)
    meta1.extra["datasetJSONVersion"] = "changed by the caller"
    df2, meta2 = read_dataset_json(path)
    read_xpt(xpt)
    assert read_cache.stats() == {"parsed": 2, "reused": 1, "cached": 2}
    pd.testing.assert_frame_equal(df1, df2, check_exact=True)
    assert meta2.extra["datasetJSONVersion"] == "1.1.0"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InputError, match=r"adsl\.json"):
        read_dataset_json(path)
