"""Results shared between the variables of one ADaM build (converter.adam.shared): computed once per object
inside a build, never kept outside one, and the ADaM datasets are the same with and without sharing."""

from __future__ import annotations

import pandas as pd
import pytest

from converter.adam.pipeline import load_adam_specs, sdtm_to_adam
from converter.adam.shared import shared, shared_results
from converter.records.simulate import simulate
from converter.sdtm.build import build_all
from converter.sdtm.pipeline import records_to_sdtm


def test_outside_a_build_every_call_computes() -> None:
    calls: list[int] = []
    frame = pd.DataFrame({"a": [1]})
    for _ in range(3):
        assert shared("x", (frame,), lambda: calls.append(1) or len(calls)) == len(calls)
    assert len(calls) == 3


def test_inside_a_build_once_per_object_and_description() -> None:
    calls: list[str] = []

    def make(tag: str) -> str:
        calls.append(tag)
        return tag

    one, same_content = pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [1]})
    with shared_results():
        assert shared("x", (one,), lambda: make("one")) == "one"
        assert shared("x", (one,), lambda: make("again")) == "one"  # reused
        assert shared("y", (one,), lambda: make("y")) == "y"  # another description
        assert shared("x", (same_content,), lambda: make("other")) == "other"  # another object
    assert calls == ["one", "y", "other"]
    with shared_results():  # a new build starts empty
        assert shared("x", (one,), lambda: make("fresh")) == "fresh"


@pytest.fixture(scope="module")
def sdtm() -> dict[str, pd.DataFrame]:
    return dict(records_to_sdtm(simulate(150, seed=23)).datasets)


def test_adam_same_with_and_without_sharing(sdtm: dict[str, pd.DataFrame]) -> None:
    specs, ct = load_adam_specs(upstream={n: list(df.columns) for n, df in sdtm.items()})
    alone, _ = build_all(specs, {}, ct, None, upstream=dict(sdtm))  # no shared_results(): nothing shared
    together = sdtm_to_adam(sdtm).datasets
    assert list(alone) == list(together)
    for name, df in alone.items():
        pd.testing.assert_frame_equal(df, together[name], check_exact=True, obj=name)
