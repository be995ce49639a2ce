"""Registry upload (issue 7) against a real FHIR R4 server (tests/fhir_server: Medplum router, in memory).

The bundles are hand-built here in the layout the FHIR stage writes (fhir_dir/bundles/study.json + one
transaction Bundle per subject, or fhir_dir/ndjson/<Type>.ndjson).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import conftest_fhir
import httpx
import pytest
import typer
from conftest_fhir import configure, count
from typer.testing import CliRunner

from converter.errors import InputError
from converter.upload import (
    RetryPolicy,
    UploadSummary,
    count_resources,
    fetch_all,
    upload,
)
from converter.upload.commands import upload_command
from converter.upload.journal import Journal
from converter.upload.results import parse_retry_after

# the FHIR server fixtures (tests/conftest.py may import them too; these module-level names win here)
fhir_server = conftest_fhir.fhir_server
fresh_fhir_server = conftest_fhir.fresh_fhir_server
faulty_fhir_server = conftest_fhir.faulty_fhir_server

ROOT = Path(__file__).resolve().parent.parent
STUDY_SYSTEM = "https://clinicaltrials.gov"
STUDY_ID = "NCT01371630"
SUBJ_SYSTEM = "https://example.org/nct01371630/subject"
OBS_SYSTEM = "https://example.org/nct01371630/vs"
AE_SYSTEM = "https://example.org/nct01371630/ae"
RS_SYSTEM = "https://example.org/nct01371630/research-subject"
STUDY_REF = f"ResearchStudy?identifier={STUDY_SYSTEM}|{STUDY_ID}"
FAST = RetryPolicy(max_attempts=8, base=0.05, cap=0.4, max_retry_after=1.0)
OBS_PER_SUBJECT = 3


# ---------------------------------------------------------------------------------------------------------
# hand-built transaction bundles


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def study_bundle() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": _urn(),
                "resource": {
                    "resourceType": "ResearchStudy",
                    "identifier": [{"system": STUDY_SYSTEM, "value": STUDY_ID}],
                    "title": "Inotuzumab ozogamicin vs standard therapy in CD22+ ALL",
                    "status": "completed",
                },
                "request": {
                    "method": "POST",
                    "url": "ResearchStudy",
                    "ifNoneExist": f"identifier={STUDY_SYSTEM}|{STUDY_ID}",
                },
            }
        ],
    }


def subject_bundle(n: int, hr: float = 72.0, *, broken: bool = False) -> dict[str, Any]:
    sid = f"1010-{n:04d}"
    patient = _urn()
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient,
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": SUBJ_SYSTEM, "value": sid}],
                "gender": "female" if n % 2 else "male",
                "birthDate": f"{1950 + n % 40}",
            },
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={SUBJ_SYSTEM}|{sid}"},
        },
        {
            "fullUrl": _urn(),
            "resource": {
                "resourceType": "ResearchSubject",
                "identifier": [{"system": RS_SYSTEM, "value": sid}],
                "status": "on-study",
                "study": {"reference": STUDY_REF},
                "individual": {"reference": patient},
            },
            "request": {"method": "POST", "url": "ResearchSubject", "ifNoneExist": f"identifier={RS_SYSTEM}|{sid}"},
        },
    ]
    for k in range(1, OBS_PER_SUBJECT + 1):
        oid = f"{sid}-HR-{k}"
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "identifier": [{"system": OBS_SYSTEM, "value": oid}],
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": patient},
            "effectiveDateTime": f"2012-0{k}-15",
            "valueQuantity": {
                "value": hr + k,
                "unit": "beats/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
        if broken and k == 2:
            del obs["status"]  # required in R4: the server refuses the whole transaction
        entries.append(
            {
                "fullUrl": _urn(),
                "resource": obs,
                "request": {"method": "PUT", "url": f"Observation?identifier={OBS_SYSTEM}|{oid}"},
            }
        )
    entries.append(
        {
            "fullUrl": _urn(),
            "resource": {
                "resourceType": "AdverseEvent",
                "id": f"nct01371630-{sid}-ae-1",
                "identifier": {"system": AE_SYSTEM, "value": f"{sid}-AE-1"},
                "actuality": "actual",
                "event": {"text": "Febrile neutropenia"},
                "subject": {"reference": patient},
                "study": [{"reference": STUDY_REF}],
            },
            # R4 has no AdverseEvent `identifier` search parameter: update-as-create with a stable id
            "request": {"method": "PUT", "url": f"AdverseEvent/nct01371630-{sid}-ae-1"},
        }
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def write_fhir_dir(root: Path, subjects: int, **kw: Any) -> Path:
    bdir = root / "bundles"
    bdir.mkdir(parents=True, exist_ok=True)
    (bdir / "study.json").write_text(json.dumps(study_bundle(), indent=1))
    for n in range(1, subjects + 1):
        (bdir / f"subject-{n:04d}.json").write_text(json.dumps(subject_bundle(n, **kw), indent=1))
    return root


def expected_counts(subjects: int) -> dict[str, int]:
    return {
        "ResearchStudy": 1,
        "Patient": subjects,
        "ResearchSubject": subjects,
        "Observation": subjects * OBS_PER_SUBJECT,
        "AdverseEvent": subjects,
    }


def server_counts(url: str) -> dict[str, int]:
    return {t: count(url, t) for t in ("ResearchStudy", "Patient", "ResearchSubject", "Observation", "AdverseEvent")}


def assert_no_duplicates(url: str, subjects: int) -> None:
    obs = fetch_all(url, "Observation", page_size=20)
    idents = [o["identifier"][0]["value"] for o in obs]
    assert len(idents) == len(set(idents)) == subjects * OBS_PER_SUBJECT
    pats = fetch_all(url, "Patient")
    assert len({p["identifier"][0]["value"] for p in pats}) == len(pats) == subjects


def journal_lines(root: Path) -> list[dict[str, Any]]:
    path = root / ".upload-journal.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


# ---------------------------------------------------------------------------------------------------------
# round trip, idempotence, correction


def test_upload_and_read_back_by_identifier(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    fhir_dir = write_fhir_dir(tmp_path, 4)
    events: list[str] = []
    summary = upload(fhir_dir, url, concurrency=3, retry=FAST, progress=lambda p: events.append(p.event))

    assert summary.ok and summary.exit_code == 0
    assert summary.sent == 5 and summary.skipped == 0 and not summary.rejected
    assert summary.created == expected_counts(4)
    assert summary.planned == expected_counts(4)
    assert summary.resources_sent == sum(expected_counts(4).values())
    assert events[0] == "start" and events[-1] == "done" and events.count("accepted") == 5
    assert server_counts(url) == expected_counts(4)

    study = fetch_all(url, "ResearchStudy", {"identifier": f"{STUDY_SYSTEM}|{STUDY_ID}"})
    assert len(study) == 1
    pat = fetch_all(url, "Patient", {"identifier": f"{SUBJ_SYSTEM}|1010-0003"})
    assert len(pat) == 1
    rs = fetch_all(url, "ResearchSubject", {"identifier": f"{RS_SYSTEM}|1010-0003"})
    assert rs[0]["individual"]["reference"] == f"Patient/{pat[0]['id']}"
    assert rs[0]["study"]["reference"] == f"ResearchStudy/{study[0]['id']}"
    obs = fetch_all(url, "Observation", {"identifier": f"{OBS_SYSTEM}|1010-0003-HR-2"})
    assert obs[0]["subject"]["reference"] == f"Patient/{pat[0]['id']}"
    assert obs[0]["valueQuantity"]["value"] == 74.0
    assert count_resources(url, "Observation") == 12

    lines = journal_lines(fhir_dir)
    assert sorted(r["bundle"] for r in lines) == ["study.json"] + [f"subject-{n:04d}.json" for n in range(1, 5)]
    assert lines[0]["bundle"] == "study.json"  # the study goes first


def test_upload_twice_creates_nothing_new(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    fhir_dir = write_fhir_dir(tmp_path, 3)
    first = upload(fhir_dir, url, concurrency=2, retry=FAST)
    assert first.ok and first.sent == 4

    again = upload(fhir_dir, url, concurrency=2, retry=FAST)  # the journal: nothing to send
    assert again.ok and again.sent == 0 and again.skipped == 4

    forced = upload(fhir_dir, url, concurrency=2, retry=FAST, force=True)  # resent: all conditional
    assert forced.ok and forced.sent == 4 and forced.skipped == 0
    assert forced.created == {}
    assert forced.unchanged == {"Patient": 3, "ResearchStudy": 1, "ResearchSubject": 3}
    assert forced.updated == {"AdverseEvent": 3, "Observation": 9}
    assert server_counts(url) == expected_counts(3)
    assert_no_duplicates(url, 3)


def test_corrected_value_is_updated_in_place(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    fhir_dir = write_fhir_dir(tmp_path, 3)
    assert upload(fhir_dir, url, retry=FAST).ok
    ident = {"identifier": f"{OBS_SYSTEM}|1010-0002-HR-1"}
    before = fetch_all(url, "Observation", ident)
    assert before[0]["valueQuantity"]["value"] == 73.0

    # the data manager corrects subject 2's heart rates; the FHIR stage rewrites that bundle
    path = fhir_dir / "bundles" / "subject-0002.json"
    path.write_text(json.dumps(subject_bundle(2, hr=80.0)))
    summary = upload(fhir_dir, url, retry=FAST)

    assert summary.ok and summary.sent == 1 and summary.skipped == 3  # only the changed bundle
    assert summary.created == {}
    assert summary.updated == {"AdverseEvent": 1, "Observation": 3}
    after = fetch_all(url, "Observation", ident)
    assert len(after) == 1 and after[0]["id"] == before[0]["id"]
    assert after[0]["valueQuantity"]["value"] == 81.0
    assert server_counts(url) == expected_counts(3)


# ---------------------------------------------------------------------------------------------------------
# faults


def test_faulty_network_completes_with_exactly_one_copy(faulty_fhir_server: Any, tmp_path: Path) -> None:
    proxy = faulty_fhir_server
    real = f"http://{proxy.upstream_host}:{proxy.upstream_port}/"
    fhir_dir = write_fhir_dir(tmp_path, 8)
    summary = upload(fhir_dir, proxy.url, concurrency=3, timeout=1.0, retry=FAST, seed=3)

    assert summary.ok, [r.render() for r in summary.rejected]
    assert summary.sent == 9
    assert proxy.injected >= 5, proxy.counts
    assert {"503", "429", "drop_req", "drop_resp", "delay"} & set(proxy.counts)
    assert summary.retries >= proxy.injected - 1  # (a delayed answer may still arrive in time)
    assert server_counts(real) == expected_counts(8)
    assert_no_duplicates(real, 8)


def test_sigkill_midway_then_resume(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    subjects = 30
    fhir_dir = write_fhir_dir(tmp_path, subjects)
    configure(url, delayMs=120)  # a slow server: the upload takes a few seconds
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "converter.upload", str(fhir_dir), "--server", url, "--concurrency", "2", "-q", "--identified"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while len(journal_lines(fhir_dir)) < 6:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "upload made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done_before = len(journal_lines(fhir_dir))
    assert 6 <= done_before < subjects + 1
    configure(url, delayMs=0)

    summary = upload(fhir_dir, url, concurrency=4, retry=FAST)
    assert summary.ok
    assert summary.skipped == done_before
    assert summary.sent == subjects + 1 - done_before
    assert server_counts(url) == expected_counts(subjects)
    assert_no_duplicates(url, subjects)
    names = [r["bundle"] for r in journal_lines(fhir_dir)]
    assert sorted(set(names)) == sorted(["study.json"] + [f"subject-{n:04d}.json" for n in range(1, subjects + 1)])


def test_ctrl_c_stops_cleanly_and_rerun_resumes(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    subjects = 20
    fhir_dir = write_fhir_dir(tmp_path, subjects)
    configure(url, delayMs=100)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "converter.upload", str(fhir_dir), "--server", url, "--concurrency", "3", "-q", "--identified"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(journal_lines(fhir_dir)) < 4:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in out and "Traceback" not in err
    done = len(journal_lines(fhir_dir))
    assert done < subjects + 1
    configure(url, delayMs=0)
    summary = upload(fhir_dir, url, retry=FAST)
    assert summary.ok and summary.skipped == done and summary.sent == subjects + 1 - done
    assert server_counts(url) == expected_counts(subjects)


def test_journal_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.record_accepted("a.json", "11", "http://127.0.0.1:1/", status=200, counts={})
    journal.close()
    with path.open("ab") as fh:
        fh.write(b'{"event":"accepted","bundle":"b.json","sha2')  # SIGKILL in the middle of a write
    state = Journal(path).read("http://127.0.0.1:1")
    assert list(state.accepted) == [("a.json", "11")] and state.torn_tail
    j2 = Journal(path)
    j2.record_accepted("c.json", "33", "http://127.0.0.1:1", status=200, counts={})
    j2.close()
    state = Journal(path).read("http://127.0.0.1:1/")
    assert sorted(state.accepted) == [("a.json", "11"), ("c.json", "33")]
    assert state.bad_lines == 1 and not state.torn_tail
    assert Journal(path).read("http://127.0.0.1:2").accepted == {}  # another server: nothing skipped


# ---------------------------------------------------------------------------------------------------------
# rejection, dry run, input errors


def test_rejected_bundle_is_reported_and_the_rest_continue(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    fhir_dir = write_fhir_dir(tmp_path, 4)
    bad = subject_bundle(3, broken=True)
    (fhir_dir / "bundles" / "subject-0003.json").write_text(json.dumps(bad))
    summary = upload(fhir_dir, url, concurrency=2, retry=FAST)

    assert not summary.ok and summary.exit_code == 1
    assert summary.sent == 4 and len(summary.rejected) == 1
    rej = summary.rejected[0]
    assert rej.bundle == "subject-0003.json" and rej.status == 400
    issue = rej.issues[0]
    assert issue.entry_index == 3
    assert issue.full_url == bad["entry"][3]["fullUrl"]
    assert issue.element == "Observation.status"
    assert "Missing required property" in issue.diagnostics
    assert "subject-0003.json" in rej.render() and "Observation.status" in rej.render()
    # the transaction is all or nothing: nothing of subject 3 is on the server
    assert fetch_all(url, "Patient", {"identifier": f"{SUBJ_SYSTEM}|1010-0003"}) == []
    assert count(url, "Patient") == 3
    assert "subject-0003.json" not in {r["bundle"] for r in journal_lines(fhir_dir)}


def test_dry_run_sends_nothing(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    fhir_dir = write_fhir_dir(tmp_path, 3)
    before = httpx.get(url + "$stats").json()["requests"]
    summary = upload(fhir_dir, url, dry_run=True)
    after = httpx.get(url + "$stats").json()["requests"]
    assert after == before + 1  # only our own $stats call
    assert summary.dry_run and summary.ok and summary.sent == 0 and summary.total_bundles == 4
    assert summary.planned == expected_counts(3)
    assert not (fhir_dir / ".upload-journal.jsonl").exists()
    # no server needed at all
    assert upload(fhir_dir, "http://127.0.0.1:9/", dry_run=True).total_bundles == 4
    assert summary.notes == []  # every entry is conditional
    b = subject_bundle(9)
    del b["entry"][0]["request"]["ifNoneExist"]
    (fhir_dir / "bundles" / "subject-0009.json").write_text(json.dumps(b))
    noted = upload(fhir_dir, url, dry_run=True)
    assert noted.notes and "1 entry is a plain create" in noted.notes[0]


def test_bad_input_names_file_and_entry(tmp_path: Path) -> None:
    runner = CliRunner()
    app = typer.Typer()
    app.command()(upload_command)

    res = runner.invoke(app, [str(tmp_path / "missing"), "--server", "http://127.0.0.1:9/"])
    assert res.exit_code == 2 and "no such file or folder" in res.output and "Traceback" not in res.output

    fhir_dir = write_fhir_dir(tmp_path / "a", 2)
    (fhir_dir / "bundles" / "subject-0002.json").write_text('{"resourceType": "Bundle", "type": ')
    res = runner.invoke(app, [str(fhir_dir), "--server", "http://127.0.0.1:9/", "--identified"])
    assert res.exit_code == 2, res.output
    assert "subject-0002.json" in res.output and "not valid JSON" in res.output
    assert isinstance(res.exception, SystemExit)

    fhir_dir = write_fhir_dir(tmp_path / "b", 2)
    b = subject_bundle(1)
    del b["entry"][2]["request"]["method"]
    (fhir_dir / "bundles" / "subject-0001.json").write_text(json.dumps(b))
    res = runner.invoke(app, [str(fhir_dir), "--dry-run"])
    assert res.exit_code == 2
    assert "subject-0001.json" in res.output and "entry[2]" in res.output and "request.method" in res.output

    with pytest.raises(InputError):
        upload(fhir_dir, "not a url")


# ---------------------------------------------------------------------------------------------------------
# NDJSON (Bulk Data) input and paging


def _ndjson(root: Path, resources: dict[str, list[dict[str, Any]]]) -> Path:
    d = root / "ndjson"
    d.mkdir(parents=True)
    for rtype, items in resources.items():
        (d / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items))
    return root


def test_ndjson_builds_bundles_and_resolves_references(fresh_fhir_server: str, tmp_path: Path) -> None:
    url = fresh_fhir_server
    n = 60
    fhir_dir = _ndjson(
        tmp_path,
        {
            "ResearchStudy": [
                {
                    "resourceType": "ResearchStudy",
                    "id": "study",
                    "status": "completed",
                    "identifier": [{"system": STUDY_SYSTEM, "value": STUDY_ID}],
                }
            ],
            "Patient": [
                {"resourceType": "Patient", "id": f"p{i}", "identifier": [{"system": SUBJ_SYSTEM, "value": f"S{i}"}]}
                for i in range(n)
            ],
            "ResearchSubject": [
                {
                    "resourceType": "ResearchSubject",
                    "id": f"rs{i}",
                    "identifier": [{"system": RS_SYSTEM, "value": f"S{i}"}],
                    "status": "on-study",
                    "study": {"reference": "ResearchStudy/study"},
                    "individual": {"reference": f"Patient/p{i}"},
                }
                for i in range(n)
            ],
            "Observation": [  # no identifier: PUT by id
                {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "code": {"text": "HR"},
                    "subject": {"reference": f"Patient/p{i}"},
                    "valueQuantity": {"value": i},
                }
                for i in range(n)
            ],
        },
    )
    summary = upload(fhir_dir, url, batch=25, concurrency=3, retry=FAST)
    assert summary.ok, [r.render() for r in summary.rejected]
    assert summary.source == "ndjson"
    assert summary.created == {"Observation": n, "Patient": n, "ResearchStudy": 1, "ResearchSubject": n}

    patients = fetch_all(url, "Patient", page_size=7)  # 9 pages, following Bundle.link[next]
    assert len(patients) == n and len({p["id"] for p in patients}) == n
    by_ident = {p["identifier"][0]["value"]: p["id"] for p in patients}
    study_id = fetch_all(url, "ResearchStudy")[0]["id"]
    for rs in fetch_all(url, "ResearchSubject"):
        i = rs["identifier"][0]["value"]
        assert rs["individual"]["reference"] == f"Patient/{by_ident[i]}"
        assert rs["study"]["reference"] == f"ResearchStudy/{study_id}"
    o7 = fetch_all(url, "Observation", {"_id": "o7"})
    assert o7[0]["subject"]["reference"] == f"Patient/{by_ident['S7']}"

    # resume knows the server ids from the journal: drop the later waves' lines and rerun
    jpath = fhir_dir / ".upload-journal.jsonl"
    lines = [json.loads(x) for x in jpath.read_text().splitlines()]
    jpath.write_text("".join(json.dumps(r) + "\n" for r in lines if r["bundle"].startswith("ndjson-L0")))
    resumed = upload(fhir_dir, url, batch=25, concurrency=3, retry=FAST)
    assert resumed.ok and resumed.skipped == sum(1 for r in lines if r["bundle"].startswith("ndjson-L0"))
    assert resumed.created == {}
    assert count(url, "Patient") == n and count(url, "ResearchSubject") == n and count(url, "Observation") == n


# ---------------------------------------------------------------------------------------------------------
# small pieces


def test_retry_after_and_backoff() -> None:
    import email.utils
    import random

    assert parse_retry_after("0") == 0.0 and parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 5, usegmt=True)
    assert 3.5 <= (parse_retry_after(date, now=now) or 0) <= 5.0
    assert parse_retry_after(email.utils.formatdate(now - 50, usegmt=True)) == 0.0
    rng = random.Random(1)
    pol = RetryPolicy(base=0.5, cap=4.0)
    waits = [pol.backoff(a, rng) for a in range(1, 10) for _ in range(20)]
    assert all(0.0 <= w <= 4.0 for w in waits) and max(waits) > 2.0


def test_summary_exit_codes() -> None:
    s = UploadSummary(server="x", source="bundles", dry_run=False, total_bundles=1)
    assert s.exit_code == 0
    s.not_sent = 1
    assert s.exit_code == 1
    s.interrupted = True
    assert s.exit_code == 130


def test_a_web_page_answering_200_is_not_an_acceptance(tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b"<html>login</html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        fhir_dir = write_fhir_dir(tmp_path, 1)
        summary = upload(fhir_dir, f"http://127.0.0.1:{httpd.server_address[1]}/", retry=FAST)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert summary.exit_code == 1 and summary.sent == 0 and summary.not_sent == 1
    assert "not a transaction-response" in summary.rejected[0].message
    assert summary.retries >= 1  # unreadable 2xx bodies are retried first
    assert journal_lines(fhir_dir) == []


def test_a_package_not_marked_deidentified_is_refused_unless_identified(tmp_path: Path) -> None:
    """inoconv upload sends nothing from a FHIR folder without inoconv deid's mark, and says why."""
    runner = CliRunner()
    app = typer.Typer()
    app.command()(upload_command)
    fhir_dir = write_fhir_dir(tmp_path / "a", 2)
    res = runner.invoke(app, [str(fhir_dir), "--server", "http://127.0.0.1:9/", "-q"])
    assert res.exit_code == 2, res.output
    assert "not marked de-identified" in res.output and "--identified" in res.output
    assert not (fhir_dir / ".upload-journal.jsonl").exists()  # nothing was tried

    def past_the_check(args: list[str]) -> str:
        out = runner.invoke(app, [str(fhir_dir), "--server", "http://127.0.0.1:9/", "-q", "--max-attempts", "1", *args])
        assert "not marked de-identified" not in out.output
        return out.output

    past_the_check(["--identified"])  # the user says the server may hold identifiable data
    (fhir_dir / "deid.json").write_text(json.dumps({"deidentified": True, "residual_check": "passed"}))
    past_the_check([])  # marked by inoconv deid
    (fhir_dir / "deid.json").write_text(json.dumps({"deidentified": True, "residual_check": "failed"}))
    res = runner.invoke(app, [str(fhir_dir), "--server", "http://127.0.0.1:9/", "-q"])
    assert res.exit_code == 2 and "not marked de-identified" in res.output
