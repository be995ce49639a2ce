"""Dataset-JSON v1.1: structure per the specification, streaming, and the same data as the XPT file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from test_io_xpt import make_frame, make_spec

from converter.errors import ConformanceError
from converter.io.datasetjson import read_dataset_json, validate_dataset_json, write_dataset_json
from converter.io.xpt import read_xpt, write_xpt

TOP_LEVEL_ORDER = [
    "datasetJSONCreationDateTime", "datasetJSONVersion", "fileOID", "dbLastModifiedDateTime", "originator",
    "sourceSystem", "studyOID", "metaDataVersionOID", "metaDataRef", "itemGroupOID", "records", "name", "label",
    "columns", "rows",
]  # fmt: skip


def write(tmp_path: Path, name: str = "adsl.json", **kw: Any) -> Path:
    return write_dataset_json(
        make_frame(), make_spec(), tmp_path / name, study_oid="NCT01371630", metadata_version_oid="MDV.1",
        originator="inoconv tests", created="2024-05-01T10:00:00", db_last_modified="2024-04-30T23:59:59", **kw,
    )  # fmt: skip


def test_dataset_json_holds_the_same_data_as_xpt(tmp_path: Path) -> None:
    spec, df = make_spec(), make_frame()
    xdf, _ = read_xpt(write_xpt(df, spec, tmp_path / "adsl.xpt"))
    jdf, jmeta = read_dataset_json(write(tmp_path))
    pd.testing.assert_frame_equal(jdf, xdf, check_exact=True)
    ndf, _ = read_dataset_json(write(tmp_path, "adsl.ndjson"))
    pd.testing.assert_frame_equal(ndf, xdf, check_exact=True)
    assert (jmeta.name, jmeta.label, jmeta.records) == ("ADSL", spec.label, 4)


def test_structure_follows_the_v11_specification(tmp_path: Path) -> None:
    path = write(tmp_path)
    doc = orjson.loads(path.read_bytes())
    assert list(doc) == TOP_LEVEL_ORDER
    assert doc["datasetJSONVersion"] == "1.1.0"
    assert doc["sourceSystem"]["name"] == "inoconv" and doc["metaDataRef"] == "define.xml"
    assert doc["itemGroupOID"] == "IG.ADSL" and doc["records"] == len(doc["rows"]) == 4
    cols = {c["name"]: c for c in doc["columns"]}
    assert cols["STUDYID"] == {"itemOID": "IT.ADSL.STUDYID", "name": "STUDYID", "label": "Study Identifier",
                               "dataType": "string", "length": 11, "keySequence": 1}  # fmt: skip
    assert cols["AGE"]["dataType"] == "integer" and "length" not in cols["AGE"]
    assert cols["WEIGHTBL"]["dataType"] == "float"
    # ADaM numeric date: ISO 8601 string in JSON, integer (SAS day count) for the receiving system
    assert {k: cols["TRTSDT"][k] for k in ("dataType", "targetDataType", "displayFormat")} == {
        "dataType": "date", "targetDataType": "integer", "displayFormat": "DATE9."}  # fmt: skip
    t = [c["name"] for c in doc["columns"]].index("TRTSDT")
    assert [r[t] for r in doc["rows"]] == ["2014-01-02", None, "1960-01-01", "1950-01-01"]
    age = [c["name"] for c in doc["columns"]].index("AGE")
    assert [r[age] for r in doc["rows"]] == [34, None, 71, 0]
    assert validate_dataset_json(path) == []


def test_ndjson_form_has_metadata_then_one_row_per_line(tmp_path: Path) -> None:
    lines = write(tmp_path, "adsl.ndjson").read_bytes().splitlines()
    head = orjson.loads(lines[0])
    assert "rows" not in head and head["records"] == 4 == len(lines) - 1
    assert all(isinstance(orjson.loads(line), list) for line in lines[1:])
    assert validate_dataset_json(tmp_path / "adsl.ndjson") == []


def test_rows_are_streamed_in_chunks_with_identical_output(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", chunk_rows=1).read_bytes()
    b = write(tmp_path, "b.json", chunk_rows=10_000).read_bytes()
    assert a.replace(b'"a.json"', b"") == b.replace(b'"b.json"', b"")
    orjson.loads(a)


def test_empty_dataset(tmp_path: Path) -> None:
    path = write_dataset_json(make_frame().iloc[0:0], make_spec(), tmp_path / "e.json")
    doc = orjson.loads(path.read_bytes())
    assert doc["records"] == 0 and doc["rows"] == []
    df, _ = read_dataset_json(path)
    assert list(df.columns) == make_spec().column_names and len(df) == 0


def test_validator_finds_broken_files(tmp_path: Path) -> None:
    doc = orjson.loads(write(tmp_path).read_bytes())
    doc["datasetJSONVersion"] = "1.0.0"
    doc["columns"][0]["dataType"] = "char"
    doc["rows"][1][2] = "thirty"
    doc["records"] = 5
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(doc))
    text = "\n".join(validate_dataset_json(bad))
    for fragment in ("1.0.0", "char", "'thirty'", "records 5"):
        assert fragment in text


def test_fractional_integer_is_refused(tmp_path: Path) -> None:
    df = make_frame()
    df["AGE"] = [34.5, np.nan, 71.0, 0.0]
    with pytest.raises(ConformanceError, match="not a whole number"):
        write_dataset_json(df, make_spec(), tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
