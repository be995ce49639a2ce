"""Any SDTM package against the standard (issue 17): the shipped SDTMIG/ADaMIG metadata, the standard-level rules
(each with a passing and a failing frame), the two levels of ``inoconv validate`` and ``tosdtm`` sized by the data.

The frames are written here, shaped as the CDISC pilot's (CDISCPILOT01, synthetic subjects, CDISC test data)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from converter.spec.standards import adamig, ig_domain, ig_spec, sdtmig
from converter.validate.standard_rules import check_domain_values, check_ig_ct, check_ig_variables

FIXTURES = Path(__file__).parent / "fixtures"


def dm(**change: object) -> pd.DataFrame:
    row = {
        "STUDYID": "CDISCPILOT01", "DOMAIN": "DM", "USUBJID": "01-701-1015", "SUBJID": "1015",
        "RFSTDTC": "2014-01-02", "RFENDTC": "2014-07-02", "SITEID": "701", "AGE": 63.0, "AGEU": "YEARS",
        "SEX": "F", "RACE": "WHITE", "ETHNIC": "HISPANIC OR LATINO", "ARMCD": "Pbo", "ARM": "Placebo",
        "ACTARMCD": "Pbo", "ACTARM": "Placebo", "COUNTRY": "USA", "DMDTC": "2013-12-26", "DMDY": -7.0,
        "RFXSTDTC": "2014-01-02", "RFXENDTC": "2014-07-02", "RFICDTC": "2013-12-26", "RFPENDTC": "2014-07-02",
        "DTHDTC": None, "DTHFL": None, "ARMNRS": None, "ACTARMUD": None,
    }  # fmt: skip
    row.update(change)
    return pd.DataFrame([row])


def ids(findings) -> set[tuple[str, str, str]]:
    return {(f.rule_id, f.dataset, f.variable) for f in findings}


# --- the metadata ----------------------------------------------------------------------------------------------------
def test_sdtmig_holds_every_domain_the_project_meets() -> None:
    ig = sdtmig()
    assert ig.name == "SDTMIG 3.4"
    need = [
        "DM",
        "AE",
        "EX",
        "DS",
        "LB",
        "VS",
        "CM",
        "MH",
        "SU",
        "EG",
        "QS",
        "SV",
        "SE",
        "TA",
        "TE",
        "TV",
        "TI",
        "TS",
        "RS",
        "TU",
        "TR",
        "SUPPQUAL",
        "RELREC",
    ]
    assert not [d for d in need if d not in ig.datasets]
    ae = ig.datasets["AE"]
    assert (ae.label, ae.cls) == ("Adverse Events", "Events")
    term = ae.variable("AETERM")
    assert term is not None and (term.label, term.type, term.core, term.role) == (
        "Reported Term for the Adverse Event",
        "Char",
        "Req",
        "Topic",
    )
    assert ig.datasets["DM"].variable("SEX").codelists == ("C66731",)  # type: ignore[union-attr]
    assert ig.datasets["AE"].variable("AESEQ").type == "Num"  # type: ignore[union-attr]
    assert [v for v in ig.datasets["DM"].variables.values() if v.core == "Req"][:3] == [
        ig.datasets["DM"].variables[n] for n in ("STUDYID", "DOMAIN", "USUBJID")
    ]


def test_codelists_shipped_are_whole_and_coded() -> None:
    cls = sdtmig().codelists
    assert cls["C66742"].submission == "NY" and cls["C66742"].terms == {"N", "NA", "U", "Y"}
    assert {"F", "M", "U"} <= cls["C66731"].terms and not cls["C66731"].extensible
    assert all(c.startswith("C") and c[1:].isdigit() for c in cls)


def test_adamig_structures() -> None:
    ad = adamig().datasets
    assert set(ad) == {"ADSL", "BDS"}
    assert ad["ADSL"].variable("USUBJID").core == "Req"  # type: ignore[union-attr]
    assert ad["BDS"].variable("PARAMCD") is not None and ad["BDS"].variable("AVAL") is not None


def test_licence_and_source_are_shipped() -> None:
    text = (Path(__file__).parent.parent / "converter" / "spec" / "standards.LICENSE").read_text(encoding="utf-8")
    assert "CDISC Library" in text and "Trial-Submission-Studio" in text and "222938d" in text


def test_split_and_supplemental_datasets_find_their_ig_domain() -> None:
    assert ig_domain("LBCH") == "LB" and ig_domain("QSCO") == "QS" and ig_domain("SUPPLBCH") == "SUPPQUAL"
    assert ig_domain("AE") == "AE" and ig_domain("XY") is None
    assert ig_domain("LBCH", pd.DataFrame({"DOMAIN": ["QS"]})) is None  # its DOMAIN says otherwise


# --- the standard-level rules: passing and failing ------------------------------------------------------------------
def test_clean_dm_passes_the_ig_rules() -> None:
    frames = {"DM": dm()}
    assert check_ig_variables(frames) + check_domain_values(frames) + check_ig_ct(frames) == []


def test_required_missing_and_null_expected_missing() -> None:
    got = ids(check_ig_variables({"DM": dm().drop(columns=["SITEID", "COUNTRY"])}))
    assert ("CORE-000355", "DM", "SITEID") in got and ("CORE-000355", "DM", "COUNTRY") in got
    got = ids(check_ig_variables({"DM": dm(SUBJID=" ")}))
    assert got == {("CORE-000356", "DM", "SUBJID")}
    got = ids(check_ig_variables({"DM": dm().drop(columns=["RFSTDTC"])}))
    assert got == {("CORE-000334", "DM", "RFSTDTC")}


def test_type_against_the_ig() -> None:
    got = check_ig_variables({"DM": dm(AGE="63")})
    assert ids(got) == {("CORE-001082", "DM", "AGE")} and "the IG says Num" in got[0].message


def test_variable_outside_the_ig_and_its_class() -> None:
    ae = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["AE"], "USUBJID": ["S-1"], "AESEQ": [1.0], "AETERM": ["X"],
                       "AEDECOD": ["X"], "AEGRPID": ["1"], "AEMYFLAG": ["Y"]})  # fmt: skip
    got = ids(check_ig_variables({"AE": ae}))
    assert ("INO-STD-004", "AE", "AEMYFLAG") in got
    assert not [g for g in got if g[2] == "AEGRPID"]  # --GRPID: a variable of the Events class


def test_domain_value_and_rdomain() -> None:
    assert ids(check_domain_values({"DM": dm(DOMAIN="AE")})) == {("INO-STD-003", "DM", "DOMAIN")}
    lb = pd.DataFrame({"DOMAIN": ["LB"], "USUBJID": ["S-1"]})
    assert check_domain_values({"LBCH": lb}) == []  # a split dataset keeps its domain's DOMAIN
    supp = pd.DataFrame({"RDOMAIN": ["AE", "DM"], "USUBJID": ["S-1", "S-1"]})
    assert ids(check_domain_values({"SUPPAE": supp})) == {("INO-STD-003", "SUPPAE", "RDOMAIN")}


def test_non_extensible_codelist_values() -> None:
    got = check_ig_ct({"DM": dm(SEX="Female", AGEU="YEARS")})
    assert ids(got) == {("INO-SDTM-030", "DM", "SEX")} and "C66731" in got[0].message
    assert check_ig_ct({"DM": dm(RACE="MARTIAN")}) == []  # RACE's codelist is not shipped in full: not judged


def test_ig_spec_sizes_by_the_data_and_labels_from_the_ig() -> None:
    spec = ig_spec("DM", dm(EXTRA="x"))
    assert spec.label == "Demographics" and spec.column_names[:3] == ["STUDYID", "DOMAIN", "USUBJID"]
    assert spec.column_names[-1] == "EXTRA" and spec.variable("EXTRA").label == "EXTRA"
    assert all(v.length is None for v in spec.variables)
    assert spec.variable("AGE").numeric and not spec.variable("SEX").numeric
    assert ig_spec("SUPPAE", pd.DataFrame({"RDOMAIN": ["AE"]})).label == "Supplemental Qualifiers for AE"


# --- tosdtm: a foreign study's DM is written as XPT, sized by its data ---------------------------------------------
def test_foreign_study_is_written_as_xpt(tmp_path: Path) -> None:
    from converter.fhir.sdtm_dir import read_sdtm_dir, spec_for, write_sdtm_dir
    from converter.io.xpt import read_xpt
    from converter.sdtm.pipeline import load_sdtm_specs

    specs, _, _ = load_sdtm_specs()
    frame = dm()
    spec = spec_for("DM", frame, specs)
    assert all(v.length is None for v in spec.variables)  # the trial's lengths (STUDYID 11) are not used
    files, notes = write_sdtm_dir({"DM": frame}, tmp_path, specs)
    assert "dm.xpt" in files["DM"], notes
    back, meta = read_xpt(tmp_path / "dm.xpt")
    assert back.loc[0, "STUDYID"] == "CDISCPILOT01"
    assert meta.column("STUDYID").length == 12  # the longest value, no longer
    assert meta.column("SEX").label == "Sex"
    assert read_sdtm_dir(tmp_path)["DM"].loc[0, "USUBJID"] == "01-701-1015"


# --- the two levels of inoconv validate -----------------------------------------------------------------------------
def _package(folder: Path, frame: pd.DataFrame) -> Path:
    from converter.fhir.sdtm_dir import write_sdtm_dir

    write_sdtm_dir({"DM": frame}, folder, {})
    for p in folder.glob("*.json"):
        p.unlink()
    return folder


def test_no_define_no_spec_is_the_standard_level_only(tmp_path: Path) -> None:
    from converter.validate.folder import validate_folder

    folder = _package(tmp_path / "sdtm", dm(SEX="Female"))
    found = validate_folder(folder, roundtrip=False)
    rules = {f.rule_id for f in found}
    assert "INO-SDTM-030" in rules  # the IG's codelist
    assert not rules & {"INO-SDTM-002", "INO-SDTM-004", "INO-SDTM-009", "INO-SDTM-005"}  # no trial spec applied
    note = [f for f in found if f.rule_id == "INO-DEFINE-003"]
    assert note and "standard level" in note[0].message


def test_spec_option_adds_the_spec_level(tmp_path: Path) -> None:
    from converter.paths import mappings_dir
    from converter.validate.folder import validate_folder

    folder = _package(tmp_path / "sdtm", dm())
    found = validate_folder(folder, roundtrip=False, spec_dir=mappings_dir())
    rules = {(f.rule_id, f.variable) for f in found}
    assert ("INO-SDTM-009", "STUDYID") in rules  # 12 bytes, the trial spec's length is 11
    assert not [f for f in found if f.rule_id == "INO-DEFINE-003"]


def test_bad_spec_dir_is_a_user_mistake(tmp_path: Path) -> None:
    from converter.errors import InputError
    from converter.validate.folder import validate_folder

    folder = _package(tmp_path / "sdtm", dm())
    with pytest.raises(InputError, match="not a folder"):
        validate_folder(folder, roundtrip=False, spec_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no SDTM spec"):
        validate_folder(folder, roundtrip=False, spec_dir=tmp_path / "empty")


def test_a_foreign_define_is_the_spec(tmp_path: Path) -> None:
    from converter.validate.folder import validate_folder
    from converter.validate.levels import define_origin

    folder = _package(tmp_path / "sdtm", dm())
    (folder / "define.xml").write_text(
        '<?xml version="1.0"?><ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" SourceSystem="Other">'
        '<Study OID="CDISCPILOT01"/></ODM>',
        encoding="utf-8",
    )
    assert define_origin(folder / "define.xml") == ("Other", "CDISCPILOT01")
    found = validate_folder(folder, roundtrip=False)
    rules = {f.rule_id for f in found}
    assert "INO-DEFINE-002" in rules  # DM is not in this define.xml: the define is what the data is checked against
    assert "INO-SDTM-009" not in rules  # and not the trial's spec


# --- CORE on the pilot (stored by benchmarks/bench_validate_core.py) -------------------------------------------------
def test_core_pilot_fixture_is_read_and_each_core_rule_is_accounted_for() -> None:
    doc = json.loads((FIXTURES / "core_pilot.json").read_text(encoding="utf-8"))
    assert doc["core"]["rules_with_issues"]
    for rule in doc["core"]["rules_with_issues"]:
        assert rule["inoconv"] in ("same id", "other id", "not found", "not applicable"), rule
        if rule["inoconv"] == "not applicable":
            assert rule.get("reason"), rule


# --- the cross-dataset rules CORE reports on the pilot: each fails on a pilot-shaped row and passes on a clean one --
def test_dm_against_the_trial_arms() -> None:
    from converter.validate.standard_data import check_dm_arms

    ta = pd.DataFrame({"ARMCD": ["Pbo"], "ARM": ["Placebo"]})
    assert check_dm_arms({"DM": dm(), "TA": ta}) == []
    fail = dm(ARMCD="Scrnfail", ARM="Screen Failure", ACTARMCD="Scrnfail", ACTARM="Screen Failure", RFENDTC=None)
    got = ids(check_dm_arms({"DM": fail, "TA": ta}))
    assert {r for r, _, _ in got} == {"CORE-000210", "CORE-000208", "CORE-000047", "CORE-000209", "CORE-000115",
                                      "CORE-000191"}  # fmt: skip
    got = ids(check_dm_arms({"DM": dm(ACTARMCD="Xan_Lo", ACTARM="Xanomeline Low Dose"), "TA": ta}))
    assert ("CORE-000655", "DM", "ACTARMCD") in got and ("CORE-000656", "DM", "ACTARM") in got


def test_population_flags_belong_in_adsl() -> None:
    from converter.validate.standard_data import check_suppdm_population

    supp = pd.DataFrame({"RDOMAIN": ["DM", "DM"], "USUBJID": ["S-1", "S-1"], "QNAM": ["SAFETY", "RACEOTH"]})
    got = check_suppdm_population({"SUPPDM": supp})
    assert [(f.rule_id, f.row) for f in got] == [("CORE-000211", 1)]


def test_ae_outcome_end_and_death() -> None:
    from converter.validate.standard_data import check_ae_outcome

    ae = pd.DataFrame({"USUBJID": ["01-701-1015"] * 3, "AEOUT": ["NOT RECOVERED/NOT RESOLVED", "FATAL", "FATAL"],
                       "AEENDTC": ["2014-02-01", "2014-03-01", None]})  # fmt: skip
    got = [(f.rule_id, f.row) for f in check_ae_outcome({"AE": ae, "DM": dm(DTHDTC="2014-03-01")})]
    assert got == [("CORE-000657", 1), ("CORE-000841", 3)]


def test_body_system_code_soc_and_history_dates() -> None:
    from converter.validate.standard_data import check_bodsys_code, check_bodsys_soc, check_mh_before_start

    ae = pd.DataFrame({"AEBODSYS": ["CARDIAC DISORDERS", None], "AEBDSYCD": [None, None]})
    assert [(f.rule_id, f.row) for f in check_bodsys_code({"AE": ae})] == [("CORE-000024", 1)]
    assert check_bodsys_code({"MH": pd.DataFrame({"MHBODSYS": ["X"]})}) == []  # no MHBDSYCD: not this rule
    mh = pd.DataFrame({"USUBJID": ["01-701-1015"] * 3, "MHSTDTC": ["2013", "2014-01", "2014-01-02"],
                       "MHBODSYS": ["A", "B", "C"], "MHSOC": ["A", "X", "C"]})  # fmt: skip
    assert [f.row for f in check_mh_before_start({"MH": mh, "DM": dm()})] == [2, 3]  # at the precision both give
    assert [(f.rule_id, f.row) for f in check_bodsys_soc({"MH": mh})] == [("INO-STD-006", 2)]


def test_observation_columns_and_standard_results() -> None:
    from converter.validate.standard_data import check_observation_columns, check_stresc_stresn

    sc = pd.DataFrame({"USUBJID": ["S-1", "S-1"], "SCTESTCD": ["EDULEVEL"] * 2, "SCSTRESC": ["16", "09"],
                       "SCSTRESN": [16.0, 9.0]})  # fmt: skip
    assert [(f.rule_id, f.row) for f in check_stresc_stresn({"SC": sc})] == [("CORE-000732", 2)]
    assert ids(check_observation_columns({"SC": sc})) == {("CORE-000701", "SC", "EPOCH")}
    mh = pd.DataFrame({"USUBJID": ["S-1"], "MHSTDTC": ["2013"], "MHENDTC": ["2014"]})
    got = ids(check_observation_columns({"MH": mh}))  # MH: no EPOCH rule
    assert got == {("CORE-000328", "MH", "MHSTDY"), ("CORE-000776", "MH", "MHENDY")}
    assert check_observation_columns({"SC": sc.assign(EPOCH="SCREENING")}) == []


def test_core_pilot_rules_inoconv_finds_under_the_same_id_are_implemented() -> None:
    """Every rule the stored comparison says inoconv reports under CORE's id is in the registry with that id."""
    from converter.validate.common import RULES

    doc = json.loads((FIXTURES / "core_pilot.json").read_text(encoding="utf-8"))
    same = [r["core_id"] for r in doc["core"]["rules_with_issues"] if r["inoconv"] == "same id"]
    assert len(same) >= 15 and not [r for r in same if r not in RULES]


def test_foreign_unplanned_visit_number_is_kept_as_a_float(tmp_path: Path) -> None:
    """The trial's spec types VISITNUM integer; the pilot's unscheduled visit 3.5 is a number the IG's Num allows."""
    from converter.fhir.sdtm_dir import spec_for, write_sdtm_dir
    from converter.io.xpt import read_xpt
    from converter.sdtm.pipeline import load_sdtm_specs

    specs, _, _ = load_sdtm_specs()
    sv = pd.DataFrame({"STUDYID": ["CDISCPILOT01"] * 2, "DOMAIN": ["SV"] * 2, "USUBJID": ["01-701-1015"] * 2,
                       "VISITNUM": [3.0, 3.5], "VISIT": ["WEEK 2", "UNSCHEDULED 3.1"],
                       "SVSTDTC": ["2014-01-16", "2014-01-20"]})  # fmt: skip
    if "SV" in specs:
        assert spec_for("SV", sv, specs).variable("VISITNUM").type == "float"
    files, notes = write_sdtm_dir({"SV": sv}, tmp_path, specs)
    assert "sv.xpt" in files["SV"], notes
    assert list(read_xpt(tmp_path / "sv.xpt")[0]["VISITNUM"]) == [3.0, 3.5]


# --- .ci/core_gate.py: CORE's rules with issues must be reviewed ----------------------------------------------------
def test_core_gate(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    report = {
        "Issue_Summary": [
            {"core_id": "CORE-000767", "dataset": "AE", "issues": 3, "message": "FAOBJ ..."},
            {"core_id": "CORE-000334", "dataset": "AE", "issues": 1, "message": "rule evaluation error - x"},
        ],
        "Rules_Report": [{"status": "EXECUTION ERROR"}],
    }
    (tmp_path / "core.json").write_text(json.dumps(report), encoding="utf-8")

    def gate(listed: str) -> tuple[int, str]:
        (tmp_path / "reviewed.txt").write_text(listed, encoding="utf-8")
        args = [sys.executable, str(root / ".ci" / "core_gate.py"), str(tmp_path / "core.json"),
                str(tmp_path / "reviewed.txt")]  # fmt: skip
        p = subprocess.run(args, capture_output=True, text=True, check=False)
        return p.returncode, p.stdout

    assert gate("# nothing reviewed\n")[0] == 1  # an unreviewed rule fails; the execution error does not
    code, out = gate("CORE-000767 no FA dataset\n")
    assert code == 0 and "1 execution errors" in out
    assert gate("CORE-000767\n")[0] == 1  # listed without a reason
    assert gate("CORE-000767 no FA dataset\nCORE-000001 gone\n")[0] == 1  # listed, no longer reported
    reviewed = (root / ".ci" / "core-reviewed.txt").read_text(encoding="utf-8").splitlines()
    rows = [r for r in reviewed if r.strip() and not r.startswith("#")]
    assert rows and all(r.startswith("CORE-") and len(r.split(" ", 1)[1]) > 20 for r in rows)
