"""Remake the hand-made MedDRA extract in ``tests/fixtures/meddra`` (llt.asc, pt.asc, mdhier.asc) from
``mappings/records/simulation.yaml`` (``terms:`` and ``meddra:``) and ``mappings/ct/meddra-soc.yaml``.

    python tools/make_meddra_fixture.py [ROOT] [OUT_DIR]

ROOT is the project (default: this file's parent's parent), OUT_DIR the fixture folder (default
ROOT/tests/fixtures/meddra). MedDRA's ASCII distribution format: ``$``-separated fields, one record a line, a
trailing ``$``; a code that no public source confirmed is an empty field (see the fixture's README.md).
soc.asc is not remade here (the 27 SOCs of meddra-soc.yaml, written once by hand). tests/test_meddra.py checks
that the fixture is what this step makes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def fixture_rows(root: Path) -> dict[str, list[str]]:
    """The lines of llt.asc, pt.asc and mdhier.asc, one term of ``terms:`` after another."""
    sim = yaml.safe_load((root / "mappings/records/simulation.yaml").read_text(encoding="utf-8"))
    socs_yaml = yaml.safe_load((root / "mappings/ct/meddra-soc.yaml").read_text(encoding="utf-8"))
    socs = {r["name"]: r["code"] for r in socs_yaml["meddra_soc"]}
    terms, coding = sim["terms"], sim["meddra"]
    llt: list[str] = []
    pt: list[str] = []
    hier: list[str] = []
    for term, spec in terms.items():
        m = coding[term]
        soc = socs[spec["soc"]]
        pt_code = _text(m.get("pt_code"))
        llt.append(f"{_text(m.get('llt_code'))}${m['llt']}${pt_code}$$$$$$$Y$$")
        if m["llt"] != term:  # the PT-level LLT of the PT (same name and code)
            llt.append(f"{pt_code}${term}${pt_code}$$$$$$$Y$$")
        pt.append(f"{pt_code}${term}$${soc}$$$$$$$$")
        hier.append(
            f"{pt_code}${_text(m.get('hlt_code'))}${_text(m.get('hlgt_code'))}${soc}${term}${_text(m.get('hlt'))}$"
            f"{_text(m.get('hlgt'))}${spec['soc']}$$${soc}$Y$"
        )
    return {"llt.asc": llt, "pt.asc": pt, "mdhier.asc": hier}


def write_fixture(root: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in fixture_rows(root).items():
        (out / name).write_text("\n".join(rows) + "\n", encoding="utf-8")


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    write_fixture(root, Path(sys.argv[2]) if len(sys.argv) > 2 else root / "tests/fixtures/meddra")
