"""SDTM -> ADaM on the example cohort (simulate(59) at the default seed): structure, data contract, checks across
datasets, independence of row order, and the ADaM package (XPT v5, Dataset-JSON, define.xml) written and read back."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from converter.adam.pipeline import AdamResult, cross_checks, data_cut, sdtm_to_adam
from converter.records.simulate import DEFAULT_SEED, simulate
from converter.sdtm.pipeline import records_to_sdtm


@pytest.fixture(scope="module")
def sdtm() -> dict[str, pd.DataFrame]:
    return records_to_sdtm(simulate(59, DEFAULT_SEED)).datasets


@pytest.fixture(scope="module")
def adam(sdtm: dict[str, pd.DataFrame]) -> AdamResult:
    return sdtm_to_adam(sdtm)


def test_cross_checks_pass(adam: AdamResult) -> None:
    assert adam.checks == []
    assert set(adam.datasets) == {"ADSL", "ADAE", "ADTTE", "ADRS"}


def test_adsl_one_record_per_dm_subject(adam: AdamResult, sdtm: dict[str, pd.DataFrame]) -> None:
    adsl = adam.datasets["ADSL"]
    assert len(adsl) == len(sdtm["DM"]) == adsl["USUBJID"].nunique()
    assert set(adsl["USUBJID"]) == set(sdtm["DM"]["USUBJID"])
    for name in ("ADAE", "ADTTE", "ADRS"):
        assert set(adam.datasets[name]["USUBJID"]) <= set(adsl["USUBJID"])


def test_data_contract_and_numeric_dates(adam: AdamResult) -> None:
    for name, df in adam.datasets.items():
        spec = adam.specs[name]
        assert list(df.columns) == spec.column_names
        for var in spec.variables:
            col = df[var.name]
            if var.type == "integer":
                assert str(col.dtype) == "Int64", (name, var.name)
            elif var.type == "float":
                assert col.dtype == np.float64, (name, var.name)
            else:
                assert col.dtype == object and all(isinstance(x, str) for x in col.dropna()), (name, var.name)
            if var.format == "DATE9.":
                assert var.type == "integer"
                assert col.dropna().between(0, 30000).all(), (name, var.name)  # SAS days: 1960 .. 2042


def test_adsl_derivations(adam: AdamResult, sdtm: dict[str, pd.DataFrame]) -> None:
    adsl = adam.datasets["ADSL"]
    assert adsl["SALVLN"].isin(["1", "2", "3+"]).all()
    assert (adsl["SALVLNN"].astype(int).astype(str).replace("3", "3+") == adsl["SALVLN"]).all()
    resp = adsl["BOR"].isin(["CR", "CRp", "CRi", "MCR"])
    assert (adsl["RESPFL"] == np.where(resp, "Y", "N")).all()
    assert (adsl["CRFL"] == np.where(adsl["BOR"] == "CR", "Y", "N")).all()
    assert adsl.loc[resp, "FIRSTRDT"].notna().all() and adsl.loc[~resp, "FIRSTRDT"].isna().all()
    assert (adsl.loc[adsl["TRANSFL"] == "Y", "TRANSDT"].notna()).all()
    dead = adsl["DTHFL"] == "Y"
    assert adsl.loc[dead, "DTHDT"].notna().all() and adsl.loc[dead, "DTHCAUS"].notna().all()
    assert (adsl.loc[dead, "EOSSTT"] == "DISCONTINUED").all()
    assert (adsl["TRTSDT"] <= adsl["TRTEDT"]).all()
    assert (adsl["LSTALVDT"] >= adsl["TRTEDT"]).all()
    dm = sdtm["DM"].set_index("USUBJID")
    first_dose = ((pd.to_datetime(dm["RFXSTDTC"]) - pd.Timestamp("1960-01-01")).dt.days).astype("Int64")
    assert (adsl.set_index("USUBJID")["TRTSDT"] == first_dose.reindex(adsl["USUBJID"])).all()


def test_adsl_arm_treatment_codes_end_of_study_and_death_flag(adam: AdamResult,
                                                              sdtm: dict[str, pd.DataFrame]) -> None:
    adsl = adam.datasets["ADSL"].set_index("USUBJID")
    dm = sdtm["DM"].set_index("USUBJID").reindex(adsl.index)
    assert (adsl["ARMCD"] == dm["ARMCD"]).all() and (adsl["ACTARMCD"] == dm["ACTARMCD"]).all()
    assert (adsl["TRT01PN"] == 1).all()
    treated = adsl["ACTARMCD"] == "INO-MHCVD"
    assert (adsl.loc[treated, "TRT01AN"] == 1).all() and adsl.loc[~treated, "TRT01AN"].isna().all()
    ds = sdtm["DS"]
    eos = ds[ds["DSSCAT"] == "STUDY PARTICIPATION"].set_index("USUBJID")["DSSTDTC"]
    eos_days = (pd.to_datetime(eos) - pd.Timestamp("1960-01-01")).dt.days
    assert (adsl.loc[eos.index, "EOSDT"] == eos_days).all()
    assert adsl.loc[adsl["EOSSTT"] == "ONGOING", "EOSDT"].isna().all()
    dead = adsl["DTHFL"] == "Y"
    dthdtc = (pd.to_datetime(dm.loc[dead, "DTHDTC"]) - pd.Timestamp("1960-01-01")).dt.days
    assert (adsl.loc[dead, "DTHDT"] == dthdtc).all()
    assert adsl["DTHDTF"].isna().all()  # every death date of the example is complete: nothing imputed


def test_adtte_parameters(adam: AdamResult, sdtm: dict[str, pd.DataFrame]) -> None:
    tte = adam.datasets["ADTTE"]
    adsl = adam.datasets["ADSL"]
    counts = tte["PARAMCD"].value_counts().to_dict()
    n_resp = int((adsl["RESPFL"] == "Y").sum())
    assert counts == {"OS": len(adsl), "RFS": n_resp, "DOR": n_resp}
    assert (tte["AVAL"] == tte["ADT"].astype(float) - tte["STARTDT"].astype(float) + 1).all()
    assert (tte["AVAL"] >= 1).all()
    assert tte["CNSR"].isin([0, 1]).all()
    events = tte[tte["CNSR"] == 0]
    assert events["EVNTDESC"].notna().all() and events["CNSDTDSC"].isna().all()
    assert events["SRCDOM"].isin(["DS", "RS"]).all() and events["SRCSEQ"].notna().all()
    os_ = tte[tte["PARAMCD"] == "OS"].set_index("USUBJID")
    dead = adsl.set_index("USUBJID")["DTHFL"].eq("Y")
    assert (os_.loc[dead[dead].index, "CNSR"] == 0).all()
    assert (os_.loc[dead[~dead].index, "ADT"] == adsl.set_index("USUBJID").loc[dead[~dead].index, "LSTALVDT"]).all()
    cut = data_cut(adam.datasets, sdtm)
    assert cut is not None and (events["ADT"] <= cut).all()


def test_adtte_dor_counts_death_from_any_cause_and_censorings_are_described(adam: AdamResult,
                                                                            sdtm: dict[str, pd.DataFrame]) -> None:
    tte = adam.datasets["ADTTE"]
    adsl = adam.datasets["ADSL"].set_index("USUBJID")
    dor = tte[tte["PARAMCD"] == "DOR"].set_index("USUBJID")
    rfs = tte[tte["PARAMCD"] == "RFS"].set_index("USUBJID")
    # the FDA definition: relapse or death from any cause; a responder who died without relapse is an event
    died = dor.index[adsl.loc[dor.index, "DTHFL"].eq("Y").to_numpy()]
    assert len(died) > 0
    rs = sdtm["RS"]
    # a relapse keeps RSORRES as collected and is the CDISC term in RSSTRESC (ONCRSR C38155)
    rel = rs["RSORRES"] == "RELAPSE"
    assert rel.any() and (rs.loc[rel, "RSSTRESC"] == "RELAPSED DISEASE").all()
    relapsed = set(rs.loc[rs["RSSTRESC"] == "RELAPSED DISEASE", "USUBJID"])
    assert relapsed and relapsed == set(adsl.index[adsl["RELDT"].notna()])
    died_no_relapse = [u for u in died if u not in relapsed]
    assert died_no_relapse, "the example has responders who died without relapse"
    assert (dor.loc[died_no_relapse, "CNSR"] == 0).all()
    assert (dor.loc[died_no_relapse, "EVNTDESC"] == "DEATH").all()
    # measured from the first response, DOR and RFS coincide on this definition
    cols = ["STARTDT", "ADT", "AVAL", "CNSR", "EVNTDESC", "SRCDOM", "SRCSEQ"]
    pd.testing.assert_frame_equal(dor[cols].sort_index(), rfs.loc[dor.index, cols].sort_index())
    # admiralonco: a censored record carries its censoring's description in EVNTDESC as in CNSDTDSC
    cens = tte[tte["CNSR"] == 1]
    assert len(cens) > 0 and cens["EVNTDESC"].notna().all()
    assert (cens["EVNTDESC"] == cens["CNSDTDSC"]).all()
    assert set(cens["CNSDTDSC"]) == {"LAST KNOWN ALIVE DATE", "LAST RESPONSE ASSESSMENT"}
    # ASEQ: 1..n per subject in PARAMN order
    ordered = tte.sort_values(["USUBJID", "PARAMN"])
    expected = ordered.groupby("USUBJID").cumcount() + 1
    assert (ordered["ASEQ"].astype(int) == expected).all()
    assert not tte.duplicated(["USUBJID", "ASEQ"]).any()


def test_adae_carries_the_meddra_hierarchy_of_ae(adam: AdamResult, sdtm: dict[str, pd.DataFrame]) -> None:
    ae = adam.datasets["ADAE"].set_index(["USUBJID", "AESEQ"]).sort_index()
    src = sdtm["AE"].set_index(["USUBJID", "AESEQ"]).sort_index()
    names = ["AELLT", "AELLTCD", "AEDECOD", "AEPTCD", "AEHLT", "AEHLTCD", "AEHLGT", "AEHLGTCD",
             "AEBODSYS", "AEBDSYCD", "AESOC", "AESOCCD"]
    assert [c for c in adam.datasets["ADAE"].columns if c in names] == names  # OCCDS order: LLT up to SOC
    for c in names:
        left, right = ae[c].astype(object), src.loc[ae.index, c].astype(object)
        assert (left.isna() == right.isna()).all(), c
        assert (left.dropna().astype(str) == right.dropna().astype(str).str.replace(r"\.0$", "", regex=True)).all(), c
    assert ae["AESOCCD"].notna().all() and ae["AELLTCD"].notna().any()


def test_adae_categories_and_flags(adam: AdamResult) -> None:
    ae = adam.datasets["ADAE"]
    cats = {c: set(ae[c].dropna()) for c in ("CQ01NAM", "CQ02NAM", "CQ03NAM", "CQ04NAM")}
    assert cats == {"CQ01NAM": {"PROLONGED THROMBOCYTOPENIA"}, "CQ02NAM": {"INFECTION"},
                    "CQ03NAM": {"HYPERBILIRUBINEMIA"}, "CQ04NAM": {"VOD"}}  # fmt: skip
    assert (ae.loc[ae["AEVOD"] == "Y", "CQ04NAM"] == "VOD").all()
    te = ae[ae["TRTEMFL"] == "Y"]
    assert (te.groupby("USUBJID")["AOCCFL"].apply(lambda s: (s == "Y").sum()) == 1).all()
    assert ae.loc[ae["TRTEMFL"] != "Y", "AOCCFL"].isna().all()
    worst = ae[ae["AOCCIFL"] == "Y"].set_index("USUBJID")["ATOXGRN"]
    assert (worst == te.groupby("USUBJID")["ATOXGRN"].max().reindex(worst.index)).all()
    imputed = ae["AENDTF"].notna()
    assert (ae.loc[imputed, "AEENDTC"].str.len() < 10).all()
    assert (ae.loc[~imputed & ae["AENDT"].notna(), "AEENDTC"].str.len() == 10).all()


def test_adrs_best_response(adam: AdamResult) -> None:
    rs = adam.datasets["ADRS"]
    adsl = adam.datasets["ADSL"].set_index("USUBJID")
    bor = rs[rs["PARAMCD"] == "BOR"].set_index("USUBJID")
    assert (bor["AVALC"] == adsl.loc[bor.index, "BOR"]).all()
    anl = rs[rs["ANL01FL"] == "Y"].set_index("USUBJID")
    assert (anl["AVALC"] == bor.loc[anl.index, "AVALC"]).all() and (anl["ADT"] == bor.loc[anl.index, "ADT"]).all()
    neg = bor["MRDSTAT"].eq("NEGATIVE")
    assert (neg == adsl.loc[bor.index, "MRDNEGFL"].eq("Y")).all()


def test_adrs_parameters_visits_mrd_and_aseq(adam: AdamResult, sdtm: dict[str, pd.DataFrame]) -> None:
    rs = adam.datasets["ADRS"]
    assert set(rs["PARAMCD"]) == {"OVR", "BOR", "MRD"}
    ovr = rs[rs["PARAMCD"] == "OVR"]
    src = sdtm["RS"][sdtm["RS"]["RSTESTCD"] == "OVRLRESP"].set_index(["USUBJID", "RSSEQ"])
    assert len(ovr) == len(src)
    keyed = ovr.set_index(["USUBJID", "SRCSEQ"])
    assert (keyed["AVISIT"] == src.loc[keyed.index, "VISIT"]).all()
    assert (keyed["AVISITN"].astype(float) == src.loc[keyed.index, "VISITNUM"].astype(float)).all()
    bor = rs[rs["PARAMCD"] == "BOR"]
    assert bor["AVISIT"].isna().all() and bor["AVISITN"].isna().all()
    lb = sdtm["LB"]
    mrd_src = lb[(lb["LBTESTCD"] == "MRD") & lb["LBSTRESC"].isin(["NEGATIVE", "POSITIVE"])].set_index(["USUBJID", "LBSEQ"])
    mrd = rs[rs["PARAMCD"] == "MRD"].set_index(["USUBJID", "SRCSEQ"])
    assert len(mrd) == len(mrd_src) and (mrd["SRCDOM"] == "LB").all()
    assert (mrd["AVALC"] == mrd_src.loc[mrd.index, "LBSTRESC"]).all()
    assert (mrd["AVAL"] == np.where(mrd["AVALC"] == "NEGATIVE", 0.0, 1.0)).all()
    ordered = rs.sort_values(["USUBJID", "PARAMN", "ADT", "SRCSEQ"])
    assert (ordered["ASEQ"].astype(int) == ordered.groupby("USUBJID").cumcount() + 1).all()


def test_independent_of_row_order(sdtm: dict[str, pd.DataFrame], adam: AdamResult) -> None:
    rng = random.Random(11)
    shuffled = {
        k: v.sample(frac=1.0, random_state=rng.randrange(10**6)).reset_index(drop=True) for k, v in sdtm.items()
    }
    again = sdtm_to_adam(shuffled)
    for name, df in adam.datasets.items():
        pd.testing.assert_frame_equal(df, again.datasets[name], check_exact=True)


def test_cross_checks_detect_a_late_event(adam: AdamResult, sdtm: dict[str, pd.DataFrame]) -> None:
    tte = adam.datasets["ADTTE"].copy()
    i = tte.index[tte["CNSR"] == 0][0]
    tte.loc[i, "ADT"] = tte.loc[i, "ADT"] + 1
    msgs = cross_checks({**adam.datasets, "ADTTE": tte}, sdtm)
    assert any("is not" in m and "cited record" in m for m in msgs)


def test_package_written_and_read_back(adam: AdamResult, tmp_path: Path) -> None:
    from converter.adam.commands import read_package, write_adam_package

    listing = write_adam_package(adam, tmp_path)
    assert "define.xml" in listing
    names = {p.name for p in tmp_path.iterdir()}
    assert {"adae.json", "adae.xpt", "adrs.json", "adrs.xpt", "adsl.json", "adsl.xpt", "adtte.json", "adtte.xpt",
            "define.xml"} <= names  # fmt: skip
    assert b"ADaMIG" in (tmp_path / "define.xml").read_bytes()
    back = read_package(tmp_path, adam.specs)
    for name, df in adam.datasets.items():
        got = back[name]
        assert list(got.columns) == list(df.columns)
        for var in adam.specs[name].variables:
            a, b = df[var.name], got[var.name]
            if var.type in ("integer", "float"):
                assert np.allclose(a.astype(float), b.astype(float), equal_nan=True), (name, var.name)
            else:
                assert a.tolist() == b.tolist(), (name, var.name)
