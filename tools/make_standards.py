"""Remake ``converter/spec/sdtmig-3.4.yaml``, ``adamig-1.3.yaml`` and ``cdisc-ct-2024-03-29.yaml`` from the CDISC
Library exports and the NCI EVS CT files.

    python tools/make_standards.py SOURCE_DIR [SDTM_CT_XLSX]
    python tools/make_standards.py --json

SOURCE_DIR holds the CDISC Library's public CSV exports as redistributed by github.com/rubentalstra/
Trial-Submission-Studio (MIT; folder crates/tss-standards/data, commit 222938d): ``sdtm/ig/v3.4/Datasets.csv``,
``sdtm/ig/v3.4/Variables.csv``, ``adam/ig/v1.3/DataStructures.csv``, ``adam/ig/v1.3/Variables.csv`` and
``terminology/2024-03-29/SEND_CT_2024-03-29.csv`` (NCI EVS export). Kept per variable: name, label, type, core,
role (SDTM) or variable set (ADaM), and the CT codelist C-codes; the CDISC Notes are left out. Codelists: the
non-extensible CDISC codelists the SDTMIG variables name that the SEND CT file holds (shared SDTM/SEND codelists:
AGEU, NY, ND, RELTYPE, SEX), with every term. Nothing is edited: values are copied as the exports have them.

With SDTM_CT_XLSX (the NCI EVS export of SDTM CT 2024-03-29 as an .xlsx workbook, sheet "Terminology": CDISC's
CORE repository github.com/cdisc-org/cdisc-rules-engine, tests/resources/codelists/SDTM_CT_2024-03-29.xlsx, blob
974046ce, commit bf8015b2), also ``cdisc-ct-2024-03-29.yaml``: every CDISC codelist that a variable of SDTMIG 3.4,
ADaMIG 1.3 or ``adam-occds-tte.yaml`` names, complete (every term with its NCI C-code), extensible or not, from that
workbook, and for ADaM-only codelists from ``terminology/2024-03-29/ADaM_CT_2024-03-29.csv``; the SDTMIG file then
holds no codelists of its own (the CT file has them, the same terms: shared SDTM/SEND codelists are identical).

Each of those YAML files (the reviewed form) gets a JSON twin beside it with the same content (``<name>.json``),
which ``converter.spec.standards`` reads instead: about 17x faster to load than the YAML, even with libyaml.
``python tools/make_standards.py --json`` remakes only the twins from the YAML files as they are;
``tests/test_validate_standard.py`` checks that each twin holds exactly its YAML's content.
"""

from __future__ import annotations

import csv
import json
import sys
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from pathlib import Path

import yaml

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


def xlsx_rows(path: Path, sheet: str = "xl/worksheets/sheet2.xml") -> list[dict[str, str]]:
    """The rows of one sheet of an .xlsx workbook written with inline strings (as the CT workbook is), by header."""
    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"

    def cells() -> Iterator[dict[str, str]]:
        with zipfile.ZipFile(path) as z, z.open(sheet) as fh:
            for _, el in ET.iterparse(fh):
                if el.tag == ns + "row":
                    row = {}
                    for c in el.findall(ns + "c"):
                        col = "".join(ch for ch in c.get("r", "") if ch.isalpha())
                        inline = c.find(ns + "is")
                        text = "".join(t.text or "" for t in inline.iter(ns + "t")) if inline is not None else None
                        row[col] = (text if text is not None else c.findtext(ns + "v") or "").strip()
                    yield row
                    el.clear()

    it = cells()
    head = next(it)
    return [{head[k]: r.get(k, "") for k in head} for r in it]


def bound_codelists(*docs: dict) -> set[str]:
    """The codelist C-codes the variables of these metadata files name."""
    out: set[str] = set()
    for doc in docs:
        for part in ("datasets", "structures"):
            for d in (doc.get(part) or {}).values():
                for v in d.get("variables", []):
                    out.update(v.get("codelist") or ())
    return out


def ct(src: Path, xlsx: Path, spec: Path) -> str:
    sdtm = xlsx_rows(xlsx)
    adam = rows(src / "terminology/2024-03-29/ADaM_CT_2024-03-29.csv")
    docs = [yaml.safe_load((spec / f).read_text(encoding="utf-8")) for f in
            ("sdtmig-3.4.yaml", "adamig-1.3.yaml", "adam-occds-tte.yaml")]  # fmt: skip
    used = bound_codelists(*docs)
    out = [
        "# CDISC Controlled Terminology 2024-03-29: every codelist a variable of sdtmig-3.4.yaml, adamig-1.3.yaml",
        "# or adam-occds-tte.yaml names, complete (every term and its NCI C-code). Made by tools/make_standards.py;",
        "# do not edit by hand. Sources (NCI EVS exports, public domain; provenance in standards.LICENSE):",
        "#   SDTM CT 2024-03-29: SDTM_CT_2024-03-29.xlsx as kept in github.com/cdisc-org/cdisc-rules-engine,",
        "#     tests/resources/codelists (blob 974046ce, commit bf8015b2);",
        "#   ADaM CT 2024-03-29: ADaM_CT_2024-03-29.csv as redistributed in github.com/rubentalstra/Trial-Submission-",
        "#     Studio, crates/tss-standards/data/terminology/2024-03-29 (commit 222938d).",
        "# Per codelist (key: its C-code): name, submission value, extensible, package, terms as [C-code, submission].",
        "package: CT 2024-03-29",
        "codelists:",
    ]
    missing = []
    sources = ((sdtm, "SDTM CT 2024-03-29"), (adam, "ADaM CT 2024-03-29"))
    for code in sorted(used, key=lambda c: int(c[1:])):
        found = [(t, p, r) for t, p in sources for r in t if r["Code"] == code and not r["Codelist Code"]]
        if not found:
            missing.append(code)
            continue
        table, package, h = found[0]
        ext = {"Yes": "true", "No": "false"}[h["Codelist Extensible (Yes/No)"]]
        out.append(f"  {code}:\n    name: {q(h['Codelist Name'])}\n    submission: {q(h['CDISC Submission Value'])}")
        out.append(f"    extensible: {ext}\n    package: {package}\n    terms:")
        terms = sorted((r for r in table if r["Codelist Code"] == code), key=lambda r: r["CDISC Submission Value"])
        out.extend(f"      - [{t['Code']}, {q(t['CDISC Submission Value'])}]" for t in terms)
    if missing:
        raise SystemExit(f"codelists named by the metadata but in neither CT file: {missing}")
    return "\n".join(out) + "\n"


def sdtmig(src: Path, with_codelists: bool = True) -> str:
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
    if not with_codelists:
        return "\n".join(out) + "\n# Codelists: cdisc-ct-2024-03-29.yaml (every codelist named above, complete).\n"
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


TWINNED = ("sdtmig-3.4.yaml", "adamig-1.3.yaml", "cdisc-ct-2024-03-29.yaml")


def json_twin(yaml_path: Path) -> Path:
    """Write ``<name>.json`` beside ``yaml_path``: the YAML's content as JSON (one line; keys in the YAML's order)."""
    doc = yaml.load(yaml_path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    out = yaml_path.with_suffix(".json")
    out.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    return out


def main() -> None:
    here = Path(__file__).resolve().parent.parent / "converter" / "spec"
    if sys.argv[1:] == ["--json"]:
        for name in TWINNED:
            json_twin(here / name)
        return
    src = Path(sys.argv[1])
    xlsx = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    (here / "sdtmig-3.4.yaml").write_text(sdtmig(src, with_codelists=xlsx is None), encoding="utf-8")
    (here / "adamig-1.3.yaml").write_text(adamig(src), encoding="utf-8")
    if xlsx is not None:
        (here / "cdisc-ct-2024-03-29.yaml").write_text(ct(src, xlsx, here), encoding="utf-8")
    for name in TWINNED:
        if (here / name).exists():
            json_twin(here / name)


if __name__ == "__main__":
    main()
