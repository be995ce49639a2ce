"""csv_io.field_layout (the long-field and short-record scan of every CSV run read) against a byte-by-byte
reference: quotes toggle, commas/LFs/CRs outside quotes end fields, an LF or a lone CR ends a record."""

from __future__ import annotations

import random

import numpy as np

from converter.records.csv_io import field_layout


def _reference(data: bytes, limit: int) -> tuple[int | None, list[int]]:
    quotes = 0
    seps: list[int] = []
    commas: list[int] = []
    ends: list[int] = []
    for i, c in enumerate(data):
        if c == 34:
            quotes += 1
        elif quotes % 2 == 0 and c == 44:
            seps.append(i)
            commas.append(i)
        elif quotes % 2 == 0 and c in (10, 13):
            seps.append(i)
            if c == 10 or i + 1 >= len(data) or data[i + 1] != 10:
                ends.append(i)
    long = None
    if len(data) > limit:
        prev = -1
        for s in [*seps, len(data)]:
            if s - prev - 1 > limit:
                long = prev + 1
                break
            prev = s
    if data and (not ends or ends[-1] != len(data) - 1):
        ends.append(len(data))
    counts: list[int] = []
    start = 0
    for e in ends:
        length = e - start - (1 if e < len(data) and data[e] == 10 and e > 0 and data[e - 1] == 13 else 0)
        if length > 0:
            counts.append(sum(1 for c in commas if start <= c < e) + 1)
        start = e + 1
    return long, counts


def test_equals_the_byte_by_byte_reading() -> None:
    rng = random.Random(19)
    alphabet = [b"a", b"bc", b",", b'"', b'""', b"\n", b"\r", b"\r\n", b" "]
    for _ in range(4000):
        weights = [rng.random() for _ in alphabet]
        data = b"".join(rng.choices(alphabet, weights=weights, k=rng.randint(0, 50)))
        limit = rng.randint(0, 10)
        long, counts = field_layout(data, limit)
        want_long, want_counts = _reference(data, limit)
        assert long == want_long, (data, limit)
        assert counts.dtype == np.int64 and counts.tolist() == want_counts, (data, limit)


def test_a_real_form_run() -> None:
    data = b'SUBJID,TERM,DATE\r\n1001,"Respiratory, thoracic",2016-01-02\r\n1002,,\r\n\r\n1003\r\n'
    long, counts = field_layout(data, limit=30)
    assert long is None and counts.tolist() == [3, 3, 3, 1]
    assert field_layout(data, limit=10)[0] == data.index(b'"Respiratory')
