"""The records' aggregates the row rules share within one build (RowContext.memo: group_date's groups,
subject_agg's per-subject values) give every variable what it gave computed on its own: the whole SDTM build
with one memo equals each dataset built with a memo of its own, and rules asking for different aggregates of the
same form (min and max, with and without by fields, another where) each get theirs. The dataset rules of one
frame share its dates and reference dates (FrameMemo) until a column they read is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
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


def test_dataset_rules_share_dates_until_a_column_they_read_is_written() -> None:
    from types import SimpleNamespace

    from converter.sdtm.context import DATASET, DatasetContext, FrameMemo

    frame = pd.DataFrame({
        "USUBJID": np.array(["S-1", "S-1", "S-2", "S-3"], dtype=object),
        "DTC": np.array(["2024-01-05", "2024-01-01", "2024-02-10", None], dtype=object),
        "RFSTDTC": np.array(["2024-01-02", "2024-01-02", "2023-12-31", "2024-01-01"], dtype=object),
    })  # fmt: skip
    dm = pd.DataFrame({"USUBJID": np.array(["S-1", "S-2"], dtype=object),
                       "RFSTDTC": np.array(["2024-01-03", "2024-02-01"], dtype=object)})  # fmt: skip
    spec = SimpleNamespace(name="XX")
    memo = FrameMemo()

    def day(ref: str, shared: FrameMemo) -> list[object]:  # NaN as None: compared with ==
        ctx = DatasetContext(frame=frame, built={"DM": dm}, ct=None, spec=spec, var=None, memo=shared)  # type: ignore[arg-type]
        return [None if d != d else d for d in DATASET["study_day"](ctx, {"dtc": "DTC", "ref": ref}).tolist()]

    for ref in ("DM.RFSTDTC", "XX.RFSTDTC"):  # another dataset's variable, the frame's own
        assert day(ref, memo) == day(ref, FrameMemo())
    frame["DTC"] = np.array(["2024-03-01", None, "2024-02-11", "2024-01-09"], dtype=object)
    assert day("DM.RFSTDTC", memo) != day("DM.RFSTDTC", FrameMemo())  # kept: the memo is read
    memo.written("DTC")
    assert day("DM.RFSTDTC", memo) == day("DM.RFSTDTC", FrameMemo())
    frame["RFSTDTC"] = np.array(["2024-03-01", "2024-03-01", "2024-03-01", None], dtype=object)
    memo.written("RFSTDTC")  # the frame's own reference is made again; DM's is kept
    assert day("XX.RFSTDTC", memo) == day("XX.RFSTDTC", FrameMemo())
    frame["USUBJID"] = np.array(["S-2", "S-2", "S-1", "S-1"], dtype=object)
    memo.written("USUBJID")
    for ref in ("DM.RFSTDTC", "XX.RFSTDTC"):
        assert day(ref, memo) == day(ref, FrameMemo())


def test_a_dataset_rule_reads_what_an_earlier_one_wrote(tmp_path: Path) -> None:
    """XXSTDTC is null until its dataset rule (copy) runs: the study day read before it is all missing, the one
    read after it is not (the build drops the dates it kept of XXSTDTC when it writes the column)."""
    from converter.spec.loader import load_specs

    (tmp_path / "xx.yaml").write_text(
        "dataset: XX\nlabel: Test\nkeys: [USUBJID, XXSEQ]\nsources:\n  - {id: AE, form: AE}\nvariables:\n"
        "  - {name: USUBJID, label: U, type: text, rule: {usubjid: SUBJID}}\n"
        "  - {name: XXSEQ, label: S, type: integer, rule: {field: AESPID}}\n"
        "  - {name: XXDTC, label: D, type: text, rule: {iso_date: AESTDT}}\n"
        "  - {name: XXBEFORE, label: B, type: integer, rule: {study_day: {dtc: XXSTDTC}}}\n"
        "  - {name: XXSTDTC, label: C, type: text, rule: {copy: {var: XXDTC}}}\n"
        "  - {name: XXAFTER, label: A, type: integer, rule: {study_day: {dtc: XXSTDTC}}}\n",
        encoding="utf-8",
    )
    specs, ct, forms = load_sdtm_specs()
    records = simulate(12, seed=2)
    dm = build_all({"DM": specs["DM"]}, records, ct, forms)[0]["DM"]
    xx = build_dataset(load_specs(tmp_path)["XX"], records, {"DM": dm}, ct, forms)
    assert xx["XXBEFORE"].isna().all()
    assert xx["XXAFTER"].notna().sum() > 10
