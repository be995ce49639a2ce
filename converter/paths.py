"""Where the project's data lives: the mapping specs and the bundled example.

The specs are data, not code; they sit beside the package in the source tree (``mappings/``, ``examples/``).
``INOCONV_MAPPINGS`` / ``INOCONV_EXAMPLES`` point elsewhere, e.g. at a second trial's specs.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    return _ROOT


def mappings_dir() -> Path:
    env = os.environ.get("INOCONV_MAPPINGS")
    return Path(env) if env else _ROOT / "mappings"


def examples_dir() -> Path:
    env = os.environ.get("INOCONV_EXAMPLES")
    return Path(env) if env else _ROOT / "examples"


def example_study_dir() -> Path:
    return examples_dir() / "nct01371630"


def published_facts() -> Path:
    """The trial's published aggregates (shared reference material beside the project)."""
    env = os.environ.get("INOCONV_PUBLISHED")
    if env:
        return Path(env)
    for cand in (_ROOT.parent / "shared" / "trial" / "published.yaml", _ROOT / "mappings" / "published.yaml"):
        if cand.exists():
            return cand
    return _ROOT.parent / "shared" / "trial" / "published.yaml"
