"""Findings of ``inoconv validate``: one row per problem (or per group of like problems), and the report writers.

A :class:`Finding` names the rule (a CDISC CORE id where the check corresponds to a published CORE rule, else an
``INO-`` id of this project), its severity, and where: the file (relative to the folder validated: the dataset's
``.xpt`` or ``.json``, ``define.xml``, a FHIR file), dataset, variable, subject, row (1-based, as a reviewer
counts rows in a viewer). ``count`` says how many rows the finding stands for: the row-wise rules report the first
:data:`MAX_ROWS_PER_GROUP` rows of a (rule, dataset, variable) one by one and the rest as one summary finding.

Writers: JSON (``findings.json``), CSV with a UTF-8 byte order mark so that Excel opens it with the right encoding
(``findings.csv``), and a plain-text table for the terminal.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from converter.io.csv_out import writer as csv_writer

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")
MAX_ROWS_PER_GROUP = 20


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    dataset: str = ""
    variable: str = ""
    subject: str = ""
    row: int | None = None
    message: str = ""
    count: int = 1
    file: str = ""  # the file the finding is about, relative to the folder validated

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in FIELDS}


#: the columns of findings.csv and the keys of findings.json, in this order
FIELDS = ("rule_id", "severity", "file", "dataset", "variable", "subject", "row", "message", "count")
assert set(FIELDS) == {f.name for f in fields(Finding)}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(
        findings,
        key=lambda f: (rank.get(f.severity, 9), f.dataset, f.file, f.rule_id, f.variable, f.row or 0, f.subject),
    )


def counts(findings: Iterable[Finding]) -> Counter[str]:
    """Severity -> number of problems (a summary finding counts for the rows it stands for)."""
    out: Counter[str] = Counter({s: 0 for s in SEVERITIES})
    for f in findings:
        out[f.severity] += f.count
    return out


def exit_code(findings: Iterable[Finding], fail_on: str = "error") -> int:
    """0 when nothing at or above ``fail_on`` was found, else 1."""
    if fail_on not in ("error", "warning"):
        raise ValueError(f"fail_on must be 'error' or 'warning', got {fail_on!r}")
    bad = {"error"} if fail_on == "error" else {"error", "warning"}
    return 1 if any(f.severity in bad for f in findings) else 0


def write_json(findings: Sequence[Finding], path: Path) -> Path:
    doc = {
        "summary": dict(counts(findings)),
        "findings": [f.as_dict() for f in sort_findings(findings)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def csv_text(findings: Sequence[Finding]) -> str:
    buf = io.StringIO()
    w = csv_writer(buf, lineterminator="\r\n")
    w.writerow(FIELDS)
    for f in sort_findings(findings):
        w.writerow(["" if v is None else v for v in (getattr(f, k) for k in FIELDS)])
    return buf.getvalue()


def write_csv(findings: Sequence[Finding], path: Path) -> Path:
    """CSV for Excel: UTF-8 with a byte order mark, CRLF line ends, one header row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_text(findings).encode("utf-8-sig"))
    return path


def write_reports(findings: Sequence[Finding], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [write_json(findings, out / "findings.json"), write_csv(findings, out / "findings.csv")]


def render_table(findings: Sequence[Finding], limit: int | None = 200, width: int = 70) -> str:
    """A fixed-width table for the terminal, errors first, then a one-line summary."""
    rows = sort_findings(findings)
    shown = rows if limit is None else rows[:limit]
    head = ("severity", "rule", "file", "dataset", "variable", "subject", "row", "n", "message")
    body = [
        (
            f.severity,
            f.rule_id,
            f.file,
            f.dataset,
            f.variable,
            f.subject,
            "" if f.row is None else str(f.row),
            str(f.count),
            f.message if len(f.message) <= width else f.message[: width - 3] + "...",
        )
        for f in shown
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    lines = []
    if body:
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
        if len(rows) > len(shown):
            lines.append(f"... and {len(rows) - len(shown)} more finding(s) (see findings.csv)")
    c = counts(findings)
    lines.append(f"{c['error']} error(s), {c['warning']} warning(s), {c['info']} info")
    return "\n".join(lines)
