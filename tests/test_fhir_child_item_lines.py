"""Child items made as JSON text (converter.fhir.source_lines.item_lines, e.g. SUPPAE's qualifiers on an
AdverseEvent): the resources' lines are byte for byte those of the dicts, items with nothing written are left
out, and where the resource is made as a dict the text items are parsed back (item_dicts)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pandas as pd

from converter.fhir.paths import parse_path
from converter.fhir.rowcode import Entry
from converter.fhir.source_lines import item_dicts, item_lines


def _datasets() -> dict[str, pd.DataFrame]:
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    datasets = dict(records_to_sdtm(simulate(30, seed=8)).datasets)
    supp = datasets["SUPPAE"].copy().astype(object)
    n = len(supp)
    assert n >= 6
    supp.loc[0, "QVAL"] = 'a "quoted" 50% value \u00e9'
    supp.loc[1, "QEVAL"] = None
    supp.loc[2, "QLABEL"] = None
    for var in ("QNAM", "QLABEL", "QVAL", "QORIG", "QEVAL"):  # row 3: only its IDVAR/IDVARVAL left
        supp.loc[3, var] = None
    datasets["SUPPAE"] = supp
    return datasets


def _lines(datasets: dict[str, pd.DataFrame], **mode: Any) -> tuple[dict[str, list[bytes]], list[Any]]:
    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.to_fhir import Builder

    result = Builder(*load_fhir_stage(), **mode).build(datasets)
    out: dict[str, list[bytes]] = {}
    if mode.get("columnar"):
        for b in result.blocks:
            out.setdefault(b.rtype, []).extend(b.lines)
    else:
        result.refs.use("ndjson")
        for r in result.resources:
            out.setdefault(r.rtype, []).append(r.line if r.line is not None else orjson.dumps(r.body))
    return out, result.problems


def test_text_items_give_the_lines_of_the_dicts() -> None:
    datasets = _datasets()
    want, problems = _lines(datasets)
    assert any(b"sdtm-supplemental-qualifier" in x for x in want["AdverseEvent"])
    assert any(b'a \\"quoted\\" 50% value' in x for x in want["AdverseEvent"])
    for mode in ({"columnar": True}, {"text": True}, {"bundle_texts": True}):
        got, got_problems = _lines(datasets, **mode)
        assert got == want, mode
        assert got_problems == problems


def test_item_lines_and_back() -> None:
    from converter.fhir.mapping import ChildSpec

    template = {"url": "u"}
    plan: list[tuple[Entry, Any]] = [
        (Entry(parse_path("extension[url=QNAM].valueString")), ["A", None, "C", None]),
        (Entry(parse_path("extension[url=QVAL].valueString")), ["1%", None, None, "x"]),
    ]
    child = ChildSpec("X", False, {}, parse_path("extension"), "list", template, ())
    lines = item_lines(child, plan, [0, 1, 3], 3, template)
    assert lines == [
        b'{"url":"u","extension":[{"url":"QNAM","valueString":"A"},{"url":"QVAL","valueString":"1%"}]}',
        b'{"url":"u"}',  # nothing written: the template (left out by the builder)
        b'{"url":"u","extension":[{"url":"QVAL","valueString":"x"}]}',
    ]
    groups = [(child, [(0, lines[0]), (2, {"url": "d"})])]
    assert item_dicts(groups) == [(child, [(0, orjson.loads(lines[0])), (2, {"url": "d"})])]
    # not appended to a list, or at a deeper path: not as text
    assert item_lines(replace(child, mode="first"), plan, None, 4, template) is None
    assert item_lines(replace(child, path=parse_path("a.extension")), plan, None, 4, template) is None
