"""Every rule of the vocabulary, on small frames, through the engine a spec drives."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mini_records import mini_records

from converter.errors import InputError
from converter.records.schema import load_forms
from converter.sdtm.build import Accounting, build_dataset
from converter.spec.loader import parse_spec
from converter.spec.model import Codelist, Term, Terminology
from converter.spec.rules import RULES

CT = Terminology(
    "test",
    {
        "SEX": Codelist("SEX", "Sex", "C66731", False, (Term("F", "C16576", "Female"), Term("M", "C20197", "Male"))),
        "RACE": Codelist("RACE", "Race", "C74457", True, (Term("WHITE", "C41261"),)),
        "TOXGR": Codelist("TOXGR", "Grade", "C87830", False, tuple(Term(str(i), None) for i in range(1, 6))),
    },
)

DM = pd.DataFrame(
    {
        "USUBJID": ["NCT01371630-1001", "NCT01371630-1002"],
        "RFSTDTC": ["2012-01-07", "2012-02-07"],
        "RFENDTC": ["2012-03-20", "2012-03-05"],
        "RFXSTDTC": ["2012-01-07", "2012-02-07"],
        "RFXENDTC": ["2012-01-09", "2012-02-07"],
    }
)


def build(variables: list[dict[str, object]], source: dict[str, object], *, records=None, built=None) -> pd.DataFrame:
    doc = {"dataset": "XX", "label": "Test", "keys": [], "sources": [source], "variables": variables}
    spec = parse_spec(doc, Path("xx.yaml"))
    return build_dataset(spec, records or mini_records(), built or {"DM": DM}, CT, load_forms(), Accounting())


def v(name: str, rule: dict[str, object], vtype: str = "text") -> dict[str, object]:
    return {"name": name, "label": name, "type": vtype, "origin": "Derived", "rule": rule}


USUBJID = v("USUBJID", {"usubjid": "SUBJID"})


def test_every_rule_is_implemented() -> None:
    from converter.sdtm.algorithms import DATASET, ROW

    missing = {n for n, r in RULES.items() if (ROW if r.phase == "row" else DATASET).get(n) is None}
    assert not missing


def test_field_assign_usubjid_template() -> None:
    df = build(
        [USUBJID, v("A", {"field": "SEX"}), v("B", {"assign": "X"}), v("C", {"template": "S{SUBJID}/{BRTHDT}"}),
         v("AGE", {"field": "AGE"}, "integer")],
        {"form": "DEMOG"},
    )  # fmt: skip
    assert df["USUBJID"].tolist() == ["NCT01371630-1001", "NCT01371630-1002"]
    assert df["A"].tolist() == ["F", "M"]
    assert df["B"].tolist() == ["X", "X"]
    assert df["C"].tolist() == ["S1001/1970", "S1002/1950-03"]
    assert df["AGE"].tolist() == [41, 61] and str(df["AGE"].dtype) == "Int64"


def test_ct_maps_decodes_and_rejects_outside_non_extensible() -> None:
    recs = mini_records()
    recs["DEMOG"].loc[0, "SEX"] = "female"
    df = build([v("SEX", {"ct": {"field": "SEX", "codelist": "SEX"}})], {"form": "DEMOG"}, records=recs)
    assert df["SEX"].tolist() == ["F", "M"]
    recs["DEMOG"].loc[1, "SEX"] = "X"
    problems: list = []
    doc = {"dataset": "XX", "label": "T", "sources": [{"form": "DEMOG"}],
           "variables": [v("SEX", {"ct": {"field": "SEX", "codelist": "SEX"}})]}  # fmt: skip
    build_dataset(parse_spec(doc, Path("x.yaml")), recs, {}, CT, load_forms(), None, problems)
    assert len(problems) == 1
    p = problems[0]
    assert (p.file, p.record, p.field, p.value, p.rule) == ("DEMOG", "SUBJID=1002", "SEX", "X", "ct")
    # extensible: a sponsor value is kept as collected
    df = build([v("RACE", {"ct": {"field": "RACE", "codelist": "RACE"}})], {"form": "DEMOG"})
    assert df["RACE"].tolist() == ["WHITE", "ASIAN"]


def test_ct_on_integer_field() -> None:
    df = build([v("GR", {"ct": {"field": "AEGRADE", "codelist": "TOXGR"}})], {"form": "AE"})
    assert df["GR"].tolist() == ["4", "3"]


def test_map_with_and_without_default() -> None:
    df = build([v("M", {"map": {"field": "SEX", "values": {"F": "Woman"}, "default": "Other"}})], {"form": "DEMOG"})
    assert df["M"].tolist() == ["Woman", "Other"]
    with pytest.raises(InputError):
        from converter.sdtm.build import build_all

        doc = {"dataset": "XX", "label": "T", "sources": [{"form": "DEMOG"}],
               "variables": [v("M", {"map": {"field": "SEX", "values": {"F": "Woman"}}})]}  # fmt: skip
        build_all({"XX": parse_spec(doc, Path("x.yaml"))}, mini_records(), CT, load_forms())


def test_iso_dates_keep_partial_precision() -> None:
    df = build([v("D", {"iso_date": "AESTDT"}), v("E", {"iso_date": "AEENDT"})], {"form": "AE"})
    assert df["D"].tolist() == ["2012-01-15", "2012-02"]
    assert df["E"].tolist() == ["2012-02-10", None]
    recs = mini_records()
    recs["AE"]["T"] = ["08:30", None]
    spec_doc = {"dataset": "XX", "label": "T", "sources": [{"form": "AE"}],
                "variables": [v("DT", {"iso_datetime": {"date": "AESTDT"}})]}  # fmt: skip
    spec = parse_spec(spec_doc, Path("x.yaml"))
    assert build_dataset(spec, recs, {}, CT, None)["DT"].tolist() == ["2012-01-15", "2012-02"]


def test_flag_and_case() -> None:
    df = build(
        [USUBJID, v("DTHFL", {"flag": "DTHDT"}), v("OLD", {"case": {"when": [["AGE >= 60", "Y"]], "else": "N"}}),
         v("F", {"flag": {"field": "SEX", "value": "F"}})],
        {"form": "DEMOG", "join": ["DEATH"]},
    )  # fmt: skip
    assert df["DTHFL"].tolist() == [None, "Y"]
    assert df["OLD"].tolist() == ["N", "Y"]
    assert df["F"].tolist() == ["Y", None]


def test_subject_agg_and_lookup() -> None:
    df = build(
        [USUBJID, v("FIRST", {"subject_agg": {"form": "EXPOS", "field": "ADMDT", "fn": "min"}}),
         v("LAST", {"subject_agg": {"form": "EXPOS", "field": "ADMDT", "fn": "max"}}),
         v("N", {"subject_agg": {"form": "EXPOS", "field": "ADMDT", "fn": "count"}}, "integer"),
         v("NINO", {"subject_agg": {"form": "EXPOS", "field": "ADMDT", "fn": "count",
                                    "where": "DRUG == 'CYCLOPHOSPHAMIDE'"}}, "integer"),
         v("REF", {"lookup": {"dataset": "DM", "var": "RFSTDTC"}})],
        {"form": "DEMOG"},
    )  # fmt: skip
    assert df["FIRST"].tolist() == ["2012-01-07", "2012-02-07"]
    assert df["LAST"].tolist() == ["2012-01-09", "2012-02-07"]
    assert df["N"].tolist() == [2, 1]
    assert df["NINO"].tolist() == [1, 0]
    assert df["REF"].tolist() == ["2012-01-07", "2012-02-07"]


def test_named_derivations() -> None:
    df = build(
        [v("L", {"derivation": {"name": "latest_date", "args": {"of": ["LSTALVDT", "DTHDT"]}}}),
         v("P", {"derivation": {"name": "first_present", "args": {"of": ["DTHDT", "LSTALVDT"]}}})],
        {"form": "FU", "join": ["DEATH"]},
    )  # fmt: skip
    assert df["L"].tolist() == ["2014-01-01", "2012-05-01"]
    assert df["P"].tolist() == ["2014-01-01", "2012-05-01"]


def test_seq_study_day_epoch_baseline_copy() -> None:
    df = build(
        [USUBJID, v("LBDTC", {"iso_date": "LBDT"}), v("LBTESTCD", {"field": "LBTEST"}), v("LBORRES", {"field": "LBVAL"}),
         v("LBSEQ", {"seq": {"order": ["LBDTC"]}}, "integer"), v("LBDY", {"study_day": {"dtc": "LBDTC"}}, "integer"),
         v("EPOCH", {"epoch": {"dtc": "LBDTC", "end": "DM.RFENDTC"}}),
         v("LBBLFL", {"baseline_flag": {"by": ["LBTESTCD"], "dtc": "LBDTC", "value": "LBORRES"}}),
         v("LBSTRESC", {"copy": {"var": "LBORRES"}})],
        {"form": "LAB"},
    )  # fmt: skip
    assert df["LBSEQ"].tolist() == [1, 2]
    assert df["LBDY"].tolist() == [-3, 9]  # 2012-01-04 is day -3 (no day 0), 2012-01-15 is day 9
    assert df["EPOCH"].tolist() == ["SCREENING", "TREATMENT"]
    assert df["LBBLFL"].tolist() == ["Y", None]
    assert df["LBSTRESC"].tolist() == ["150", "20"]
    assert df["LBORRES"].tolist() == ["150", "20"]  # numbers as their shortest exact text


def test_study_day_has_no_day_zero_and_skips_partial_dates() -> None:
    dm = DM.assign(RFSTDTC=["2012-01-15", "2012-02-01"])
    df = build([USUBJID, v("D", {"iso_date": "AESTDT"}), v("DY", {"study_day": {"dtc": "D"}}, "integer")],
               {"form": "AE"}, built={"DM": dm})  # fmt: skip
    assert df["DY"].tolist()[0] == 1
    assert pd.isna(df["DY"].tolist()[1])


def test_inline_rows_and_seq_by() -> None:
    df = build(
        [v("P", {"field": "P"}), v("VAL", {"field": "VAL"}), v("SEQ", {"seq": {"by": ["P"], "order": ["VAL"]}}, "integer")],
        {"rows": [{"P": "A", "VAL": "z"}, {"P": "A", "VAL": "b"}, {"P": "B", "VAL": "q"}]},
    )
    assert sorted(zip(df["P"], df["VAL"], df["SEQ"], strict=True)) == [("A", "b", 1), ("A", "z", 2), ("B", "q", 1)]


def test_results_do_not_depend_on_input_row_order() -> None:
    variables = [USUBJID, v("D", {"iso_date": "AESTDT"}), v("AESPID", {"field": "AESPID"}),
                 v("SEQ", {"seq": {"order": ["D", "AESPID"]}}, "integer"), v("DY", {"study_day": {"dtc": "D"}}, "integer")]
    recs = mini_records()
    recs["AE"] = pd.concat([recs["AE"]] * 3, ignore_index=True).assign(AESPID=range(1, 7))
    base = build(variables, {"form": "AE"}, records=recs).sort_values(["USUBJID", "SEQ"]).reset_index(drop=True)
    for seed in range(3):
        shuffled = dict(recs)
        idx = list(range(len(recs["AE"])))
        random.Random(seed).shuffle(idx)
        shuffled["AE"] = recs["AE"].iloc[idx].reset_index(drop=True)
        got = build(variables, {"form": "AE"}, records=shuffled).sort_values(["USUBJID", "SEQ"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(base, got)


def test_where_left_out_records_are_counted() -> None:
    doc = {"dataset": "XX", "label": "T", "sources": [{"form": "AE", "where": "AEGRADE >= 4"}],
           "variables": [v("T", {"field": "AETERM"})]}  # fmt: skip
    acc = Accounting()
    recs = mini_records()
    acc.start(recs)
    df = build_dataset(parse_spec(doc, Path("x.yaml")), recs, {}, CT, load_forms(), acc)
    assert df["T"].tolist() == ["low platelets"]
    row = next(r for r in acc.rows() if r["form"] == "AE")
    assert row["rejected"] == 1 and "AEGRADE >= 4 (1)" in str(row["reasons"])


def test_spec_yaml_roundtrip_of_vocabulary_docs() -> None:
    # every rule documents itself (the docs feed Define-XML MethodDefs)
    assert all(r.doc for r in RULES.values())
    yaml.safe_dump({n: r.doc for n, r in RULES.items()})
