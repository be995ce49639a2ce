"""The package installs anywhere: a wheel built from the source tree, installed in a fresh virtual environment,
runs ``inoconv run`` from an unrelated folder with the specs and the example it ships (``converter/_data``).

The venv sees the machine's packages (``--system-site-packages``) so only the wheel itself is installed; the
wheel is built with build isolation (setuptools and wheel from the package registry) unless ``wheel`` is on the
machine already.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "converter", "mappings", "examples")

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source tree (nothing is written into the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(p, src / name)
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
    done = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(work / "dist"), str(src)], work)
    assert done.returncode == 0, done.stdout + done.stderr
    (whl,) = (work / "dist").glob("inoconv-*.whl")
    return whl


def test_wheel_ships_specs_example_and_every_dependency(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = {
            re.split(r"[<>=;\s\[]", ln.removeprefix("Requires-Dist: "))[0].lower()
            for ln in z.read(meta).decode().splitlines()
            if ln.startswith("Requires-Dist: ") and "extra ==" not in ln
        }
    for folder in ("mappings", "examples"):
        shipped = {n for n in names if n.startswith(f"converter/_data/{folder}/")}
        in_tree = {
            f"converter/_data/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
        }
        assert in_tree and shipped == in_tree, sorted(in_tree ^ shipped)[:10]
    assert "converter/io/define2-1.xsl" in names and "converter/io/define2-1.xsl.LICENSE" in names
    # everything a command imports at run time (pyarrow: inoconv stream)
    assert {"pandas", "numpy", "lxml", "pyreadstat", "pyarrow", "typer", "pyyaml", "fhir.resources"} <= requires
    assert "pyspark" not in requires  # an extra


def test_wheel_in_a_fresh_venv_runs_everything_from_anywhere(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / ("python.exe" if os.name == "nt" else "python")
    done = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INOCONV_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    where = _run([str(py), "-c", "import converter.paths as p; print(p.__file__); print(p.mappings_dir())"], elsewhere, env)
    module, mappings = where.stdout.split()
    assert Path(module).is_relative_to(venv) and Path(mappings).is_relative_to(venv), where.stdout  # not the checkout
    run = _run([str(bindir / "inoconv"), "run", "--out", "out"], elsewhere, env)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "Traceback" not in out
    assert re.search(r"^report\s+out/report\s+ok\s*$", run.stdout, re.M), run.stdout[-2000:]
    assert re.search(r"^validate\s+out/validate\s+0 errors\s*$", run.stdout, re.M), run.stdout[-2000:]
    shown = re.search(r"^(\d+) of (\d+) published figures reproduced", run.stdout, re.M)
    assert shown and shown[1] == shown[2], run.stdout[-2000:]
    if any((ROOT / "mappings" / "analysis").glob("*.yaml")):  # the published values are specs: shipped, compared
        assert int(shown[2]) > 0, shown[0]
    assert (elsewhere / "out" / "report" / "report.json").is_file()
    assert (elsewhere / "out" / "sdtm" / "define.xml").is_file()
