"""check_seq_unique (USUBJID by its codes) against duplicated on the values, as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd

from converter.validate.common import numbers, row_findings
from converter.validate.sdtm_rules import check_seq_unique


def _old(name: str, df: pd.DataFrame) -> list[object]:
    keys = pd.DataFrame({"u": df["USUBJID"].to_numpy(dtype=object), "s": numbers(df["AESEQ"])})
    dup = keys.duplicated(keep=False).to_numpy() & ~np.isnan(keys["s"].to_numpy())
    return row_findings("CORE-000544", name, "AESEQ", df, dup, "AESEQ={s:g} is used twice for {u}",
                        s=keys["s"], u=keys["u"])  # fmt: skip


def test_equal_to_duplicated_on_the_values() -> None:
    rng = np.random.default_rng(8)
    subjects: list[object] = ["S1", "S2", "S3", None, float("nan"), pd.NA, 1.0, "1"]
    for _ in range(200):
        n = int(rng.integers(0, 40))
        seq = rng.integers(1, 6, n).astype(float)
        seq[rng.random(n) < 0.2] = np.nan
        df = pd.DataFrame({"USUBJID": pd.Series([subjects[i] for i in rng.integers(0, len(subjects), n)],
                                                dtype=object), "AESEQ": seq})  # fmt: skip
        assert check_seq_unique({"AE": df}) == _old("AE", df)
        df["AESEQ"] = pd.array(np.where(np.isnan(seq), 0, seq).astype(int), dtype="Int64")
        df.loc[np.isnan(seq), "AESEQ"] = pd.NA
        assert check_seq_unique({"AE": df}) == _old("AE", df)
