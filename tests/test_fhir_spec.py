"""The SDTM <-> FHIR specs: they load, cover every SDTM variable, name real R4 elements; bad specs are
reported with file and line; paths and identifier templates work both ways."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from test_fhir_data import example, specs

from converter.errors import SpecError
from converter.fhir.mapping import check_coverage, check_paths_r4b, coverage, load_fhir_specs, parse_template
from converter.fhir.path_setters import compile_setter
from converter.fhir.paths import PathSet, compile_getter, parse_path
from converter.paths import mappings_dir
from converter.spec.model import Origin, VariableSpec


def test_every_sdtm_variable_is_mapped_or_listed() -> None:
    assert check_coverage(specs(), example().specs) == []


def test_a_new_sdtm_variable_must_be_mapped_or_listed() -> None:
    ae = example().specs["AE"]
    extra = VariableSpec(
        name="AENEWVAR", label="New", type="text", order=99, core="Perm", origin=Origin("Derived"), rules={}
    )
    gaps = check_coverage(specs(), {"AE": dataclasses.replace(ae, variables=(*ae.variables, extra))})
    assert gaps == ["AE.AENEWVAR: neither mapped nor listed in not_mapped (mappings/fhir)"]


def test_every_path_is_an_r4_element() -> None:
    assert check_paths_r4b(specs()) == []


def test_not_mapped_variables_say_why() -> None:
    for ds, variables in coverage(specs()).items():
        for var, status in variables.items():
            if status.startswith("not mapped"):
                assert len(status) > len("not mapped: ") + 10, (ds, var)


def test_one_spec_file_per_resource_type() -> None:
    # the study's own files and the standard set's (mappings/fhir/standard) name their resource type
    fhir = mappings_dir() / "fhir"
    files = {p.name for d in (fhir, fhir / "standard") for p in d.glob("*.yaml") if not p.name.startswith("_")}
    assert files == {f"{t.lower()}.yaml" for t in specs().resources}


def _bad_spec_folder(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "fhir"
    folder.mkdir()
    shutil.copy(mappings_dir() / "fhir" / "_common.yaml", folder / "_common.yaml")
    shutil.copytree(mappings_dir() / "fhir" / "standard", folder / "standard")
    (folder / "bad.yaml").write_text(body)
    return folder


def test_spec_errors_name_file_line_and_problem(tmp_path: Path) -> None:
    folder = _bad_spec_folder(
        tmp_path,
        """resource: AdverseEvent
sources:
  - dataset: AE
    identifier: {system: "urn:x", value: "{USUBJID}-{AESEQ}"}
    elements:
      - {var: AESER, path: seriousness, as: coded}
      - {var: AETERM, path: "event..text"}
      - {var: AESEV, path: severity, as: map, map: $no_such_table}
      - {var: AEREL, path: "extension[url=${NOPE}].valueString"}
      - {var: AEOUT, path: outcome, as: fixed, value: x}
    not_mapped:
      AEDY: {rederive: {study_day: AEDTC}}
""",
    )
    with pytest.raises(SpecError) as exc:
        load_fhir_specs(folder)
    text = "\n".join(exc.value.messages)
    assert "bad.yaml:6: unknown transform as: 'coded'" in text
    assert "bad.yaml:7: bad path step '' in 'event..text'" in text
    assert "bad.yaml:8: unknown table '$no_such_table'" in text
    assert "unknown constant ${NOPE}" in text
    assert "bad.yaml:10: a fixed element has no var" in text
    assert "not_mapped AEDY: give the reason" in text


def test_paths_set_and_get_through_selectors() -> None:
    res: dict[str, object] = {}
    cache: dict[tuple[int, int], object] = {}
    for path, value in [
        ("extension[url=http://x/a].extension[url=one].valueString", "1"),
        ("extension[url=http://x/a].extension[url=two].valueInteger", 2),
        ("extension[url=http://x/b].valueBoolean", True),
        ("code.coding[system=http://s].code", "C1"),
        ("code.coding[system=http://s].display", "one"),
        ("category[coding.system=http://c]", {"coding": [{"system": "http://c", "code": "k"}]}),
        ("identifier[0]", {"system": "urn:s", "value": "v"}),
    ]:
        compile_setter(parse_path(path))(res, value, cache)  # type: ignore[arg-type]
    assert res == {
        "extension": [
            {"url": "http://x/a", "extension": [{"url": "one", "valueString": "1"}, {"url": "two", "valueInteger": 2}]},
            {"url": "http://x/b", "valueBoolean": True},
        ],
        "code": {"coding": [{"system": "http://s", "code": "C1", "display": "one"}]},
        "category": [{"coding": [{"system": "http://c", "code": "k"}]}],
        "identifier": [{"system": "urn:s", "value": "v"}],
    }
    paths = [
        parse_path(p)
        for p in (
            "extension[url=http://x/a].extension[url=two].valueInteger",
            "code.coding[system=http://s].display",
            "category[coding.system=http://c].coding[0].code",
            "extension[url=http://missing].valueString",
        )
    ]
    assert PathSet(paths).get_all(res) == [2, "one", "k", None]
    assert [compile_getter(p)(res) for p in paths] == [2, "one", "k", None]


def test_identifier_templates_parse_back() -> None:
    t = parse_template("{USUBJID}-{AESEQ}")
    assert t.render({"USUBJID": "01-701-1015", "AESEQ": "3"}) == "01-701-1015-3"
    assert t.parse("01-701-1015-3", numeric=["AESEQ"]) == {"USUBJID": "01-701-1015", "AESEQ": "3"}
    assert t.parse("01-701-1015-3", known={"USUBJID": "01-701-1015"}) == {"AESEQ": "3"}
    assert t.parse("XX-3", known={"USUBJID": "01-701-1015"}) is None
    system = parse_template("urn:inoconv:{STUDYID:lower}:ae")
    assert system.render({"STUDYID": "NCT01371630"}) == "urn:inoconv:nct01371630:ae"
    assert system.regex().match("urn:inoconv:cdiscpilot01:ae")
    assert not system.regex().match("urn:inoconv:cdiscpilot01:lb")
