"""Apply de-identification rules to an SDTM package held in memory, a column at a time.

:func:`deidentify` takes every dataset of a package (name -> frame, in the data contract: text ``str``/``None``,
numbers ``float64``/``Int64``), the checked :class:`~converter.deid.rules.DeidRules` and a secret, and returns the
de-identified datasets, the key (old and new identifiers, offsets) and a report row per dataset and variable.

* **Offsets.** Each subject's number of days is drawn from HMAC-SHA256(secret, USUBJID), within the rules'
  ``offset_days``; every date of that subject in every dataset moves back by it, so intervals, study days and
  times to event are unchanged. A partial date stays partial (YYYY-MM moved from its 15th, YYYY from 30 June).
* **Study dates.** ``study_offset`` moves a study-level date (the data cut-off) back by the smallest subject
  offset: no subject's event falls after it, and it is not the original date.
* **Identifiers.** Subjects are renumbered in the order of HMAC(secret, USUBJID) (no subject keeps its number);
  USUBJID becomes ``STUDYID-<new SUBJID>``; sites are renumbered the same way, sites of fewer than k subjects pooled.
* **Everything is accounted for.** A variable without a rule, a date the offset cannot move, or a ``by`` value
  without a rule is a problem (exit 2), never passed through.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from converter.deid.rules import DeidRules, Rule, rule_for
from converter.errors import Problem, problem

__all__ = ["DeidResult", "deidentify", "subject_offsets"]

_FULL = re.compile(r"^\d{4}-\d\d-\d\d(T.*)?$")
_MONTH = re.compile(r"^\d{4}-\d\d$")
_YEAR = re.compile(r"^\d{4}$")
_LOOKS_LIKE_DATE = re.compile(r"^\d{4}-\d\d(-\d\d)?")


@dataclass
class DeidResult:
    datasets: dict[str, pd.DataFrame]
    key: dict[str, Any]
    report: list[dict[str, Any]]
    problems: list[Problem] = field(default_factory=list)


def _digest(secret: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()


def subject_offsets(subjects: pd.Series, secret: bytes, lo: int, hi: int) -> pd.Series:
    """Days to move each subject's dates back, keyed by USUBJID: lo..hi, from HMAC(secret, USUBJID)."""
    span = hi - lo + 1
    uniq = pd.unique(subjects.dropna().astype(str))
    days = [lo + int.from_bytes(_digest(secret, "offset", u)[:8], "big") % span for u in uniq]
    return pd.Series(days, index=uniq, dtype="int64")


def _renumber(values: list[str], secret: bytes, purpose: str, width: int) -> dict[str, str]:
    """A keyed random permutation 1..n as zero-padded text; no value keeps its own text."""
    order = sorted(values, key=lambda v: _digest(secret, purpose, v))
    new = [str(i + 1).zfill(width) for i in range(len(order))]
    for i, old in enumerate(order):  # a fixed point (new text == old text): swap with the next one
        if new[i] == old and len(order) > 1:
            j = (i + 1) % len(order)
            new[i], new[j] = new[j], new[i]
    return dict(zip(order, new, strict=True))


def _subject_table(datasets: Mapping[str, pd.DataFrame], secret: bytes, rules: DeidRules) -> pd.DataFrame:
    """One row per subject: old/new USUBJID, SUBJID, SITEID, offset days."""
    dm = datasets.get("DM")
    cols = [df["USUBJID"] for df in datasets.values() if "USUBJID" in df.columns]
    ids = pd.unique(pd.concat(cols).dropna()) if cols else []
    subj = pd.DataFrame({"USUBJID": pd.Series(ids, dtype=object).astype(str)})
    if dm is not None:
        keep = [c for c in ("USUBJID", "STUDYID", "SUBJID", "SITEID") if c in dm.columns]
        subj = subj.merge(dm[keep].drop_duplicates("USUBJID"), on="USUBJID", how="left")
    for c in ("STUDYID", "SUBJID", "SITEID"):
        if c not in subj.columns:
            subj[c] = None
    lengths = subj["SUBJID"].dropna().astype(str).str.len()
    width = max(len(str(len(subj))), int(lengths.max()) if len(lengths) else 0)
    new_subj = _renumber(subj["USUBJID"].tolist(), secret, "subject", width)
    subj["SUBJID_NEW"] = subj["USUBJID"].map(new_subj)
    study = subj["STUDYID"]
    subj["USUBJID_NEW"] = np.where(study.notna(), study.astype(str) + "-" + subj["SUBJID_NEW"], subj["SUBJID_NEW"])
    per_site = subj.groupby("SITEID", dropna=True)["USUBJID"].nunique()
    big = [str(s) for s in per_site.index[per_site >= rules.k]]
    site_width = max(2, len(str(len(big))))
    sites = _renumber(big, secret, "site", site_width)
    pooled = "0" * site_width
    subj["SITEID_NEW"] = subj["SITEID"].map(lambda s: None if s is None or pd.isna(s) else sites.get(str(s), pooled))
    offs = subject_offsets(subj["USUBJID"], secret, rules.offset_min, rules.offset_max)
    subj["OFFSET_DAYS"] = subj["USUBJID"].map(offs).astype("int64")
    return subj


def _shift(values: pd.Series, days: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """ISO dates moved back by ``days`` (per row); returns the new values and a mask of values it cannot move."""
    text = values.astype(object)
    present = text.notna() & (text.astype(str) != "")
    s = text.where(present, "").astype(str)
    full = s.str.match(_FULL.pattern) & present
    month = s.str.match(_MONTH.pattern) & present
    year = s.str.match(_YEAR.pattern) & present
    bad = (present & ~(full | month | year)).to_numpy()
    anchor = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")
    anchor[full] = pd.to_datetime(s[full].str[:10], format="%Y-%m-%d", errors="coerce")
    anchor[month] = pd.to_datetime(s[month] + "-15", format="%Y-%m-%d", errors="coerce")
    anchor[year] = pd.to_datetime(s[year] + "-06-30", format="%Y-%m-%d", errors="coerce")
    bad |= (present & (full | month | year) & anchor.isna()).to_numpy()  # e.g. 2014-02-30
    moved = anchor - pd.to_timedelta(days.fillna(0).astype("int64"), unit="D")
    out = text.copy()
    out[full] = moved[full].dt.strftime("%Y-%m-%d") + s[full].str[10:]
    out[month] = moved[month].dt.strftime("%Y-%m")
    out[year] = moved[year].dt.strftime("%Y")
    return out.where(~pd.Series(bad, index=s.index), text), bad


class _Applier:
    def __init__(self, name: str, df: pd.DataFrame, subj: pd.DataFrame, rules: DeidRules, file: str) -> None:
        self.name, self.df, self.rules, self.file = name, df, rules, file
        self.problems: list[Problem] = []
        self.notes: dict[str, str] = {}
        self.subj = subj.set_index("USUBJID")
        self.days = (df["USUBJID"].map(self.subj["OFFSET_DAYS"]) if "USUBJID" in df.columns
                     else pd.Series(np.nan, index=df.index))  # fmt: skip

    def _record(self, i: Any) -> str:
        parts = [f"row {int(i) + 1}"]
        for key in ("USUBJID", f"{self.name[:2]}SEQ", "QNAM", "TSPARMCD"):
            if key in self.df.columns and self.df.at[i, key] is not None and not pd.isna(self.df.at[i, key]):
                parts.append(f"{key}={self.df.at[i, key]}")
        return " ".join(parts)

    def _problems(self, mask: np.ndarray, var: str, rule: str, message: str) -> None:
        for i in self.df.index[mask][:50]:
            self.problems.append(problem(self.file, self._record(i), var, self.df.at[i, var], rule, message))

    def _column(self, var: str, rows: pd.Index) -> pd.Series:
        return cast(pd.Series, self.df.loc[rows, var])

    def apply(self, var: str, rule: Rule, rows: pd.Index) -> pd.Series:
        """The new values of ``var`` on ``rows``."""
        col = self._column(var, rows)
        if rule.kind == "keep":
            return col
        if rule.kind == "remove":
            return pd.Series(np.nan if col.dtype.kind == "f" else None, index=rows, dtype=col.dtype)
        if rule.kind == "year":
            s = col.astype(object)
            ok = s.isna() | s.astype(str).str.match(r"^\d{4}")
            self._problems((~ok).reindex(self.df.index, fill_value=False).to_numpy(), var, "deid-year",
                           "not an ISO 8601 date: cannot keep its year")  # fmt: skip
            return s.where(s.isna(), s.astype(str).str[:4])
        if rule.kind == "study_offset":  # a study-level date: back by the smallest subject offset
            smallest = int(self.subj["OFFSET_DAYS"].min()) if len(self.subj) else 0
            moved, bad = _shift(col, pd.Series(smallest, index=rows))
            self._problems(pd.Series(bad, index=rows).reindex(self.df.index, fill_value=False).to_numpy(), var,
                           "deid-offset", "not an ISO 8601 date (YYYY-MM-DD[Thh:mm], YYYY-MM or YYYY)")  # fmt: skip
            return moved
        if rule.kind == "offset":
            days = self.days.loc[rows]
            no_subject = (col.notna() & days.isna()).reindex(self.df.index, fill_value=False).to_numpy()
            self._problems(no_subject, var, "deid-offset", "a date with no subject to take its offset from")
            moved, bad = _shift(col, days)
            self._problems(pd.Series(bad, index=rows).reindex(self.df.index, fill_value=False).to_numpy(), var,
                           "deid-offset", "not an ISO 8601 date (YYYY-MM-DD[Thh:mm], YYYY-MM or YYYY)")  # fmt: skip
            return moved
        if rule.kind == "recode":
            ids = self._column("USUBJID", rows) if "USUBJID" in self.df.columns else None
            if ids is None:
                self._problems(col.notna().reindex(self.df.index, fill_value=False).to_numpy(), var, "deid-recode",
                               "an identifier with no USUBJID in its record")  # fmt: skip
                return col
            target = {"subject": "SUBJID_NEW" if var != "USUBJID" else "USUBJID_NEW", "site": "SITEID_NEW"}[rule.arg]
            return ids.map(self.subj[target]).astype(object).where(col.notna(), np.nan)
        if rule.kind == "copy":
            if rule.arg not in self.df.columns:
                self._problems(col.notna().reindex(self.df.index, fill_value=False).to_numpy(), var, "deid-copy",
                               f"{rule.arg} (the coded value to copy) is not in the dataset")  # fmt: skip
                return col
            coded = self._column(rule.arg, rows).astype(object)
            return coded.where(coded.notna(), np.nan)
        if rule.kind == "generalise":
            who = self._column("USUBJID", rows) if "USUBJID" in self.df.columns else pd.Series(rows, index=rows)
            counts = pd.DataFrame({"v": col, "s": who}).dropna().groupby("v")["s"].nunique()
            small = set(counts.index[counts < self.rules.k])
            if small:
                self.notes[var] = f"{len(small)} value(s) held by fewer than {self.rules.k} subjects -> {rule.arg!r}"
            return col.where(~col.isin(small), rule.arg)
        if rule.kind == "cap_age":
            over, to = rule.arg
            num = pd.to_numeric(col, errors="coerce")
            capped = num > over
            if "AGEU" in self.df.columns:
                unit = self._column("AGEU", rows).astype(object)
                wrong = capped & (unit.isna() | (unit.astype(str).str.upper() != "YEARS"))
                self._problems(wrong.reindex(self.df.index, fill_value=False).to_numpy(), var, "deid-age",
                               "an age over the cap whose AGEU is not YEARS")  # fmt: skip
            if capped.any():
                self.notes[var] = f"{int(capped.sum())} age(s) over {over} set to {to}"
            return col.where(~capped, float(to)).astype(col.dtype)
        raise AssertionError(f"unhandled rule {rule.kind}")  # the loader admits no other kind

    def run(self, var: str, rule: Rule) -> int:
        before = self.df[var].copy()
        if rule.kind != "by":
            self.df[var] = self.apply(var, rule, self.df.index)
        else:
            key = self.df[rule.by].astype(object) if rule.by in self.df.columns else None
            if key is None:
                self._problems(self.df[var].notna().to_numpy(), var, "deid-by", f"{rule.by} is not in the dataset")
                return 0
            new = self.df[var].copy().astype(object)
            for value, rows in key.groupby(key.fillna(""), sort=True).groups.items():
                sub = rule.cases.get(str(value), rule.otherwise)
                if sub is None:
                    mask = self.df.index.isin(rows)
                    self._problems(mask, var, "deid-by",
                                   f"no de-identification rule for {rule.by} = {value!r} in {self.rules.file.name}")
                    continue
                if str(value) not in rule.cases and sub.kind == "keep":
                    vals = self.df.loc[rows, var].astype(object)
                    dates = vals.notna() & vals.astype(str).str.match(_LOOKS_LIKE_DATE.pattern)
                    self._problems(self.df.index.isin(vals.index[dates]), var, "deid-by",
                                   f"a date under `else: keep` for {rule.by} = {value!r}: give it a rule")
                new.loc[rows] = self.apply(var, sub, pd.Index(rows))
            self.df[var] = new.astype(before.dtype) if before.dtype != object else new
        changed = ~((before == self.df[var]) | (before.isna() & self.df[var].isna()))
        return int(changed.sum())


def deidentify(
    datasets: Mapping[str, pd.DataFrame], rules: DeidRules, secret: bytes, files: Mapping[str, str] | None = None
) -> DeidResult:
    """De-identified copies of ``datasets`` (inputs are not modified); problems are collected, not raised."""
    problems: list[Problem] = []
    for name, df in datasets.items():
        for var in df.columns:
            if rule_for(rules, name, var) is None:
                problems.append(problem((files or {}).get(name, name), "", var, "", "deid-rule",
                                        f"no de-identification rule for {name}.{var} in {rules.file}: "
                                        "add one (a new variable is never passed on unreviewed)"))  # fmt: skip
    if problems:
        return DeidResult({}, {}, [], problems)
    subj = _subject_table(datasets, secret, rules)
    out: dict[str, pd.DataFrame] = {}
    report: list[dict[str, Any]] = []
    for name, df in datasets.items():
        app = _Applier(name, df.copy(), subj, rules, (files or {}).get(name, name))
        # identifiers last: offsets and generalisation look subjects up by their original USUBJID
        order = sorted(df.columns, key=lambda v: v == "USUBJID")
        for var in order:
            vr = rule_for(rules, name, var)
            assert vr is not None
            changed = app.run(var, vr.rule)
            report.append({"dataset": name, "variable": var, "class": vr.cls, "rule": _describe(vr.rule),
                           "changed": changed, "note": app.notes.get(var, ""), "why": vr.why})  # fmt: skip
        problems.extend(app.problems)
        out[name] = app.df
    key = {
        "subjects": subj[["USUBJID", "USUBJID_NEW", "SUBJID", "SUBJID_NEW", "SITEID", "SITEID_NEW", "OFFSET_DAYS"]]
        .astype(object).where(subj.notna(), np.nan).replace({np.nan: None}).to_dict("records"),
    }
    return DeidResult(out, key, report, problems)


def _describe(rule: Rule) -> str:
    if rule.kind == "by":
        cases = ", ".join(f"{k}: {_describe(v)}" for k, v in rule.cases.items())
        other = f"; else {_describe(rule.otherwise)}" if rule.otherwise else ""
        return f"by {rule.by} ({cases}{other})"
    return rule.kind if rule.arg is None else f"{rule.kind} {rule.arg}"
