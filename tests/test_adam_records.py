"""``extreme_record`` / ``record_attr`` (admiral's derive_vars_extreme_event over several source datasets), the
``tte`` rule's ``ties`` option (admiral's derive_param_tte: the last-listed censoring source on a tie) and the
spec flag ``intermediate`` (a working dataset built for later datasets, kept out of the package), on small
hand-made frames."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from converter.adam.commands import write_adam_package
from converter.adam.pipeline import check_adam_specs, prepare_spec, read_adam_specs, sdtm_to_adam
from converter.errors import InputError, Problem, SpecError
from converter.sdtm.build import build_dataset
from converter.spec.adam_rules import check_records
from converter.spec.loader import parse_spec
from converter.spec.model import Terminology
from converter.validate.adam_rules import run_adam_rules

CT = Terminology("test", {})

DM = pd.DataFrame({"USUBJID": ["S-1", "S-2", "S-3", "S-4"], "RANDDT": [100, 100, 100, 100]})
AE = pd.DataFrame({
    "USUBJID": ["S-1", "S-1", "S-2", "S-3"],
    "DOMAIN": "AE",
    "AESEQ": [1, 2, 1, 1],
    "AEDECOD": ["HEADACHE", "SUDDEN DEATH", "MYOCARDIAL INFARCTION", "NAUSEA"],
    "AEOUT": ["RECOVERED", "FATAL", "FATAL", "RECOVERED"],
    "AESTDTC": ["2020-01-05", "2020-03-01", "2020-02-10", "2020-01-20"],
})  # fmt: skip
DS = pd.DataFrame({
    "USUBJID": ["S-1", "S-2", "S-3"],
    "DOMAIN": "DS",
    "DSSEQ": [1, 1, 1],
    "DSDECOD": ["DEATH", "DEATH", "DEATH"],
    "DSTERM": ["DEATH DUE TO CARDIAC ARREST", "DEATH", "DEATH DUE TO PROGRESSIVE DISEASE"],
    "DSSTDTC": ["2020-02-28", "2020-02-10", "2020-04-01"],
})  # fmt: skip
SDTM = {"DM": DM, "AE": AE, "DS": DS}
EVENTS = [
    {"dataset": "AE", "filter": "AEOUT == 'FATAL'",
     "set": {"DTHCAUS": "AEDECOD", "DTHDOM": "DOMAIN", "DTHDT": {"date": "AESTDTC"}, "SEQ": "AESEQ"}},
    {"dataset": "DS", "filter": "DSDECOD == 'DEATH' and contains(DSTERM, 'DEATH DUE TO')",
     "set": {"DTHCAUS": "DSTERM", "DTHDOM": "DOMAIN", "DTHDT": {"date": "DSSTDTC"}, "SRC": {"value": "DISPOSITION"}}},
]  # fmt: skip


def v(name: str, rule: dict[str, Any] | None = None, vtype: str = "text") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "label": name, "type": vtype, "origin": "Derived"}
    return out | ({"rule": rule} if rule is not None else {})


def doc(variables: list[dict[str, Any]], name: str = "XX", source: str = "DM", **extra: Any) -> dict[str, Any]:
    return {"dataset": name, "label": "Test", "standard": "ADaMIG 1.3", "keys": ["USUBJID"],
            "sources": [{"id": "S", "dataset": source}],
            "variables": [{"name": "USUBJID", "label": "USUBJID", "type": "text",
                           "origin": {"type": "Predecessor", "source": f"{source}.USUBJID"}}, *variables],
            **extra}  # fmt: skip


def build(variables: list[dict[str, Any]], built: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    spec = prepare_spec(parse_spec(doc(variables), Path("xx.yaml")))
    problems: list[Problem] = []
    df = build_dataset(spec, {}, built or SDTM, CT, None, problems=problems)
    if problems:
        raise InputError(problems)
    return df


def vals(col: pd.Series) -> list[Any]:
    return [None if pd.isna(x) else x for x in col.tolist()]


def death(order: list[Any], mode: str = "first", **kw: Any) -> list[dict[str, Any]]:
    rule = {"extreme_record": {"events": EVENTS, "order": order, "mode": mode, **kw}}
    return [
        v("DTHCAUS", rule),
        v("DTHDOM", {"record_attr": {"of": "DTHCAUS"}}),
        v("DTHDT", {"record_attr": {"of": "DTHCAUS"}}, "integer"),
        v("SRC", {"record_attr": {"of": "DTHCAUS", "missing": "NONE"}}),
        v("AESEQ1", {"record_attr": {"of": "DTHCAUS", "var": "SEQ"}}, "integer"),
    ]


def d(iso: str) -> int:
    return int((pd.Timestamp(iso) - pd.Timestamp("1960-01-01")).days)


def test_first_event_in_the_listed_order() -> None:
    # admiral's ad_adsl.R: a fatal AE's term, else a DS death whose term reads DEATH DUE TO (order = event number)
    df = build(death(["event"]))
    assert vals(df["DTHCAUS"]) == ["SUDDEN DEATH", "MYOCARDIAL INFARCTION", "DEATH DUE TO PROGRESSIVE DISEASE", None]
    assert vals(df["DTHDOM"]) == ["AE", "AE", "DS", None]
    assert vals(df["DTHDT"]) == [d("2020-03-01"), d("2020-02-10"), d("2020-04-01"), None]
    # a variable the chosen record's event does not set is null; `missing` only where no event had a record
    assert vals(df["SRC"]) == [None, None, "DISPOSITION", "NONE"]
    assert vals(df["AESEQ1"]) == [2, 1, None, None]


def test_order_by_a_set_variable_and_mode_last() -> None:
    # by date: S-1's DS death (02-28) comes before its fatal AE (03-01); mode last takes the AE
    first = build(death(["DTHDT", "event"]))
    assert vals(first["DTHCAUS"])[:3] == ["DEATH DUE TO CARDIAC ARREST", "MYOCARDIAL INFARCTION",
                                         "DEATH DUE TO PROGRESSIVE DISEASE"]  # fmt: skip
    last = build(death(["DTHDT", "event"], "last"))
    assert vals(last["DTHCAUS"])[:3] == ["SUDDEN DEATH", "MYOCARDIAL INFARCTION", "DEATH DUE TO PROGRESSIVE DISEASE"]
    desc = build(death(["desc(DTHDT)", "event"]))
    assert vals(desc["DTHCAUS"]) == vals(last["DTHCAUS"])
    # the extreme rule's own `missing`
    assert vals(build(death(["event"], missing="ALIVE"))["DTHCAUS"])[3] == "ALIVE"


def test_keys_can_be_renamed_and_several() -> None:
    dm = DM.assign(SUBJ=DM["USUBJID"]).drop(columns="USUBJID").assign(USUBJID=DM["USUBJID"])
    events = [{"dataset": "AE", "filter": "AEOUT == 'FATAL'", "set": {"CAUSE": "AEDECOD"}}]
    df = build([v("CAUSE", {"extreme_record": {"events": events, "order": ["event"], "by": ["SUBJ=USUBJID"]}})],
               {**SDTM, "DM": dm})  # fmt: skip
    assert vals(df["CAUSE"]) == ["SUDDEN DEATH", "MYOCARDIAL INFARCTION", None, None]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_result_does_not_depend_on_row_order(seed: int) -> None:
    rng = random.Random(seed)

    def shuffle(df: pd.DataFrame) -> pd.DataFrame:
        idx = list(df.index)
        rng.shuffle(idx)
        return df.loc[idx].reset_index(drop=True)

    # two fatal AEs of one subject tie on every order item: the record is chosen by content, not position
    ae = pd.concat([AE, AE.iloc[[1]].assign(AESEQ=7, AEDECOD="CARDIAC ARREST")], ignore_index=True)
    base = build(death(["event"]), {**SDTM, "AE": ae})
    again = build(death(["event"]), {"DM": DM, "AE": shuffle(ae), "DS": shuffle(DS)})
    pd.testing.assert_frame_equal(base, again)
    assert vals(base["DTHCAUS"])[0] == "CARDIAC ARREST"  # by content: 'CARDIAC ARREST' < 'SUDDEN DEATH'


def test_checks_before_data() -> None:
    bad = {"events": [{"dataset": "AE", "filtr": "x", "set": {"USUBJID": "AEDECOD", "A": {"value": 1, "date": "X"}}},
                      {"dataset": "DS", "set": ["DSTERM"]}, {"set": {"B": 3}}],
           "order": ["event", "NOPE", "desc(A)"]}  # fmt: skip
    text = "\n".join(check_records(bad))
    assert "events[0]: unknown key 'filtr'" in text
    assert "set USUBJID: USUBJID is a key or `event`" in text
    assert "set A: give a column, {value: constant} or {date: column}" in text
    assert "events[1]: set must be a mapping" in text
    assert "events[2]: dataset is required" in text and "set B: give a column" in text
    assert "order: NOPE is neither `event` nor a variable the events set" in text
    assert "desc(A)" not in text  # A is set by an event
    assert check_records({"events": EVENTS, "order": ["DTHDT", "desc(SEQ)", "event"]}) == []
    # through the spec checks: columns of each event's dataset, the companion's rule, the event checks
    cols = {k: list(f.columns) for k, f in SDTM.items()}
    events = [{"dataset": "AE", "set": {"X": "AENOPE"}}, {"dataset": "DS", "set": {"X": {"date": "DSSTDTC"}}}]
    spec = prepare_spec(parse_spec(doc([
        v("X", {"extreme_record": {"events": events, "order": ["event", "Y"], "by": ["SUBJ=USUBJID"]}}),
        v("Y", {"record_attr": {"of": "USUBJID"}}),
    ]), Path("xx.yaml")))  # fmt: skip
    with pytest.raises(SpecError) as exc:
        check_adam_specs({"XX": spec}, cols)
    text = "\n".join(exc.value.messages)
    assert "AE has no variable AENOPE" in text
    assert "reads SUBJ, which is neither an earlier variable nor a source column" in text
    assert "order: Y is neither `event` nor a variable the events set" in text
    assert "names USUBJID, which has no extreme_record rule" in text
    assert "DS has no variable DSSTDTC" not in text


# --- tte ties ----------------------------------------------------------------------------------------------------
ADSL = pd.DataFrame({"USUBJID": ["S-1", "S-2", "S-3"], "RANDDT": [100, 100, 100], "LSTALVDT": [100, 150, 90],
                     "DTHDT": [None, None, 120]})  # fmt: skip
LAST = pd.DataFrame({"USUBJID": ["S-1", "S-1", "S-2"], "SEQ": [1, 2, 1], "ADT": [100, 100, 150]})


def tte_vars(ties: str | None) -> list[dict[str, Any]]:
    censors = [{"dataset": "ADSL", "date": "LSTALVDT", "description": "ALIVE"},
               {"dataset": "LAST", "date": "ADT", "seq": "SEQ", "description": "LAST ASSESSMENT"},
               {"dataset": "ADSL", "date": "RANDDT", "description": "RANDOMIZATION"}]  # fmt: skip
    rule = {"events": [{"dataset": "ADSL", "date": "DTHDT", "description": "DEATH"}], "censors": censors,
            **({"ties": ties} if ties else {})}  # fmt: skip
    return [
        v("ADT", {"tte": rule}, "integer"),
        v("DESC", {"tte_attr": {"of": "ADT", "attr": "DESCRIPTION"}}),
        v("SRCSEQ", {"tte_attr": {"of": "ADT", "attr": "SRCSEQ"}}, "integer"),
    ]


def test_tte_ties_between_censoring_sources() -> None:
    built = {"DM": DM.iloc[:3], "ADSL": ADSL, "LAST": LAST}
    # S-1: three censorings on day 100 (alive, two assessments, randomisation); S-2: alive and an assessment on 150;
    # S-3: a death (events never tie-break by `ties`)
    default = build(tte_vars(None), built)
    assert vals(default["DESC"]) == ["ALIVE", "ALIVE", "DEATH"]
    assert vals(build(tte_vars("first"), built)["DESC"]) == vals(default["DESC"])
    last = build(tte_vars("last"), built)  # admiral: the last-listed censoring source on a tie
    assert vals(last["DESC"]) == ["RANDOMIZATION", "LAST ASSESSMENT", "DEATH"]
    assert vals(last["ADT"]) == vals(default["ADT"]) == [100, 150, 120]
    # within one source the last record too: S-1 without the randomisation censoring takes assessment SEQ 2
    two = tte_vars("last")
    two[0]["rule"]["tte"]["censors"] = two[0]["rule"]["tte"]["censors"][:2]
    got = build(two, built)
    assert vals(got["DESC"])[0] == "LAST ASSESSMENT" and vals(got["SRCSEQ"])[0] == 2
    for ties, seq in ((None, 1), ("last", 2)):  # one source only: its first record by default, its last with `last`
        one = tte_vars(ties)
        one[0]["rule"]["tte"]["censors"] = one[0]["rule"]["tte"]["censors"][1:2]
        assert vals(build(one, {**built, "DM": DM.iloc[:2]})["SRCSEQ"]) == [seq, 1]
    with pytest.raises(SpecError, match="ties must be one of first, last"):
        parse_spec(doc(tte_vars("latest")), Path("xx.yaml"))


# --- intermediate datasets -----------------------------------------------------------------------------------------
def write_specs(folder: Path, flag: Any = True) -> Path:
    """A working dataset WORK (the fatal AEs with a SAS date) and ADSL merging from it."""
    folder.mkdir(parents=True, exist_ok=True)
    work = doc([v("AEDECOD", {"field": "AEDECOD"}), v("ASTDT", {"date": {"dtc": "AESTDTC"}}, "integer"),
                v("AESEQ", {"field": "AESEQ"}, "float")],
               name="WORK", source="AE", intermediate=flag)  # fmt: skip
    work["keys"] = ["USUBJID", "AESEQ"]
    work["sources"][0]["where"] = "AEOUT == 'FATAL'"
    adsl = doc([v("STUDYID", {"assign": "STUDY1"}),
                v("DTHCAUS", {"merge": {"dataset": "WORK", "var": "AEDECOD", "order": ["ASTDT"]}})],
               name="ADSL", depends=["WORK"])  # fmt: skip
    adsl["keys"] = ["STUDYID", "USUBJID"]
    adsl |= {"class": "SUBJECT LEVEL ANALYSIS DATASET", "structure": "One record per subject"}
    (folder / "work.yaml").write_text(yaml.safe_dump(work, sort_keys=False))
    (folder / "adsl.yaml").write_text(yaml.safe_dump(adsl, sort_keys=False))
    ct = folder.parent / "ct"
    ct.mkdir(exist_ok=True)
    return ct


def test_an_intermediate_dataset_is_built_read_and_left_out_of_the_package(tmp_path: Path) -> None:
    ct = write_specs(tmp_path / "adam")
    result = sdtm_to_adam(SDTM, tmp_path / "adam", ct, checks=False)
    assert set(result.datasets) == set(result.specs) == {"ADSL"}
    assert set(result.intermediate) == {"WORK"} and len(result.intermediate["WORK"]) == 2
    assert vals(result.datasets["ADSL"]["DTHCAUS"]) == ["SUDDEN DEATH", "MYOCARDIAL INFARCTION", None, None]
    # the package holds ADSL only, and define.xml describes ADSL only
    write_adam_package(result, tmp_path / "pkg")
    files = {p.name.lower() for p in (tmp_path / "pkg").rglob("*") if p.is_file()}
    assert "adsl.xpt" in files and not any("work" in f for f in files)
    define = (tmp_path / "pkg" / "define.xml").read_text()
    assert "IG.ADSL" in define and "IG.WORK" not in define and "IT.WORK." not in define
    # readers of a package see the package's specs; the pipeline reads them all
    assert set(read_adam_specs(tmp_path / "adam")) == {"ADSL"}
    assert set(read_adam_specs(tmp_path / "adam", intermediate=True)) == {"ADSL", "WORK"}
    # the validator does not miss a working dataset in the package
    specs = read_adam_specs(tmp_path / "adam", intermediate=True)
    assert not [f for f in run_adam_rules(result.datasets, specs) if "WORK" in str(f)]
    # (a dataset of the spec that is not intermediate and not in the package is reported)
    plain = {**specs, "WORK": dataclasses.replace(specs["WORK"], intermediate=False)}
    assert [f for f in run_adam_rules(result.datasets, plain) if "WORK" in str(f) and "not in the package" in str(f)]


def test_without_the_flag_the_working_dataset_is_in_the_package(tmp_path: Path) -> None:
    ct = write_specs(tmp_path / "adam", flag=False)
    result = sdtm_to_adam(SDTM, tmp_path / "adam", ct, checks=False)
    assert set(result.datasets) == {"ADSL", "WORK"} and result.intermediate == {}


@pytest.mark.parametrize("flag", ["yes", 1])
def test_the_flag_is_a_boolean(tmp_path: Path, flag: Any) -> None:
    with pytest.raises(SpecError, match="intermediate must be true or false"):
        parse_spec(doc([], intermediate=flag), Path("xx.yaml"))


def test_only_an_adam_spec_can_be_intermediate() -> None:
    sdtm_doc = {"dataset": "XX", "label": "T", "standard": "SDTMIG 3.4", "intermediate": True,
                "sources": [{"id": "S", "dataset": "DM"}], "variables": [v("A", {"assign": "x"})]}  # fmt: skip
    with pytest.raises(SpecError, match="only an ADaM spec can be intermediate"):
        parse_spec(sdtm_doc, Path("xx.yaml"))
    assert parse_spec(doc([], intermediate=False), Path("xx.yaml")).intermediate is False
    assert parse_spec(doc([]), Path("xx.yaml")).intermediate is False
