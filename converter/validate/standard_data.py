"""Standard-level data rules across datasets: what any SDTM package must satisfy, as published CORE rules state it.

Each function is one CORE rule (the id is CORE's; the text in the registry follows CORE's message): DM against the
trial arms (CORE-000210/208/047/209), arm values that belong in ARMNRS (CORE-000115), planned vs actual arm
(CORE-000655/656, warnings), RFENDTC with an arm (CORE-000191), population flags in SUPPDM (CORE-000211), AE
outcome vs end date and death date (CORE-000657, CORE-000841), --BODSYS without --BDSYCD (CORE-000024), medical
history starting on/after the reference start (CORE-000236), --STDY/--ENDY absent beside --STDTC/--ENDTC
(CORE-000328/000776), EPOCH
absent or null in a general-observation dataset (CORE-000701), --STRESC not numeric with --STRESN populated
(CORE-000732). Pure functions over frames, column-wise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from converter.spec.standards import ig_domain, sdtmig
from converter.validate.common import RULES, RuleDef, finding, is_null, row_findings, text_values
from converter.validate.findings import Finding

Frames = Mapping[str, pd.DataFrame]

RULES.update(
    {
        r.id: r
        for r in (
            RuleDef("CORE-000210", "error", "SDTM", "ARMCD is not present in TA.ARMCD"),
            RuleDef("CORE-000208", "error", "SDTM", "ACTARMCD is not in TA.ARMCD"),
            RuleDef("CORE-000047", "error", "SDTM", "ARM value in DM is not among the values of TA.ARM"),
            RuleDef("CORE-000209", "error", "SDTM", "ACTARM value in DM is not among the values of TA.ARM"),
            RuleDef("CORE-000115", "error", "SDTM", "ARM is 'Screen Failure', 'Not Assigned', 'Unplanned Treatment' "
                    "or 'Not Treated' (SDTMIG 3.4: ARM/ARMCD null, the reason in ARMNRS)"),
            RuleDef("CORE-000655", "warning", "SDTM", "ARMCD and ACTARMCD differ"),
            RuleDef("CORE-000656", "warning", "SDTM", "ARM and ACTARM differ"),
            RuleDef("CORE-000191", "error", "SDTM", "RFENDTC is missing when ARM is provided"),
            RuleDef("CORE-000211", "error", "SDTM", "Population flag in SUPPDM (belongs in ADSL)"),
            RuleDef("CORE-000657", "error", "SDTM", "AEENDTC is populated when AEOUT = NOT RECOVERED/NOT RESOLVED"),
            RuleDef("CORE-000841", "error", "SDTM", "AEOUT = FATAL but AEENDTC is not DM.DTHDTC"),
            RuleDef("CORE-000024", "warning", "SDTM", "--BODSYS is not empty and --BDSYCD is empty (a code not "
                    "confirmed is left null, never guessed: a warning)"),
            RuleDef("CORE-000236", "warning", "SDTM", "MHSTDTC is on or after DM.RFSTDTC (medical history is "
                    "the history before the trial)"),
            RuleDef("CORE-000328", "warning", "SDTM", "--STDY (Perm) is not in the dataset although --STDTC is"),
            RuleDef("CORE-000776", "warning", "SDTM", "--ENDY (Perm) is not in the dataset although --ENDTC is"),
            RuleDef("CORE-000701", "warning", "SDTM", "EPOCH is missing for a clinical subject-level observation"),
            RuleDef("CORE-000732", "error", "SDTM", "--STRESC is not numeric but --STRESN is not empty"),
            RuleDef("INO-STD-006", "warning", "SDTM", "--BODSYS differs from the primary SOC --SOC (cf. CORE-000264; "
                    "AE: INO-SDTM-052)"),
        )
    }
)  # fmt: skip

_NOT_ARMS = {"Screen Failure", "Not Assigned", "Unplanned Treatment", "Not Treated"}
_POPULATION_FLAG = re.compile(r"(ENRFL|SAFFL|EFFFL|ITTFL|PPROTFL|COMPLFL|COMPLT|FULLSET|ITT|PPROT|SAFETY)")
_NUMBER = re.compile(r"^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$|^-?\.\d+$")
_OBSERVATION = {"Interventions", "Events", "Findings", "Findings About"}


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return text_values(df[name]) if name in df.columns else np.full(len(df), None, dtype=object)


def _class(name: str) -> str:
    d = ig_domain(name)
    return sdtmig().datasets[d].cls if d and d in sdtmig().datasets else ""


def check_dm_arms(frames: Frames) -> list[Finding]:
    dm = frames.get("DM")
    if dm is None or not len(dm):
        return []
    out: list[Finding] = []
    arm, armcd = _col(dm, "ARM"), _col(dm, "ARMCD")
    act, actcd = _col(dm, "ACTARM"), _col(dm, "ACTARMCD")
    ta = frames.get("TA")
    if ta is not None and {"ARMCD", "ARM"} <= set(ta.columns):
        codes = {v for v in text_values(ta["ARMCD"]) if v}
        names = {v for v in text_values(ta["ARM"]) if v}
        for rule, var, vals, known in (
            ("CORE-000210", "ARMCD", armcd, codes), ("CORE-000208", "ACTARMCD", actcd, codes),
            ("CORE-000047", "ARM", arm, names), ("CORE-000209", "ACTARM", act, names),
        ):  # fmt: skip
            if var in dm.columns:
                bad = np.array([v is not None and v not in known for v in vals], dtype=bool)
                out += row_findings(rule, "DM", var, dm, bad, f"{var} {{v!r}} is not in TA", v=vals)
    if "ARM" in dm.columns:
        bad = np.array([v in _NOT_ARMS for v in arm], dtype=bool)
        out += row_findings("CORE-000115", "DM", "ARM", dm, bad, "ARM {v!r}: give the reason in ARMNRS", v=arm)
    for rule, a, b, av, bv in (("CORE-000655", "ARMCD", "ACTARMCD", armcd, actcd),
                               ("CORE-000656", "ARM", "ACTARM", arm, act)):  # fmt: skip
        if a in dm.columns and b in dm.columns:
            bad = np.array([x is not None and y is not None and x != y for x, y in zip(av, bv, strict=True)])
            out += row_findings(rule, "DM", b, dm, bad, f"{a} {{x!r}}, {b} {{y!r}}", x=av, y=bv)
    if "ARM" in dm.columns:
        bad = np.array([a is not None for a in arm], dtype=bool) & is_null(dm["RFENDTC"]) if "RFENDTC" in dm.columns \
            else np.zeros(len(dm), dtype=bool)  # fmt: skip
        out += row_findings("CORE-000191", "DM", "RFENDTC", dm, bad, "RFENDTC is null, ARM is {a!r}", a=arm)
    return out


def check_suppdm_population(frames: Frames) -> list[Finding]:
    supp = frames.get("SUPPDM")
    if supp is None or "QNAM" not in supp.columns:
        return []
    q = _col(supp, "QNAM")
    bad = np.array([v is not None and bool(_POPULATION_FLAG.match(v)) for v in q], dtype=bool)
    return row_findings("CORE-000211", "SUPPDM", "QNAM", supp, bad, "QNAM {q!r} is a population flag", q=q)


def check_ae_outcome(frames: Frames) -> list[Finding]:
    ae = frames.get("AE")
    if ae is None or "AEOUT" not in ae.columns:
        return []
    out: list[Finding] = []
    aeout, end = _col(ae, "AEOUT"), _col(ae, "AEENDTC")
    bad = np.array([o == "NOT RECOVERED/NOT RESOLVED" and e is not None for o, e in zip(aeout, end, strict=True)])
    out += row_findings("CORE-000657", "AE", "AEENDTC", ae, bad, "AEENDTC {e!r} with AEOUT {o!r}", e=end, o=aeout)
    dm = frames.get("DM")
    if dm is not None and {"USUBJID", "DTHDTC"} <= set(dm.columns) and "USUBJID" in ae.columns:
        death = dict(zip(text_values(dm["USUBJID"]), text_values(dm["DTHDTC"]), strict=True))
        want = np.array([death.get(u) for u in text_values(ae["USUBJID"])], dtype=object)
        bad = np.array([o == "FATAL" and e != w for o, e, w in zip(aeout, end, want, strict=True)], dtype=bool)
        msg = "AEOUT FATAL, AEENDTC {e!r}, DM.DTHDTC {w!r}"
        out += row_findings("CORE-000841", "AE", "AEENDTC", ae, bad, msg, e=end, w=want)
    return out


def check_bodsys_code(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        prefix = name[:2]
        bod, code = f"{prefix}BODSYS", f"{prefix}BDSYCD"
        if bod not in df.columns or code not in df.columns:
            continue  # --BDSYCD absent: CORE-000334 (an Expected variable) where the IG expects it, not this rule
        bad = ~is_null(df[bod]) & is_null(df[code])
        out += row_findings("CORE-000024", name, code, df, bad, f"{bod} {{b!r}} without {code}", b=_col(df, bod))
    return out


def check_bodsys_soc(frames: Frames) -> list[Finding]:
    """--BODSYS is the primary SOC (--SOC) wherever both are there; AE has its own rule (INO-SDTM-052)."""
    out: list[Finding] = []
    for name, df in frames.items():
        prefix = name[:2]
        bod, soc = f"{prefix}BODSYS", f"{prefix}SOC"
        if prefix == "AE" or bod not in df.columns or soc not in df.columns:
            continue
        b, s = _col(df, bod), _col(df, soc)
        bad = np.array([x is not None and y is not None and x != y for x, y in zip(b, s, strict=True)], dtype=bool)
        out += row_findings("INO-STD-006", name, bod, df, bad, f"{bod} {{b!r}}, {soc} {{s!r}}", b=b, s=s)
    return out


def check_mh_before_start(frames: Frames) -> list[Finding]:
    mh, dm = frames.get("MH"), frames.get("DM")
    if mh is None or dm is None or "MHSTDTC" not in mh.columns or not {"USUBJID", "RFSTDTC"} <= set(dm.columns):
        return []
    ref = dict(zip(text_values(dm["USUBJID"]), text_values(dm["RFSTDTC"]), strict=True))
    start = _col(mh, "MHSTDTC")
    rf = np.array([ref.get(u) for u in _col(mh, "USUBJID")], dtype=object)
    # at the precision both give ("2012" against "2012-09-07" compares the year): CORE's reading of the rule
    bad = np.array([s is not None and r is not None and s[:min(len(s), len(r), 10)] >= r[:min(len(s), len(r), 10)]
                    for s, r in zip(start, rf, strict=True)], dtype=bool)  # fmt: skip
    return row_findings("CORE-000236", "MH", "MHSTDTC", mh, bad, "MHSTDTC {s!r}, RFSTDTC {r!r}", s=start, r=rf)


def check_observation_columns(frames: Frames) -> list[Finding]:
    """--STDY beside --STDTC (CORE-000328), --ENDY beside --ENDTC (CORE-000776); EPOCH in clinical observation
    datasets (CORE-000701)."""
    out: list[Finding] = []
    for name, df in frames.items():
        cls = _class(name)
        prefix = name[:2]
        has_start = f"{prefix}STDTC" in df.columns and f"{prefix}STDY" not in df.columns and "USUBJID" in df.columns
        if has_start and (cls in _OBSERVATION or cls == "Special Purpose"):
            out.append(finding("CORE-000328", name, f"{prefix}STDY", f"{prefix}STDTC is there, {prefix}STDY not"))
        has_end = f"{prefix}ENDTC" in df.columns and f"{prefix}ENDY" not in df.columns and "USUBJID" in df.columns
        if has_end and (cls in _OBSERVATION or cls == "Special Purpose"):
            out.append(finding("CORE-000776", name, f"{prefix}ENDY", f"{prefix}ENDTC is there, {prefix}ENDY not"))
        if cls in _OBSERVATION and "USUBJID" in df.columns and ig_domain(name) not in ("MH", "DD", "PP") and len(df):
            if "EPOCH" not in df.columns:
                out.append(finding("CORE-000701", name, "EPOCH", f"{name} has no EPOCH variable"))
            else:
                out += row_findings("CORE-000701", name, "EPOCH", df, is_null(df["EPOCH"]), "EPOCH is null")
    return out


def check_stresc_stresn(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        prefix = name[:2]
        c, n = f"{prefix}STRESC", f"{prefix}STRESN"
        if c not in df.columns or n not in df.columns:
            continue
        cv = _col(df, c)
        # not a number, or not one as a number is written (a leading zero: "09")
        bad = ~is_null(df[n]) & np.array([v is not None and not _NUMBER.match(v) for v in cv], dtype=bool)
        out += row_findings("CORE-000732", name, n, df, bad, f"{c} {{v!r}} is not numeric, {n} is populated", v=cv)
    return out


def run_standard_data_rules(frames: Frames) -> list[Finding]:
    return (
        check_dm_arms(frames)
        + check_suppdm_population(frames)
        + check_ae_outcome(frames)
        + check_bodsys_code(frames)
        + check_bodsys_soc(frames)
        + check_mh_before_start(frames)
        + check_observation_columns(frames)
        + check_stresc_stresn(frames)
    )
