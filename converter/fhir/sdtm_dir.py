"""SDTM folders at the edges of the FHIR stage: read ``*.xpt`` (Dataset-JSON where no XPT), write datasets.

Reading goes through :mod:`converter.io.xpt` / :mod:`converter.io.datasetjson` (both give the data contract:
character ``str``/``None``, numbers float64). Writing (``inoconv tosdtm``) gives each dataset as Dataset-JSON and,
when the XPT v5 rules allow it, as XPT; datasets or variables without an SDTM spec get a minimal one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import InputError, Problem, problem
from converter.io.csv_out import write_frame
from converter.spec.model import DatasetSpec, VariableSpec

_DATASET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,7}$")


#: JSON files of an SDTM folder that are not datasets: the output folder's manifest (converter.io) and the
#: de-identification mark ``inoconv deid`` writes (converter.deid.mark.MARK_FILE)
_NOT_DATASETS = frozenset({"manifest.json", "deid.json"})


def read_sdtm_dir(folder: Path) -> dict[str, pd.DataFrame]:
    """Every dataset of an SDTM folder: its ``.xpt``, else its Dataset-JSON ``.json``/``.ndjson`` (a dataset that
    comes only as Dataset-JSON, as ``inoconv tosdtm`` leaves one the XPT v5 rules refuse, is read, not passed over).
    A file that cannot be read is a problem (InputError, all of them together)."""
    from converter.io.datasetjson import read_dataset_json
    from converter.io.xpt import read_xpt

    if not folder.is_dir():
        raise InputError(problem(str(folder), "", "", "", "input", "not a folder (give the SDTM output folder)"))
    out: dict[str, pd.DataFrame] = {}
    probs: list[Problem] = []
    xpts = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xpt")
    for p in xpts:
        try:
            df, meta = read_xpt(p)
        except Exception as exc:  # a damaged file: report it with the others
            probs.append(problem(p.name, "", "", "", "xpt", f"cannot read: {exc}"))
            continue
        out[(meta.name or p.stem).upper()] = df
    have = {p.stem.upper() for p in xpts}
    found = (x for x in folder.iterdir() if x.suffix.lower() in (".json", ".ndjson") and x.stem.upper() not in have)
    for p in sorted(x for x in found if x.name not in _NOT_DATASETS):
        try:
            df, meta = read_dataset_json(p)
        except Exception as exc:
            probs.append(problem(p.name, "", "", "", "dataset-json", f"cannot read as Dataset-JSON: {exc}"))
            continue
        out[(meta.name or p.stem).upper()] = df
    for p in sorted(folder.glob("*.csv")):  # a dataset only as CSV (tosdtm's fallback): not silently passed over
        if _DATASET_NAME.match(p.stem) and p.stem.upper() not in out:
            msg = "a dataset as CSV only: not read (give it as XPT or Dataset-JSON)"
            probs.append(problem(p.name, "", "", "", "input", msg))
    if probs:
        raise InputError(probs, context=str(folder))
    if not out:
        raise InputError(problem(str(folder), "", "", "", "input", "no SDTM datasets (*.xpt or Dataset-JSON *.json)"))
    return out


def combine_split(
    datasets: Mapping[str, pd.DataFrame], carried: set[str]
) -> tuple[dict[str, pd.DataFrame], dict[str, list[str]]]:
    """Split datasets (SDTMIG 4.1.7: LBCH, LBHE, QSCO ..., and their SUPPLBCH ...) put together as their domain.

    A dataset the FHIR specs do not carry by its own name whose rows are all of one domain (DOMAIN, or RDOMAIN for
    a SUPP--) that the specs do carry, and whose name is that domain's followed by up to four characters, joins
    that domain: (the datasets, {domain: [the split datasets it holds]}). The rows keep their order, split by split.
    FHIR -> SDTM gives the domain back as one dataset."""
    groups: dict[str, list[str]] = {}
    for name, df in datasets.items():
        if name in carried:
            continue
        supp = name.startswith("SUPP")
        col = "RDOMAIN" if supp else "DOMAIN"
        if col not in df.columns or not len(df):
            continue
        values = set(df[col].dropna().astype(str).unique())
        if len(values) != 1:
            continue
        domain = ("SUPP" if supp else "") + values.pop()
        if domain != name and domain in carried and name.startswith(domain) and len(name) <= len(domain) + 4:
            groups.setdefault(domain, []).append(name)
    if not groups:
        return dict(datasets), {}
    out = {k: v for k, v in datasets.items() if not any(k in g for g in groups.values())}
    for domain, names in groups.items():
        parts = ([datasets[domain]] if domain in datasets else []) + [datasets[n] for n in sorted(names)]
        out[domain] = pd.concat(parts, ignore_index=True)
    return out, {d: sorted(n) for d, n in groups.items()}


def _sized(var: VariableSpec, col: pd.Series) -> VariableSpec:
    """``var`` with its length left to the data; an integer the data does not hold (another study's VISITNUM 3.5)
    becomes a float, as the IG's Num allows."""
    if var.type == "integer":
        values = pd.to_numeric(col, errors="coerce").dropna().to_numpy(dtype=float)
        if len(values) and not bool(np.all(np.floor(values) == values)):
            return dataclasses.replace(var, length=None, type="float")
    return dataclasses.replace(var, length=None)


def spec_for(name: str, df: pd.DataFrame, sdtm_specs: Mapping[str, DatasetSpec]) -> DatasetSpec:
    """The spec a dataset is written with, sized by its data: the trial's SDTM spec restricted to the columns it
    declares, the SDTMIG 3.4 metadata (names, labels, types, order) for every other column and for a dataset the
    trial specs do not describe (:func:`converter.spec.standards.ig_spec`). Character lengths are never the
    trial's: each is the longest value (FDA: no longer than needed), so another study's data (STUDYID
    "CDISCPILOT01") fits."""
    from converter.spec.standards import ig_spec

    standard = ig_spec(name, df)
    known = sdtm_specs.get(name)
    if known is None:
        return standard
    have = {v.name: _sized(v, df[v.name]) for v in known.variables if v.name in df.columns}
    variables = list(have.values())
    top = max((v.order for v in variables), default=0)
    extra = [v for v in standard.ordered if v.name not in have]
    for i, v in enumerate(extra):
        variables.append(dataclasses.replace(v, order=top + 1 + i))
    keys = tuple(k for k in known.keys if k in df.columns)
    return dataclasses.replace(known, variables=tuple(variables), keys=keys, sources=(), depends=())


def write_sdtm_dir(
    datasets: Mapping[str, pd.DataFrame], out: Path, sdtm_specs: Mapping[str, DatasetSpec]
) -> tuple[dict[str, list[str]], list[str]]:
    """Write each dataset (``<name>.json`` Dataset-JSON, ``<name>.xpt`` when XPT allows); (files, notes)."""
    from converter.io.datasetjson import check_for_dataset_json, write_dataset_json
    from converter.io.xpt import check_for_xpt, prepare_for_xpt, write_xpt

    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    notes: list[str] = []
    for name, df in datasets.items():
        spec = spec_for(name, df, sdtm_specs)
        frame = df[spec.column_names].reset_index(drop=True)
        written: list[str] = []
        problems = check_for_dataset_json(frame, spec)
        if problems:
            notes.append(f"{name}: not written as Dataset-JSON: {problems[0]}")
            write_frame(frame, out / f"{name.lower()}.csv")
            written.append(f"{name.lower()}.csv")
        else:
            write_dataset_json(frame, spec, out / f"{name.lower()}.json")
            written.append(f"{name.lower()}.json")
        xframe = prepare_for_xpt(frame, spec)
        xproblems = check_for_xpt(xframe, spec)
        if xproblems:
            more = f" (and {len(xproblems) - 1} more)" if len(xproblems) > 1 else ""
            notes.append(f"{name}: no XPT (the XPT v5 rules are not met: {xproblems[0]}{more})")
        else:
            write_xpt(xframe, spec, out / f"{name.lower()}.xpt")
            written.append(f"{name.lower()}.xpt")
        files[name] = written
    return files, notes


# --- partitioned output (``inoconv tosdtm --partitions``): one Parquet file per dataset and partition -------------
def write_part(df: pd.DataFrame, out: Path, name: str, part: int) -> Path:
    """``out/<NAME>/part-<part>.parquet``: the rows of one partition of a dataset (columns as converted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = out / name.upper()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{part:05d}.parquet"
    pq.write_table(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False), path)
    return path


def read_parts(folder: Path, sdtm_specs: Mapping[str, DatasetSpec] | None = None) -> dict[str, pd.DataFrame]:
    """Every dataset of a partitioned output, its parts concatenated.

    With the ``parts.json`` that ``inoconv tosdtm --partitions`` writes, the columns (a part lacks those that are
    empty in it), their order and types are the whole conversion's; without it, the columns of all parts in
    spec order. Rows come part by part: sort by the dataset's keys for the order of the whole conversion.
    """
    import orjson

    folder = Path(folder)
    manifest_path = folder / "parts.json"
    manifest = orjson.loads(manifest_path.read_bytes()).get("datasets", {}) if manifest_path.exists() else {}
    out: dict[str, pd.DataFrame] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        parts = sorted(sub.glob("part-*.parquet"))
        if not parts:
            continue
        frames = [pd.read_parquet(p) for p in parts]
        columns = manifest.get(sub.name, {}).get("columns")
        if columns:
            frames = [_with_columns(f, columns) for f in frames]
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if columns:
            for name, dtype in columns.items():
                if str(df[name].dtype) != dtype:
                    df[name] = df[name].astype(dtype)
            out[sub.name] = df
        else:
            spec = spec_for(sub.name, df, sdtm_specs or {})
            out[sub.name] = df[[c for c in spec.column_names if c in df.columns]]
    return out


def _with_columns(df: pd.DataFrame, columns: Mapping[str, Any]) -> pd.DataFrame:
    """``df`` with exactly ``columns`` (name -> dtype) in that order; those it lacks all null."""
    data: dict[str, pd.Series] = {}
    for name, dtype in columns.items():
        if name in df.columns:
            data[name] = df[name]
        else:
            data[name] = pd.Series([None] * len(df), dtype=object).astype(dtype)
    return pd.DataFrame(data, index=pd.RangeIndex(len(df)))
