"""MH, CM, SV, SE, TV, TI and the moved SUPPDM qualifiers on the bundled example, checked against the source
records read independently (pandas on the CSV files), not through the specs."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest

from converter.records.sources import read_records
from converter.sdtm.pipeline import SdtmResult, records_to_sdtm

CSV = Path(__file__).resolve().parent.parent / "examples" / "nct01371630" / "csv"


@functools.cache
def sdtm() -> SdtmResult:
    return records_to_sdtm(read_records(CSV))


def raw(form: str) -> pd.DataFrame:
    return pd.read_csv(CSV / f"{form}.csv", dtype=str, keep_default_na=False).replace("", None)


def usubjid(subjid: pd.Series) -> pd.Series:
    return "NCT01371630-" + subjid.astype(str)


def test_mh_is_the_diagnosis_with_its_date() -> None:
    mh, diag = sdtm().datasets["MH"], raw("DIAG")
    assert len(mh) == len(diag) == mh["USUBJID"].nunique()
    got = dict(zip(mh["USUBJID"], mh["MHSTDTC"], strict=True))
    assert got == dict(zip(usubjid(diag["SUBJID"]), diag["DIAGDT"], strict=True))  # partial dates kept
    assert set(mh["MHCAT"]) == {"PRIMARY DIAGNOSIS"}
    partial = mh["MHSTDTC"].str.len() < 10
    assert partial.any() and mh.loc[partial, "MHSTDY"].isna().all()  # no study day for a partial date
    assert (mh.loc[~partial, "MHSTDY"] < 0).all()  # diagnosed before the first dose


def test_cm_holds_every_prior_regimen_in_order_and_the_prespecified_question() -> None:
    cm, prior, diag = sdtm().datasets["CM"], raw("PRIORTX"), raw("DIAG")
    reg = cm[cm["CMSCAT"] == "PRIOR REGIMEN"]
    assert len(reg) == len(prior)
    got = sorted(zip(reg["USUBJID"], reg["CMSPID"], reg["CMTRT"], strict=True))
    assert got == sorted(zip(usubjid(prior["SUBJID"]), prior["PTSPID"], prior["PTTRT"], strict=True))
    # the number of prior regimens collected on DIAG is the number of CM regimen records per subject
    n = reg.groupby("USUBJID").size()
    assert n.to_dict() == dict(zip(usubjid(diag["SUBJID"]), diag["NPRIOR"].astype(int), strict=True))
    pre = cm[cm["CMSCAT"] == "PRE-SPECIFIED AGENT"]
    answered = diag[diag["PRBLIN"].notna()]
    assert len(pre) == len(answered) and set(pre["CMPRESP"]) == {"Y"} and set(pre["CMTRT"]) == {"BLINATUMOMAB"}
    assert dict(zip(pre["USUBJID"], pre["CMOCCUR"], strict=True)) == dict(
        zip(usubjid(answered["SUBJID"]), answered["PRBLIN"], strict=True)
    )
    assert cm["CMDECOD"].isna().all()  # WHODrug is licensed: no dictionary term is invented
    assert set(cm["CMCAT"]) == {"PRIOR CANCER THERAPY", "SUPPORTIVE CARE"}
    sup, con = cm[cm["CMCAT"] == "SUPPORTIVE CARE"], raw("CONMED")
    assert len(sup) == len(con) > 0
    got_sup = sorted(zip(sup["USUBJID"], sup["CMTRT"], sup["CMINDC"], sup["CMSTDTC"], sup["CMENDTC"], strict=True))
    want_sup = zip(usubjid(con["SUBJID"]), con["CMTRT"], con["CMINDC"], con["CMSTDT"], con["CMENDT"], strict=True)
    assert got_sup == sorted(want_sup)
    assert (sup["CMSTDTC"] <= sup["CMENDTC"]).all() and set(sup["EPOCH"]) <= {"TREATMENT", "FOLLOW-UP"}
    assert cm.loc[cm["CMCAT"] == "PRIOR CANCER THERAPY", "EPOCH"].isna().all()  # no dates, no epoch
    # CMSEQ 1..n per subject
    for _, g in cm.groupby("USUBJID"):
        assert sorted(g["CMSEQ"]) == list(range(1, len(g) + 1))


def test_suppdm_keeps_only_what_has_no_standard_home() -> None:
    supp = sdtm().datasets["SUPPDM"]
    assert set(supp["QNAM"]) == {"SALVLN", "PHSTAT", "CYTOGEN", "NPRIOR", "PRSCT"}


def test_sv_courses_span_first_dose_to_the_day_before_the_next_course() -> None:
    sv, ex = sdtm().datasets["SV"], raw("EXPOS")
    eot = raw("EOT").assign(USUBJID=lambda d: usubjid(d["SUBJID"])).set_index("USUBJID")["EOTDT"]
    ex = ex.assign(USUBJID=usubjid(ex["SUBJID"]), COURSE=ex["COURSE"].astype(int))
    starts = ex.groupby(["USUBJID", "COURSE"])["ADMDT"].min()
    courses = sv[sv["VISITNUM"].between(1, 8)]
    assert len(courses) == len(starts)
    for row in courses.itertuples():
        key = (row.USUBJID, int(row.VISITNUM))
        assert starts[key] == row.SVSTDTC
        nxt = (row.USUBJID, int(row.VISITNUM) + 1)
        want = (
            (pd.Timestamp(starts[nxt]) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
            if nxt in starts.index
            else eot[row.USUBJID]
        )
        assert want == row.SVENDTC, key
        assert f"COURSE {int(row.VISITNUM)}" == row.VISIT
    assert (sv["SVSTDTC"] <= sv["SVENDTC"]).all()
    assert not sv.duplicated(["USUBJID", "VISITNUM"]).any()


@pytest.mark.parametrize(("dataset", "dtc"), [("LB", "LBDTC"), ("RS", "RSDTC")])
def test_every_visit_of_the_findings_is_in_sv_and_tv(dataset: str, dtc: str) -> None:
    ds, sv, tv = sdtm().datasets[dataset], sdtm().datasets["SV"], sdtm().datasets["TV"]
    with_visit = ds[ds["VISITNUM"].notna()]
    assert set(with_visit["VISITNUM"]) <= set(tv["VISITNUM"])
    m = with_visit.merge(sv, on=["USUBJID", "VISITNUM"], how="left", validate="many_to_one")
    assert m["SVSTDTC"].notna().all()
    day = m[dtc].str[:10]
    assert ((day >= m["SVSTDTC"]) & (day <= m["SVENDTC"])).all()


def test_se_follows_ta_and_elements_abut() -> None:
    se, ta = sdtm().datasets["SE"], sdtm().datasets["TA"]
    arm = dict(zip(ta["TAETORD"], ta["ETCD"], strict=True))
    assert all(arm[o] == e for o, e in zip(se["TAETORD"], se["ETCD"], strict=True))
    epoch = dict(zip(ta["TAETORD"], ta["EPOCH"], strict=True))
    assert all(epoch[o] == e for o, e in zip(se["TAETORD"], se["EPOCH"], strict=True))
    for _, g in se.sort_values(["USUBJID", "TAETORD"]).groupby("USUBJID"):
        assert g["ETCD"].iloc[0] == "SCRN" and g["ETCD"].iloc[-1] == "FU"
        # each element ends when the next starts (SDTMIG), no gaps
        assert list(g["SEENDTC"].iloc[:-1]) == list(g["SESTDTC"].iloc[1:])


def test_trial_design_datasets() -> None:
    ds = sdtm().datasets
    assert list(ds["TV"]["VISITNUM"]) == sorted(ds["TV"]["VISITNUM"]) and set(ds["TV"]["VISITNUM"]) == {
        0, 1, 2, 3, 4, 5, 6, 7, 8, 99
    }  # fmt: skip
    ti = ds["TI"]
    assert ti["IETESTCD"].is_unique and set(ti["IECAT"]) == {"INCLUSION"}
    ts = ds["TS"].set_index("TSPARMCD")
    assert ts.loc["INDIC", "TSVALCD"] == "277571004" and ts.loc["INDIC", "TSVCDREF"] == "SNOMED"
    assert ts.loc["FCNTRY", "TSVALCD"] == "USA" and ts.loc["COMPTRT", "TSVALNF"] == "NA"
