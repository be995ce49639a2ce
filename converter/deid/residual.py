"""The residual check: does a de-identified package still hold anything that identifies a subject?

It compares the de-identified datasets (and the raw bytes of every file written) with the original package:

* an original USUBJID, a removed value (a name, a birth date) or a replaced verbatim term anywhere in any file;
* a subject's SUBJID or SITEID that survived recoding;
* a date that the rules say moves and did not move;
* a variable the rules empty (``remove``) that still has a value.

Every hit is a :class:`Leak` naming the file, the dataset, the variable and what was found (never the whole value
of a direct identifier: the message shows the kind and the place).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from converter.deid.rules import DeidRules, rule_for

__all__ = ["Leak", "residual_check"]

_MIN_TOKEN = 6  # shorter original values (codes like "1", "Y") are too common to be evidence on their own


@dataclass(frozen=True)
class Leak:
    file: str
    dataset: str
    variable: str
    what: str

    def __str__(self) -> str:
        where = ":".join(p for p in (self.file, self.dataset, self.variable) if p)
        return f"{where}: {self.what}"


def _tokens(original: Mapping[str, pd.DataFrame], rules: DeidRules) -> dict[str, str]:
    """Original values that must not appear anywhere: token -> what it is."""
    found: dict[str, str] = {}
    for name, df in original.items():
        for var in df.columns:
            vr = rule_for(rules, name, var)
            if vr is None or vr.rule.kind == "keep" or (vr.cls != "direct" and vr.rule.kind != "copy"):
                continue
            values = df[var].dropna().astype(str)
            if vr.rule.kind == "copy" and vr.rule.arg in df.columns:  # verbatim text that differs from the coded term
                coded = df.loc[values.index, vr.rule.arg].astype(str)
                values = values[values.str.upper() != coded.str.upper()]
                # a verbatim that a kept dictionary term of the dataset spells out ("Mucositis" in the LLT "Mucositis
                # oral") says nothing the package may not say: no evidence of a leak
                kept = _kept_text(df, name, rules)
                values = values[[not any(v.upper() in t for t in kept) for v in values]]
            for v in pd.unique(values):
                if len(v) >= _MIN_TOKEN:
                    found[v] = f"original {name}.{var}"
    return found


def _kept_text(df: pd.DataFrame, name: str, rules: DeidRules) -> set[str]:
    """The distinct upper-cased text values of the dataset's variables that the rules keep as they are."""
    out: set[str] = set()
    for var in df.columns:
        vr = rule_for(rules, name, var)
        if vr is not None and vr.rule.kind == "keep" and df[var].dtype == object:
            out.update(str(v).upper() for v in pd.unique(df[var].dropna()))
    return out


def _cell_leaks(deid: Mapping[str, pd.DataFrame], tokens: Mapping[str, str]) -> list[Leak]:
    leaks: list[Leak] = []
    if not tokens:
        return leaks
    for name, df in deid.items():
        for var in df.columns:
            col = df[var]
            if col.dtype != object:
                continue
            text = col.dropna().astype(str)
            hit = text[text.isin(tokens.keys())]
            for v in pd.unique(hit)[:5]:
                leaks.append(Leak("", name, var, f"holds an {tokens[v]} value"))
    return leaks


def _moved_and_removed(original: Mapping[str, pd.DataFrame], deid: Mapping[str, pd.DataFrame],
                       rules: DeidRules) -> list[Leak]:  # fmt: skip
    leaks: list[Leak] = []
    for name, before in original.items():
        after = deid.get(name)
        if after is None or len(after) != len(before):
            leaks.append(Leak("", name, "", "dataset missing or its row count changed"))
            continue
        for var in before.columns:
            vr = rule_for(rules, name, var)
            if vr is None or var not in after.columns:
                continue
            a, b = before[var].reset_index(drop=True), after[var].reset_index(drop=True)
            if vr.rule.kind == "offset":
                same = a.notna() & (a.astype(str) == b.astype(str))
                if same.any():
                    leaks.append(Leak("", name, var, f"{int(same.sum())} date(s) not moved"))
            elif vr.rule.kind == "recode":
                same = a.notna() & (a.astype(str) == b.astype(str))
                if same.any():
                    leaks.append(Leak("", name, var, f"{int(same.sum())} identifier(s) not recoded"))
    return leaks


def _file_leaks(files: Iterable[Path], tokens: Mapping[str, str]) -> list[Leak]:
    leaks: list[Leak] = []
    needles = [(t.encode("utf-8"), what) for t, what in tokens.items()]
    for path in files:
        data = path.read_bytes()
        seen = {what for needle, what in needles if needle in data}
        leaks.extend(Leak(path.name, "", "", f"holds an {what} value") for what in sorted(seen))
    return leaks


def residual_check(
    original: Mapping[str, pd.DataFrame],
    deid: Mapping[str, pd.DataFrame] | None,
    rules: DeidRules,
    files: Iterable[Path] = (),
    written: Mapping[str, pd.DataFrame] | None = None,
) -> list[Leak]:
    """Every trace of a direct identifier left in ``deid`` (row for row the de-identified ``original``: dates
    that did not move, identifiers not recoded), in the datasets as ``written`` (read back from disk, in any row
    order: original values, removed variables with values) and in the bytes of ``files``; empty when clean."""
    tokens = _tokens(original, rules)
    return [
        *(_cell_leaks(deid, tokens) if deid is not None else []),
        *(_moved_and_removed(original, deid, rules) if deid is not None else []),
        *(_cell_leaks(written, tokens) if written is not None else []),
        *(_removed_with_values(written, rules) if written is not None else []),
        *_file_leaks(files, tokens),
    ]


def _removed_with_values(written: Mapping[str, pd.DataFrame], rules: DeidRules) -> list[Leak]:
    leaks: list[Leak] = []
    for name, df in written.items():
        for var in df.columns:
            vr = rule_for(rules, name, var)
            if vr is not None and vr.rule.kind == "remove":
                col = df[var]
                if (col.notna() & (col.astype(str) != "")).any():
                    leaks.append(Leak("", name, var, "still has values (the rule removes it)"))
    return leaks
