"""Shared helpers for the benchmarks: timing, peak memory of a child process, a results table, and the per-rule
timings and text floor of the build benchmarks (bench_sdtm, bench_adam)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 1, clock: Callable[[], float] = time.perf_counter) -> tuple[float, Any]:
    """Best time of ``repeat`` runs by ``clock`` (wall by default; ``time.process_time`` for CPU) and the last
    result (the machine is shared and noisy: take the minimum)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = clock()
        result = fn()
        best = min(best, clock() - t0)
    return best, result


def size_and_repeat(argv: list[str], size: int = 2000, repeat: int = 3) -> tuple[int, int]:
    """``[N] [--repeat R]`` of a benchmark's command line: the cohort size and the repetitions."""
    rest = list(argv)
    if "--repeat" in rest:
        i = rest.index("--repeat")
        repeat = int(rest[i + 1])
        del rest[i : i + 2]
    return (int(rest[0]) if rest else size), repeat


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` and return its JSON result plus its peak RSS in MiB."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.rjust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).rjust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


Spent = MutableMapping[tuple[str, str], float]  # (rule, dataset.variable or dataset) -> CPU seconds


def text_floor(frames: Iterable[Any], repeat: int) -> float:
    """Best CPU time of reading every value of ``frames`` once as text (a factorisation per column): what a build
    that looks at its inputs and casts its outputs pays at least."""
    from converter.validate.common import text_values

    frames = list(frames)

    def read_every_value() -> None:
        for df in frames:
            for col in df.columns:
                text_values(df[col])

    floor, _ = timed(read_every_value, repeat, clock=time.process_time)
    return floor


@contextlib.contextmanager
def rules_timed(registries: Sequence[dict[str, Callable[..., Any]]], spent: Spent) -> Iterator[None]:
    """Every rule of the registries (name -> ``rule(ctx, arg)``) adds its CPU time to ``spent`` under
    ``(name, "<dataset>.<variable>")`` while inside; the registries are as they were afterwards."""
    saved = [dict(r) for r in registries]

    def clocked(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def rule(ctx: Any, a: Any) -> Any:
            c = time.process_time()
            try:
                return fn(ctx, a)
            finally:
                spent[(name, f"{ctx.spec.name}.{ctx.var.name}")] += time.process_time() - c

        return rule

    for registry, original in zip(registries, saved, strict=True):
        registry.update({k: clocked(k, f) for k, f in original.items()})
    try:
        yield
    finally:
        for registry, original in zip(registries, saved, strict=True):
            registry.update(original)


def per_rule(spent: Spent) -> collections.defaultdict[str, float]:
    """The CPU seconds of ``spent`` summed per rule."""
    out: collections.defaultdict[str, float] = collections.defaultdict(float)
    for (rule, _where), s in spent.items():
        out[rule] += s
    return out


def top(d: MutableMapping[Any, float], k: int) -> list[tuple[Any, float]]:
    """The ``k`` largest items of ``d`` by value."""
    return sorted(d.items(), key=lambda kv: -kv[1])[:k]


def rule_tables(rules: MutableMapping[str, float], spent: Spent, k_rules: int, k_variables: int = 12) -> str:
    """The per-rule table, then the slowest variables."""
    by_rule = table([{"rule": r, "cpu_s": f"{s:.3f}"} for r, s in top(rules, k_rules)], ["rule", "cpu_s"])
    slowest = table([{"variable": v, "rule": r, "cpu_s": f"{s:.3f}"} for (r, v), s in top(spent, k_variables)],
                    ["variable", "rule", "cpu_s"])  # fmt: skip
    return f"{by_rule}\nslowest variables:\n{slowest}"
