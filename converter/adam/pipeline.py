"""SDTM -> ADaM: load and check the ADaM specs, build every dataset with the spec engine, check across datasets.

The engine is the SDTM one (:func:`converter.sdtm.build.build_all`): an ADaM spec's sources are ``dataset:``
sources (an SDTM dataset or an ADaM dataset built before), its rules come from the shared vocabulary plus the
ADaM rules of :mod:`converter.adam.algorithms`. A variable with origin ``Predecessor`` and no rule is copied:
from the source row when the predecessor is the source dataset, else merged by USUBJID from the dataset named
in ``origin.source`` (e.g. ``ADSL.TRTSDT`` onto ADAE records). A spec marked ``intermediate: true`` is a
working dataset (admiral's ``ex_ext``, ``ovr``): built and read by later datasets like any other, but kept out of
the package (:attr:`AdamResult.intermediate`, not in ``datasets``/``specs``, so neither written nor in define.xml).
No I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from converter.adam import algorithms as alg
from converter.adam.common import dates_of
from converter.adam.shared import shared_results
from converter.errors import SpecError
from converter.frames import first_positions
from converter.gc_pause import no_gc
from converter.paths import mappings_dir
from converter.sdtm.build import build_all
from converter.spec.loader import check_specs, load_specs, load_terminology
from converter.spec.model import DatasetSpec, Rule, Terminology, VariableSpec


@dataclass
class AdamResult:
    datasets: dict[str, pd.DataFrame]
    specs: dict[str, DatasetSpec]
    ct: Terminology
    checks: list[str] = field(default_factory=list)  # cross-dataset check failures (empty: all passed)
    intermediate: dict[str, pd.DataFrame] = field(default_factory=dict)  # working datasets (not in the package)


def _predecessor_rules(var: VariableSpec, spec: DatasetSpec) -> dict[str, Rule]:
    """Rules that copy a Predecessor variable: from the source row, or merged by USUBJID from its dataset."""
    src_ds, _, src_var = (var.origin.source or "").partition(".")
    if not src_var:
        src_ds, src_var = "", var.name
    rules: dict[str, Rule] = {}
    for s in spec.sources:
        if s.dataset is None:
            continue
        if not src_ds or src_ds == s.dataset:
            rules[s.id] = Rule("field", {"field": src_var}, var.line)
        else:
            rules[s.id] = Rule("merge", {"dataset": src_ds, "var": src_var}, var.line)
    if rules and len({(r.name, repr(r.args)) for r in rules.values()}) == 1:
        return {"*": next(iter(rules.values()))}
    return rules


def prepare_spec(spec: DatasetSpec) -> DatasetSpec:
    """The spec with explicit copy/merge rules for Predecessor variables that state none."""
    variables = tuple(
        dataclasses.replace(v, rules=_predecessor_rules(v, spec))
        if not v.rules and v.origin.type == "Predecessor"
        else v
        for v in spec.variables
    )
    return dataclasses.replace(spec, variables=variables)


def _datasets_read(rule: Rule) -> list[str]:
    if rule.name == "lookup":
        return [str(rule.args["dataset"])]
    return list(dict.fromkeys(ds for ds, _ in alg.dataset_names(rule.name, rule.args)))


def check_adam_specs(specs: Mapping[str, DatasetSpec], upstream: Mapping[str, Collection[str]]) -> None:
    """ADaM checks before data: every dataset a spec reads is SDTM input or built before (in ``depends``), every
    variable a rule names exists there (``upstream`` maps SDTM dataset -> its columns), every row variable a rule
    reads is an earlier variable or a source column, and companion rules (date_flag, tte_attr) name a variable
    with the rule they accompany."""
    errors: list[str] = []
    columns: dict[str, set[str]] = {k: set(v) for k, v in upstream.items()}
    for spec in specs.values():
        where = str(spec.path or spec.name)
        for s in spec.sources:
            if s.dataset is not None and s.dataset not in upstream and s.dataset not in spec.depends:
                errors.append(f"{where}: source {s.id}: dataset {s.dataset} is neither SDTM input nor in depends")
        earlier: set[str] = set()
        for v in spec.variables:
            for sid, rule in v.rules.items():
                at = f"{where}:{rule.line}: variable {v.name}: rule {rule.name}"
                for ds in _datasets_read(rule):
                    if ds not in upstream and ds not in spec.depends:
                        errors.append(f"{at} reads {ds}, which is neither SDTM input nor in depends")
                for ds, var in alg.dataset_names(rule.name, rule.args):
                    if ds in columns and var not in columns[ds]:
                        errors.append(f"{at}: {ds} has no variable {var}")
                srcs = [s for s in spec.sources if sid in ("*", s.id)]
                for name in alg.row_names(rule.name, rule.args):
                    known = name in earlier or any(s.dataset in columns and name in columns[str(s.dataset)]
                                                   for s in srcs)  # fmt: skip
                    if not known:
                        errors.append(f"{at} reads {name}, which is neither an earlier variable nor a source column")
                if rule.name == "tte":
                    errors += [f"{at}: {m}" for m in alg.check_tte_sources(rule.args)]
                if rule.name == "extreme_event":
                    errors += [f"{at}: {m}" for m in alg.check_events(rule.args)]
                if rule.name == "extreme_record":
                    errors += [f"{at}: {m}" for m in alg.check_records(rule.args)]
                companions = {"date_flag": ("date", "datetime"), "time_flag": ("datetime",), "tte_attr": ("tte",),
                              "event_attr": ("extreme_event",), "record_attr": ("extreme_record",)}  # fmt: skip
                if rule.name in companions:
                    needs = companions[rule.name]
                    of = str(rule.args.get("of"))
                    for s in srcs:
                        target = spec.variable(of).rule_for(s.id) if of in {x.name for x in spec.variables} else None
                        if target is None or target.name not in needs:
                            errors.append(f"{at} names {of}, which has no {' or '.join(needs)} rule for source {s.id}")
                errors += [f"{at}: {m}" for m in alg.enum_problems(rule.name, rule.args)]
            earlier.add(v.name)
        columns[spec.name] = {v.name for v in spec.variables}
    if errors:
        raise SpecError(errors)


def read_adam_specs(specs_dir: Path | None = None, *, intermediate: bool = False) -> dict[str, DatasetSpec]:
    """The ADaM specs as files state them (ADaM rules registered, Predecessor rules made explicit), without the
    checks against data: for readers of an ADaM package (types, labels) and the validator's metadata checks. The
    specs of intermediate (working) datasets, which no package holds, only with ``intermediate``."""
    specs = load_specs(specs_dir or mappings_dir() / "adam")
    return {n: prepare_spec(s) for n, s in specs.items() if intermediate or not s.intermediate}


def load_adam_specs(
    specs_dir: Path | None = None, ct_dir: Path | None = None, upstream: Mapping[str, Collection[str]] | None = None
) -> tuple[dict[str, DatasetSpec], Terminology]:
    """The ADaM specs (dependency order, Predecessor rules made explicit) and CT, checked before any data.

    ``upstream`` maps each input (SDTM) dataset to its columns; without it, the SDTM specs define them. The
    specs prepared and checked are kept for the same spec files (as loaded, unchanged), CT and upstream columns:
    a chain worker builds many partitions against the same specs (the checks passed for them; failures raise
    every time).
    """
    root = mappings_dir()
    loaded = load_specs(specs_dir or root / "adam")  # the loader keeps each file's spec while it is unchanged
    ct = load_terminology(ct_dir or root / "ct")
    if upstream is None:
        upstream = {n: s.column_names for n, s in load_specs(root / "sdtm").items()}
    key = (tuple((n, id(s)) for n, s in loaded.items()), id(ct), tuple((n, tuple(c)) for n, c in upstream.items()))
    hit = _CHECKED.get(key)
    if hit is None:
        specs = {n: prepare_spec(s) for n, s in loaded.items()}
        check_specs(specs, None, ct, upstream=upstream)
        check_adam_specs(specs, upstream)
        if len(_CHECKED) >= 8:
            _CHECKED.clear()
        hit = _CHECKED[key] = ((loaded, ct), specs)  # the loaded objects kept: their ids are not reused meanwhile
    return dict(hit[1]), ct


_CHECKED: dict[tuple[Any, ...], tuple[Any, dict[str, DatasetSpec]]] = {}


def sdtm_to_adam(
    sdtm: Mapping[str, pd.DataFrame],
    specs_dir: Path | None = None,
    ct_dir: Path | None = None,
    *,
    checks: bool = True,
) -> AdamResult:
    specs, ct = load_adam_specs(specs_dir, ct_dir, upstream={n: list(df.columns) for n, df in sdtm.items()})
    # the cyclic GC paused for the build: it makes few reference cycles but many containers (frames, Series,
    # indexes), and each collection they trigger rescans everything a chain worker holds (45+ ms of a 0.45 s build)
    with no_gc(), shared_results():  # what several variables read is computed once per build
        datasets, _ = build_all(specs, {}, ct, None, upstream=dict(sdtm))
        found = key_problems(datasets, specs)
        if checks:
            found += cross_checks(datasets, sdtm)
    working = {n for n, s in specs.items() if s.intermediate}
    return AdamResult(
        datasets={n: df for n, df in datasets.items() if n not in working},
        specs={n: s for n, s in specs.items() if n not in working},
        ct=ct,
        checks=found,
        intermediate={n: df for n, df in datasets.items() if n in working},
    )


# --- checks across datasets ------------------------------------------------------------------------------------
def key_problems(datasets: Mapping[str, pd.DataFrame], specs: Mapping[str, DatasetSpec]) -> list[str]:
    """Every dataset's keys identify its records (so the output order never depends on the input order)."""
    out: list[str] = []
    for name, df in datasets.items():
        keys = [k for k in specs[name].keys if k in df.columns]
        if keys and len(df):
            dup = df.duplicated(subset=keys, keep=False)
            if dup.any():
                out.append(f"{name}: {int(dup.sum())} records share their keys {keys}")
    return out


def data_cut(adam: Mapping[str, pd.DataFrame], sdtm: Mapping[str, pd.DataFrame]) -> float | None:
    """The data cut-off as a SAS date: TS DCUTDTC, else ADSL.DCUTDT."""
    ts = sdtm.get("TS")
    if ts is not None and {"TSPARMCD", "TSVAL"} <= set(ts.columns):
        vals = alg.iso_to_sas(ts.loc[ts["TSPARMCD"] == "DCUTDTC", "TSVAL"]).dropna()
        if len(vals):
            return float(vals.iloc[0])
    adsl = adam.get("ADSL")
    if adsl is not None and "DCUTDT" in adsl.columns:
        vals = pd.to_numeric(adsl["DCUTDT"], errors="coerce").dropna()
        if len(vals):
            return float(vals.max())
    return None


def _seq_var(name: str, df: pd.DataFrame) -> str | None:
    """The sequence variable SRCSEQ cites: --SEQ of an SDTM dataset, ASEQ of an ADaM one (e.g. ADRS's PD record)."""
    adam = name.startswith("AD")
    for cand in ("ASEQ" if adam else "", f"{name}SEQ", f"{name[2:]}SEQ" if adam else ""):
        if cand and cand in df.columns:
            return cand
    return None


def cross_checks(adam: Mapping[str, pd.DataFrame], sdtm: Mapping[str, pd.DataFrame]) -> list[str]:
    """ADSL has one row per DM subject; every subject is in ADSL; no event date after the data cut; every
    event (CNSR=0) date is the date of the record SRCDOM/SRCVAR/SRCSEQ cites."""
    out: list[str] = []
    adsl = adam.get("ADSL")
    if adsl is None:
        return ["ADSL was not built"]
    subjects = set(adsl["USUBJID"].dropna())
    if adsl["USUBJID"].duplicated().any():
        out.append("ADSL: more than one record for a subject")
    dm = sdtm.get("DM")
    if dm is not None:
        missing = set(dm["USUBJID"].dropna()) - subjects
        extra = subjects - set(dm["USUBJID"].dropna())
        if extra:
            out.append(f"ADSL: {len(extra)} subject(s) not in DM, e.g. {sorted(extra)[:3]}")
        if missing and len(adsl) == len(dm):
            out.append(f"ADSL: {len(missing)} DM subject(s) missing, e.g. {sorted(missing)[:3]}")
    for name, df in adam.items():
        if name == "ADSL" or "USUBJID" not in df.columns:
            continue
        stray = set(pd.unique(df["USUBJID"].dropna())) - subjects  # the distinct subjects (first seen kept)
        if stray:
            out.append(f"{name}: {len(stray)} subject(s) not in ADSL, e.g. {sorted(stray)[:3]}")
    cut = data_cut(adam, sdtm)
    tte = adam.get("ADTTE")
    if tte is not None and len(tte):
        if cut is not None:
            late = tte[(tte["CNSR"] == 0) & (pd.to_numeric(tte["ADT"], errors="coerce") > cut)]
            if len(late):
                out.append(f"ADTTE: {len(late)} event date(s) after the data cut, e.g. {late['USUBJID'].iloc[0]}")
        out += _source_checks(tte[tte["CNSR"] == 0], adam, sdtm)
    return out


def _source_checks(
    events: pd.DataFrame, adam: Mapping[str, pd.DataFrame], sdtm: Mapping[str, pd.DataFrame]
) -> list[str]:
    out: list[str] = []
    for (dom, var), part in events.groupby(["SRCDOM", "SRCVAR"], sort=True):
        src = sdtm.get(str(dom), adam.get(str(dom)))
        if src is None or var not in src.columns:
            out.append(f"ADTTE: events cite {dom}.{var}, which does not exist")
            continue
        seq = _seq_var(str(dom), src)
        keys = [(part["USUBJID"], src["USUBJID"])]
        if seq is not None:
            keys.append((pd.to_numeric(part["SRCSEQ"], errors="coerce").astype("float64"),
                         pd.to_numeric(src[seq], errors="coerce").astype("float64")))  # fmt: skip
        at, _ = first_positions([lft.to_numpy() for lft, _ in keys], [rgt.to_numpy() for _, rgt in keys])
        cited = dates_of(src, str(var)).to_numpy(dtype=float)  # as_sas_date, shared with the build's rules
        adt = pd.to_numeric(part["ADT"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isclose(adt, cited.take(np.maximum(at, 0)) if len(cited) else np.full(len(at), np.nan))
        bad[at < 0] = True  # no cited record (the merge gave NaN, which is close to nothing)
        if bad.any():
            first = part.iloc[int(np.flatnonzero(bad)[0])]
            out.append(f"ADTTE {first['PARAMCD']}: {int(bad.sum())} event(s) whose ADT is not {dom}.{var} of the cited "
                       f"record, e.g. {first['USUBJID']}")  # fmt: skip
    return out
