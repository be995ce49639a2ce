"""The build's key codes (converter.adam.codes): equal codes exactly where ``as_text`` gives equal texts, 0 for
no text, across columns coded one after the other; rows taken from a frame keep its codes."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from converter.adam.codes import codes_of, frame_codes, key_codes, note_rows
from converter.adam.shared import shared_results
from converter.sdtm.context import as_text

_VALUES = ["A", "B", "", None, np.nan, 1, 1.0, "1", 2.5, -0.0, 0, True, False, "True", pd.NA, "0"]


def _column(rng: random.Random) -> pd.Series:
    pool = rng.sample(_VALUES, rng.randint(1, len(_VALUES)))
    return pd.Series([rng.choice(pool) for _ in range(rng.randint(0, 40))], dtype=object)


def test_codes_equal_where_texts_are_equal() -> None:
    rng = random.Random(5)
    for _ in range(300):
        codes = codes_of()
        cols = [_column(rng) for _ in range(3)]
        got = np.concatenate([codes.of(c.to_numpy(dtype=object)) for c in cols])
        texts = np.concatenate([as_text(c).to_numpy(dtype=object) for c in cols])
        assert ((got == 0) == pd.isna(texts)).all()
        for i in range(len(got)):
            same = got == got[i]
            assert (same == (texts == texts[i])).all() or texts[i] is None


def test_rows_taken_keep_the_frame_codes_and_keys_combine() -> None:
    frame = pd.DataFrame({"USUBJID": ["S1", "S2", None, "S1", "S3"], "D": ["x", "y", "x", "", "y"]})
    with shared_results():
        codes = codes_of()
        rows = note_rows(frame.iloc[[4, 0, 3]], frame, np.array([4, 0, 3]))
        taken = frame_codes(rows, "USUBJID", codes)
        assert (taken == frame_codes(frame, "USUBJID", codes)[[4, 0, 3]]).all()
        assert (taken == codes.of(np.array(["S3", "S1", "S1"], dtype=object))).all()
    a, b = np.array([1, 2, 1]), np.array([3, 3, 4])
    key = key_codes([a, b], 5)
    assert key is not None and len(set(key.tolist())) == 3
    assert key_codes([a, b, a, b, a, b, a, b], 2**10) is None
