"""FHIR NDJSON -> SDTM streamed in partitions of subjects (``inoconv tosdtm --partitions N``): the datasets, the
per-resource outcomes and the problems are those of converting the input whole; every line is accounted for and
bad lines are reported with the original file and line."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest
from test_fhir_data import HL7, SYNTHEA, example, need_samples, specs

from converter.fhir.commands import tosdtm_command
from converter.fhir.mapping import load_fhir_stage
from converter.fhir.ndjson_stream import PartitionedConversion, Router, stream_to_parts
from converter.fhir.sdtm_dir import read_parts
from converter.fhir.to_sdtm import FromFhir, convert_path
from converter.fhir.writer import write_fhir_dir


@functools.cache
def _stage() -> tuple[Any, Any, Any]:
    return load_fhir_stage()  # type: ignore[no-any-return]


def _rows(path: Path) -> list[tuple[str, ...]]:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    return sorted(tuple(r) for r in df.itertuples(index=False))


def _assert_same(whole: FromFhir, out: Path) -> None:
    """The partitioned output in ``out`` equals ``whole`` (rows sorted by the dataset keys)."""
    _, _, sdtm_specs = _stage()
    got = read_parts(out)
    assert sorted(got) == sorted(whole.datasets)
    for name, w in whole.datasets.items():
        g = got[name]
        assert list(g.columns) == list(w.columns), name
        spec = sdtm_specs.get(name)
        keys = [k for k in (spec.keys if spec is not None else ()) if k in w.columns] or list(w.columns)
        ws = w.sort_values(keys, kind="stable").reset_index(drop=True)
        gs = g.sort_values(keys, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(gs, ws, check_dtype=True, obj=name)
    assert _rows(out / "tosdtm-report.csv") == sorted(tuple(o.as_dict().values()) for o in whole.outcomes)
    assert _rows(out / "tosdtm-problems.csv") == sorted(tuple(p.as_dict().values()) for p in whole.problems)


def _compare(src: Path, tmp: Path, partitions: int, validate: bool) -> FromFhir:
    """Streamed == whole. Input with problems: the same problems, and nothing but the problem report written;
    the outcomes and rows of the partitions (in memory) are still those of the whole conversion."""
    specs_, ct, sdtm_specs = _stage()
    whole = convert_path(src, specs_, ct, sdtm_specs, validate=validate)
    summary = stream_to_parts(src, tmp / "parts", specs_, ct, sdtm_specs, partitions=partitions, validate=validate)
    assert summary.notes == whole.notes
    assert summary.problems == len(whole.problems)
    if whole.problems:
        assert not summary.written and [p.name for p in (tmp / "parts").iterdir()] == ["tosdtm-problems.csv"]
        assert _rows(tmp / "parts" / "tosdtm-problems.csv") == sorted(
            tuple(p.as_dict().values()) for p in whole.problems
        )
        conv = PartitionedConversion(src, specs_, ct, sdtm_specs, partitions, validate)
        outcomes, rows = [], {}  # type: ignore[var-annotated]
        for _k, part in conv.parts():
            outcomes += [tuple(o.as_dict().values()) for o in part.outcomes]
            for name, df in part.datasets.items():
                rows[name] = rows.get(name, 0) + len(df)
        outcomes += [tuple(o.as_dict().values()) for o in conv.sink.outcomes]
        assert sorted(outcomes) == sorted(tuple(o.as_dict().values()) for o in whole.outcomes)
        assert {n: r for n, r in rows.items() if r} == {n: len(df) for n, df in whole.datasets.items() if len(df)}
        return whole
    _assert_same(whole, tmp / "parts")
    assert summary.rows == {n: len(df) for n, df in sorted(whole.datasets.items())}
    return whole


def _ndjson_of(datasets: dict[str, pd.DataFrame], folder: Path) -> Path:
    specs_, ct, sdtm_specs = _stage()
    write_fhir_dir(datasets, folder, specs_, ct, sdtm_specs)
    return folder / "ndjson"


@pytest.mark.parametrize("partitions", [1, 4, 64])
def test_example_cohort_streamed_equals_whole(tmp_path: Path, partitions: int) -> None:
    nd = _ndjson_of(example().datasets, tmp_path / "fhir")
    whole = _compare(nd, tmp_path, partitions, validate=partitions == 4)
    assert {"DM", "AE", "EX", "LB", "TS", "TA", "TE"} <= set(whole.datasets)
    parts = {p.name for p in (tmp_path / "parts" / "DM").glob("*.parquet")}
    assert len(parts) <= partitions and (len(parts) > 1) == (partitions > 1)  # DM spread over the partitions
    assert {p.name for p in (tmp_path / "parts" / "TS").glob("*.parquet")} == {"part-00000.parquet"}  # study part


def test_simulated_1000_subjects_streamed_equals_whole(tmp_path: Path) -> None:
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    nd = _ndjson_of(records_to_sdtm(simulate(1000, seed=11)).datasets, tmp_path / "fhir")
    whole = _compare(nd, tmp_path, 7, validate=False)
    assert len(whole.datasets["DM"]) == 1000


def test_hl7_examples_and_synthea_streamed_equal_whole(tmp_path: Path) -> None:
    need_samples(HL7)
    need_samples(SYNTHEA)
    _compare(HL7, tmp_path / "hl7", 3, validate=True)
    whole = _compare(SYNTHEA, tmp_path / "synthea", 4, validate=True)
    assert [(p.file, p.record, p.rule) for p in whole.problems] == [("log.ndjson", "line 1", "fhir-input")]


def test_cli_partitions_on_synthea(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_samples(SYNTHEA)
    src = tmp_path / "in"  # the export without its log.ndjson (not FHIR: bad input)
    src.mkdir()
    for f in SYNTHEA.glob("*.000.ndjson"):
        (src / f.name).write_bytes(f.read_bytes())
    code = tosdtm_command(src, tmp_path / "out", partitions=3)
    out = capsys.readouterr().out
    assert code == 0
    assert "Parquet part(s) in DM/" in out and "in 3 partition(s) of subjects" in out
    report = pd.read_csv(tmp_path / "out" / "tosdtm-report.csv", dtype=str, keep_default_na=False)
    lines = sum(1 for p in SYNTHEA.glob("*.000.ndjson") for ln in p.read_text().splitlines() if ln.strip())
    assert len(report) == lines  # one outcome per resource
    dm = read_parts(tmp_path / "out")["DM"]
    assert dm["USUBJID"].is_unique and len(dm) == len(report[report["resourceType"] == "Patient"])


def _line(res: dict[str, Any]) -> bytes:
    return orjson.dumps(res) + b"\n"


def test_routing_keeps_subjects_together_and_reports_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    system = "urn:inoconv:nct1:usubjid"  # the Patient spec identifier: USUBJID S-<i>
    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "gender": "female", "identifier": [{"system": system, "value": f"S-{i}"}]}
        for i in range(6)
    ]  # fmt: skip
    (src / "Patient.ndjson").write_bytes(b"".join(_line(p) for p in patients) + b"\n{not json\n")
    ae = [
        {"resourceType": "AdverseEvent", "actuality": "actual", "subject": {"reference": f"Patient/p{i}"}}
        for i in range(6)
    ]
    ae.append(  # by identifier: routed after the first pass to its Patient's partition
        {"resourceType": "AdverseEvent", "actuality": "actual",
         "subject": {"reference": f"Patient?identifier={system}|S-3"}}
    )  # fmt: skip
    ae.append({"resourceType": "AdverseEvent", "actuality": "actual"})  # no subject: the study part
    ae.append({"resourceType": "AdverseEvent", "actuality": "actual", "subject": {"reference": "Patient/ghost"}})
    (src / "AdverseEvent.ndjson").write_bytes(b"".join(_line(a) for a in ae) + b'["not a resource"]\n')
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:b1", "resource": {"resourceType": "Patient", "gender": "male"}},
            {"fullUrl": "urn:uuid:b2",
             "resource": {"resourceType": "AdverseEvent", "actuality": "actual", "subject": {"reference": "urn:uuid:b1"}}},
            {"request": {"method": "DELETE", "url": "Patient/p0"}},
        ],
    }  # fmt: skip
    nobody = {"resourceType": "AdverseEvent", "actuality": "actual", "subject": {"reference": "Patient?identifier=x|y"}}
    (src / "More.ndjson").write_bytes(_line({"resourceType": "Patient", "id": "p6"}) + _line(bundle) + _line(nobody))

    specs_, ct, sdtm_specs = _stage()
    whole = convert_path(src, specs_, ct, sdtm_specs)
    conv = PartitionedConversion(src, specs_, ct, sdtm_specs, partitions=3)
    seen: dict[str, int] = {}  # USUBJID -> the part it was converted in
    for k, part in conv.parts():
        for ds in part.datasets.values():
            for u in ds["USUBJID"].dropna():
                assert seen.setdefault(str(u), k) == k, f"{u} in parts {seen[u]} and {k}"
    assert conv.routed is not None and conv.routed.held_back == 2
    assert seen["S-3"] != 0  # the AdverseEvent by identifier went with its Patient, not the study part
    problems = {(p.file, p.record, p.rule) for p in conv.sink.problems}
    assert ("Patient.ndjson", "line 8", "json") in problems  # the original file and line (a blank line 7)
    assert ("AdverseEvent.ndjson", "line 10", "fhir-input") in problems
    _compare(src, tmp_path / "checked", 3, validate=True)
    trusted = _compare(src, tmp_path / "trusted", 3, validate=False)
    statuses = {(o.file, o.where): o.status for o in whole.outcomes}
    assert statuses[("AdverseEvent.ndjson", "line 8")] == "invalid"  # R4: AdverseEvent.subject is 1..1
    statuses = {(o.file, o.where): o.status for o in trusted.outcomes}
    assert statuses[("AdverseEvent.ndjson", "line 8")] == "converted"  # no subject: converted all the same
    assert statuses[("More.ndjson line 2", "entry[2]")] == "not converted"
    assert len(whole.outcomes) == 6 + 9 + 1 + 3 + 1


def test_router_uses_the_spec_subject_paths() -> None:
    r = Router(specs(), 8)
    assert r.key_of({"resourceType": "ResearchSubject", "individual": {"reference": "Patient/x"}}, "f", "w", None, {})
    assert r.key_of({"resourceType": "Claim", "patient": {"reference": "Patient/x"}}, "f", "w", None, {}) == (
        "Patient/x", None
    )  # fmt: skip
    assert r.key_of({"resourceType": "ResearchStudy", "id": "s"}, "f", "w", None, {}) == (None, None)
    abs_ref = {"resourceType": "Observation", "subject": {"reference": "https://srv/fhir/Patient/x"}}
    assert r.key_of(abs_ref, "f", "w", None, {})[0] == "Patient/x"


def test_no_validate_skips_the_models(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    bad = {"resourceType": "Patient", "id": "p1", "birthDate": "last spring"}
    (src / "Patient.ndjson").write_bytes(_line(bad))
    assert tosdtm_command(src, tmp_path / "checked") == 2  # nothing but the problem report
    problems = pd.read_csv(tmp_path / "checked" / "tosdtm-problems.csv", dtype=str, keep_default_na=False)
    assert list(problems[["file", "record", "field", "rule"]].itertuples(index=False, name=None)) == [
        ("Patient.ndjson", "line 1", "birthDate", "fhir-r4-model")
    ]
    assert [p.name for p in (tmp_path / "checked").iterdir()] == ["tosdtm-problems.csv"]
    for partitions in (0, 2):
        out = tmp_path / f"trusted-{partitions}"
        tosdtm_command(src, out, partitions=partitions, validate=False)
        report = pd.read_csv(out / "tosdtm-report.csv", dtype=str, keep_default_na=False)
        assert list(report["status"]) == ["converted"]


def test_parts_json_lists_every_column(tmp_path: Path) -> None:
    nd = _ndjson_of(example().datasets, tmp_path / "fhir")
    specs_, ct, sdtm_specs = _stage()
    stream_to_parts(nd, tmp_path / "out", specs_, ct, sdtm_specs, partitions=5, validate=False)
    manifest = json.loads((tmp_path / "out" / "parts.json").read_text())
    got = read_parts(tmp_path / "out")
    for name, meta in manifest["datasets"].items():
        assert list(got[name].columns) == list(meta["columns"])
        assert len(got[name]) == meta["rows"]
