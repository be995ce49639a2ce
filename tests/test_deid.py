"""De-identification: rules as data, one offset and one new identifier per subject, the key kept apart, a residual
check that finds what was left, and analyses that give the same end points on the de-identified package."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest

from converter.deid import deidentify, load_deid_rules
from converter.deid.commands import deid_check_command, deid_command
from converter.deid.transform import subject_offsets
from converter.errors import InputError, SpecError
from converter.io.package import read_package
from converter.paths import mappings_dir

RULES = mappings_dir() / "deid" / "sdtm.yaml"


@pytest.fixture(scope="module")
def sdtm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from converter.paths import example_study_dir
    from converter.stages import run_sdtm

    out = tmp_path_factory.mktemp("orig") / "sdtm"
    src = sorted((example_study_dir() / "odm").glob("*.xml"))[0]
    run_sdtm(src, out, echo=lambda _m: None)
    return out


@pytest.fixture(scope="module")
def deid(sdtm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("deid")
    key = base / "secret" / "key.json"
    assert deid_command(sdtm, base / "out", key=key, echo=lambda _m: None) == 0
    return base / "out", key


def _frames(folder: Path) -> dict[str, pd.DataFrame]:
    from converter.spec.loader import load_specs

    return read_package(folder, load_specs(mappings_dir() / "sdtm"))


def test_every_variable_of_the_example_has_a_rule_and_every_identifier_is_replaced(sdtm: Path, deid: tuple[Path, Path]) -> None:
    before, after = _frames(sdtm), _frames(deid[0])
    assert set(before) == set(after)
    for name in before:
        assert len(before[name]) == len(after[name]), name
    old_ids = set(before["DM"]["USUBJID"])
    for name, df in after.items():
        if "USUBJID" in df.columns:
            assert not (set(df["USUBJID"].dropna()) & old_ids), name
            assert set(df["USUBJID"].dropna()) <= set(after["DM"]["USUBJID"]), name  # consistent in every dataset
    dm = after["DM"]
    assert dm["BRTHDTC"].isna().all() and dm["INVNAM"].isna().all()
    assert not (set(dm["SITEID"]) & set(before["DM"]["SITEID"]))
    assert (after["AE"]["AETERM"] == after["AE"]["AELLT"]).all()  # the verbatim text replaced by its coded LLT
    mark = json.loads((deid[0] / "deid.json").read_text())
    assert mark["deidentified"] is True and mark["residual_check"] == "passed" and mark["subjects"] == 59
    report = pd.read_csv(deid[0] / "deid-report.csv")
    assert {"dataset", "variable", "class", "rule", "changed", "why"} <= set(report.columns)
    assert len(report) == sum(len(df.columns) for df in before.values())


def test_one_offset_per_subject_keeps_every_interval_and_study_day(sdtm: Path, deid: tuple[Path, Path]) -> None:
    before, after = _frames(sdtm), _frames(deid[0])
    key = json.loads(deid[1].read_text())
    new_of = {s["USUBJID"]: s["USUBJID_NEW"] for s in key["subjects"]}
    off = {s["USUBJID"]: int(s["OFFSET_DAYS"]) for s in key["subjects"]}
    assert min(off.values()) >= 30 and len(set(off.values())) > 10
    for name, var in (("AE", "AESTDTC"), ("EX", "EXSTDTC"), ("DS", "DSSTDTC"), ("LB", "LBDTC"), ("DM", "RFSTDTC")):
        seq = f"{name}SEQ" if name != "DM" else None
        b = before[name].assign(NEW=before[name]["USUBJID"].map(new_of))
        a = after[name]
        keys_b, keys_a = ["NEW", *([seq] if seq else [])], ["USUBJID", *([seq] if seq else [])]
        m = b.merge(a, left_on=keys_b, right_on=keys_a, suffixes=("_b", "_a"))
        assert len(m) == len(a), name
        full = m[f"{var}_b"].astype(str).str.len().eq(10)
        shift = (pd.to_datetime(m.loc[full, f"{var}_b"]) - pd.to_datetime(m.loc[full, f"{var}_a"])).dt.days
        assert (shift == m.loc[full, "USUBJID_b"].map(off)).all(), name
        day = {"AE": "AESTDY", "EX": "EXSTDY", "DS": "DSSTDY", "LB": "LBDY"}.get(name)
        if day:
            assert m[f"{day}_b"].equals(m[f"{day}_a"]) or (m[f"{day}_b"].fillna(-1e9) == m[f"{day}_a"].fillna(-1e9)).all()
    cut_before = pd.Timestamp(str(before["TS"].loc[before["TS"]["TSPARMCD"] == "DCUTDTC", "TSVAL"].iloc[0]))
    cut_after = pd.Timestamp(str(after["TS"].loc[after["TS"]["TSPARMCD"] == "DCUTDTC", "TSVAL"].iloc[0]))
    assert (cut_before - cut_after).days == min(off.values())  # still after every subject's last event


def test_partial_dates_stay_partial_and_datetimes_keep_their_time() -> None:
    from converter.deid.transform import _shift  # the one date function the rule uses

    vals = pd.Series(["2014-03-10", "2014-03", "2014", "2014-03-10T12:30", None, ""], dtype=object)
    moved, bad = _shift(vals, pd.Series([10] * 6))
    assert list(moved[:4]) == ["2014-02-28", "2014-03", "2014", "2014-02-28T12:30"]
    assert not bad.any()
    moved, bad = _shift(pd.Series(["2014-01", "2014", "UNK", "2014-02-30"], dtype=object), pd.Series([20, 200, 1, 1]))
    assert list(moved[:2]) == ["2013-12", "2013"] and list(bad) == [False, False, True, True]


def test_the_analyses_give_the_same_end_points_on_the_deidentified_package(
    sdtm: Path, deid: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from converter.cli import app

    runner = CliRunner()
    results = []
    for name, folder in (("orig", sdtm), ("deid", deid[0])):
        adam, rep = tmp_path / f"{name}-adam", tmp_path / f"{name}-report"
        r = runner.invoke(app, ["adam", str(folder), "--out", str(adam)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["report", str(adam), "--out", str(rep)])
        assert r.exit_code == 0, r.output
        results.append(_without_run_facts(json.loads((rep / "report.json").read_text()), str(adam)))
        tte = _frames_adam(adam)
        results.append(tte)
    assert results[0] == results[2]  # every end point, every KM figure, every comparison
    assert results[1] == results[3]  # ADTTE times and censoring, per parameter


def _frames_adam(adam: Path) -> dict[str, list[tuple[float, float]]]:
    from converter.io.package import read_package as rp

    adtte = rp(adam)["ADTTE"]
    return {p: sorted(zip(g["AVAL"].tolist(), g["CNSR"].tolist(), strict=True)) for p, g in adtte.groupby("PARAMCD")}


def _without_run_facts(node: object, source: str) -> object:
    """The report without what names the run (its folder, its time)."""
    if isinstance(node, dict):
        return {k: _without_run_facts(v, source) for k, v in node.items()
                if not any(t in k.lower() for t in ("generated", "created", "time", "source"))}
    if isinstance(node, list):
        return [_without_run_facts(v, source) for v in node]
    if isinstance(node, str) and source in node:
        return "<source>"
    return node


def test_the_key_is_owner_only_outside_out_and_gives_the_same_identifiers_again(
    sdtm: Path, deid: tuple[Path, Path], tmp_path: Path
) -> None:
    out, key = deid
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not any(p.name == key.name for p in out.rglob("*"))
    again = tmp_path / "again"
    assert deid_command(sdtm, again, key=key, echo=lambda _m: None) == 0
    assert _frames(again)["DM"]["USUBJID"].tolist() == _frames(out)["DM"]["USUBJID"].tolist()
    with pytest.raises(InputError, match="inside --out"):
        deid_command(sdtm, tmp_path / "x", key=tmp_path / "x" / "key.json", echo=lambda _m: None)
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"not": "a key"}')
    with pytest.raises(InputError, match="not an inoconv de-identification key"):
        deid_command(sdtm, tmp_path / "y", key=bogus, echo=lambda _m: None)
    assert bogus.read_text() == '{"not": "a key"}'


def test_without_a_key_nothing_of_the_mapping_is_written(sdtm: Path, tmp_path: Path) -> None:
    out = tmp_path / "nokey"
    assert deid_command(sdtm, out, echo=lambda _m: None) == 0
    assert json.loads((out / "deid.json").read_text())["key"] == "discarded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nokey"]


def test_the_residual_check_finds_a_planted_identifier(sdtm: Path, deid: tuple[Path, Path], tmp_path: Path) -> None:
    assert deid_check_command(deid[0], sdtm, echo=lambda _m: None) == []
    copy = tmp_path / "planted"
    shutil.copytree(deid[0], copy)
    original_id = str(_frames(sdtm)["DM"]["USUBJID"].iloc[3])
    ae = copy / "ae.json"
    doc = json.loads(ae.read_text())
    doc["rows"][0][[c["name"] for c in doc["columns"]].index("AETERM")] = original_id
    ae.write_text(json.dumps(doc))
    leaks = deid_check_command(copy, sdtm, echo=lambda _m: None)
    assert leaks and any("ae.json" in str(x) and "USUBJID" in str(x) for x in leaks)
    assert original_id not in " ".join(map(str, leaks))  # the finding names the kind and place, not the value


def test_a_variable_without_a_rule_stops_the_run() -> None:
    rules = load_deid_rules(RULES)
    dm = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["DM"], "USUBJID": ["S-1"], "SUBJID": ["1"], "DMXYZ": ["?"]})
    res = deidentify({"DM": dm}, rules, b"k" * 32, {"DM": "dm.xpt"})
    assert [(p.file, p.field, p.rule) for p in res.problems] == [("dm.xpt", "DMXYZ", "deid-rule")]


def test_ages_over_89_become_90_and_small_categories_are_generalised() -> None:
    rules = load_deid_rules(RULES, k=2)
    n = 5
    dm = pd.DataFrame({
        "STUDYID": ["S"] * n, "DOMAIN": ["DM"] * n, "USUBJID": [f"S-{i}" for i in range(n)],
        "SUBJID": [str(i) for i in range(n)], "SITEID": ["A", "A", "A", "B", "C"],
        "AGE": [45.0, 92.0, 89.0, 95.0, 30.0], "AGEU": ["YEARS"] * n,
        "RACE": ["WHITE", "WHITE", "ASIAN", "WHITE", "WHITE"],
    })
    res = deidentify({"DM": dm}, rules, b"k" * 32)
    assert not res.problems
    out = res.datasets["DM"]
    assert out["AGE"].tolist() == [45.0, 90.0, 89.0, 90.0, 30.0]
    assert out["RACE"].tolist() == ["WHITE", "WHITE", "OTHER", "WHITE", "WHITE"]
    sites = out["SITEID"].tolist()
    assert sites[3] == sites[4] == "00" and len(set(sites[:3])) == 1 and sites[0] != "00"  # B and C pooled
    notes = {r["variable"]: r["note"] for r in res.report}
    assert "2 age(s) over 89" in notes["AGE"]
    assert 0 not in set(subject_offsets(out["USUBJID"], b"k" * 32, 1, 3))


def test_a_date_under_else_keep_and_an_unknown_qualifier_stop_the_run() -> None:
    rules = load_deid_rules(RULES)
    ts = pd.DataFrame({"STUDYID": ["S", "S"], "DOMAIN": ["TS", "TS"], "TSSEQ": [1.0, 1.0],
                       "TSPARMCD": ["NEWDATE", "TITLE"], "TSVAL": ["2015-04-01", "A study"]})  # fmt: skip
    res = deidentify({"TS": ts}, rules, b"k" * 32)
    assert [(p.field, p.rule) for p in res.problems] == [("TSVAL", "deid-by")]
    supp = pd.DataFrame({"STUDYID": ["S"], "RDOMAIN": ["DM"], "USUBJID": ["S-1"], "IDVAR": [None],
                         "IDVARVAL": [None], "QNAM": ["NEWQ"], "QLABEL": ["x"], "QVAL": ["y"], "QORIG": ["CRF"],
                         "QEVAL": [None]})  # fmt: skip
    res = deidentify({"SUPPDM": supp}, rules, b"k" * 32)
    assert [(p.field, p.rule) for p in res.problems] == [("QVAL", "deid-by")]


def test_rules_outside_the_vocabulary_are_spec_errors_with_their_line(tmp_path: Path) -> None:
    bad = tmp_path / "sdtm.yaml"
    bad.write_text("offset_days: {min: 0, max: 3}\ncommon:\n  USUBJID: {class: direct, rule: shred, why: x}\n"
                   "  STUDYID: {class: secret, rule: keep, why: x}\n")  # fmt: skip
    with pytest.raises(SpecError) as exc:
        load_deid_rules(bad)
    text = "\n".join(exc.value.messages)
    assert "offset_days" in text and f"{bad}:3" in text and "shred" in text and f"{bad}:4" in text


def test_a_verbatim_spelled_out_by_a_kept_dictionary_term_is_no_leak() -> None:
    from converter.deid import residual_check

    rules = load_deid_rules(RULES)
    ae = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["AE"], "USUBJID": ["S-1"], "AESEQ": [1.0],
                       "AETERM": ["Mucositis"], "AELLT": ["Mucositis oral"], "AEDECOD": ["Stomatitis"]})  # fmt: skip
    res = deidentify({"AE": ae}, rules, b"k" * 32)
    assert res.datasets["AE"]["AETERM"].tolist() == ["Mucositis oral"]
    assert residual_check({"AE": ae}, res.datasets, rules, written=res.datasets) == []
    ae2 = ae.assign(AETERM="Sore mouth, bad")  # a verbatim no dictionary term spells out, left in the package
    leaked = {"AE": res.datasets["AE"].assign(AELLT="Sore mouth, bad")}
    assert [str(x) for x in residual_check({"AE": ae2}, None, rules, written=leaked)] == [
        "AE:AELLT: holds an original AE.AETERM value"]
