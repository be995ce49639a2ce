"""End to end at registry sizes: simulate + records -> SDTM -> ADaM -> FHIR NDJSON.

    python -m benchmarks.bench_pipeline [N ...]        (default: 1000 10000 100000)

Each size runs in its own process (its peak memory is its own). The baseline is the smallest size measured in
the same run: the ratios say how time per subject and peak memory grow with n (linear time: ratio ~1).
"""

from __future__ import annotations

import sys

from benchmarks._common import run_child, table


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1_000, 10_000, 100_000]
    results = [run_child("benchmarks.pipeline_child", str(n)) for n in sizes]
    base = results[0]
    base_per = base["total_s"] / base["n"]
    rows = []
    for r in results:
        per = r["total_s"] / r["n"]
        row = {
            "n": r["n"], "parts": r["partitions"], **{k: v for k, v in r["seconds"].items()}, "total_s": r["total_s"],
            "subjects/s": round(r["n"] / r["total_s"]), "rows/s": round((r["sdtm_rows"] + r["adam_rows"]) / r["total_s"]),
            "resources/s": round(r["fhir_resources"] / r["seconds"]["fhir_ndjson"]) if r["fhir_resources"] else "-",
            "peak_MiB": r["peak_rss_mib"], "time/subj vs base": f"{per / base_per:.2f}",
            "mem vs base": f"{r['peak_rss_mib'] / base['peak_rss_mib']:.2f}",
        }  # fmt: skip
        rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print(f"End to end (baseline n={base['n']}, same run); times in seconds, memory = peak RSS of the process")
    print(table(rows, cols))


if __name__ == "__main__":
    main()
