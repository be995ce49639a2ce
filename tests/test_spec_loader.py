"""Spec files are checked on load: every error names the file, the variable and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from converter.errors import SpecError
from converter.records.schema import load_forms
from converter.spec.loader import check_specs, load_spec, load_specs, parse_spec
from converter.spec.model import Codelist, Term, Terminology

GOOD = """\
dataset: XX
label: Example
keys: [USUBJID]
sources:
  - {id: DEMOG, form: DEMOG}
variables:
  - {name: USUBJID, label: Unique Subject Identifier, type: text, core: Req, origin: Derived, rule: {usubjid: SUBJID}}
  - {name: SEX, label: Sex, type: text, core: Req, codelist: SEX, origin: Collected, rule: {ct: {field: SEX, codelist: SEX}}}
"""

CT = Terminology("test", {"SEX": Codelist("SEX", "Sex", "C66731", False, (Term("F", "C16576"), Term("M", "C20197")))})


def _write(tmp_path: Path, text: str, name: str = "xx.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_good_spec_loads_and_checks(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.column_names == ["USUBJID", "SEX"]
    assert spec.variable("SEX").rule_for("DEMOG").name == "ct"  # type: ignore[union-attr]
    check_specs({"XX": spec}, load_forms(), CT)


@pytest.mark.parametrize(
    ("bad", "good", "expected"),
    [
        ("rule: {ct: {field: SEX, codelist: SEX}}", "rule: {nonsense: SEX}", "line 8: variable SEX: unknown rule 'nonsense'"),
        ("type: text, core: Req, codelist", "type: txt, core: Req, codelist", "line 8: variable SEX: type must be one of"),
        ("label: Sex,", "label: '',", "line 8: variable SEX: label is required"),
        ("core: Req, codelist", "core: Required, codelist", "line 8: variable SEX: core must be one of"),
        ("rule: {ct: {field: SEX, codelist: SEX}}", "rule: {ct: {field: SEX}}", "missing argument 'codelist'"),
        ("rule: {ct: {field: SEX, codelist: SEX}}", "rule: {ct: {fld: SEX, codelist: SEX}}", "unknown argument 'fld'"),
        ("origin: Collected", "origin: Guessed", "line 8: variable SEX: origin must be one of"),
    ],
)
def test_spec_errors_name_file_variable_and_line(tmp_path: Path, bad: str, good: str, expected: str) -> None:
    text = GOOD.replace(bad, good, 1)
    assert text != GOOD
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert expected.split(": ", 1)[-1].split(": ")[-1] in msg
    if expected.startswith("line"):
        assert f"{path}:{expected.split(':')[0].split()[1]}" in msg


def test_unknown_source_field_and_codelist_are_errors_before_data(tmp_path: Path) -> None:
    text = GOOD.replace("rule: {ct: {field: SEX, codelist: SEX}}", "rule: {ct: {field: GENDER, codelist: SEXX}}")
    text = text.replace("codelist: SEX, origin", "codelist: NOPE, origin")
    spec = load_spec(_write(tmp_path, text))
    with pytest.raises(SpecError) as exc:
        check_specs({"XX": spec}, load_forms(), CT)
    msg = str(exc.value)
    assert "source field 'GENDER' is not in form DEMOG" in msg
    assert "codelist 'NOPE' does not exist" in msg
    assert "codelist 'SEXX' does not exist" in msg
    assert ":8: variable SEX" in msg


def test_unknown_form_and_bad_yaml(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, GOOD.replace("form: DEMOG}", "form: DEMOGRAPHY}")))
    with pytest.raises(SpecError, match=r"form 'DEMOGRAPHY' is not in forms\.yaml"):
        check_specs({"XX": spec}, load_forms(), CT)
    path = _write(tmp_path, GOOD.replace("keys: [USUBJID]", "keys: [USUBJID"), "broken.yaml")
    with pytest.raises(SpecError, match=r"broken.yaml: line \d+ invalid YAML"):
        load_spec(path)


def test_duplicates_unknown_keys_and_rule_reading_later_variable(tmp_path: Path) -> None:
    text = GOOD + "  - {name: SEX, label: Again, type: text, origin: Assigned, rule: {assign: X}, colour: red}\n"
    with pytest.raises(SpecError) as exc:
        load_spec(_write(tmp_path, text))
    assert "variable SEX: defined more than once" in str(exc.value)
    assert "unknown key 'colour'" in str(exc.value)


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="duplicate key"):
        load_spec(_write(tmp_path, GOOD.replace("label: Example", "label: Example\nlabel: Again")))


def test_rules_naming_unknown_source(tmp_path: Path) -> None:
    text = GOOD.replace("rule: {usubjid: SUBJID}", "rules: {OTHER: {usubjid: SUBJID}}")
    with pytest.raises(SpecError, match="rules name source 'OTHER'"):
        parse_spec(__import__("yaml").safe_load(text), tmp_path / "x.yaml")


def test_project_specs_load_and_check() -> None:
    from converter.sdtm.pipeline import load_sdtm_specs

    specs, _ct, _forms = load_sdtm_specs()
    assert {"DM", "SUPPDM", "EX", "AE", "DS", "RS", "LB", "PR", "TS", "TA", "TE"} <= set(specs)
    assert list(specs).index("DM") < list(specs).index("AE")  # dependency order
    for spec in specs.values():
        assert spec.keys, spec.name
        for v in spec.variables:
            assert len(v.label) <= 40, (spec.name, v.name)


def test_load_specs_reports_every_file(tmp_path: Path) -> None:
    _write(tmp_path, GOOD.replace("type: text, core: Req, codelist", "type: txt, core: Req, codelist"), "a.yaml")
    _write(tmp_path, GOOD.replace("dataset: XX", "dataset: YY").replace("origin: Collected", "origin: Nope"), "b.yaml")
    with pytest.raises(SpecError) as exc:
        load_specs(tmp_path)
    assert "a.yaml" in str(exc.value) and "b.yaml" in str(exc.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "a spec must be a mapping"),
        (b"- just\n- a list\n", "a spec must be a mapping"),
        ("dataset: XX\nlabel: D\xe9mographie\n".encode("latin-1"), "not UTF-8"),
        (b"dataset: XX\n\tlabel: tab\n", "invalid YAML"),
        (GOOD.encode("utf-8")[: len(GOOD) // 2], "invalid YAML"),  # truncated mid-flow-mapping
    ],
)
def test_hostile_spec_files_are_spec_errors(tmp_path: Path, content: bytes, expected: str) -> None:
    p = tmp_path / "xx.yaml"
    p.write_bytes(content)
    with pytest.raises(SpecError) as exc:
        load_spec(p)
    assert str(p) in str(exc.value) and expected in str(exc.value)


def test_spec_with_bom_and_crlf_loads(tmp_path: Path) -> None:
    p = tmp_path / "xx.yaml"
    p.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode("utf-8"))
    assert load_spec(p).column_names == ["USUBJID", "SEX"]
