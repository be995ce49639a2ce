"""Standard-level rules: any SDTM or ADaM package against the implementation guides, no trial spec needed.

The metadata is the IGs' own (:mod:`converter.spec.standards`: SDTMIG 3.4, ADaMIG 1.3 ADSL/BDS). Per dataset the
IG dataset it stands for (``LBCH`` -> LB, ``SUPPAE`` -> SUPPQUAL) gives

* Required variables present (CORE-000355) and never null (CORE-000356); Expected variables present (CORE-000334);
* the variable's type as the IG's (CORE-001082) and its label as the IG's (INO-STD-005);
* ADaM datasets under the ADaM rules' ids (CORE's are SDTMIG rules): Req missing INO-ADAM-008, type INO-ADAM-014,
  label INO-ADAM-013 (the spec level's ids: a finding both levels make is reported once);
* variables neither in the IG domain nor, with the domain prefix as ``--``, in any IG domain of the same class
  (INO-STD-004: the SDTMIG's stand-in for the model's list of allowed variables, cf. CORE-000550);
* DOMAIN equal to the dataset's domain (INO-STD-003), RDOMAIN of a SUPP-- equal to its name's (INO-STD-003);
* values of the CDISC codelists (CT 2024-03-29, shipped complete) the IG binds a variable to: not in a
  non-extensible codelist an error (INO-SDTM-030; ADaM INO-ADAM-030), not in an extensible one a warning (a
  sponsor term: INO-SDTM-031 / INO-ADAM-031); result variables (role Result Qualifier, e.g. --STRESC) are left to
  the value level, where the test says which codelist applies;
* ADaM: ADSL and BDS (ADaMIG 1.3), TTE (its TIME-TO-EVENT subclass: ADTTE), OCCDS v1.1 (ADAE: its ADVERSE EVENT
  subclass core; ADCM, ADMH ...);
* a dataset the IG does not describe (custom domain, other ADaM) is named once (INO-STD-001, info).

The data-only SDTM rules (ISO 8601, --SEQ unique, USUBJID in DM, study days, SUPP-- parents, TS) are those of
:mod:`converter.validate.sdtm_rules` without specs; :func:`run_standard_level` runs both. Pure functions over
frames: nothing here reads files.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from converter.spec.model import Terminology
from converter.spec.standards import IgDataset, ig_dataset, ig_domain, sdtmig
from converter.validate.common import RULES, DatasetInfo, RuleDef, finding, is_null, row_findings, text_values
from converter.validate.findings import Finding

Frames = Mapping[str, pd.DataFrame]

RULES.update(
    {
        r.id: r
        for r in (
            RuleDef(
                "INO-STD-001",
                "info",
                "SDTM",
                "Dataset not described by the IG shipped (custom domain or structure): only the data rules ran on it",
            ),
            RuleDef("CORE-001082", "error", "SDTM", "Variable type (Char/Num) in the dataset differs from the IG"),
            RuleDef("INO-STD-003", "error", "SDTM", "DOMAIN (SUPP--: RDOMAIN) differs from the dataset's domain"),
            RuleDef(
                "INO-STD-004",
                "warning",
                "SDTM",
                "Variable not in the IG domain nor in any IG domain of its class "
                "(a non-standard variable belongs in SUPP--; cf. CORE-000550)",
            ),
            RuleDef("INO-STD-005", "warning", "SDTM", "Variable label differs from the IG label"),
            RuleDef(
                "INO-ADAM-030",
                "error",
                "ADAM",
                "Value not in a non-extensible CDISC codelist the ADaM standard "
                "binds the variable to (cf. Pinnacle 21 CT2001)",
            ),
            RuleDef(
                "INO-ADAM-031",
                "warning",
                "ADAM",
                "Value not in an extensible CDISC codelist the ADaM standard "
                "binds the variable to (a sponsor term; cf. Pinnacle 21 CT2002)",
            ),
        )
    }
)

#: SDTMIG classes whose domains share the general observation class variables (--GRPID, --STDTC, ...)
_GENERAL = {"Interventions", "Events", "Findings", "Findings About"}


@functools.cache
def _class_variables() -> dict[str, frozenset[str]]:
    """Class -> every ``--XXX`` variable some IG domain of that class has (prefix replaced by ``--``)."""
    out: dict[str, set[str]] = {}
    for name, ds in sdtmig().datasets.items():
        if ds.cls in _GENERAL:
            out.setdefault(ds.cls, set()).update(
                "--" + v[len(name) :] if v.startswith(name) else v for v in ds.variables
            )
    out["Findings About"] = out.get("Findings About", set()) | out.get("Findings", set())
    return {k: frozenset(v) for k, v in out.items()}


def _is_adam(name: str) -> bool:
    return name.upper().startswith("AD")


def check_ig_variables(frames: Frames, info: Mapping[str, DatasetInfo] | None = None) -> list[Finding]:
    """Presence, nulls, type, label and membership of every variable against the IG dataset."""
    out: list[Finding] = []
    info = info or {}
    allowed = _class_variables()
    for name, df in frames.items():
        ig = ig_dataset(name, df)
        if ig is None:
            what = "ADaMIG 1.3 / ADaM OCCDS 1.1 (ADSL, BDS, TTE, OCCDS)" if _is_adam(name) else "SDTMIG 3.4"
            msg = f"{name} is not a dataset {what} describes: only the data rules ran on it"
            out.append(finding("INO-STD-001", name, message=msg))
            continue
        out += _presence(name, df, ig)
        out += _types_and_labels(name, df, ig, info.get(name))
        if not _is_adam(name) and ig.cls in _GENERAL:
            prefix = ig.name
            for col in map(str, df.columns):
                generic = "--" + col[len(prefix) :] if col.startswith(prefix) else col
                if col not in ig.variables and generic not in allowed.get(ig.cls, frozenset()):
                    msg = f"{col} is not a variable of SDTMIG 3.4 {ig.name} nor of its class ({ig.cls})"
                    out.append(finding("INO-STD-004", name, col, msg))
    return out


#: ADaM name placeholders (ADaMIG 1.3 Section 2.9: xx and zz are 01-99, y and w are 1-9)
_PLACEHOLDER = re.compile(r"xx|zz|y|w")


def _present(var: str, columns: set[str]) -> bool:
    """The variable, or for an ADaM name with a placeholder (TRTxxP) any column it stands for (TRT01P)."""
    if var in columns:
        return True
    if not _PLACEHOLDER.search(var):
        return False
    pattern = re.compile("^" + _PLACEHOLDER.sub(lambda m: r"\d\d" if len(m.group()) == 2 else "[1-9]", var) + "$")
    return any(pattern.match(c) for c in columns)


def _presence(name: str, df: pd.DataFrame, ig: IgDataset) -> list[Finding]:
    out: list[Finding] = []
    adam = _is_adam(name)
    std = ("ADaM OCCDS 1.1 " if ig.name.startswith("OCCDS") else "ADaMIG 1.3 ") + ig.name if adam \
        else "SDTMIG 3.4 " + ig.name  # fmt: skip
    columns = set(map(str, df.columns))
    for var in ig.variables.values():
        if not _present(var.name, columns):
            if var.core == "Req":
                rule = "INO-ADAM-008" if adam else "CORE-000355"
                out.append(finding(rule, name, var.name, f"Required variable {var.name} ({std}) is missing"))
            elif var.core == "Exp":
                out.append(finding("CORE-000334", name, var.name, f"Expected variable {var.name} ({std}) is missing"))
            continue
        # SDTM Req: never null (SDTMIG 4.1.5). ADaM Req: "the variable must be included in the dataset" (ADaMIG
        # 1.3 Section 3): a flag such as TRTEMFL is Y or null, so ADaM nulls are not judged here.
        if var.core == "Req" and len(df) and not adam:
            out += row_findings(
                "CORE-000356", name, var.name, df, is_null(df[var.name]),
                f"Required variable {var.name} ({std}) is null",
            )  # fmt: skip
    return out


def _types_and_labels(name: str, df: pd.DataFrame, ig: IgDataset, meta: DatasetInfo | None) -> list[Finding]:
    out: list[Finding] = []
    for col in map(str, df.columns):
        var = ig.variable(col)
        if var is None:
            continue
        mcol = meta.column(col) if meta is not None else None
        if mcol is not None:
            numeric = mcol.numeric
        elif bool(is_null(df[col]).all()):
            continue  # an all-null column read from JSON says nothing about its type
        else:
            numeric = bool(pd.api.types.is_numeric_dtype(df[col].dtype)) and not pd.api.types.is_bool_dtype(
                df[col].dtype
            )
        if numeric != var.numeric:
            have = "Num" if numeric else "Char"
            rule = "INO-ADAM-014" if _is_adam(name) else "CORE-001082"
            out.append(finding(rule, name, col, f"type {have} in the dataset, the IG says {var.type}"))
        if mcol is not None and mcol.label and var.label and mcol.label != var.label:
            rule = "INO-ADAM-013" if _is_adam(name) else "INO-STD-005"
            out.append(finding(rule, name, col, f"label {mcol.label!r}, the IG says {var.label!r}"))
    return out


def check_domain_values(frames: Frames) -> list[Finding]:
    """DOMAIN is the dataset's domain (a split dataset: its first two characters); SUPP--: RDOMAIN its parent's."""
    out: list[Finding] = []
    for name, df in frames.items():
        if _is_adam(name) or not len(df):
            continue
        supp = name.startswith("SUPP") and len(name) > 4
        col = "RDOMAIN" if supp else "DOMAIN"
        if col not in df.columns:
            continue
        want = name[4:] if supp else (ig_domain(name) or name)
        if want not in sdtmig().datasets and not supp:
            want = name
        vals = text_values(df[col])
        ok = {want, want[:2]} if supp else {want}
        bad = np.array([v is not None and v not in ok for v in vals], dtype=bool)
        out += row_findings("INO-STD-003", name, col, df, bad, f"{col} {{v!r}} in {name} (expected {want!r})", v=vals)
    return out


def sponsor_terms(ct: Terminology | None) -> dict[str, frozenset[str]]:
    """CDISC codelist C-code -> the terms the study's terminology (its spec or define.xml) gives that codelist:
    what the sponsor declares, extensions of an extensible codelist included."""
    out: dict[str, frozenset[str]] = {}
    for cl in ct.codelists.values() if ct is not None else ():
        if cl.code:
            out[cl.code] = out.get(cl.code, frozenset()) | cl.submission_values()
    return out


def check_ig_ct(frames: Frames, extensions: Mapping[str, frozenset[str]] | None = None) -> list[Finding]:
    """Values against the CDISC codelists the IG binds a variable to (CT 2024-03-29, complete): a value outside a
    non-extensible codelist is an error, outside an extensible one a warning (a sponsor term must be defined by the
    sponsor: ``extensions``, C-code -> terms, are the ones the study's spec or define.xml declares, and pass). A
    variable bound to several codelists takes their union; result variables are left to the value level."""
    out: list[Finding] = []
    for name, df in frames.items():
        ig = ig_dataset(name, df)
        if ig is None or not len(df):
            continue
        codelists = sdtmig().codelists
        for col in map(str, df.columns):
            var = ig.variable(col)
            if var is None or not var.codelists or var.role == "Result Qualifier":
                continue
            lists = [codelists[c] for c in var.codelists if c in codelists]
            if len(lists) != len(var.codelists):
                continue  # a codelist not shipped: not judged
            terms = frozenset().union(*(cl.terms for cl in lists))
            terms |= frozenset().union(*((extensions or {}).get(cl.code, frozenset()) for cl in lists if cl.extensible))
            vals = text_values(df[col])
            bad = ~pd.isna(vals) & ~pd.Series(vals, dtype=object).isin(terms).to_numpy()
            if not bad.any():
                continue
            extensible = any(cl.extensible for cl in lists)
            kind = "extensible" if extensible else "non-extensible"
            which = " or ".join(f"{cl.submission} ({cl.code})" for cl in lists)
            msg = f"{{v!r}} is not in {kind} codelist {which}, CDISC CT 2024-03-29"
            family = "ADAM" if _is_adam(name) else "SDTM"
            rule = f"INO-{family}-{'031' if extensible else '030'}"
            out += row_findings(rule, name, col, df, bad, msg, v=vals)
    return out


def run_standard_rules(
    frames: Frames, info: Mapping[str, DatasetInfo] | None = None, ct: Terminology | None = None
) -> list[Finding]:
    """The IG rules of this module and the cross-dataset rules of :mod:`converter.validate.standard_data` (the
    data-only SDTM rules are :func:`run_standard_level`'s). ``ct``: the study's terminology, when a spec or
    define.xml gives one (its sponsor terms of extensible codelists are declared, not warned about)."""
    from converter.validate.standard_data import run_standard_data_rules

    sdtm = {k: v for k, v in frames.items() if not _is_adam(k)}
    out = check_ig_variables(frames, info) + check_domain_values(frames) + check_ig_ct(frames, sponsor_terms(ct))
    return out + run_standard_data_rules(sdtm)


def run_standard_level(frames: Frames, info: Mapping[str, DatasetInfo] | None = None) -> list[Finding]:
    """Everything that needs no trial spec: the IG rules and, for SDTM, the data-only rules."""
    from converter.validate.sdtm_rules import run_sdtm_rules

    sdtm = {k: v for k, v in frames.items() if not _is_adam(k)}
    out = run_standard_rules(frames, info)
    if sdtm:
        out += run_sdtm_rules(sdtm, None, None, {k: v for k, v in (info or {}).items() if k in sdtm})
    return out


__all__ = [
    "check_domain_values",
    "check_ig_ct",
    "check_ig_variables",
    "run_standard_level",
    "run_standard_rules",
    "sponsor_terms",
]
