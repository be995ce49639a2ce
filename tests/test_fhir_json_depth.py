"""``json_depth`` (converter/fhir/fhir_input.py) against the whole-text count it replaced, kept here as the oracle:
the same depth on the JSON inoconv writes and on random JSON with brackets, quotes and backslashes inside strings
and nesting around the limit (orjson writes at most 254 levels; deeper text is made by hand)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import orjson

from converter.fhir.fhir_input import MAX_DEPTH, json_depth


def old_json_depth(raw: bytes) -> int:
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return 0
    text = raw.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in raw else raw
    a = np.frombuffer(text, dtype=np.uint8)
    outside = (np.cumsum(a == 34) & 1) == 0
    step = (a == 123).astype(np.int32) + (a == 91) - (a == 125) - (a == 93)
    step[~outside] = 0
    return int(np.cumsum(step).max()) if len(step) else 0


_TEXTS = ["x[{", "\\", '"{', '\\"]', "]]]", "}}", "\\\\[", "ok", "é{"]


def _doc(rng: random.Random, depth: int) -> Any:
    """A random JSON value nesting ``depth`` levels down one branch, short branches beside it."""
    if depth == 0:
        return rng.choice([*_TEXTS, 1, None, 2.5, True])
    inner = _doc(rng, depth - 1)
    side = [rng.choice(_TEXTS) + "[" * rng.randint(0, 60) for _ in range(rng.randint(0, 2))]
    if rng.random() < 0.5:
        return [*side, inner] if rng.random() < 0.5 else [inner, *side]
    return {rng.choice(_TEXTS): inner, **{f"k{i}{s}": s for i, s in enumerate(side)}}


def test_same_depth_as_the_whole_text_count() -> None:
    rng = random.Random(5)
    docs = [orjson.dumps(_doc(rng, rng.choice([0, 3, 50, 99, 100, 101, 150, 240]))) for _ in range(400)]
    docs += [orjson.dumps([_doc(rng, 30) for _ in range(8)]) for _ in range(50)]
    docs += [b"[" * 600 + b'"x]"' + b"]" * 600, b'"' + b"[" * 300 + b'"', b'{"a": "\\\\\\"[[["}']
    plain = ["ok", "", "a b", "\\", "é"]  # strings without brackets, empty ones side by side ("" "" in the text)
    for d in (0, 40, 99, 100, 101, 160):
        doc: Any = rng.choice(plain)
        for _ in range(d):
            doc = {rng.choice(plain): doc, "": ""} if rng.random() < 0.5 else ["", doc, rng.choice(plain)]
        docs.append(orjson.dumps(doc))
        docs.append(orjson.dumps([doc, '"[', "", doc]))  # one string holding a bracket
    assert any(old_json_depth(d) > MAX_DEPTH for d in docs)
    assert [json_depth(d) for d in docs] == [old_json_depth(d) for d in docs]
