"""Controlled terminology under mappings/ct: loads, carries NCI C-codes, and accepts every collected value.

C-codes in the CT files come from CDISC CT files/extracts found in public sources (see the comments in the YAML).
Terms or codelists whose C-code could not be confirmed carry no code and are listed here explicitly, so that a
missing code is always a documented decision and never an accident.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from converter.records.schema import load_forms
from converter.spec.loader import load_terminology
from converter.spec.model import Codelist, Terminology

ROOT = Path(__file__).resolve().parents[1]
CT_DIR = ROOT / "mappings" / "ct"
FORMS = ROOT / "mappings" / "records" / "forms.yaml"

C_CODE = re.compile(r"^C\d+$")

# Codelists the converter needs, by CDISC submission short name (FREQ is CDISC's name for the brief's "FRQ").
SDTM_CODELISTS = {
    "SEX", "RACE", "ETHNIC", "COUNTRY", "AGEU", "NY", "ND", "ROUTE", "UNIT", "FREQ", "DOMAIN", "EPOCH", "TOXGR",
    "AESEV", "OUT", "ACN", "NCOMPLT", "PROTMLST", "DSCAT", "LBTESTCD", "LBTEST", "SPECTYPE", "METHOD", "RSTESTCD",
    "RSTEST", "ONCRSR", "TSPARMCD", "TSPARM", "TPHASE", "TBLIND", "TCNTRL", "TINDTP", "TTYPE", "INTMODEL",
    "INTTYPE", "STYPE", "SEXPOP", "FRM", "NRIND",
}  # fmt: skip
ADAM_CODELISTS = {"DATEFL", "TIMEFL", "DTYPE", "PARAMTYP", "SBJTSTAT"}
SPONSOR_CODELISTS = {
    "REL", "DONOR", "PHSTAT", "CYTOGEN", "SALVLN", "MRDRES", "RELSITE", "FUSTAT", "PRCAT",
    "TTEPRMCD", "TTEPARM", "RSPRMCD", "RSPARM", "AGEGR1", "SALVGR1", "EVNTDESC", "CNSDTDSC", "MHCAT", "CMCAT",
}  # fmt: skip

# CDISC codelists whose own C-code is not confirmed (TOXGR: no such codelist in SDTM CT 2022-03-25; CDASH links
# AETOXGR to C87162).
NO_CODELIST_CODE = {"TOXGR"}

# Terms of CDISC/ISO codelists without a C-code: sponsor extensions of extensible codelists, and CDISC terms
# whose code could not be confirmed in any source searched (UNCONFIRMED in the YAML comments).
SPONSOR_EXTENSIONS = {
    "NCOMPLT": {"PROCEEDED TO TRANSPLANT"},
    "LBTESTCD": {"MRD", "MRDLVL", "CD22"},
    "LBTEST": {"Minimal Residual Disease", "Minimal Residual Disease Level", "CD22 Expression on Blasts"},
    "ONCRSR": {"CRp", "MCR"},  # RELAPSE is standardized to the CDISC term RELAPSED DISEASE (C38155)
    "ONCRSCAT": {"MD ANDERSON ALL RESPONSE CRITERIA"},
}
# Not terms of SDTM CT 2022-03-25 (the newest package text read), so their codes are unconfirmed.
UNCONFIRMED = {
    "TCNTRL": {"HISTORICAL"},
}


def _allowed_without_code(cid: str) -> set[str]:
    return SPONSOR_EXTENSIONS.get(cid, set()) | UNCONFIRMED.get(cid, set())


# forms.yaml coded field -> codelist(s) its collected values must map to (union when several).
FORM_FIELD_CODELISTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("DEMOG", "SEX"): ("SEX",),
    ("DEMOG", "RACE"): ("RACE",),
    ("DEMOG", "ETHNIC"): ("ETHNIC",),
    ("DIAG", "SALVLN"): ("SALVLN",),
    ("DIAG", "PHSTAT"): ("PHSTAT",),
    ("DIAG", "CYTOGEN"): ("CYTOGEN",),
    ("DIAG", "PRSCT"): ("NY",),
    ("DIAG", "PRBLIN"): ("NY",),
    ("EXPOS", "DOSEU"): ("UNIT",),
    ("EXPOS", "FREQ"): ("FREQ",),
    ("EXPOS", "ROUTE"): ("ROUTE",),
    ("RESP", "RESP"): ("ONCRSR",),
    ("RESP", "MRDRES"): ("MRDRES", "ND"),  # NOT DONE -> LBSTAT
    ("AE", "AESER"): ("NY",),
    ("AE", "AESDTH"): ("NY",),
    ("AE", "AESLIFE"): ("NY",),
    ("AE", "AESHOSP"): ("NY",),
    ("AE", "AESDISAB"): ("NY",),
    ("AE", "AESCONG"): ("NY",),
    ("AE", "AESMIE"): ("NY",),
    ("AE", "AEACN"): ("ACN",),
    ("AE", "AEREL"): ("REL",),
    ("AE", "AEOUT"): ("OUT",),
    ("AE", "AEVOD"): ("NY",),
    ("LAB", "LBTEST"): ("LBTESTCD",),
    ("LAB", "LBUNIT"): ("UNIT",),
    ("SCT", "DONOR"): ("DONOR",),
    ("RELAPSE", "RELSITE"): ("RELSITE",),
    ("EOT", "EOTRSN"): ("NCOMPLT",),
    ("FU", "FUSTAT"): ("FUSTAT",),
}
# Coded fields that are free text in SDTM (no codelist): EXDRUG -> EXTRT (UNII/sponsor text), DTHCAUS -> DD/DS text;
# the EDC visit folders (VISIT) are the trial's own visit names (TV), not CDISC terms.
FREE_TEXT_FIELDS = {("EXPOS", "DRUG"), ("DEATH", "DTHCAUS"), ("LAB", "VISIT"), ("RESP", "VISIT"), ("RELAPSE", "VISIT")}


@pytest.fixture(scope="module")
def ct() -> Terminology:
    return load_terminology(CT_DIR)


@pytest.fixture(scope="module")
def raw_files() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(CT_DIR.glob("*.yaml"))}


def _maps(codelists: list[Codelist], value: str) -> str | None:
    for cl in codelists:
        hit = cl.collected_map().get(value.upper())
        if hit is not None:
            return hit
    return None


# ------------------------------------------------------------------------------------------------ loading


def test_loads_all_three_files(ct: Terminology, raw_files: dict[str, dict]) -> None:
    assert {"sdtm-ct.yaml", "adam-ct.yaml", "sponsor.yaml"} <= set(raw_files)
    assert raw_files["sdtm-ct.yaml"]["package"] == "SDTM CT 2024-03-29"
    assert raw_files["adam-ct.yaml"]["package"] == "ADaM CT 2024-03-29"
    assert "SDTM CT 2024-03-29" in ct.package
    assert "ADaM CT 2024-03-29" in ct.package


def test_codelist_ids_unique_across_files(raw_files: dict[str, dict]) -> None:
    seen: dict[str, str] = {}
    for name, doc in raw_files.items():
        for cid in doc["codelists"]:
            assert cid not in seen, f"codelist {cid} in both {seen[cid]} and {name}"
            seen[cid] = name


def test_required_codelists_exist(ct: Terminology) -> None:
    missing = (SDTM_CODELISTS | ADAM_CODELISTS | SPONSOR_CODELISTS | {"MEDDRA"}) - set(ct.codelists)
    assert not missing


def test_sponsor_codelists_are_sponsor(ct: Terminology, raw_files: dict[str, dict]) -> None:
    for cid in raw_files["sponsor.yaml"]["codelists"]:
        cl = ct.get(cid)
        if cid == "MEDDRA":
            continue
        assert cl.source == "Sponsor", cid
        assert cl.code is None, f"sponsor codelist {cid} must not claim an NCI code"
    for cid in SPONSOR_CODELISTS:
        assert ct.get(cid).source == "Sponsor", cid


def test_meddra_is_external_dictionary(ct: Terminology) -> None:
    cl = ct.get("MEDDRA")
    assert cl.source.startswith("MedDRA")
    assert re.search(r"\d+\.\d+", cl.source), "MedDRA version expected in source"
    assert cl.terms == ()


def test_country_is_iso_3166_alpha3(ct: Terminology) -> None:
    cl = ct.get("COUNTRY")
    assert cl.source.startswith("ISO 3166")
    assert {"USA", "MEX", "CAN"} <= cl.submission_values()
    assert all(re.fullmatch(r"[A-Z]{3}", v) for v in cl.submission_values())


# ------------------------------------------------------------------------------------------------ C-codes


def test_codes_are_nci_c_codes(ct: Terminology) -> None:
    for cid, cl in ct.codelists.items():
        if cl.code is not None:
            assert C_CODE.match(cl.code), (cid, cl.code)
        for t in cl.terms:
            if t.code is not None:
                assert C_CODE.match(t.code), (cid, t.submission, t.code)


def test_cdisc_codelists_have_codelist_code(ct: Terminology) -> None:
    for cid, cl in ct.codelists.items():
        if cl.source in ("Sponsor",) or cl.source.startswith("MedDRA") or cid in NO_CODELIST_CODE:
            continue
        assert cl.code is not None, f"{cid}: codelist C-code missing (add it to NO_CODELIST_CODE if unconfirmed)"
    for cid in NO_CODELIST_CODE:
        assert ct.get(cid).code is None, f"{cid} now has a code: remove it from NO_CODELIST_CODE"


def test_every_term_has_code_or_is_allow_listed(ct: Terminology) -> None:
    problems = []
    for cid, cl in ct.codelists.items():
        if cl.source == "Sponsor" or cl.source.startswith("MedDRA"):
            continue
        allowed = _allowed_without_code(cid)
        for t in cl.terms:
            if t.code is None and t.submission not in allowed:
                problems.append(f"{cid}.{t.submission}")
    assert not problems, f"terms without C-code and not allow-listed: {problems}"


def test_allow_list_is_not_stale(ct: Terminology) -> None:
    for cid in set(SPONSOR_EXTENSIONS) | set(UNCONFIRMED):
        cl = ct.get(cid)
        by_sub = {t.submission: t for t in cl.terms}
        for sub in _allowed_without_code(cid):
            assert sub in by_sub, f"allow-listed {cid}.{sub} is not a term"
            assert by_sub[sub].code is None, f"{cid}.{sub} has a code now: remove it from the allow-list"


def test_sponsor_extensions_only_in_extensible_codelists(ct: Terminology) -> None:
    for cid in SPONSOR_EXTENSIONS:
        assert ct.get(cid).extensible, cid


def test_known_codes(ct: Terminology) -> None:
    """Spot checks against the CDISC CT 2024-03-29 files (SEND/Protocol/ADaM CSV) and the CORE CT extract."""
    expected = {
        ("SEX", None): "C66731",
        ("SEX", "F"): "C16576",
        ("SEX", "M"): "C20197",
        ("NY", None): "C66742",
        ("ROUTE", "INTRAVENOUS"): "C38276",
        ("UNIT", "mg/m2"): "C67402",
        ("FREQ", "Q12H"): "C64502",
        ("OUT", None): "C66768",
        ("NCOMPLT", None): "C66727",
        ("LBTESTCD", "PLAT"): "C51951",
        ("ONCRSR", None): "C96785",
        ("ONCRSR", "CR"): "C4870",
        ("TPHASE", "PHASE II TRIAL"): "C15601",
        ("TCNTRL", "NONE"): "C41132",
        ("INTMODEL", "SINGLE GROUP"): "C82640",
        ("DATEFL", None): "C81223",
        ("COUNTRY", "USA"): "C17234",
    }
    for (cid, sub), code in expected.items():
        cl = ct.get(cid)
        got = cl.code if sub is None else next(t.code for t in cl.terms if t.submission == sub)
        assert got == code, (cid, sub, got)


def test_paired_test_codelists_share_codes(ct: Terminology) -> None:
    """--TESTCD and --TEST terms of the same test carry the same NCI concept code."""
    for code_cl, name_cl in (("LBTESTCD", "LBTEST"), ("RSTESTCD", "RSTEST"), ("TSPARMCD", "TSPARM")):
        names = {t.submission: t.code for t in ct.get(name_cl).terms}
        for t in ct.get(code_cl).terms:
            assert t.decode in names, f"{code_cl}.{t.submission}: decode {t.decode!r} not a {name_cl} term"
            assert names[t.decode] == t.code, (code_cl, t.submission)
        assert len(ct.get(code_cl).terms) == len(ct.get(name_cl).terms)


# ------------------------------------------------------------------------------------------------ forms.yaml


def test_every_coded_form_field_is_classified() -> None:
    forms = load_forms(FORMS)
    coded = {(f.oid, n) for f in forms.forms.values() for n, fld in f.fields.items() if fld.codes}
    unclassified = coded - set(FORM_FIELD_CODELISTS) - FREE_TEXT_FIELDS
    assert not unclassified, f"coded form fields with no codelist decision: {sorted(unclassified)}"


@pytest.mark.parametrize(("form", "field"), sorted(FORM_FIELD_CODELISTS))
def test_collected_values_map(ct: Terminology, form: str, field: str) -> None:
    fld = load_forms(FORMS).form(form).fields[field]
    codelists = [ct.get(c) for c in FORM_FIELD_CODELISTS[(form, field)]]
    unmapped = [v for v in fld.codes if _maps(codelists, v) is None]
    assert not unmapped, f"{form}.{field} values not in {FORM_FIELD_CODELISTS[(form, field)]}: {unmapped}"


def test_ae_grade_maps_to_toxgr(ct: Terminology) -> None:
    fld = load_forms(FORMS).form("AE").fields["AEGRADE"]
    lo, hi = int(fld.min if fld.min is not None else 1), int(fld.max if fld.max is not None else 5)
    cmap = ct.get("TOXGR").collected_map()
    assert all(str(g) in cmap for g in range(lo, hi + 1))
    assert ct.get("TOXGR").submission_values() == {"1", "2", "3", "4", "5"}


def test_form_units_are_in_unit_codelist(ct: Terminology) -> None:
    units = ct.get("UNIT").collected_map()
    for f in load_forms(FORMS).forms.values():
        for name, fld in f.fields.items():
            if fld.unit:
                assert fld.unit.upper() in units, f"{f.oid}.{name} unit {fld.unit!r} not in UNIT"
    assert "YEARS" in ct.get("AGEU").collected_map()


def test_brief_units_present(ct: Terminology) -> None:
    subs = ct.get("UNIT").submission_values()
    assert {"mg/m2", "mg", "g/m2", "%", "10^9/L", "mg/dL", "g/dL", "umol/L", "DAYS", "YEARS"} <= subs


# ------------------------------------------------------------------------------------------------ decisions


def test_eot_reason_decisions(ct: Terminology) -> None:
    cmap = ct.get("NCOMPLT").collected_map()
    assert cmap["TRANSPLANT"] == "PROCEEDED TO TRANSPLANT"  # sponsor extension of the extensible NCOMPLT
    assert cmap["NO RESPONSE"] == "LACK OF EFFICACY"
    assert cmap["PROGRESSIVE DISEASE OR RELAPSE"] == "PROGRESSIVE DISEASE"
    assert cmap["COMPLETED"] == "COMPLETED"


def test_mrd_is_sponsor_lab_test(ct: Terminology) -> None:
    mrd = next(t for t in ct.get("LBTESTCD").terms if t.submission == "MRD")
    assert mrd.code is None
    assert ct.get("LBTEST").collected_map()["MRD"] == "Minimal Residual Disease"
    assert "BONE MARROW" in ct.get("SPECTYPE").submission_values()
    assert "FLOW CYTOMETRY" in ct.get("METHOD").submission_values()
    assert ct.get("MRDRES").submission_values() == {"NEGATIVE", "POSITIVE"}
    assert ct.get("ND").collected_map()["NOT DONE"] == "NOT DONE"


def test_leukaemia_responses(ct: Terminology) -> None:
    cmap = ct.get("ONCRSR").collected_map()
    for v in ("CR", "CRp", "CRi", "MCR", "PR", "NR", "PD"):
        assert cmap[v.upper()] == v
    assert cmap["COMPLETE REMISSION"] == "CR"
    # the collected relapse (RELAPSE form) standardizes to the CDISC term with its NCIt code; MCR stays the
    # sponsor extension (CDISC mCR, C123591, is a plasma-cell marrow response: sdtm-ct.yaml ONCRSR)
    assert cmap["RELAPSE"] == "RELAPSED DISEASE"
    codes = {t.submission: t.code for t in ct.get("ONCRSR").terms}
    assert codes["RELAPSED DISEASE"] == "C38155" and codes["MCR"] is None and "mCR" not in codes


def test_salvage_groups(ct: Terminology) -> None:
    assert ct.get("SALVGR1").collected_map()["3+"] == "SALVAGE 3+"
    assert ct.get("SALVLN").collected_map()["3+"]


def test_trial_summary_parameters(ct: Terminology) -> None:
    """FDA/CDISC-required TS parameters (CORE-000740 / SDTMIG appendix) are all in TSPARMCD."""
    required = {
        "ADDON", "AGEMAX", "AGEMIN", "LENGTH", "PLANSUB", "RANDOM", "SEXPOP", "STOPRULE", "TBLIND", "TCNTRL",
        "TITLE", "TPHASE", "TTYPE", "OBJPRIM", "SPONSOR", "REGID", "OUTMSPRI", "FCNTRY", "ADAPT", "DCUTDTC",
        "DCUTDESC", "NARMS", "STYPE", "SSTDTC", "SENDTC", "ACTSUB", "HLTSUBJI", "TDIGRP", "TINDTP", "CURTRT",
        "TRT", "PCLAS", "INTMODEL", "INTTYPE", "SDTIGVER", "SDTMVER", "THERAREA", "INDIC",
    }  # fmt: skip
    assert required <= ct.get("TSPARMCD").submission_values()
    assert "PHASE II TRIAL" in ct.get("TPHASE").submission_values()


def test_spec_codelist_references_resolve(ct: Terminology) -> None:
    """Every `codelist:` named in the SDTM/ADaM specs is defined under mappings/ct."""
    missing = set()
    for p in sorted((ROOT / "mappings").glob("*/*.yaml")):
        if p.parent.name not in ("sdtm", "adam"):  # FHIR specs use `codelist: auto` (look-up by variable)
            continue
        for cid in re.findall(r"\bcodelist:\s*([A-Za-z0-9_]+)", p.read_text(encoding="utf-8")):
            if cid not in ct.codelists:
                missing.add(f"{p.relative_to(ROOT)}:{cid}")
    assert not missing, sorted(missing)


def test_terms_agree_with_the_shipped_ct_package(ct: Terminology) -> None:
    """Every CDISC codelist of the study CT that the shipped CT 2024-03-29 (converter/spec/cdisc-ct-2024-03-29.yaml,
    the NCI EVS export) also holds: same extensibility, each term's C-code that of the package (a concept recoded
    after an older package, such as EPOCH SCREENING C48262 -> C202487, fails here), and a term the package lacks
    only as an allow-listed sponsor extension of an extensible codelist."""
    package = yaml.load((ROOT / "converter" / "spec" / "cdisc-ct-2024-03-29.yaml").read_text(encoding="utf-8"),
                        Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # the safe loader, in C when built
    shipped = package["codelists"]
    problems, compared = [], 0
    for cid, cl in ct.codelists.items():
        if cl.code not in shipped:
            continue
        compared += 1
        ref = shipped[cl.code]
        codes = {str(sub): code for code, sub in ref["terms"]}
        if cl.extensible != bool(ref["extensible"]):
            problems.append(f"{cid}: extensible {cl.extensible}, the package says {ref['extensible']}")
        for t in cl.terms:
            if t.submission in codes:
                if t.code not in (None, codes[t.submission]):
                    problems.append(f"{cid}.{t.submission}: {t.code}, the package has {codes[t.submission]}")
                elif t.code is None:
                    problems.append(f"{cid}.{t.submission}: no code, the package has {codes[t.submission]}")
            elif t.submission not in SPONSOR_EXTENSIONS.get(cid, set()):
                problems.append(f"{cid}.{t.submission}: not a term of {cl.code} and not a listed sponsor extension")
    assert compared >= 20, f"only {compared} codelists compared: the shipped package was not read as expected"
    assert not problems, problems
