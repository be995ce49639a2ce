"""Define-XML 2.1: built from the specs, valid against the official XSD, cross-checked with the data; packages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lxml import etree

from converter.errors import ConformanceError
from converter.io.datasetjson import read_dataset_json
from converter.io.define import (
    NS,
    build_define,
    crosscheck_define,
    define_bytes,
    validate_define,
    write_define,
)
from converter.io.package import write_package
from converter.io.xpt import read_xpt, write_xpt
from converter.spec.loader import parse_spec
from converter.spec.model import Codelist, DatasetSpec, Term, Terminology

STUDY: dict[str, Any] = {"study_oid": "NCT01371630", "study_name": "INO-VATE ALL", "protocol_name": "B1931022"}

CT = Terminology(
    package="SDTM CT 2024-03-29",
    codelists={
        "SEX": Codelist("SEX", "Sex", "C66731", False, (Term("F", "C16576", "Female"), Term("M", "C20197", "Male"))),
        "NY": Codelist(
            "NY", "No Yes Response", "C66742", True, (Term("N", "C49487"), Term("Y", "C49488"), Term("NA", None))
        ),
        "SALVLN": Codelist("SALVLN", "Salvage Line", None, False, (Term("1", None), Term("2", None)), source="Sponsor"),
        "AEDECOD": Codelist("AEDECOD", "MedDRA Preferred Term", None, False, (), source="MedDRA 26.1"),
    },
)


def spec(doc: dict[str, Any]) -> DatasetSpec:
    for v in doc["variables"]:
        v.setdefault("rule", {"assign": "x"})
        v.setdefault("origin", "Assigned")
    doc.setdefault("standard", "SDTMIG 3.4")
    return parse_spec(doc, Path(f"{doc['dataset'].lower()}.yaml"))


def studyid() -> dict[str, Any]:
    return {"name": "STUDYID", "label": "Study Identifier", "type": "text", "length": 11, "core": "Req",
            "origin": "Protocol"}  # fmt: skip


def usubjid() -> dict[str, Any]:
    return {"name": "USUBJID", "label": "Unique Subject Identifier", "type": "text", "core": "Req",
            "origin": "Derived", "method": "STUDYID and SUBJID joined by a hyphen"}  # fmt: skip


DM = spec({
    "dataset": "DM", "label": "Demographics", "class": "SPECIAL PURPOSE", "structure": "One record per subject",
    "keys": ["STUDYID", "USUBJID"], "comment": "Screen failures are not included.",
    "variables": [
        studyid(), usubjid(),
        {"name": "AGE", "label": "Age", "type": "integer", "origin": {"type": "Collected", "source": "DEMOG.AGE",
                                                                      "page": "4"}},
        {"name": "SEX", "label": "Sex", "type": "text", "length": 1, "codelist": "SEX", "core": "Req",
         "origin": {"type": "Collected", "source": "DEMOG.SEX"}},
        {"name": "HEIGHT", "label": "Height (cm)", "type": "float", "origin": "Derived",
         "comment": "Converted from inches where collected in inches."},
        {"name": "RFSTDTC", "label": "Subject Reference Start Date/Time", "type": "date", "origin": "Derived",
         "method": "First dose date"},
    ],
})  # fmt: skip
SUPPDM = spec({
    "dataset": "SUPPDM", "label": "Supplemental Qualifiers for DM", "class": "RELATIONSHIP",
    "structure": "One record per IDVAR, IDVARVAL, and QNAM value per subject",
    "keys": ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM"],
    "variables": [
        studyid(),
        {"name": "RDOMAIN", "label": "Related Domain Abbreviation", "type": "text", "length": 2, "core": "Req"},
        usubjid(),
        {"name": "IDVAR", "label": "Identifying Variable", "type": "text", "length": 8},
        {"name": "IDVARVAL", "label": "Identifying Variable Value", "type": "text", "length": 40},
        {"name": "QNAM", "label": "Qualifier Variable Name", "type": "text", "length": 8, "core": "Req"},
        {"name": "QLABEL", "label": "Qualifier Variable Label", "type": "text", "length": 40, "core": "Req"},
        {"name": "QVAL", "label": "Data Value", "type": "text", "core": "Req", "origin": "Collected",
         "value_level": {"by": "QNAM", "values": {
             "SALVLN": {"type": "text", "label": "Salvage Line", "codelist": "SALVLN",
                        "origin": {"type": "Collected", "source": "DIAG.SALVLN"}},
             "NPRIOR": {"type": "integer", "label": "Number of Prior Regimens"},
             "PHPOS": {"type": "text", "label": "Philadelphia Chromosome Positive", "codelist": "NY"},
         }}},
    ],
})  # fmt: skip
AE = spec({
    "dataset": "AE", "label": "Adverse Events", "class": "EVENTS",
    "structure": "One record per adverse event per subject", "keys": ["STUDYID", "USUBJID", "AESEQ"],
    "variables": [
        studyid(), usubjid(),
        {"name": "AESEQ", "label": "Sequence Number", "type": "integer", "origin": "Derived", "core": "Req"},
        {"name": "AEDECOD", "label": "Dictionary-Derived Term", "type": "text", "codelist": "AEDECOD",
         "origin": "Assigned"},
        {"name": "AESER", "label": "Serious Event", "type": "text", "length": 2, "codelist": "NY",
         "origin": {"type": "Collected", "source": "AE.AESER"}},
    ],
})  # fmt: skip


def frames() -> dict[str, pd.DataFrame]:
    subj = ["NCT01371630-1001", "NCT01371630-1002"]
    dm = pd.DataFrame({
        "STUDYID": ["NCT01371630"] * 2, "USUBJID": subj, "AGE": [47.0, 130.0], "SEX": ["F", "M"],
        "HEIGHT": [162.5, np.nan], "RFSTDTC": ["2012-08-01", None],
    })  # fmt: skip
    supp = pd.DataFrame({
        "STUDYID": ["NCT01371630"] * 3, "RDOMAIN": ["DM"] * 3, "USUBJID": [subj[0]] * 3, "IDVAR": [None] * 3,
        "IDVARVAL": [None] * 3, "QNAM": ["NPRIOR", "PHPOS", "SALVLN"],
        "QLABEL": ["Number of Prior Regimens", "Philadelphia Chromosome Positive", "Salvage Line"],
        "QVAL": ["12", "Y", "2"],
    })  # fmt: skip
    ae = pd.DataFrame({
        "STUDYID": ["NCT01371630"] * 2, "USUBJID": [subj[0], subj[1]], "AESEQ": [1.0, 1.0],
        "AEDECOD": ["Febrile neutropenia", "Veno-occlusive liver disease"], "AESER": ["Y", "NA"],
    })  # fmt: skip
    return {"DM": dm, "SUPPDM": supp, "AE": ae}


SPECS = {"DM": DM, "SUPPDM": SUPPDM, "AE": AE}


def build(**kw: Any) -> etree._ElementTree:
    args: dict[str, Any] = {"standard": "SDTMIG 3.4", "datasets": frames(), "acrf_href": "acrf.pdf",
                            "created": "2024-05-01T10:00:00", **STUDY, **kw}  # fmt: skip
    return build_define(list(SPECS.values()), CT, **args)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A folder with the XPT files and define.xml, written by the individual writers."""
    for name, df in frames().items():
        write_xpt(df, SPECS[name], tmp_path / f"{name.lower()}.xpt")
    (tmp_path / "define.xml").write_bytes(define_bytes(build()))
    return tmp_path


def test_define_validates_against_the_define_21_xsd(package: Path) -> None:
    assert validate_define(package / "define.xml") == []


def test_define_content(package: Path) -> None:
    text = (package / "define.xml").read_text(encoding="utf-8")
    assert '<?xml-stylesheet type="text/xsl" href="define2-1.xsl"?>' in text
    root = etree.parse(str(package / "define.xml")).getroot()
    assert root.get(f"{{{NS['def']}}}Context") == "Submission" and root.get("FileType") == "Snapshot"
    mdv = root.find(".//odm:MetaDataVersion", NS)
    assert mdv is not None and mdv.get(f"{{{NS['def']}}}DefineVersion") == "2.1.0"
    stds = {(s.get("Name"), s.get("Type"), s.get("Version")) for s in root.iterfind(".//def:Standard", NS)}
    assert stds == {("SDTMIG", "IG", "3.4"), ("CDISC/NCI", "CT", "2024-03-29")}

    dm = root.find(".//odm:ItemGroupDef[@Name='DM']", NS)
    assert dm is not None
    assert (dm.get("Domain"), dm.get("Repeating"), dm.get("Purpose")) == ("DM", "No", "Tabulation")
    assert dm.find("def:Class", NS).get("Name") == "SPECIAL PURPOSE"
    assert dm.find("def:leaf", NS).get(f"{{{NS['xlink']}}}href") == "dm.xpt"
    refs = {r.get("ItemOID"): r for r in dm.iterfind("odm:ItemRef", NS)}
    assert refs["IT.DM.USUBJID"].get("KeySequence") == "2" and refs["IT.DM.USUBJID"].get("Mandatory") == "Yes"
    assert refs["IT.DM.USUBJID"].get("MethodOID") == "MT.DM.USUBJID"
    method = root.find(".//odm:MethodDef[@OID='MT.DM.USUBJID']/odm:Description/odm:TranslatedText", NS)
    assert method is not None and method.text == "STUDYID and SUBJID joined by a hyphen"

    items = {i.get("OID"): i for i in root.iterfind(".//odm:ItemDef", NS)}
    assert items["IT.DM.USUBJID"].get("Length") == "16"  # longest value (no spec length)
    assert items["IT.DM.AGE"].get("Length") == "3"  # digits
    assert (items["IT.DM.HEIGHT"].get("DataType"), items["IT.DM.HEIGHT"].get("SignificantDigits")) == ("float", "1")
    assert items["IT.DM.RFSTDTC"].get("Length") is None  # ISO 8601 types carry no Length
    origin = items["IT.DM.AGE"].find("def:Origin", NS)
    assert origin is not None and (origin.get("Type"), origin.get("Source")) == ("Collected", "Investigator")
    page = origin.find("def:DocumentRef/def:PDFPageRef", NS)
    assert page is not None and page.get("PageRefs") == "4"

    # value-level metadata for SUPPDM.QVAL by QNAM
    vl = root.find(".//def:ValueListDef[@OID='VL.SUPPDM.QVAL']", NS)
    assert vl is not None and len(vl.findall("odm:ItemRef", NS)) == 3
    wc = root.find(".//def:WhereClauseDef[@OID='WC.SUPPDM.QVAL.NPRIOR']/odm:RangeCheck", NS)
    assert wc is not None and (wc.get("Comparator"), wc.get("SoftHard")) == ("EQ", "Soft")
    assert (
        wc.get(f"{{{NS['def']}}}ItemOID") == "IT.SUPPDM.QNAM"
        and wc.findtext("odm:CheckValue", namespaces=NS) == "NPRIOR"
    )
    assert items["IT.SUPPDM.QVAL.NPRIOR"].get("DataType") == "integer"

    # codelists: C-codes as aliases, sponsor extension flagged, MedDRA external
    sex = root.find(".//odm:CodeList[@OID='CL.SEX']", NS)
    assert sex is not None and sex.find("odm:Alias", NS).get("Name") == "C66731"
    assert [i.get("CodedValue") for i in sex.iterfind("odm:CodeListItem", NS)] == ["F", "M"]
    ny = {i.get("CodedValue"): i for i in root.iterfind(".//odm:CodeList[@OID='CL.NY']/odm:EnumeratedItem", NS)}
    assert (
        ny["NA"].get(f"{{{NS['def']}}}ExtendedValue") == "Yes" and ny["Y"].get(f"{{{NS['def']}}}ExtendedValue") is None
    )
    ext = root.find(".//odm:CodeList[@OID='CL.AEDECOD']/odm:ExternalCodeList", NS)
    assert ext is not None and (ext.get("Dictionary"), ext.get("Version")) == ("MedDRA", "26.1")
    assert root.find(".//def:CommentDef[@OID='COM.DM.HEIGHT']", NS) is not None


def test_corrupted_define_fails_validation(package: Path) -> None:
    good = (package / "define.xml").read_text(encoding="utf-8")
    cases = {
        "missing required attribute": good.replace(' Repeating="No"', "", 1),
        "bad enumeration": good.replace('Name="SPECIAL PURPOSE"', 'Name="SPECIAL"'),
        "dangling reference": good.replace('CodeListOID="CL.SEX"', 'CodeListOID="CL.GENDER"'),
        "not well-formed": good.replace("</ODM>", ""),
    }
    for what, text in cases.items():
        bad = package / "bad.xml"
        bad.write_text(text, encoding="utf-8")
        assert validate_define(bad), what


def test_crosscheck_agrees_with_the_data(package: Path) -> None:
    data = {n: (read_xpt(package / f"{n.lower()}.xpt")[0], SPECS[n]) for n in SPECS}
    assert crosscheck_define(package / "define.xml", data) == []


def test_crosscheck_finds_a_planted_missing_variable(package: Path) -> None:
    path = package / "define.xml"
    path.write_text(path.read_text().replace('<ItemRef ItemOID="IT.DM.HEIGHT" OrderNumber="5" Mandatory="No" '
                                             'MethodOID="MT.DM.HEIGHT"/>', ""))  # fmt: skip
    data = {n: (df, SPECS[n]) for n, df in frames().items()}
    problems = crosscheck_define(path, data)
    assert "DM.HEIGHT: variable is in the data but not in define.xml" in problems
    assert any("dm.xpt has variables" in p for p in problems)


def test_crosscheck_finds_codelist_and_length_problems(package: Path) -> None:
    data = {n: (df, SPECS[n]) for n, df in frames().items()}
    data["DM"][0].loc[1, "SEX"] = "U"
    data["DM"][0].loc[0, "AGE"] = 1000.0
    data["SUPPDM"][0].loc[1, "QVAL"] = "MAYBE"
    text = "\n".join(crosscheck_define(package / "define.xml", data))
    assert "DM.SEX: values ['U'] are not in codelist CL.SEX" in text
    assert "DM.AGE: define.xml Length 3 is shorter than the longest value (4)" in text
    assert "SUPPDM.QVAL [QNAM in ['PHPOS']]: values ['MAYBE'] are not in codelist CL.NY" in text
    del data["AE"]
    assert "AE: define.xml describes a dataset that is not in the data" in crosscheck_define(
        package / "define.xml", data
    )


def test_specs_that_define_xml_cannot_express_are_refused(tmp_path: Path) -> None:
    odd = spec({"dataset": "XX", "label": "Odd", "class": "WHATEVER", "structure": "One record per thing",
                "variables": [{"name": "A", "label": "A", "type": "text", "codelist": "NOPE"}]})  # fmt: skip
    with pytest.raises(ConformanceError) as info:
        write_define(tmp_path / "define.xml", [odd], CT, standard="SDTMIG 3.4", **STUDY)
    assert "class 'WHATEVER'" in str(info.value) and "codelist 'NOPE'" in str(info.value)
    assert not (tmp_path / "define.xml").exists()


def test_adam_define(tmp_path: Path) -> None:
    adsl = spec({
        "dataset": "ADSL", "label": "Subject-Level Analysis Dataset", "class": "ADSL", "standard": "ADaMIG 1.3",
        "structure": "One record per subject", "keys": ["STUDYID", "USUBJID"],
        "variables": [studyid(), usubjid(),
                      {"name": "TRTSDT", "label": "Date of First Exposure to Treatment", "type": "integer",
                       "format": "DATE9.", "origin": {"type": "Predecessor", "source": "EX.EXSTDTC"}}],
    })  # fmt: skip
    df = pd.DataFrame({"STUDYID": ["NCT01371630"], "USUBJID": ["NCT01371630-1001"], "TRTSDT": [19206.0]})
    path = write_define(tmp_path / "define.xml", [adsl], CT, standard="ADaMIG 1.3", datasets={"ADSL": df}, **STUDY)
    assert validate_define(path) == []
    root = etree.parse(str(path)).getroot()
    ig = root.find(".//odm:ItemGroupDef", NS)
    assert ig is not None and ig.get("Purpose") == "Analysis" and ig.get("Domain") is None
    assert ig.find("def:Class", NS).get("Name") == "SUBJECT LEVEL ANALYSIS DATASET"
    item = root.find(".//odm:ItemDef[@OID='IT.ADSL.TRTSDT']", NS)
    assert item is not None and item.get(f"{{{NS['def']}}}DisplayFormat") == "DATE9."
    assert item.findtext("def:Origin/odm:Description/odm:TranslatedText", namespaces=NS) == "EX.EXSTDTC"


# --- package ---------------------------------------------------------------------------------------------------------
def test_write_package(tmp_path: Path) -> None:
    out = tmp_path / "sdtm"
    report = write_package(out, frames(), SPECS, CT, standard="SDTMIG 3.4", created="2024-05-01T10:00:00", **STUDY)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["ae.json", "ae.xpt", "define.html", "define.xml", "define2-1.xsl", "dm.json", "dm.xpt",
                     "suppdm.json", "suppdm.xpt"]
    assert report.datasets == {"DM": 2, "SUPPDM": 3, "AE": 2}
    assert all(f.size == f.path.stat().st_size > 0 for f in report.files)
    assert validate_define(out / "define.xml") == []
    xdf, _ = read_xpt(out / "suppdm.xpt")
    jdf, jmeta = read_dataset_json(out / "suppdm.json")
    pd.testing.assert_frame_equal(xdf, jdf, check_exact=True)
    assert (
        jmeta.extra["metaDataRef"] == "define.xml" and jmeta.extra["metaDataVersionOID"] == "MDV.NCT01371630.SDTMIG.3.4"
    )


def test_package_reports_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    data = frames()
    data["DM"].loc[0, "SEX"] = "Wéiblich"
    data["AE"] = data["AE"].iloc[::-1]
    data["EXTRA"] = data["AE"]
    out = tmp_path / "sdtm"
    with pytest.raises(ConformanceError) as info:
        write_package(out, data, SPECS, CT, standard="SDTMIG 3.4", **STUDY)
    messages = info.value.messages
    assert any(m.startswith("DM.SEX: row 1") for m in messages)
    assert any(m.startswith("AE: rows are not sorted") for m in messages)
    assert "EXTRA: data without a spec" in messages
    assert not out.exists()
