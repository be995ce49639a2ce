"""End to end at registry sizes: simulate, then records -> SDTM -> ADaM -> FHIR NDJSON with ``inoconv stream``.

    python -m benchmarks.bench_pipeline [N ...] [--workers W] [--subjects S] [--format csv|odm] [--no-rules]
                                                         (default sizes: 1000 10000 100000)

Each size runs in its own process (its peak memory is its own). The baseline is the smallest size measured in
the same run: the ratios say how time per subject and peak memory grow with n (linear time: ratio ~1; streaming
memory: ratio ~1 once n exceeds one partition per worker).
"""

from __future__ import annotations

import sys

from benchmarks._common import run_child, table


def main() -> None:
    argv = sys.argv[1:]
    opts: list[str] = []
    if "--no-rules" in argv:
        argv.remove("--no-rules")
        opts.append("--no-rules")
    for name in ("--workers", "--subjects", "--format"):
        if name in argv:
            i = argv.index(name)
            opts += argv[i : i + 2]
            del argv[i : i + 2]
    sizes = [int(a) for a in argv] or [1_000, 10_000, 100_000]
    results = []
    for n in sizes:
        results.append(run_child("benchmarks.pipeline_child", str(n), *opts))
        print(results[-1], flush=True)
    base = results[0]
    base_per = base["total_s"] / base["n"]
    rows = []
    for r in results:
        per = r["total_s"] / r["n"]
        cpu = r["cpu_seconds"]
        row = {
            "n": r["n"], "parts": r["partitions"], "simulate s": r["simulate_s"], "stream s": r["total_s"],
            "read cpu": cpu.get("read"), "SDTM cpu": cpu.get("sdtm"), "ADaM cpu": cpu.get("adam"), "FHIR cpu": cpu.get("fhir"),
            "subjects/s": round(r["n"] / r["total_s"]), "rows/s": round((r["sdtm_rows"] + r["adam_rows"]) / r["total_s"]),
            "resources/s": round(r["fhir_resources"] / r["total_s"]),
            "peak MiB (all processes)": r["peak_total_mib"], "largest worker MiB": r["peak_rss_mib"]["largest_worker"],
            "time/subj vs base": f"{per / base_per:.2f}", "mem vs base": f"{r['peak_total_mib'] / base['peak_total_mib']:.2f}",
        }  # fmt: skip
        rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print(f"End to end (baseline n={base['n']}, same run); wall seconds, CPU seconds summed over workers")
    print(table(rows, cols))


if __name__ == "__main__":
    main()
