"""Progress bars on long work (converter/io/progress.py): drawn on a terminal, never in a pipe, a log or the test
runner, and never with ``--quiet``; one helper for ``stream``, ``sdtm``, ``fhir``, ``tosdtm`` and ``validate``.

Data: two synthetic FHIR Patient resources written here (no real data).
"""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from converter.cli import app
from converter.io import progress
from converter.io.progress import no_progress, progress_bar

BAR = "━"  # rich's bar character


def _terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(force_terminal=True, file=buf, width=100), buf


def test_the_bar_appears_on_a_terminal_with_its_steps_and_count() -> None:
    console, buf = _terminal()
    with progress_bar("sdtm", console=console) as tick:
        assert tick is not no_progress
        tick(0, total=3, step="reading the records")
        tick(step="records -> SDTM")
        tick(step="writing \x07the package [red]")  # a user-given name: escaped, not markup, no control character
        tick(step="done")
    shown = buf.getvalue()
    assert BAR in shown and "sdtm" in shown and "3/3" in shown and "done" in shown
    assert "\x07" not in shown


def test_quiet_silences_it_even_on_a_terminal() -> None:
    console, buf = _terminal()
    with progress_bar("sdtm", quiet=True, console=console) as tick:
        assert tick is no_progress
        tick(0, total=3, step="reading")
        tick()
    assert buf.getvalue() == ""


def test_no_bar_when_output_is_not_a_terminal() -> None:
    assert not progress.shows_progress()  # pytest captures stdout and stderr: not terminals
    with progress_bar("sdtm") as tick:
        assert tick is no_progress


@pytest.fixture()
def fhir_in(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    patients = [
        {"resourceType": "Patient", "id": f"p{i}", "gender": "female",
         "identifier": [{"system": "urn:inoconv:nct1:usubjid", "value": f"S-{i}"}]}
        for i in (1, 2)
    ]  # fmt: skip
    (src / "Patient.ndjson").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in patients))
    return src


def test_cli_runner_gets_no_progress_output(fhir_in: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["tosdtm", str(fhir_in), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert BAR not in res.output and "\x1b[" not in res.output


@pytest.mark.parametrize("quiet", [False, True])
def test_the_commands_draw_through_the_helper_and_quiet_silences_them(
    fhir_in: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    """With stdout/stderr taken for a terminal, ``tosdtm`` draws its bar (label, steps, 2/2); ``--quiet`` not."""
    console, buf = _terminal()
    real = progress.progress_bar

    def on_fake_terminal(label: str, *, quiet: bool = False, console: Console | None = None) -> object:
        return real(label, quiet=quiet, console=fake)  # what progress_bar draws on when the user has a terminal

    fake = console
    monkeypatch.setattr(progress, "progress_bar", on_fake_terminal)
    args = ["tosdtm", str(fhir_in), "--out", str(tmp_path / "out")] + (["--quiet"] if quiet else [])
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    shown = buf.getvalue()
    if quiet:
        assert shown == ""
    else:
        assert BAR in shown and "tosdtm" in shown and "2/2" in shown


@pytest.mark.parametrize("command", ["stream", "sdtm", "fhir", "tosdtm", "validate"])
def test_every_long_command_takes_quiet(command: str) -> None:
    res = CliRunner().invoke(app, [command, "--help"])
    assert res.exit_code == 0 and "--quiet" in res.output


class _Recorder:
    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self.steps: list[str] = []

    def __call__(self, advance: int = 1, *, total: int | None = None, step: str | None = None) -> None:
        self.total = total if total is not None else self.total
        self.done += advance
        if step is not None:
            self.steps.append(step)


def test_stream_ticks_once_per_partition(tmp_path: Path) -> None:
    """``inoconv stream``'s bar counts partitions: the 59-subject example in partitions of 20 is 3 of 3."""
    from converter.engine.stream import run_stream

    example = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "csv"
    rec = _Recorder()
    rep = run_stream(example, tmp_path / "out", workers=1, subjects_per_partition=20, fhir=False, rules=False,
                     echo=lambda _m: None, progress=rec)  # fmt: skip
    assert rep.partitions == 3 and rec.total == 3 and rec.done == 3
    assert rec.steps == ["spilling the form files", "partitions"]
