"""Remake ``converter/spec/sdtmig-3.4.yaml`` and ``converter/spec/adamig-1.3.yaml`` from the CDISC Library exports.

    python tools/make_standards.py SOURCE_DIR

SOURCE_DIR holds the CDISC Library's public CSV exports as redistributed by github.com/rubentalstra/
Trial-Submission-Studio (MIT; folder crates/tss-standards/data, commit 222938d): ``sdtm/ig/v3.4/Datasets.csv``,
``sdtm/ig/v3.4/Variables.csv``, ``adam/ig/v1.3/DataStructures.csv``, ``adam/ig/v1.3/Variables.csv`` and
``terminology/2024-03-29/SEND_CT_2024-03-29.csv`` (NCI EVS export). Kept per variable: name, label, type, core,
role (SDTM) or variable set (ADaM), and the CT codelist C-codes; the CDISC Notes are left out. Codelists: the
non-extensible CDISC codelists the SDTMIG variables name that the SEND CT file holds (shared SDTM/SEND codelists:
AGEU, NY, ND, RELTYPE, SEX), with every term. Nothing is edited: values are copied as the exports have them.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HEAD = """# {title} variable metadata, copied from the CDISC Library export ({source}).
# Made by tools/make_standards.py; do not edit by hand. Licence and provenance: converter/spec/standards.LICENSE.
# Per variable: name, label, type (Char/Num), core (Req/Exp/Perm{cond}), {role}, codelist (CDISC CT C-codes).
"""


def q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [{k: (v or "").strip() for k, v in r.items()} for r in csv.DictReader(fh)]


def codes(text: str) -> list[str]:
    return [c.strip() for c in text.replace(",", ";").split(";") if c.strip()]


def variable_line(name: str, label: str, vtype: str, core: str, role_key: str, role: str, cl: list[str]) -> str:
    parts = [f"name: {q(name)}", f"label: {q(label)}", f"type: {vtype}", f"core: {core}", f"{role_key}: {q(role)}"]
    if cl:
        parts.append("codelist: [" + ", ".join(cl) + "]")
    return "      - {" + ", ".join(parts) + "}"


def sdtmig(src: Path) -> str:
    ds = rows(src / "sdtm/ig/v3.4/Datasets.csv")
    var = rows(src / "sdtm/ig/v3.4/Variables.csv")
    out = [HEAD.format(title="SDTMIG v3.4", source="SDTMIG v3.4 Datasets.csv and Variables.csv", cond="", role="role")]
    out.append("standard: SDTMIG 3.4\nct_package: SDTM CT 2024-03-29\ndatasets:")
    used: set[str] = set()
    for d in ds:
        name = d["Dataset Name"]
        out.append(f"  {name}:")
        out.append(
            f"    label: {q(d['Dataset Label'])}\n    class: {q(d['Class'])}\n    structure: {q(d['Structure'])}"
        )
        out.append("    variables:")
        mine = sorted((v for v in var if v["Dataset Name"] == name), key=lambda v: int(v["Variable Order"]))
        for v in mine:
            cl = codes(v["CDISC CT Codelist Code(s)"])
            used.update(cl)
            out.append(
                variable_line(v["Variable Name"], v["Variable Label"], v["Type"], v["Core"], "role", v["Role"], cl)
            )
    ct = rows(src / "terminology/2024-03-29/SEND_CT_2024-03-29.csv")
    lists = [
        r for r in ct if not r["Codelist Code"] and r["Code"] in used and r["Codelist Extensible (Yes/No)"] == "No"
    ]
    out.append("# Non-extensible CDISC codelists (CT 2024-03-29, shared by SDTM and SEND; from SEND_CT_2024-03-29.csv)")
    out.append("codelists:")
    for cl in sorted(lists, key=lambda r: r["CDISC Submission Value"]):
        out.append(
            f"  {cl['Code']}:\n    name: {q(cl['Codelist Name'])}\n    submission: {cl['CDISC Submission Value']}"
        )
        out.append("    extensible: false\n    terms:")
        terms = sorted((r for r in ct if r["Codelist Code"] == cl["Code"]), key=lambda r: r["CDISC Submission Value"])
        for t in terms:
            out.append(f"      - {{code: {t['Code']}, submission: {q(t['CDISC Submission Value'])}}}")
    return "\n".join(out) + "\n"


def adamig(src: Path) -> str:
    ds = rows(src / "adam/ig/v1.3/DataStructures.csv")
    var = rows(src / "adam/ig/v1.3/Variables.csv")
    long_names = {d["Data Structure Description"]: d["Data Structure Name"] for d in ds}
    long_names.update({k.removesuffix(" Structure"): v for k, v in long_names.items()})
    out = [
        HEAD.format(
            title="ADaMIG v1.3",
            source="ADaMIG v1.3 DataStructures.csv and Variables.csv",
            cond="/Cond",
            role="variable_set",
        )
    ]
    out.append("standard: ADaMIG 1.3\nstructures:")
    for d in ds:
        name = d["Data Structure Name"]
        mine = [v for v in var if long_names.get(v["Data Structure Name"]) == name]
        if not mine:
            continue  # the export lists no variables for it (e.g. TTE: the BDS variables apply)
        out.append(f"  {name}:\n    label: {q(d['Data Structure Description'])}\n    class: {q(d['Class'])}")
        out.append("    variables:")
        for v in mine:
            out.append(
                variable_line(
                    v["Variable Name"],
                    v["Variable Label"],
                    v["Type"],
                    v["Core"],
                    "variable_set",
                    v["Variable Set"],
                    codes(v["CDISC CT Codelist Code(s)"]),
                )
            )
    return "\n".join(out) + "\n"


def main() -> None:
    src = Path(sys.argv[1])
    here = Path(__file__).resolve().parent.parent / "converter" / "spec"
    (here / "sdtmig-3.4.yaml").write_text(sdtmig(src), encoding="utf-8")
    (here / "adamig-1.3.yaml").write_text(adamig(src), encoding="utf-8")


if __name__ == "__main__":
    main()
