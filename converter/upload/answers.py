"""Reading a server's answer to a transaction: accepted only if it is a real ``transaction-response``.

A bundle counts as accepted (and is journaled) only when the server answered 2xx with a FHIR ``Bundle`` of
``type`` ``transaction-response`` holding exactly one entry per request entry, each with a 2xx
``response.status`` (R4 3.1.0.11.2 / Bundle.type). Anything else - a 200 web page or empty body, a
``batch-response``, an OperationOutcome, the wrong number of entries, a 4xx/5xx entry - is a rejection that
quotes the server (redacted, control characters escaped), placed on the bundle entries where it says which.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from converter.text import escape_controls
from converter.upload.bundles import BundleJob, EntryInfo
from converter.upload.connection import FATAL_STATUS, Answer
from converter.upload.results import BundleRejection, IssueReport, UploadFailure

__all__ = ["Outcome", "location_ref", "outcome_issues", "read_transaction_answer", "status_code"]

_ENTRY_EXPR = re.compile(r"Bundle\.entry\[(\d+)\](?:\.resource)?(?:\.(.+))?")
_ENTRY_TEXT = re.compile(r"\bentry\[?\s?(\d+)\]?")
_REF_TYPE = re.compile(r"[A-Z][A-Za-z]+")

Redactor = Callable[[str], str]


@dataclass
class Outcome:
    """What an accepted transaction did, per kind (created/updated/unchanged/deleted) and resource type."""

    status: int
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"created": {}, "updated": {}, "unchanged": {}, "deleted": {}}
    )
    ids: dict[str, str] = field(default_factory=dict)  # NDJSON "Type/id" -> server "Type/id"


def _said(text: object, redactor: Redactor) -> str:
    return escape_controls(redactor("" if text is None else str(text)))


def outcome_issues(outcome: object, entries: list[EntryInfo], redactor: Redactor) -> list[IssueReport]:
    """The issues of an OperationOutcome, each placed on its bundle entry where the server says which."""
    if not isinstance(outcome, dict):
        return []
    by_index = {e.index: e for e in entries}
    out: list[IssueReport] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        diag = str(issue.get("diagnostics") or (details or {}).get("text") or "")
        paths = [p for p in (issue.get("expression") or []) + (issue.get("location") or []) if isinstance(p, str)]
        index: int | None = None
        element: str | None = None
        for p in paths:
            m = _ENTRY_EXPR.search(p)
            if m:
                index = int(m.group(1))
                element = m.group(2)
                break
        if index is None:
            m2 = _ENTRY_TEXT.search(diag)
            if m2:
                index = int(m2.group(1))
            if paths:
                element = paths[0]
        info = by_index.get(index) if index is not None else None
        if element and info and info.resource_type and not element.startswith(info.resource_type):
            element = f"{info.resource_type}.{element}"
        out.append(
            IssueReport(
                severity=_said(issue.get("severity") or "error", redactor),
                code=_said(issue.get("code") or "unknown", redactor),
                diagnostics=_said(diag, redactor),
                entry_index=index,
                full_url=info.full_url if info else None,
                element=_said(element, redactor) if element else None,
            )
        )
    return out


def status_code(status: object) -> int | None:
    """The code of a ``response.status`` such as ``"201 Created"``, or None."""
    if not isinstance(status, str):
        return None
    m = re.match(r"\s*(\d{3})(?!\d)", status)
    return int(m.group(1)) if m else None


def location_ref(location: object, base: str) -> str | None:
    """``Type/id`` out of a response.location (relative or absolute, with or without _history)."""
    if not isinstance(location, str) or not location:
        return None
    loc = location[len(base) :] if location.startswith(base) else location
    parts = [p for p in urlsplit(loc).path.split("/") if p]
    for i in range(len(parts) - 1):
        if _REF_TYPE.fullmatch(parts[i]) and parts[i + 1] != "_history":
            return f"{parts[i]}/{parts[i + 1]}"
    return None


def _error_answer(job: BundleJob, answer: Answer, redactor: Redactor) -> UploadFailure:
    status = answer.status_code
    if status in FATAL_STATUS:
        words = _said(answer.words(200), redactor)
        return UploadFailure(
            BundleRejection(job.name, status, f"the server refused the credentials; stopping (it said: {words})"),
            fatal=True,
        )
    try:
        data = answer.json()
    except ValueError:
        data = None
    issues = outcome_issues(data, job.entries, redactor)
    message = _said(answer.reason_phrase or "rejected", redactor)
    if not issues:
        message += f": {_said(answer.words(), redactor)}"
    return UploadFailure(BundleRejection(job.name, status, message, tuple(issues)))


def read_transaction_answer(job: BundleJob, answer: Answer, base: str, redactor: Redactor) -> Outcome:
    """The outcome of an accepted transaction, or :class:`UploadFailure` saying why it is not one."""
    status = answer.status_code
    if status >= 300:
        raise _error_answer(job, answer, redactor)

    def refuse(why: str, issues: tuple[IssueReport, ...] = ()) -> UploadFailure:
        return UploadFailure(BundleRejection(job.name, status, f"HTTP {status} but {why}", issues))

    try:
        data: Any = answer.json()
    except ValueError:
        raise refuse(f"the answer is not a transaction-response Bundle: {_said(answer.words(), redactor)}") from None
    if not isinstance(data, dict):
        raise refuse("the answer is not a transaction-response Bundle (not a JSON object)")
    rtype = data.get("resourceType")
    if rtype == "OperationOutcome":
        issues = tuple(outcome_issues(data, job.entries, redactor))
        raise refuse("the answer is an OperationOutcome, not a transaction-response", issues)
    if rtype != "Bundle" or data.get("type") != "transaction-response":
        got = _said(rtype, redactor)
        if rtype == "Bundle":
            got += f" of type {_said(data.get('type'), redactor)}"
        raise refuse(f"the answer is not a transaction-response Bundle (got {got})")
    entries = data.get("entry")
    entries = entries if isinstance(entries, list) else []
    if len(entries) != len(job.entries):
        raise refuse(
            f"the transaction-response has {len(entries)} entr{'y' if len(entries) == 1 else 'ies'} "
            f"for {len(job.entries)} request entr{'y' if len(job.entries) == 1 else 'ies'}"
        )
    result = Outcome(status)
    failed: list[IssueReport] = []
    for info, entry in zip(job.entries, entries, strict=True):
        response = entry.get("response") if isinstance(entry, dict) else None
        response = response if isinstance(response, dict) else {}
        code = status_code(response.get("status"))
        if code is None or not 200 <= code < 300:
            shown = _said(response.get("status"), redactor) or "none"
            said = outcome_issues(response.get("outcome"), job.entries, redactor)
            failed.extend(
                IssueReport(i.severity, i.code, f"entry status {shown}: {i.diagnostics}", info.index, info.full_url,
                            i.element)
                for i in said
            )  # fmt: skip
            if not said:
                failed.append(
                    IssueReport("error", "processing", f"entry status {shown}", info.index, info.full_url, None)
                )
            continue
        kind = _kind(info, code)
        per_type = result.counts[kind]
        rtype_e = info.resource_type or "?"
        per_type[rtype_e] = per_type.get(rtype_e, 0) + 1
        key = job.keys.get(info.index)
        if key is not None:
            ref = location_ref(response.get("location"), base)
            if ref is not None:
                result.ids[key] = ref
    if failed:
        raise refuse("some entries of the transaction-response are not 2xx", tuple(failed))
    return result


def _kind(info: EntryInfo, code: int) -> str:
    if info.method == "DELETE":
        return "deleted"
    if code == 201:
        return "created"
    if info.method == "PUT":
        return "updated"
    return "unchanged"  # conditional create that matched an existing resource
