"""The standards' own metadata: SDTMIG 3.4 and ADaMIG 1.3 variables, for packages no trial spec describes.

The data is in ``converter/spec/sdtmig-3.4.yaml`` and ``adamig-1.3.yaml`` (package data, copied from the CDISC
Library exports by ``tools/make_standards.py``; provenance and licence in ``standards.LICENSE``). Per variable:
name, label, type (Char/Num), core (Req/Exp/Perm; ADaM also Cond), role, CT codelist C-codes; the SDTMIG file also
holds the non-extensible CDISC codelists it ships in full.

* :func:`sdtmig` / :func:`adamig` - the metadata (read once);
* :func:`ig_domain` - which IG dataset a dataset name stands for (``LBCH`` -> ``LB``, ``SUPPAE`` -> ``SUPPQUAL``);
* :func:`ig_spec` - a :class:`~converter.spec.model.DatasetSpec` for a frame from the IG: names, labels, types and
  core from the standard, lengths left to the data (FDA: no longer than the longest value), columns the IG does not
  know appended in their order (label = name).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import pandas as pd

from converter.errors import SpecError
from converter.spec.model import DatasetSpec, Origin, VariableSpec

SDTMIG_FILE = "sdtmig-3.4.yaml"
ADAMIG_FILE = "adamig-1.3.yaml"
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


@dataclass(frozen=True)
class Standard:
    name: str  # "SDTMIG 3.4"
    datasets: dict[str, IgDataset]
    codelists: dict[str, IgCodelist]


def _read(name: str) -> dict[str, Any]:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = (files("converter.spec") / name).read_text(encoding="utf-8")
    doc = yaml.load(text, Loader=loader)  # the safe loader (C version when built); package data, not user input
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
def sdtmig() -> Standard:
    """SDTMIG 3.4: every dataset of the IG and the codelists shipped in full."""
    doc = _read(SDTMIG_FILE)
    codelists = {
        code: IgCodelist(code, c["name"], c["submission"], bool(c["extensible"]),
                         frozenset(t["submission"] for t in c["terms"]))
        for code, c in (doc.get("codelists") or {}).items()
    }  # fmt: skip
    return Standard(doc["standard"], _datasets(doc["datasets"]), codelists)


@functools.cache
def adamig() -> Standard:
    """ADaMIG 1.3: the ADSL and BDS structures."""
    doc = _read(ADAMIG_FILE)
    return Standard(doc["standard"], _datasets(doc["structures"]), {})


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


def adam_structure(name: str, df: pd.DataFrame | None = None) -> str | None:
    """The ADaMIG structure of an ADaM dataset: ADSL, or BDS when it has PARAMCD (None otherwise, e.g. OCCDS)."""
    if name.upper() == "ADSL":
        return "ADSL"
    if df is not None and "PARAMCD" in df.columns:
        return "BDS"
    return None


def ig_dataset(name: str, df: pd.DataFrame | None = None) -> IgDataset | None:
    """The IG metadata for an SDTM or ADaM dataset (None when the standards shipped do not describe it)."""
    if name.upper().startswith("AD"):
        s = adam_structure(name, df)
        return adamig().datasets.get(s) if s else None
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
