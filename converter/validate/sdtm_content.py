"""SDTM content rules: what a data-fitness reviewer (and CDISC CORE) checks beyond structure.

* MedDRA coding of AE: AESOC present (CORE-000264), codes 8-digit numbers, the primary SOC one of the 27 MedDRA
  SOCs with its own code (``mappings/ct/meddra-soc.yaml``), AEBODSYS = AESOC, one term one code and one path
  within the data, and - when the user gives a MedDRA dictionary (:mod:`.meddra`) - every term, code and
  primary path as the dictionary has them;
* seriousness: AESER = Y has a criterion (CORE-000266), AESER = N has none;
* --TPT / --TPTNUM pairs (CORE-000026, CORE-000685), one-to-one;
* --STAT = NOT DONE has --REASND (CORE-000774);
* VISITNUM on every record of a dataset that carries visits, VISITNUM / VISIT one-to-one;
* remission responses (CR/CRp/CRi) against the blood counts near their date (:mod:`.response_counts`);
(The SDTMIG's Expected variables per domain are checked by the standard level, :mod:`.standard_rules`.)

Pure functions over ``{dataset name: DataFrame}``, vectorised per column; each returns findings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from converter.paths import mappings_dir
from converter.spec.yamlines import load_yaml_lines, strip_lines
from converter.validate.common import Coded, coded, finding, is_null, numbers, row_findings, text_values
from converter.validate.findings import Finding
from converter.validate.meddra import MeddraDictionary
from converter.validate.response_counts import check_response_counts

Frames = Mapping[str, pd.DataFrame]

#: the MedDRA code variables of AE and the term each codes
AE_MEDDRA_PAIRS = (
    ("AELLT", "AELLTCD"),
    ("AEDECOD", "AEPTCD"),
    ("AEHLT", "AEHLTCD"),
    ("AEHLGT", "AEHLGTCD"),
    ("AEBODSYS", "AEBDSYCD"),
    ("AESOC", "AESOCCD"),
)
#: SDTMIG 3.4 seriousness criteria of AE (CORE-000266 counts any of them)
SERIOUS_CRITERIA = ("AESCAN", "AESCONG", "AESDISAB", "AESDTH", "AESHOSP", "AESLIFE", "AESOD", "AESMIE")


def meddra_socs() -> dict[str, int] | None:
    """The 27 MedDRA SOCs by name with their codes (``mappings/ct/meddra-soc.yaml``); None when the file is absent."""
    path = mappings_dir() / "ct" / "meddra-soc.yaml"
    if not path.is_file():
        return None
    doc = strip_lines(load_yaml_lines(path))
    return {str(s["name"]): int(s["code"]) for s in doc.get("meddra_soc") or []}


def _codes_ok(col: pd.Series) -> np.ndarray:
    """True where the value is null or a whole number of 8 digits."""
    v = numbers(col)
    return np.asarray(np.isnan(v) | ((v == np.floor(v)) & (v >= 10_000_000) & (v <= 99_999_999)), dtype=bool)


def check_meddra(
    frames: Frames, socs: Mapping[str, int] | None = None, dictionary: MeddraDictionary | None = None
) -> list[Finding]:
    """AE's MedDRA coding: present, well-formed, internally consistent, and as the dictionary has it."""
    ae = frames.get("AE")
    if ae is None or not len(ae):
        return []
    out: list[Finding] = []
    if "AESOC" not in ae.columns:
        return [finding("CORE-000264", "AE", "AESOC", "AESOC is not in AE")]
    soc = text_values(ae["AESOC"])
    out += row_findings("CORE-000264", "AE", "AESOC", ae, is_null(ae["AESOC"]), "AESOC is null for {t!r}",
                        t=text_values(ae["AEDECOD"]) if "AEDECOD" in ae.columns else soc)  # fmt: skip
    for _, code in AE_MEDDRA_PAIRS:
        if code in ae.columns:
            bad = ~_codes_ok(ae[code])
            out += row_findings("INO-SDTM-050", "AE", code, ae, bad, "{v!r} is not an 8-digit MedDRA code",
                                v=text_values(ae[code]))  # fmt: skip
    if socs is not None:
        known = np.isin(soc.astype(str), list(socs)) | is_null(ae["AESOC"])
        out += row_findings("INO-SDTM-051", "AE", "AESOC", ae, ~known, "{s!r} is not a MedDRA SOC name", s=soc)
        if "AESOCCD" in ae.columns:
            want = np.asarray([socs.get(str(s), np.nan) if s is not None else np.nan for s in soc], dtype=float)
            got = numbers(ae["AESOCCD"])
            bad = known & ~np.isnan(got) & ~np.isnan(want) & (got != want)
            msg = "AESOCCD {g:.0f} is not the code of {s!r} ({w:.0f})"
            out += row_findings("INO-SDTM-051", "AE", "AESOCCD", ae, bad, msg, g=got, s=soc, w=want)
    if "AEBODSYS" in ae.columns:
        bod = text_values(ae["AEBODSYS"])
        bad = pd.Series(bod).ne(pd.Series(soc)).to_numpy() & ~is_null(ae["AESOC"])
        out += row_findings(
            "INO-SDTM-052", "AE", "AEBODSYS", ae, bad, "AEBODSYS {b!r} is not AESOC {s!r}", b=bod, s=soc
        )
    if "AEBDSYCD" in ae.columns and "AESOCCD" in ae.columns:
        b, s = numbers(ae["AEBDSYCD"]), numbers(ae["AESOCCD"])
        bad = ~(np.isnan(b) & np.isnan(s)) & ~(b == s)
        out += row_findings("INO-SDTM-052", "AE", "AEBDSYCD", ae, bad, "AEBDSYCD {b} is not AESOCCD {s}", b=b, s=s)
    out += _one_to_one(ae, "AEDECOD", ("AEPTCD", "AEHLT", "AEHLTCD", "AEHLGT", "AEHLGTCD", "AESOC", "AESOCCD"))
    out += _one_to_one(ae, "AELLTCD", ("AELLT", "AEDECOD"))
    if dictionary is not None:
        out += dictionary.check_ae(ae)
    return out


def _one_to_one(df: pd.DataFrame, key: str, others: tuple[str, ...]) -> list[Finding]:
    """INO-SDTM-053: each non-null ``key`` value has one value of each of ``others`` in the dataset. Decided on
    the columns' shared coded forms: their distinct texts numbered (equal texts, equal numbers), spread by code."""
    if key not in df.columns:
        return []
    out: list[Finding] = []
    kc = coded(df[key])
    term_of, terms = pd.factorize(kc.texts, use_na_sentinel=True)  # per distinct value (the final None: -1)
    key_codes = term_of[kc.codes]
    keyed = key_codes >= 0
    for var in others:
        if var not in df.columns:
            continue
        vc = coded(df[var])
        value_of = pd.factorize(np.where(vc.texts == None, "<null>", vc.texts))[0]  # noqa: E711 - elementwise
        value_codes = value_of[vc.codes]
        width = int(value_codes.max()) + 1 if len(value_codes) else 1
        pairs = np.unique(key_codes[keyed].astype(np.int64) * width + value_codes[keyed])  # each (term, value) once
        values_per_term = np.bincount(pairs // width, minlength=len(terms))
        if not (values_per_term > 1).any():
            continue
        k = pd.Series(text_values(df[key]), dtype=object)
        v = pd.Series(text_values(df[var]), dtype=object).fillna("<null>")
        for term in sorted(np.asarray(terms, dtype=object)[values_per_term > 1]):  # as groupby orders its keys
            vals = sorted(set(v[k == term]))
            out.append(finding("INO-SDTM-053", "AE", var, f"{key} {term!r} has {len(vals)} values of {var}: {vals}"))
    return out


def check_seriousness(frames: Frames) -> list[Finding]:
    """AESER = Y needs a criterion Y (CORE-000266); AESER = N has none Y (INO-SDTM-056)."""
    ae = frames.get("AE")
    if ae is None or "AESER" not in ae.columns or not len(ae):
        return []
    ser = text_values(ae["AESER"])
    present = [c for c in SERIOUS_CRITERIA if c in ae.columns]
    any_y = np.zeros(len(ae), dtype=bool)
    for c in present:
        any_y |= text_values(ae[c]) == "Y"
    term = text_values(ae["AEDECOD"]) if "AEDECOD" in ae.columns else ser
    out = row_findings("CORE-000266", "AE", "AESER", ae, (ser == "Y") & ~any_y,
                       "serious AE {t!r} has no seriousness criterion Y", t=term)  # fmt: skip
    out += row_findings("INO-SDTM-056", "AE", "AESER", ae, (ser == "N") & any_y,
                        "non-serious AE {t!r} has a seriousness criterion Y", t=term)  # fmt: skip
    return out


def check_timepoints(frames: Frames) -> list[Finding]:
    """--TPT needs --TPTNUM (CORE-000026 variable, CORE-000685 row), one-to-one (INO-SDTM-057)."""
    out: list[Finding] = []
    for name, df in frames.items():
        dom = name[:2]
        tpt, num = f"{dom}TPT", f"{dom}TPTNUM"
        if tpt not in df.columns:
            continue
        if num not in df.columns:
            out.append(finding("CORE-000026", name, tpt, f"{tpt} is in {name} but {num} is not"))
            continue
        bad = ~is_null(df[tpt]) & is_null(df[num])
        if bad.any():
            t = text_values(df[tpt])
            out += row_findings("CORE-000685", name, num, df, bad, f"{tpt} {{t!r}} has no {num}", t=t)
        by_number, by_text = _partners(numbers(df[num]), coded(df[tpt]))
        for v, n in [*by_text, *by_number]:  # as grouped nunique counts them: the texts' groups first
            out.append(finding("INO-SDTM-057", name, tpt, f"{tpt}/{num}: {v!r} pairs with {n} values"))
    return out


def check_not_done(frames: Frames) -> list[Finding]:
    """--STAT = NOT DONE needs --REASND (CORE-000774); --REASND only with NOT DONE (INO-SDTM-058)."""
    out: list[Finding] = []
    for name, df in frames.items():
        dom = name[:2]
        stat, reas = f"{dom}STAT", f"{dom}REASND"
        if stat not in df.columns:
            continue
        nd = text_values(df[stat]) == "NOT DONE"
        missing = nd & (is_null(df[reas]) if reas in df.columns else np.ones(len(df), dtype=bool))
        tests = text_values(df[f"{dom}TESTCD"]) if f"{dom}TESTCD" in df.columns else text_values(df[stat])
        out += row_findings("CORE-000774", name, reas, df, missing, f"{stat} NOT DONE without {reas} ({{t}})", t=tests)
        if reas in df.columns:
            out += row_findings("INO-SDTM-058", name, reas, df, ~nd & ~is_null(df[reas]),
                                f"{reas} populated but {stat} is not NOT DONE ({{t}})", t=tests)  # fmt: skip
    return out


def check_visits(frames: Frames) -> list[Finding]:
    """Every record of a dataset with VISITNUM has one (INO-SDTM-060); VISITNUM / VISIT one-to-one (INO-SDTM-061)."""
    out: list[Finding] = []
    for name, df in frames.items():
        if "VISITNUM" not in df.columns or name in ("TV", "SV") or name.startswith("SUPP"):
            continue
        vn = numbers(df["VISITNUM"])
        dom = name[:2]
        dtc = next((c for c in (f"{dom}DTC", f"{dom}STDTC") if c in df.columns), None)
        when = text_values(df[dtc]) if dtc else vn
        out += row_findings(
            "INO-SDTM-060", name, "VISITNUM", df, np.isnan(vn), "VISITNUM is null (record of {d})", d=when
        )
        if "VISIT" in df.columns:
            by_number, by_text = _partners(vn, coded(df["VISIT"]))
            for key, n in [*by_number, *by_text]:
                out.append(finding("INO-SDTM-061", name, "VISITNUM", f"VISITNUM/VISIT: {key!r} pairs with {n} values"))
    return out


def _partners(numbers_: np.ndarray, texts: Coded) -> tuple[list[tuple[object, int]], list[tuple[object, int]]]:
    """Over the rows where both are present: each number paired with more than one text, and each text paired
    with more than one number (each ascending), with how many distinct partners it has; as a grouped ``nunique``
    orders and counts them, from distinct code pairs (the texts numbered per distinct value of their column)."""
    ncode, nums = pd.factorize(numbers_, use_na_sentinel=True)
    text_of, txts = pd.factorize(texts.texts, use_na_sentinel=True)  # the final None (code -1) stays -1
    tcode = text_of[texts.codes]
    both = (ncode >= 0) & (tcode >= 0)
    width = len(txts) + 1
    pairs = np.unique(ncode[both].astype(np.int64) * width + tcode[both])
    per_number = np.bincount(pairs // width, minlength=len(nums))
    per_text = np.bincount(pairs % width, minlength=len(txts))
    out: list[tuple[object, int]] = sorted((float(nums[i]), int(per_number[i])) for i in np.flatnonzero(per_number > 1))
    many: list[tuple[object, int]] = sorted((str(txts[i]), int(per_text[i])) for i in np.flatnonzero(per_text > 1))
    return out, many


def run_content_rules(
    frames: Frames, socs: Mapping[str, int] | None = None, meddra_dir: Path | None = None
) -> list[Finding]:
    """Every content rule; MedDRA against the dictionary in ``meddra_dir`` when given."""
    dictionary = MeddraDictionary.read(meddra_dir) if meddra_dir is not None else None
    return (
        check_meddra(frames, socs, dictionary)
        + check_seriousness(frames)
        + check_timepoints(frames)
        + check_not_done(frames)
        + check_visits(frames)
        + check_response_counts(frames)
    )
