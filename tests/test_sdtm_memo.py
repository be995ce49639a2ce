"""The records' aggregates the row rules share within one build (RowContext.memo: group_date's groups,
subject_agg's per-subject values) give every variable what it gave computed on its own: the whole SDTM build
with one memo equals each dataset built with a memo of its own, and rules asking for different aggregates of the
same form (min and max, with and without by fields, another where) each get theirs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from converter.records.simulate import simulate
from converter.sdtm.build import build_all, build_dataset
from converter.sdtm.context import ROW, RowContext
from converter.sdtm.pipeline import load_sdtm_specs
from converter.spec.expr import parse_expression


def _equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for col in a.columns:
        if a[col].dtype == object:
            assert [type(v) for v in a[col]] == [type(v) for v in b[col]]


def test_one_memo_per_build_equals_a_memo_per_dataset() -> None:
    specs, ct, forms = load_sdtm_specs()
    records = simulate(40, seed=19)
    shared, _ = build_all(specs, records, ct, forms)
    built: dict[str, pd.DataFrame] = {}
    for name, spec in specs.items():
        built[name] = build_dataset(spec, records, built, ct, forms)  # memo=None: its own
        _equal(shared[name], built[name])


def _ctx(records: dict[str, pd.DataFrame], frame: pd.DataFrame, memo: dict[Any, Any]) -> RowContext:
    specs, ct, forms = load_sdtm_specs()
    spec = specs["SV"]
    return RowContext(frame=frame, labels=None, file="EXPOS", records=records, built={}, ct=ct, schema=forms,
                      spec=spec, source=spec.sources[0], var=spec.variables[0], target={}, memo=memo)  # fmt: skip


def test_rules_sharing_a_memo_get_their_own_aggregates() -> None:
    records = simulate(30, seed=4)
    frame = records["EXPOS"].copy()
    frame.index = pd.RangeIndex(len(frame))
    day1 = parse_expression("DAY == 1", file="test", line=1)
    course = {"form": "EXPOS", "field": "ADMDT", "by": ["COURSE"]}
    asks: list[tuple[str, dict[str, Any]]] = [
        ("derivation", {"name": "group_date", "args": course}),
        ("derivation", {"name": "group_date", "args": {**course, "fn": "max"}}),
        ("derivation", {"name": "group_date", "args": {"form": "EXPOS", "field": "DRUG", "fn": "max"}}),
        ("derivation", {"name": "group_date", "args": {**course, "next": 1, "days": -1}}),
        ("derivation", {"name": "group_date", "args": {"form": "EXPOS", "field": "DRUG", "by": ["COURSE"]}}),
        ("subject_agg", {"form": "EXPOS", "field": "ADMDT", "fn": "min"}),
        ("subject_agg", {"form": "EXPOS", "field": "ADMDT", "fn": "max"}),
        ("subject_agg", {"form": "EXPOS", "field": "ADMDT", "fn": "max", "where": day1}),
        ("subject_agg", {"form": "EXPOS", "field": "ADMDT", "fn": "count"}),
        ("subject_agg", {"form": "EXPOS", "field": "DRUG", "fn": "first"}),
    ]
    memo: dict[Any, Any] = {}
    seen: list[list[object]] = []
    for rule, args in asks * 2:  # the second time round every aggregate comes from the memo
        got = ROW[rule](_ctx(records, frame, memo), args)
        alone = ROW[rule](_ctx(records, frame, {}), args)
        pd.testing.assert_series_equal(got, alone, check_exact=True)
        seen.append(got.tolist())
    assert len(memo) == 9  # the two group_date by COURSE/min asks (with and without next) share one
    assert len({repr(s) for s in seen[: len(asks)]}) == len(asks)  # every ask its own answer
