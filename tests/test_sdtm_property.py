"""Property: records -> SDTM never drops or duplicates a record, whatever the record set looks like."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converter.records.simulate import simulate
from converter.sdtm.pipeline import records_to_sdtm


@st.composite
def record_sets(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    n = draw(st.integers(min_value=1, max_value=6))
    seed = draw(st.integers(min_value=0, max_value=10_000))
    records = simulate(n, seed=seed)
    keep_seed = draw(st.integers(min_value=0, max_value=2**31))
    rng = np.random.default_rng(keep_seed)
    for form in ("AE", "EXPOS", "LAB", "RESP", "SCT", "RELAPSE", "DEATH"):
        df = records[form]
        if len(df):  # drop a random share of the repeating/optional records: shapes the engine must take
            records[form] = df[rng.random(len(df)) > draw(st.floats(0.0, 0.9))].reset_index(drop=True)
    return records


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_sets())
def test_every_record_ends_in_exactly_its_rows(records: dict[str, pd.DataFrame]) -> None:
    result = records_to_sdtm(records)
    ds = result.datasets
    n = {form: len(df) for form, df in records.items()}
    alive = int((records["FU"]["FUSTAT"] != "DEAD").sum())
    assert len(ds["DM"]) == n["DEMOG"]
    assert len(ds["EX"]) == n["EXPOS"]
    assert len(ds["AE"]) == n["AE"] == len(ds["SUPPAE"])
    assert len(ds["RS"]) == n["RESP"] + n["RELAPSE"]
    assert len(ds["PR"]) == n["SCT"]
    assert len(ds["DS"]) == n["ENROL"] + n["EOT"] + n["DEATH"] + alive
    lab_rows = n["LAB"] + sum(int(records["RESP"][c].notna().sum()) for c in ("BMBLAST", "MRDRES", "MRDLVL"))
    lab_rows += sum(int(records["DIAG"][c].notna().sum()) for c in ("BMBLAST", "CD22PCT", "WBC"))
    assert len(ds["LB"]) == lab_rows
    for name, df in ds.items():  # no duplicated record: keys unique
        seq = next((c for c in df.columns if c.endswith("SEQ") and c != "TSSEQ"), None)
        if seq and "USUBJID" in df.columns:
            assert not df.duplicated(["USUBJID", seq]).any(), name
    assert result.accounting.rejected() == 0
    assert sorted(ds["DM"]["SUBJID"]) == sorted(records["DEMOG"]["SUBJID"])
