"""load_adam_specs keeps the specs it prepared and checked for the same files, CT and upstream columns: the same
specs as a fresh check, checked once, and a failing upstream still raises after a passing one was kept."""

from __future__ import annotations

import pytest

from converter.adam import pipeline
from converter.errors import SpecError
from converter.paths import mappings_dir
from converter.spec.loader import load_specs


def _upstream() -> dict[str, list[str]]:
    return {n: list(s.column_names) for n, s in load_specs(mappings_dir() / "sdtm").items()}


def test_same_specs_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline._CHECKED.clear()
    calls: list[int] = []
    check = pipeline.check_adam_specs
    monkeypatch.setattr(pipeline, "check_adam_specs", lambda *a: (calls.append(1), check(*a))[1])
    first, ct1 = pipeline.load_adam_specs(upstream=_upstream())
    second, ct2 = pipeline.load_adam_specs(upstream=_upstream())
    assert calls == [1]
    assert first == second and first is not second and ct1 is ct2
    fresh = {n: pipeline.prepare_spec(s) for n, s in load_specs(mappings_dir() / "adam").items()}
    assert list(first) == list(fresh) and all(first[n] == fresh[n] for n in fresh)


def test_failing_upstream_raises_after_a_kept_one() -> None:
    pipeline._CHECKED.clear()
    up = _upstream()
    pipeline.load_adam_specs(upstream=up)
    up["EX"] = [c for c in up["EX"] if c != "EXSTDTC"]
    for _ in range(2):
        with pytest.raises(SpecError, match="EXSTDTC"):
            pipeline.load_adam_specs(upstream=up)
