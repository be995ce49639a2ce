"""The Spark engine runs the same per-subject functions and gives exactly the local engine's outputs: the SDTM
datasets of ``inoconv sdtm --engine spark``, and the whole chain (SDTM, ADaM, FHIR NDJSON, accounting) of
``inoconv stream --engine spark`` against ``inoconv stream`` on the example and on 10,000 simulated subjects.

One local Spark session (``local[2]``) serves the module; each cohort is simulated and written once."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mini_records import mini_records

from converter.sdtm.pipeline import SdtmResult, records_to_sdtm


def _example_rows() -> int:
    from converter.paths import example_study_dir

    return sum(max(len(p.read_text(encoding="utf-8").splitlines()) - 1, 0) for p in (example_study_dir() / "csv").glob("*.csv"))


EXAMPLE_ROWS = _example_rows()  # every data row of the example's CSV files (the ODM holds the same records)

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


def test_local_workers_run_the_drivers_interpreter(spark: Any) -> None:
    """Not the ``python3`` on PATH (a venv that is not activated): this interpreter, unless PYSPARK_PYTHON says."""
    import sys

    from converter.engine.spark import worker_python

    assert worker_python() == os.environ.get("PYSPARK_PYTHON", sys.executable)
    assert spark.sparkContext.pythonExec == worker_python()
    ran = spark.sparkContext.parallelize([0], 1).map(lambda _: sys.executable).collect()
    assert ran == [os.path.realpath(worker_python())] or ran == [worker_python()]


@pytest.mark.parametrize("n_parts", [1, 2, 7, 64])
def test_spark_partition_column_is_the_python_partition_function(spark: Any, n_parts: int) -> None:
    """Spark keys rows by its SQL crc32 (it must run in the JVM); on 5,000 identifiers (ASCII, accented,
    CJK, emoji, empty, long) it gives every subject the partition the local engine gives it."""
    import random

    import numpy as np

    from converter.engine.spark import part_column
    from converter.records.partitions import partition_of

    rng = random.Random(20261202)
    alphabet = "0123456789ABCDEFabc-_ éüßÅ漢字🙂"
    ids = [f"{i:04d}" for i in range(2000)] + ["", "x" * 300, "NCT01371630-0001", "Zoë", "患者-7"]
    ids += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24))) for _ in range(2995)]
    sdf = spark.createDataFrame([(s,) for s in ids], "SUBJID string")
    got = sdf.select("SUBJID", part_column(n_parts).alias("p")).toPandas()
    want = partition_of(got["SUBJID"], n_parts)
    assert len(got) == len(ids)
    assert np.array_equal(got["p"].to_numpy(dtype=np.int64), want)


def _same(local: SdtmResult, other: SdtmResult) -> None:
    assert list(local.datasets) == list(other.datasets)
    for name, df in local.datasets.items():
        pd.testing.assert_frame_equal(df, other.datasets[name], check_dtype=True, obj=name)
    assert local.accounting.rows() == other.accounting.rows()


def _spark_sdtm(spark: Any, records: dict[str, pd.DataFrame], parts: int) -> SdtmResult:
    from converter.engine.spark import records_to_long
    from converter.engine.spark_sdtm import collect_sdtm, sdtm_long

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
    from converter.records.sources import write_records
    from converter.stages import run_sdtm

    write_records(mini_records(), tmp_path / "csv", "csv")
    local = run_sdtm(tmp_path / "csv", tmp_path / "local", echo=lambda s: None)
    spark_counts = run_sdtm(tmp_path / "csv", tmp_path / "spark", echo=lambda s: None, engine="spark", partitions=2,
                            parquet=tmp_path / "parquet")  # fmt: skip
    assert local == spark_counts
    for f in sorted((tmp_path / "local").glob("*.json")):
        assert f.read_bytes().split(b'"rows"')[1] == (tmp_path / "spark" / f.name).read_bytes().split(b'"rows"')[1]
    assert (tmp_path / "parquet" / "DM" / "part-0.parquet").exists()


# --- the whole chain: inoconv stream --engine spark against inoconv stream --------------------------------------
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "nct01371630"
QUIET = {"echo": lambda _m: None}


def _parts(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(f) for f in sorted(folder.glob("part-*.parquet"))], ignore_index=True)


def _ndjson_digest(folder: Path) -> dict[str, tuple[int, int]]:
    """Per resource type: lines and an order-free digest of them (the files are cut by partition, and large)."""
    out: dict[str, tuple[int, int]] = {}
    for f in folder.glob("*.ndjson"):
        rtype = f.name.split(".", 1)[0]
        n, total = out.get(rtype, (0, 0))
        with f.open("rb") as fh:
            for line in fh:
                n += 1
                total = (total + int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "big")) % (1 << 64)
        out[rtype] = (n, total)
    return out


def _keys() -> dict[str, dict[str, list[str]]]:
    from converter.adam.pipeline import load_adam_specs
    from converter.sdtm.pipeline import load_sdtm_specs

    stages = {"sdtm": load_sdtm_specs()[0], "adam": load_adam_specs()[0]}
    return {stage: {n: list(s.keys) for n, s in specs.items()} for stage, specs in stages.items()}


def _same_outputs(local: Path, spark: Path) -> None:
    """Both engines' output folders hold the same rows, resources, accounting and counts (cut into other parts)."""
    keys = _keys()
    for stage in ("sdtm", "adam"):
        names = sorted(p.name for p in (local / stage).iterdir())
        assert names == sorted(p.name for p in (spark / stage).iterdir()), stage
        for name in names:
            exp, got = _parts(local / stage / name), _parts(spark / stage / name)
            cols = list(exp.columns)
            assert list(got.columns) == cols, name
            by = [k for k in keys[stage].get(name, []) if k in cols] or cols
            exp = exp.sort_values(by, kind="mergesort").reset_index(drop=True)
            got = got.sort_values(by, kind="mergesort").reset_index(drop=True)
            if not got.equals(exp):  # fast (vectorised); the assertion says where, and allows other dtypes
                pd.testing.assert_frame_equal(got, exp, check_dtype=False, obj=f"{stage}/{name}")
            for col in cols:  # integers stay integers, text stays text
                assert got[col].dtype.kind == exp[col].dtype.kind or exp[col].isna().all(), (name, col)
    nd = Path("fhir") / "ndjson"
    assert _ndjson_digest(spark / nd) == _ndjson_digest(local / nd)
    manifests = sorted(str(m.relative_to(local)) for m in (local / "fhir").rglob("manifest.json"))
    assert manifests == sorted(str(m.relative_to(spark)) for m in (spark / "fhir").rglob("manifest.json"))
    for name in manifests:  # the Bulk Data manifest lists exactly the NDJSON files written
        listed = {o["url"] for o in json.loads((spark / name).read_text())["output"]}
        assert listed == {str(f.relative_to((spark / name).parent)) for f in (spark / nd).glob("*.ndjson")}
    assert (spark / "accounting.csv").read_text() == (local / "accounting.csv").read_text()
    assert (spark / "validate").exists() == (local / "validate").exists()
    if (local / "validate").exists():  # the conformance findings, sorted by the writer
        found = Path("validate") / "findings.json"
        assert (spark / found).read_text() == (local / found).read_text()
    exp_stats, got_stats = (json.loads((d / "stream.json").read_text()) for d in (local, spark))
    for key in ("subjects", "source_records", "rejected_records", "sdtm_rows", "adam_rows", "fhir_resources",
                "adam_check_failures", "fhir_problems", "conformance_findings", "warnings"):  # fmt: skip
        assert got_stats[key] == exp_stats[key], key
    assert got_stats["engine"] == "spark"


@pytest.fixture(scope="module")
def example_local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converter.engine.stream import run_stream

    out = tmp_path_factory.mktemp("example") / "local"
    run_stream(EXAMPLE / "csv", out, workers=2, subjects_per_partition=17, **QUIET)
    return out


@pytest.mark.parametrize(("source", "reader"), [("csv", "files"), ("csv", "spark"), ("odm/nct01371630.xml", "files")],
                         ids=["csv-files", "csv-spark-reader", "odm"])  # fmt: skip
def test_spark_chain_equals_local_on_the_example(spark: Any, example_local: Path, source: str, reader: str,
                                                 tmp_path: Path) -> None:  # fmt: skip
    """CSV read by the tasks themselves (the default) or by Spark's CSV reader and a shuffle; ODM on the driver."""
    from converter.engine.spark import run_stream_spark

    rep = run_stream_spark(spark, EXAMPLE / source, tmp_path / "spark", partitions=3, reader=reader, **QUIET)
    assert rep.partitions == 3 and rep.subjects == 59
    assert rep.records == EXAMPLE_ROWS and rep.rejected == 0  # every data row of the example CSV files
    assert not rep.adam_checks and not rep.fhir_problems
    assert sorted(p.name for p in (tmp_path / "spark" / "sdtm" / "DM").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"
    ]  # fmt: skip
    _same_outputs(example_local, tmp_path / "spark")


@pytest.mark.parametrize("reader", ["files", "spark"])
def test_spark_chain_reports_bad_input_like_the_local_engine(spark: Any, tmp_path: Path, reader: str) -> None:
    """The same problems as the local engine; read by the tasks (``files``) even the same rows and messages."""
    from converter.engine.spark import run_stream_spark
    from converter.engine.stream import run_stream
    from converter.errors import InputError

    src = tmp_path / "csv"
    shutil.copytree(EXAMPLE / "csv", src)
    ae = pd.read_csv(src / "AE.csv", dtype=str, keep_default_na=False)
    ae.loc[2, "AEGRADE"] = "9"  # a grade outside the codelist
    ae.loc[len(ae) - 2, "AESTDT"] = "2016-13-01"  # an impossible date, in another subject
    ae.to_csv(src / "AE.csv", index=False)
    lab = (src / "LAB.csv").read_text().splitlines()
    lab.append(lab[-1])  # a duplicated record
    (src / "LAB.csv").write_text("\n".join(lab) + "\n")
    out = tmp_path / "spark"
    with pytest.raises(InputError) as local:
        run_stream(src, tmp_path / "local", workers=1, subjects_per_partition=20, **QUIET)
    with pytest.raises(InputError) as remote:
        run_stream_spark(spark, src, out, partitions=2, reader=reader, **QUIET)
    where = {(p.file, p.field, p.rule) for p in local.value.problems}
    assert {(p.file, p.field, p.rule) for p in remote.value.problems} == where
    assert "duplicate-key" in {p.rule for p in remote.value.problems} and len(where) >= 3, where
    if reader == "files":  # the local engine's reader in the tasks: rows and messages too
        assert sorted(map(str, remote.value.problems)) == sorted(map(str, local.value.problems))
    assert not out.exists()  # nothing partial is left behind
    # a wrong header: both engines stop at the headers, before any partition, with the same problems
    dm = pd.read_csv(src / "DEMOG.csv", dtype=str, keep_default_na=False)
    dm.drop(columns=[dm.columns[-1]]).assign(EXTRA="x").to_csv(src / "DEMOG.csv", index=False)
    with pytest.raises(InputError) as local:
        run_stream(src, tmp_path / "local", workers=1, subjects_per_partition=20, **QUIET)
    with pytest.raises(InputError) as remote:
        run_stream_spark(spark, src, out, partitions=2, reader=reader, **QUIET)
    where = {(p.file, p.field, p.rule) for p in local.value.problems}
    assert {(p.file, p.field, p.rule) for p in remote.value.problems} == where
    assert {p.rule for p in remote.value.problems} == {"unknown-column", "missing-column"}
    assert not out.exists()
    if reader == "files":  # a byte that is not UTF-8 in a record: found while the tasks cut the file, same line
        shutil.copy(EXAMPLE / "csv" / "DEMOG.csv", src / "DEMOG.csv")
        raw = (src / "CONMED.csv").read_bytes().splitlines(keepends=True)
        raw[3] = raw[3].replace(b",", b",\xe9", 1)
        (src / "CONMED.csv").write_bytes(b"".join(raw))
        with pytest.raises(InputError) as local:
            run_stream(src, tmp_path / "local", workers=1, subjects_per_partition=20, **QUIET)
        with pytest.raises(InputError) as remote:
            run_stream_spark(spark, src, out, partitions=2, reader=reader, **QUIET)
        assert "encoding" in {p.rule for p in remote.value.problems}
        assert sorted(map(str, remote.value.problems)) == sorted(map(str, local.value.problems))
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".spark")]


def _cohort(tmp_path_factory: pytest.TempPathFactory, n: int, seed: int) -> Path:
    from converter.records.sources import write_records

    src = tmp_path_factory.mktemp(f"cohort{n}") / "csv"
    write_records(_simulate().simulate(n, seed=seed), src, "csv")
    return src


@pytest.fixture(scope="module")
def cohort_1000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cohort(tmp_path_factory, 1_000, seed=7)


@pytest.fixture(scope="module")
def cohort_10000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cohort(tmp_path_factory, 10_000, seed=11)


def _chain_on_both(spark: Any, src: Path, tmp: Path, subjects: int, full: bool) -> None:
    from converter.engine.spark import run_stream_spark
    from converter.engine.stream import run_stream

    opts: dict[str, Any] = {"fhir": full, "rules": full, **QUIET}
    local = run_stream(src, tmp / "local", workers=2, subjects_per_partition=subjects // 4, **opts)
    # the default partition count: one per 1/5 of the subjects, rounded up to whole waves of 2 tasks -> 6
    rep = run_stream_spark(spark, src, tmp / "spark", subjects_per_partition=subjects // 5, **opts)
    assert (local.partitions, rep.partitions, rep.subjects) == (4, 6, subjects)
    assert rep.records == local.records and rep.records > 70 * subjects
    _same_outputs(tmp / "local", tmp / "spark")


def test_spark_chain_equals_local_on_1000_subjects(spark: Any, cohort_1000: Path, tmp_path: Path) -> None:
    """The whole chain, FHIR resources and conformance rules included, on a simulated cohort."""
    _chain_on_both(spark, cohort_1000, tmp_path, 1_000, full=True)


def test_spark_chain_equals_local_on_10000_subjects(spark: Any, cohort_10000: Path, tmp_path: Path) -> None:
    """Records -> SDTM -> ADaM on 10,000 subjects. The FHIR resources and the conformance rules are compared on
    the example and on 1,000 subjects, and on 10,000 opt-in: there they take ~150 s of CPU per engine."""
    _chain_on_both(spark, cohort_10000, tmp_path, 10_000, full=False)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("INOCONV_SLOW_TESTS"),
    reason="FHIR and rules on 10,000 subjects, on both engines: ~3 minutes on 2 cores; INOCONV_SLOW_TESTS=1",
)
def test_spark_chain_with_fhir_equals_local_on_10000_subjects(spark: Any, cohort_10000: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    _chain_on_both(spark, cohort_10000, tmp_path, 10_000, full=True)


def test_spark_job_entry_point_uses_the_running_session(spark: Any, tmp_path: Path, capsys: Any) -> None:
    """``main`` is what a cluster job calls (``spark-submit job.py SOURCE --out DIR``): it runs in the job's
    session and leaves it running; bad input exits 2 with the problems."""
    from converter.engine.spark import main

    assert main([str(EXAMPLE / "csv"), "--out", str(tmp_path / "o"), "--partitions", "2", "--no-fhir"]) == 0
    stats = json.loads((tmp_path / "o" / "stream.json").read_text())
    assert stats["engine"] == "spark" and stats["subjects"] == 59 and stats["partitions"] == 2
    assert '"subjects": 59' in capsys.readouterr().out
    assert spark.sparkContext._jsc is not None  # still running
    assert main([str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 2
    assert not (tmp_path / "o2").exists()


def test_spark_job_entry_point_seals_with_the_tasks_hashes(spark: Any, tmp_path: Path, monkeypatch: Any) -> None:
    """``main`` hands the output folder the NDJSON parts' hashes, taken by the tasks as they wrote them, as ``inoconv
    stream`` does: the manifest does not read the parts back (at 100,000 subjects 22 GB, from disk)."""
    import converter.io.outdir as outdir
    from converter.engine.spark import main

    seal, given = outdir.seal_folder, {}

    def recording(folder: Path, **kw: Any) -> Path:
        given.update(kw.get("written") or {})
        return seal(folder, **kw)

    monkeypatch.setattr(outdir, "seal_folder", recording)
    assert main([str(EXAMPLE / "csv"), "--out", str(tmp_path / "o"), "--partitions", "2"]) in (0, 1)
    out = tmp_path / "o"
    numbered = (out / "fhir" / "ndjson").glob("*.[0-9][0-9][0-9][0-9][0-9].ndjson")
    parts = {p.relative_to(out).as_posix() for p in numbered}
    assert parts and set(given) == parts  # every partition's NDJSON file, and only those
    listed = {f["path"] for f in json.loads((out / "manifest.json").read_text())["outputs"]}
    assert parts <= listed
