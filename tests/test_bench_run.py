"""benchmarks.bench_run.critical_path: the CPU of a run's two processes that cannot overlap."""

from __future__ import annotations

import pytest

from benchmarks import bench_run
from converter.io import forked


def test_the_longer_side_counts_and_what_overlaps_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forked, "parallel", lambda: True)
    stages = {"warm up": 1.0, "sdtm": 2.5, "sdtm datasets": 1.3, "adam": 0.7, "report": 1.1, "adam rules": 0.2,
              "round trip": 0.9, "fhir": 0.4, "fhir checks": 0.8, "sdtm rules": 0.3, "validate": 0.1}  # fmt: skip
    total = sum(stages.values()) - stages["sdtm datasets"] + 0.5  # 0.5 s outside every stage (start, exit)
    # here: package 1.2 + fhir 0.4, checks 0.8, SDTM rules 0.3, then ADaM rules 0.2 = 2.9; the child: ADaM 0.7 and
    # the report 1.1, then the round trip 0.9 = 2.7
    assert bench_run.critical_path(total, stages) == pytest.approx(0.5 + 1.3 + 2.9 + 0.1)
    slow_report = {**stages, "report": 2.5}  # the child: ADaM and the report 3.2, then the round trip 0.9
    assert bench_run.critical_path(total + 1.4, slow_report) == pytest.approx(0.5 + 1.3 + 3.2 + 0.9 + 0.1)
    slow_package = {**stages, "sdtm": 1.3 + 2.0}  # here: 2.0 + 0.4 + 0.8 + 0.3 + 0.2 = 3.7; the child 2.7
    assert bench_run.critical_path(total + 0.8, slow_package) == pytest.approx(0.5 + 1.3 + 3.7 + 0.1)
    one_after_the_other = {k: v for k, v in stages.items() if k != "warm up"}
    assert bench_run.critical_path(total, one_after_the_other) == total
