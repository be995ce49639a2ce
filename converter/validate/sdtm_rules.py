"""SDTM conformance rules: pure functions over ``{dataset name: DataFrame}`` (+ specs, terminology, file metadata).

Every function returns a list of :class:`~converter.validate.findings.Finding`; none reads or writes files.
Checks work column by column (vectorised where the rule allows); row findings carry the 1-based row and USUBJID.
Frames follow the project's contract (text: ``str``/``None``; integer: Int64; float: float64), but frames read
back from XPT (integers as float64) are accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from converter.spec.model import DatasetSpec, Terminology
from converter.validate.common import (
    Coded,
    DatasetInfo,
    coded,
    complete_date,
    day_numbers,
    finding,
    is_all_null,
    is_null,
    is_numeric_column,
    iso_after,
    iso_datetime_ok,
    iso_duration_ok,
    numbers,
    row_findings,
    shared_results,
    starts_after_ends,
    text_bytes,
    text_sizes,
    text_values,
)
from converter.validate.findings import Finding
from converter.validate.sdtm_content import meddra_socs, run_content_rules
from converter.validate.supp_rules import check_supp

Frames = Mapping[str, pd.DataFrame]
Dates = dict[str, str]  # subject -> a date text
TRIAL_DESIGN = {"TA", "TE", "TI", "TS", "TV", "TD", "TM"}
_EXTERNAL_DICTIONARIES = ("MEDDRA", "WHODRUG", "LOINC", "SNOMED", "UNII", "MED-RT")

# FDA Study Data Technical Conformance Guide: TS parameters required in a submission (CORE-000740 lists them too).
TS_REQUIRED = (
    "ADDON", "AGEMAX", "AGEMIN", "LENGTH", "PLANSUB", "RANDOM", "SEXPOP", "STOPRULE", "TBLIND", "TCNTRL",
    "TITLE", "TPHASE", "TTYPE", "OBJPRIM", "SPONSOR", "REGID", "OUTMSPRI", "FCNTRY", "ADAPT", "DCUTDTC",
    "DCUTDESC", "NARMS", "STYPE", "SSTDTC", "ACTSUB", "HLTSUBJI", "SDTIGVER", "SDTMVER", "TDIGRP", "TINDTP",
    "INDIC", "TRT", "PCLAS", "INTMODEL", "INTTYPE",
)  # fmt: skip
# In CORE-000740's list but not required while a study is ongoing / before its end date is known.
TS_CORE_ONLY = ("SENDTC",)


@dataclass(frozen=True)
class SpecRuleIds:
    """Which rule id reports each spec-conformance check (SDTM and ADaM share the checks, not the ids)."""

    dataset_missing: str
    no_spec: str
    req_missing: str
    exp_missing: str | None
    req_null: str
    extra_variable: str
    name_too_long: str | None
    label_too_long: str
    label_differs: str
    type_differs: str
    value_too_long: str


SDTM_IDS = SpecRuleIds(
    dataset_missing="INO-SDTM-002",
    no_spec="INO-SDTM-003",
    req_missing="CORE-000355",
    exp_missing="CORE-000334",
    req_null="CORE-000356",
    extra_variable="INO-SDTM-004",
    name_too_long="CORE-000182",
    label_too_long="CORE-000019",
    label_differs="INO-SDTM-005",
    type_differs="INO-SDTM-008",
    value_too_long="INO-SDTM-009",
)


# --- datasets and variables against the spec --------------------------------------------------------------------
def check_presence(frames: Frames, specs: Mapping[str, DatasetSpec], ids: SpecRuleIds = SDTM_IDS) -> list[Finding]:
    """Datasets of the spec present; Req/Exp (ADaM: Req/Cond) variables present; Req variables never null."""
    out: list[Finding] = []
    for name, spec in specs.items():
        if spec.intermediate and name not in frames:
            continue  # a working dataset (ADaM ``intermediate: true``): no package holds it
        if name not in frames:
            if name == "DM" and ids is SDTM_IDS:
                out.append(finding("INO-SDTM-001", name))
            else:
                out.append(finding(ids.dataset_missing, name, message=f"{name} ({spec.label}) is not in the package"))
            continue
        df = frames[name]
        for var in spec.ordered:
            if var.name not in df.columns:
                if var.core == "Req":
                    out.append(finding(ids.req_missing, name, var.name, f"Required variable {var.name} is missing"))
                elif var.core in ("Exp", "Cond") and ids.exp_missing:
                    out.append(finding(ids.exp_missing, name, var.name, f"{var.core} variable {var.name} is missing"))
                continue
            if var.core == "Req" and len(df):
                out += row_findings(
                    ids.req_null, name, var.name, df, is_null(df[var.name]),
                    f"Required variable {var.name} is null",
                )  # fmt: skip
        known = {v.name for v in spec.variables}
        for col in df.columns:
            if col not in known:
                out.append(finding(ids.extra_variable, name, str(col), f"{col} is not a variable of the {name} spec"))
    for name in frames:
        if name not in specs:
            out.append(finding(ids.no_spec, name, message=f"{name} has no spec: checked without one"))
    return out


def check_metadata(
    frames: Frames,
    specs: Mapping[str, DatasetSpec],
    info: Mapping[str, DatasetInfo] | None = None,
    ids: SpecRuleIds = SDTM_IDS,
) -> list[Finding]:
    """Names, labels, types and lengths against the spec (labels and storage lengths only when ``info`` is given)."""
    out: list[Finding] = []
    info = info or {}
    for name, df in frames.items():
        if len(name) > 8 and ids is SDTM_IDS:
            out.append(finding("CORE-000293", name, message=f"dataset name {name} has {len(name)} characters"))
        for col in df.columns:
            if len(str(col)) > 8 and ids.name_too_long:
                out.append(finding(ids.name_too_long, name, str(col), f"variable name {col} is over 8 characters"))
        meta = info.get(name)
        spec = specs.get(name)
        if meta is not None:
            if len(meta.label) > 40 and ids is SDTM_IDS:
                out.append(finding("INO-SDTM-006", name, message=f"dataset label has {len(meta.label)} characters"))
            if spec is not None and meta.label and meta.label != spec.label and ids is SDTM_IDS:
                msg = f"dataset label {meta.label!r} != spec {spec.label!r}"
                out.append(finding("INO-SDTM-007", name, message=msg))
            for c in meta.columns:
                if len(c.label) > 40:
                    out.append(
                        finding(
                            ids.label_too_long,
                            name,
                            c.name,
                            f"label {c.label!r} has {len(c.label)} characters (max 40)",
                        )
                    )
                if spec is None or c.name not in {v.name for v in spec.variables}:
                    continue
                var = spec.variable(c.name)
                if c.label != var.label:
                    out.append(finding(ids.label_differs, name, c.name, f"label {c.label!r} != spec {var.label!r}"))
                if var.length and c.length and not var.numeric and c.length != var.length and ids is SDTM_IDS:
                    out.append(
                        finding("INO-SDTM-011", name, c.name, f"storage length {c.length} != spec length {var.length}")
                    )
        if spec is None:
            continue
        for var in spec.variables:
            if var.name not in df.columns:
                continue
            series = df[var.name]
            meta_col = meta.column(var.name) if meta is not None else None
            all_null = is_all_null(series)
            in_data = is_numeric_column(series)
            numeric = meta_col.numeric if meta_col is not None else in_data
            if all_null and meta_col is None:
                continue  # an all-null object column says nothing about the type
            if numeric != var.numeric or (not all_null and in_data != var.numeric):
                numeric = in_data if in_data != var.numeric else numeric
                out.append(
                    finding(
                        ids.type_differs,
                        name,
                        var.name,
                        f"{'numeric' if numeric else 'character'} in the data, spec type is {var.type}",
                    )
                )
                continue
            if not var.numeric:  # the rows' bytes made only when some distinct text is over a limit
                largest = int(text_sizes(series).max())
                nbytes = text_bytes(series) if largest > min(var.length or 200, 200) else np.zeros(0, dtype=np.int64)
                if var.length and largest > var.length:
                    out += row_findings(
                        ids.value_too_long, name, var.name, df, nbytes > var.length,
                        f"value has {{n}} bytes, spec length is {var.length}", n=nbytes,
                    )  # fmt: skip
                if ids is SDTM_IDS and largest > 200:
                    out += row_findings(
                        "INO-SDTM-010", name, var.name, df, nbytes > 200,
                        "value has {n} bytes (max 200)", n=nbytes,
                    )  # fmt: skip
    return out


# --- keys and subjects ------------------------------------------------------------------------------------------
def check_dm_unique(frames: Frames) -> list[Finding]:
    dm = frames.get("DM")
    if dm is None or "USUBJID" not in dm.columns:
        return []
    subj = dm["USUBJID"]
    dup = subj.duplicated(keep=False).to_numpy() & subj.notna().to_numpy()
    return row_findings("CORE-000351", "DM", "USUBJID", dm, dup, "USUBJID {u} is not unique", u=subj)


def seq_variable(name: str, df: pd.DataFrame) -> str | None:
    if name in TRIAL_DESIGN or name.startswith(("SUPP", "RELREC")):
        return None
    cand = f"{name[:2]}SEQ"
    return cand if cand in df.columns else None


def check_seq_unique(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        seq = seq_variable(name, df)
        if seq is None or "USUBJID" not in df.columns:
            continue
        # USUBJID by its codes (one per distinct value, missing -1: what duplicated's own hashing tells apart)
        s = numbers(df[seq])
        keys = pd.DataFrame({"u": coded(df["USUBJID"]).codes, "s": s})
        dup = keys.duplicated(keep=False).to_numpy() & ~np.isnan(s)
        out += row_findings(
            "CORE-000544", name, seq, df, dup,
            f"{seq}={{s:g}} is used twice for {{u}}", s=s, u=df["USUBJID"].to_numpy(dtype=object),
        )  # fmt: skip
    return out


def check_subjects_in_dm(frames: Frames) -> list[Finding]:
    dm = frames.get("DM")
    if dm is None or "USUBJID" not in dm.columns:
        return []
    known = set(dm["USUBJID"].dropna())
    out: list[Finding] = []
    for name, df in frames.items():
        if name == "DM" or name in TRIAL_DESIGN or "USUBJID" not in df.columns:
            continue
        subj = df["USUBJID"]  # decided per distinct subject (the run's codes, -1: None), spread to the rows
        codes, values = _subjects(subj)
        bad = np.append(pd.notna(values) & ~pd.Series(values, dtype=object).isin(known).to_numpy(), False)[codes]
        out += row_findings("CORE-000201", name, "USUBJID", df, bad, "USUBJID {u} is not in DM", u=subj)
    return out


# --- dates and study days ---------------------------------------------------------------------------------------
def _dtc_columns(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in df.columns if str(c).endswith("DTC")]


def check_iso_dates(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        for col in _dtc_columns(df):
            values = coded(df[col])
            bad = values.per_text(lambda v: v is not None and not iso_datetime_ok(v))
            if bad.any():
                out += row_findings("CORE-000547", name, col, df, bad, "{v!r} is not a valid ISO 8601 date/time",
                                    v=values.values())  # fmt: skip
    return out


def check_start_end(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        for col in _dtc_columns(df):
            if not col.endswith("STDTC") or col in ("RFSTDTC", "RFXSTDTC", "RFCSTDTC"):
                continue
            end = col[:-5] + "ENDTC"
            if end not in df.columns:
                continue
            bad = starts_after_ends(coded(df[col]), coded(df[end]))
            if bad.any():
                s, e = text_values(df[col]), text_values(df[end])
                out += row_findings("CORE-000718", name, col, df, bad, f"{col} {{s}} is after {end} {{e}}", s=s, e=e)
    dm = frames.get("DM")
    if dm is not None and {"RFSTDTC", "RFENDTC"} <= set(dm.columns):
        s, e = text_values(dm["RFSTDTC"]), text_values(dm["RFENDTC"])
        bad = starts_after_ends(coded(dm["RFSTDTC"]), coded(dm["RFENDTC"]))
        out += row_findings("CORE-000711", "DM", "RFSTDTC", dm, bad, "RFSTDTC {s} is after RFENDTC {e}", s=s, e=e)
    return out


def _valid_date(v: str | None) -> bool:
    return v is not None and iso_datetime_ok(v)


def _subjects(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row the code of its USUBJID (-1: None) and each code's value, grouped as ``pd.factorize`` groups them;
    from the run's shared coded form when every missing value is None (the subjects hashed once per run)."""
    raw = col.to_numpy(dtype=object)
    c = coded(col)
    none = raw == None  # noqa: E711 - elementwise
    if not bool(((c.codes < 0) <= none).all()):  # a NaN or NA subject: a group of its own, as before
        codes, values = pd.factorize(raw, use_na_sentinel=False)
        return np.where(none, -1, codes), np.asarray(values, dtype=object)
    first = np.full(len(c.texts) - 1, len(raw), dtype=np.intp)
    has = c.codes >= 0
    np.minimum.at(first, c.codes[has], np.flatnonzero(has))
    return c.codes, raw[first] if len(raw) else np.empty(0, dtype=object)


def _per_subject(who: np.ndarray, rank: np.ndarray, subjects: np.ndarray, ordered: np.ndarray, how: str) -> Dates:
    """The earliest (``min``) or latest (``max``) text per subject: rows' subject codes ``who`` and text ranks
    ``rank`` (into ``ordered``, the texts in text order) reduced per subject in one unbuffered ufunc pass."""
    if how == "min":
        best = np.full(len(subjects), len(ordered), dtype=np.intp)
        np.minimum.at(best, who, rank)
    else:
        best = np.full(len(subjects), -1, dtype=np.intp)
        np.maximum.at(best, who, rank)
    seen = np.zeros(len(subjects), dtype=bool)
    seen[who] = True
    return dict(zip(subjects[seen], ordered[best[seen]], strict=True))


def _ranks(*columns: Coded) -> tuple[list[np.ndarray], np.ndarray]:
    """Per column each row's rank among every column's distinct texts in text order (-1: none), and those texts."""
    distinct = np.concatenate([c.texts[:-1] for c in columns])
    some = distinct != None  # noqa: E711 - elementwise
    rank, ordered = pd.factorize(distinct[some], sort=True)
    at = np.full(len(distinct), -1, dtype=np.intp)
    at[some] = rank
    out, offset = [], 0
    for c in columns:
        width = len(c.texts) - 1
        out.append(np.append(at[offset : offset + width], -1)[c.codes])
        offset += width
    return out, np.asarray(ordered, dtype=object)


def check_dm_ex(frames: Frames) -> list[Finding]:
    """RFXSTDTC/RFXENDTC equal the first/last exposure; RFSTDTC/RFENDTC consistent with it."""
    dm, ex = frames.get("DM"), frames.get("EX")
    if dm is None or ex is None or "USUBJID" not in dm.columns or not {"USUBJID", "EXSTDTC"} <= set(ex.columns):
        return []
    start_col = coded(ex["EXSTDTC"])
    end_col = coded(ex["EXENDTC"]) if "EXENDTC" in ex.columns else start_col
    who, subjects = _subjects(ex["USUBJID"])
    known = who >= 0  # the rows whose USUBJID is not None
    (starts, ends), ordered = _ranks(start_col, end_col)
    start_ok = known & start_col.per_text(_valid_date)
    end_ok = known & end_col.per_text(_valid_date)
    first = _per_subject(who[start_ok], starts[start_ok], subjects, ordered, "min")
    last = _per_subject(np.concatenate([who[start_ok], who[end_ok]]),
                        np.concatenate([starts[start_ok], ends[end_ok]]), subjects, ordered, "max")  # fmt: skip
    out: list[Finding] = []
    dm_subj = dm["USUBJID"].to_numpy(dtype=object)

    def compare(var: str, rule: str, want: dict[str, str], what: str) -> None:
        nonlocal out
        if var not in dm.columns:
            return
        have = text_values(dm[var])
        bad = np.array([u in want and have[i] != want[u] for i, u in enumerate(dm_subj)], dtype=bool)
        out += row_findings(rule, "DM", var, dm, bad, f"{var} is {{h!r}}, the {what} EX date is {{w!r}}", h=have,
                            w=[want.get(u) for u in dm_subj])  # fmt: skip

    compare("RFXSTDTC", "CORE-000239", first, "earliest")
    compare("RFXENDTC", "CORE-000238", last, "latest")
    if "RFSTDTC" in dm.columns:
        rf = text_values(dm["RFSTDTC"])
        bad = np.array(
            [u in first and (rf[i] is None or (iso_datetime_ok(rf[i]) and iso_after(rf[i], first[u])))
             for i, u in enumerate(dm_subj)], dtype=bool,
        )  # fmt: skip
        out += row_findings(
            "INO-SDTM-020",
            "DM",
            "RFSTDTC",
            dm,
            bad,
            "RFSTDTC {r!r}, first EXSTDTC {f!r}",
            r=rf,
            f=[first.get(u) for u in dm_subj],
        )
    if "RFENDTC" in dm.columns:
        last_start = _per_subject(who[start_ok], starts[start_ok], subjects, ordered, "max")
        re_ = text_values(dm["RFENDTC"])
        bad = np.array(
            [u in last_start and re_[i] is not None and iso_datetime_ok(re_[i]) and iso_after(last_start[u], re_[i])
             for i, u in enumerate(dm_subj)], dtype=bool,
        )  # fmt: skip
        out += row_findings(
            "INO-SDTM-021",
            "DM",
            "RFENDTC",
            dm,
            bad,
            "RFENDTC {r!r} is before the last EXSTDTC {f!r}",
            r=re_,
            f=[last_start.get(u) for u in dm_subj],
        )
    return out


_DY = re.compile(r"^(?P<p>[A-Z]{2})(?P<kind>ST|EN)?DY$")
_DY_RULES = {"": ("CORE-000529", "CORE-000354"), "ST": ("CORE-000552", "CORE-000138"),
             "EN": ("CORE-000553", "CORE-000139")}  # fmt: skip


def _day_number(text: str | None) -> float:
    """The day number (proleptic ordinal) of a value whose date portion is complete, else NaN."""
    d = complete_date(text)
    return float(d.toordinal()) if d is not None else np.nan


def _subject_values(subjects: pd.Series, ref: Mapping[str, str | None], memo: dict[str, float]) -> np.ndarray:
    """Per row: the day number of the subject's reference date ``ref[USUBJID]`` (NaN: none or incomplete),
    looked up once per distinct subject (``memo`` keeps them across datasets; the subjects' codes are the run's)."""
    codes, uniques = _subjects(subjects)
    per = np.array([memo[u] if u in memo else memo.setdefault(u, _day_number(ref.get(u))) for u in uniques],
                   dtype=float)  # fmt: skip
    out = per[codes] if len(per) else np.full(len(codes), np.nan)
    for i in np.flatnonzero(codes < 0):  # a missing USUBJID (None): looked up as it is
        out[i] = _day_number(ref.get(subjects.iloc[i]))
    result: np.ndarray = out
    return result


def check_study_days(frames: Frames) -> list[Finding]:
    """--DY/--STDY/--ENDY: non-zero integers (CORE-000558), equal to the SDTMIG algorithm from --DTC and RFSTDTC
    when both dates are complete, and null when either is incomplete."""
    out: list[Finding] = []
    dm = frames.get("DM")
    ref: dict[str, str | None] = {}
    if dm is not None and {"USUBJID", "RFSTDTC"} <= set(dm.columns):
        ref = dict(zip(dm["USUBJID"].to_numpy(dtype=object), text_values(dm["RFSTDTC"]), strict=True))
    ref_days: dict[str, float] = {}  # the subject's RFSTDTC as a day number (NaN: none or incomplete)
    rdays: dict[str, np.ndarray] = {}
    for name, df in frames.items():
        for col in map(str, df.columns):
            m = _DY.match(col)
            if not m or (col == "VISITDY"):
                continue
            dy = numbers(df[col])
            present = ~np.isnan(dy)
            bad0 = present & ((dy == 0) | (np.floor(np.where(present, dy, 0)) != np.where(present, dy, 0)))
            out += row_findings("CORE-000558", name, col, df, bad0, "study day {d:g} is not a non-zero integer", d=dy)
            kind = m.group("kind") or ""
            dtc = f"{m.group('p')}{kind}DTC" if kind else f"{m.group('p')}DTC"
            if dtc not in df.columns or "USUBJID" not in df.columns or not ref:
                continue
            calc_rule, partial_rule = _DY_RULES[kind]
            dates = coded(df[dtc])
            day = day_numbers(dates)
            if name not in rdays:  # per frame: its --DY columns read the same subjects
                rdays[name] = _subject_values(df["USUBJID"], ref, ref_days)
            rday = rdays[name]
            checked = present & ~bad0
            incomplete = checked & (np.isnan(day) | np.isnan(rday))
            delta = day - rday
            want = np.where(checked & ~incomplete, np.where(delta >= 0, delta + 1, delta), np.nan)
            wrong = checked & ~incomplete & (want != dy)
            out += row_findings(
                calc_rule, name, col, df, wrong, f"{col} is {{d:g}}, the SDTMIG algorithm gives {{w:g}}", d=dy, w=want
            )
            out += row_findings(partial_rule, name, col, df, incomplete,
                                f"{col} populated, {dtc} {{v!r}} or RFSTDTC incomplete", v=dates.values())  # fmt: skip
    return out


# --- controlled terminology -------------------------------------------------------------------------------------
def check_ct(frames: Frames, specs: Mapping[str, DatasetSpec], ct: Terminology) -> list[Finding]:
    out: list[Finding] = []
    for name, spec in specs.items():
        df = frames.get(name)
        if df is None:
            continue
        for var in spec.variables:
            if var.name not in df.columns:
                continue
            targets: list[tuple[str, np.ndarray]] = []
            if var.codelist:
                targets.append((var.codelist, np.ones(len(df), dtype=bool)))
            for vl in var.value_level:
                if vl.codelist and vl.by in df.columns:
                    targets.append((vl.codelist, coded(df[vl.by]).per_text(lambda b, want=vl.value: b == want)))
            for cid, where in targets:
                cl = ct.codelists.get(cid)
                if cl is None:
                    out.append(finding("INO-SDTM-032", name, var.name, f"codelist {cid} is not defined"))
                    continue
                if (
                    not cl.terms
                    or cl.id.upper() in _EXTERNAL_DICTIONARIES
                    or any(d in cl.source.upper() for d in _EXTERNAL_DICTIONARIES)
                ):
                    continue
                allowed = cl.submission_values()
                values = coded(df[var.name])  # only for a codelist checked (a numeric column is coded for it alone)
                bad = where & values.per_text(lambda v, allowed=allowed: v is not None and v not in allowed)
                if not bad.any():
                    continue
                rule = "INO-SDTM-031" if cl.extensible else "INO-SDTM-030"
                kind = "extensible" if cl.extensible else "non-extensible"
                out += row_findings(rule, name, var.name, df, bad, f"{{v!r}} is not in {kind} codelist {cid}",
                                    v=values.values())  # fmt: skip
    return out


# --- trial summary ----------------------------------------------------------------------------------------------
def check_ts(frames: Frames) -> list[Finding]:
    ts = frames.get("TS")
    if ts is None or "TSPARMCD" not in ts.columns:
        return []
    out: list[Finding] = []
    codes = text_values(ts["TSPARMCD"])
    val = text_values(ts["TSVAL"]) if "TSVAL" in ts.columns else np.full(len(ts), None, dtype=object)
    nf = text_values(ts["TSVALNF"]) if "TSVALNF" in ts.columns else np.full(len(ts), None, dtype=object)
    present = {c for c in codes if c}
    for p in TS_REQUIRED:
        if p not in present:
            out.append(finding("CORE-000740", "TS", "TSPARMCD", f"required trial summary parameter {p} is missing"))
    for p in TS_CORE_ONLY:
        if p not in present:
            out.append(finding("INO-SDTM-040", "TS", "TSPARMCD", f"trial summary parameter {p} is missing"))
    both_null = np.array([v is None and n is None for v, n in zip(val, nf, strict=True)], dtype=bool)
    out += row_findings("CORE-000149", "TS", "TSVAL", ts, both_null, "{c}: TSVAL and TSVALNF are both null", c=codes)
    bad_date = np.array(
        [
            c in ("SSTDTC", "SENDTC", "DCUTDTC") and v is not None and not iso_datetime_ok(v)
            for c, v in zip(codes, val, strict=True)
        ],
        dtype=bool,
    )
    out += row_findings(
        "CORE-000505", "TS", "TSVAL", ts, bad_date, "{c} TSVAL {v!r} is not an ISO 8601 date", c=codes, v=val
    )
    bad_age = np.array(
        [
            c in ("AGEMIN", "AGEMAX") and v is not None and not iso_duration_ok(v)
            for c, v in zip(codes, val, strict=True)
        ],
        dtype=bool,
    )
    out += row_findings(
        "CORE-000730", "TS", "TSVAL", ts, bad_age, "{c} TSVAL {v!r} is not an ISO 8601 duration", c=codes, v=val
    )
    return out


def run_sdtm_rules(
    frames: Frames,
    specs: Mapping[str, DatasetSpec] | None = None,
    ct: Terminology | None = None,
    info: Mapping[str, DatasetInfo] | None = None,
    meddra_dir: Path | None = None,
) -> list[Finding]:
    """Every SDTM rule; the spec- and CT-based ones only when specs / terminology are given; MedDRA terms and
    codes against the MedDRA dictionary in ``meddra_dir`` (MedDRA's ASCII files) when given. A column's texts
    are made once for all the rules (:func:`~converter.validate.common.coded`)."""
    with shared_results():
        return _run_sdtm_rules(frames, specs, ct, info, meddra_dir)


def _run_sdtm_rules(
    frames: Frames,
    specs: Mapping[str, DatasetSpec] | None,
    ct: Terminology | None,
    info: Mapping[str, DatasetInfo] | None,
    meddra_dir: Path | None,
) -> list[Finding]:
    out: list[Finding] = []
    if specs is not None:
        out += check_presence(frames, specs)
        out += check_metadata(frames, specs, info)
        if ct is not None:
            out += check_ct(frames, specs, ct)
    else:
        out += check_metadata(frames, {}, info)
    out += check_dm_unique(frames)
    out += check_seq_unique(frames)
    out += check_subjects_in_dm(frames)
    out += check_iso_dates(frames)
    out += check_start_end(frames)
    out += check_dm_ex(frames)
    out += check_study_days(frames)
    out += check_supp(frames)
    out += check_ts(frames)
    out += run_content_rules(frames, meddra_socs(), meddra_dir)
    return out
