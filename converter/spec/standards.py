"""The standards' own metadata: SDTMIG 3.4 and ADaMIG 1.3 variables, for packages no trial spec describes.

The data is in ``converter/spec/sdtmig-3.4.yaml`` and ``adamig-1.3.yaml`` (package data, copied from the CDISC
Library exports by ``tools/make_standards.py``; provenance and licence in ``standards.LICENSE``). Per variable:
name, label, type (Char/Num), core (Req/Exp/Perm; ADaM also Cond), role, CT codelist C-codes.
``adam-occds-tte.yaml`` adds ADaM OCCDS v1.1 (ADAE and the other occurrence datasets; its ADVERSE EVENT subclass
core for ADAE) and the ADaMIG 1.3 TIME-TO-EVENT subclass of the BDS (ADTTE). ``cdisc-ct-2024-03-29.yaml`` holds
every CDISC codelist those variables name, complete (terms with their NCI C-codes, extensible or not). The three
generated files are read from their JSON twins (``<name>.json``, the same content; ``tools/make_standards.py``).

* :func:`sdtmig` / :func:`adamig` - the metadata (read once; their ``codelists`` read when first asked for);
* :func:`ig_domain` - which IG dataset a dataset name stands for (``LBCH`` -> ``LB``, ``SUPPAE`` -> ``SUPPQUAL``);
* :func:`adam_structure` - which ADaM structure an ADaM dataset is (ADSL, BDS, TTE, OCCDS, OCCDS-AE);
* :func:`ig_spec` - a :class:`~converter.spec.model.DatasetSpec` for a frame from the IG: names, labels, types and
  core from the standard, lengths left to the data (FDA: no longer than the longest value), columns the IG does not
  know appended in their order (label = name).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import pandas as pd

from converter.errors import SpecError
from converter.spec.model import DatasetSpec, Origin, VariableSpec

SDTMIG_FILE = "sdtmig-3.4.yaml"
ADAMIG_FILE = "adamig-1.3.yaml"
ADAM_MORE_FILE = "adam-occds-tte.yaml"
CT_FILE = "cdisc-ct-2024-03-29.yaml"
_SPLIT = re.compile(r"^([A-Z]{2})[A-Z0-9]{1,2}$")  # SDTMIG 4.1.7: LBCH, QSCO ... (domain + up to 2 characters)


@dataclass(frozen=True)
class IgVariable:
    name: str
    label: str
    type: str  # "Char" or "Num"
    core: str  # "Req", "Exp", "Perm" (ADaM: also "Cond")
    role: str
    codelists: tuple[str, ...]
    order: int

    @property
    def numeric(self) -> bool:
        return self.type == "Num"


@dataclass(frozen=True)
class IgDataset:
    name: str
    label: str
    cls: str
    structure: str
    variables: dict[str, IgVariable]

    def variable(self, name: str) -> IgVariable | None:
        return self.variables.get(name)


@dataclass(frozen=True)
class IgCodelist:
    code: str
    name: str
    submission: str
    extensible: bool
    terms: frozenset[str]
    package: str = "SDTM CT 2024-03-29"


@dataclass(frozen=True)
class Standard:
    name: str  # "SDTMIG 3.4"
    datasets: dict[str, IgDataset]

    @property
    def codelists(self) -> dict[str, IgCodelist]:
        """The CDISC codelists (read on first use: about 20,000 terms a run that checks none need not read)."""
        return ct_codelists()


def _read(name: str) -> dict[str, Any]:
    """A standard's YAML file, from its JSON twin when there is one (the same content, made by
    ``tools/make_standards.py``; about 17x faster to load)."""
    here = files("converter.spec")
    twin = here / name.replace(".yaml", ".json")
    if twin.is_file():
        doc = json.loads(twin.read_text(encoding="utf-8"))
    else:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        doc = yaml.load(here.joinpath(name).read_text(encoding="utf-8"), Loader=loader)  # package data, safe loader
    if not isinstance(doc, dict):
        raise SpecError([f"{name}: not a mapping"])
    return doc


def _datasets(raw: dict[str, Any]) -> dict[str, IgDataset]:
    out: dict[str, IgDataset] = {}
    for name, d in raw.items():
        variables = {
            v["name"]: IgVariable(
                name=v["name"],
                label=v["label"],
                type=v["type"],
                core=v["core"],
                role=v.get("role") or v.get("variable_set", ""),
                codelists=tuple(v.get("codelist") or ()),
                order=i,
            )
            for i, v in enumerate(d["variables"], start=1)
        }
        out[name] = IgDataset(name, d["label"], d.get("class", ""), d.get("structure", ""), variables)
    return out


@functools.cache
def ct_codelists() -> dict[str, IgCodelist]:
    """Every CDISC codelist (CT 2024-03-29) a variable of the shipped IG metadata names, complete."""
    doc = _read(CT_FILE)
    return {
        code: IgCodelist(code, c["name"], c["submission"], bool(c["extensible"]),
                         frozenset(str(t[1]) for t in c["terms"]), c.get("package", ""))
        for code, c in (doc.get("codelists") or {}).items()
    }  # fmt: skip


@functools.cache
def sdtmig() -> Standard:
    """SDTMIG 3.4: every dataset of the IG and the CDISC codelists its variables name."""
    doc = _read(SDTMIG_FILE)
    return Standard(doc["standard"], _datasets(doc["datasets"]))


def _occds(raw: dict[str, Any], core_key: str, name: str) -> IgDataset:
    variables = {
        v["name"]: IgVariable(
            name=v["name"],
            label=v.get("label") or "",
            type=v["type"],
            core=v[core_key],
            role=v.get("variable_set", ""),
            codelists=tuple(v.get("codelist") or ()),
            order=i,
        )
        for i, v in enumerate(raw["variables"], start=1)
    }
    return IgDataset(name, raw["label"], raw.get("class", ""), "", variables)


@functools.cache
def adamig() -> Standard:
    """ADaMIG 1.3: ADSL and BDS; TTE (the BDS with the TIME-TO-EVENT subclass's required variables); ADaM OCCDS
    v1.1 as OCCDS (its class core) and OCCDS-AE (its ADVERSE EVENT subclass core), names with ``--`` for the
    SDTM domain prefix (:func:`ig_dataset` puts the dataset's prefix in)."""
    doc = _read(ADAMIG_FILE)
    more = _read(ADAM_MORE_FILE)
    datasets = _datasets(doc["structures"])
    tte = more["tte"]
    base = datasets[tte["base"]]
    raised = {n: IgVariable(v.name, v.label, v.type, tte["core"].get(n, v.core), v.role, v.codelists, v.order)
              for n, v in base.variables.items()}  # fmt: skip
    datasets["TTE"] = IgDataset("TTE", tte["label"], tte["class"], "", raised)
    occds = more["structures"]["OCCDS"]
    datasets["OCCDS"] = _occds(occds, "core", "OCCDS")
    datasets["OCCDS-AE"] = _occds(occds, "ae_core", "OCCDS-AE")
    return Standard(doc["standard"], datasets)


def ig_domain(name: str, df: pd.DataFrame | None = None) -> str | None:
    """The SDTMIG dataset ``name`` stands for: itself, SUPPQUAL for ``SUPP--``, the domain of a split dataset
    (``LBCH`` -> ``LB``; its DOMAIN column, when given, must say so); None when the IG has none."""
    ig = sdtmig().datasets
    name = name.upper()
    if name in ig:
        return name
    if name.startswith("SUPP") and len(name) > 4:
        return "SUPPQUAL"
    m = _SPLIT.match(name)
    if m and m.group(1) in ig:
        if df is not None and "DOMAIN" in df.columns:
            values = set(df["DOMAIN"].dropna().astype(str).unique())
            if values and values != {m.group(1)}:
                return None
        return m.group(1)
    return None


_OCCURRENCE_CLASSES = {"Events", "Interventions"}


def adam_structure(name: str, df: pd.DataFrame | None = None) -> str | None:
    """The ADaM structure of an ADaM dataset: ADSL; TTE for ADTTE* or a BDS dataset with CNSR; BDS when it has
    PARAMCD; OCCDS-AE for ADAE; OCCDS for AD + an SDTM Events/Interventions domain (ADCM, ADMH) without PARAMCD;
    None otherwise."""
    upper = name.upper()
    cols = set(map(str, df.columns)) if df is not None else set()
    if upper == "ADSL":
        return "ADSL"
    if upper.startswith("ADTTE") or {"PARAMCD", "CNSR"} <= cols:
        return "TTE"
    if "PARAMCD" in cols:
        return "BDS"
    if upper == "ADAE":
        return "OCCDS-AE"
    d = sdtmig().datasets.get(upper[2:])
    if len(upper) == 4 and d is not None and d.cls in _OCCURRENCE_CLASSES:
        return "OCCDS"
    return None


def _with_prefix(ds: IgDataset, prefix: str) -> IgDataset:
    """An OCCDS structure for one dataset: ``--`` replaced by the SDTM domain prefix; a variable the table leaves
    to the SDTM domain ("copied from XX.--", no label of its own) takes SDTMIG 3.4's label, and is left out where
    the SDTM domain has no such variable (an Interventions domain has --TRT, not --TERM)."""
    sdtm = sdtmig().datasets.get(prefix)
    out: dict[str, IgVariable] = {}
    for v in ds.variables.values():
        name = v.name.replace("--", prefix)
        label = v.label
        if not label:
            sv = sdtm.variable(name) if sdtm is not None else None
            if sv is None:
                continue
            label = sv.label
        out[name] = IgVariable(name, label, v.type, v.core, v.role, v.codelists, v.order)
    return IgDataset(ds.name, ds.label, ds.cls, ds.structure, out)


def ig_dataset(name: str, df: pd.DataFrame | None = None) -> IgDataset | None:
    """The IG metadata for an SDTM or ADaM dataset (None when the standards shipped do not describe it)."""
    if name.upper().startswith("AD"):
        s = adam_structure(name, df)
        ds = adamig().datasets.get(s) if s else None
        if ds is not None and s in ("OCCDS", "OCCDS-AE"):
            return _with_prefix(ds, name.upper()[2:4])
        return ds
    d = ig_domain(name, df)
    return sdtmig().datasets.get(d) if d else None


def _vtype(col: pd.Series | None, ig: IgVariable | None) -> str:
    if ig is not None:
        if not ig.numeric:
            return "text"
        if col is not None and pd.api.types.is_integer_dtype(col.dtype):
            return "integer"
        return "float"
    if col is not None and pd.api.types.is_integer_dtype(col.dtype):
        return "integer"
    if col is not None and pd.api.types.is_float_dtype(col.dtype):
        return "float"
    return "text"


def ig_spec(name: str, df: pd.DataFrame) -> DatasetSpec:
    """A spec for ``df`` from the IG: its columns in IG order, labels/types/core from the IG, lengths from the data
    (``length`` None: the XPT writer sizes each character variable by its longest value). Columns the IG does not
    know keep their place after the IG's, with their name as label and their type from the data."""
    ig = ig_dataset(name, df)
    known = ig.variables if ig is not None else {}
    cols = [str(c) for c in df.columns]
    in_ig = sorted((c for c in cols if c in known), key=lambda c: known[c].order)
    others = [c for c in cols if c not in known]
    variables: list[VariableSpec] = []
    for i, c in enumerate(in_ig + others, start=1):
        v = known.get(c)
        variables.append(
            VariableSpec(
                name=c,
                label=v.label if v is not None else c,
                type=_vtype(df[c], v),
                order=i,
                core=v.core if v is not None else "Perm",
                origin=Origin("Derived"),
                rules={},
            )
        )
    prefix = name[:2].upper()
    keys = tuple(k for k in ("STUDYID", "USUBJID", f"{prefix}SEQ") if k in cols)
    label = ig.label if ig is not None and not name.upper().startswith("AD") else name.upper()
    if name.upper().startswith("SUPP") and len(name) > 4:
        label = f"Supplemental Qualifiers for {name.upper()[4:]}"
    return DatasetSpec(
        name=name.upper(),
        label=label,
        cls=ig.cls if ig is not None else "",
        structure=ig.structure if ig is not None else "",
        standard=sdtmig().name if not name.upper().startswith("AD") else adamig().name,
        keys=keys,
        variables=tuple(variables),
    )
