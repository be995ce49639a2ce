"""The de-identification mark: ``deid.json``, written by ``inoconv deid`` beside the de-identified package and
carried on by ``inoconv fhir``; ``inoconv upload`` asks for it (unless ``--identified``)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MARK_FILE", "is_deidentified"]

MARK_FILE = "deid.json"


def is_deidentified(folder: Path) -> bool:
    """True when ``folder`` carries inoconv's de-identification mark with a passed residual check."""
    mark = Path(folder) / MARK_FILE
    if not mark.is_file():
        return False
    try:
        doc = json.loads(mark.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(isinstance(doc, dict) and doc.get("deidentified") is True and doc.get("residual_check") == "passed")
