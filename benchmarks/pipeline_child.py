"""One measured run of the whole chain at one size, as a user runs it:

    inoconv simulate --n N --format csv --out DIR     (its own process: simulated records on disk)
    inoconv stream DIR --workers W --subjects S       (records -> SDTM -> ADaM -> FHIR NDJSON, streaming)

    python -m benchmarks.pipeline_child N [--workers W] [--subjects S] [--format csv|odm] [--no-rules]

Prints one JSON line: seconds (wall) of simulate and of each streaming step, CPU seconds per stage summed over
the workers, rows and resources, and memory: the peak RSS of the streaming process, of its largest worker,
and the peak of their sum sampled every 0.1 s (what the machine must hold at once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


class PeakSampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_kib(os.getpid()))
            self._stop.wait(0.1)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _opt(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def main() -> None:
    argv = sys.argv[1:]
    n = int(argv[0])
    workers = int(_opt(argv, "--workers", "2"))
    subjects = int(_opt(argv, "--subjects", "2000"))
    fmt = _opt(argv, "--format", "csv")
    rules = "--no-rules" not in argv
    from converter.engine.stream import run_stream

    with tempfile.TemporaryDirectory(dir=os.environ.get("INOCONV_BENCH_TMP")) as tmp:
        src = Path(tmp) / ("records.xml" if fmt == "odm" else "records")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "converter.cli", "simulate", "--n", str(n), "--seed", "20240",
                        "--format", fmt, "--out", str(src)], check=True, capture_output=True)  # fmt: skip
        simulate_s = time.perf_counter() - t
        size = sum(f.stat().st_size for f in src.iterdir()) if src.is_dir() else src.stat().st_size
        with PeakSampler() as sampler:
            rep = run_stream(src, Path(tmp) / "out", workers=workers, subjects_per_partition=subjects,
                             validate=True, rules=rules, echo=lambda _m: None)  # fmt: skip
    d = rep.as_dict()
    print(json.dumps({
        "n": n, "format": fmt, "rules": rules, "source_mib": round(size / 2**20, 1), "workers": workers, "subjects_per_partition": subjects,
        "partitions": rep.partitions, "simulate_s": round(simulate_s, 2),
        "seconds": d["wall_seconds"], "cpu_seconds": d["cpu_seconds"], "total_s": d["wall_seconds"]["total"],
        "source_rows": rep.records, "sdtm_rows": sum(rep.sdtm_rows.values()), "adam_rows": sum(rep.adam_rows.values()),
        "fhir_resources": sum(rep.fhir_counts.values()), "peak_rss_mib": d["peak_rss_mib"],
        "peak_total_mib": round(sampler.peak / 1024, 1),
    }))


if __name__ == "__main__":
    main()
