"""sdtm_to_adam pauses the cyclic garbage collector for its build and leaves it as it found it."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from converter.adam import pipeline
from converter.records.simulate import simulate
from converter.sdtm.pipeline import records_to_sdtm


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_paused_during_the_build_and_restored(enabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    sdtm = dict(records_to_sdtm(simulate(8, seed=5), partitions=1).datasets)
    seen: list[bool] = []
    build_all = pipeline.build_all

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return build_all(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_all", spy)
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        result = pipeline.sdtm_to_adam(sdtm)
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()
    assert seen == [False]
    assert len(result.datasets["ADSL"]) == 8
