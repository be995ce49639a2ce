"""Build step: ship the top-level ``mappings/`` and ``examples/`` inside the wheel as ``converter/_data/``.

The specs and the example stay top-level in the repository (a statistical programmer reviews them there); a
wheel carries a copy as package data, which ``converter.paths`` finds through ``importlib.resources``. An
editable install (``pip install -e .``) copies nothing: ``converter.paths`` reads the source tree.
Everything else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = ("mappings", "examples")  # top-level folders shipped as converter/_data/<name>
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithData(build_py):
    """``build_py``, then a copy of each data folder under ``<build_lib>/converter/_data/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in DATA:
            src = HERE / name
            if not src.is_dir():
                raise SystemExit(f"{src}: missing; the wheel ships it (build from the source tree or the sdist)")
            dst = Path(self.build_lib) / "converter" / "_data" / name
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst, ignore=SKIP)


setup(cmdclass={"build_py": BuildPyWithData})
