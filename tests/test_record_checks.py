"""Every record check rule, each with a bad input: the rule, file, record and field of the problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from records_factory import raw_frames, small_records

from converter.errors import InputError, Problem, SpecError
from converter.records.checks import RawTable, check_tables, parse_dates
from converter.records.cross_spec import CrossChecks
from converter.records.model import frames_equal
from converter.records.schema import load_forms
from converter.records.sources import read_records, write_records

Edit = Callable[[dict[str, pd.DataFrame]], None]


def csv_case(tmp_path: Path, edit: Edit) -> Path:
    """The small valid record set as a CSV folder, after ``edit`` changed its raw strings."""
    raw = raw_frames(small_records())
    edit(raw)
    folder = tmp_path / "records"
    folder.mkdir(parents=True)
    for oid, frame in raw.items():
        frame.to_csv(folder / f"{oid}.csv", index=False, lineterminator="\n")
    return folder


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(InputError) as err:
        read_records(path)
    return err.value.problems


def find(problems: list[Problem], rule: str, field: str | None = None) -> Problem:
    hits = [p for p in problems if p.rule == rule and (field is None or p.field == field)]
    assert hits, f"no {rule!r} ({field}) in:\n" + "\n".join(map(str, problems))
    return hits[0]


def row_of(raw: dict[str, pd.DataFrame], form: str, **keys: str) -> int:
    frame = raw[form]
    mask = pd.Series(True, index=frame.index)
    for k, v in keys.items():
        mask &= frame[k] == v
    return int(mask.idxmax())


def set_value(form: str, field: str, value: str, **keys: str) -> Edit:
    def edit(raw: dict[str, pd.DataFrame]) -> None:
        raw[form].loc[row_of(raw, form, **keys), field] = value

    return edit


CASES = [
    # rule, form, field, value, keys of the edited record, expected record text
    ("required", "DEMOG", "SEX", "", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("required", "AE", "AETERM", "", {"SUBJID": "1002", "AESPID": "1"}, "SUBJID=1002 AESPID=1 (row 3)"),
    ("type", "DEMOG", "AGE", "41.5", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("type", "DEMOG", "AGE", "forty", {"SUBJID": "1002"}, "SUBJID=1002 (row 2)"),
    ("type", "AE", "AESPID", "1e3", {"SUBJID": "1003", "AESPID": "1"}, "SUBJID=1003 AESPID=1e3 (row 4)"),
    ("type", "DIAG", "BMBLAST", "12,5", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("type", "DIAG", "WBC", "inf", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("type", "DIAG", "WBC", "NaN", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("type", "LAB", "LBVAL", " 20", {"SUBJID": "1001", "LBTEST": "PLAT", "LBDT": "2012-01-15"}, "SUBJID=1001"),
    ("range", "DEMOG", "AGE", "17", {"SUBJID": "1003"}, "SUBJID=1003 (row 3)"),
    ("range", "DIAG", "BMBLAST", "100.5", {"SUBJID": "1002"}, "SUBJID=1002 (row 2)"),
    ("range", "EXPOS", "DOSE", "-1", {"SUBJID": "1003"}, "SUBJID=1003 COURSE=1 DRUG=DEXAMETHASONE DAY=1"),
    ("length", "ENROL", "SITEID", "MDACC", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("code", "DEMOG", "SEX", "f", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("code", "DIAG", "SALVLN", "3", {"SUBJID": "1002"}, "SUBJID=1002 (row 2)"),
    # the readers' one rule (converter/text.py), reported once, by the reader
    ("control-character", "ENROL", "INVNAM", "Smith\x07", {"SUBJID": "1001"}, "row 1"),
    ("date", "ENROL", "CONSDT", "2012-02-30", {"SUBJID": "1002"}, "SUBJID=1002 (row 2)"),
    ("date", "ENROL", "CONSDT", "2012/01/02", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("date", "EOT", "EOTDT", "2012-03-20T10:00", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("date", "AE", "AESTDT", "2012-13", {"SUBJID": "1003", "AESPID": "1"}, "SUBJID=1003 AESPID=1 (row 4)"),
    ("date", "DEMOG", "BRTHDT", "1970-2", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("date", "AE", "AEENDT", "2013-02-29", {"SUBJID": "1001", "AESPID": "1"}, "SUBJID=1001 AESPID=1 (row 1)"),
    ("partial-date", "ENROL", "ENRLDT", "2012-01", {"SUBJID": "1001"}, "SUBJID=1001 (row 1)"),
    ("partial-date", "DEATH", "DTHDT", "2012", {"SUBJID": "1002"}, "SUBJID=1002 (row 1)"),
]


@pytest.mark.parametrize(("rule", "form", "field", "value", "keys", "record"), CASES)
def test_field_rules(
    tmp_path: Path, rule: str, form: str, field: str, value: str, keys: dict[str, str], record: str
) -> None:
    folder = csv_case(tmp_path, set_value(form, field, value, **keys))
    p = find(problems_of(folder), rule, field)
    assert p.file == str(folder / f"{form}.csv")
    assert p.record.startswith(record) or record in p.record, p.record
    if value:
        assert p.value == value or rule in ("length", "control-character")


def test_leap_day_and_partial_dates_are_fine(tmp_path: Path) -> None:
    def edit(raw: dict[str, pd.DataFrame]) -> None:
        raw["AE"].loc[0, "AESTDT"] = "2012-01"  # partial where allowed
        raw["AE"].loc[0, "AEENDT"] = "2012-02-29"  # a real leap day
        raw["DEMOG"].loc[2, "BRTHDT"] = "1990"

    records = read_records(csv_case(tmp_path, edit))
    assert records["AE"].loc[0, "AESTDT"] == "2012-01"


def test_parse_dates_classifies_iso_forms() -> None:
    import numpy as np

    vals = np.array(
        [
            "2013",
            "2013-02",
            "2013-02-28",
            "2012-02-29",
            "2013-02-29",
            "2013-2-01",
            "13-02-01",
            "2013-00",
            "0000",
            "２０１３",
            "2013-02-01 ",
            "2013-W05",
            "2013-02-30",
        ],
        dtype=object,
    )
    prec, _ = parse_dates(vals)
    assert prec.tolist() == [4, 7, 10, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0]


def test_duplicate_keys(tmp_path: Path) -> None:
    def edit(raw: dict[str, pd.DataFrame]) -> None:
        raw["AE"].loc[1, "AESPID"] = "1"  # 1001 has AESPID 1 and 2: now 1 twice
        raw["DEMOG"] = pd.concat([raw["DEMOG"], raw["DEMOG"].iloc[[2]]], ignore_index=True)

    folder = csv_case(tmp_path, edit)
    problems = problems_of(folder)
    ae = next(p for p in problems if p.rule == "duplicate-key" and p.file.endswith("AE.csv"))
    assert (ae.record, ae.field) == ("SUBJID=1001 AESPID=1 (row 2)", "SUBJID,AESPID")
    dm = next(p for p in problems if p.rule == "duplicate-key" and p.file.endswith("DEMOG.csv"))
    assert dm.record == "SUBJID=1003 (row 4)"


def test_integer_keys_compare_by_value(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("AE", "AESPID", "02", SUBJID="1001", AESPID="1"))
    p = find(problems_of(folder), "duplicate-key")
    assert "SUBJID=1001" in p.record


def test_orphan_subject(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("LAB", "SUBJID", "9999", SUBJID="1002"))
    p = find(problems_of(folder), "orphan-subject")
    assert (p.file, p.field, p.value) == (str(folder / "LAB.csv"), "SUBJID", "9999")
    assert p.record.startswith("SUBJID=9999 LBDT=2012-02-01 LBTEST=HGB")


def test_ae_end_before_start(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("AE", "AEENDT", "2012-01-10", SUBJID="1001", AESPID="1"))
    p = find(problems_of(folder), "ae-end-before-start")
    assert (p.file, p.field) == (str(folder / "AE.csv"), "AEENDT")
    assert p.record == "SUBJID=1001 AESPID=1 (row 1)" and p.value == "2012-01-15 > 2012-01-10"


def test_ae_dates_compare_at_common_precision(tmp_path: Path) -> None:
    # start 2012-02 (month), end 2012-02-01: same month, not an error; end 2012-01 is a month earlier
    ok = csv_case(tmp_path / "ok", set_value("AE", "AEENDT", "2012-02-01", SUBJID="1001", AESPID="2"))
    read_records(ok)
    bad = csv_case(tmp_path / "bad", set_value("AE", "AEENDT", "2012-01", SUBJID="1001", AESPID="2"))
    p = find(problems_of(bad), "ae-end-before-start")
    assert "AESPID=2" in p.record and p.value == "2012-02 > 2012-01"


def test_dosing_after_death(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("EXPOS", "ADMDT", "2012-06-01", SUBJID="1002", DRUG="METHOTREXATE"))
    p = find(problems_of(folder), "dosing-after-death")
    assert (p.file, p.field) == (str(folder / "EXPOS.csv"), "ADMDT")
    assert p.record.startswith("SUBJID=1002 COURSE=1 DRUG=METHOTREXATE DAY=2")
    assert "DEATH.DTHDT" in p.message


def test_death_before_enrolment(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("DEATH", "DTHDT", "2012-01-20", SUBJID="1002"))
    p = find(problems_of(folder), "death-before-enrolment")
    assert (p.file, p.field, p.record) == (str(folder / "DEATH.csv"), "DTHDT", "SUBJID=1002 (row 1)")


def test_consent_after_enrolment(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("ENROL", "CONSDT", "2012-03-05", SUBJID="1003"))
    p = find(problems_of(folder), "consent-after-enrolment")
    assert (p.file, p.field, p.record) == (str(folder / "ENROL.csv"), "CONSDT", "SUBJID=1003 (row 3)")


def test_ae_start_after_death_is_an_error(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("AE", "AESTDT", "2012-05-02", SUBJID="1002", AESPID="1"))
    p = find(problems_of(folder), "ae-after-death")
    assert (p.field, p.record) == ("AESTDT", "SUBJID=1002 AESPID=1 (row 3)")


def test_other_events_after_death_are_warnings(tmp_path: Path) -> None:
    folder = csv_case(tmp_path, set_value("LAB", "LBDT", "2012-05-10", SUBJID="1002"))
    warnings: list[Problem] = []
    records = read_records(folder, warnings=warnings)
    assert len(records["LAB"]) == 4
    p = find(warnings, "event-after-death", "LBDT")
    assert p.file == str(folder / "LAB.csv") and "SUBJID=1002" in p.record


def test_structure_problems_of_a_csv_folder(tmp_path: Path) -> None:
    def edit(raw: dict[str, pd.DataFrame]) -> None:
        raw["XYZ"] = pd.DataFrame({"SUBJID": ["1001"]})
        del raw["FU"]

    folder = csv_case(tmp_path, edit)
    (folder / "SCT.csv").write_text("SUBJID,SCTDT,DONOR,SCTDT\n1001,2012-04-01,MATCHED RELATED,x\n", encoding="utf-8")
    (folder / "RELAPSE.csv").write_text("SUBJID,RELDT,RELSITE\n1001,2013-01-01,MARROW,extra\n", encoding="utf-8")
    (folder / "EOT.csv").write_text(
        "SUBJID,EOTDT,NCOURSE,EOTRSN\n1001,2012-03-20,2,TRANSPLANT\n1002,2012-03-05\n1003,2012-03-10,1,DEATH\n",
        encoding="utf-8",
    )
    problems = problems_of(folder)
    assert find(problems, "unknown-form").file == str(folder / "XYZ.csv")
    assert find(problems, "missing-form").file == str(folder / "FU.csv")
    assert find(problems, "duplicate-column").field == "SCTDT"
    csv = find(problems, "csv")
    assert csv.file == str(folder / "RELAPSE.csv") and csv.record == "line 2"
    short = next(p for p in problems if p.rule == "csv" and p.file.endswith("EOT.csv"))
    assert short.record == "row 2"


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    def edit(raw: dict[str, pd.DataFrame]) -> None:
        set_value("DEMOG", "SEX", "X", SUBJID="1001")(raw)
        set_value("DEMOG", "AGE", "", SUBJID="1002")(raw)
        set_value("AE", "AEENDT", "2011-01-01", SUBJID="1001", AESPID="1")(raw)
        set_value("ENROL", "CONSDT", "2012-02-31", SUBJID="1003")(raw)
        set_value("LAB", "SUBJID", "7777", SUBJID="1002")(raw)

    problems = problems_of(csv_case(tmp_path, edit))
    assert {"code", "required", "ae-end-before-start", "date", "orphan-subject"} <= {p.rule for p in problems}


def test_checks_on_odm_input_name_the_subject(tmp_path: Path) -> None:
    path = tmp_path / "r.xml"
    write_records(small_records(), path, "odm")
    text = path.read_text(encoding="utf-8").replace(
        '<ItemData ItemOID="IT.DEMOG.SEX" Value="F"/>', '<ItemData ItemOID="IT.DEMOG.SEX" Value="W"/>'
    )
    path.write_text(text, encoding="utf-8")
    p = find(problems_of(path), "code", "SEX")
    assert (p.file, p.record, p.value) == (str(path), "SUBJID=1001", "W")


def test_check_tables_directly_on_raw_tables() -> None:
    schema = load_forms()
    raw = raw_frames(small_records())
    tables = {oid: RawTable(oid, f"{oid}.csv", frame.replace("", None), row_offset=1) for oid, frame in raw.items()}
    report = check_tables(tables, schema)
    assert report.ok and report.warnings == []
    tables["AE"].frame.loc[0, "AEGRADE"] = "6"
    report = check_tables(tables, schema)
    assert [(p.rule, p.field, p.record) for p in report.errors] == [
        ("range", "AEGRADE", "SUBJID=1001 AESPID=1 (row 1)")
    ]


def test_valid_input_passes_and_types_are_canonical(tmp_path: Path) -> None:
    records = read_records(csv_case(tmp_path, lambda raw: None))
    assert frames_equal(records, small_records()) == []
    assert str(records["DEMOG"]["AGE"].dtype) == "Int64" and records["DIAG"]["WBC"].dtype == "float64"


# ------------------------------------------------------------------------------ declared cross-checks


def test_required_if_names_the_record_and_the_condition(tmp_path: Path) -> None:
    raw = raw_frames(small_records())
    ended = raw["AE"][raw["AE"]["AEOUT"] == "RECOVERED/RESOLVED"].index[0]
    subj, spid = raw["AE"].loc[ended, "SUBJID"], raw["AE"].loc[ended, "AESPID"]
    folder = csv_case(tmp_path, set_value("AE", "AEENDT", "", SUBJID=subj, AESPID=spid))
    p = find(problems_of(folder), "ae-end-date-missing", "AEENDT")
    assert p.record.startswith(f"SUBJID={subj} AESPID={spid} (row ")
    assert p.file.endswith("AE.csv") and "AEOUT is RECOVERED/RESOLVED" in p.message


def test_subject_in_with_a_condition(tmp_path: Path) -> None:
    def alive_is_dead(raw: dict[str, pd.DataFrame]) -> None:
        raw["FU"].loc[row_of(raw, "FU", SUBJID="1001"), "FUSTAT"] = "DEAD"

    p = find(problems_of(csv_case(tmp_path, alive_is_dead)), "death-record-missing", "SUBJID")
    assert (p.record, p.value) == ("SUBJID=1001 (row 1)", "1001")
    assert "FUSTAT is DEAD" in p.message


def test_checks_are_only_those_declared() -> None:
    """Cross-checks come from forms.yaml: a record set that breaks them passes when none are declared."""
    schema = load_forms()
    raw = raw_frames(small_records())
    raw["ENROL"].loc[0, "CONSDT"] = "2030-01-01"  # consent after enrolment
    raw["FU"].loc[0, "FUSTAT"] = "DEAD"  # no DEATH record
    tables = {oid: RawTable(oid, f"{oid}.csv", frame.replace("", None), row_offset=1) for oid, frame in raw.items()}
    rules = {p.rule for p in check_tables(tables, schema).errors}
    assert {"consent-after-enrolment", "death-record-missing"} <= rules
    assert check_tables(tables, schema, CrossChecks()).errors == []
    assert {r.rule for r in schema.cross_checks.order} >= {"consent-after-enrolment", "event-after-death"}


def _forms_with(tmp_path: Path, checks: str) -> Path:
    text = (Path(load_forms().path)).read_text(encoding="utf-8")
    head = text[: text.index("\ncross_checks:")]
    path = tmp_path / "forms.yaml"
    path.write_text(head + "\ncross_checks:\n" + checks, encoding="utf-8")
    return path


def test_no_cross_checks_section_means_none(tmp_path: Path) -> None:
    text = load_forms().path.read_text(encoding="utf-8")
    path = tmp_path / "forms.yaml"
    path.write_text(text[: text.index("\ncross_checks:")] + "\n", encoding="utf-8")
    assert not load_forms(path).cross_checks


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ("  - {rule: a, check: date-after, earlier: AE.AESTDT, later: AE.AEENDT, message: m}\n",
         "check 'date-after' is not one of"),
        ("  - {rule: a, check: date-order, earlier: AE.AESTDT, later: AE.AETERM, message: m}\n",
         "later: AE.AETERM is not a date field"),
        ("  - {rule: a, check: date-order, earlier: AE.NOPE, later: AE.AEENDT, message: m}\n",
         "earlier: 'AE.NOPE' is not FORM.FIELD"),
        ("  - {rule: a, check: subject-in, form: FU, in: NOFORM, message: m}\n", "in: 'NOFORM' is not a form"),
        ("  - {rule: a, check: subject-in, form: FU, in: DEATH, when: {FUSTAT: [GONE]}, message: m}\n",
         "['GONE'] are not codes of the field"),
        ("  - {rule: a, check: required-if, field: AE.AEENDT, when: {NOPE: [Y]}, message: m}\n",
         "'NOPE' is not a field of the form"),
        ("  - {rule: a, check: required-if, field: AE.AEENDT, message: m}\n", "missing when"),
        ("  - {rule: a, check: date-order, earlier: AE.AESTDT, later: AE.AEENDT, severity: fatal, message: m}\n",
         "severity 'fatal' is not error or warning"),
        ("  - {rule: a, check: subject-in, form: FU, in: DEATH, message: m, extra: 1}\n", "unknown keys ['extra']"),
        ("  - {rule: a, check: subject-in, form: FU, in: DEATH, message: m}\n"
         "  - {rule: a, check: subject-in, form: AE, in: DEATH, message: m}\n", "rule 'a' declared twice"),
    ],
)
def test_cross_check_spec_errors_name_file_and_line(tmp_path: Path, checks: str, expected: str) -> None:
    path = _forms_with(tmp_path, checks)
    with pytest.raises(SpecError) as err:
        load_forms(path)
    text = "\n".join(err.value.messages)
    assert expected in text, text
    line = path.read_text(encoding="utf-8").splitlines().index("cross_checks:") + 2
    assert f"{path}:{line}: cross_checks[0] (a)" in text or f"{path}:{line + 1}: cross_checks[1] (a)" in text, text
