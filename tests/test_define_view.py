"""What a reviewer and CDISC CORE read in define.xml and define.html: only the CT standards the codelists cite,
each CDISC codelist citing its own CT package; a dataset's description once; the whole trial title."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
from lxml import etree
from test_io_define import CT, DM, NS, SPECS, STUDY, frames, spec, studyid, usubjid

from converter.io.define import build_define, define_bytes, validate_define, write_define
from converter.io.define_stylesheet import VIEW_CSS, render_define_html
from converter.spec.model import Codelist, Term, Terminology

SDTM_CT, ADAM_CT = "SDTM CT 2024-03-29", "ADaM CT 2024-03-29"
TWO_PACKAGES = Terminology(
    package=f"{SDTM_CT}; {ADAM_CT}",
    codelists={
        **{k: dataclasses.replace(cl, package=SDTM_CT) for k, cl in CT.codelists.items()},
        "DTYPE": Codelist("DTYPE", "Derivation Type", "C81224", True, (Term("LOCF", "C81198"),), package=ADAM_CT),  # mappings/ct
    },
)


def _standards(tree: etree._ElementTree) -> dict[str, str]:
    return {s.get("OID"): s.get("Type") for s in tree.getroot().iterfind(".//def:Standard", NS)}


def _cited(tree: etree._ElementTree) -> dict[str, str | None]:
    return {c.get("OID"): c.get(f"{{{NS['def']}}}StandardOID") for c in tree.getroot().iterfind(".//odm:CodeList", NS)}


def test_sdtm_define_declares_only_the_ct_it_cites() -> None:
    tree = build_define(list(SPECS.values()), TWO_PACKAGES, standard="SDTMIG 3.4", datasets=frames(), **STUDY)
    assert _standards(tree) == {"STD.SDTMIG.3.4": "IG", "STD.CT.SDTM.2024-03-29": "CT"}  # no ADaM CT
    cited = _cited(tree)
    assert cited["CL.SEX"] == cited["CL.NY"] == "STD.CT.SDTM.2024-03-29"
    assert cited["CL.SALVLN"] is None and cited["CL.AEDECOD"] is None  # sponsor, MedDRA
    declared = set(_standards(tree))
    assert {c for c in cited.values() if c} <= declared


def test_adam_define_cites_each_codelists_own_package(tmp_path: Path) -> None:
    adsl = spec({
        "dataset": "ADSL", "label": "Subject-Level Analysis Dataset", "class": "ADSL", "standard": "ADaMIG 1.3",
        "structure": "One record per subject", "keys": ["STUDYID", "USUBJID"],
        "variables": [studyid(), usubjid(),
                      {"name": "SEX", "label": "Sex", "type": "text", "length": 1, "codelist": "SEX",
                       "origin": {"type": "Predecessor", "source": "DM.SEX"}},
                      {"name": "DTYPE", "label": "Derivation Type", "type": "text", "length": 4, "codelist": "DTYPE",
                       "origin": "Derived", "method": "LOCF"}],
    })  # fmt: skip
    df = pd.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "SEX": ["F"], "DTYPE": ["LOCF"]})
    path = write_define(tmp_path / "define.xml", [adsl], TWO_PACKAGES, standard="ADaMIG 1.3",
                        datasets={"ADSL": df}, **STUDY)  # fmt: skip
    assert validate_define(path) == []
    tree = etree.parse(str(path))
    assert _standards(tree) == {"STD.ADaMIG.1.3": "IG", "STD.CT.SDTM.2024-03-29": "CT", "STD.CT.ADaM.2024-03-29": "CT"}
    assert _cited(tree) == {"CL.SEX": "STD.CT.SDTM.2024-03-29", "CL.DTYPE": "STD.CT.ADaM.2024-03-29"}


def test_description_once_and_the_whole_trial_title(tmp_path: Path) -> None:
    title = "Phase II Study of " + "a Very Long Title " * 12  # over 200 characters: TSVAL goes on in TSVAL1
    ts = pd.DataFrame({"TSPARMCD": ["TITLE", "AGEMIN"], "TSVAL": [title[:200], "P18Y"],
                       "TSVAL1": [title[200:], None]})  # fmt: skip
    data = {**frames(), "TS": ts}
    tree = build_define([DM], CT, standard="SDTMIG 3.4", datasets=data, **STUDY)
    gv = tree.getroot().find(".//odm:GlobalVariables", NS)
    assert gv is not None and gv.findtext("odm:StudyDescription", namespaces=NS) == title.strip()
    dm = tree.getroot().find(".//odm:ItemGroupDef[@Name='DM']", NS)
    assert dm is not None and dm.find("odm:Alias[@Context='DomainDescription']", NS) is None  # not split
    (tmp_path / "define.xml").write_bytes(define_bytes(tree))
    html = render_define_html(tmp_path / "define.xml").decode("utf-8")
    assert "<td>Demographics</td>" in html and "Demographics (Demographics)" not in html
    assert html.count(VIEW_CSS.decode()) == 1 and html.index(VIEW_CSS.decode()) < html.index("</head>")
    assert STUDY["study_name"] in html  # the menu's study name, now allowed to wrap
