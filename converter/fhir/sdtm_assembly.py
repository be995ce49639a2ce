"""FHIR -> SDTM, the last step: the column lists read from the resources become typed, ordered SDTM datasets.

:class:`Assembly` is the part of :class:`~converter.fhir.to_sdtm.Converter` that knows the SDTM side: it types
each column by the SDTM spec (else by the FHIR transform), merges rows of one dataset that several resource
types give (DM from Patient and ResearchSubject, on the source ``key``), numbers rows that came without a
--SEQ per subject, fills STUDYID from DM, derives study days again and orders columns and rows as the spec does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from converter.fhir.located import FromFhir
from converter.fhir.mapping import RESULT_TYPES, Element, FhirSpecs, rederivations
from converter.fhir.study_days import as_submitted, study_days
from converter.fhir.transforms import as_texts
from converter.spec.model import DatasetSpec

_NUMBERS = frozenset({int, float, bool, type(None)})
_TEXTS = frozenset({str, type(None)})


@dataclass
class Part:
    """Rows of one dataset from one source (or child group)."""

    dataset: str
    columns: dict[str, list[Any]]
    n: int
    key: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)  # var -> transform kind (for typing)


class Assembly:
    """Typing, merging, numbering and ordering of the converted rows (see the module doc)."""

    specs: FhirSpecs
    sdtm_specs: Mapping[str, DatasetSpec]

    def is_integer(self, dataset: str | None, var: str) -> bool:
        spec = self.sdtm_specs.get(dataset or "")
        if spec is not None:
            try:
                return spec.variable(var).type == "integer"
            except KeyError:
                pass
        return var.endswith("SEQ") or var.endswith("ORD")

    # -- assembling datasets --------------------------------------------------------------------------------------
    def assemble(self, parts: list[Part], sink: FromFhir) -> dict[str, pd.DataFrame]:
        by_ds: dict[str, list[Part]] = {}
        for p in parts:
            by_ds.setdefault(p.dataset, []).append(p)
        order = self._var_order()
        out: dict[str, pd.DataFrame] = {}
        for ds, group in by_ds.items():
            frames = [self._frame(p, ds) for p in group]
            keyed = [p for p in group if p.key]
            if len(keyed) == len(group) and len(group) > 1:
                key = list(group[0].key)
                df = frames[0]
                for f in frames[1:]:
                    df = df.merge(f, on=key, how="outer", suffixes=("", "__r"))
                    for c in [c for c in df.columns if c.endswith("__r")]:
                        base = c[:-3]
                        df[base] = df[base].where(df[base].notna(), df[c])
                        df = df.drop(columns=c)
            else:
                df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            df = self._finish(ds, df, order.get(ds, []), sink)
            out[ds] = df
        self._fill_studyid(out)
        self._study_days(out)
        self._none_for_nan(out)
        return dict(sorted(out.items()))

    @staticmethod
    def _none_for_nan(out: dict[str, pd.DataFrame]) -> None:
        """Text columns hold ``str`` or ``None`` (the outer merge of DM and the STUDYID fill leave NaN behind)."""
        for df in out.values():
            for c in df.columns:
                col = df[c]
                if col.dtype != object:
                    continue
                vals = col.to_numpy()
                na = pd.isna(vals)
                if na.any():
                    vals = vals.copy()
                    vals[na] = None
                    df[c] = pd.Series(vals, index=df.index, dtype=object)

    @staticmethod
    def _fill_studyid(out: dict[str, pd.DataFrame]) -> None:
        """STUDYID of rows whose resource does not say it (SUPPDM rows ride on the Patient): the subject's, from DM."""
        dm = out.get("DM")
        if dm is None or "STUDYID" not in dm.columns or "USUBJID" not in dm.columns:
            return
        study = {u: s for u, s in zip(dm["USUBJID"], dm["STUDYID"], strict=True) if u is not None and s is not None}
        for ds, df in out.items():
            if ds == "DM" or "STUDYID" not in df.columns or "USUBJID" not in df.columns:
                continue
            missing = df["STUDYID"].isna()
            if missing.any():
                df.loc[missing, "STUDYID"] = df.loc[missing, "USUBJID"].map(study)

    def _frame(self, p: Part, ds: str) -> pd.DataFrame:
        data: dict[str, Any] = {}  # arrays, not Series: no index to align column by column
        for var, vals in p.columns.items():
            data[var] = self._typed(ds, var, vals, p.kinds.get(var))
        return pd.DataFrame(data, index=pd.RangeIndex(p.n))

    def _sdtm_type(self, ds: str, var: str, kind: str | None) -> str:
        spec = self.sdtm_specs.get(ds)
        if spec is not None:
            try:
                t = spec.variable(var).type
                return t if t in ("integer", "float") else "text"
            except KeyError:
                pass
        if kind == "identifier":
            return "integer" if self.is_integer(ds, var) else "text"
        return RESULT_TYPES.get(kind or "", "text")

    def _typed(self, ds: str, var: str, vals: list[Any], kind: str | None) -> Any:
        """The column's values as an array of its SDTM type: float64, Int64 (integers) or object (text)."""
        t = self._sdtm_type(ds, var, kind)
        if t in ("integer", "float"):
            if set(map(type, vals)) <= _NUMBERS:  # JSON numbers (None: NaN), converted at once
                arr = np.array(vals, dtype="float64")
            else:  # text and anything else: float() of each, NaN where it has no number
                nums: list[float] = []
                for v in vals:
                    try:
                        nums.append(float(v) if v is not None else np.nan)
                    except (TypeError, ValueError):
                        nums.append(np.nan)
                arr = np.array(nums, dtype="float64")
            finite = arr[~np.isnan(arr)]
            if t == "integer" and np.all(np.mod(finite, 1) == 0):
                return pd.array(arr, dtype="Int64")
            return arr
        obj = np.empty(len(vals), dtype=object)
        if set(map(type, vals)) <= _TEXTS and "" not in vals:
            obj[:] = vals  # as_texts would give the same values
        else:
            obj[:] = as_texts(vals)
        return obj

    def _var_order(self) -> dict[str, list[str]]:
        """Per dataset, its variables in the order the specs name them (for datasets without an SDTM spec)."""
        out: dict[str, list[str]] = {}
        for s in self.specs.sources():
            groups: list[tuple[str | None, Iterable[Element]]] = [(s.dataset, s.elements)]
            groups += [(c.dataset, c.elements) for c in s.children]
            for ds, elements in groups:
                if ds is None:
                    continue
                lst = out.setdefault(ds, [])
                for e in elements:
                    if e.var and e.var not in lst:
                        lst.append(e.var)
                ident = s.identifier if ds == s.dataset else None
                if ident is not None:
                    for v in ident.value.vars:
                        if v not in lst:
                            lst.append(v)
        return out

    def column_order(self, ds: str, columns: Iterable[str]) -> list[str]:
        """``columns`` of dataset ``ds`` in the order a conversion gives them (its spec's, else the FHIR specs')."""
        return self._column_order(ds, list(columns), self._var_order().get(ds, []))

    def _column_order(self, ds: str, columns: list[str], fallback: list[str]) -> list[str]:
        spec = self.sdtm_specs.get(ds)
        if spec is not None:
            cols = [c for c in spec.column_names if c in columns]
        else:
            have = set(columns)
            head = ["STUDYID", "DOMAIN", "RDOMAIN", "USUBJID"]
            cols = [c for c in head if c in have]
            cols += [c for c in fallback if c in have and c not in cols]
        cols += [c for c in columns if c not in cols]
        return cols

    def _finish(self, ds: str, df: pd.DataFrame, fallback: list[str], sink: FromFhir) -> pd.DataFrame:
        spec = self.sdtm_specs.get(ds)
        is_supp = ds.startswith("SUPP")
        if not is_supp and "DOMAIN" not in df.columns:
            df["DOMAIN"] = pd.Series([ds] * len(df), dtype=object)
        self._assign_seq(ds, df, sink)
        keep = set(spec.column_names) if spec is not None else set()
        keep |= {"STUDYID", "DOMAIN", "RDOMAIN", "USUBJID", f"{ds[:2]}SEQ", "IDVAR", "IDVARVAL"}
        empty = [c for c in df.columns if c not in keep and df[c].isna().all()]
        if empty:
            df = df.drop(columns=empty)
        cols = self._column_order(ds, list(df.columns), fallback)
        if spec is not None:
            keys = [k for k in spec.keys if k in df.columns]
        else:
            keys = [k for k in ("STUDYID", "USUBJID", f"{ds[:2]}SEQ", "IDVAR", "IDVARVAL", "QNAM") if k in df.columns]
        df = df[cols]
        if keys and len(df):
            df = df.sort_values(keys, kind="stable", na_position="last")
        return df.reset_index(drop=True)

    def _assign_seq(self, ds: str, df: pd.DataFrame, sink: FromFhir) -> None:
        """Rows that came without a --SEQ (resources written elsewhere) get the next numbers of their subject."""
        seq = f"{ds[:2]}SEQ"
        if ds.startswith("SUPP") or seq not in df.columns or "USUBJID" not in df.columns:
            return
        missing = df[seq].isna()
        if not missing.any():
            return
        dtc = next((c for c in (f"{ds[:2]}STDTC", f"{ds[:2]}DTC") if c in df.columns), None)
        values = df[seq].astype("Float64").copy()
        by_subject: dict[Any, list[Any]] = {}  # rows without a subject numbered together (groupby cannot)
        for r, u in zip(df.index[missing], df.loc[missing, "USUBJID"], strict=True):
            by_subject.setdefault(None if pd.isna(u) else u, []).append(r)
        for _u, rows in by_subject.items():
            same = df["USUBJID"].isna() if _u is None else df["USUBJID"] == _u
            start = df.loc[same, seq].max()
            start = 0 if pd.isna(start) else int(start)
            if dtc is not None:
                rows.sort(key=lambda r: str(df.at[r, dtc]) if df.at[r, dtc] is not None else "~")
            for k, r in enumerate(rows, start=1):
                values.at[r] = start + k
        df[seq] = values.astype("Int64")
        sink.unnumbered[ds] = sink.unnumbered.get(ds, 0) + int(missing.sum())

    def _study_days(self, out: dict[str, pd.DataFrame]) -> None:
        dm = out.get("DM")
        if dm is None or "RFSTDTC" not in dm.columns or "USUBJID" not in dm.columns:
            return
        for ds, rules in rederivations(self.specs).items():
            df = out.get(ds)
            if df is None or "USUBJID" not in df.columns:
                continue
            for var, rule in rules.items():
                src = rule.get("study_day")
                if not src or src not in df.columns:
                    continue
                derived = study_days(dm, df, src)
                if var in df.columns:  # the submitted value, carried where it is not the derivation's
                    df[var] = as_submitted(df[var], derived).array
                else:
                    df[var] = pd.array(derived, dtype="Int64")
            spec = self.sdtm_specs.get(ds)
            if spec is not None:
                cols = [c for c in spec.column_names if c in df.columns]
                cols += [c for c in df.columns if c not in cols]
                out[ds] = df[cols]


__all__ = ["Assembly", "Part"]
