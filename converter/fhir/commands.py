"""The FHIR subcommands as plain functions (``converter.cli`` registers them; each returns the exit code).

* ``inoconv fhir SDTM_DIR --out DIR [--strict]`` -> :func:`fhir_command`: 0 written; 2 the input has problems
  (written anyway, problems listed: e.g. SUPP-- rows without a parent row); ``--strict`` failures raise
  ConformanceError (exit 1, nothing written).
* ``inoconv tosdtm FHIR_PATH --out DIR [--partitions N] [--no-validate | --strict]`` -> :func:`tosdtm_command`:
  0 converted; 2 bad input (see :mod:`converter.fhir.fhir_input`; resources that are not valid R4, references to
  subjects not in the input, two resources with one id, a second Patient for one subject, unknown codes): then DIR
  holds no dataset, only ``DIR/tosdtm-problems.csv`` (every problem with file, line or entry and element) and the CLI's
  output-folder ``manifest.json`` listing it. What could not be
  converted is listed resource by resource (``DIR/tosdtm-report.csv``: every input resource with its outcome),
  not counted as bad input. The datasets are Dataset-JSON ``<name>.json`` and, where the XPT v5 rules allow,
  ``<name>.xpt``; with ``--partitions N`` the input is streamed in N partitions of subjects and each dataset is
  written as Parquet parts ``DIR/<NAME>/part-NNNNN.parquet`` (memory follows one partition).
* ``inoconv roundtrip SDTM_DIR`` -> :func:`roundtrip_command`: 0 every mapped variable came back equal; 1
  something mapped came back different (or rows went missing), or a dataset or variable of SDTM_DIR is not
  carried and the FHIR specs do not list it as intentionally not mapped.

Bad user input raises :class:`~converter.errors.InputError` / :class:`~converter.errors.SpecError` (exit 2).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from converter.errors import Problem
from converter.fhir.mapping import load_fhir_stage
from converter.io.csv_out import dict_writer
from converter.io.progress import Tick, no_progress
from converter.text import escape_controls_lines

Echo = Callable[[str], Any]


def _echo(msg: str) -> None:
    print(escape_controls_lines(msg))


def _echo_err(msg: str) -> None:
    print(escape_controls_lines(msg), file=sys.stderr)  # problems quote the user's values and file names


def _problem_lines(problems: Iterable[Problem], limit: int = 50) -> list[str]:
    items = list(problems)
    lines = [f"  {p}" for p in items[:limit]]
    if len(items) > limit:
        lines.append(f"  ... and {len(items) - limit} more")
    return lines


def _exit_for(problems: list[Problem], where: str) -> int:
    """Print the input problems (if any) to stderr; exit code 2 when there are any, else 0."""
    if not problems:
        return 0
    _echo_err(f"{len(problems)} problem(s) {where}:")
    for line in _problem_lines(problems):
        _echo_err(line)
    return 2


def _table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _write_csv(path: Path, rows: Iterable[Mapping[str, str]], fields: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = dict_writer(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)


# --- inoconv fhir ---------------------------------------------------------------------------------------------------
def fhir_command(
    sdtm_dir: Path, out: Path, strict: bool = False, echo: Echo = _echo, progress: Tick = no_progress
) -> int:
    """SDTM folder -> ``OUT/bundles/*.json`` (study.json + one per subject) and ``OUT/ndjson/<Type>.ndjson``.

    ``progress``: ticked per step (read the SDTM folder, write the Bundles and NDJSON)."""
    from converter.deid.mark import MARK_FILE, is_deidentified
    from converter.fhir.provenance import Origin
    from converter.fhir.sdtm_dir import combine_split, read_sdtm_dir
    from converter.fhir.writer import write_fhir_dir
    from converter.io.package_kind import expect_kind

    expect_kind(Path(sdtm_dir), "fhir", ("sdtm",))
    specs, ct, sdtm_specs = load_fhir_stage()
    progress(0, total=2, step="reading the SDTM folder")
    sdtm = read_sdtm_dir(Path(sdtm_dir))
    progress(step="writing Bundles and NDJSON" + (" (--strict: every resource checked)" if strict else ""))
    datasets, combined = combine_split(sdtm, specs.datasets())
    for domain, names in sorted(combined.items()):
        echo(f"{domain}: the split datasets {', '.join(names)} are carried as one domain")
    deid = is_deidentified(Path(sdtm_dir))
    origin = Origin.of(sdtm, Path(sdtm_dir).resolve().name, specs.files, deid)
    mark = Path(sdtm_dir) / MARK_FILE if deid else None
    rep = write_fhir_dir(datasets, Path(out), specs, ct, sdtm_specs, strict=strict, origin=origin, deid_mark=mark)
    progress(step="done")
    if deid:
        echo(f"de-identified input: {MARK_FILE} copied, every resource labelled PSEUDED (pseudonymized)")
    rows = [[t, str(n)] for t, n in sorted(rep.counts.items())]
    echo(_table(rows, ["resource type", "resources"]))
    rate = rep.resources / rep.seconds if rep.seconds else 0.0
    echo(
        f"{rep.resources} resources in {rep.bundles} bundles ({out}/bundles, study.json first) and "
        f"{len(rep.counts)} NDJSON files ({out}/ndjson); {rep.seconds:.1f}s, {rate:,.0f} resources/s"
        + ("; every Bundle valid against the R4 models, references resolved, identifiers unique" if strict else "")
    )
    return _exit_for(rep.problems, "in the SDTM input (the output is written; these are not in it)")


# --- inoconv tosdtm -------------------------------------------------------------------------------------------------
def tosdtm_command(
    fhir_path: Path,
    out: Path,
    echo: Echo = _echo,
    partitions: int = 0,
    validate: bool = True,
    progress: Tick = no_progress,
    strict: bool = False,
) -> int:
    """FHIR (a Bundle/resource JSON file, an NDJSON file, or a folder of them) -> SDTM datasets in ``out``.

    ``partitions`` > 0: streamed in that many partitions of subjects (memory follows one partition), the datasets
    written as Parquet parts ``out/<DS>/part-NNNNN.parquet`` with ``out/parts.json`` (see
    :mod:`converter.fhir.ndjson_stream`); 0 (default): converted whole, written as Dataset-JSON and XPT.
    ``validate``: every resource checked first, by the structure check of :mod:`converter.fhir.structure`
    (``strict``: by the R4B models, about 20x slower); off for trusted input.
    ``progress``: ticked per step (read and convert, write).
    """
    from converter.io.atomic import atomic_dir
    from converter.io.package_kind import expect_kind

    expect_kind(Path(fhir_path), "tosdtm", ("fhir",))
    specs, ct, sdtm_specs = load_fhir_stage()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    progress(0, total=2, step="FHIR -> SDTM" + (f" in {partitions} partitions" if partitions > 0 else ""))
    if partitions > 0:
        from converter.fhir.ndjson_stream import stream_to_parts

        with atomic_dir(out) as tmp:
            sm = stream_to_parts(Path(fhir_path), tmp, specs, ct, sdtm_specs, partitions, validate, strict=strict)
        progress(2, step="done")
        problems, n_problems = sm.first_problems, sm.problems
        summary, reasons, notes = sm.statuses, sm.reasons, sm.notes
        ds_rows = [[n, str(r), f"{sm.files[n]} Parquet part(s) in {n}/"] for n, r in sm.rows.items()]
        rate = sm.resources / sm.seconds if sm.seconds else 0.0
        tail = (
            f"\n{sm.resources} resources in {sm.partitions} partition(s) of subjects; "
            f"{sm.seconds:.1f}s, {rate:,.0f} resources/s"
        )
    else:
        from converter.fhir.sdtm_dir import write_sdtm_dir
        from converter.fhir.to_sdtm import convert_path

        res = convert_path(Path(fhir_path), specs, ct, sdtm_specs, validate=validate, strict=strict)
        progress(step="writing the SDTM datasets")
        with atomic_dir(out) as tmp:  # the folder appears whole, without files of an earlier run
            files, write_notes = ({}, []) if res.problems else write_sdtm_dir(res.datasets, tmp, sdtm_specs)
            if not res.problems:  # bad input: nothing but the problem report
                _write_csv(
                    tmp / "tosdtm-report.csv",
                    (o.as_dict() for o in res.outcomes),
                    ["file", "where", "resourceType", "id", "status", "dataset", "reason"],
                )
            _write_csv(
                tmp / "tosdtm-problems.csv",
                (p.as_dict() for p in res.problems),
                ["file", "record", "field", "value", "rule", "message"],
            )
        progress(step="done")
        problems, n_problems = res.problems, len(res.problems)
        summary = res.summary()
        reasons = {}
        for o in res.outcomes:
            if o.status == "not converted":
                reasons[o.reason] = reasons.get(o.reason, 0) + 1
        notes = [*res.notes, *write_notes]
        ds_rows = [[n, str(len(df)), ", ".join(files.get(n, []))] for n, df in res.datasets.items()]
        tail = ""
    statuses = ["converted", "derived", "not converted", "invalid"]
    rows = [[t, *(str(d.get(s, 0)) for s in statuses)] for t, d in summary.items()]
    echo(_table(rows, ["resource type", *statuses]))
    if not n_problems:  # with problems nothing is written but the problem report
        echo("")
        echo(_table(ds_rows, ["dataset", "rows", "files"]))
    if reasons:
        echo(f"\nnot converted{'' if n_problems else ' (each listed in tosdtm-report.csv)'}:")
        for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            echo(f"  {n:>6}  {r}")
    for note in notes:
        echo(f"note: {note}")
    if tail:
        echo(tail.lstrip("\n"))
    if not validate:
        echo("note: resources not validated against the R4 models (--no-validate)")
    if not n_problems:
        return 0
    echo(f"problem report (every problem; no datasets written): {out / 'tosdtm-problems.csv'}")
    _echo_err(f"{n_problems} problem(s) in the FHIR input; no datasets written, only the problem report "
              "tosdtm-problems.csv (and the folder's manifest.json, its provenance) in the output folder:")  # fmt: skip
    for line in _problem_lines(problems):
        _echo_err(line)
    if n_problems > len(problems):  # streamed: only the first ones are kept in memory
        _echo_err(f"  ... and {n_problems - len(problems)} more")
    return 2


# --- inoconv roundtrip ----------------------------------------------------------------------------------------------
def roundtrip_command(sdtm_dir: Path, echo: Echo = _echo) -> int:
    """SDTM -> FHIR -> SDTM and the comparison table; 1 when any mapped variable came back different."""
    from converter.fhir.roundtrip import roundtrip
    from converter.fhir.sdtm_dir import read_sdtm_dir
    from converter.io.package_kind import expect_kind

    expect_kind(Path(sdtm_dir), "roundtrip", ("sdtm",))
    datasets = read_sdtm_dir(Path(sdtm_dir))
    specs, ct, sdtm_specs = load_fhir_stage()
    rt = roundtrip(datasets, specs, ct, sdtm_specs)
    echo(rt.render())
    if rt.problems:
        _echo_err(f"{len(rt.problems)} problem(s) on the way:")
        for line in _problem_lines(rt.problems):
            _echo_err(line)
    if not rt.ok:
        echo("round trip: NOT lossless (see DIFFERENT, NOT CARRIED and missing rows above)")
        return 1
    echo("round trip: lossless for every mapped variable; what is not carried is listed in mappings/fhir with why")
    return 0
