"""``inoconv tosdtm`` on FHIR input that is bad: each case is exit 2 with the file, the line (or Bundle entry) and
the element named, and nothing but ``tosdtm-problems.csv`` written; the whole conversion and the streamed one
(``--partitions N``) report the same problems. Every fixture is made here (synthetic resources, no real data)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from converter.fhir import fhir_input
from converter.fhir.commands import tosdtm_command
from converter.fhir.fhir_input import file_lines, json_depth
from converter.fhir.located import FromFhir

SYSTEM = "urn:inoconv:nct1:usubjid"  # the identifier system of the Patient spec (USUBJID)


def _patient(i: int, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{i}", "gender": "female",
            "identifier": [{"system": SYSTEM, "value": f"S-{i}"}], **more}  # fmt: skip


def _ae(subject: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "AdverseEvent", "actuality": "actual", "subject": {"reference": subject}, **more}


def _ndjson(*resources: Any) -> bytes:
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in resources)


def _run(src: Path, out: Path, partitions: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, set[tuple[str, ...]]]:
    """(exit code, {(file, record, field, rule)}) of ``inoconv tosdtm``; checks that only the report was written."""
    code = tosdtm_command(src, out, partitions=partitions)
    printed = capsys.readouterr()
    problems = pd.read_csv(out / "tosdtm-problems.csv", dtype=str, keep_default_na=False)
    if code == 2:
        assert sorted(p.name for p in out.iterdir()) == ["tosdtm-problems.csv"]
        assert "no datasets written, only the problem report tosdtm-problems.csv (and the folder's manifest.json" in printed.err
        assert f"problem report (every problem; no datasets written): {out / 'tosdtm-problems.csv'}" in printed.out
    return code, {(r.file, r.record, r.field, r.rule) for r in problems.itertuples()}


def _both(src: Path, tmp: Path, capsys: pytest.CaptureFixture[str]) -> set[tuple[str, ...]]:
    """The problems, the same from the whole conversion and from the streamed one; exit 2 from both."""
    code0, whole = _run(src, tmp / "whole", 0, capsys)
    code3, streamed = _run(src, tmp / "streamed", 3, capsys)
    assert (code0, code3) == (2, 2)
    assert whole == streamed
    return whole


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


def test_clean_input_converts(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1), _patient(2)))
    (src / "AdverseEvent.ndjson").write_bytes(_ndjson(_ae("Patient/p1"), _ae(f"Patient?identifier={SYSTEM}|S-2")))
    for partitions in (0, 3):
        code, problems = _run(src, tmp_path / f"out{partitions}", partitions, capsys)
        assert (code, problems) == (0, set())


def test_bad_json_on_the_first_line_and_a_truncated_line(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (src / "Patient.ndjson").write_bytes(_ndjson(b'{"resourceType": "Patient", "id": ', _patient(1)))
    truncated = orjson.dumps(_ae("Patient/p1"))[:-7]  # the end of the last line lost, no line end either
    (src / "AdverseEvent.ndjson").write_bytes(_ndjson(_ae("Patient/p1")) + truncated)
    (src / "Bundle.json").write_bytes(b'{"resourceType": "Bundle", "type": "collection", "entry": [')
    assert _both(src, tmp_path, capsys) == {
        ("Patient.ndjson", "line 1", "", "json"),  # the first line is not skipped over: it is bad input
        ("AdverseEvent.ndjson", "line 2", "", "json"),
        ("Bundle.json", "", "", "json"),
    }


def test_a_file_whose_first_line_is_not_fhir(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1)))
    (src / "log.ndjson").write_bytes(_ndjson({"level": "info", "msg": "export done"}, _patient(9)))
    (src / "More.ndjson").write_bytes(_ndjson(_patient(2), ["not", "a", "resource"]))
    assert _both(src, tmp_path, capsys) == {
        ("log.ndjson", "line 1", "resourceType", "fhir-input"),  # one problem for the file, not one a line
        ("More.ndjson", "line 2", "resourceType", "fhir-input"),
    }


def test_nesting_depth_bomb(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = b'{"resourceType": "Patient", "id": "p2", "extension": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    medium = b'{"resourceType": "Patient", "id": "p3", "extension": ' + b"[" * 150 + b"]" * 150 + b"}"
    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1), deep, medium))
    assert _both(src, tmp_path, capsys) == {
        ("Patient.ndjson", "line 2", "", "json-depth"),  # past what the JSON parser itself takes
        ("Patient.ndjson", "line 3", "", "json-depth"),  # valid JSON, deeper than MAX_DEPTH
    }


def test_json_depth_ignores_brackets_in_strings() -> None:
    text = orjson.dumps({"a": "[" * 500 + '\\"{{{', "b": [[{"c": ["]]]"]}]]})
    assert json_depth(text) == 5
    assert json_depth(b"[" * 200 + b"]" * 200) == 200


def test_a_line_over_the_size_limit_is_refused_without_being_held(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fhir_input, "MAX_LINE_BYTES", 100_000)
    huge = _patient(2, text={"status": "generated", "div": "<div>" + "x" * 20_000_000 + "</div>"})
    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1), huge, _patient(3)))
    tracemalloc.start()
    lines = [(n, None if line is None else len(line)) for n, line in file_lines(src / "Patient.ndjson")]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [n for n, _ in lines] == [1, 2, 3] and lines[1] == (2, None)  # the lines after it are read as before
    assert peak < 5_000_000  # the 20 MB line was never in memory whole
    assert _both(src, tmp_path, capsys) == {("Patient.ndjson", "line 2", "", "line-length")}


def test_a_json_file_over_the_size_limit(
    src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fhir_input, "MAX_FILE_BYTES", 1000)
    (src / "big.json").write_bytes(orjson.dumps(_patient(1, text={"status": "generated", "div": "x" * 2000})))
    assert _both(src, tmp_path, capsys) == {("big.json", "", "", "file-size")}


def test_references_ids_and_subjects(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    second_s2 = {**_patient(8), "identifier": [{"system": SYSTEM, "value": "S-2"}]}
    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1), _patient(2), {**_patient(7), "id": "p1"}, second_s2))
    ae = [
        _ae("Patient/p2", id="a1"),
        _ae("Patient/ghost", id="a2"),  # a subject not in the input
        _ae(f"Patient?identifier={SYSTEM}|S-404", id="a3"),  # by identifier, not in the input either
        _ae("Patient/p2", id="a1"),  # one id twice
    ]
    (src / "AdverseEvent.ndjson").write_bytes(_ndjson(*ae))
    assert _both(src, tmp_path, capsys) == {
        ("Patient.ndjson", "line 3", "id", "fhir-duplicate-id"),
        ("Patient.ndjson", "line 4", "identifier", "fhir-duplicate-subject"),  # a second Patient for S-2
        ("AdverseEvent.ndjson", "line 2", "subject", "fhir-reference"),
        ("AdverseEvent.ndjson", "line 3", "subject", "fhir-reference"),
        ("AdverseEvent.ndjson", "line 4", "id", "fhir-duplicate-id"),
    }
    problems = pd.read_csv(tmp_path / "whole" / "tosdtm-problems.csv", dtype=str, keep_default_na=False)
    messages = set(problems["message"])
    assert "a second AdverseEvent with id a1 (the first: AdverseEvent.ndjson line 1)" in messages
    assert "a second Patient for subject S-2 (the first: Patient.ndjson line 2)" in messages


def test_control_characters_in_string_values(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tab_ok = _ae("Patient/p1", event={"text": "rash\tleft arm"})  # tab: allowed in a FHIR string
    narrative = _patient(2, text={"status": "generated", "div": "<div>\n</div>"})  # XHTML, not a string
    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1), narrative, _patient(3, gender="fe\u0000male")))
    (src / "AdverseEvent.ndjson").write_bytes(_ndjson(tab_ok, _ae("Patient/p1", event={"text": "rash\x1b[2J"})))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": _patient(4)},
        {"resource": _ae("Patient/p4", event={"coding": [{"display": "C1 \u0085 control"}]})},
    ]}  # fmt: skip
    (src / "b.json").write_bytes(orjson.dumps(bundle))
    assert _both(src, tmp_path, capsys) == {
        ("Patient.ndjson", "line 3", "gender", "control-character"),
        ("AdverseEvent.ndjson", "line 2", "event.text", "control-character"),
        ("b.json", "entry[1]", "event.coding[0].display", "control-character"),
    }
    problems = pd.read_csv(tmp_path / "whole" / "tosdtm-problems.csv", dtype=str, keep_default_na=False)
    assert "fe\\x00male" in set(problems["value"])  # shown escaped, never raw
    assert not any("\x1b" in v or "\x00" in v for v in problems.to_numpy().ravel())


def test_sink_helpers_give_the_same_checks_in_memory() -> None:
    sink = FromFhir(datasets={})
    items = fhir_input.parse_named({"x.ndjson": _ndjson(_patient(1), b"{oops", _patient(2))}, sink)
    assert [it.where for it in items] == ["line 1", "line 3"]
    assert [(p.file, p.record, p.rule) for p in sink.problems] == [("x.ndjson", "line 2", "json")]


@pytest.mark.parametrize("partitions", ["0", "2"])
def test_the_command_line(src: Path, tmp_path: Path, partitions: str) -> None:
    """``inoconv tosdtm`` itself: exit 2, the problem with file, line and element, the report's final path, and
    no dataset, no per-resource report in the output folder (only its provenance beside the problem report)."""
    from typer.testing import CliRunner

    from converter.cli import app

    (src / "Patient.ndjson").write_bytes(_ndjson(_patient(1), _patient(2, gender="fe\u0007male")))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["tosdtm", str(src), "--out", str(out), "--partitions", partitions])
    assert res.exit_code == 2, res.output
    assert "Patient.ndjson:line 2:gender: [control-character]" in res.output and "\x07" not in res.output
    assert f"problem report (every problem; no datasets written): {out / 'tosdtm-problems.csv'}" in res.output
    assert "Traceback" not in res.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "tosdtm-problems.csv"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert [o["path"] for o in manifest["outputs"]] == ["tosdtm-problems.csv"]  # it lists the report, nothing else
    assert CliRunner().invoke(app, ["verify", str(out)]).exit_code == 0
    again = CliRunner().invoke(app, ["tosdtm", str(src), "--out", str(out), "--partitions", partitions])
    assert again.exit_code == 2, again.output  # a re-run replaces its own report (no --overwrite needed)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "tosdtm-problems.csv"]
