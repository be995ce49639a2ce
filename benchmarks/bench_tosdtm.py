"""FHIR NDJSON -> SDTM: the project's reader (plain JSON through orjson, the specs in reverse) vs parsing every
resource through the fhir.resources R4B models, on the same NDJSON in the same run.

    python -m benchmarks.bench_tosdtm [N_SUBJECTS] [--models-resources K]

The input is what ``inoconv fhir`` writes for a simulated cohort. ``convert_path(..., validate=False)`` is the
fast path (``inoconv tosdtm`` validates too; that run is reported separately); the baseline parses resources
with ``<R4B model>.model_validate_json(line)`` (K resources, default 20,000, rate extrapolated).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import peak_rss_mib, table


def main() -> None:
    args = sys.argv[1:]
    k = 20_000
    if "--models-resources" in args:
        i = args.index("--models-resources")
        k = int(args[i + 1])
        del args[i : i + 2]
    n = int(args[0]) if args else 2_000
    from fhir.resources.R4B import get_fhir_model_class

    from converter.fhir.cli_commands import load_fhir_stage
    from converter.fhir.to_sdtm import convert_path
    from converter.fhir.writer import write_fhir_dir
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    specs, ct, sdtm_specs = load_fhir_stage()
    sdtm = records_to_sdtm(simulate(n, seed=9))
    with tempfile.TemporaryDirectory() as tmp:
        fhir_dir = Path(tmp) / "fhir"
        rep = write_fhir_dir(sdtm.datasets, fhir_dir, specs, ct, sdtm_specs)
        nd = fhir_dir / "ndjson"
        resources = rep.resources

        t0 = time.perf_counter()
        fast = convert_path(nd, specs, ct, sdtm_specs, validate=False)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        convert_path(nd, specs, ct, sdtm_specs, validate=True)
        t_valid = time.perf_counter() - t0

        lines = [ln for f in sorted(nd.glob("*.ndjson")) for ln in f.read_bytes().splitlines() if ln.strip()]
        sample = lines[:: max(1, len(lines) // k)][:k]
        import orjson

        t0 = time.perf_counter()
        for ln in sample:
            rtype = orjson.loads(ln)["resourceType"]
            get_fhir_model_class(rtype).model_validate_json(ln)
        t_models = time.perf_counter() - t0
    rate_models = len(sample) / t_models
    rows = [
        {"path": "inoconv tosdtm (orjson + specs, validate=False)", "resources": resources,
         "seconds": f"{t_fast:.1f}", "resources/s": f"{resources / t_fast:,.0f}", "vs models": f"{resources / t_fast / rate_models:.1f}x"},
        {"path": "inoconv tosdtm (with its structural validation)", "resources": resources,
         "seconds": f"{t_valid:.1f}", "resources/s": f"{resources / t_valid:,.0f}", "vs models": f"{resources / t_valid / rate_models:.1f}x"},
        {"path": "fhir.resources R4B model_validate_json (parse only)", "resources": len(sample),
         "seconds": f"{t_models:.1f}", "resources/s": f"{rate_models:,.0f}", "vs models": "1.0x"},
    ]  # fmt: skip
    print(f"FHIR NDJSON -> SDTM, {n} subjects, {resources} resources; SDTM rows back: "
          f"{sum(len(d) for d in fast.datasets.values())}; peak RSS {peak_rss_mib()} MiB")  # fmt: skip
    print(table(rows, ["path", "resources", "seconds", "resources/s", "vs models"]))


if __name__ == "__main__":
    main()
