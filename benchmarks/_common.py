"""Shared helpers for the benchmarks: timing, peak memory of a child process, a results table."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
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
