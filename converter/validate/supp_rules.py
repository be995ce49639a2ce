"""SDTM conformance rules on supplemental qualifier datasets (SUPP--): the parent dataset exists (CORE-000457),
IDVAR is one of its variables (CORE-000712), every record points at a parent record (CORE-000206), one QNAM per
parent record (CORE-000551). Pure functions over ``{dataset name: DataFrame}``; the parents' keys are made once
per distinct pair of values."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from converter.validate.common import Coded, coded, row_findings, text_values
from converter.validate.findings import Finding

__all__ = ["check_supp"]

Frames = Mapping[str, pd.DataFrame]


def _key_text(v: object) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v).strip() or None


def _key_texts(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the column's values and :func:`_key_text` of each distinct value (a final None for code -1)."""
    codes, uniques = pd.factorize(col.to_numpy(dtype=object), use_na_sentinel=True)
    return codes, np.array([*(_key_text(u) for u in uniques), None], dtype=object)


def _parent_keys(parent: pd.DataFrame, idvar: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(USUBJID, IDVAR value) of every record of a SUPP's parent dataset, as key texts: each distinct pair of
    values once, as two arrays."""
    if "USUBJID" not in parent.columns or not len(parent):
        return np.empty(0, dtype=object), np.empty(0, dtype=object)
    su, tu = _key_texts(parent["USUBJID"])
    sv, tv = _key_texts(parent[idvar]) if idvar else (np.full(len(parent), -1), np.array([None], dtype=object))
    pairs = np.unique((su % len(tu)) * len(tv) + (sv % len(tv)))  # each distinct pair once (-1: the final None)
    return tu[pairs // len(tv)], tv[pairs % len(tv)]


def _orphans(subjects: np.ndarray, values: np.ndarray, known: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Where the (subject, IDVAR value) texts of SUPP rows are no pair of ``known``: both sides' texts numbered
    together (equal texts, equal numbers; None matches None), the pairs compared as one int64 each."""
    n = len(known[0])
    u = pd.factorize(np.concatenate([known[0], subjects]), use_na_sentinel=False)[0].astype(np.int64)
    v, distinct = pd.factorize(np.concatenate([known[1], values]), use_na_sentinel=False)
    key = u * max(len(distinct), 1) + v
    out: np.ndarray = ~np.isin(key[n:], key[:n])
    return out


def _text_numbers(c: Coded) -> np.ndarray:
    """Per row a number of its text (equal texts, equal numbers; no text is one number too), from the distinct
    values' texts of the column's coded form."""
    numbers: np.ndarray = pd.factorize(c.texts, use_na_sentinel=False)[0][c.codes]
    return numbers


def check_supp(frames: Frames) -> list[Finding]:
    out: list[Finding] = []
    for name, df in frames.items():
        if not name.startswith("SUPP") or not {"RDOMAIN", "USUBJID"} <= set(df.columns):
            continue
        rdom = text_values(df["RDOMAIN"])
        subj = text_values(df["USUBJID"])
        idvar = text_values(df["IDVAR"]) if "IDVAR" in df.columns else np.full(len(df), None, dtype=object)
        idval = text_values(df["IDVARVAL"]) if "IDVARVAL" in df.columns else np.full(len(df), None, dtype=object)
        no_parent_ds = np.zeros(len(df), dtype=bool)
        bad_idvar = np.zeros(len(df), dtype=bool)
        orphan = np.zeros(len(df), dtype=bool)
        # the rows of each distinct (RDOMAIN, IDVAR) together: its parent's keys made once, then looked up per row
        rc = coded(df["RDOMAIN"])
        none = Coded(np.full(len(df), -1), np.array([None], dtype=object))
        ic = coded(df["IDVAR"]) if "IDVAR" in df.columns else none
        ic_texts, ni = ic.texts, len(ic.texts)
        group = (rc.codes % len(rc.texts)) * ni + (ic.codes % ni)
        for g in np.unique(group):
            rows = np.flatnonzero(group == g)
            parent = frames.get(rc.texts[g // ni] or "")
            iv = ic_texts[g % ni]
            if parent is None:
                no_parent_ds[rows] = True
                continue
            if iv is not None and iv not in parent.columns:
                bad_idvar[rows] = True
                continue
            known = _parent_keys(parent, iv)
            vals = idval[rows] if iv else np.full(len(rows), None, dtype=object)
            orphan[rows] = _orphans(subj[rows], vals, known)
        out += row_findings(
            "CORE-000457", name, "RDOMAIN", df, no_parent_ds, "RDOMAIN {r!r} is not a dataset of the package", r=rdom
        )
        out += row_findings(
            "CORE-000712", name, "IDVAR", df, bad_idvar, "IDVAR {v!r} is not a variable of {r}", v=idvar, r=rdom
        )
        if orphan.any():  # the key texts of the message made for the rows reported only
            key = np.full(len(df), "", dtype=object)
            for i in np.flatnonzero(orphan):
                key[i] = f" and {idvar[i]}={idval[i]}" if idvar[i] else ""
            out += row_findings("CORE-000206", name, "IDVARVAL", df, orphan, "no {r} record with USUBJID {u}{k}",
                                r=rdom, u=subj, k=key)  # fmt: skip
        if "QNAM" in df.columns:
            cols = [c for c in ("RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM") if c in df.columns]
            keys = pd.DataFrame({c: _text_numbers(coded(df[c])) for c in cols})  # equal texts, equal numbers
            dup = keys.duplicated(keep=False).to_numpy()
            out += row_findings(
                "CORE-000551", name, "QNAM", df, dup, "QNAM {q} twice for the same parent record",
                q=text_values(df["QNAM"]),
            )  # fmt: skip
    return out
