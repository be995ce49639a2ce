"""XPT v5 writer: conformance checks before writing, and independent readers agree on what was written."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from pandas.io.sas import sas_xport

from converter.errors import ConformanceError
from converter.io.xpt import (
    IBM_MIN,
    char_lengths,
    check_for_xpt,
    prepare_for_xpt,
    read_xpt,
    write_xpt,
    xpt_version,
)
from converter.spec.loader import parse_spec
from converter.spec.model import DatasetSpec


def make_spec(variables: list[dict[str, Any]] | None = None, **top: Any) -> DatasetSpec:
    doc: dict[str, Any] = {
        "dataset": "ADSL",
        "label": "Subject-Level Analysis Dataset",
        "class": "SUBJECT LEVEL ANALYSIS DATASET",
        "structure": "One record per subject",
        "standard": "ADaMIG 1.3",
        "keys": ["STUDYID", "USUBJID"],
        "variables": variables
        or [
            {"name": "STUDYID", "label": "Study Identifier", "type": "text", "length": 11, "core": "Req"},
            {"name": "USUBJID", "label": "Unique Subject Identifier", "type": "text", "core": "Req"},
            {"name": "AGE", "label": "Age", "type": "integer", "length": 8},
            {"name": "SEX", "label": "Sex", "type": "text", "length": 1},
            {
                "name": "TRTSDT",
                "label": "Date of First Exposure to Treatment",
                "type": "integer",
                "format": "DATE9.",
            },
            {"name": "WEIGHTBL", "label": "Baseline Weight (kg)", "type": "float"},
            {"name": "COMMENT", "label": "Free text", "type": "text"},
        ],
    }
    doc.update(top)
    for v in doc["variables"]:
        v.setdefault("rule", {"assign": "x"})
    return parse_spec(doc, Path("adsl.yaml"))


def make_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "STUDYID": ["NCT01371630"] * 4,
            "USUBJID": ["NCT01371630-001", "NCT01371630-002", "NCT01371630-003", "NCT01371630-010"],
            "AGE": pd.array([34, None, 71, 0], dtype="Int64"),
            "SEX": pd.Series(["F", "M", None, "F"], dtype=object),
            "TRTSDT": [19725.0, np.nan, 0.0, -3652.0],  # 2014-01-02, missing, 1960-01-01, 1950-01-01
            "WEIGHTBL": [54.4, 0.1 + 0.2, np.nan, 1e-10],
            "COMMENT": pd.Series(["  leading blanks kept", None, "x" * 200, 'a;b,c "q"'], dtype=object),
        }
    )


def expected_back(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as read back: character str/None, numbers float64."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = pd.Series([v if isinstance(v, str) and v else None for v in out[c]], dtype=object)
        else:
            out[c] = out[c].astype("float64")
    return out


def pandas_read(path: Path) -> pd.DataFrame:
    """pandas' independent XPORT reader, normalised (bytes -> str/None; its IBM-zero quirk #50670 -> 0)."""
    df = pd.read_sas(path, format="xport", encoding="ascii")
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = pd.Series([v if isinstance(v, str) and v else None for v in df[c]], dtype=object)
        else:
            df[c] = df[c].where(df[c] != IBM_MIN, 0.0)
    return df


def test_round_trip_values_labels_and_lengths(tmp_path: Path) -> None:
    spec, df = make_spec(), make_frame()
    path = write_xpt(df, spec, tmp_path / "adsl.xpt")

    back, meta = read_xpt(path)
    pd.testing.assert_frame_equal(back, expected_back(df), check_exact=True)
    pd.testing.assert_frame_equal(pandas_read(path), expected_back(df), check_exact=True)

    assert (meta.name, meta.label) == ("ADSL", "Subject-Level Analysis Dataset")
    assert [c.label for c in meta.columns] == [v.label for v in spec.variables]
    widths = {c.name: c.length for c in meta.columns}
    # spec length where given, else the longest value; numbers 8 bytes
    assert widths == {"STUDYID": 11, "USUBJID": 15, "AGE": 8, "SEX": 1, "TRTSDT": 8, "WEIGHTBL": 8, "COMMENT": 200}
    assert meta.column("TRTSDT").format == "DATE9."

    reader: Any = sas_xport.XportReader(str(path))  # type: ignore[call-arg]  # pandas sees the same header
    fields = {f["name"].decode(): f for f in reader.fields}
    reader.close()
    assert {n: f["field_length"] for n, f in fields.items()} == widths
    assert fields["AGE"]["label"].decode() == "Age"
    assert fields["TRTSDT"]["nform"].decode().strip() == "DATE"

    _, pmeta = pyreadstat.read_xport(str(path), metadataonly=True)
    assert pmeta.table_name == "ADSL" and pmeta.file_label == spec.label


def test_header_is_xport_version_5(tmp_path: Path) -> None:
    path = write_xpt(make_frame(), make_spec(), tmp_path / "adsl.xpt")
    first = path.read_bytes()[:80]
    assert first.startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!")
    assert b"LIBV8" not in first
    assert xpt_version(path) == 5


def test_numbers_round_trip_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0, 1e6, 500), rng.uniform(-1, 1, 500), [1e-70, 1e70, 2.0**53, 123.456]])
    spec = make_spec([{"name": "X", "label": "X", "type": "float"}], keys=[])
    df = pd.DataFrame({"X": values})
    back, _ = read_xpt(write_xpt(df, spec, tmp_path / "x.xpt"))
    assert np.array_equal(back["X"].to_numpy(), values)


def test_empty_dataset_keeps_declared_widths(tmp_path: Path) -> None:
    spec = make_spec()
    df = make_frame().iloc[0:0]
    back, meta = read_xpt(write_xpt(df, spec, tmp_path / "adsl.xpt"))
    assert len(back) == 0 and list(back.columns) == spec.column_names
    assert meta.column("STUDYID").length == 11 and meta.column("USUBJID").length == 1
    assert meta.column("AGE").length == 8


def _raises(df: pd.DataFrame, spec: DatasetSpec, path: Path) -> str:
    with pytest.raises(ConformanceError) as info:
        write_xpt(df, spec, path)
    assert not path.exists(), "nothing may be written when the data does not conform"
    return str(info.value)


def test_variable_label_over_40_is_an_error(tmp_path: Path) -> None:
    spec = make_spec()
    long_label = "Date of First Exposure to Study Treatment (derived)"
    var = dataclasses.replace(spec.variable("TRTSDT"), label=long_label)
    spec = dataclasses.replace(spec, variables=tuple(var if v.name == "TRTSDT" else v for v in spec.variables))
    msg = _raises(make_frame(), spec, tmp_path / "adsl.xpt")
    assert "ADSL.TRTSDT" in msg and "at most 40" in msg


def test_dataset_label_over_40_is_an_error(tmp_path: Path) -> None:
    spec = make_spec(label="Subject-Level Analysis Dataset for the Primary Analysis")
    assert "dataset label" in _raises(make_frame(), spec, tmp_path / "adsl.xpt")


def test_value_over_200_bytes_is_an_error(tmp_path: Path) -> None:
    df = make_frame()
    df.loc[2, "COMMENT"] = "y" * 201
    msg = _raises(df, make_spec(), tmp_path / "adsl.xpt")
    assert "ADSL.COMMENT: row 3 (USUBJID NCT01371630-003)" in msg and "201 bytes" in msg


def test_non_ascii_value_is_an_error_naming_value_and_row(tmp_path: Path) -> None:
    df = make_frame()
    df.loc[1, "COMMENT"] = "Müller"
    msg = _raises(df, make_spec(), tmp_path / "adsl.xpt")
    assert "row 2 (USUBJID NCT01371630-002)" in msg and "'Müller'" in msg and "not ASCII" in msg


def test_names_over_8_are_errors(tmp_path: Path) -> None:
    spec = make_spec()
    var = dataclasses.replace(spec.variable("WEIGHTBL"), name="WEIGHTBASE")
    spec = dataclasses.replace(
        spec, name="ADSLLONGER", variables=tuple(var if v.name == "WEIGHTBL" else v for v in spec.variables)
    )
    df = make_frame().rename(columns={"WEIGHTBL": "WEIGHTBASE"})
    msg = _raises(df, spec, tmp_path / "adsl.xpt")
    assert "dataset name 'ADSLLONGER'" in msg and "variable name 'WEIGHTBASE'" in msg


def test_declared_length_column_order_and_sort_order_are_checked(tmp_path: Path) -> None:
    spec = make_spec()
    df = make_frame()
    df.loc[0, "SEX"] = "FEMALE"  # SEX has length 1
    problems = check_for_xpt(df.iloc[[1, 0, 2, 3]], spec)
    text = "\n".join(problems)
    assert "exceeds the declared length 1" in text
    assert "not sorted by the keys" in text
    assert any("spec order" in p for p in check_for_xpt(make_frame()[list(reversed(spec.column_names))], spec))
    assert check_for_xpt(prepare_for_xpt(make_frame().iloc[[3, 1, 0, 2]], spec), spec) == []


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    df = make_frame()
    df.loc[0, "COMMENT"] = "Zoë"
    df.loc[1, "COMMENT"] = "trailing "
    df["AGE"] = df["AGE"].astype("float64")
    df.loc[3, "AGE"] = 1.5
    df.loc[0, "WEIGHTBL"] = np.inf
    problems = check_for_xpt(df, make_spec())
    assert len(problems) == 4, problems
    assert any("trailing blanks" in p for p in problems)
    assert any("not a whole number" in p for p in problems)
    assert any("cannot be stored" in p for p in problems)


def test_many_bad_rows_are_counted_not_all_listed() -> None:
    df = pd.concat([make_frame()] * 30, ignore_index=True)
    df["USUBJID"] = [f"S-{i:03d}" for i in range(len(df))]
    df["COMMENT"] = "é"
    problems = check_for_xpt(df, make_spec())
    assert len(problems) == 21 and "100 more rows" in problems[-1]


def test_char_lengths_policy() -> None:
    spec, df = make_spec(), make_frame()
    assert char_lengths(df, spec) == {"STUDYID": 11, "USUBJID": 15, "SEX": 1, "COMMENT": 200}
    assert char_lengths(df.assign(COMMENT=None), spec)["COMMENT"] == 1
