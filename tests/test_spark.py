"""The Spark engine runs the same per-subject functions and gives exactly the local engine's datasets."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from mini_records import mini_records

from converter.sdtm.pipeline import SdtmResult, records_to_sdtm

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed (extra [spark])"),
    pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime for Spark"),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from converter.engine.spark import local_session

    session = local_session("inoconv-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _same(local: SdtmResult, other: SdtmResult) -> None:
    assert list(local.datasets) == list(other.datasets)
    for name, df in local.datasets.items():
        pd.testing.assert_frame_equal(df, other.datasets[name], check_dtype=True, obj=name)
    assert local.accounting.rows() == other.accounting.rows()


def _spark_sdtm(spark: Any, records: dict[str, pd.DataFrame], parts: int) -> SdtmResult:
    from converter.engine.spark import collect_sdtm, records_to_long, sdtm_long

    return collect_sdtm(sdtm_long(records_to_long(spark, records), parts))


def test_spark_equals_local_on_small_records(spark: Any) -> None:
    recs = mini_records()
    _same(records_to_sdtm(recs), _spark_sdtm(spark, recs, 3))


def test_spark_reports_record_problems(spark: Any) -> None:
    from converter.errors import InputError

    recs = mini_records()
    recs["AE"] = pd.concat([recs["AE"], recs["AE"].iloc[:1]], ignore_index=True)  # duplicate key
    with pytest.raises(InputError) as exc:
        _spark_sdtm(spark, recs, 2)
    assert any(p.rule == "duplicate-key" and p.field for p in exc.value.problems)


def _simulate() -> Any:
    sim = pytest.importorskip("converter.records.simulate")
    if not hasattr(sim, "simulate"):
        pytest.skip("simulator not available")
    return sim


def test_spark_equals_local_on_example_cohort(spark: Any) -> None:
    sim = _simulate()
    recs = sim.simulate(59)
    _same(records_to_sdtm(recs), _spark_sdtm(spark, recs, 4))


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("INOCONV_SLOW_TESTS"),
    reason="10,000 subjects on local Spark take ~100 s on 2 cores; set INOCONV_SLOW_TESTS=1 (kept out of the 10-minute CI)",
)
def test_spark_equals_local_on_10000_subjects(spark: Any) -> None:
    sim = _simulate()
    recs = sim.simulate(10_000, seed=11)
    _same(records_to_sdtm(recs, partitions=8), _spark_sdtm(spark, recs, 8))


def test_cli_sdtm_engine_spark_reads_csv_with_spark(tmp_path: Any) -> None:
    from converter.records.io import write_records
    from converter.stages import run_sdtm

    write_records(mini_records(), tmp_path / "csv", "csv")
    local = run_sdtm(tmp_path / "csv", tmp_path / "local", echo=lambda s: None)
    spark_counts = run_sdtm(tmp_path / "csv", tmp_path / "spark", echo=lambda s: None, engine="spark", partitions=2,
                            parquet=tmp_path / "parquet")  # fmt: skip
    assert local == spark_counts
    for f in sorted((tmp_path / "local").glob("*.json")):
        assert f.read_bytes().split(b'"rows"')[1] == (tmp_path / "spark" / f.name).read_bytes().split(b'"rows"')[1]
    assert (tmp_path / "parquet" / "DM" / "part-0.parquet").exists()
