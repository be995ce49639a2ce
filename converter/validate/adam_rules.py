"""ADaM conformance rules: pure functions over ``{dataset name: DataFrame}`` (+ ADaM specs, file metadata).

The CORE rules cache holds no ADaM rules, so every id here is the project's own (``INO-ADAM-nnn``); the checks
follow the ADaMIG 1.3 text: ADSL one record per subject, PARAMCD/PARAM one-to-one, CNSR 0/1, time-to-event AVAL
not negative, flags Y/N/null, every subject of a BDS/OCCDS dataset in ADSL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from converter.spec.model import DatasetSpec
from converter.validate.common import (
    DatasetInfo,
    coded,
    finding,
    numbers,
    row_findings,
    shared_results,
    text_values,
)
from converter.validate.findings import Finding
from converter.validate.sdtm_rules import SpecRuleIds, check_metadata, check_presence

Frames = Mapping[str, pd.DataFrame]

ADAM_IDS = SpecRuleIds(
    dataset_missing="INO-ADAM-018",
    no_spec="INO-ADAM-017",
    req_missing="INO-ADAM-008",
    exp_missing="INO-ADAM-010",
    req_null="INO-ADAM-009",
    extra_variable="INO-ADAM-011",
    name_too_long=None,
    label_too_long="INO-ADAM-012",
    label_differs="INO-ADAM-013",
    type_differs="INO-ADAM-014",
    value_too_long="INO-ADAM-015",
)

# Flag variables: ADaMIG names ending in FL (population, record-level, analysis flags), e.g. SAFFL, ANL01FL.
_FLAG = re.compile(r"^[A-Z][A-Z0-9]*FL$")
_PARAMCD = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")


def check_adsl(frames: Frames) -> list[Finding]:
    adsl = frames.get("ADSL")
    if adsl is None:
        return [finding("INO-ADAM-001", "ADSL")] if frames else []
    if "USUBJID" not in adsl.columns:
        return []
    subj = adsl["USUBJID"]
    dup = subj.duplicated(keep=False).to_numpy() & subj.notna().to_numpy()
    return row_findings(
        "INO-ADAM-002", "ADSL", "USUBJID", adsl, dup, "USUBJID {u} has more than one ADSL record", u=subj
    )


def check_subjects_in_adsl(frames: Frames) -> list[Finding]:
    adsl = frames.get("ADSL")
    if adsl is None or "USUBJID" not in adsl.columns:
        return []
    known = set(adsl["USUBJID"].dropna())
    out: list[Finding] = []
    for name, df in frames.items():
        if name == "ADSL" or "USUBJID" not in df.columns:
            continue
        subj = df["USUBJID"]
        bad = subj.notna().to_numpy() & ~subj.isin(known).to_numpy()
        out += row_findings("INO-ADAM-007", name, "USUBJID", df, bad, "USUBJID {u} is not in ADSL", u=subj)
    return out


def check_param(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        if "PARAMCD" not in df.columns:
            continue
        cd = text_values(df["PARAMCD"])
        bad_name = coded(df["PARAMCD"]).per_text(lambda c: c is not None and not _PARAMCD.match(c))
        out += row_findings(
            "INO-ADAM-016",
            name,
            "PARAMCD",
            df,
            bad_name,
            "PARAMCD {c!r} is not a valid name of at most 8 characters",
            c=cd,
        )
        if "PARAM" not in df.columns:
            continue
        codes, names = coded(df["PARAMCD"]), coded(df["PARAM"])  # the distinct pairs of values, then their texts
        width = len(names.texts)
        distinct = np.unique((codes.codes % len(codes.texts)) * width + names.codes % width)  # -1: the final None
        pairs = pd.DataFrame({"cd": codes.texts[distinct // width], "p": names.texts[distinct % width]})
        pairs = pairs.dropna().drop_duplicates()
        for col, other in (("cd", "p"), ("p", "cd")):
            n = pairs.groupby(col)[other].nunique()
            for key in n[n > 1].index:
                many = sorted(pairs.loc[pairs[col] == key, other])
                var = "PARAMCD" if col == "cd" else "PARAM"
                out.append(finding("INO-ADAM-003", name, var, f"{var} {key!r} maps to {len(many)} values: {many}"))
    return out


def check_cnsr_aval(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        if "CNSR" not in df.columns:
            continue
        cnsr = numbers(df["CNSR"])
        bad = ~np.isnan(cnsr) & ~np.isin(cnsr, (0.0, 1.0))
        out += row_findings("INO-ADAM-004", name, "CNSR", df, bad, "CNSR is {c:g}", c=cnsr)
        if "AVAL" in df.columns:
            aval = numbers(df["AVAL"])
            neg = ~np.isnan(aval) & (aval < 0)
            out += row_findings("INO-ADAM-005", name, "AVAL", df, neg, "time-to-event AVAL is {a:g}", a=aval)
    return out


def check_flags(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        for col in map(str, df.columns):
            if not _FLAG.match(col):
                continue
            values = coded(df[col])
            bad = values.per_text(lambda v: v is not None and v not in ("Y", "N"))
            if bad.any():
                out += row_findings("INO-ADAM-006", name, col, df, bad, f"{col} is {{v!r}} (Y, N or null)",
                                    v=values.values())  # fmt: skip
    return out


def run_adam_rules(
    frames: Frames,
    specs: Mapping[str, DatasetSpec] | None = None,
    info: Mapping[str, DatasetInfo] | None = None,
) -> list[Finding]:
    """Every ADaM rule; the spec-based ones only when specs are given. A column's texts are made once for all
    the rules (:func:`~converter.validate.common.coded`)."""
    with shared_results():
        return _run_adam_rules(frames, specs, info)


def _run_adam_rules(
    frames: Frames, specs: Mapping[str, DatasetSpec] | None, info: Mapping[str, DatasetInfo] | None
) -> list[Finding]:
    out: list[Finding] = []
    if specs:
        out += check_presence(frames, specs, ADAM_IDS)
        out += check_metadata(frames, specs, info, ADAM_IDS)
    out += check_adsl(frames)
    out += check_subjects_in_adsl(frames)
    out += check_param(frames)
    out += check_cnsr_aval(frames)
    out += check_flags(frames)
    return out
