"""The ADaM rules one by one, on small hand-made SDTM frames, through the spec engine; plus the spec checks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import converter.adam.algorithms as alg
from converter.adam.pipeline import check_adam_specs, cross_checks, prepare_spec
from converter.errors import InputError, Problem, SpecError
from converter.sdtm.build import build_dataset
from converter.spec.loader import parse_spec
from converter.spec.model import Terminology

CT = Terminology("test", {})


def d(iso: str) -> int:
    return int((pd.Timestamp(iso) - alg.SAS_EPOCH).days)


def vals(col: pd.Series) -> list[Any]:
    """Values with every missing marker (None, NaN, None) as None."""
    return [None if pd.isna(x) else x for x in col.tolist()]


DM = pd.DataFrame(
    {
        "STUDYID": ["S"] * 3,
        "USUBJID": ["S-1", "S-2", "S-3"],
        "AGE": pd.array([30, 64, 65], dtype="Int64"),
        "RFSTDTC": ["2020-01-10", "2020-02-01", None],
    }
)
EX = pd.DataFrame(
    {
        "USUBJID": ["S-1", "S-1", "S-2"],
        "EXSEQ": pd.array([2, 1, 1], dtype="Int64"),
        "EXSTDTC": ["2020-01-20", "2020-01-10", "2020-02-01"],
        "EXENDTC": ["2020-01-25", "2020-01-11", "2020-02-03"],
        "EXDOSE": [1.0, 2.0, 0.0],
    }
)
RS = pd.DataFrame(
    {
        "USUBJID": ["S-1", "S-1", "S-1", "S-2", "S-2"],
        "RSSEQ": pd.array([1, 2, 3, 1, 2], dtype="Int64"),
        "RSSTRESC": ["PR", "CR", "CR", "NR", "RELAPSE"],
        "RSDTC": ["2020-02-01", "2020-03-01", "2020-04-01", "2020-03-01", "2020-05-01"],
    }
)
SUPPDM = pd.DataFrame(
    {
        "USUBJID": ["S-1", "S-2", "S-1"],
        "IDVAR": [None, None, None],
        "IDVARVAL": [None, None, None],
        "QNAM": ["SALVLN", "SALVLN", "PHSTAT"],
        "QVAL": ["1", "3+", "NEGATIVE"],
    }
)
AE = pd.DataFrame(
    {
        "USUBJID": ["S-1", "S-1", "S-1", "S-2"],
        "AESEQ": pd.array([1, 2, 3, 1], dtype="Int64"),
        "AESPID": ["1", "2", "3", "1"],
        "AESTDTC": ["2020-01", "2019", "2020-01-15", None],
        "AEENDTC": ["2020-02", None, "2020-01-20", "2020-02-02"],
        "AETOXGR": ["3", "1", "4", "2"],
    }
)
SUPPAE = pd.DataFrame(
    {
        "USUBJID": ["S-1", "S-2"],
        "IDVAR": ["AESPID", "AESPID"],
        "IDVARVAL": ["3", "1"],
        "QNAM": ["AEVOD", "AEVOD"],
        "QVAL": ["Y", "N"],
    }
)
SDTM = {"DM": DM, "EX": EX, "RS": RS, "SUPPDM": SUPPDM, "AE": AE, "SUPPAE": SUPPAE}


def v(name: str, rule: dict[str, Any] | None = None, vtype: str = "text", **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "label": name, "type": vtype, "origin": kw.pop("origin", "Derived")}
    if rule is not None:
        out["rule"] = rule
    return out | kw


def build(variables: list[dict[str, Any]], source: str = "DM", built: dict[str, pd.DataFrame] | None = None,
          keys: list[str] | None = None, where: str | None = None) -> pd.DataFrame:  # fmt: skip
    src: dict[str, Any] = {"id": source, "dataset": source} | ({"where": where} if where else {})
    doc = {"dataset": "XX", "label": "Test", "standard": "ADaMIG 1.3", "keys": keys or [], "sources": [src],
           "variables": variables}  # fmt: skip
    spec = prepare_spec(parse_spec(doc, Path("xx.yaml")))
    problems: list[Problem] = []
    df = build_dataset(spec, {}, built or SDTM, CT, None, problems=problems)
    if problems:
        raise InputError(problems)
    return df


USUBJID = v("USUBJID", origin={"type": "Predecessor", "source": "DM.USUBJID"})


def test_every_adam_rule_is_registered_and_implemented() -> None:
    from converter.sdtm.algorithms import DATASET, ROW
    from converter.spec.adam_rules import ADAM_RULES as RULES

    for name in ("merge", "merge_flag", "merge_summary", "supp", "extreme_date", "date", "date_flag", "duration",
                 "rel_day", "group", "compute", "trtemfl", "tte", "tte_attr", "extreme_flag"):  # fmt: skip
        rdef = RULES[name]
        assert (ROW if rdef.phase == "row" else DATASET).get(name) is not None


def test_merge_first_last_filter_as_date_values_missing() -> None:
    df = build(
        [
            USUBJID,
            v("TRTSDT", {"merge": {"dataset": "EX", "order": ["EXSTDTC"], "var": "EXSTDTC", "as": "date"}}, "integer"),
            v(
                "TRTEDT",
                {"merge": {"dataset": "EX", "order": ["EXENDTC"], "mode": "last", "var": "EXENDTC", "as": "date"}},
                "integer",
            ),
            v(
                "DOSED",
                {
                    "merge": {
                        "dataset": "EX",
                        "filter": "EXDOSE > 0",
                        "order": ["desc(EXDOSE)"],
                        "var": "EXDOSE",
                        "values": {"2": "HIGH"},
                        "default": "LOW",
                        "missing": "NONE",
                    }
                },
            ),
        ]
    )
    assert vals(df["TRTSDT"]) == [d("2020-01-10"), d("2020-02-01"), None]
    assert vals(df["TRTEDT"]) == [d("2020-01-25"), d("2020-02-03"), None]
    assert vals(df["DOSED"]) == ["HIGH", "NONE", "NONE"]
    assert str(df["TRTSDT"].dtype) == "Int64"


def test_merge_best_response_by_rank_and_renamed_keys() -> None:
    rank = {"var": "RSSTRESC", "rank": ["CR", "PR", "NR"]}
    df = build(
        [
            USUBJID,
            v(
                "BOR",
                {
                    "merge": {
                        "dataset": "RS",
                        "filter": "RSSTRESC != 'RELAPSE'",
                        "order": [rank, "RSDTC"],
                        "var": "RSSTRESC",
                    }
                },
            ),
            v(
                "BORSEQ",
                {
                    "merge": {
                        "dataset": "RS",
                        "filter": "RSSTRESC != 'RELAPSE'",
                        "order": [rank, "RSDTC"],
                        "var": "RSSEQ",
                    }
                },
                "integer",
            ),
        ]
    )
    assert vals(df["BOR"]) == ["CR", "NR", None]
    assert vals(df["BORSEQ"]) == [2, 1, None]  # the earliest CR


def test_merge_partial_date_is_a_problem() -> None:
    with pytest.raises(InputError, match="partial date"):
        build([v("USUBJID", {"field": "USUBJID"}), v("X", {"merge": {"dataset": "AE", "order": ["AESEQ"],
                                                                   "var": "AESTDTC", "as": "date"}}, "integer")],
              source="DM")  # fmt: skip


def test_merge_flag_summary_supp_extreme_date() -> None:
    df = build(
        [
            USUBJID,
            v("SAFFL", {"merge_flag": {"dataset": "EX", "filter": "EXDOSE > 0", "true": "Y", "false": "N"}}),
            v("NDOSE", {"merge_summary": {"dataset": "EX", "var": "EXDOSE", "fn": "count"}}, "integer"),
            v("SUMDOSE", {"merge_summary": {"dataset": "EX", "var": "EXDOSE", "fn": "sum"}}, "float"),
            v("SALVLN", {"supp": {"dataset": "SUPPDM", "qnam": "SALVLN"}}),
            v(
                "LSTALVDT",
                {
                    "extreme_date": {
                        "sources": [{"dataset": "EX", "date": "EXENDTC"}, {"dataset": "RS", "date": "RSDTC"}]
                    }
                },
                "integer",
            ),
        ]
    )
    assert vals(df["SAFFL"]) == ["Y", "N", "N"]
    assert vals(df["NDOSE"]) == [2, 1, 0]
    assert vals(df["SUMDOSE"])[:2] == [3.0, 0.0] and np.isnan(df["SUMDOSE"].iloc[2])
    assert vals(df["SALVLN"]) == ["1", "3+", None]
    assert vals(df["LSTALVDT"]) == [d("2020-04-01"), d("2020-05-01"), None]


def test_supp_by_idvar_onto_parent_records() -> None:
    df = build([v("USUBJID", {"field": "USUBJID"}), v("AESEQ", {"field": "AESEQ"}, "integer"),
                v("AEVOD", {"supp": {"dataset": "SUPPAE", "qnam": "AEVOD"}})], source="AE")  # fmt: skip
    assert vals(df["AEVOD"]) == [None, None, "Y", "N"]


@pytest.mark.parametrize(
    ("dtc", "impute", "highest", "value", "flag"),
    [
        ("2020-02-10", "first", "M", "2020-02-10", None),
        ("2020-02", "first", "M", "2020-02-01", "D"),
        ("2020-02", "last", "M", "2020-02-29", "D"),
        ("2020-02", "mid", "M", "2020-02-15", "D"),
        ("2019", "first", "M", "2019-01-01", "M"),
        ("2019", "last", "M", "2019-12-31", "M"),
        ("2019", "mid", "M", "2019-06-30", "M"),
        ("2019", "first", "D", None, None),
        ("2020-02", None, "M", None, None),
        (None, "first", "M", None, None),
    ],
)
def test_date_imputation_records_what_it_imputed(
    dtc: str | None, impute: str | None, highest: str, value: str | None, flag: str | None
) -> None:
    res = alg.impute_dates(pd.Series([dtc], dtype=object), impute, highest)
    got = res.dates.iloc[0]
    assert np.isnan(got) if value is None else got == d(value), (dtc, got)
    assert res.flags.iloc[0] == flag


def test_date_imputation_stays_within_bounds_inside_the_partial_range() -> None:
    dtc = pd.Series(["2020-01", "2020-01", "2020-03"], dtype=object)
    trt = pd.Series([float(d("2020-01-10")), float(d("2019-12-20")), float(d("2020-01-10"))])
    res = alg.impute_dates(dtc, "first", "M", not_before=[trt])
    assert res.dates.tolist() == [d("2020-01-10"), d("2020-01-01"), d("2020-03-01")]
    cut = pd.Series([float(d("2020-01-20"))] * 3)
    res = alg.impute_dates(dtc, "last", "M", not_after=[cut])
    assert res.dates.tolist() == [d("2020-01-20"), d("2020-01-20"), d("2020-03-31")]
    assert res.flags.tolist() == ["D", "D", "D"]


def adae_vars() -> list[dict[str, Any]]:
    pred = {"type": "Predecessor", "source": "ADSL.TRTSDT"}
    return [
        v("USUBJID", {"field": "USUBJID"}),
        v("AESEQ", {"field": "AESEQ"}, "integer"),
        v("TRTSDT", None, "integer", origin=pred),
        v("TRTEDT", None, "integer", origin={"type": "Predecessor", "source": "ADSL.TRTEDT"}),
        v("ASTDT", {"date": {"dtc": "AESTDTC", "impute": "first", "not_before": ["TRTSDT"]}}, "integer"),
        v("ASTDTF", {"date_flag": {"of": "ASTDT"}}),
        v("AENDT", {"date": {"dtc": "AEENDTC", "impute": "last"}}, "integer"),
        v("AENDTF", {"date_flag": {"of": "AENDT"}}),
        v("ASTDY", {"rel_day": {"date": "ASTDT", "ref": "TRTSDT"}}, "integer"),
        v("ADURN", {"duration": {"start": "ASTDT", "end": "AENDT"}}, "integer"),
        v(
            "TRTEMFL",
            {
                "trtemfl": {
                    "start": "ASTDT",
                    "start_dtc": "AESTDTC",
                    "end": "AENDT",
                    "trt_start": "TRTSDT",
                    "trt_end": "TRTEDT",
                    "window": 5,
                }
            },
        ),
        v("ATOXGRN", {"group": {"var": "AETOXGR", "values": {"1": 1, "2": 2, "3": 3, "4": 4}}}, "integer"),
        v("AOCCFL", {"extreme_flag": {"by": ["USUBJID"], "order": ["ASTDT", "AESEQ"], "filter": "TRTEMFL == 'Y'"}}),
        v("AOCCIFL", {"extreme_flag": {"by": ["USUBJID"], "order": ["desc(ATOXGRN)", "ASTDT", "AESEQ"]}}),
    ]


ADSL_MINI = pd.DataFrame(
    {
        "USUBJID": ["S-1", "S-2"],
        "TRTSDT": pd.array([d("2020-01-10"), d("2020-02-01")], dtype="Int64"),
        "TRTEDT": pd.array([d("2020-01-25"), d("2020-02-03")], dtype="Int64"),
    }
)


def test_adae_dates_flags_trtemfl_occurrence() -> None:
    df = build(adae_vars(), source="AE", built={**SDTM, "ADSL": ADSL_MINI}, keys=["USUBJID", "AESEQ"])
    # first of month but not before TRTSDT; a year-only date imputed to 1 January (M)
    assert vals(df["ASTDT"]) == [d("2020-01-10"), d("2019-01-01"), d("2020-01-15"), None]
    assert vals(df["ASTDTF"]) == ["D", "M", None, None]
    assert vals(df["AENDT"]) == [d("2020-02-29"), None, d("2020-01-20"), d("2020-02-02")]
    assert vals(df["AENDTF"]) == ["D", None, None, None]
    assert vals(df["ASTDY"]) == [1, d("2019-01-01") - d("2020-01-10"), 6, None]
    assert vals(df["ADURN"]) == [51, None, 6, None]
    # 2019 is before treatment start: not emergent; a missing start ending after treatment start: emergent
    assert vals(df["TRTEMFL"]) == ["Y", None, "Y", "Y"]
    assert vals(df["AOCCFL"]) == ["Y", None, None, "Y"]
    assert vals(df["AOCCIFL"]) == [None, None, "Y", "Y"]


def test_trtemfl_window() -> None:
    adsl = ADSL_MINI.assign(TRTEDT=pd.array([d("2020-01-12"), d("2020-02-03")], dtype="Int64"))
    df = build(adae_vars(), source="AE", built={**SDTM, "ADSL": adsl}, keys=["USUBJID", "AESEQ"])
    # S-1: AE 1 (imputed 2020-01-10) and AE 3 (2020-01-15) start within TRTEDT + 5 days = 2020-01-17
    assert vals(df["TRTEMFL"]) == ["Y", None, "Y", "Y"]
    adsl2 = ADSL_MINI.assign(TRTEDT=pd.array([d("2020-01-04"), d("2020-02-03")], dtype="Int64"))
    df2 = build(adae_vars(), source="AE", built={**SDTM, "ADSL": adsl2}, keys=["USUBJID", "AESEQ"])
    assert vals(df2["TRTEMFL"]) == [None, None, None, "Y"]  # S-1: both start after TRTEDT + 5 days = 2020-01-09


def test_group_ranges_values_keep_default_missing_compute() -> None:
    df = build(
        [
            USUBJID,
            v("AGE", None, "integer", origin={"type": "Predecessor", "source": "DM.AGE"}),
            v("AGEGR1", {"group": {"var": "AGE", "ranges": [{"lt": 65, "value": "<65"}, {"ge": 65, "value": ">=65"}]}}),
            v("AGEGR1N", {"group": {"var": "AGEGR1", "values": {"<65": 1, ">=65": 2}}}, "integer"),
            v("SUBJ", {"group": {"var": "USUBJID", "values": {"S-1": "ONE"}, "keep": True}}),
            v("AGE2", {"compute": {"expr": "AGE / 3", "round": 1}}, "float"),
        ]
    )
    assert vals(df["AGEGR1"]) == ["<65", "<65", ">=65"]
    assert vals(df["AGEGR1N"]) == [1, 1, 2]
    assert vals(df["SUBJ"]) == ["ONE", "S-2", "S-3"]
    assert vals(df["AGE2"]) == [10.0, 21.3, 21.7]


def test_group_value_outside_every_group_is_a_problem() -> None:
    with pytest.raises(InputError, match="falls in no group"):
        build([USUBJID, v("X", {"group": {"var": "USUBJID", "values": {"S-1": "A"}}})])


def test_sas_round_half_away_from_zero() -> None:
    assert alg.sas_round(pd.Series([74.25, -0.5, 2.5, 28.15, np.nan]), 1).tolist()[:4] == [74.3, -0.5, 2.5, 28.2]
    assert alg.sas_round(pd.Series([2.5, -2.5]), 0).tolist() == [3.0, -3.0]


def tte_spec() -> list[dict[str, Any]]:
    events = [{"dataset": "RS", "filter": "RSSTRESC == 'RELAPSE'", "date": "RSDTC", "seq": "RSSEQ",
               "description": "RELAPSE"}]  # fmt: skip
    censors = [{"dataset": "RS", "filter": "RSSTRESC != 'RELAPSE'", "date": "RSDTC", "seq": "RSSEQ",
                "description": "LAST ASSESSMENT"}]  # fmt: skip
    return [
        v("USUBJID", {"field": "USUBJID"}),
        v("STARTDT", {"date": {"dtc": "RFSTDTC"}}, "integer"),
        v("ADT", {"tte": {"start": "STARTDT", "events": events, "censors": censors}}, "integer"),
        v("AVAL", {"duration": {"start": "STARTDT", "end": "ADT"}}, "float"),
        v("CNSR", {"tte_attr": {"of": "ADT", "attr": "CNSR"}}, "integer"),
        v("EVNTDESC", {"tte_attr": {"of": "ADT", "attr": "EVNTDESC"}}),
        v("CNSDTDSC", {"tte_attr": {"of": "ADT", "attr": "CNSDTDSC"}}),
        v("SRCDOM", {"tte_attr": {"of": "ADT", "attr": "SRCDOM"}}),
        v("SRCVAR", {"tte_attr": {"of": "ADT", "attr": "SRCVAR"}}),
        v("SRCSEQ", {"tte_attr": {"of": "ADT", "attr": "SRCSEQ"}}, "integer"),
    ]


def test_tte_earliest_event_else_latest_censoring() -> None:
    df = build(tte_spec(), where="USUBJID != 'S-3'")
    assert vals(df["ADT"]) == [d("2020-04-01"), d("2020-05-01")]
    assert vals(df["CNSR"]) == [1, 0]
    assert vals(df["AVAL"]) == [d("2020-04-01") - d("2020-01-10") + 1, d("2020-05-01") - d("2020-02-01") + 1]
    assert vals(df["EVNTDESC"]) == [None, "RELAPSE"]
    assert vals(df["CNSDTDSC"]) == ["LAST ASSESSMENT", None]
    assert vals(df["SRCDOM"]) == ["RS", "RS"] and vals(df["SRCVAR"]) == ["RSDTC", "RSDTC"]
    assert vals(df["SRCSEQ"]) == [3, 2]


def test_tte_a_censoring_states_its_own_evntdesc_and_cnsdtdsc() -> None:
    # admiral's censor_source(set_values_to = exprs(EVNTDESC = "Alive", CNSDTDSC = "Alive During Study"))
    spec = tte_spec()
    adt = spec[2]["rule"]["tte"]
    adt["censors"][0] = {**adt["censors"][0], "evntdesc": "ALIVE", "cnsdtdsc": "ALIVE DURING STUDY"}
    df = build(spec, where="USUBJID != 'S-3'")
    assert vals(df["CNSR"]) == [1, 0]
    assert vals(df["EVNTDESC"]) == ["ALIVE", "RELAPSE"]  # the event keeps its description
    assert vals(df["CNSDTDSC"]) == ["ALIVE DURING STUDY", None]


def test_tte_without_any_date_is_a_problem() -> None:
    with pytest.raises(InputError, match="no event and no censoring date"):
        build(tte_spec())


def shuffled(frames: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    rng = random.Random(seed)
    return {k: f.sample(frac=1.0, random_state=rng.randrange(10**6)).reset_index(drop=True) for k, f in frames.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_results_do_not_depend_on_row_order(seed: int) -> None:
    built = {**SDTM, "ADSL": ADSL_MINI}
    a = build(adae_vars(), source="AE", built=built, keys=["USUBJID", "AESEQ"])
    b = build(adae_vars(), source="AE", built=shuffled(built, seed), keys=["USUBJID", "AESEQ"])
    pd.testing.assert_frame_equal(a, b)
    rank = {"var": "RSSTRESC", "rank": ["CR", "PR", "NR"]}
    spec = [USUBJID, v("BORSEQ", {"merge": {"dataset": "RS", "order": [rank], "var": "RSSEQ"}}, "integer")]
    pd.testing.assert_frame_equal(build(spec, keys=["USUBJID"]), build(spec, built=shuffled(SDTM, seed),
                                                                      keys=["USUBJID"]))  # fmt: skip
    pd.testing.assert_frame_equal(build(tte_spec(), where="USUBJID != 'S-3'", keys=["USUBJID"]),
                                  build(tte_spec(), where="USUBJID != 'S-3'", built=shuffled(SDTM, seed),
                                        keys=["USUBJID"]))  # fmt: skip


def test_tie_break_is_by_content() -> None:
    rs = pd.DataFrame({"USUBJID": ["S-1", "S-1"], "RSSEQ": [5, 4], "RSSTRESC": ["CR", "CR"],
                       "RSDTC": ["2020-01-01", "2020-01-01"]})  # fmt: skip
    spec = [USUBJID, v("SEQ", {"merge": {"dataset": "RS", "order": ["RSDTC"], "var": "RSSEQ"}}, "integer")]
    for frame in (rs, rs.iloc[::-1]):
        assert build(spec, built={**SDTM, "RS": frame})["SEQ"].iloc[0] == 4


def spec_doc(variables: list[dict[str, Any]], depends: list[str] | None = None) -> dict[str, Any]:
    return {"dataset": "XX", "label": "T", "standard": "ADaMIG 1.3", "sources": [{"id": "DM", "dataset": "DM"}],
            "variables": variables, "depends": depends or []}  # fmt: skip


def test_spec_checks_before_data() -> None:
    cols = {k: list(f.columns) for k, f in SDTM.items()}
    bad = [
        v("A", {"merge": {"dataset": "ADSL", "var": "X"}}),
        v("B", {"merge": {"dataset": "EX", "var": "NOPE"}}),
        v("C", {"date": {"dtc": "LATER"}}, "integer"),
        v("D", {"date_flag": {"of": "A"}}),
        v("E", {"tte": {"events": [{"dataset": "RS", "dte": "RSDTC"}], "censors": []}}, "integer"),
        v("LATER", {"field": "AGE"}),
    ]
    with pytest.raises(SpecError) as bad_enum:  # a value outside an argument's closed set: refused at load
        parse_spec(spec_doc([v("F", {"merge": {"dataset": "EX", "var": "EXSEQ", "mode": "latest"}})]), Path("x.yaml"))
    assert "mode must be one of first, last (got 'latest')" in bad_enum.value.messages[0]
    spec = prepare_spec(parse_spec(spec_doc(bad), Path("xx.yaml")))
    with pytest.raises(SpecError) as exc:
        check_adam_specs({"XX": spec}, cols)
    text = "\n".join(exc.value.messages)
    assert "reads ADSL, which is neither SDTM input nor in depends" in text
    assert "EX has no variable NOPE" in text
    assert "reads LATER, which is neither an earlier variable nor a source column" in text
    assert "names A, which has no date or datetime rule" in text
    assert "unknown key 'dte'" in text and "date is required" in text


def test_predecessor_without_rule_copies_or_merges() -> None:
    doc = spec_doc([v("USUBJID", None, origin={"type": "Predecessor", "source": "DM.USUBJID"}),
                    v("TRTSDT", None, "integer", origin={"type": "Predecessor", "source": "ADSL.TRTSDT"})],
                   depends=["ADSL"])  # fmt: skip
    spec = prepare_spec(parse_spec(doc, Path("xx.yaml")))
    assert spec.variable("USUBJID").rules["*"].name == "field"
    assert spec.variable("TRTSDT").rules["*"].name == "merge"
    df = build_dataset(spec, {}, {**SDTM, "ADSL": ADSL_MINI}, CT, None)
    assert vals(df["TRTSDT"]) == [d("2020-01-10"), d("2020-02-01"), None]


def test_cross_checks_find_problems() -> None:
    adsl = pd.DataFrame({"USUBJID": ["S-1", "S-1"], "DCUTDT": [d("2020-03-01")] * 2})
    adtte = pd.DataFrame({"USUBJID": ["S-9", "S-1"], "PARAMCD": ["OS", "OS"], "CNSR": [0, 0],
                          "ADT": [d("2020-05-01"), d("2020-02-01")], "SRCDOM": ["RS", "RS"],
                          "SRCVAR": ["RSDTC", "RSDTC"], "SRCSEQ": [2, 1]})  # fmt: skip
    msgs = cross_checks({"ADSL": adsl, "ADTTE": adtte}, {"DM": DM, "RS": RS})
    text = "\n".join(msgs)
    assert "more than one record for a subject" in text
    assert "ADTTE: 1 subject(s) not in ADSL" in text
    assert "after the data cut" in text
    assert "whose ADT is not RS.RSDTC of the cited record" in text


def test_trtemfl_missing_start_uses_the_partial_date() -> None:
    variables = [
        v("USUBJID", {"field": "USUBJID"}),
        v("AESEQ", {"field": "AESEQ"}, "integer"),
        v("TRTSDT", None, "integer", origin={"type": "Predecessor", "source": "ADSL.TRTSDT"}),
        v("ASTDT", {"date": {"dtc": "AESTDTC", "impute": "first", "highest": "D"}}, "integer"),
        v("NOPART", {"trtemfl": {"start": "ASTDT", "trt_start": "TRTSDT"}}),
        v("PART", {"trtemfl": {"start": "ASTDT", "start_dtc": "AESTDTC", "trt_start": "TRTSDT"}}),
    ]
    df = build(variables, source="AE", built={**SDTM, "ADSL": ADSL_MINI}, keys=["USUBJID", "AESEQ"])
    assert vals(df["ASTDT"])[1] is None  # "2019": not imputed with highest D
    assert vals(df["NOPART"]) == [None, "Y", "Y", "Y"]  # 2020-01 -> 2020-01-01, before TRTSDT
    assert vals(df["PART"]) == [None, None, "Y", "Y"]


def dtm(iso: str) -> float:
    return float((pd.Timestamp(iso) - alg.SAS_EPOCH).total_seconds())


@pytest.mark.parametrize(
    ("dtc", "kw", "value", "dtf", "tmf"),
    [
        ("2020-02-10T08:30:15", {}, "2020-02-10 08:30:15", None, None),
        ("2020-02-10T08:30", {}, "2020-02-10 08:30:00", None, "S"),
        ("2020-02-10T08", {"time": "last"}, "2020-02-10 08:59:59", None, "M"),
        ("2020-02-10", {}, "2020-02-10 00:00:00", None, "H"),
        ("2020-02-10", {"time": "last"}, "2020-02-10 23:59:59", None, "H"),
        ("2020-02-10", {"highest": "m"}, None, None, None),
        ("2020-02", {}, None, None, None),
        ("2020-02", {"highest": "D", "impute": "last", "time": "last"}, "2020-02-29 23:59:59", "D", "H"),
        ("2020", {"highest": "M"}, "2020-01-01 00:00:00", "M", "H"),
        (None, {"highest": "M"}, None, None, None),
    ],
)
def test_datetime_imputation_with_date_and_time_flags(
    dtc: str | None, kw: dict[str, Any], value: str | None, dtf: str | None, tmf: str | None
) -> None:
    res = alg.impute_datetimes(pd.Series([dtc], dtype=object), **kw)
    got = res.seconds.iloc[0]
    assert np.isnan(got) if value is None else got == dtm(value), (dtc, got)
    assert res.date_flags.iloc[0] == dtf and res.time_flags.iloc[0] == tmf


def test_datetime_rule_and_flags_through_the_engine() -> None:
    ex = pd.DataFrame({"USUBJID": ["S-1", "S-2"], "EXSEQ": [1, 1], "EXSTDTC": ["2020-01-10T09:15", "2020-01"]})
    variables = [
        v("USUBJID", {"field": "USUBJID"}),
        v("ASTDTM", {"datetime": {"dtc": "EXSTDTC", "highest": "D", "impute": "first"}}, "float", format="DATETIME20."),
        v("ASTDTF", {"date_flag": {"of": "ASTDTM"}}),
        v("ASTTMF", {"time_flag": {"of": "ASTDTM"}}),
    ]
    df = build(variables, source="EX", built={**SDTM, "EX": ex})
    assert vals(df["ASTDTM"]) == [dtm("2020-01-10 09:15:00"), dtm("2020-01-01 00:00:00")]
    assert vals(df["ASTDTF"]) == [None, "D"] and vals(df["ASTTMF"]) == ["S", "H"]
