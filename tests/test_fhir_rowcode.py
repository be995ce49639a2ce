"""Row programs (converter.fhir.rowcode) write exactly what the path setters write, and the NDJSON-only writer
writes exactly the NDJSON of the whole output folder."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from converter.fhir.path_setters import Cache, compile_setter
from converter.fhir.paths import parse_path
from converter.fhir.rowcode import Entry, compile_rows

PATH_SETS = [
    ["identifier[0]", "status", "status", "code.coding[system=s].code", "code.coding[system=s].display", "code.text"],
    ["valueQuantity.value", "valueQuantity", "extension[url=a].valueString", "extension[url=b].valueString"],
    ["extension[url=a].extension[url=x].valueString", "extension[url=c].valueBoolean",
     "extension[url=a].extension[url=y].valueString", "_birthDate", "birthDate"],
    ["category[coding.system=o].coding[system=o].code", "category[coding.system=c]", "category[coding.system=d]"],
    ["suspectEntity[0].instance.display", "suspectEntity[0].causality[0].assessment", "suspectEntity[2].x"],
    ["a[k=1]", "a[k=2]", "a[k=1]", "b.c", "b"],
    # one list reached by selectors of different keys, or by position then by selector (items never mistaken)
    ["category[coding.system=o].coding[system=o].code", "category[id=c].text", "category[id=d].text",
     "category[coding.system=o].coding[system=o].display"],
    ["identifier[0].value", "identifier[1].system", "identifier[use=s].value", "identifier[use=s].system"],
    ["extension[url=a].valueString", "extension[k=z].v", "extension[url=b].extension[url=x].valueString"],
]  # fmt: skip


def _value(rng: random.Random, with_dicts: bool) -> Any:
    r = rng.random()
    if r < 0.35:
        return None
    if r < 0.7 or not with_dicts:
        return rng.choice(["x", "y", 1, 2.5, True])
    return rng.choice([{"text": "t"}, {"unit": "mg", "code": "mg"}, {"coding": [{"system": "q", "code": "1"}]}])


def _setters(roots: list[dict[str, Any]], entries: list[Entry], cols: list[list[Any]]) -> None:
    caches: list[Cache] = [{} for _ in roots]
    for e, col in zip(entries, cols, strict=True):
        setter = compile_setter(e.path)
        for root, v, cache in zip(roots, col, caches, strict=True):
            if v is not None:
                setter(root, copy.deepcopy(v), cache)


@pytest.mark.parametrize("paths", PATH_SETS)
@pytest.mark.parametrize("seed", range(4))
def test_row_program_writes_what_the_setters_write(paths: list[str], seed: int) -> None:
    rng = random.Random(seed)
    entries = [Entry(parse_path(p), shared=bool(rng.random() < 0.5)) for p in paths]
    n = 300
    cols = [[_value(rng, with_dicts=True) for _ in range(n)] for _ in entries]
    prog = compile_rows(entries)
    if prog is None:
        pytest.skip("paths the row programs leave to the setters")
    want: list[dict[str, Any]] = [{"resourceType": "X"} for _ in range(n)]
    _setters(want, entries, cols)
    shared_before = orjson.dumps(cols)
    got: list[dict[str, Any]] = [{"resourceType": "X"} for _ in range(n)]
    prog(got, *[[copy.deepcopy(v) if not e.shared else v for v in c] for e, c in zip(entries, cols, strict=True)])
    assert [orjson.dumps(x) for x in got] == [orjson.dumps(x) for x in want]
    assert orjson.dumps(cols) == shared_before  # shared values are copied before anything writes into them


def test_unsupported_paths_fall_back() -> None:
    # one list reached by position and by selector: the setters' scan decides, not the program
    assert compile_rows([Entry(parse_path("identifier[0]")), Entry(parse_path("identifier[system=x].value"))]) is None
    # a node written, then gone below
    assert compile_rows([Entry(parse_path("code")), Entry(parse_path("code.text"))]) is None
    # an item reached by position after a selector may have added one (the position depends on the values)
    assert (
        compile_rows([Entry(parse_path("identifier[use=s].value")), Entry(parse_path("identifier[0].value"))]) is None
    )
    # a selector that may find the item another selector made (it has a coding), or an item written as a whole
    mixed = ["category[id=c].coding[system=o].code", "category[coding.system=o].text"]
    assert compile_rows([Entry(parse_path(p)) for p in mixed]) is None
    assert (
        compile_rows([Entry(parse_path("category[id=c]")), Entry(parse_path("category[coding.system=o].text"))]) is None
    )
    # the mixed lists the specs use compile
    assert compile_rows([Entry(parse_path(p)) for p in PATH_SETS[6]]) is not None


def test_ndjson_partition_is_the_ndjson_of_the_folder(tmp_path: Path) -> None:
    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.ndjson import NdjsonWriter
    from converter.fhir.to_fhir import subject_partitions
    from converter.fhir.writer import write_fhir_dir, write_ndjson_partition
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    datasets = records_to_sdtm(simulate(60, seed=5)).datasets
    specs, ct, sdtm_specs = load_fhir_stage()
    whole = write_fhir_dir(datasets, tmp_path / "whole", specs, ct, sdtm_specs, partition=7)
    alone = write_ndjson_partition(datasets, tmp_path / "study", specs, ct, sdtm_specs, levels=("study",))
    assert alone.counts == {"ResearchStudy": 1} and len(alone.made) == 1
    with NdjsonWriter(tmp_path / "parts") as w:  # study level first, then subject partitions, one writer
        study = write_ndjson_partition(datasets, w, specs, ct, sdtm_specs, levels=("study",))
        assert study.made == alone.made
        counts = dict(study.counts)
        for part in subject_partitions(datasets, 11):
            got = write_ndjson_partition(part, w, specs, ct, sdtm_specs, made_elsewhere=study.made, chunk=4)
            assert got.problems == []
            for k, v in got.counts.items():
                counts[k] = counts.get(k, 0) + v
    assert counts == whole.counts
    for f in (tmp_path / "whole" / "ndjson").iterdir():
        assert (tmp_path / "parts" / f.name).read_bytes() == f.read_bytes(), f.name
