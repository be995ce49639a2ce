"""XPT writing with the project's checks and metadata vs pyreadstat alone, on the same SDTM frames.

    python -m benchmarks.bench_xpt [N_SUBJECTS]

Both write SAS XPORT v5 of every SDTM dataset of a simulated cohort; the baseline is pyreadstat.write_xport
with the same labels, measured in the same run. The ratio is the overhead of the pre-write checks and metadata.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks._common import table, timed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    import pyreadstat

    from converter.io.xpt import prepare_for_xpt, write_xpt
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    sdtm = records_to_sdtm(simulate(n, seed=3), partitions=max(1, n // 5000))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name, df in sdtm.datasets.items():
            spec = sdtm.specs[name]
            frame = prepare_for_xpt(df, spec)
            labels = [v.label for v in spec.ordered]

            def baseline(frame=frame, labels=labels, name=name, spec=spec) -> None:  # type: ignore[no-untyped-def]
                pyreadstat.write_xport(frame, str(out / f"{name}_raw.xpt"), file_format_version=5,
                                       table_name=name, file_label=spec.label, column_labels=labels)  # fmt: skip

            def ours(frame=frame, spec=spec, name=name) -> None:  # type: ignore[no-untyped-def]
                write_xpt(frame, spec, out / f"{name}.xpt")

            t_base, _ = timed(baseline, repeat=3)
            t_ours, _ = timed(ours, repeat=3)
            rows.append({"dataset": name, "rows": len(df), "pyreadstat_s": f"{t_base:.3f}", "inoconv_s": f"{t_ours:.3f}",
                         "ratio": f"{t_ours / t_base:.2f}" if t_base else "-"})  # fmt: skip
    tb = sum(float(r["pyreadstat_s"]) for r in rows)
    to = sum(float(r["inoconv_s"]) for r in rows)
    rows.append({"dataset": "ALL", "rows": sum(int(r["rows"]) for r in rows), "pyreadstat_s": f"{tb:.3f}",
                 "inoconv_s": f"{to:.3f}", "ratio": f"{to / tb:.2f}"})  # fmt: skip
    print(f"XPT v5 writing, {n} subjects: checked write (write_xpt) vs pyreadstat.write_xport alone (same run)")
    print(table(rows, ["dataset", "rows", "pyreadstat_s", "inoconv_s", "ratio"]))


if __name__ == "__main__":
    main()
