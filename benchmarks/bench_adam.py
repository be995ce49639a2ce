"""SDTM -> ADaM: CPU per subject of ``sdtm_to_adam`` on a simulated cohort, and where it goes per rule.

    python -m benchmarks.bench_adam [N_SUBJECTS] [--repeat R]

The cohort is simulated and converted to SDTM once (not timed); ``sdtm_to_adam`` then runs once to warm up and
``R`` times (default 3), and the best CPU time of this process is reported (the machine is shared: CPU time is
steadier than wall time, and the minimum is the least disturbed run). The per-rule table wraps every row rule
of the registry with a timer for one extra run (the wrapper adds a little to each call). The target of issue 19
is 0.2 ms of CPU per subject.

A second number, "as in the chain": each run on a fresh copy of the SDTM frames (unpickled: new objects, string
hashes not yet computed), which is what a partition of ``inoconv stream`` meets; its ``adam`` lap also holds the
ADaM Parquet write (0.05-0.07 ms per subject), which this benchmark does not do.

The floor, measured in the same run: every value of the SDTM input and of the ADaM output read once as text
(``text_values``, a factorisation per column), which a build that looks at its inputs and casts its outputs pays
at least; the ratio ADaM / floor does not depend on the machine's speed or load as much as the seconds do.
"""

from __future__ import annotations

import collections
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks._common import Spent, peak_rss_mib, per_rule, rule_tables, rules_timed, size_and_repeat, text_floor
from benchmarks._common import timed as best_time


def main() -> None:
    n, repeat = size_and_repeat(sys.argv[1:])
    warnings.filterwarnings("ignore", category=FutureWarning)
    from converter.adam.pipeline import sdtm_to_adam
    from converter.records.simulate import simulate
    from converter.sdtm import context
    from converter.sdtm.pipeline import records_to_sdtm

    t0 = time.perf_counter()
    sdtm = dict(records_to_sdtm(simulate(n, seed=3), partitions=1).datasets)
    print(f"{n} subjects simulated and converted to SDTM in {time.perf_counter() - t0:.1f}s", flush=True)

    sdtm_to_adam(sdtm)  # warm-up (imports, caches)
    best, result = best_time(lambda: sdtm_to_adam(sdtm), repeat, clock=time.process_time)
    rows_out = {k: len(v) for k, v in result.datasets.items()}
    frozen = pickle.dumps(sdtm)
    fresh = fresh_time(sdtm_to_adam, frozen, repeat)
    floor = text_floor([*sdtm.values(), *result.datasets.values()], repeat)

    spent: Spent = collections.defaultdict(float)
    with rules_timed([context.ROW], spent):
        sdtm_to_adam(sdtm)
    rules = per_rule(spent)

    print(f"\nSDTM -> ADaM, {n} subjects, rows out {rows_out}")
    print(f"best of {repeat}: {best:.3f} s CPU = {best / n * 1000:.3f} ms per subject (target 0.2); floor (every "
          f"input and output value read as text once) {floor:.3f} s; ADaM / floor = {best / floor:.1f}; "
          f"peak RSS {peak_rss_mib()} MiB")  # fmt: skip
    print(f"as in the chain (fresh frames each run), best of {repeat}: {fresh:.3f} s CPU = "
          f"{fresh / n * 1000:.3f} ms per subject")  # fmt: skip
    print(f"row rules: {sum(spent.values()):.3f} s of the timed run; by rule:")
    print(rule_tables(rules, spent, 10, 10))


def fresh_time(build: Callable[[dict[str, Any]], object], frames: bytes, repeat: int) -> float:
    """Best CPU time of ``build`` on a fresh copy of the pickled SDTM frames each run (unpickled untimed)."""
    best = float("inf")
    for _ in range(repeat):
        sdtm = pickle.loads(frames)
        t0 = time.process_time()
        build(sdtm)
        best = min(best, time.process_time() - t0)
    return best


if __name__ == "__main__":
    main()
