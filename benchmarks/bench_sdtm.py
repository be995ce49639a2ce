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
from typing import Any

from benchmarks._common import Spent, peak_rss_mib, per_rule, rule_tables, rules_timed, size_and_repeat, text_floor
from benchmarks._common import timed as best_time


def main() -> None:
    n, repeat = size_and_repeat(sys.argv[1:])
    warnings.filterwarnings("ignore", category=FutureWarning)
    from converter.records.simulate import simulate
    from converter.sdtm import build, context
    from converter.sdtm.pipeline import load_sdtm_specs

    specs, ct, forms = load_sdtm_specs()
    t0 = time.perf_counter()
    records = simulate(n, seed=11)
    print(f"{n} subjects simulated in {time.perf_counter() - t0:.1f}s", flush=True)

    def run() -> dict[str, Any]:
        return build.build_all(specs, records, ct, forms)[0]

    run()  # warm-up (imports, caches)
    best, result = best_time(run, repeat, clock=time.process_time)
    rows_out = sum(len(v) for v in result.values())
    floor = text_floor([*records.values(), *result.values()], repeat)

    spent: Spent = collections.defaultdict(float)

    def timed_finalise(df: Any, spec: Any) -> Any:
        c = time.process_time()
        try:
            return finalise(df, spec)
        finally:
            spent[("finalise", spec.name)] += time.process_time() - c

    finalise = build.finalise
    build.finalise = timed_finalise  # type: ignore[assignment]
    try:
        with rules_timed([context.ROW, context.DATASET], spent):
            c = time.process_time()
            run()
            whole = time.process_time() - c
    finally:
        build.finalise = finalise  # type: ignore[assignment]
    rules = per_rule(spent)
    rules["(rest: sources, stacking, accounting)"] = whole - sum(spent.values())

    print(f"\nrecords -> SDTM (build_all), {n} subjects, {len(result)} datasets, {rows_out} rows out")
    print(f"best of {repeat}: {best:.3f} s CPU = {best / n * 1000:.3f} ms per subject; floor (every record and "
          f"SDTM value read as text once) {floor:.3f} s; SDTM / floor = {best / floor:.1f}; "
          f"peak RSS {peak_rss_mib()} MiB")  # fmt: skip
    print(f"timed run {whole:.3f} s; by rule:")
    print(rule_tables(rules, spent, 20))


if __name__ == "__main__":
    main()
