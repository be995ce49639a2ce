"""Every file `inoconv run` writes on the bundled example, hashed and compared with a stored list.

Refactors (the spec language, the layers, moving trial facts into mappings/) must not change a byte of the
deliverables. Creation timestamps and the output folder's own path are the only things that differ between
two runs; they are blanked before hashing (see :func:`normalised`).

A change that alters the outputs on purpose regenerates the list and says why in its commit:

    INOCONV_UPDATE_RUN_HASHES=1 python -m pytest tests/test_run_outputs_stable.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

STORED = Path(__file__).resolve().parent / "fixtures" / "run_hashes.json"

# SAS XPORT header datetimes (ddMMMyy:hh:mm:ss) and ISO 8601 date-times with a time zone or seconds fraction
# as written by define.xml, Dataset-JSON, manifests and report.json; the report's "Generated ... UTC".
_XPT_STAMP = re.compile(rb"\d\d[A-Z]{3}\d\d:\d\d:\d\d:\d\d")
_ISO_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)|\d{4}-\d\d-\d\d \d\d:\d\d UTC")
# Files that exist to describe one run (its time, its command line, its hashes), not the deliverables.
_RUN_RECORDS = {"manifest.json", ".inoconv-lock"}


def normalised(path: Path, out: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix == ".xpt":
        return _XPT_STAMP.sub(b"00XXX00:00:00:00", data)
    if path.suffix in (".png",):
        return data
    data = data.replace(str(out.resolve()).encode(), b"<OUT>").replace(str(out).encode(), b"<OUT>")
    return _ISO_STAMP.sub(b"<TIMESTAMP>", data)


def hashes(out: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name not in _RUN_RECORDS:
            found[p.relative_to(out).as_posix()] = hashlib.sha256(normalised(p, out)).hexdigest()
    return found


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["", "1"], ids=["two processes", "one process"])
def test_run_on_the_example_writes_the_stored_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """The same bytes whether the run's two sides run in two processes (the ADaM side forked at the start, warmed
    up, handed the SDTM read cache) or one after the other in one (INOCONV_WORKERS=1)."""
    from converter.stages import run_all

    if workers:
        monkeypatch.setenv("INOCONV_WORKERS", workers)
    elif os.environ.get("INOCONV_WORKERS") == "1":
        monkeypatch.delenv("INOCONV_WORKERS")
    out = tmp_path / "run"
    assert run_all(None, out, echo=lambda _m: None) == 0
    got = hashes(out)
    if os.environ.get("INOCONV_UPDATE_RUN_HASHES") and not workers:
        STORED.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    want = json.loads(STORED.read_text(encoding="utf-8"))
    added = sorted(set(got) - set(want))
    missing = sorted(set(want) - set(got))
    changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    assert (added, missing, changed) == ([], [], []), f"added {added}, missing {missing}, changed {changed}"
