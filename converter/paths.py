"""Where the project's data lives: the mapping specs and the bundled example.

The specs are data, not code. In the source tree they sit beside the package (``mappings/``, ``examples/``);
a wheel ships a copy of both inside the package (``converter/_data/``, copied by setup.py's build step), found
through :mod:`importlib.resources`. Order: ``INOCONV_MAPPINGS`` / ``INOCONV_EXAMPLES`` (e.g. a second trial's
specs), then the package's own copy (installed wheel), then the source tree (editable install, checkout).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    return _ROOT


def _bundled(name: str) -> Path:
    """The data folder ``name``: the installed package's copy when there is one, else the source tree's."""
    data = files("converter") / "_data" / name
    if isinstance(data, Path) and data.is_dir():
        return data
    return _ROOT / name


def mappings_dir() -> Path:
    env = os.environ.get("INOCONV_MAPPINGS")
    return Path(env) if env else _bundled("mappings")


def bundled_mappings_dir() -> Path:
    """inoconv's own mappings folder (the installed copy, else the source tree's), whatever INOCONV_MAPPINGS says:
    where a second study's specs find the standard sets they include (e.g. ``mappings/fhir/standard``)."""
    return _bundled("mappings")


def examples_dir() -> Path:
    env = os.environ.get("INOCONV_EXAMPLES")
    return Path(env) if env else _bundled("examples")


def example_study_dir() -> Path:
    """The bundled example study: the one folder under the examples folder that holds records (``odm/`` or
    ``csv/``); with several, the first by name (``INOCONV_EXAMPLES`` may name a study folder itself)."""
    root = examples_dir()
    if (root / "odm").is_dir() or (root / "csv").is_dir():
        return root
    studies = sorted(p for p in root.iterdir() if (p / "odm").is_dir() or (p / "csv").is_dir()) if root.is_dir() else []
    return studies[0] if studies else root


def published_facts() -> Path:
    """The analysis spec: the trial's end points with their published values and citations
    (``mappings/analysis/endpoints.yaml``; ``INOCONV_PUBLISHED`` names another file)."""
    env = os.environ.get("INOCONV_PUBLISHED")
    return Path(env) if env else mappings_dir() / "analysis" / "endpoints.yaml"
