"""Output folders never lose anything (converter/io/outdir.py), for every command that writes one.

Data: the first 4 subjects of the bundled synthetic example (examples/nct01371630/csv, made by
``inoconv simulate``; synthetic, no licence question), and what the commands make from it. Every command is
run through the CLI as a user runs it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converter.cli import app

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "csv"


def invoke(*args: str | Path) -> tuple[int, str]:
    res = runner.invoke(app, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """csv (cohort), sdtm, adam and fhir folders, each written by inoconv."""
    root = tmp_path_factory.mktemp("data")
    made = {k: root / k for k in ("csv", "sdtm", "adam", "fhir")}
    made["csv"].mkdir()
    keep = {line.split(",", 1)[0] for line in (EXAMPLE / "DEMOG.csv").read_text().splitlines()[1:5]}
    for form in sorted(EXAMPLE.glob("*.csv")):
        lines = form.read_text(encoding="utf-8").splitlines()
        rows = [r for r in lines[1:] if r.split(",", 1)[0] in keep]
        (made["csv"] / form.name).write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    for args in (
        ["sdtm", made["csv"], "--out", made["sdtm"]],
        ["adam", made["sdtm"], "--out", made["adam"]],
        ["fhir", made["sdtm"], "--out", made["fhir"]],
    ):
        code, out = invoke(*args)
        assert code == 0, out[-2000:]
    return made


# command -> (its arguments for an output folder OUT, the exit codes that mean "written")
Args = Callable[[dict[str, Path], Path], list[str | Path]]
COMMANDS: dict[str, tuple[Args, tuple[int, ...]]] = {
    "simulate": (lambda d, o: ["simulate", "--n", "2", "--format", "csv", "--out", o], (0,)),
    "sdtm": (lambda d, o: ["sdtm", d["csv"], "--out", o], (0,)),
    "stream": (lambda d, o: ["stream", d["csv"], "--out", o, "--workers", "1"], (0,)),
    "adam": (lambda d, o: ["adam", d["sdtm"], "--out", o], (0,)),
    "report": (lambda d, o: ["report", d["adam"], "--out", o], (0, 1)),  # 3 subjects: end points off the paper
    "fhir": (lambda d, o: ["fhir", d["sdtm"], "--out", o], (0,)),
    "tosdtm": (lambda d, o: ["tosdtm", d["fhir"], "--out", o], (0,)),
    "validate": (lambda d, o: ["validate", d["sdtm"], "--out", o], (0, 1)),
    "run": (lambda d, o: ["run", d["csv"], "--out", o], (0, 1)),
    "guides": (lambda d, o: ["guides", "--out", o], (0,)),
}
# the input path each command reads (for the overlap checks)
INPUT = {"sdtm": "csv", "stream": "csv", "adam": "sdtm", "report": "adam", "fhir": "sdtm", "tosdtm": "fhir",
         "validate": "sdtm", "run": "csv"}  # fmt: skip


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> SHA-256."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def no_leftovers(parent: Path) -> None:
    """No staging folder or lock file of inoconv's left beside the output."""
    left = [p.name for p in parent.iterdir() if ".inoconv-" in p.name or p.name.endswith(".tmp")]
    assert left == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_folder_with_a_users_file_is_refused_and_the_file_untouched(
    command: str, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("my notes, not inoconv's\n")
    before = snapshot(out)
    args, _ = COMMANDS[command]
    code, text = invoke(*args(data, out))
    assert code == 2, text[-2000:]
    assert str(out) in text and "no inoconv manifest.json" in text and "notes.txt" in text and "--overwrite" in text
    assert "Traceback" not in text and "internal error" not in text
    assert snapshot(out) == before
    no_leftovers(tmp_path)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_overwrite_then_rerun_over_its_own_output(command: str, data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    args, ok = COMMANDS[command]
    code, text = invoke(*args(data, out), "--overwrite")
    assert code in ok, text[-3000:]
    assert (out / "notes.txt").read_text() == "keep me\n"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept_not_ours"] == ["notes.txt"]
    assert "notes.txt" not in {o["path"] for o in manifest["outputs"]}
    assert invoke("verify", out)[0] == 0  # kept files are named, not counted as added
    # the user's file is still there, so without --overwrite the folder is still refused ...
    code, text = invoke(*args(data, out))
    assert code == 2 and "notes.txt" in text
    # ... and once it is moved away, the command replaces its own output without being asked
    (out / "notes.txt").unlink()
    stale = next(iter(sorted(o["path"] for o in manifest["outputs"])))
    code, text = invoke(*args(data, out))
    assert code in ok, text[-3000:]
    assert (out / stale).exists()
    assert invoke("verify", out)[0] == 0
    no_leftovers(tmp_path)


def test_rerun_removes_its_own_files_the_new_run_does_not_make(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fhir"
    assert invoke("fhir", data["sdtm"], "--out", out)[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # pretend the earlier run wrote one more file (listed in its manifest): inoconv's own, so it may go
    (out / "bundles" / "OLD-SUBJECT.json").write_text("{}")
    manifest["outputs"].append({"path": "bundles/OLD-SUBJECT.json", "sha256": "0" * 64, "bytes": 2})
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert invoke("fhir", data["sdtm"], "--out", out)[0] == 0
    assert not (out / "bundles" / "OLD-SUBJECT.json").exists()
    assert invoke("verify", out)[0] == 0


def test_a_manifest_not_of_inoconv_does_not_make_a_folder_inoconvs(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"files": ["a"]}')
    code, text = invoke("adam", data["sdtm"], "--out", out)
    assert code == 2 and "no inoconv manifest.json" in text
    assert (out / "manifest.json").read_text() == '{"files": ["a"]}'


def test_an_empty_folder_of_the_user_is_not_silently_dropped(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert invoke("adam", data["sdtm"], "--out", out)[0] == 0
    (out / "my-empty-folder").mkdir()
    code, text = invoke("adam", data["sdtm"], "--out", out)
    assert code == 2 and "my-empty-folder/" in text
    assert (out / "my-empty-folder").is_dir()


@pytest.mark.parametrize("command", sorted(INPUT))
def test_out_equal_inside_or_containing_the_input_is_refused_before_reading(
    command: str, data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    src = tmp_path / "input"
    shutil.copytree(data[INPUT[command]], src)
    broken = next(p for p in sorted(src.rglob("*")) if p.is_file() and p.name != "manifest.json")
    broken.write_bytes(b"\x00 not what the reader expects")  # reading it would be a different error
    before = snapshot(src)
    args, _ = COMMANDS[command]
    d = dict(data)
    d[INPUT[command]] = src
    cases = {
        src: "is the input",
        src / "sub": "is inside the input",
        tmp_path: "contains the input",
        Path("."): "is the input",
    }
    monkeypatch.chdir(src)
    for out, why in cases.items():
        code, text = invoke(*args(d, out))
        assert code == 2, (out, text[-2000:])
        assert why in text and "output-folder" in text, (out, text[-2000:])
    (src / "deeper").mkdir(exist_ok=True)
    monkeypatch.chdir(src / "deeper")
    code, text = invoke(*args(d, Path("..")))
    assert code == 2 and "is the input" in text
    (src / "deeper").rmdir()
    link = tmp_path.parent / f"{tmp_path.name}-link"
    link.symlink_to(src)
    try:
        code, text = invoke(*args(d, link / "x"))
        assert code == 2 and "is inside the input" in text  # symlinks resolved
    finally:
        link.unlink()
    assert snapshot(src) == before


def test_out_containing_the_mappings_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from converter.paths import mappings_dir

    specs = tmp_path / "work" / "mappings"
    shutil.copytree(mappings_dir(), specs)
    monkeypatch.setenv("INOCONV_MAPPINGS", str(specs))
    code, text = invoke("simulate", "--n", "2", "--format", "csv", "--out", tmp_path / "work")
    assert code == 2 and "contains the mappings folder" in text


LOCKER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"pid %d: sdtm (test)" % os.getpid())
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_lock_held_by_another_process_fails_at_once(command: str, data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(out / ".inoconv-lock")], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"locked"
        args, _ = COMMANDS[command]
        code, text = invoke(*args(data, out))
        assert code == 2, text[-2000:]
        assert "another inoconv command is writing into this folder" in text and f"pid {proc.pid}" in text
        assert sorted(p.name for p in out.iterdir()) == [".inoconv-lock"]  # nothing written, its lock kept
    finally:
        proc.kill()
        proc.wait()
    no_leftovers(tmp_path)
    if command in ("sdtm", "run"):  # free again once it is gone
        assert invoke(*COMMANDS[command][0](data, out))[0] in COMMANDS[command][1]


def test_two_runs_at_once_do_not_mix(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "converter.cli", "adam", str(data["sdtm"]), "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stderr.read().decode() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results  # both in turn, or the second refused at once; never mixed
    if codes == [0, 2]:
        assert any("another inoconv command is writing" in err for _, err in results)
    assert invoke("verify", out)[0] == 0


def test_path_under_a_file_exit_2_with_the_reason(data: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, text = invoke("adam", data["sdtm"], "--out", blocker / "out")
    assert code == 2
    assert "Not a directory" in text and str(blocker) in text
    assert "internal error" not in text and "Traceback" not in text


def test_out_is_a_file_exit_2(data: dict[str, Path], tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("mine")
    code, text = invoke("adam", data["sdtm"], "--out", f)
    assert code == 2 and "exists and is not a folder" in text
    assert f.read_text() == "mine"


@pytest.mark.parametrize(
    ("err", "reason"),
    [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system"),
     (errno.EACCES, "Permission denied")],
)  # fmt: skip
def test_disk_full_or_read_only_exit_2_and_the_earlier_output_intact(
    err: int, reason: str, data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "adam"
    assert invoke("adam", data["sdtm"], "--out", out)[0] == 0
    before = snapshot(out)
    import converter.io.package as package

    real = package.write_xpt

    def failing(df: object, spec: object, path: Path, *a: object, **k: object) -> object:
        if "ADTTE" in str(getattr(spec, "name", "")):
            raise OSError(err, os.strerror(err), str(path))
        return real(df, spec, path, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(package, "write_xpt", failing)
    code, text = invoke("adam", data["sdtm"], "--out", out)
    assert code == 2, text[-2000:]
    assert reason in text and "adtte.xpt" in text
    assert "internal error" not in text and "Traceback" not in text
    assert snapshot(out) == before  # the earlier output as it was, still complete
    assert invoke("verify", out)[0] == 0
    no_leftovers(tmp_path)
    code, text = invoke("adam", data["sdtm"], "--out", tmp_path / "new" / "adam")
    assert code == 2 and reason in text
    assert not (tmp_path / "new").exists()  # no partial folder, not even the parent made for it


def test_read_only_staging_area_exit_2(data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import converter.io.outdir as outdir

    def refuse(*_a: object, **k: object) -> str:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(k.get("dir", "")))

    monkeypatch.setattr(outdir.tempfile, "mkdtemp", refuse)
    code, text = invoke("fhir", data["sdtm"], "--out", tmp_path / "fhir")
    assert code == 2 and "Read-only file system" in text and str(tmp_path) in text
    assert not (tmp_path / "fhir").exists()


def test_bad_input_leaves_the_earlier_output_as_it_was(data: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "csv"
    shutil.copytree(data["csv"], src)
    out = tmp_path / "sdtm"
    assert invoke("sdtm", src, "--out", out)[0] == 0
    before = snapshot(out)
    ae = src / "AE.csv"
    lines = ae.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("AESTDT")] = "2013-02-30"
    ae.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    code, text = invoke("sdtm", src, "--out", out)
    assert code == 2 and "AESTDT" in text
    assert snapshot(out) == before
    no_leftovers(tmp_path)


def test_manifest_states_version_command_time_and_every_hash(data: dict[str, Path], tmp_path: Path) -> None:
    from converter import __version__
    from converter.paths import mappings_dir

    out = tmp_path / "sdtm"
    t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert invoke("sdtm", data["csv"], "--out", out)[0] == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["manifest"] == "inoconv output manifest" and m["inoconv_version"] == __version__
    assert m["command"] == ["inoconv", "sdtm", str(data["csv"]), "--out", str(out), "--engine", "local",
                            "--partitions", "1"]  # in-process: rebuilt from the parsed parameters  # fmt: skip
    assert m["created"] >= t0
    inputs = {Path(e["path"]).name: e["sha256"] for e in m["inputs"]}
    for f in data["csv"].iterdir():
        assert inputs[f.name] == hashlib.sha256(f.read_bytes()).hexdigest()
    specs = {e["path"]: e["sha256"] for e in m["specs"]["files"]}
    want = {p.relative_to(mappings_dir()).as_posix() for p in mappings_dir().rglob("*") if p.is_file()}
    assert set(specs) == want and m["specs"]["folder"] == str(mappings_dir())
    outputs = {e["path"]: e["sha256"] for e in m["outputs"]}
    assert outputs == {k: v for k, v in snapshot(out).items() if k != "manifest.json"}
    assert "define.xml" in outputs and "dm.xpt" in outputs


def test_run_seals_each_stage_and_the_run(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = invoke("run", data["csv"], "--out", out)
    assert code in (0, 1), text[-3000:]
    top = json.loads((out / "manifest.json").read_text())
    listed = {e["path"] for e in top["outputs"]}
    for stage in ("sdtm", "adam", "report", "fhir", "validate"):
        sub = json.loads((out / stage / "manifest.json").read_text())
        assert sub["notes"]["stage"] == stage
        assert f"{stage}/manifest.json" in listed
        assert {e["path"] for e in sub["outputs"]} == {
            p.relative_to(out / stage).as_posix() for p in (out / stage).rglob("*")
            if p.is_file() and p.name != "manifest.json"
        }  # fmt: skip
        assert invoke("verify", out / stage)[0] == 0
    adam = json.loads((out / "adam" / "manifest.json").read_text())
    assert all(e["path"].startswith(str(out.resolve() / "sdtm")) for e in adam["inputs"])  # not the staging path
    assert ".inoconv-" not in (out / "fhir" / "manifest.json").read_text()
    assert invoke("verify", out)[0] == 0
    no_leftovers(tmp_path)


def test_simulate_odm_file_follows_the_same_rule(tmp_path: Path) -> None:
    mine = tmp_path / "cohort.xml"
    mine.write_text("<my own file/>")
    code, text = invoke("simulate", "--n", "2", "--out", mine)
    assert code == 2 and "inoconv did not write it" in text
    assert mine.read_text() == "<my own file/>"
    out = tmp_path / "sim.xml"
    assert invoke("simulate", "--n", "2", "--out", out)[0] == 0
    assert (tmp_path / "sim.xml.manifest.json").exists()
    assert invoke("simulate", "--n", "3", "--out", out)[0] == 0  # its own file: replaced
    assert invoke("verify", out)[0] == 0
    code, _ = invoke("simulate", "--n", "2", "--out", mine, "--overwrite")
    assert code == 0 and "<my own file/>" not in mine.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cohort.xml", "cohort.xml.manifest.json", "sim.xml", "sim.xml.manifest.json"
    ]  # fmt: skip


def test_a_missing_input_has_one_wording(tmp_path: Path) -> None:
    for args in (["sdtm", "nope"], ["adam", "nope"], ["fhir", "nope"], ["tosdtm", "nope"], ["report", "nope"],
                 ["validate", "nope"], ["roundtrip", "nope"], ["verify", "nope"], ["stream", "nope"],
                 ["run", "nope"]):  # fmt: skip
        code, text = invoke(*args, *(["--out", tmp_path / "o"] if args[0] not in ("verify", "roundtrip") else []))
        assert code == 2 and "No such file or folder: nope" in text, (args, text)
    assert not (tmp_path / "o").exists()


def test_one_version_named_everywhere() -> None:
    # converter.__version__ is what the outputs name (manifests, Provenance, define.xml, Dataset-JSON): it is the
    # version pyproject.toml builds, the one `pip show inoconv` gives
    import tomllib

    from converter import __version__

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["version"] == __version__


def test_version_and_flags_without_bool_metavar() -> None:
    from converter import __version__

    code, text = invoke("--version")
    assert code == 0 and text.strip() == f"inoconv {__version__}"
    for command in ("upload", "sdtm", "stream", "fhir", "tosdtm", "run"):
        code, text = invoke(command, "--help")
        assert code == 0 and ("--overwrite" in text or command == "upload")
        assert "<bool>" not in text and "BOOLEAN" not in text, command


def test_the_upload_journal_survives_a_rerun_of_fhir(data: dict[str, Path], tmp_path: Path) -> None:
    from converter.io.manifest import COMPANIONS
    from converter.upload.journal import JOURNAL_NAME

    assert JOURNAL_NAME in COMPANIONS
    out = tmp_path / "fhir"
    assert invoke("fhir", data["sdtm"], "--out", out)[0] == 0
    (out / JOURNAL_NAME).write_text('{"accepted": "bundles/study.json"}\n')  # as `inoconv upload` leaves it
    code, text = invoke("verify", out)
    assert code == 0 and JOURNAL_NAME in text
    code, text = invoke("fhir", data["sdtm"], "--out", out)
    assert code == 0, text[-2000:]
    assert (out / JOURNAL_NAME).read_text() == '{"accepted": "bundles/study.json"}\n'
    assert invoke("verify", out)[0] == 0


def test_out_dot_rewritten_in_place(data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "here"
    out.mkdir()
    monkeypatch.chdir(out)
    for _ in range(2):  # a new folder, then its own output: written file by file, the folder itself stays
        code, text = invoke("adam", data["sdtm"], "--out", ".")
        assert code == 0, text[-2000:]
        assert Path.cwd() == out and out.is_dir() and (out / "manifest.json").exists()
    assert invoke("verify", ".")[0] == 0
    no_leftovers(tmp_path)
