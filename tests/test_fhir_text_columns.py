"""The FHIR builder's column helpers that work once per distinct value give what the row-by-row forms give:
identifier templates (render_distinct vs render), study days, integer columns factored, identifiers given as
JSON text."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import orjson
import pandas as pd

from converter.fhir.frame_values import Factored, column_factors, column_values, render, render_distinct
from converter.fhir.line_templates import JsonTexts, value_texts
from converter.fhir.spec_parse import parse_template
from converter.fhir.study_days import study_days


def _frame(rng: random.Random, n: int) -> pd.DataFrame:
    pick = ["S-1", "S-2", "s-3", None, "", "A%B", "ü"]
    return pd.DataFrame(
        {
            "STUDYID": pd.Series([rng.choice(["ABC", "Abc", None]) for _ in range(n)], dtype=object),
            "USUBJID": pd.Series([rng.choice(pick) for _ in range(n)], dtype=object),
            "SEQ": pd.Series([rng.choice([1.0, 2.0, np.nan, 10.0]) for _ in range(n)], dtype=np.float64),
        }
    )


def test_render_distinct_is_render_per_row() -> None:
    rng = random.Random(5)
    templates = [
        parse_template("urn:x:{STUDYID:lower}:lb"),
        parse_template("{USUBJID}-{SEQ}"),
        parse_template("{USUBJID}"),
        parse_template("100%-{MISSING}"),
        parse_template("plain%s"),
    ]
    for n in (0, 1, 7, 200):
        df = _frame(rng, n)
        codes, distinct = render_distinct(templates, df)
        expected = list(zip(*[render(t, df) for t in templates], strict=True)) if n else []
        assert [distinct[c] for c in codes.tolist()] == expected
        assert list(distinct) == list(dict.fromkeys(expected))  # first-seen order


def test_study_days_per_distinct() -> None:
    dm = pd.DataFrame({"USUBJID": ["A", "B", "C"], "RFSTDTC": ["2020-01-10", "2020-02-30", "2020-03-01T10:00"]})
    dates = ["2020-01-10", "2020-01-09", "2020-03-05", None, "2020-01", "", "2020-W01-1", 3.0]
    df = pd.DataFrame({"USUBJID": ["A", "A", "C", "A", "A", "B", "A", "X"], "XXDTC": dates})

    def day(v: object) -> dt.date | None:
        if not isinstance(v, str) or len(v) < 10:
            return None
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            return None

    ref = {"A": day("2020-01-10"), "B": None, "C": day("2020-03-01")}
    want: list[int | None] = []
    for u, d in zip(df["USUBJID"], dates, strict=True):
        r, x = ref.get(u), day(d)
        want.append(None if r is None or x is None else (x - r).days + ((x - r).days >= 0))
    got = study_days(dm, df, "XXDTC")
    assert got == want and all(v is None or type(v) is int for v in got)


def test_integer_columns_factored() -> None:
    df = pd.DataFrame({"I": pd.array([3, None, 1, 3], dtype="Int64"), "J": np.array([5, 2, 2, 5])})
    for var in ("I", "J"):
        got = column_factors(df, var)
        assert isinstance(got, Factored)
        assert list(got) == column_values(df, var)
        assert all(type(v) is int for v in got if v is not None)


def test_json_texts_placed_as_given() -> None:
    values = [{"system": "urn:a", "value": 'x"1'}, None, {"system": "urn:ü", "value": "2"}]
    texts = JsonTexts([None if v is None else orjson.dumps(v) for v in values])
    got, present = value_texts(texts)
    want, want_present = value_texts(values)
    assert list(got) == list(want)
    assert present.tolist() == want_present.tolist() == [1, 0, 1]
