"""The whole SDTM package of the example cohort, checked by independent readers and by the conformance rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyreadstat
import pytest
from typer.testing import CliRunner

from converter.cli import app
from converter.io.datasetjson import read_dataset_json
from converter.io.define import crosscheck_define, validate_define
from converter.io.xpt import read_xpt
from converter.sdtm.pipeline import load_sdtm_specs
from converter.validate.sdtm_rules import run_sdtm_rules

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nct01371630"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example") / "sdtm"
    result = CliRunner().invoke(app, ["sdtm", str(EXAMPLE / "odm" / "nct01371630.xml"), "--out", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    return out


def test_every_dataset_is_written_in_both_formats(package: Path) -> None:
    specs, _, _ = load_sdtm_specs()
    for name in specs:
        assert (package / f"{name.lower()}.xpt").exists(), name
        assert (package / f"{name.lower()}.json").exists(), name
        with (package / f"{name.lower()}.xpt").open("rb") as fh:
            assert fh.read(80).startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"), "XPT v5 header"


def test_independent_readers_agree_with_the_specs(package: Path) -> None:
    specs, _, _ = load_sdtm_specs()
    for name, spec in specs.items():
        xpt = package / f"{name.lower()}.xpt"
        by_pandas = pd.read_sas(xpt, format="xport", encoding="ascii")
        ours, _ = read_xpt(xpt)
        as_json, _ = read_dataset_json(package / f"{name.lower()}.json")
        assert list(by_pandas.columns) == spec.column_names == list(ours.columns) == list(as_json.columns), name
        assert len(by_pandas) == len(ours) == len(as_json), name
        pd.testing.assert_frame_equal(ours, as_json, check_dtype=False, obj=name)
        for v in spec.ordered:  # pandas (an independent reader) sees the same values as our reader
            a, b = by_pandas[v.name], ours[v.name]
            if v.numeric:
                a = a.mask(a.abs() < 1e-70, 0.0)  # pandas reads IBM zero as 5.4e-79 (pandas issue #50670)
                pd.testing.assert_series_equal(a.astype(float), b.astype(float), check_names=False, obj=f"{name}.{v.name}")
            else:
                assert a.replace("", None).tolist() == b.tolist(), f"{name}.{v.name}"
        _, meta = pyreadstat.read_xport(str(xpt), metadataonly=True)
        assert meta.file_label == spec.label
        assert meta.column_labels == [v.label for v in spec.ordered], name
        for v in spec.ordered:
            if v.length and not v.numeric:
                assert meta.variable_storage_width[v.name] == v.length, f"{name}.{v.name}"


def test_define_xml_validates_and_matches_the_data(package: Path) -> None:
    specs, _, _ = load_sdtm_specs()
    assert validate_define(package / "define.xml") == []
    data = {name: (read_xpt(package / f"{name.lower()}.xpt")[0], spec) for name, spec in specs.items()}
    assert crosscheck_define(package / "define.xml", data) == []


def test_conformance_rules_find_no_error(package: Path) -> None:
    specs, ct, _ = load_sdtm_specs()
    frames = {name: read_xpt(package / f"{name.lower()}.xpt")[0] for name in specs}
    errors = [f for f in run_sdtm_rules(frames, specs, ct) if f.severity == "error"]
    assert errors == []
    dm = frames["DM"]
    assert dm["USUBJID"].is_unique and len(dm) == 59
    for name, df in frames.items():
        if "USUBJID" in df.columns:
            assert set(df["USUBJID"]) <= set(dm["USUBJID"]), name


def test_the_frames_handed_on_before_writing_are_those_read_back(tmp_path: Path) -> None:
    """``inoconv run`` hands ADaM the SDTM datasets as ``as_read_back`` gives them while the package is written:
    they must be, frame for frame and in the same order, what ``read_package`` reads from the written package."""
    from converter.io.package import as_read_back, in_contract, read_package, write_package
    from converter.records.sources import read_records
    from converter.sdtm.pipeline import records_to_sdtm

    result = records_to_sdtm(read_records(EXAMPLE / "odm" / "nct01371630.xml"))
    study = result.forms.study
    handed = in_contract(as_read_back(result.datasets, result.specs), result.specs)
    write_package(tmp_path, result.datasets, result.specs, result.ct, standard="SDTMIG 3.4", study_oid=study.oid,
                  study_name=study.name, protocol_name=study.protocol)  # fmt: skip
    read = read_package(tmp_path, result.specs)
    assert list(handed) == list(read) and len(read) == len(result.datasets)
    for name, frame in read.items():
        pd.testing.assert_frame_equal(handed[name], frame, check_exact=True, obj=name)
