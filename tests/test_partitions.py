"""Converting subjects partition by partition gives exactly the datasets of converting them all at once."""

from __future__ import annotations

import pandas as pd
import pytest
from mini_records import mini_records

from converter.records.partitions import partition_of, split_records
from converter.sdtm.pipeline import records_to_sdtm


def test_partition_is_stable_and_covers_every_row() -> None:
    ids = pd.Series(["1001", "1002", "1003", "1001"])
    p = partition_of(ids, 4)
    assert p[0] == p[3] and ((p >= 0) & (p < 4)).all()
    assert (partition_of(ids, 4) == p).all()
    recs = mini_records()
    parts = split_records(recs, 3)
    for form, df in recs.items():
        assert sum(len(part[form]) for part in parts) == len(df)


@pytest.mark.parametrize("n_parts", [2, 5])
def test_partitioned_sdtm_equals_whole(n_parts: int) -> None:
    whole = records_to_sdtm(mini_records())
    parted = records_to_sdtm(mini_records(), partitions=n_parts)
    assert list(whole.datasets) == list(parted.datasets)
    for name, df in whole.datasets.items():
        pd.testing.assert_frame_equal(df, parted.datasets[name], check_dtype=True)
    assert whole.accounting.rows() == parted.accounting.rows()


def test_partition_number_is_crc32_of_the_utf8_text() -> None:
    """CRC-32's standard check value (0xCBF43926 for '123456789'), and the same number for a key however it
    arrives (``partition_of`` over a Series, one key at a time as the FHIR reader's router asks)."""
    from converter.records.partitions import partition_number

    assert partition_number("123456789", 1 << 32) == 0xCBF43926
    assert partition_number("123456789", 1000) == 0xCBF43926 % 1000
    assert partition_number("anything", 1) == 0
    ids = pd.Series(["0001", "Zoë", "患者-7", "", "Patient/42"])
    assert partition_of(ids, 7).tolist() == [partition_number(s, 7) for s in ids]
