"""One measured run of the whole chain at one size (run in its own process so peak memory is its own).

    python -m benchmarks.pipeline_child N [PARTITIONS]

Prints one JSON line: seconds per stage, rows, resources, peak RSS.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import peak_rss_mib


def main() -> None:
    n = int(sys.argv[1])
    parts = int(sys.argv[2]) if len(sys.argv) > 2 else max(1, n // 5000)
    from converter.adam.pipeline import sdtm_to_adam
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    times: dict[str, float] = {}
    t = time.perf_counter()
    records = simulate(n, seed=20240)
    times["simulate"] = time.perf_counter() - t
    source_rows = sum(len(df) for df in records.values())

    t = time.perf_counter()
    sdtm = records_to_sdtm(records, partitions=parts)
    times["sdtm"] = time.perf_counter() - t
    del records
    sdtm_rows = sum(len(df) for df in sdtm.datasets.values())

    t = time.perf_counter()
    adam = sdtm_to_adam(sdtm.datasets)
    times["adam"] = time.perf_counter() - t
    adam_rows = sum(len(df) for df in adam.datasets.values())

    from converter.fhir.cli_commands import load_fhir_stage
    from converter.fhir.writer import write_fhir_dir

    specs, ct, sdtm_specs = load_fhir_stage()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        rep = write_fhir_dir(sdtm.datasets, Path(tmp) / "fhir", specs, ct, sdtm_specs)
        times["fhir_ndjson"] = time.perf_counter() - t
        resources = rep.resources
    total = sum(times.values())
    print(json.dumps({
        "n": n, "partitions": parts, "seconds": {k: round(v, 2) for k, v in times.items()},
        "total_s": round(total, 2), "source_rows": source_rows, "sdtm_rows": sdtm_rows, "adam_rows": adam_rows,
        "fhir_resources": resources, "peak_rss_mib": peak_rss_mib(),
    }))


if __name__ == "__main__":
    main()
