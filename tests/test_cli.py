"""The command line as a user meets it: the main job on the example, and clear errors with exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from converter.cli import app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nct01371630"
runner = CliRunner()


@pytest.fixture(scope="module")
def run_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "inoconv-out"
    result = runner.invoke(app, ["run", "--out", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    return out


def test_run_writes_every_stage(run_out: Path) -> None:
    for name in ("dm", "ae", "ex", "ds", "rs", "lb", "pr", "ts", "ta", "te", "suppdm"):
        assert (run_out / "sdtm" / f"{name}.xpt").exists(), name
        assert (run_out / "sdtm" / f"{name}.json").exists(), name
    assert (run_out / "sdtm" / "define.xml").exists()
    for name in ("adsl", "adtte", "adae", "adrs"):
        assert (run_out / "adam" / f"{name}.xpt").exists(), name
    report = json.loads((run_out / "report" / "report.json").read_text())
    assert report  # the end-point table; its content is asserted in the report tests
    assert (run_out / "report" / "index.html").exists()
    assert any((run_out / "fhir" / "bundles").glob("*.json"))
    assert (run_out / "validate" / "findings.json").exists()


def test_sdtm_counts_every_source_record(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sdtm", str(EXAMPLE / "csv"), "--out", str(tmp_path / "sdtm")])
    assert result.exit_code == 0, result.output[-2000:]
    import csv

    total = 0
    for form in (EXAMPLE / "csv").glob("*.csv"):
        with open(form, newline="", encoding="utf-8") as fh:
            total += sum(1 for _ in csv.DictReader(fh))
    assert f"{total} source records: {total} in SDTM rows, 0 rejected" in result.output


def test_bad_input_lists_problems_and_exits_2(tmp_path: Path) -> None:
    src = tmp_path / "csv"
    runner.invoke(app, ["simulate", "--n", "3", "--format", "csv", "--out", str(src)])
    ae = (src / "AE.csv").read_text(encoding="utf-8").splitlines()
    header = ae[0].split(",")
    cells = ae[1].split(",")
    cells[header.index("AESTDT")] = "2013-02-30"
    (src / "AE.csv").write_text("\n".join([ae[0], ",".join(cells), *ae[2:]]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["sdtm", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "AE.csv" in result.output and "AESTDT" in result.output and "2013-02-30" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_spec_error_exits_2_before_reading_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    root = Path(__file__).resolve().parent.parent / "mappings"
    bad = tmp_path / "mappings"
    shutil.copytree(root, bad)
    dm = bad / "sdtm" / "dm.yaml"
    dm.write_text(
        dm.read_text().replace("rule: {ct: {field: SEX, codelist: SEX}}", "rule: {ct: {field: GENDER, codelist: SEX}}")
    )
    monkeypatch.setenv("INOCONV_MAPPINGS", str(bad))
    from converter.records import schema

    schema._load.cache_clear()
    result = runner.invoke(app, ["sdtm", str(EXAMPLE / "csv"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert not (tmp_path / "o").exists()
    assert "dm.yaml" in result.output and "variable SEX" in result.output and "GENDER" in result.output



def test_a_rule_reading_a_column_its_input_lacks_is_a_spec_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ADaM spec whose rule reads an SDTM variable the package does not have (found only when the rule runs on
    the data) is exit 2 naming the spec file, its line and the variable, not an internal error."""
    import shutil

    sdtm = tmp_path / "sdtm"
    made = runner.invoke(app, ["sdtm", str(EXAMPLE / "csv"), "--out", str(sdtm)])
    assert made.exit_code == 0, made.output
    root = Path(__file__).resolve().parent.parent / "mappings"
    bad = tmp_path / "mappings"
    shutil.copytree(root, bad)
    adsl = bad / "adam" / "adsl.yaml"
    text = adsl.read_text()
    assert "DM.AGE" in text
    adsl.write_text(text.replace("DM.AGE", "DM.NOSUCHVAR", 1))
    monkeypatch.setenv("INOCONV_MAPPINGS", str(bad))
    result = runner.invoke(app, ["adam", str(sdtm), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "Invalid mapping spec" in result.output
    assert re.search(r"adsl\.yaml:\d+: ADSL\.AGE reads source field NOSUCHVAR, which source DM does not have",
                     result.output), result.output  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_help_is_fast_and_lazy() -> None:
    code = "import sys, converter.cli; print(sorted(m for m in ('pandas','lxml','fhir','lifelines','matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_console_script_leaves_with_its_code_its_output_flushed_and_exit_handlers_run(tmp_path: Path) -> None:
    """main() ends the process with os._exit after the command (no interpreter teardown): the exit code is the
    command's, everything printed reaches a pipe, and exit handlers registered during the command still run."""
    marker = tmp_path / "atexit.txt"
    prog = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
        "from converter.cli import main\n"
        "sys.argv = ['inoconv', *sys.argv[1:]]\n"
        "main()\n"
    )
    missing = subprocess.run([sys.executable, "-c", prog, "validate", str(tmp_path / "nope")],
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 2 and "No such file or folder" in missing.stderr + missing.stdout
    assert marker.read_text() == "ran"
    helped = subprocess.run([sys.executable, "-c", prog, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.rstrip().endswith("─╯")  # the whole help, to its last line
    failed = subprocess.run([sys.executable, "-c", prog, "no-such-command"], capture_output=True, text=True)
    assert failed.returncode == 2 and "no-such-command" in failed.stderr


def test_adam_rules_reading_what_is_not_there_name_the_spec_line() -> None:
    """The ADaM rules' own look-ups (an earlier variable or source column, a dataset not built before) raise the
    spec error of a missing column (exit 2 with the spec file and line), which is a KeyError too."""
    from types import SimpleNamespace

    import pandas as pd

    from converter.adam.common import right_rows, value_of
    from converter.errors import MissingColumnError, SpecError

    spec = SimpleNamespace(name="ADSL", path=Path("/somewhere/adsl.yaml"))
    ctx = SimpleNamespace(target={}, frame=pd.DataFrame({"USUBJID": ["1"]}), built={}, spec=spec,
                          var=SimpleNamespace(name="AGEGR1", line=42))  # fmt: skip
    with pytest.raises(MissingColumnError) as exc:
        value_of(ctx, "AGE")  # type: ignore[arg-type]
    assert isinstance(exc.value, SpecError) and isinstance(exc.value, KeyError)
    assert exc.value.messages == ["adsl.yaml:42: ADSL.AGEGR1 reads AGE, which is neither an earlier variable nor a "
                                  "column of its source"]  # fmt: skip
    with pytest.raises(MissingColumnError, match=re.escape("adsl.yaml:42: ADSL.AGEGR1 reads dataset ADAE, which is not")):
        right_rows(ctx, {"dataset": "ADAE"})  # type: ignore[arg-type]
