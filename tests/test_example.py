"""The bundled example cohort is what the simulator makes at the default seed, in both formats."""

from __future__ import annotations

from pathlib import Path

from converter.records.model import frames_equal
from converter.records.simulate import DEFAULT_SEED, simulate
from converter.records.sources import read_records, write_records

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nct01371630"
CREATED = "2017-01-15T09:00:00"  # the CreationDateTime the example was written with


def test_example_regenerates_identically(tmp_path: Path) -> None:
    records = simulate(59, seed=DEFAULT_SEED)
    write_records(records, tmp_path / "nct01371630.xml", "odm", creation_datetime=CREATED)
    write_records(records, tmp_path / "csv", "csv")
    assert (tmp_path / "nct01371630.xml").read_bytes() == (EXAMPLE / "odm" / "nct01371630.xml").read_bytes()
    for f in sorted((EXAMPLE / "csv").glob("*.csv")):
        assert (tmp_path / "csv" / f.name).read_bytes() == f.read_bytes(), f.name
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == sorted(p.name for p in (EXAMPLE / "csv").iterdir())


def test_example_formats_hold_the_same_records() -> None:
    odm = read_records(EXAMPLE / "odm" / "nct01371630.xml")
    csv = read_records(EXAMPLE / "csv")
    assert frames_equal(odm, csv) == []
    assert len(odm["DEMOG"]) == 59
