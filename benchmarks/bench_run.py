"""``inoconv run`` on the bundled example (records -> SDTM -> ADaM -> report, FHIR, validate), cold, in a subprocess.

    python -m benchmarks.bench_run [--repeat R] [--keep DIR]

Each repetition runs, one after the other, each in a fresh process:

* the baseline: ``python -c "import pandas, numpy"`` (a cold start of the libraries every stage needs);
* ``inoconv --help`` (the CLI alone: nothing heavy is imported);
* ``inoconv run --out <tmp>`` on the 59-patient example.

Wall time is measured around each process, CPU time (user + system) from ``getrusage(RUSAGE_CHILDREN)``, which
counts the run's own worker processes once they have been waited for. "CPU on the critical path" is the run's CPU
time less what ran on the two sides at once, plus the longer side (:func:`critical_path`): about the wall time of
an idle two-core machine, and steadier than wall time on a shared one. Per stage, the run's own lines
``<stage>: W s (CPU C s)`` are read from its output (the CPU of a stage is that of the process that ran it). The best
(smallest) of ``R`` repetitions is shown for each figure (default 3: the machine is shared and noisy), with the
run's wall and CPU time as a multiple of the baseline measured in the same repetitions. Issue 15's target is a
run under 5 s wall on a quiet machine. ``--keep DIR``: the last run writes into DIR (replaced) and leaves it there,
the others into a temporary folder, removed.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import table

ROOT = Path(__file__).resolve().parent.parent
STAGE_LINE = re.compile(r"^([a-z][a-z ]*): ([0-9.]+) s \(CPU ([0-9.]+) s\)$", re.MULTILINE)
STAGES = ("sdtm", "adam", "report", "fhir", "validate")  # every run reports these; others are shown when present


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one process; a failing process stops the benchmark with its output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall, cpu, proc.stdout


def critical_path(total_cpu: float, cpu: dict[str, float]) -> float:
    """The CPU seconds that cannot overlap: everything but what runs at once, plus the longer of each pair. The run
    forks a child at its start that warms up (imports, specs) beside the SDTM stage until the SDTM datasets are
    made (``sdtm datasets``, part of ``sdtm``), then builds ADaM and the report from them while this process writes
    and verifies the SDTM package and does FHIR, its checks and the SDTM rules, then the ADaM rules (and the report
    page's parts that need no findings, ``report view``) once the child
    says ADaM is written; the child's round trip (``round trip``) waits for the FHIR output (when the run says it
    ran them apart: a ``warm up`` line). On an idle machine with two cores this is about the wall time (I/O waits
    aside); on a shared one it is the figure that other jobs disturb least."""
    from converter.io.forked import parallel

    if not parallel() or "warm up" not in cpu:  # the run here does the same, one stage after the other
        return total_cpu
    c = cpu.get
    made = c("sdtm datasets", c("sdtm", 0.0))
    package = c("sdtm", 0.0) - made
    first = (c("warm up", 0.0), made)
    analysis = c("adam", 0.0) + c("report", 0.0)
    fhir = package + c("fhir", 0.0)
    here = max(fhir + c("fhir checks", 0.0) + c("sdtm rules", 0.0), analysis) + c("adam rules", 0.0) + c("report view", 0.0)
    child = max(analysis, fhir) + c("round trip", 0.0)
    apart = sum(first) + fhir + sum(c(s, 0.0) for s in ("fhir checks", "sdtm rules", "adam", "report", "adam rules",
                                                         "report view", "round trip"))  # fmt: skip
    return total_cpu - apart + max(first) + max(child, here)


def _inoconv() -> list[str]:
    """The console script installed beside this Python, as a user runs it; else the module."""
    script = Path(sys.executable).parent / "inoconv"
    return [str(script)] if script.exists() else [sys.executable, "-m", "converter.cli"]


def _args(argv: list[str]) -> tuple[int, Path | None]:
    rest = list(argv)
    repeat, keep = 3, None
    if "--repeat" in rest:
        i = rest.index("--repeat")
        repeat = int(rest[i + 1])
        del rest[i : i + 2]
    if "--keep" in rest:
        i = rest.index("--keep")
        keep = Path(rest[i + 1]).resolve()
        del rest[i : i + 2]
    if rest:
        raise SystemExit(__doc__)
    return repeat, keep


def main() -> None:
    repeat, keep = _args(sys.argv[1:])
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores", flush=True)
    best: dict[str, list[float]] = {}

    def note(key: str, wall: float, cpu: float) -> None:
        old = best.get(key, [float("inf"), float("inf")])
        best[key] = [min(old[0], wall), min(old[1], cpu)]

    for r in range(repeat):
        wall, cpu, _ = _timed([sys.executable, "-c", "import pandas, numpy"])
        note("baseline: python -c 'import pandas, numpy'", wall, cpu)
        wall, cpu, _ = _timed([*_inoconv(), "--help"])
        note("inoconv --help", wall, cpu)
        tmp = Path(tempfile.mkdtemp(prefix="bench_run."))
        out = keep if keep is not None and r == repeat - 1 else tmp / "run"
        if out == keep:
            shutil.rmtree(out, ignore_errors=True)
        try:
            wall, cpu, text = _timed([*_inoconv(), "run", "--out", str(out)])
            stages = {m[1]: (float(m[2]), float(m[3])) for m in STAGE_LINE.finditer(text)}
            missing = [s for s in STAGES if s not in stages]
            if missing:
                raise SystemExit(f"the run did not report the time of {', '.join(missing)}:\n{text[-2000:]}")
            note("inoconv run (whole process)", wall, cpu)
            for name in [*STAGES, *sorted(set(stages) - set(STAGES))]:
                note(f"  stage {name}", *stages[name])
            path = critical_path(cpu, {k: c for k, (_w, c) in stages.items()})
            note("  CPU on the critical path", path, path)
            print(f"repetition {r + 1}: run {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    base_wall, base_cpu = best["baseline: python -c 'import pandas, numpy'"]
    rows = [
        {"what": k, "wall s": f"{w:.2f}", "CPU s": f"{c:.2f}", "wall / baseline": f"{w / base_wall:.1f}",
         "CPU / baseline": f"{c / base_cpu:.1f}"}
        for k, (w, c) in best.items()
    ]  # fmt: skip
    print(f"\nbest of {repeat} (stage rows: the run's own lines; CPU of the process that ran the stage)")
    print(table(rows, ["what", "wall s", "CPU s", "wall / baseline", "CPU / baseline"]))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
