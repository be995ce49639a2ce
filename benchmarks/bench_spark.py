"""Spark (``local[2]``) against the local engine on the whole chain, and Spark's Python worker memory per partition.

    python benchmarks/bench_spark.py pair SRC [--partitions P] [--reader files|spark] [--rounds R]
    python benchmarks/bench_spark.py memory SRC P1 [P2 ...]

``pair`` runs ``python -m converter.engine.spark`` and ``inoconv stream`` on the same CSV folder (made by
``inoconv simulate --n N --seed 11 --format csv --out SRC``), interleaved, with the same partitions, and prints
wall and CPU of every process (the input read into the page cache before each): ``/usr/bin/time``-like rusage of the command plus, for Spark, ``jvm_cpu_seconds``
(the JVM and its Python workers, which the driver does not wait for), and the load average before and after (the
machine is shared: compare CPU and ratios from the same minutes), then compares the two output folders byte for byte
(every file but stream.json; the manifests but for the command line, time and folder they name). ``memory`` converts SRC once per partition count
in one session with ``spark.python.worker.reuse=false`` (every task a fresh Python worker) and prints the largest
worker's peak RSS, i.e. the executor memory a task of that partition size needs (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - t, cpu


def _warm(src: Path) -> None:
    """The input read once into the page cache, so that neither engine pays for reading it from disk (the first
    run of a pair did, and Spark ran first)."""
    for path in sorted(src.iterdir()):
        if path.is_file():
            with path.open("rb") as fh:
                while fh.read(1 << 24):
                    pass


_VOLATILE = {"command", "created", "transactionTime", "request"}  # the run's own: its command line, time, folder


def _steady(value: object) -> object:
    """A manifest without what names the run (command, time, output folder) or lists stream.json and the FHIR
    manifest (which names the time and folder)."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        skip = ("stream.json", "fhir/manifest.json")  # the one not compared, the other compared by itself
        return [_steady(v) for v in value if not (isinstance(v, dict) and v.get("path") in skip)]
    return value


def _digests(out: Path) -> dict[str, str]:
    import hashlib

    found = {}
    for path in sorted(out.rglob("*")):
        if path.name == "manifest.json":
            found[str(path.relative_to(out))] = json.dumps(_steady(json.loads(path.read_text())), sort_keys=True)
        elif path.is_file() and path.name != "stream.json":
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while block := fh.read(1 << 24):
                    digest.update(block)
            found[str(path.relative_to(out))] = digest.hexdigest()
    return found


def _compare(spark: Path, local: Path) -> str:
    """'identical' when both folders hold the same files with the same bytes (stream.json aside; the manifests
    without the run's command line, time and folder), else what differs."""
    a, b = _digests(spark), _digests(local)
    if a == b:
        return f"identical ({len(a)} files)"
    only = sorted(set(a) ^ set(b))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    return f"DIFFERENT: {len(only)} files in one only {only[:5]}, {len(differ)} differ {differ[:5]}"


def pair(src: Path, partitions: int, reader: str, rounds: int) -> None:
    from converter.records.csv_io import form_files
    from converter.records.schema import load_forms
    from converter.records.stream import count_subjects

    forms = load_forms()
    subjects = count_subjects(form_files(src, forms)[0], forms)
    per = -(-subjects // partitions)
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        for r in range(rounds):
            for engine in ("spark", "local"):
                out = Path(tmp) / f"{engine}{r}"
                _warm(src)
                load0 = os.getloadavg()[0]
                if engine == "spark":
                    cmd = [sys.executable, "-m", "converter.engine.spark", str(src), "--out", str(out),
                           "--partitions", str(partitions), "--cores", "2", "--reader", reader]  # fmt: skip
                else:
                    cmd = [sys.executable, "-m", "converter.cli", "stream", str(src), "--out", str(out),
                           "--workers", "2", "--subjects", str(per)]  # fmt: skip
                wall, cpu = _run(cmd)
                stats = json.loads((out / "stream.json").read_text())
                jvm = float(stats.get("jvm_cpu_seconds", 0.0))
                print(f"round {r} {engine:5}: wall {wall:6.1f} s (run {stats['wall_seconds']['total']:.1f}), CPU {cpu + jvm:6.1f} s (command {cpu:.1f} + JVM tree "
                      f"{jvm:.1f}), chain CPU {sum(stats['cpu_seconds'].values()):.1f} s, load {load0:.1f} -> "
                      f"{os.getloadavg()[0]:.1f}, largest worker {stats['peak_rss_mib']['largest_worker']} MiB",
                      flush=True)  # fmt: skip
                laps = {k: round(v, 1) for k, v in stats["wall_seconds"].items()}
                cpu_laps = {k: round(v, 1) for k, v in stats["cpu_seconds"].items()}
                jvm_peak = f", JVM peak {stats['jvm_peak_rss_mib']} MiB" if "jvm_peak_rss_mib" in stats else ""
                print(f"round {r} {engine:5}: wall laps {laps}; chain CPU {cpu_laps}{jvm_peak}", flush=True)
            print(f"round {r} outputs: {_compare(Path(tmp) / f'spark{r}', Path(tmp) / f'local{r}')}", flush=True)
            shutil.rmtree(Path(tmp) / f"spark{r}")
            shutil.rmtree(Path(tmp) / f"local{r}")


def memory(src: Path, counts: list[int]) -> None:
    from pyspark.sql import SparkSession

    from converter.engine.spark import process_peak_mib, run_stream_spark, worker_python
    from converter.engine.spark_jvm import LIGHT_JVM

    os.environ["PYSPARK_PYTHON"] = worker_python()
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.python.worker.reuse", "false")
        .config("spark.driver.extraJavaOptions", LIGHT_JVM)
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
            for n in counts:
                rep = run_stream_spark(spark, src, Path(tmp) / f"p{n}", partitions=n, echo=lambda _m: None)
                jvm = process_peak_mib(spark.sparkContext._gateway.proc.pid)  # the session's peak so far
                print(f"{n} partitions of ~{rep.subjects // n} subjects: largest Python worker "
                      f"{rep.peak_rss_mib['largest_worker']} MiB, JVM peak so far {jvm:.0f} MiB", flush=True)  # fmt: skip
    finally:
        spark.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("pair")
    p.add_argument("src", type=Path)
    p.add_argument("--partitions", type=int, default=6)
    p.add_argument("--reader", choices=("files", "spark"), default="files")
    p.add_argument("--rounds", type=int, default=1)
    m = sub.add_parser("memory")
    m.add_argument("src", type=Path)
    m.add_argument("counts", type=int, nargs="+")
    args = ap.parse_args()
    if args.mode == "pair":
        pair(args.src, args.partitions, args.reader, args.rounds)
    else:
        memory(args.src, args.counts)


if __name__ == "__main__":
    main()
