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
    # CT 2024-03-29 as NCI EVS publishes it: RACE (8 terms), AESEV, OUT, ACN non-extensible; EPOCH, NCOMPLT,
    # ROUTE, UNIT extensible
    assert cls["C74457"].terms >= {"WHITE", "ASIAN", "NOT REPORTED"} and len(cls["C74457"].terms) == 8
    assert cls["C66769"].terms == {"MILD", "MODERATE", "SEVERE"} and not cls["C66769"].extensible
    assert "NOT RECOVERED/NOT RESOLVED" in cls["C66768"].terms and "DRUG WITHDRAWN" in cls["C66767"].terms
    assert "SCREENING" in cls["C99079"].terms and cls["C99079"].extensible
    assert "COMPLETED" in cls["C66727"].terms and "ORAL" in cls["C66729"].terms and "mg" in cls["C71620"].terms
    # every codelist a shipped variable names is shipped, SDTM and ADaM alike
    named = {c for std in (sdtmig(), adamig()) for d in std.datasets.values() for v in d.variables.values()
             for c in v.codelists}  # fmt: skip
    assert named and not named - set(cls)
    assert cls["C81224"].package == "ADaM CT 2024-03-29" and "LOCF" in cls["C81224"].terms  # DTYPE


def test_ct_terms_carry_nci_codes() -> None:
    import yaml

    doc = yaml.load((Path(__file__).parent.parent / "converter" / "spec" / "cdisc-ct-2024-03-29.yaml").read_text(
        encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # fmt: skip
    sex = dict((s, c) for c, s in doc["codelists"]["C66731"]["terms"])
    assert sex == {"F": "C16576", "M": "C20197", "U": "C17998", "INTERSEX": "C45908"}
    assert all(str(c).startswith("C") for cl in doc["codelists"].values() for c, _ in cl["terms"])


@pytest.mark.parametrize("name", ["sdtmig-3.4.yaml", "adamig-1.3.yaml", "cdisc-ct-2024-03-29.yaml"])
def test_json_twin_holds_its_yaml(name: str) -> None:
    """What the standards module reads (the JSON twin) is exactly the reviewed YAML; a YAML edited without
    remaking its twin fails here (``python tools/make_standards.py --json``)."""
    import yaml

    spec = Path(__file__).parent.parent / "converter" / "spec"
    from_yaml = yaml.load((spec / name).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    twin = spec / name.replace(".yaml", ".json")
    assert twin.is_file(), f"{twin.name} missing: python tools/make_standards.py --json"
    assert json.loads(twin.read_text(encoding="utf-8")) == from_yaml, f"{twin.name} is stale: python tools/make_standards.py --json"


def test_adamig_structures() -> None:
    ad = adamig().datasets
    assert set(ad) == {"ADSL", "BDS", "TTE", "OCCDS", "OCCDS-AE"}
    assert ad["ADSL"].variable("USUBJID").core == "Req"  # type: ignore[union-attr]
    assert ad["BDS"].variable("PARAMCD") is not None and ad["BDS"].variable("AVAL") is not None
    assert ad["BDS"].variable("CNSR").core == "Cond" and ad["TTE"].variable("CNSR").core == "Req"  # type: ignore
    assert ad["OCCDS"].variable("--DECOD").core == "Cond" and ad["OCCDS-AE"].variable("--DECOD").core == "Req"  # type: ignore


def test_adam_datasets_find_their_structure() -> None:
    from converter.spec.standards import adam_structure, ig_dataset

    assert (
        adam_structure("ADTTE") == "TTE" and adam_structure("ADEFF", pd.DataFrame(columns=["PARAMCD", "CNSR"])) == "TTE"
    )
    assert adam_structure("ADLB", pd.DataFrame(columns=["PARAMCD", "AVAL"])) == "BDS"
    assert adam_structure("ADAE") == "OCCDS-AE" and adam_structure("ADCM") == "OCCDS" and adam_structure("ADXY") is None
    adae = ig_dataset("ADAE")
    assert adae is not None and adae.variable("AESEQ").core == "Req"  # type: ignore[union-attr]
    assert adae.variable("AETERM").label == "Reported Term for the Adverse Event"  # type: ignore[union-attr]
    adcm = ig_dataset("ADCM")
    assert adcm is not None and adcm.variable("CMTERM") is None  # Interventions: no --TERM in SDTM CM
    # a dataset without a trial spec is written with these labels and types (ig_spec)
    spec = ig_spec("ADTTE", pd.DataFrame({"USUBJID": ["S-1"], "PARAMCD": ["OS"], "CNSR": [0]}))
    assert spec.variable("CNSR").label == "Censor" and spec.variable("CNSR").numeric
    assert ig_spec("ADAE", pd.DataFrame({"AETERM": ["X"]})).variable("AETERM").label == (
        "Reported Term for the Adverse Event"
    )


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
    got = check_ig_ct({"DM": dm(RACE="MARTIAN")})  # RACE (C74457) is shipped whole now and is not extensible
    assert ids(got) == {("INO-SDTM-030", "DM", "RACE")} and got[0].severity == "error"
    assert check_ig_ct({"DM": dm(RACE="BLACK OR AFRICAN AMERICAN", ETHNIC="NOT REPORTED")}) == []


def _ae(**change: object) -> pd.DataFrame:
    row = {"STUDYID": "CDISCPILOT01", "DOMAIN": "AE", "USUBJID": "01-701-1015", "AESEQ": 1.0, "AETERM": "ERYTHEMA",
           "AEDECOD": "ERYTHEMA", "AESEV": "MILD", "AESER": "N", "AEOUT": "RECOVERED/RESOLVED",
           "AEACN": "DOSE NOT CHANGED", "EPOCH": "TREATMENT", "AESTDTC": "2014-01-03"}  # fmt: skip
    row.update(change)
    return pd.DataFrame([row])


def test_ae_codelists_error_and_extensible_warning() -> None:
    assert check_ig_ct({"AE": _ae()}) == []
    got = check_ig_ct({"AE": _ae(AESEV="GRADE 2", AEOUT="RESOLVED", AEACN="STOPPED")})
    assert ids(got) == {("INO-SDTM-030", "AE", v) for v in ("AESEV", "AEOUT", "AEACN")}
    got = check_ig_ct({"AE": _ae(EPOCH="RANDOMISATION")})  # EPOCH (C99079) is extensible: a sponsor term warns
    assert ids(got) == {("INO-SDTM-031", "AE", "EPOCH")} and got[0].severity == "warning"
    assert "extensible codelist EPOCH (C99079)" in got[0].message
    # a sponsor term the study's spec/define.xml declares for that codelist passes; a non-extensible list cannot grow
    assert check_ig_ct({"AE": _ae(EPOCH="RANDOMISATION")}, {"C99079": frozenset({"RANDOMISATION"})}) == []
    got = check_ig_ct({"AE": _ae(AESEV="GRADE 2")}, {"C66769": frozenset({"GRADE 2"})})
    assert ids(got) == {("INO-SDTM-030", "AE", "AESEV")}


def test_sponsor_terms_come_from_the_study_terminology() -> None:
    from converter.spec.model import Codelist, Term, Terminology
    from converter.validate.standard_rules import sponsor_terms

    ct = Terminology("SDTM CT 2024-03-29", {
        "EPOCH": Codelist("EPOCH", "Epoch", "C99079", True, (Term("SCREENING", "C202487"), Term("INDUCTION", None))),
        "MINE": Codelist("MINE", "Sponsor list", None, True, (Term("X", None),)),
    })  # fmt: skip
    assert sponsor_terms(ct) == {"C99079": frozenset({"SCREENING", "INDUCTION"})} and sponsor_terms(None) == {}


def test_result_variables_are_left_to_the_value_level() -> None:
    lb = pd.DataFrame({"STUDYID": ["S"], "DOMAIN": ["LB"], "USUBJID": ["S-1"], "LBSEQ": [1.0], "LBTESTCD": ["ALB"],
                       "LBTEST": ["Albumin"], "LBSTRESC": ["4.1"], "LBNRIND": ["NORMAL"]})  # fmt: skip
    assert check_ig_ct({"LB": lb}) == []  # LBSTRESC's codelist applies to some tests only
    got = ids(check_ig_ct({"LB": lb.assign(LBTESTCD="ALBX", LBNRIND="NORMALISH")}))
    assert got == {("INO-SDTM-031", "LB", "LBTESTCD"), ("INO-SDTM-031", "LB", "LBNRIND")}


def test_adam_codelists_and_required_variables() -> None:
    adsl = pd.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "SUBJID": ["1"], "SITEID": ["701"], "AGE": [63.0],
                         "AGEU": ["YEARS"], "SEX": ["F"], "RACE": ["WHITE"]})  # fmt: skip
    assert check_ig_ct({"ADSL": adsl}) == []
    assert ids(check_ig_ct({"ADSL": adsl.assign(SEX="W")})) == {("INO-ADAM-030", "ADSL", "SEX")}
    adae = pd.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "AESEQ": [1.0], "AETERM": ["ERYTHEMA"],
                         "AESEV": ["MILD"], "AESER": ["N"]})  # fmt: skip
    got = ids(check_ig_variables({"ADAE": adae}))
    missing = {v for r, d, v in got if r == "INO-ADAM-008" and d == "ADAE"}
    assert {"AEDECOD", "AEBODSYS", "AESOC", "TRTEMFL", "AEREL", "AESTDTC", "ASTDT"} <= missing
    assert not missing & {"AESEQ", "ASTTM", "SRCDOM"}  # present; Cond; "Not used" in the ADVERSE EVENT subclass
    assert ids(check_ig_ct({"ADAE": adae.assign(AESER="YES")})) == {("INO-ADAM-030", "ADAE", "AESER")}  # NY
    # OCCDS --SEV: (AESEV) or (SEVRS); SEVRS is extensible, so a value in neither is a warning
    assert ids(check_ig_ct({"ADAE": adae.assign(AESEV="GRADE 1")})) == {("INO-ADAM-031", "ADAE", "AESEV")}
    adtte = pd.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "PARAMCD": ["OS"], "PARAM": ["Overall Survival"],
                          "AVAL": [120.0], "CNSR": [0.0]})  # fmt: skip
    got = ids(check_ig_variables({"ADTTE": adtte.drop(columns=["CNSR"])}))
    assert ("INO-ADAM-008", "ADTTE", "CNSR") in got
    assert not {v for r, _, v in ids(check_ig_variables({"ADTTE": adtte})) if r == "INO-ADAM-008"}
    got = ids(check_ig_variables({"ADTTE": adtte.drop(columns=["AVAL"])}))
    assert ("INO-ADAM-008", "ADTTE", "AVAL") in got  # the time to event
    # ADaM Req means included, not populated on every record (a TRTEMFL is Y or null)
    assert not [g for g in ids(check_ig_variables({"ADAE": adae.assign(TRTEMFL=None)})) if g[0] == "CORE-000356"]


def test_adam_placeholder_names_are_matched() -> None:
    adsl = pd.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "SUBJID": ["1"], "SITEID": ["701"], "AGE": [63.0],
                         "AGEU": ["YEARS"], "SEX": ["F"], "RACE": ["WHITE"], "TRT01P": ["Placebo"]})  # fmt: skip
    assert ("INO-ADAM-008", "ADSL", "TRTxxP") not in ids(check_ig_variables({"ADSL": adsl}))
    assert ("INO-ADAM-008", "ADSL", "TRTxxP") in ids(check_ig_variables({"ADSL": adsl.drop(columns=["TRT01P"])}))


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
    import converter.validate.standard_data  # noqa: F401  (registers its CORE rules, as a run imports it)
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
