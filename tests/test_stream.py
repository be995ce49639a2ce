"""``inoconv stream``: partition by partition, in worker processes, it gives exactly what the whole-study commands
give (SDTM, ADaM, FHIR NDJSON), and bad input is reported with the same file, record and field as a whole read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from converter.adam.pipeline import sdtm_to_adam
from converter.cli import app
from converter.engine.stream import run_stream
from converter.errors import InputError
from converter.fhir.mapping import load_fhir_stage
from converter.fhir.writer import write_fhir_dir
from converter.records.simulate import simulate
from converter.records.sources import read_records, write_records
from converter.sdtm.pipeline import records_to_sdtm


def _example_rows() -> int:
    from converter.paths import example_study_dir

    return sum(max(len(p.read_text(encoding="utf-8").splitlines()) - 1, 0) for p in (example_study_dir() / "csv").glob("*.csv"))


EXAMPLE_ROWS = _example_rows()  # every data row of the example's CSV files (the ODM holds the same records)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "nct01371630"
ODM = EXAMPLE / "odm" / "nct01371630.xml"
CSV = EXAMPLE / "csv"


def _parts(root: Path, name: str) -> pd.DataFrame:
    files = sorted((root / name).glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _same_datasets(root: Path, ref: dict[str, pd.DataFrame], specs: dict[str, object]) -> None:
    assert sorted(p.name for p in root.iterdir()) == sorted(ref)
    for name, df in ref.items():
        keys = [k for k in specs[name].keys if k in df.columns]  # type: ignore[attr-defined]
        got = _parts(root, name).sort_values(keys, kind="mergesort").reset_index(drop=True)
        exp = df.sort_values(keys, kind="mergesort").reset_index(drop=True)
        assert list(got.columns) == list(exp.columns), name
        pd.testing.assert_frame_equal(got, exp, check_dtype=False, obj=name)
        for col in exp.columns:  # the data contract: integers stay integers, text stays text
            assert got[col].dtype.kind == exp[col].dtype.kind or exp[col].isna().all(), (name, col)


def _ndjson(folder: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for f in folder.glob("*.ndjson"):
        out.setdefault(f.name.split(".", 1)[0], []).extend(f.read_bytes().splitlines())
    return {k: sorted(v) for k, v in out.items()}


def _whole(source: Path, tmp: Path) -> tuple[object, object, Path]:
    sdtm = records_to_sdtm(read_records(source))
    adam = sdtm_to_adam(sdtm.datasets)
    specs, ct, sdtm_specs = load_fhir_stage()
    write_fhir_dir(sdtm.datasets, tmp / "whole-fhir", specs, ct, sdtm_specs)
    return sdtm, adam, tmp / "whole-fhir" / "ndjson"


@pytest.mark.parametrize("source", [ODM, CSV], ids=["odm", "csv"])
def test_stream_equals_whole_on_the_example(source: Path, tmp_path: Path) -> None:
    rep = run_stream(source, tmp_path / "out", workers=2, subjects_per_partition=17, echo=lambda _m: None)
    assert rep.partitions == 4 and rep.subjects == 59
    assert rep.records == EXAMPLE_ROWS and rep.rejected == 0  # every data row of the example CSV files
    assert not rep.adam_checks and not rep.fhir_problems
    sdtm, adam, ndjson = _whole(source, tmp_path)
    _same_datasets(tmp_path / "out" / "sdtm", sdtm.datasets, sdtm.specs)  # type: ignore[attr-defined]
    _same_datasets(tmp_path / "out" / "adam", adam.datasets, adam.specs)  # type: ignore[attr-defined]
    got = _ndjson(tmp_path / "out" / "fhir" / "ndjson")
    assert got == _ndjson(ndjson)  # the same resources, byte for byte, only cut into other files
    manifest = json.loads((tmp_path / "out" / "fhir" / "manifest.json").read_text())
    listed = {o["url"] for o in manifest["output"]}
    assert listed == {f"ndjson/{f.name}" for f in (tmp_path / "out" / "fhir" / "ndjson").glob("*.ndjson")}
    stats = json.loads((tmp_path / "out" / "stream.json").read_text())
    assert stats["fhir_resources"] == {k: len(v) for k, v in sorted(got.items())}
    acc = pd.read_csv(tmp_path / "out" / "accounting.csv")
    assert acc["records"].sum() == EXAMPLE_ROWS and acc["rejected"].sum() == 0


def test_stream_equals_whole_on_a_simulated_cohort(tmp_path: Path) -> None:
    src = tmp_path / "csv"
    write_records(simulate(600, seed=11), src, "csv")
    rep = run_stream(src, tmp_path / "out", workers=2, subjects_per_partition=150, echo=lambda _m: None)
    assert rep.partitions == 4 and rep.subjects == 600
    sdtm, adam, ndjson = _whole(src, tmp_path)
    _same_datasets(tmp_path / "out" / "sdtm", sdtm.datasets, sdtm.specs)  # type: ignore[attr-defined]
    _same_datasets(tmp_path / "out" / "adam", adam.datasets, adam.specs)  # type: ignore[attr-defined]
    assert _ndjson(tmp_path / "out" / "fhir" / "ndjson") == _ndjson(ndjson)


def _where(problems: list[object]) -> set[tuple[str, str, str, str]]:
    return {(p.file, p.record, p.field, p.rule) for p in problems}  # type: ignore[attr-defined]


def test_bad_csv_is_reported_as_a_whole_read_reports_it(tmp_path: Path) -> None:
    src = tmp_path / "csv"
    shutil.copytree(CSV, src)
    ae = pd.read_csv(src / "AE.csv", dtype=str, keep_default_na=False)
    ae.loc[2, "AEGRADE"] = "9"  # a grade outside the codelist, in one subject
    ae.loc[len(ae) - 2, "AESTDT"] = "2016-13-01"  # an impossible date, in another
    ae.to_csv(src / "AE.csv", index=False)
    lab = (src / "LAB.csv").read_text().splitlines()
    lab.append(lab[-1])  # a duplicated record
    (src / "LAB.csv").write_text("\n".join(lab) + "\n")
    with pytest.raises(InputError) as whole:
        read_records(src)
    out = tmp_path / "out"
    with pytest.raises(InputError) as streamed:
        run_stream(src, out, workers=2, subjects_per_partition=10, echo=lambda _m: None)
    assert _where(streamed.value.problems) == _where(whole.value.problems)
    assert len(streamed.value.problems) == 3
    rows = {p.field: p.record for p in streamed.value.problems if p.file.endswith("AE.csv")}
    assert rows == {"AEGRADE": "SUBJID=1001 AESPID=3 (row 3)", "AESTDT": f"SUBJID=1059 AESPID=8 (row {len(ae) - 1})"}
    assert not out.exists()  # nothing partial is left behind


def test_bad_odm_is_reported_with_its_line(tmp_path: Path) -> None:
    text = ODM.read_text()
    i = text.index('ItemOID="IT.AE.AEGRADE" Value="')
    j = text.index('"', i + len('ItemOID="IT.AE.AEGRADE" Value="'))
    bad = tmp_path / "bad.xml"
    bad.write_text(text[: j - 1] + "7" + text[j:])
    with pytest.raises(InputError) as whole:
        read_records(bad)
    with pytest.raises(InputError) as streamed:
        run_stream(bad, tmp_path / "out", workers=2, subjects_per_partition=10, echo=lambda _m: None)
    assert _where(streamed.value.problems) == _where(whole.value.problems)
    # a comment among the subjects: the fast reader cannot vouch for it, and says so rather than guess
    k = text.index("<SubjectData ", text.index("<SubjectData ") + 1)
    odd = tmp_path / "odd.xml"
    odd.write_text(text[:k] + "<!-- re-entered -->" + text[k:])
    with pytest.raises(InputError) as err:
        run_stream(odd, tmp_path / "out", workers=1, subjects_per_partition=10, echo=lambda _m: None)
    assert {p.rule for p in err.value.problems} == {"odm-stream"}
    assert "inoconv sdtm" in str(err.value)


def test_a_subject_split_over_the_file_is_refused(tmp_path: Path) -> None:
    text = ODM.read_text()
    start = text.index("<SubjectData ")
    end = text.index("</SubjectData>", start) + len("</SubjectData>")
    first = text[start:end]
    closing = text.index("</ClinicalData>")
    # the first subject's AE form again at the end, in a second SubjectData element
    form_at = first.index('<FormData FormOID="F.AE"')
    again = first[: first.index("<FormData")] + first[form_at : first.index("</FormData>", form_at) + 11]
    again += "\n      </StudyEventData>\n    </SubjectData>\n"
    split = tmp_path / "split.xml"
    split.write_text(text[:closing] + again + text[closing:])
    with pytest.raises(InputError) as err:
        run_stream(split, tmp_path / "out", workers=2, subjects_per_partition=20, echo=lambda _m: None)
    assert any(p.rule == "odm-stream" and p.field == "SUBJID" for p in err.value.problems)


def test_cli_stream(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["stream", str(CSV), "--out", str(tmp_path / "o"), "--subjects", "30"])
    assert res.exit_code == 0, res.output
    assert "59 subjects in 2 partitions" in res.output
    stats = orjson.loads((tmp_path / "o" / "stream.json").read_bytes())
    assert stats["subjects"] == 59 and stats["peak_rss_mib"]["largest_worker"] > 0
    res = CliRunner().invoke(app, ["stream", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and f"No such file or folder: {tmp_path / 'nothing'}" in res.output
