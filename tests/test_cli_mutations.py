"""Property test of the command line (run, simulate, sdtm, stream, adam, fhir, tosdtm, validate, roundtrip, report,
deid, verify) on mutated input: whatever the bytes, a command answers 0, 1 or 2, never 3
(an internal error) and never a traceback; it leaves every input file byte for byte as it was and touches nothing
outside its --out folder.

The inputs are built once per module from a 5-subject synthetic cohort (`inoconv simulate --n 5`, made here; no
licence restriction): the CRF records as a CSV folder and as an ODM file, and the SDTM, ADaM and FHIR (NDJSON and
Bundles) folders the commands make of them, and a copy of the mappings folder (``simulate``'s input: its CRF
forms and simulation model, given through INOCONV_MAPPINGS). Each example copies one input, mutates one of its files (truncation,
a flipped bit, a control character, a duplicated or a dropped line) or hands a command a folder of the wrong kind,
and runs one command in-process (typer's CliRunner) from inside the example's own folder, with a fresh --out.
Bounded and derandomised: the same 30 examples every run, and one explicit example each for run, simulate, deid
and verify (2-4 min on a loaded 2-core machine, so marked slow).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings
from typer.testing import CliRunner

from converter.cli import app

runner = CliRunner()

#: which input kinds each command is meant for (anything else is the "wrong kind" case)
COMMANDS: dict[str, tuple[str, ...]] = {
    "sdtm": ("csv", "odm"),
    "stream": ("csv", "odm"),
    "adam": ("sdtm", "dsj"),
    "fhir": ("sdtm",),
    "roundtrip": ("sdtm",),
    "validate": ("sdtm", "adam"),
    "report": ("adam",),
    "tosdtm": ("ndjson", "bundles"),
    "run": ("csv", "odm"),
    "simulate": ("mappings",),
    "deid": ("sdtm",),
    "verify": ("sdtm", "adam"),
}
KINDS = ("csv", "odm", "sdtm", "dsj", "adam", "ndjson", "bundles", "mappings")
#: the files of an input that a mutation may hit
SUFFIXES = {
    "csv": (".csv",),
    "odm": (".xml",),
    "sdtm": (".xpt", ".json", ".xml"),
    "dsj": (".json",),
    "adam": (".xpt", ".json"),
    "ndjson": (".ndjson",),
    "bundles": (".json",),
    "mappings": ("forms.yaml", "simulation.yaml"),  # what simulate reads
}
CONTROLS = (b"\x00", b"\x1b[2J", b"\x7f", "\u0085".encode(), b"\r", b"\x0c")
MUTATIONS = ("none", "truncate", "flip", "control", "duplicate-line", "drop-line")


def _ok(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output[-3000:]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("inputs")
    _ok(["simulate", "--n", "5", "--format", "csv", "--out", str(base / "csv")])
    _ok(["simulate", "--n", "5", "--out", str(base / "records.xml")])
    _ok(["sdtm", str(base / "csv"), "--out", str(base / "sdtm")])
    _ok(["adam", str(base / "sdtm"), "--out", str(base / "adam")])
    _ok(["fhir", str(base / "sdtm"), "--out", str(base / "fhir")])
    dsj = base / "dsj"
    shutil.copytree(base / "sdtm", dsj)
    for p in dsj.glob("*.xpt"):
        p.unlink()
    from converter.paths import mappings_dir

    shutil.copytree(mappings_dir(), base / "mappings")
    return {
        "mappings": base / "mappings",
        "csv": base / "csv",
        "odm": base / "records.xml",
        "sdtm": base / "sdtm",
        "dsj": dsj,
        "adam": base / "adam",
        "ndjson": base / "fhir" / "ndjson",
        "bundles": base / "fhir" / "bundles",
    }


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
    elif root.is_dir():
        yield from sorted(p for p in root.rglob("*") if p.is_file())


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every file under ``root`` but those under ``skip``: relative path -> SHA-256 (folders too, as "dir")."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        if p == skip or skip in p.parents:
            continue
        out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _mutate(data: bytes, how: str, where: float, bit: int, control: bytes) -> bytes:
    pos = min(int(where * len(data)), max(len(data) - 1, 0))
    if how == "truncate":
        return data[:pos]
    if how == "flip" and data:
        return data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1 :]
    if how == "control":
        return data[:pos] + control + data[pos:]
    lines = data.split(b"\n")
    k = min(int(where * len(lines)), len(lines) - 1)
    if how == "duplicate-line":
        return b"\n".join([*lines[: k + 1], lines[k], *lines[k + 1 :]])
    if how == "drop-line":
        return b"\n".join(lines[:k] + lines[k + 1 :])
    return data


@st.composite
def cases(draw: st.DrawFn) -> dict[str, object]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    wrong = draw(st.integers(0, 5)) == 0
    kind = draw(st.sampled_from([k for k in KINDS if (k in COMMANDS[command]) != wrong]))
    return {
        "command": command,
        "kind": kind,
        "how": "none" if wrong else draw(st.sampled_from(MUTATIONS[1:])),
        "file": draw(st.integers(0, 1000)),
        "where": draw(st.floats(0, 1)),
        "bit": draw(st.integers(0, 7)),
        "control": draw(st.sampled_from(CONTROLS)),
    }


def _case(command: str, kind: str, how: str, file: int = 0, where: float = 0.5) -> dict[str, object]:
    return {"command": command, "kind": kind, "how": how, "file": file, "where": where, "bit": 3, "control": b"\x00"}


@pytest.mark.slow  # 2-4 min: the fixture's five commands and 34 runs
@example(case=_case("run", "csv", "drop-line", file=1))
@example(case=_case("simulate", "mappings", "flip", file=1, where=0.3))
@example(case=_case("deid", "sdtm", "truncate", file=2))
@example(case=_case("verify", "adam", "control", file=1))
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=cases())
def test_commands_on_mutated_input(inputs: dict[str, Path], case: dict[str, object]) -> None:
    command, kind, how = str(case["command"]), str(case["kind"]), str(case["how"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = inputs[kind]
        target = work / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        candidates = [p for p in _files(target) if p.name.endswith(SUFFIXES[kind])]
        mutated = ""
        if how != "none" and candidates:
            victim = candidates[int(case["file"]) % len(candidates)]  # type: ignore[call-overload]
            victim.write_bytes(_mutate(victim.read_bytes(), how, case["where"], case["bit"], case["control"]))  # type: ignore[arg-type]
            mutated = str(victim.relative_to(work))
        out = work / "out"
        env = {}
        if command == "simulate":  # its input is the mappings folder (forms and simulation model)
            args = [command, "--n", "3", "--seed", "1", "--format", "csv", "--out", str(out)]
            env["INOCONV_MAPPINGS"] = str(target)
        else:
            args = [command, str(target)] + ([] if command in ("roundtrip", "verify") else ["--out", str(out)])
        args += ["--workers", "1"] if command == "stream" else []
        before = _snapshot(work, out)
        cwd = os.getcwd()
        os.chdir(work)  # anything written relative to the working folder would show up in the snapshot
        try:
            result = runner.invoke(app, args, env=env)
        finally:
            os.chdir(cwd)
        said = f"{command} on {kind} ({how} {mutated}): exit {result.exit_code}\n{result.output[-3000:]}"
        assert result.exit_code in (0, 1, 2), said
        assert result.exception is None or isinstance(result.exception, SystemExit), said
        assert "Traceback" not in result.output and "internal error" not in result.output, said
        assert _snapshot(work, out) == before, f"a file outside --out changed: {said}"
