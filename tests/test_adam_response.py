"""The response rules (``extreme_event``, ``event_attr``, ``relative_flag``) on small hand-made frames through the
spec engine, the confirmation against a direct transcription of admiral's ``event_joined`` on random sequences,
and the checks before data."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from converter.adam.pipeline import prepare_spec
from converter.adam.response import confirmed
from converter.errors import InputError, MissingColumnError, Problem, SpecError
from converter.sdtm.build import build_dataset
from converter.spec.adam_rules import check_events
from converter.spec.columns import expression_column_problems
from converter.spec.loader import parse_spec
from converter.spec.model import Terminology

CT = Terminology("test", {})
R = 1000  # randomisation day of every subject (SAS day numbers: only differences matter here)


def ovr(rows: list[tuple[str, int, str]]) -> pd.DataFrame:
    """Assessments (subject, day after randomisation, response), RSSEQ numbered per subject."""
    df = pd.DataFrame(rows, columns=["USUBJID", "DAY", "AVALC"])
    df["ADT"] = R + df["DAY"]
    df["RANDDT"] = R
    df["RSSEQ"] = df.groupby("USUBJID").cumcount() + 1
    return df.drop(columns="DAY")


def v(name: str, rule: dict[str, Any] | None = None, vtype: str = "text") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "label": name, "type": vtype, "origin": "Derived"}
    return out | ({"rule": rule} if rule is not None else {})


def build(variables: list[dict[str, Any]], built: dict[str, pd.DataFrame], source: str = "ADSL") -> pd.DataFrame:
    doc = {"dataset": "XX", "label": "Test", "standard": "ADaMIG 1.3", "keys": ["USUBJID"],
           "sources": [{"id": "S", "dataset": source}],
           "variables": [{"name": "USUBJID", "label": "USUBJID", "type": "text",
                          "origin": {"type": "Predecessor", "source": f"{source}.USUBJID"}}, *variables]}  # fmt: skip
    spec = prepare_spec(parse_spec(doc, Path("xx.yaml")))
    problems: list[Problem] = []
    df = build_dataset(spec, {}, built, CT, None, problems=problems)
    if problems:
        raise InputError(problems)
    return df


def vals(col: pd.Series) -> list[Any]:
    return [None if pd.isna(x) else x for x in col.tolist()]


# the events of admiralonco's best overall response (response_sources.R: bor_cr ... bor_ne, no_data_missing)
SD_DAYS = "ADT >= RANDDT + 42"
BOR = {
    "dataset": "OVR",
    "order": ["event", "ADT"],
    "missing": "MISSING",
    "events": [
        {"filter": "AVALC == 'CR'", "value": "CR"},
        {"filter": "AVALC == 'PR'", "value": "PR"},
        {"filter": f"AVALC in ['CR', 'PR', 'SD'] and {SD_DAYS}", "value": "SD"},
        {"filter": f"AVALC == 'NON-CR/NON-PD' and {SD_DAYS}", "value": "NON-CR/NON-PD"},
        {"filter": "AVALC == 'PD'", "value": "PD"},
        {"filter": "AVALC in ['CR', 'PR', 'SD', 'NON-CR/NON-PD', 'NE']", "value": "NE"},
    ],
}
CONFIRM_CR = {"var": "AVALC", "date": "ADT", "values": ["CR"], "min_days": 28, "allowed": ["CR", "NE"],
              "max": {"NE": 1}}  # fmt: skip
CONFIRM_PR = {"var": "AVALC", "date": "ADT", "values": ["CR", "PR"], "min_days": 28, "allowed": ["CR", "PR", "NE"],
              "max": {"NE": 1}, "not_after": {"PR": ["CR"]}}  # fmt: skip


def adsl(n: int) -> pd.DataFrame:
    return pd.DataFrame({"USUBJID": [f"S-{i}" for i in range(1, n + 1)], "RANDDT": R})


def test_best_overall_response_order_sd_window_and_missing() -> None:
    data = ovr([
        ("S-1", 21, "SD"), ("S-1", 40, "NE"), ("S-1", 63, "CR"),  # CR wins whatever its date
        ("S-2", 21, "SD"), ("S-2", 42, "PD"),  # SD too early (< 42 days): PD
        ("S-3", 21, "SD"), ("S-3", 50, "SD"), ("S-3", 71, "PR"), ("S-3", 90, "PD"),  # PR above SD
        ("S-4", 21, "SD"), ("S-4", 28, "NE"),  # nothing qualifies but NE
        ("S-6", 21, "NON-CR/NON-PD"), ("S-6", 43, "NON-CR/NON-PD"),
    ])  # fmt: skip
    df = build([v("AVALC", {"extreme_event": BOR}), v("ADT", {"event_attr": {"of": "AVALC"}}, "integer"),
                v("SEQ", {"event_attr": {"of": "AVALC", "var": "RSSEQ"}}, "integer")],
               {"ADSL": adsl(6), "OVR": data})  # fmt: skip
    assert vals(df["AVALC"]) == ["CR", "PD", "PR", "NE", "MISSING", "NON-CR/NON-PD"]
    assert vals(df["ADT"]) == [R + 63, R + 42, R + 71, R + 21, None, R + 43]  # the earliest record of the event
    assert vals(df["SEQ"]) == [3, 2, 3, 1, None, 2]
    # S-3 without its PR: SD, the first SD at least 42 days after randomisation
    df2 = build([v("AVALC", {"extreme_event": BOR}), v("ADT", {"event_attr": {"of": "AVALC"}}, "integer")],
                {"ADSL": adsl(6), "OVR": data[~((data["USUBJID"] == "S-3") & (data["AVALC"] == "PR"))]})  # fmt: skip
    assert vals(df2["AVALC"])[2] == "SD" and vals(df2["ADT"])[2] == R + 50


def test_the_result_does_not_depend_on_the_row_order() -> None:
    rng = random.Random(7)
    data = ovr(
        [(f"S-{i}", d, rng.choice(["CR", "PR", "SD", "PD", "NE"])) for i in range(1, 9) for d in (21, 42, 63, 84)]
    )
    vars_ = [v("AVALC", {"extreme_event": BOR}), v("ADT", {"event_attr": {"of": "AVALC"}}, "integer"),
             v("CBOR", {"extreme_event": {**BOR, "events": [{**BOR["events"][0], "confirm": CONFIRM_CR},  # type: ignore[dict-item]
                                                             {**BOR["events"][1], "confirm": CONFIRM_PR},
                                                             *BOR["events"][2:]]}})]  # type: ignore[misc]  # fmt: skip
    first = build(vars_, {"ADSL": adsl(8), "OVR": data})
    for seed in range(3):
        shuffled = data.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        pd.testing.assert_frame_equal(build(vars_, {"ADSL": adsl(8), "OVR": shuffled}), first)


@pytest.mark.parametrize(
    ("seq", "conf", "want"),
    [
        ([(0, "CR"), (10, "NE"), (30, "CR")], CONFIRM_CR, [True, False, False]),  # one NE in between: confirmed
        ([(0, "CR"), (20, "CR"), (30, "PD")], CONFIRM_CR, [False, False, False]),  # no CR 28 days later
        ([(0, "CR"), (10, "NE"), (20, "NE"), (30, "CR")], CONFIRM_CR, [False, False, False, False]),  # two NE
        # PR not allowed in between (the PR itself is confirmed by the CR: its own value is the event's filter)
        ([(0, "CR"), (10, "PR"), (40, "CR")], CONFIRM_CR, [False, True, False]),
        ([(0, "CR"), (28, "CR"), (56, "CR")], CONFIRM_CR, [True, True, False]),  # exactly 28 days is enough
        ([(0, "PR"), (10, "CR"), (30, "PR")], CONFIRM_PR, [False, False, False]),  # a PR after a CR
        ([(0, "PR"), (10, "PR"), (30, "CR")], CONFIRM_PR, [True, False, False]),  # PR then CR: confirmed
        ([(0, "PR"), (30, "CR"), (40, "PR")], CONFIRM_PR, [True, False, False]),  # the window closes at day 30
        ([(0, "PR"), (10, "PD"), (40, "PR")], CONFIRM_PR, [False, True, False]),  # PD in between
    ],
)
def test_confirmation_window(seq: list[tuple[int, str]], conf: dict[str, Any], want: list[bool]) -> None:
    """Whether the records after each one confirm it (the value of the record itself is the event's filter)."""
    rows = ovr([("S-1", d, r) for d, r in seq])
    assert confirmed(rows, ["USUBJID"], conf).tolist() == want


def _admiral_event_joined(days: list[int], resp: list[str], conf: dict[str, Any]) -> list[bool]:
    """A direct transcription of admiral's event_joined (join_type "after", first_cond_upper, condition) for one
    subject's assessments in date order: the reference the column-wise rule is checked against."""
    out = []
    for i in range(len(days)):
        upper = next((j for j in range(i + 1, len(days))
                      if resp[j] in conf["values"] and days[j] >= days[i] + conf["min_days"]), None)  # fmt: skip
        if upper is None:
            out.append(False)
            continue
        window = list(range(i + 1, upper + 1))
        ok = all(resp[j] in conf["allowed"] for j in window)
        ok &= all(sum(resp[j] == val for j in window) <= most for val, most in (conf.get("max") or {}).items())
        for later, earlier in (conf.get("not_after") or {}).items():
            lat = [j for j in window if resp[j] == later]
            ear = [j for j in window if resp[j] in earlier]
            ok &= not (lat and ear and max(lat) > min(ear))
        out.append(ok)
    return out


@pytest.mark.parametrize("conf", [CONFIRM_CR, CONFIRM_PR], ids=["CR", "PR"])
def test_confirmation_equals_admiral_on_random_sequences(conf: dict[str, Any]) -> None:
    rng = random.Random(20261202)
    rows, want = [], []
    for s in range(300):
        days = sorted(rng.sample(range(1, 200), rng.randint(1, 8)))
        resp = [rng.choice(["CR", "CR", "PR", "PR", "SD", "NE", "PD"]) for _ in days]
        rows += [(f"S-{s}", d, r) for d, r in zip(days, resp, strict=True)]
        want += _admiral_event_joined(days, resp, conf)
    data = ovr(rows)
    got = confirmed(data, ["USUBJID"], conf)
    assert got.tolist() == want and 0 < sum(want) < len(want)
    shuffled = data.sample(frac=1.0, random_state=1)
    assert confirmed(shuffled, ["USUBJID"], conf).tolist() == [want[i] for i in shuffled.index]


def test_confirmed_response_clinical_benefit_order_by_value_then_date() -> None:
    data = ovr([
        ("S-1", 21, "PR"), ("S-1", 49, "PR"),  # confirmed PR on day 21
        ("S-2", 21, "PR"), ("S-2", 35, "SD"), ("S-2", 63, "PD"),  # unconfirmed; SD at 35 days: no benefit
        ("S-3", 21, "SD"), ("S-3", 50, "SD"),  # clinical benefit by SD on day 50
    ])  # fmt: skip
    y = "Y"
    crsp = {"dataset": "OVR", "order": ["desc(value)", "ADT", "event"], "missing": "N",
            "events": [{"filter": "AVALC == 'CR'", "value": y, "confirm": CONFIRM_CR},
                       {"filter": "AVALC == 'PR'", "value": y, "confirm": CONFIRM_PR}]}  # fmt: skip
    ccb = {
        **crsp,
        "events": [
            *crsp["events"],  # type: ignore[list-item]
            {"filter": f"AVALC in ['CR', 'PR', 'SD', 'NON-CR/NON-PD'] and {SD_DAYS}", "value": y},
        ],
    }
    df = build([v("CRSP", {"extreme_event": crsp}), v("CRSPDT", {"event_attr": {"of": "CRSP", "var": "ADT"}}, "integer"),
                v("CCB", {"extreme_event": ccb}), v("CCBDT", {"event_attr": {"of": "CCB", "var": "ADT"}}, "integer"),
                v("EVENT", {"event_attr": {"of": "CCB", "var": "event"}}, "integer")],
               {"ADSL": adsl(3), "OVR": data})  # fmt: skip
    assert vals(df["CRSP"]) == ["Y", "N", "N"] and vals(df["CRSPDT"]) == [R + 21, None, None]
    assert vals(df["CCB"]) == ["Y", "N", "Y"] and vals(df["CCBDT"]) == [R + 21, None, R + 50]
    assert vals(df["EVENT"]) == [2, None, 3]


def test_last_assessment_mode_last_value_of_and_by() -> None:
    data = ovr([("S-1", 21, "SD"), ("S-1", 42, "PD"), ("S-1", 63, "SD"), ("S-2", 21, "NE")])
    lsta = {"dataset": "OVR", "order": ["ADT", "RSSEQ"], "mode": "last", "events": [{"value_of": "AVALC"}]}
    df = build([v("AVALC", {"extreme_event": lsta}), v("ADT", {"event_attr": {"of": "AVALC"}}, "integer")],
               {"ADSL": adsl(3), "OVR": data})  # fmt: skip
    assert vals(df["AVALC"]) == ["SD", "NE", None] and vals(df["ADT"]) == [R + 63, R + 21, None]
    # by with a renamed key: the ADSL row's SUBJ is the assessments' USUBJID
    lsta_by = {**lsta, "by": ["SUBJ=USUBJID"], "filter": "AVALC != 'SD'"}
    df2 = build(
        [v("SUBJ", {"field": "USUBJID"}), v("AVALC", {"extreme_event": lsta_by})], {"ADSL": adsl(2), "OVR": data}
    )
    assert vals(df2["AVALC"]) == ["PD", "NE"]


def test_relative_flag_before_after_inclusive_and_groups_without_reference() -> None:
    data = ovr([("S-1", 21, "SD"), ("S-1", 42, "PD"), ("S-1", 63, "SD"), ("S-1", 84, "PD"), ("S-2", 21, "SD"),
                ("S-2", 42, "NE")])  # fmt: skip
    base = {"by": ["USUBJID"], "order": ["ADT", "RSSEQ"], "condition": "AVALC == 'PD'"}
    df = build([v("AVALC", {"field": "AVALC"}), v("ADT", {"field": "ADT"}, "integer"),
                v("RSSEQ", {"field": "RSSEQ"}, "integer"),
                v("ANL02FL", {"relative_flag": {**base, "selection": "before"}}),
                v("STRICT", {"relative_flag": {**base, "selection": "before", "inclusive": False, "flag_no_ref": False}}),
                v("AFTERLST", {"relative_flag": {**base, "selection": "after", "mode": "last", "value": "A"}})],
               {"OVR": data.sample(frac=1.0, random_state=3)}, source="OVR")  # fmt: skip
    df = df.sort_values(["USUBJID", "RSSEQ"]).reset_index(drop=True)
    assert vals(df["ANL02FL"]) == ["Y", "Y", None, None, "Y", "Y"]  # up to the first PD; S-2 without PD: all
    assert vals(df["STRICT"]) == ["Y", None, None, None, None, None]
    assert vals(df["AFTERLST"]) == [None, None, None, "A", "A", "A"]


def test_checks_before_data() -> None:
    assert check_events({"events": []}) == ["extreme_event: events must list at least one event"]
    problems = check_events({"events": [
        {"filter": "AVALC == 'CR'", "value": "CR", "value_of": "AVALC"},
        {"value": "PR", "when": "x"},
        {"value": "Y", "confirm": {"var": "AVALC", "values": "CR", "min_days": "28", "within": 3}},
    ]})  # fmt: skip
    assert problems == [
        "extreme_event events[0]: give exactly one of value, value_of",
        "extreme_event events[1]: unknown key 'when' (allowed: confirm, description, filter, value, value_of)",
        "extreme_event events[2] confirm: unknown key 'within' (allowed: allowed, date, max, min_days, not_after, "
        "values, var)",
        "extreme_event events[2] confirm: date is required",
        "extreme_event events[2] confirm: allowed is required",
        "extreme_event events[2] confirm: values must be a list of texts",
        "extreme_event events[2] confirm: min_days must be an integer",
    ]
    assert check_events(BOR) == [] and check_events({"events": [{"value": "Y", "confirm": CONFIRM_PR}]}) == []
    # an event filter naming a column the dataset lacks is found when the spec is loaded
    doc = {"dataset": "XX", "label": "T", "standard": "ADaMIG 1.3", "sources": [{"id": "S", "dataset": "ADSL"}],
           "variables": [v("AVALC", {"extreme_event": {**BOR, "events": [{"filter": "AVALX == 'CR'", "value": "CR"}]}}),
                         v("FL", {"relative_flag": {"by": ["USUBJID"], "order": ["ADT"], "condition": "NOPE == 1",
                                                    "selection": "before"}})]}  # fmt: skip
    spec = parse_spec(doc, Path("xx.yaml"))
    found = expression_column_problems(spec, None, {"ADSL": ["USUBJID"], "OVR": list(ovr([]).columns)})
    assert any("events[0]" in m and "AVALX" in m for m in found) and any("NOPE" in m for m in found)
    with pytest.raises(SpecError, match="relative_flag: selection must be one of before, after"):
        parse_spec(
            {
                **doc,
                "variables": [
                    v("FL", {"relative_flag": {"by": [], "order": [], "condition": "x == 1", "selection": "around"}})
                ],
            },
            Path("xx.yaml"),
        )
    # event_attr needs an extreme_event rule on the variable it names
    with pytest.raises(ValueError, match="AVALC has no extreme_event rule"):
        build([v("AVALC", {"assign": "x"}), v("ADT", {"event_attr": {"of": "AVALC"}})], {"ADSL": adsl(1)})
    with pytest.raises(MissingColumnError, match=r"X reads NOPE of OVR \(event_attr\), which that dataset does not"):
        build(
            [v("AVALC", {"extreme_event": BOR}), v("X", {"event_attr": {"of": "AVALC", "var": "NOPE"}})],
            {"ADSL": adsl(1), "OVR": ovr([("S-1", 1, "CR")])},
        )


def test_events_may_not_shadow_the_event_and_value_columns() -> None:
    data = ovr([("S-1", 21, "CR")]).assign(value=1)
    with pytest.raises(ValueError, match=r"columns \['value'\]"):
        build([v("AVALC", {"extreme_event": BOR})], {"ADSL": adsl(1), "OVR": data})
    assert np.array_equal(confirmed(ovr([]), ["USUBJID"], CONFIRM_CR), np.zeros(0, dtype=bool))


def test_adam_spec_checks_name_bad_events_and_orphan_event_attr() -> None:
    from converter.adam.pipeline import check_adam_specs

    doc = {
        "dataset": "XX",
        "label": "T",
        "standard": "ADaMIG 1.3",
        "depends": ["OVR"],
        "sources": [{"id": "S", "dataset": "ADSL"}],
        "variables": [
            v("AVALC", {"extreme_event": {**BOR, "events": [{"filter": "AVALC == 'CR'"}]}}),
            v("FLAG", {"assign": "Y"}),
            v("ADT", {"event_attr": {"of": "FLAG"}}),
            v("SEQ", {"event_attr": {"of": "AVALC", "var": "RSSEQ"}}),
        ],
    }
    spec = prepare_spec(parse_spec(doc, Path("xx.yaml")))
    with pytest.raises(SpecError) as err:
        check_adam_specs({"XX": spec}, {"ADSL": ["USUBJID", "RANDDT"], "OVR": list(ovr([]).columns)})
    text = str(err.value)
    assert "events[0]: give exactly one of value, value_of" in text
    assert "variable ADT: rule event_attr names FLAG, which has no extreme_event rule" in text
    assert "variable SEQ" not in text  # a companion of the extreme_event rule: fine
