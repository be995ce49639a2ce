"""The conformance rules `inoconv stream` runs on each partition: CPU per subject, per check, against a floor.

    python -m benchmarks.bench_rules [N_SUBJECTS] [--repeat R]

A cohort of N subjects (default 2,000) is simulated and taken through the chain's own steps
(:mod:`converter.engine.chain`: ``sdtm_of``, ``adam_of``; not timed) as one partition. Then ``findings_of``, the
call each partition makes (the SDTM rules, with the specs and CT, and the ADaM rules), runs once to warm up and
``R`` times (default 3); the best CPU time of this process is reported (the machine is shared: CPU time is
steadier than wall time, and the minimum is the least disturbed run). The target of issue 19 is 0.3 ms of CPU
per subject.

The floor, measured in the same run on the same frames: every value of every SDTM and ADaM column read once as
text (``text_values``), which any rule set looking at every value pays at least; the ratio rules / floor says how
far the rules are from that, whatever the machine's speed. The per-check table wraps every check function of
the rule modules with a timer for one extra run.

A second number, "as in the chain": each run on a fresh copy of the frames (unpickled: new objects, no pandas
caches, string hashes not yet computed) with the rules' per-process date caches emptied, which is what a
partition of ``inoconv stream`` meets (its frames are new; the caches hold the earlier partitions' dates, so
this is the upper end, the first partition of a worker). The warm number runs the same frames again and again.
"""

from __future__ import annotations

import collections
import importlib
import pickle
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks._common import peak_rss_mib, size_and_repeat, table
from benchmarks._common import timed as best_time

# The rule modules and the check functions findings_of reaches (wrapped by name for the per-check table).
CHECKS = {
    "converter.validate.sdtm_rules": (
        "check_presence", "check_metadata", "check_ct", "check_dm_unique", "check_seq_unique",
        "check_subjects_in_dm", "check_iso_dates", "check_start_end", "check_dm_ex", "check_study_days",
        "check_supp", "check_ts", "run_content_rules",
    ),
    "converter.validate.adam_rules": ("run_adam_rules",),
}  # fmt: skip


def main() -> None:
    n, repeat = size_and_repeat(sys.argv[1:])
    warnings.filterwarnings("ignore", category=FutureWarning)
    from converter.engine.chain import adam_of, findings_of, load_chain, sdtm_of
    from converter.records.simulate import simulate
    from converter.validate.common import text_values

    t0 = time.perf_counter()
    chain = load_chain(fhir=False)
    sdtm, _ = sdtm_of(chain, simulate(n, seed=3))
    adam = adam_of(chain, sdtm).datasets
    print(f"{n} subjects simulated, SDTM and ADaM built in {time.perf_counter() - t0:.1f}s", flush=True)

    def rules() -> list[Any]:
        return findings_of(chain, sdtm, adam, with_study=True)

    frames = [*chain.study_sets.values(), *sdtm.values(), *adam.values()]

    def floor() -> int:
        return sum(len(text_values(df[c])) for df in frames for c in df.columns)

    found = rules()  # warm-up (imports, caches)
    floor()
    spent_floor, cells = best_time(floor, repeat, clock=time.process_time)
    best, found = best_time(rules, repeat, clock=time.process_time)
    fresh = fresh_time(chain, findings_of, pickle.dumps((sdtm, adam)), repeat)

    spent: collections.defaultdict[str, float] = collections.defaultdict(float)
    originals: list[tuple[Any, str, Any]] = []

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            c = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.process_time() - c

        return run

    for modname, names in CHECKS.items():
        mod = importlib.import_module(modname)
        for name in names:
            originals.append((mod, name, getattr(mod, name)))
            setattr(mod, name, timed(name, getattr(mod, name)))
    try:
        rules()
    finally:
        for mod, name, fn in originals:
            setattr(mod, name, fn)

    rows = sum(len(df) for df in frames)
    by_rule = collections.Counter(f.rule_id for f in found)
    print(f"\nconformance rules of one partition, {n} subjects, {rows} rows, {cells} values; "
          f"{len(found)} findings {dict(by_rule.most_common(5))}")  # fmt: skip
    print(f"as in the chain (fresh frames, date caches emptied), best of {repeat}: {fresh:.3f} s CPU = "
          f"{fresh / n * 1000:.3f} ms per subject (target 0.3)")  # fmt: skip
    print(f"warm (the same frames again), best of {repeat}: {best:.3f} s CPU = {best / n * 1000:.3f} ms per subject; "
          f"floor (every value read as text once) {spent_floor:.3f} s; rules / floor = {best / spent_floor:.1f}; "
          f"peak RSS {peak_rss_mib()} MiB")  # fmt: skip
    print(table([{"check": k, "cpu_s": f"{v:.3f}"} for k, v in sorted(spent.items(), key=lambda kv: -kv[1])],
                ["check", "cpu_s"]))  # fmt: skip


def fresh_time(chain: Any, findings_of: Callable[..., Any], frames: bytes, repeat: int) -> float:
    """Best CPU time of ``findings_of`` on a fresh copy of the pickled (SDTM, ADaM) frames each run, the rules'
    date caches emptied before it (what a new partition of the chain meets)."""
    from converter.validate import common

    best = float("inf")
    for _ in range(repeat):
        sdtm, adam = pickle.loads(frames)
        for cached in (common.iso_datetime_ok, common.complete_date, common.iso_after):
            cached.cache_clear()
        t0 = time.process_time()
        findings_of(chain, sdtm, adam, with_study=True)
        best = min(best, time.process_time() - t0)
    return best


if __name__ == "__main__":
    main()
