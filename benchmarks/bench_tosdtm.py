"""FHIR NDJSON -> SDTM: the project's reader (plain JSON through orjson, the specs in reverse) against the parse
floor (orjson.loads of the same lines, the parsed resources kept), and the fast structure check against the
fhir.resources R4B models (what ``--strict`` runs), on the same NDJSON in the same run, in CPU seconds (the machine
is shared: wall time is noisy); and the peak memory of converting whole vs streamed in partitions of subjects.

    python -m benchmarks.bench_tosdtm [N_SUBJECTS] [--models-resources K]
    python -m benchmarks.bench_tosdtm --memory [N_SUBJECTS ...] [--per-partition S]
    python -m benchmarks.bench_tosdtm --columnar [N_SUBJECTS] [--repeat R] [--ndjson DIR]

The input is what ``inoconv fhir`` writes for a simulated cohort. ``convert_path(..., validate=False)`` is
``inoconv tosdtm --no-validate``; ``validate=True`` is the default ``inoconv tosdtm`` (the structure check of
:mod:`converter.fhir.structure`, then the conversion); the models' rate is measured on K resources (default
20,000) with ``<R4B model>.model_validate_json(line)``.

``--memory`` (default sizes 2,000 and 10,000 subjects): each conversion runs in its own process, so its peak RSS
(``getrusage``) is its own: whole (``convert_path`` + the Dataset-JSON/XPT package, what ``inoconv tosdtm``
does) vs streamed (``stream_to_parts``: ``inoconv tosdtm --partitions N``, N = subjects / S, S default 500, Parquet
parts), both without R4 model validation (it costs time, not memory). CPU seconds are quoted besides wall time:
the machine is shared.

``--columnar`` (issue 19, third pass): the prototype of a compiled columnar reader for the largest source
(Observation <- LB, every Observation line) against what ``convert_path`` does for it (``orjson.loads`` of each line,
then ``PathSet.get_all`` over the source's element paths and their fallbacks, transposed). Columnar: pyarrow's
``read_json`` and polars' ``read_ndjson`` with an explicit schema of only the elements those paths read (dates as
strings), each path as one polars expression (``struct.field``, ``list.get``, ``list.eval`` + ``filter`` for a
``[key=value]`` selector; the ``_name`` fallbacks and dotted selectors are left out, which favours the columnar
side), then the columns as Python lists (what the inverse transforms and the assembly take). R interleaved rounds
in one process, CPU seconds (``getrusage``: all threads), polars and pyarrow single-threaded.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import peak_rss_mib, run_child, size_and_repeat, table


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def child(args: list[str]) -> None:
    """One measured step in its own process; prints one JSON line."""
    mode, folder = args[0], Path(args[1])
    from converter.fhir.mapping import load_fhir_stage

    specs, ct, sdtm_specs = load_fhir_stage()
    base = peak_rss_mib()
    t0, c0 = time.perf_counter(), _cpu()
    result: dict[str, Any] = {"mode": mode}
    if mode == "make":
        from converter.fhir.writer import write_fhir_dir
        from converter.records.simulate import simulate
        from converter.sdtm.pipeline import records_to_sdtm

        sdtm = records_to_sdtm(simulate(int(args[2]), seed=9))
        rep = write_fhir_dir(sdtm.datasets, folder, specs, ct, sdtm_specs)
        result["resources"] = rep.resources
        result["ndjson_mib"] = round(sum(f.stat().st_size for f in (folder / "ndjson").glob("*.ndjson")) / 2**20, 1)
    elif mode == "whole":
        from converter.fhir.sdtm_dir import write_sdtm_dir
        from converter.fhir.to_sdtm import convert_path

        res = convert_path(folder / "ndjson", specs, ct, sdtm_specs, validate=False)
        write_sdtm_dir(res.datasets, folder / "whole-out", sdtm_specs)
        result["rows"] = sum(len(df) for df in res.datasets.values())
    else:
        from converter.fhir.ndjson_stream import stream_to_parts

        sm = stream_to_parts(folder / "ndjson", folder / "stream-out", specs, ct, sdtm_specs, int(args[2]), False)
        result["rows"] = sum(sm.rows.values())
        result["partitions"] = sm.partitions
    result.update(
        seconds=round(time.perf_counter() - t0, 1), cpu_s=round(_cpu() - c0, 1),
        base_rss_mib=base, peak_rss_mib=peak_rss_mib(),
    )  # fmt: skip
    print(json.dumps(result))


def memory(args: list[str]) -> None:
    per = 500
    if "--per-partition" in args:
        i = args.index("--per-partition")
        per = int(args[i + 1])
        del args[i : i + 2]
    sizes = [int(a) for a in args] or [2_000, 10_000]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            made = run_child("benchmarks.bench_tosdtm", "--child", "make", tmp, str(n))
            parts = max(1, n // per)
            for mode in ("whole", "stream"):
                r = run_child("benchmarks.bench_tosdtm", "--child", mode, tmp, str(parts))
                rows.append({
                    "subjects": n, "resources": made["resources"], "NDJSON MiB": made["ndjson_mib"],
                    "path": "whole (convert_path + package)" if mode == "whole" else f"streamed, {parts} partitions",
                    "SDTM rows": r["rows"], "wall s": r["seconds"], "CPU s": r["cpu_s"],
                    "resources/CPU s": f"{made['resources'] / max(r['cpu_s'], 1e-9):,.0f}",
                    "RSS after imports MiB": r["base_rss_mib"], "peak RSS MiB": r["peak_rss_mib"],
                })  # fmt: skip
                print(json.dumps(rows[-1]), file=sys.stderr)
    cols = ["subjects", "resources", "NDJSON MiB", "path", "SDTM rows", "wall s", "CPU s", "resources/CPU s",
            "RSS after imports MiB", "peak RSS MiB"]  # fmt: skip
    print(table(rows, cols))


def _observation_schema() -> Any:
    """The explicit arrow schema of what the Observation <- LB paths read (written by hand for the prototype)."""
    import pyarrow as pa

    s, b, d = pa.string(), pa.bool_(), pa.float64()

    def st(**k: Any) -> Any:
        return pa.struct(list(k.items()))

    coding = pa.list_(st(system=s, code=s, display=s))
    cc = st(coding=coding, text=s)
    leaf = dict(url=s, valueString=s, valueDecimal=d, valueInteger=pa.int64(), valueDateTime=s, valueCode=s)
    ext = pa.list_(st(**leaf, valueBoolean=b, valueReference=st(reference=s), valueCodeableConcept=cc,
                      extension=pa.list_(st(**leaf))))  # fmt: skip
    qty = st(value=d, unit=s, system=s, code=s)
    return pa.schema(dict(
        identifier=pa.list_(st(system=s, value=s)), category=pa.list_(st(id=s, text=s, coding=coding)),
        extension=ext, subject=st(reference=s), status=s, dataAbsentReason=st(text=s),
        code=st(coding=coding, extension=pa.list_(st(url=s, valueCode=s)), text=s),
        valueQuantity=qty, valueCodeableConcept=cc, valueString=s,
        referenceRange=pa.list_(st(low=st(value=d), high=st(value=d), text=s)),
        component=pa.list_(st(valueQuantity=qty)), interpretation=pa.list_(cc), specimen=st(display=s),
        method=cc, bodySite=cc, effectiveDateTime=s, effectivePeriod=st(start=s),
    ))  # fmt: skip


def _path_expr(path: Any) -> Any:
    """One polars expression for a spec path, or None (a ``_name`` step, a dotted selector key)."""
    import polars as pl

    e: Any = None
    for step in path.steps:
        if step.name.startswith("_"):
            return None
        e = pl.col(step.name) if e is None else e.struct.field(step.name)
        if step.index is not None:
            e = e.list.get(step.index, null_on_oob=True)
        elif step.select:
            if len(step.select) != 1 or "." in step.select[0][0]:
                return None
            key, value = step.select[0]
            e = e.list.eval(pl.element().filter(pl.element().struct.field(key) == value)).list.first()
    return e


def columnar(args: list[str]) -> None:
    folder = None
    if "--ndjson" in args:
        i = args.index("--ndjson")
        folder = Path(args[i + 1])
        del args[i : i + 2]
    n, repeat = size_and_repeat(args, 2000, 3)
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    import orjson
    import polars as pl
    import pyarrow.json as pj

    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.paths import PathSet

    specs, ct, sdtm_specs = load_fhir_stage()
    with tempfile.TemporaryDirectory() as tmp:
        if folder is None:
            from converter.fhir.writer import write_fhir_dir
            from converter.records.simulate import simulate
            from converter.sdtm.pipeline import records_to_sdtm

            folder = Path(tmp) / "ndjson"
            write_fhir_dir(records_to_sdtm(simulate(n, seed=9)).datasets, Path(tmp), specs, ct, sdtm_specs)
        src = folder / "Observation.ndjson"
        lines = [ln for ln in src.read_bytes().splitlines() if ln.strip()]
        source = specs.resources["Observation"][0]
        paths = [
            p for e in source.elements if e.to_sdtm and e.var is not None for p in (e.path, e.path.fallback() or e.path)
        ]
        schema = _observation_schema()
        pset = PathSet(paths)
        opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        ropts = pj.ReadOptions(use_threads=False, block_size=1 << 24)
        frame = pl.from_arrow(pj.read_json(src, read_options=ropts, parse_options=opts))
        exprs = []
        for k, p in enumerate(paths):
            e = _path_expr(p)
            if e is not None:
                with contextlib.suppress(pl.exceptions.PolarsError):  # an element outside the schema
                    frame.head(2).select(e)
                    exprs.append(e.alias(f"c{k}"))
        best: dict[str, float] = {}
        pl_schema = pl.from_arrow(schema.empty_table()).schema
        got: dict[str, Any] = {}
        steps: list[tuple[str, Any]] = [
            ("orjson.loads of each line", lambda: [orjson.loads(ln) for ln in lines]),
            ("PathSet walk, transposed", lambda: list(zip(*[pset.get_all(x) for x in got["orjson"]], strict=True))),
            ("pyarrow read_json, explicit schema", lambda: pj.read_json(src, read_options=ropts, parse_options=opts)),
            ("polars read_ndjson, same schema", lambda: pl.read_ndjson(src, schema=pl_schema)),
            ("polars expressions, one per path", lambda: frame.select(exprs)),
            ("columns to Python lists", lambda: [c.to_list() for c in got["polars"].get_columns()]),
        ]
        gc.disable()
        for _ in range(repeat):
            for name, fn in steps:
                c0 = _cpu()
                out = fn()
                best[name] = min(best.get(name, float("inf")), _cpu() - c0)
                got[name.split()[0].split(".")[0]] = out
                del out
            got.clear()
        gc.enable()
    walk = best["orjson.loads of each line"] + best["PathSet walk, transposed"]
    col = best["pyarrow read_json, explicit schema"] + best["polars expressions, one per path"]
    col += best["columns to Python lists"]
    rows = [{"step": k, "CPU s (best)": f"{v:.2f}", "lines/CPU s": f"{len(lines) / v:,.0f}"} for k, v in best.items()]
    rows.append(
        {"step": "today: parse + walk", "CPU s (best)": f"{walk:.2f}", "lines/CPU s": f"{len(lines) / walk:,.0f}"}
    )
    rows.append({"step": "columnar: pyarrow + expressions + lists", "CPU s (best)": f"{col:.2f}",
                 "lines/CPU s": f"{len(lines) / col:,.0f}"})  # fmt: skip
    print(f"Observation <- LB: {len(lines):,} lines, {len(paths)} paths, {len(exprs)} as expressions; best of {repeat}")
    print(table(rows, ["step", "CPU s (best)", "lines/CPU s"]))
    print(f"columnar / today: {col / walk:.2f}x the CPU")


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--columnar":
        columnar(args[1:])
        return
    if args and args[0] == "--child":
        child(args[1:])
        return
    if args and args[0] == "--memory":
        memory(args[1:])
        return
    k = 20_000
    if "--models-resources" in args:
        i = args.index("--models-resources")
        k = int(args[i + 1])
        del args[i : i + 2]
    n = int(args[0]) if args else 2_000
    from fhir.resources.R4B import get_fhir_model_class

    from converter.fhir.mapping import load_fhir_stage
    from converter.fhir.structure import check_resources
    from converter.fhir.to_sdtm import convert_path
    from converter.fhir.writer import write_fhir_dir
    from converter.records.simulate import simulate
    from converter.sdtm.pipeline import records_to_sdtm

    specs, ct, sdtm_specs = load_fhir_stage()
    sdtm = records_to_sdtm(simulate(n, seed=9))
    with tempfile.TemporaryDirectory() as tmp:
        fhir_dir = Path(tmp) / "fhir"
        rep = write_fhir_dir(sdtm.datasets, fhir_dir, specs, ct, sdtm_specs)
        nd = fhir_dir / "ndjson"
        resources = rep.resources
        del sdtm
        lines = [ln for f in sorted(nd.glob("*.ndjson")) for ln in f.read_bytes().splitlines() if ln.strip()]
        import orjson

        gc.disable()  # as inoconv reads: the parsed resources kept, no collection rescanning them
        c0 = _cpu()
        parsed = [orjson.loads(ln) for ln in lines]
        t_parse = _cpu() - c0
        c0 = _cpu()
        check_resources(parsed)
        t_check = _cpu() - c0
        del parsed
        gc.enable()
        gc.collect()

        c0 = _cpu()
        fast = convert_path(nd, specs, ct, sdtm_specs, validate=False)
        t_fast = _cpu() - c0
        rows_back = sum(len(d) for d in fast.datasets.values())
        del fast
        c0 = _cpu()
        checked = convert_path(nd, specs, ct, sdtm_specs, validate=True)
        t_valid = _cpu() - c0
        assert not checked.problems, checked.problems[:3]
        del checked

        sample = lines[:: max(1, len(lines) // k)][:k]
        c0 = _cpu()
        for ln in sample:
            rtype = orjson.loads(ln)["resourceType"]
            get_fhir_model_class(rtype).model_validate_json(ln)
        t_models = _cpu() - c0
    rate_parse = resources / t_parse

    def row(path: str, count: int, cpu: float) -> dict[str, Any]:
        rate = count / cpu
        return {"path": path, "resources": f"{count:,}", "CPU s": f"{cpu:.1f}", "resources/CPU s": f"{rate:,.0f}",
                "vs orjson parse": f"{rate / rate_parse:.2f}x"}  # fmt: skip

    rows = [
        row("orjson.loads of every line, kept (the parse floor)", resources, t_parse),
        row("inoconv tosdtm --no-validate (convert_path, validate=False)", resources, t_fast),
        row("inoconv tosdtm (default: the structure check, then convert)", resources, t_valid),
        row("structure check alone (check_resources on the parsed resources)", resources, t_check),
        row("inoconv tosdtm --strict's check: R4B model_validate_json (sample)", len(sample), t_models),
    ]
    print(f"FHIR NDJSON -> SDTM, {n} subjects, {resources} resources; SDTM rows back: {rows_back}; "
          f"peak RSS {peak_rss_mib()} MiB")  # fmt: skip
    print(table(rows, ["path", "resources", "CPU s", "resources/CPU s", "vs orjson parse"]))


if __name__ == "__main__":
    main()
