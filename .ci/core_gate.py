"""CI gate on CDISC CORE's report: fail on any rule with issues that is not on the reviewed list.

    python .ci/core_gate.py CORE_JSON REVIEWED_TXT

REVIEWED_TXT (``.ci/core-reviewed.txt``): one CORE id per line, then its reason (why the rule does not apply to
the package, or why CORE's finding is wrong there); ``#`` starts a comment. A listed rule without a reason, or a
listed rule CORE no longer reports, is also a failure (the list stays reviewed, not a place to park issues).
Exit 0: every rule with issues is listed with a reason; 1: otherwise (each one printed); 2: bad arguments.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def reviewed(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rule, _, reason = line.partition(" ")
            out[rule] = reason.strip()
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    report = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    listed = reviewed(Path(argv[1]))
    issues: dict[str, list[str]] = {}
    for s in report.get("Issue_Summary", []):
        if str(s.get("message", "")).startswith("rule evaluation error"):
            continue  # CORE could not run the rule there (stand-in metadata): an execution error, counted below
        issues.setdefault(s["core_id"], []).append(f"{s['dataset']}:{s['issues']} {s['message'][:100]}")
    bad = 0
    for rule, where in sorted(issues.items()):
        if rule not in listed:
            print(f"{rule}: issues not on the reviewed list: {'; '.join(where)}")
            bad += 1
        elif not listed[rule]:
            print(f"{rule}: on the reviewed list without a reason")
            bad += 1
        else:
            print(f"{rule}: reviewed, does not apply ({listed[rule][:100]})")
    for rule in sorted(set(listed) - set(issues)):
        print(f"{rule}: on the reviewed list but CORE reports no issue any more: take it off the list")
        bad += 1
    errors = [
        r
        for r in report.get("Rules_Report", [])
        if str(r.get("status", "")).upper().replace(" ", "_") == "EXECUTION_ERROR"
    ]
    print(f"CORE gate: {len(issues)} rules with issues, {bad} not reviewed; {len(errors)} execution errors (not gated)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
