"""Study days with the day of each date text looked up once across calls (converter.fhir.study_days): the same
days as date.fromisoformat of each text's first ten characters, cold or warm, and submitted_days keeps exactly
the submitted values that differ from the derivation."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pandas as pd

from converter.fhir import study_days as sd

ODD = ["2014-02-30", "0000-01-01", "2014-1-02", "\uff12\uff10\uff11\uff14-01-02", "2014-01-02T10:00", "2014-01",
       "", "2014-W01-1", "20140102", "20140102T1000", "2014-01-02 junk", "2014-01-0", "2016-02-29", "2015-02-29",
       "9999-12-31", "0001-01-01"]  # fmt: skip


def _day(v: object) -> dt.date | None:
    if not isinstance(v, str) or len(v) < 10:
        return None
    try:
        return dt.date.fromisoformat(v[:10])
    except ValueError:
        return None


def _values(rng: random.Random, n: int) -> list[object]:
    base = dt.date(2014, 1, 1)
    out: list[object] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            d = (base + dt.timedelta(days=rng.randrange(900))).isoformat()
            out.append(d + rng.choice(["", "T08:15", "T23:59:59"]))
        elif r < 0.85:
            out.append(rng.choice(ODD))
        else:
            out.append(rng.choice([None, np.nan, pd.NA, 3.0, 20140102]))
    return out


def test_study_days_cold_and_warm() -> None:
    rng = random.Random(5)
    for round_ in range(6):
        if round_ % 3 == 0:
            sd._DAYS.clear()
        subjects = [f"S{i}" for i in range(30)]
        dm = pd.DataFrame({"USUBJID": subjects, "RFSTDTC": _values(rng, 30)}, dtype=object)
        n = 400
        df = pd.DataFrame(
            {"USUBJID": [rng.choice([*subjects, "X", None]) for _ in range(n)], "XXDTC": _values(rng, n)},
            dtype=object,
        )
        ref = {u: _day(r) for u, r in zip(dm["USUBJID"], dm["RFSTDTC"], strict=True)}
        want: list[int | None] = []
        for u, d in zip(df["USUBJID"], df["XXDTC"], strict=True):
            r, x = ref.get(u), _day(d)
            want.append(None if r is None or x is None else (x - r).days + ((x - r).days >= 0))
        got = sd.study_days(dm, df, "XXDTC")
        assert got == want and all(v is None or type(v) is int for v in got)


def test_submitted_days_keeps_the_differing_values() -> None:
    from converter.fhir.mapping import load_fhir_stage
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    specs = load_fhir_stage()[0]
    datasets = dict(records_to_sdtm(simulate(20, seed=3)).datasets)
    ae = datasets["AE"].copy()
    given = ae["AESTDY"].astype(object).copy()
    given.iloc[0] = 999  # counted otherwise
    given.iloc[1] = None  # left empty where the derivation gives a day
    ae["AESTDY"] = given
    datasets["AE"] = ae
    out = sd.submitted_days(datasets, specs)
    assert out["AE"] is not ae and out["AE"]["AESTDY"].tolist() == ["999", ".", *[None] * (len(ae) - 2)]
    assert out["DM"] is datasets["DM"]
