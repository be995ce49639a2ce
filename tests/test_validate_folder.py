"""inoconv validate on folders: a package written by converter.io.package, broken ones, other folder kinds."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from mini_records import mini_records

from converter.errors import InputError
from converter.validate.commands import validate_command
from converter.validate.folder import detect, validate_folder


@pytest.fixture(scope="module")
def sdtm():
    from converter.sdtm.pipeline import records_to_sdtm

    return records_to_sdtm(mini_records())


def sponsor_ct(result):
    """The study CT with the values the data use added to *extensible* codelists (a sponsor's extension, as
    define.xml must list it); non-extensible codelists stay as published."""
    from converter.spec.model import Term, Terminology

    cls = dict(result.ct.codelists)
    for name, spec in result.specs.items():
        df = result.datasets.get(name)
        for v in spec.variables:
            cl = cls.get(v.codelist or "")
            if df is None or cl is None or not cl.extensible or v.name not in df.columns:
                continue
            extra = sorted({x for x in df[v.name].dropna() if x not in cl.submission_values()})
            if extra:
                cls[cl.id] = dataclasses.replace(cl, terms=cl.terms + tuple(Term(x, None) for x in extra))
    return Terminology(result.ct.package, cls)


def write(result, folder: Path, datasets=None) -> Path:
    package = pytest.importorskip("converter.io.package")
    study = result.forms.study
    package.write_package(
        folder, datasets or result.datasets, result.specs, sponsor_ct(result),
        study_oid=study.oid, study_name=study.name, protocol_name=study.protocol,
    )  # fmt: skip
    return folder


def test_clean_run_output_validates(sdtm, tmp_path: Path, capsys) -> None:
    write(sdtm, tmp_path / "run" / "sdtm")
    assert detect(tmp_path / "run") == {"sdtm": tmp_path / "run" / "sdtm"}
    # the command takes the SDTM folder (a run folder needs adam/ or fhir/ beside sdtm/: io.package_kind)
    code = validate_command(tmp_path / "run" / "sdtm", out=tmp_path / "report")
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "0 error(s)" in printed
    doc = json.loads((tmp_path / "report" / "findings.json").read_text(encoding="utf-8"))
    assert doc["summary"]["error"] == 0
    assert (tmp_path / "report" / "findings.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_broken_folder_fails(sdtm, tmp_path: Path, capsys) -> None:
    import pandas as pd

    frames = {k: v.copy(deep=True) for k, v in sdtm.datasets.items()}
    dm = pd.concat([frames["DM"], frames["DM"].iloc[[0]]], ignore_index=True)
    frames["DM"] = dm.sort_values(["STUDYID", "USUBJID"], kind="stable").reset_index(drop=True)
    frames["AE"].loc[0, "AEENDTC"] = "2013-02-30"
    folder = write(sdtm, tmp_path / "sdtm", frames)
    findings = validate_folder(folder)
    rules = {(f.rule_id, f.dataset, f.variable) for f in findings}
    assert ("CORE-000351", "DM", "USUBJID") in rules
    assert ("CORE-000547", "AE", "AEENDTC") in rules
    assert validate_command(folder) == 1
    assert "CORE-000351" in capsys.readouterr().out


def test_labels_read_from_xpt_are_checked(sdtm, tmp_path: Path) -> None:
    folder = write(sdtm, tmp_path / "sdtm")
    import pyreadstat

    from converter.io.xpt import read_xpt

    df, meta = read_xpt(folder / "dm.xpt")
    labels = [("Gender" if c.name == "SEX" else c.label) for c in meta.columns]
    pyreadstat.write_xport(df, str(folder / "dm.xpt"), table_name="DM", file_label=meta.label, column_labels=labels)
    rules = {(f.rule_id, f.dataset, f.variable) for f in validate_folder(folder)}
    assert ("INO-SDTM-005", "DM", "SEX") in rules


def test_broken_define_is_reported(sdtm, tmp_path: Path) -> None:
    folder = write(sdtm, tmp_path / "sdtm")
    (folder / "define.xml").write_text("<ODM/>", encoding="utf-8")
    findings = validate_folder(folder)
    assert any(f.rule_id == "INO-DEFINE-001" for f in findings)


def test_unreadable_dataset_and_adam_detection(tmp_path: Path) -> None:
    (tmp_path / "adsl.xpt").write_bytes(b"not an xpt file")
    assert detect(tmp_path) == {"adam": tmp_path}
    findings = validate_folder(tmp_path)
    assert any(f.rule_id == "INO-PKG-002" and f.dataset == "ADSL" for f in findings)


def test_fhir_folder_is_detected(tmp_path: Path) -> None:
    (tmp_path / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "p1"}\n', encoding="utf-8")
    assert detect(tmp_path) == {"fhir": tmp_path}
    findings = validate_folder(tmp_path)
    assert findings == [] or all(f.rule_id.startswith(("INO-FHIR", "INO-PKG-003")) for f in findings)


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="found no input inoconv reads: an empty folder"):
        validate_command(tmp_path)  # a user mistake: exit 2
    with pytest.raises(InputError):
        validate_command(tmp_path / "nope")
    with pytest.raises(InputError):
        validate_command(tmp_path, fail_on="info")


def test_dataset_json_only_folder(sdtm, tmp_path: Path) -> None:
    folder = write(sdtm, tmp_path / "sdtm")
    for p in folder.glob("*.xpt"):
        p.unlink()
    findings = validate_folder(folder)
    assert not [f for f in findings if f.severity == "error" and not f.rule_id.startswith("INO-DEFINE")], findings


def test_what_a_file_is_follows_the_file_as_it_is_now(tmp_path: Path) -> None:
    """detect() remembers per process what each JSON file is (its top-level keys) for the file as it is: a file
    replaced by another kind under the same name is seen as what it is now."""
    import orjson

    from converter.validate.folder import detect

    folder = tmp_path / "pkg"
    folder.mkdir()
    doc = {"datasetJSONVersion": "1.1.0", "columns": [], "rows": []}
    (folder / "dm.json").write_bytes(orjson.dumps(doc))
    assert detect(folder) == {"sdtm": folder}
    assert detect(folder) == {"sdtm": folder}  # asked again: the same answer
    replacement = tmp_path / "other.json"
    replacement.write_bytes(orjson.dumps({"resourceType": "Patient", "id": "p1", "padding": "x" * 40}))
    replacement.replace(folder / "dm.json")  # another file (size, inode) under the same name
    assert detect(folder) == {"fhir": folder}
