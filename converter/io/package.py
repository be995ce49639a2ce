"""A submission package: every dataset as XPT v5 and Dataset-JSON v1.1, plus define.xml, checked as a whole.

:func:`write_package` works in three steps, so a package is either complete and consistent or not written:

1. **Check everything first.** Every dataset against the XPT rules (:func:`converter.io.xpt.check_for_xpt`) and the
   Dataset-JSON rules, the specs against what Define-XML needs, datasets without a spec and specs without data;
   define.xml is built in memory and validated against the XSD. All problems of all datasets are collected and
   raised as one :class:`~converter.errors.ConformanceError` before any file is written.
2. **Write into a staging folder** inside ``out_dir`` (same file system): ``<name lower>.xpt``,
   ``<name lower>.json`` (or ``.ndjson``) and ``define.xml``; then **verify** the staged files: define.xml is
   validated again from disk, :func:`converter.io.define.crosscheck_define` compares it with the XPT files read
   back, and every dataset read back from XPT must equal the Dataset-JSON read back and the input frame.
3. **Publish**: each staged file is renamed over its final name (atomic per file), and the staging folder is
   removed. If verification fails, the staging folder is removed and ``out_dir`` is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import ConformanceError
from converter.io.check_memo import file_digest, known, remember
from converter.io.datasetjson import check_for_dataset_json, read_dataset_json, write_dataset_json
from converter.io.define import (
    build_define,
    check_for_define,
    crosscheck_define,
    define_bytes,
    mdv_oid,
    validate_define,
    validate_define_tree,
)
from converter.io.xpt import check_for_xpt, is_char, normalise_char, numeric_values, read_xpt, write_xpt
from converter.spec.model import DatasetSpec, Terminology

DEFINE_NAME = "define.xml"


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    kind: str  # "xpt" | "dataset-json" | "define"
    dataset: str | None
    records: int | None
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "dataset": self.dataset, "records": self.records,
                "bytes": self.size}  # fmt: skip


@dataclass(frozen=True)
class PackageReport:
    out_dir: Path
    files: tuple[WrittenFile, ...]
    define: Path

    @property
    def datasets(self) -> dict[str, int]:
        """Dataset name -> records."""
        return {f.dataset: f.records or 0 for f in self.files if f.kind == "xpt" and f.dataset}

    def as_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "define": str(self.define), "files": [f.as_dict() for f in self.files]}

    def render(self) -> str:
        lines = [f"package in {self.out_dir}:"]
        for f in self.files:
            rec = f"{f.records:>8} records" if f.records is not None else " " * 16
            lines.append(f"  {f.path.name:<20} {f.kind:<13} {rec} {f.size:>12,} bytes")
        return "\n".join(lines)


def dataset_file_names(name: str, json_suffix: str = ".json") -> tuple[str, str]:
    return f"{name.lower()}.xpt", f"{name.lower()}{json_suffix}"


def check_package(
    datasets: Mapping[str, pd.DataFrame],
    specs: Mapping[str, DatasetSpec],
    ct: Terminology,
    *,
    standard: str,
) -> list[str]:
    """Every problem that stops the package, for all datasets at once (empty list: it can be written)."""
    problems: list[str] = []
    for name in sorted(set(datasets) - set(specs)):
        problems.append(f"{name}: data without a spec")
    lowered = [n.lower() for n in datasets]
    for dup in sorted({n for n in lowered if lowered.count(n) > 1}):
        problems.append(f"{dup}: two datasets would be written to the same file name")
    used = [specs[n] for n in specs if n in datasets]
    for spec in used:
        df = datasets[spec.name]
        found = check_for_xpt(df, spec)
        # the XPT rules are the stricter ones; Dataset-JSON adds only temporal ranges (same wording otherwise)
        problems += found or check_for_dataset_json(df, spec)
    problems += check_for_define(used, ct, standard=standard)
    return problems


def _normalised(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The frame as the readers return it (character str/None, numbers float64 without -0.0)."""
    cols: dict[str, pd.Series] = {}
    for var in sorted(spec.variables, key=lambda v: v.order):
        col = df[var.name].reset_index(drop=True)
        if is_char(var):
            cols[var.name] = normalise_char(col)
        else:
            values = numeric_values(col)
            arr = np.zeros(0) if values is None else values + 0.0
            cols[var.name] = pd.Series(arr, dtype="float64", name=var.name)
    return pd.DataFrame(cols, index=pd.RangeIndex(len(df)))


def _same(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    except AssertionError as exc:
        return " ".join(str(exc).split())[:400]
    return None


def write_package(
    out_dir: Path | str,
    datasets: Mapping[str, pd.DataFrame],
    specs: Mapping[str, DatasetSpec],
    ct: Terminology,
    *,
    standard: str | None = None,
    study_oid: str,
    study_name: str,
    protocol_name: str,
    study_description: str | None = None,
    context: str = "Submission",
    acrf_href: str | None = None,
    originator: str | None = None,
    ndjson: bool = False,
    created: str | None = None,
    verify: bool = True,
    read_back: Mapping[str, pd.DataFrame] | None = None,
) -> PackageReport:
    """Write ``datasets`` (name -> frame, each in the data contract of its spec) as a package in ``out_dir``.

    ``read_back``: :func:`as_read_back` of these datasets and specs, where the caller made it already (the
    verification compares the files read back with it instead of making it again).

    ``standard`` is the implementation guide of define.xml (default: the first spec's). The Dataset-JSON files
    reference ``define.xml`` and carry its study and metadata-version OIDs. Raises ConformanceError listing every
    problem; in that case nothing in ``out_dir`` is changed.
    """
    out = Path(out_dir)
    order = [n for n in specs if n in datasets] + [n for n in datasets if n not in specs]
    if standard is None:
        standard = next((specs[n].standard for n in order if n in specs), "SDTMIG 3.4")
    problems = check_package(datasets, specs, ct, standard=standard)
    if problems:
        raise ConformanceError(problems)
    used = [specs[n] for n in order]
    json_suffix = ".ndjson" if ndjson else ".json"
    files = {n: dataset_file_names(n, json_suffix) for n in order}
    mdv = mdv_oid(study_oid, standard)
    tree = build_define(
        used, ct, study_oid=study_oid, study_name=study_name, protocol_name=protocol_name, standard=standard,
        context=context, dataset_files={n: f[0] for n, f in files.items()}, datasets=dict(datasets),
        study_description=study_description, acrf_href=acrf_href, originator=originator, created=created,
        metadata_version_oid=mdv,
    )  # fmt: skip
    errors = validate_define_tree(tree)
    if errors:
        raise ConformanceError([f"define.xml would not validate: {e}" for e in errors])

    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".package.", suffix=".tmp", dir=out))
    try:
        staged: list[tuple[Path, str, str | None, int | None]] = []
        for spec in used:
            df = datasets[spec.name]
            xpt_name, json_name = files[spec.name]
            write_xpt(df, spec, staging / xpt_name, checked=True)  # check_package ran both checks above
            write_dataset_json(
                df, spec, staging / json_name, study_oid=study_oid, metadata_version_oid=mdv,
                metadata_ref=DEFINE_NAME, originator=originator, created=created, checked=True,
            )  # fmt: skip
            staged += [(staging / xpt_name, "xpt", spec.name, len(df)),
                       (staging / json_name, "dataset-json", spec.name, len(df))]  # fmt: skip
        (staging / DEFINE_NAME).write_bytes(define_bytes(tree))
        staged.append((staging / DEFINE_NAME, "define", None, None))
        from converter.io.define_stylesheet import write_define_view

        view = write_define_view(staging / DEFINE_NAME)  # define2-1.xsl beside it, and define.html from disk
        staged.append((view.stylesheet, "stylesheet", None, None))
        if view.html is not None:
            staged.append((view.html, "define-html", None, None))
        if verify:
            problems = _verify(staging, used, datasets, files, read_back or {})
            if problems:
                raise ConformanceError([f"package failed verification, nothing written: {p}" for p in problems])
        written: list[WrittenFile] = []
        for path, kind, ds, rows in staged:
            final = out / path.name
            size = path.stat().st_size
            os.replace(path, final)
            written.append(WrittenFile(final, kind, ds, rows, size))
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
    return PackageReport(out_dir=out, files=tuple(written), define=out / DEFINE_NAME)


def _verify(
    staging: Path,
    used: list[DatasetSpec],
    datasets: Mapping[str, pd.DataFrame],
    files: Mapping[str, tuple[str, str]],
    read_back: Mapping[str, pd.DataFrame],
) -> list[str]:
    problems = validate_define(staging / DEFINE_NAME)
    back: dict[str, tuple[pd.DataFrame, DatasetSpec]] = {}
    for spec in used:
        xpt_name, json_name = files[spec.name]
        xdf, _ = read_xpt(staging / xpt_name)
        jdf, _ = read_dataset_json(staging / json_name)
        back[spec.name] = (xdf, spec)
        if (diff := _same(xdf, jdf)) is not None:
            problems.append(f"{spec.name}: {xpt_name} and {json_name} hold different data: {diff}")
        else:
            note_same_frames(staging / xpt_name, staging / json_name)
        expected = read_back.get(spec.name)
        if expected is None:
            expected = _normalised(datasets[spec.name], spec)
        if (diff := _same(expected, xdf)) is not None:
            problems.append(f"{spec.name}: {xpt_name} read back differs from the input: {diff}")
    sources = {spec.name: staging / files[spec.name][0] for spec in used}  # back holds each XPT as read
    problems += crosscheck_define(staging / DEFINE_NAME, back, sources)
    return problems


def _same_frames_key(xpt: Path, other: Path) -> tuple[object, ...] | None:
    dx, do = file_digest(xpt), file_digest(other)
    if dx is None or do is None:
        return None
    return ("same-frames", xpt.suffix.lower(), dx, other.suffix.lower(), do)


def note_same_frames(xpt: Path, other: Path) -> None:
    """Remember for this process that the frames read from ``xpt`` and from ``other`` (Dataset-JSON) by their
    readers are exactly equal (:func:`pandas.testing.assert_frame_equal`, ``check_exact``): same columns, dtypes,
    rows and values, missing where missing. Keyed on both files' bytes (:mod:`converter.io.check_memo`)."""
    key = _same_frames_key(xpt, other)
    if key is not None:
        remember(key, ())


def known_same_frames(xpt: Path, other: Path) -> bool:
    """:func:`note_same_frames` was said of these two files' present bytes in this process."""
    key = _same_frames_key(xpt, other)
    return key is not None and known(key)


_NOT_DATA = {"define", "manifest"}  # define.xml beside; manifest.json: the output folder's provenance


def read_package(folder: Path, specs: Mapping[str, DatasetSpec] | None = None) -> dict[str, pd.DataFrame]:
    """Every dataset of a package folder (``*.xpt``; ``*.json``/``*.ndjson`` Dataset-JSON when there is no XPT),
    in the data contract: integer variables of a known spec as Int64."""
    if not folder.is_dir():
        raise FileNotFoundError(str(folder))
    out: dict[str, pd.DataFrame] = {}
    for path in sorted(folder.glob("*.xpt")):
        df, meta = read_xpt(path)
        out[(meta.name or path.stem).upper()] = df
    if not out:
        for path in sorted([*folder.glob("*.json"), *folder.glob("*.ndjson")]):
            if path.stem.lower() in _NOT_DATA:
                continue
            df, meta = read_dataset_json(path)
            out[(meta.name or path.stem).upper()] = df
    if not out:
        raise FileNotFoundError(f"{folder}: no datasets (*.xpt or Dataset-JSON)")
    return in_contract(out, specs)


def in_contract(frames: dict[str, pd.DataFrame], specs: Mapping[str, DatasetSpec] | None) -> dict[str, pd.DataFrame]:
    """``frames`` (name -> frame as the XPT reader gives it) in the data contract, changed in place and returned:
    the integer variables of a known spec as Int64 (what :func:`read_package` gives)."""
    for name, df in frames.items():
        spec = (specs or {}).get(name)
        if spec is None:
            continue
        for var in spec.variables:
            if var.type == "integer" and var.name in df.columns:
                df[var.name] = pd.to_numeric(df[var.name], errors="coerce").round().astype("Int64")
    return frames


def as_read_back(datasets: Mapping[str, pd.DataFrame], specs: Mapping[str, DatasetSpec]) -> dict[str, pd.DataFrame]:
    """The frames :func:`read_package` reads from the XPT files :func:`write_package` writes for ``datasets``, before
    :func:`in_contract`, in the same order (by file name): each frame as the XPT reader returns it. Its
    verification checks exactly this equality (:func:`_verify`), so a package that was written gives these frames
    back; ``inoconv run`` hands them to the next stage while the package is still being written."""
    names = sorted((n for n in datasets if n in specs), key=lambda n: dataset_file_names(n)[0])
    return {n: _normalised(datasets[n], specs[n]) for n in names}
