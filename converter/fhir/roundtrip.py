"""SDTM -> FHIR -> SDTM, compared dataset by dataset, variable by variable, row by row.

The resources go through real serialisation (the Bundle JSON bytes ``inoconv fhir`` writes, or NDJSON) and back
through :mod:`converter.fhir.to_sdtm`. Rows are matched on the dataset keys; a mapped variable matches when
every matched row has the same value: text exactly (dates with their original precision), numbers by value,
codes as the original submission values.

Every dataset and every variable of the source is reported as one of

* **carried**: mapped both ways (or implied by the resource, as DOMAIN), and compared value by value;
* **derived again**: not mapped, and derived again on the way back (``not_mapped ... rederive``), compared;
* **not carried, listed**: the FHIR specs list it as intentionally not mapped (a variable in a source's
  ``not_mapped``, a dataset in ``_common.yaml`` ``not_mapped_datasets``), shown with the reason;
* **NOT CARRIED**: nothing carries it and no spec says why: the round trip fails (exit 1), as it does for a
  value that came back different or a row that went missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from converter.errors import Problem
from converter.fhir.bundles import iter_bundles
from converter.fhir.fhir_input import read_input
from converter.fhir.located import FromFhir, Located
from converter.fhir.mapping import FhirSpecs, coverage, load_fhir_stage, rederivations
from converter.fhir.ndjson import ndjson_lines
from converter.fhir.sdtm_dir import combine_split, read_sdtm_dir
from converter.fhir.to_fhir import column_values, sdtm_to_fhir, with_columns
from converter.fhir.to_sdtm import fhir_to_sdtm, parse_items
from converter.fhir.transforms import as_text
from converter.gc_pause import no_gc
from converter.spec.model import DatasetSpec, Terminology

_DEFAULT_KEYS = {
    "DM": ["USUBJID"],
    "TS": ["TSPARMCD", "TSSEQ"],
    "TA": ["ARMCD", "TAETORD"],
    "TE": ["ETCD"],
    "TI": ["IETESTCD", "TIVERS"],
    "TV": ["VISITNUM", "ARMCD"],
    "SV": ["USUBJID", "VISITNUM"],
    "RELREC": ["RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELID"],
}


@dataclass
class VarResult:
    dataset: str
    variable: str
    status: str  # match | rederived | implied | not mapped (listed) | not in spec (unlisted: a failure)
    compared: int = 0
    differences: int = 0
    example: str = ""
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.unlisted or (self.differences > 0 and self.status in ("match", "rederived", "implied"))

    @property
    def unlisted(self) -> bool:
        """Not carried, and no FHIR spec lists it as intentionally not mapped."""
        return self.status == "not in spec"

    @property
    def label(self) -> str:
        if self.differences > 0 and self.status in ("match", "rederived", "implied"):
            return "DIFFERENT"
        return _LABELS.get(self.status, self.status)


_LABELS = {
    "match": "carried",
    "implied": "carried (implied)",
    "rederived": "derived again",
    "not mapped": "not carried (listed)",
    "not in spec": "NOT CARRIED",
}


@dataclass
class DatasetResult:
    dataset: str
    rows: int
    rows_back: int
    matched: int
    missing: int
    extra: int
    keys: list[str]
    carried: bool = True
    reason: str = ""  # not carried: why (the not_mapped_datasets entry); "" when no spec lists it

    @property
    def unlisted(self) -> bool:
        return not self.carried and not self.reason


@dataclass
class RoundTrip:
    datasets: list[DatasetResult] = field(default_factory=list)
    variables: list[VarResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    resources: dict[str, int] = field(default_factory=dict)
    back: dict[str, pd.DataFrame] = field(default_factory=dict)
    # split datasets compared as their domain (SDTMIG 4.1.7): domain -> [LBCH, LBHE, ...]
    combined: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        rows_ok = all(d.missing == 0 and d.extra == 0 for d in self.datasets if d.carried)
        return rows_ok and not any(d.unlisted for d in self.datasets) and not any(v.failed for v in self.variables)

    def render(self) -> str:
        lines = [
            f"{d}: the split datasets {', '.join(names)}, compared as one (FHIR -> SDTM gives the domain back whole)"
            for d, names in sorted(self.combined.items())
        ]
        lines.append("dataset   rows  back  matched  missing  extra  keys")
        for d in self.datasets:
            if not d.carried:
                why = (
                    f"not carried (listed: {d.reason})"
                    if d.reason
                    else "NOT CARRIED: no FHIR spec carries it, and _common.yaml not_mapped_datasets does not list it"
                )
                lines.append(f"{d.dataset:<8} {d.rows:>5}     -        -        -      -  {why}")
                continue
            counts = f"{d.rows:>5} {d.rows_back:>5} {d.matched:>8} {d.missing:>8} {d.extra:>6}"
            lines.append(f"{d.dataset:<8} {counts}  {', '.join(d.keys)}")
        lines.append("")
        lines.append("dataset  variable  status                compared  differ  note")
        for v in self.variables:
            note = v.example if v.label == "DIFFERENT" else v.reason
            lines.append(
                f"{v.dataset:<8} {v.variable:<9} {v.label:<21} {v.compared:>8} {v.differences:>7}  {note}"[:220]
            )
        summary = self.summary()
        gone = [d.dataset for d in self.datasets if d.unlisted]
        listed = [d.dataset for d in self.datasets if not d.carried and d.reason]
        lines.append("")
        lines.append(
            f"variables: {summary['match'] + summary['implied']} carried, {summary['different']} different, "
            f"{summary['rederived']} derived again, {summary['not mapped']} not carried (listed as not mapped), "
            f"{summary['not in spec']} NOT CARRIED (unlisted); datasets not carried: {len(listed)} listed"
            + (f" ({', '.join(listed)})" if listed else "")
            + f", {len(gone)} unlisted"
            + (f" ({', '.join(gone)})" if gone else "")
        )
        return "\n".join(lines)

    def findings(self) -> list[dict[str, str]]:
        """What did not come back, one dict per finding (dataset, variable, rule, message)."""
        out: list[dict[str, str]] = []
        for d in self.datasets:
            if d.unlisted:
                msg = f"{d.rows} row(s) not carried to FHIR: no spec carries the dataset or lists it as not mapped"
                out.append({"dataset": d.dataset, "variable": "", "rule": "roundtrip-not-carried", "message": msg})
            if d.carried and (d.missing or d.extra):
                msg = f"{d.missing} row(s) missing and {d.extra} extra after SDTM -> FHIR -> SDTM"
                out.append({"dataset": d.dataset, "variable": "", "rule": "roundtrip-rows", "message": msg})
        for v in self.variables:
            if v.unlisted:
                msg = "not carried to FHIR: no spec element names it and no not_mapped entry lists it"
                out.append(
                    {"dataset": v.dataset, "variable": v.variable, "rule": "roundtrip-not-carried", "message": msg}
                )
            elif v.failed:
                msg = f"{v.differences} of {v.compared} value(s) differ, e.g. {v.example}"
                out.append({"dataset": v.dataset, "variable": v.variable, "rule": "roundtrip-value", "message": msg})
        for p in self.problems:
            out.append({"dataset": p.file, "variable": p.field, "rule": p.rule, "message": str(p)})
        return out

    def summary(self) -> dict[str, int]:
        out = {"match": 0, "different": 0, "rederived": 0, "not mapped": 0, "not in spec": 0, "implied": 0}
        for v in self.variables:
            if v.label == "DIFFERENT":
                out["different"] += 1
            elif v.status in out:
                out[v.status] += 1
        return out


def _float(v: Any) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _normalised(col: pd.Series, numeric: bool) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Values ready to compare and where they are missing: numbers as float64 (NaN for missing), text as object
    with None for missing."""
    if numeric:
        if isinstance(col.dtype, np.dtype) and col.dtype != object:
            values = col.to_numpy().astype("float64")
        else:
            if col.dtype == object:  # text numbers: Python's float (pandas' fast parser can be 1 ulp off)
                col = col.map(_float)
            values = pd.to_numeric(col, errors="coerce").astype("float64").to_numpy()
        return values, np.isnan(values)
    # a text column may hold numbers (a result column typed by its values): compared as their text, as carried
    out = col.to_numpy(copy=True) if col.dtype == object else col.astype(object).to_numpy(copy=True)
    null = pd.isna(out)
    if not _only_text(out, null):
        text = np.empty(len(out), dtype=object)
        text[:] = [v if isinstance(v, str) else as_text(v) for v in out.tolist()]
        out, null = text, pd.isna(text)
    null |= out == ""
    out[null] = None
    return out, null


def _missing(n: int, numeric: bool) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """What :func:`_normalised` makes of ``n`` missing values (a variable absent on the way back)."""
    return (np.full(n, np.nan) if numeric else np.full(n, None, dtype=object)), np.ones(n, dtype=bool)


def _only_text(values: np.ndarray[Any, Any], null: np.ndarray[Any, Any]) -> bool:
    """Whether every value is text, None or a float NaN (each already what :func:`as_text` makes of it)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return False
    return all(v is None or type(v) is float for v in values[null].tolist())


def _same_values(
    a: np.ndarray[Any, Any], a_na: np.ndarray[Any, Any], b: np.ndarray[Any, Any], b_na: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Row by row: equal, or both missing (``a_na``, ``b_na``: where each is missing)."""
    equal = np.zeros(len(a), dtype=bool)
    both = ~a_na & ~b_na
    equal[both] = a[both] == b[both]
    out: np.ndarray[Any, Any] = equal | (a_na & b_na)
    return out


def _keys(ds: str, df: pd.DataFrame, sdtm_specs: Mapping[str, DatasetSpec], mapped: set[str]) -> list[str]:
    cands: list[list[str]] = []
    spec = sdtm_specs.get(ds)
    if spec is not None:
        cands.append([k for k in spec.keys if k in df.columns and k in mapped])
    seq = f"{ds[:2]}SEQ"
    if seq in df.columns:
        cands.append([k for k in ("STUDYID", "USUBJID", seq) if k in df.columns])
    if ds.startswith("SUPP"):
        cands.append([k for k in ("STUDYID", "USUBJID", "IDVAR", "IDVARVAL", "QNAM") if k in df.columns])
    if ds in _DEFAULT_KEYS:
        cands.append([k for k in ["STUDYID", *_DEFAULT_KEYS[ds]] if k in df.columns])
    for keys in cands:
        if keys and not df.duplicated(subset=keys).any():
            return keys
    return [c for c in df.columns if c in mapped]


def _key_tuples(df: pd.DataFrame, keys: list[str]) -> list[tuple[str | None, ...]]:
    cols = [_key_texts(df[k]) for k in keys]
    return list(zip(*cols, strict=True)) if cols else [() for _ in range(len(df))]


def _key_texts(col: pd.Series) -> list[str | None]:
    """A key column as text (:func:`as_text`, None for missing), each distinct value converted once (a column of
    mixed Python values value by value: factorising would take True, 1 and 1.0 for one value)."""
    if col.dtype == object and pd.api.types.infer_dtype(col, skipna=True) not in ("string", "empty"):
        return [as_text(v) for v in column_values(col.to_frame(name="key"), "key")]
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    texts = np.empty(len(uniques) + 1, dtype=object)  # the last one: missing (code -1)
    texts[:] = [as_text(v.item() if isinstance(v, np.generic) else v) for v in list(uniques)] + [None]
    return list(texts[codes].tolist())


def compare(
    original: Mapping[str, pd.DataFrame],
    back: Mapping[str, pd.DataFrame],
    specs: FhirSpecs,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
) -> RoundTrip:
    sdtm_specs = sdtm_specs or {}
    cov = coverage(specs)
    red = rederivations(specs)
    rt = RoundTrip(back=dict(back))
    for ds in sorted(original):
        df = original[ds]
        known = cov.get(ds)
        if known is None:
            reason = specs.not_mapped_datasets.get(ds.upper(), "")
            rt.datasets.append(DatasetResult(ds, len(df), 0, 0, 0, 0, [], carried=False, reason=reason))
            continue
        mapped = {v for v, st in known.items() if st in ("mapped", "implied")}
        bdf = back.get(ds)
        if bdf is None:
            bdf = pd.DataFrame(columns=list(df.columns))
        keys = _keys(ds, df, sdtm_specs, mapped)
        bdf = with_columns(bdf, keys)  # a variable missing on the way back is all missing
        k_orig = _key_tuples(df, keys)
        k_back = _key_tuples(bdf, keys)
        pos_back: dict[tuple[str | None, ...], int] = {}
        for j, k in enumerate(k_back):
            pos_back.setdefault(k, j)
        pairs = [(i, pos_back[k]) for i, k in enumerate(k_orig) if k in pos_back]
        matched_back = {j for _i, j in pairs}
        io = np.array([i for i, _j in pairs], dtype=np.intp)
        jb = np.array([j for _i, j in pairs], dtype=np.intp)
        rt.datasets.append(
            DatasetResult(ds, len(df), len(bdf), len(pairs), len(df) - len(pairs), len(bdf) - len(matched_back), keys)
        )
        for var in df.columns:
            status = known.get(var)
            rule = red.get(ds, {}).get(var)
            if status is None:
                why = "no FHIR spec element names it, and no not_mapped entry lists it"
                rt.variables.append(VarResult(ds, var, "not in spec", reason=why))
                continue
            if status.startswith("not mapped") and rule is None:
                rt.variables.append(VarResult(ds, var, "not mapped", reason=status.split(": ", 1)[-1]))
                continue
            label = "rederived" if rule is not None else ("implied" if status == "implied" else "match")
            # each whole column normalised (value by value), then the matched rows taken from the arrays
            a_col = df[var]
            b_col = bdf[var] if var in bdf.columns else None
            numeric = pd.api.types.is_numeric_dtype(a_col.dtype) or (
                b_col is not None and pd.api.types.is_numeric_dtype(b_col.dtype)
            )
            a, a_na = _normalised(a_col, numeric)
            b, b_na = _normalised(b_col, numeric) if b_col is not None else _missing(len(bdf), numeric)
            same = _same_values(a[io], a_na[io], b[jb], b_na[jb])
            diffs = int((~same).sum())
            example = ""
            if diffs:
                first = int((~same).argmax())
                where = ", ".join(f"{kk}={kv}" for kk, kv in zip(keys, k_orig[io[first]], strict=True))
                b_first = b_col.iloc[jb[first]] if b_col is not None else None
                example = f"{where}: {a_col.iloc[io[first]]!r} -> {b_first!r}"
            res = VarResult(ds, var, label, len(pairs), diffs, example)
            if rule is not None:
                res.reason = f"not mapped; derived again ({', '.join(f'{k} of {v}' for k, v in rule.items())})"
            rt.variables.append(res)
    return rt


def roundtrip(
    datasets: Mapping[str, pd.DataFrame],
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    via: str = "bundles",
) -> RoundTrip:
    """SDTM -> FHIR (serialised as ``via``: bundles or ndjson) -> SDTM, compared with the input (split datasets
    as their domain)."""
    with no_gc():  # the comparison too: the parsed resources are still alive, each collection would rescan them
        return _roundtrip(datasets, specs, ct, sdtm_specs, via)


def _roundtrip(
    datasets: Mapping[str, pd.DataFrame],
    specs: FhirSpecs,
    ct: Terminology | None,
    sdtm_specs: Mapping[str, DatasetSpec] | None,
    via: str,
) -> RoundTrip:
    datasets, combined = combine_split(datasets, specs.datasets())
    result = sdtm_to_fhir(datasets, specs, ct, sdtm_specs)
    if via == "bundles":
        files = dict(iter_bundles(result, specs))
    elif via == "ndjson":
        files = {f"{t}.ndjson": b for t, b in ndjson_lines(result).items()}
    else:
        raise ValueError(f"via must be bundles or ndjson, not {via!r}")
    items, sink = parse_items(files)
    rt = _back(datasets, items, sink, specs, ct, sdtm_specs)
    rt.problems = list(result.problems) + rt.problems
    rt.resources = result.counts()
    rt.combined = combined
    return rt


def _back(
    datasets: Mapping[str, pd.DataFrame],
    items: list[Located],
    sink: FromFhir | None,
    specs: FhirSpecs,
    ct: Terminology | None,
    sdtm_specs: Mapping[str, DatasetSpec] | None,
) -> RoundTrip:
    """``items`` converted back to SDTM and compared with ``datasets`` (split datasets already combined)."""
    back = fhir_to_sdtm(items, specs, ct, sdtm_specs, validate=False, sink=sink)
    rt = compare(datasets, back.datasets, specs, sdtm_specs)
    rt.problems = list(back.problems)
    return rt


def roundtrip_written(
    datasets: Mapping[str, pd.DataFrame],
    items: list[Located],
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
) -> RoundTrip:
    """The round trip through FHIR already written from ``datasets`` (``inoconv fhir``'s folder, read by
    :func:`~converter.fhir.fhir_input.read_input`): its resources converted back and compared with ``datasets``.

    Its problems are the conversion's; what reading the files met (JSON, limits, two resources with one id) and the
    problems of the build that wrote them belong to the FHIR check and the FHIR stage."""
    with no_gc():
        datasets, combined = combine_split(datasets, specs.datasets())
        rt = _back(datasets, items, None, specs, ct, sdtm_specs)
        for it in items:
            rt.resources[it.rtype] = rt.resources.get(it.rtype, 0) + 1
        rt.resources = dict(sorted(rt.resources.items()))
        rt.combined = combined
        return rt


def roundtrip_folder(sdtm_dir: Path, fhir_dir: Path | None = None, items: list[Located] | None = None) -> RoundTrip:
    """The round trip of an SDTM folder (``*.xpt`` or Dataset-JSON) with the project's specs (``.ok`` when lossless).

    ``fhir_dir``: the FHIR written from that folder (``inoconv fhir``'s output): that is converted back
    (:func:`roundtrip_written`; ``items``: its resources when already read) instead of a FHIR built here.
    Raises InputError for a folder that cannot be read, SpecError for invalid specs."""
    datasets = read_sdtm_dir(Path(sdtm_dir))
    specs, ct, sdtm_specs = load_fhir_stage()
    if fhir_dir is None:
        return roundtrip(datasets, specs, ct, sdtm_specs)
    with no_gc():
        if items is None:
            items = read_input(Path(fhir_dir), FromFhir(datasets={}))
        return roundtrip_written(datasets, items, specs, ct, sdtm_specs)
