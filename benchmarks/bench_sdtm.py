"""Records -> SDTM: CPU per subject of ``build_all`` on a simulated cohort, and where it goes per rule.

    python -m benchmarks.bench_sdtm [N_SUBJECTS] [--repeat R]

The cohort is simulated once (not timed); ``build_all`` then runs once to warm up and ``R`` times (default 3),
and the best CPU time of this process is reported (the machine is shared: CPU time is steadier than wall time,
and the minimum is the least disturbed run). The per-rule table wraps every row and dataset rule of the
registries, and ``finalise`` (cast, order and sort), with a timer for one extra run (the wrapper adds a little
to each call).

The floor, measured in the same run: every value of the records and of the SDTM output read once as text
(``text_values``, a factorisation per column), which a build that looks at its inputs and casts its outputs pays
at least; the ratio SDTM / floor does not depend on the machine's speed or load as much as the seconds do.
"""

from __future__ import annotations

import collections
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks._common import peak_rss_mib, size_and_repeat, table
from benchmarks._common import timed as best_time


def main() -> None:
    n, repeat = size_and_repeat(sys.argv[1:])
    warnings.filterwarnings("ignore", category=FutureWarning)
    from converter.records.simulate import simulate
    from converter.sdtm import build, context
    from converter.sdtm.pipeline import load_sdtm_specs
    from converter.validate.common import text_values

    specs, ct, forms = load_sdtm_specs()
    t0 = time.perf_counter()
    records = simulate(n, seed=11)
    print(f"{n} subjects simulated in {time.perf_counter() - t0:.1f}s", flush=True)

    def run() -> dict[str, Any]:
        return build.build_all(specs, records, ct, forms)[0]

    run()  # warm-up (imports, caches)
    best, result = best_time(run, repeat, clock=time.process_time)
    rows_out = sum(len(v) for v in result.values())
    frames = [*records.values(), *result.values()]

    def read_every_value() -> None:
        for df in frames:
            for col in df.columns:
                text_values(df[col])

    floor, _ = best_time(read_every_value, repeat, clock=time.process_time)

    spent: collections.defaultdict[tuple[str, str], float] = collections.defaultdict(float)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def rule(ctx: Any, a: Any) -> Any:
            c = time.process_time()
            try:
                return fn(ctx, a)
            finally:
                spent[(name, f"{ctx.spec.name}.{ctx.var.name}")] += time.process_time() - c

        return rule

    def timed_finalise(df: Any, spec: Any) -> Any:
        c = time.process_time()
        try:
            return finalise(df, spec)
        finally:
            spent[("finalise", spec.name)] += time.process_time() - c

    rows, datasets, finalise = dict(context.ROW), dict(context.DATASET), build.finalise
    context.ROW.update({k: timed(k, f) for k, f in rows.items()})
    context.DATASET.update({k: timed(k, f) for k, f in datasets.items()})
    build.finalise = timed_finalise  # type: ignore[assignment]
    try:
        c = time.process_time()
        run()
        whole = time.process_time() - c
    finally:
        context.ROW.update(rows)
        context.DATASET.update(datasets)
        build.finalise = finalise  # type: ignore[assignment]
    per_rule: collections.defaultdict[str, float] = collections.defaultdict(float)
    for (rule, _var), s in spent.items():
        per_rule[rule] += s
    per_rule["(rest: sources, stacking, accounting)"] = whole - sum(spent.values())

    print(f"\nrecords -> SDTM (build_all), {n} subjects, {len(result)} datasets, {rows_out} rows out")
    print(f"best of {repeat}: {best:.3f} s CPU = {best / n * 1000:.3f} ms per subject; floor (every record and "
          f"SDTM value read as text once) {floor:.3f} s; SDTM / floor = {best / floor:.1f}; "
          f"peak RSS {peak_rss_mib()} MiB")  # fmt: skip
    print(f"timed run {whole:.3f} s; by rule:")
    print(table([{"rule": r, "cpu_s": f"{s:.3f}"} for r, s in _top(per_rule, 20)], ["rule", "cpu_s"]))
    print("slowest variables:")
    print(table([{"variable": v, "rule": r, "cpu_s": f"{s:.3f}"} for (r, v), s in _top(spent)],
                ["variable", "rule", "cpu_s"]))  # fmt: skip


def _top(d: dict[Any, float], k: int = 12) -> list[tuple[Any, float]]:
    return sorted(d.items(), key=lambda kv: -kv[1])[:k]


if __name__ == "__main__":
    main()
