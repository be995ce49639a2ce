"""What to upload: FHIR R4 ``transaction`` Bundles, read from a FHIR-stage output directory.

Layout of ``fhir_dir``:

* ``bundles/*.json`` - one transaction Bundle per subject, plus ``bundles/study.json`` for the study. These
  are sent as they are (byte for byte); ``study.json`` goes first, alone, then the others.
* ``ndjson/<ResourceType>.ndjson`` - FHIR Bulk Data form, used only when there is no ``bundles/``. Bundles
  are built from it, ``batch`` resources each:

  - a resource with an identifier is sent as a conditional create, ``POST Type`` with
    ``ifNoneExist: identifier=<system>|<value>`` from its first identifier (and without its NDJSON ``id``:
    the server assigns one);
  - a resource without identifier (or of a type R4 gives no ``identifier`` search parameter, such as
    AdverseEvent) is sent as ``PUT Type/<id>`` (update-as-create with its NDJSON id);
  - references. NDJSON refers by ``Type/id`` (NDJSON ids). Resources are grouped in dependency levels (a
    resource comes in a later level than everything it refers to) and each level is a wave of bundles,
    sent after the previous wave is accepted. Inside one bundle a reference is rewritten to the target's
    ``urn:uuid`` fullUrl (the server resolves it in the transaction). A reference to a resource in an
    earlier bundle is rewritten, just before sending, to the id the server gave it - read from that
    bundle's transaction-response (``response.location``) and kept in the journal, so a resumed upload
    still knows it; failing that, the target is looked up on the server by its identifier. References to
    resources that are not in the NDJSON are left as they are.

Every bundle is checked before anything is sent; all problems are reported together as
:class:`~converter.errors.InputError` naming the file and the entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from converter.errors import InputError, Problem, problem

STUDY_BUNDLE = "study.json"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_NS = uuid.UUID("8a6f3f0e-5b0c-4c47-9a55-1f0d5c2a7e11")  # fixed: urn:uuid fullUrls stable across runs
_LOCAL_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
# the request URLs inoconv writes: relative to the server, a type, a type and id, or a type and a search
_TYPE_URL = re.compile(r"^[A-Z][A-Za-z]+$")
_INSTANCE_URL = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")
_CONDITIONAL_URL = re.compile(r"^[A-Z][A-Za-z]+\?[^#\s]+$")
_TYPE_ORDER = (
    "ResearchStudy",
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Group",
    "Patient",
    "ResearchSubject",
    "EpisodeOfCare",
    "Encounter",
    "Condition",
    "Procedure",
    "MedicationAdministration",
    "MedicationStatement",
    "Observation",
    "DiagnosticReport",
    "AdverseEvent",
)

# R4 resource types that have an ``identifier`` element but no ``identifier`` search parameter: a conditional
# create/update on ``identifier=`` cannot find the existing resource there (strict servers answer 400,
# lenient ones ignore the parameter and create a duplicate every time). Use PUT Type/<stable id> instead.
NO_IDENTIFIER_SEARCH = frozenset(
    {
        "AdverseEvent",
        "BiologicallyDerivedProduct",
        "CatalogEntry",
        "MedicinalProductIngredient",
        "ObservationDefinition",
        "SubstanceSpecification",
    }
)

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class EntryInfo:
    """One entry of a bundle, as far as the upload needs to know it."""

    index: int
    full_url: str | None
    method: str
    url: str
    resource_type: str | None
    idempotent: bool = True  # False for a plain create (POST without ifNoneExist)


@dataclass
class BundleJob:
    """One transaction Bundle to send. ``sha256`` is over the content as planned (the journal key)."""

    name: str
    level: int
    sha256: str
    entries: list[EntryInfo]
    path: Path | None = None
    content: JsonDict | None = None
    # NDJSON only: entry index -> the NDJSON key ("Type/id") of its resource
    keys: dict[int, str] = field(default_factory=dict)
    # NDJSON only: references to resources in other bundles, to rewrite to server ids before sending
    external: set[str] = field(default_factory=set)

    @property
    def resource_count(self) -> int:
        """Resources sent (created or updated); deletions are not counted."""
        return sum(1 for e in self.entries if e.resource_type and e.method != "DELETE")

    def counts(self, deletes: bool = False) -> dict[str, int]:
        """Entries per resource type: the resources sent, or (``deletes``) the DELETE entries."""
        out: dict[str, int] = {}
        for e in self.entries:
            if e.resource_type and (e.method == "DELETE") == deletes:
                out[e.resource_type] = out.get(e.resource_type, 0) + 1
        return out


@dataclass
class UploadPlan:
    """Waves of bundles: every bundle of a wave may be sent in parallel, after the previous wave."""

    source: str  # "bundles" or "ndjson"
    waves: list[list[BundleJob]]
    # NDJSON only: "Type/id" -> (Type, identifier search) for resources sent by conditional create
    identifiers: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def jobs(self) -> list[BundleJob]:
        return [j for w in self.waves for j in w]

    def plain_creates(self) -> tuple[int, int]:
        """(entries, bundles) that are plain creates: not idempotent, a resend can duplicate them."""
        per_job = [sum(1 for e in j.entries if not e.idempotent) for j in self.jobs]
        return sum(per_job), sum(1 for n in per_job if n)

    def counts(self, deletes: bool = False) -> dict[str, int]:
        """Resources per type in all bundles (or, with ``deletes``, DELETE entries per type)."""
        out: dict[str, int] = {}
        for job in self.jobs:
            for k, v in job.counts(deletes).items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))


# ---------------------------------------------------------------------------------------------------------
# checks


def _entry_label(i: int, entry: object) -> str:
    full = entry.get("fullUrl") if isinstance(entry, dict) else None
    return f"entry[{i}]" + (f" {full}" if isinstance(full, str) and full else "")


def _url_type(url: str) -> str:
    head = url.split("?", 1)[0].strip("/").split("/", 1)[0]
    return head if _RESOURCE_TYPE.match(head) else ""


def request_refusal(method: str, url: str, allow_delete: bool = False) -> str | None:
    """Why an entry's request is not one inoconv sends, or None.

    Accepted: ``POST Type`` (create, conditional with ``ifNoneExist``), ``PUT Type/id`` and ``PUT Type?search``
    (update, conditional update), and with ``allow_delete`` only, ``DELETE Type/id`` or ``DELETE Type?search``.
    Refused: any other method (GET, HEAD, PATCH), DELETE without ``allow_delete``, and any URL that is not
    relative to the server (absolute URLs, paths, operations).
    """
    head = url.split("?", 1)[0]
    if ":" in head or head.startswith("/"):
        return "request.url must be relative to the server (Type, Type/id or Type?search), not an absolute URL"
    if method == "DELETE" and not allow_delete:
        return "DELETE entries are refused: they remove data from the server (allow them with --allow-delete)"
    if method not in ("POST", "PUT", "DELETE"):
        return (
            f"{method} entries are refused: the upload sends creates (POST), updates (PUT) and, with "
            "--allow-delete, DELETE only"
        )
    if method == "POST" and not _TYPE_URL.match(url):
        return "a POST entry's request.url must be a resource type (use ifNoneExist for a conditional create)"
    if method in ("PUT", "DELETE") and not (_INSTANCE_URL.match(url) or _CONDITIONAL_URL.match(url)):
        return f"a {method} entry's request.url must be Type/id or Type?search"
    return None


def check_bundle(name: str, data: object, allow_delete: bool = False) -> tuple[list[Problem], list[EntryInfo]]:
    """Structural checks of one transaction Bundle; returns the problems and the entries."""
    probs: list[Problem] = []
    entries_out: list[EntryInfo] = []
    if not isinstance(data, dict):
        return [problem(name, "", "", type(data).__name__, "bundle", "not a JSON object")], []
    if data.get("resourceType") != "Bundle":
        probs.append(problem(name, "", "resourceType", data.get("resourceType"), "bundle", "not a Bundle"))
    if data.get("type") != "transaction":
        probs.append(problem(name, "", "type", data.get("type"), "bundle", "Bundle.type must be 'transaction'"))
    entries = data.get("entry")
    if not isinstance(entries, list) or not entries:
        probs.append(problem(name, "", "entry", "", "bundle", "transaction Bundle has no entries"))
        return probs, []
    seen_full: set[str] = set()
    for i, entry in enumerate(entries):
        rec = _entry_label(i, entry)
        if not isinstance(entry, dict):
            probs.append(problem(name, rec, "", "", "entry", "entry is not a JSON object"))
            continue
        full = entry.get("fullUrl")
        if full is not None and not (isinstance(full, str) and full):
            probs.append(problem(name, rec, "fullUrl", full, "entry", "fullUrl must be a non-empty string"))
            full = None
        if isinstance(full, str):
            if full in seen_full:
                probs.append(problem(name, rec, "fullUrl", full, "entry", "fullUrl used by two entries"))
            seen_full.add(full)
        req = entry.get("request")
        if not isinstance(req, dict):
            probs.append(problem(name, rec, "request", "", "entry", "entry has no request"))
            continue
        method = req.get("method")
        url = req.get("url")
        ok = True
        if not isinstance(method, str) or method not in METHODS:
            probs.append(problem(name, rec, "request.method", method, "entry", "request.method missing or invalid"))
            ok = False
        if not isinstance(url, str) or not url.strip():
            probs.append(problem(name, rec, "request.url", url, "entry", "request.url missing"))
            ok = False
        if ok and isinstance(method, str) and isinstance(url, str):
            refusal = request_refusal(method, url.strip(), allow_delete)
            if refusal is not None:
                probs.append(problem(name, rec, "request", f"{method} {url}", "request", refusal))
                ok = False
        res = entry.get("resource")
        rtype: str | None = None
        if res is not None:
            if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
                probs.append(problem(name, rec, "resource", "", "entry", "resource has no resourceType"))
                ok = False
            else:
                rtype = res["resourceType"]
        if ok and isinstance(url, str):
            rt = rtype or _url_type(url)
            conditions = [url.split("?", 1)[1]] if "?" in url else []
            if isinstance(req.get("ifNoneExist"), str):
                conditions.append(req["ifNoneExist"])
            if rt in NO_IDENTIFIER_SEARCH and any(_uses_identifier(c) for c in conditions):
                probs.append(
                    problem(
                        name,
                        rec,
                        "request",
                        url,
                        "conditional",
                        f"R4 has no 'identifier' search parameter for {rt}: this conditional request cannot "
                        f"find an existing {rt}, so re-uploads would duplicate it; use PUT {rt}/<stable id>",
                    )
                )
                ok = False
        if ok and method in ("POST", "PUT") and rtype is None:
            probs.append(problem(name, rec, "resource", "", "entry", f"{method} entry has no resource"))
            ok = False
        if ok and isinstance(url, str) and rtype is not None and _url_type(url) not in ("", rtype):
            probs.append(problem(name, rec, "request.url", url, "entry", f"request.url is not for a {rtype} resource"))
            ok = False
        if ok and isinstance(method, str) and isinstance(url, str):
            plain_create = method == "POST" and not req.get("ifNoneExist") and bool(_url_type(url))
            entries_out.append(
                EntryInfo(i, full, method, url, rtype or (_url_type(url) or None), idempotent=not plain_create)
            )
    return probs, entries_out


def _uses_identifier(query: str) -> bool:
    return any(part.split("=", 1)[0].split(":", 1)[0] == "identifier" for part in query.split("&"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_bytes(content: JsonDict) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# bundles/


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _plan_bundle_dir(bundle_dir: Path, allow_delete: bool) -> UploadPlan:
    files = sorted((p for p in bundle_dir.glob("*.json") if p.is_file()), key=lambda p: _natural_key(p.name))
    probs: list[Problem] = []
    study: list[BundleJob] = []
    subjects: list[BundleJob] = []
    for path in files:
        name = path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            probs.append(problem(name, "", "", "", "read", f"cannot read file ({exc.strerror})"))
            continue
        try:
            data = json.loads(raw)
        except UnicodeDecodeError:
            probs.append(problem(name, "", "", "", "json", "file is not UTF-8 text"))
            continue
        except json.JSONDecodeError as exc:
            probs.append(
                problem(name, f"line {exc.lineno} column {exc.colno}", "", "", "json", f"not valid JSON: {exc.msg}")
            )
            continue
        p, entries = check_bundle(name, data, allow_delete)
        probs.extend(p)
        if p:
            continue
        job = BundleJob(name=name, level=0, sha256=sha256_bytes(raw), entries=entries, path=path)
        if name == STUDY_BUNDLE:
            study.append(job)
        else:
            job.level = 1
            subjects.append(job)
    if probs:
        raise InputError(probs, context=str(bundle_dir))
    if not study and not subjects:
        raise InputError(problem(str(bundle_dir), "", "", "", "input", "no *.json bundles in the directory"))
    waves = [w for w in (study, subjects) if w]
    return UploadPlan(source="bundles", waves=waves)


# ---------------------------------------------------------------------------------------------------------
# ndjson/


def _token_escape(value: str) -> str:
    # FHIR search escaping of the token separators, then percent-encoding for the query string
    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return quote(escaped, safe=":/@-._~\\")


def identifier_search(resource: JsonDict) -> str | None:
    """``identifier=system|value`` from the first identifier that has a value, or None."""
    idents = resource.get("identifier")
    if isinstance(idents, dict):
        idents = [idents]
    if not isinstance(idents, list):
        return None
    for ident in idents:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str) and ident["value"]:
            system = ident.get("system")
            value = _token_escape(ident["value"])
            if isinstance(system, str) and system:
                return f"identifier={_token_escape(system)}|{value}"
            return f"identifier={value}"
    return None


def iter_references(node: object) -> Iterator[JsonDict]:
    """Every JSON object with a string ``reference`` inside ``node``."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            if isinstance(cur.get("reference"), str):
                yield cur
            stack.extend(v for v in cur.values() if isinstance(v, dict | list))
        elif isinstance(cur, list):
            stack.extend(v for v in cur if isinstance(v, dict | list))


def rewrite_references(node: object, mapping: Callable[[str], str | None]) -> None:
    for holder in iter_references(node):
        new = mapping(holder["reference"])
        if new is not None:
            holder["reference"] = new


def _type_rank(rtype: str) -> tuple[int, str]:
    try:
        return (_TYPE_ORDER.index(rtype), rtype)
    except ValueError:
        return (len(_TYPE_ORDER), rtype)


def _read_ndjson(ndjson_dir: Path) -> tuple[list[tuple[str, JsonDict]], list[Problem]]:
    probs: list[Problem] = []
    out: list[tuple[str, JsonDict]] = []
    seen: dict[str, str] = {}
    files = sorted(ndjson_dir.glob("*.ndjson"), key=lambda p: _type_rank(p.stem))
    for path in files:
        name = f"ndjson/{path.name}"
        ftype = path.stem
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            probs.append(problem(name, "", "", "", "read", f"cannot read file ({type(exc).__name__})"))
            continue
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            rec = f"line {lineno}"
            try:
                res = json.loads(line)
            except json.JSONDecodeError as exc:
                probs.append(problem(name, rec, "", "", "json", f"not valid JSON: {exc.msg}"))
                continue
            if not isinstance(res, dict) or res.get("resourceType") != ftype:
                got = res.get("resourceType") if isinstance(res, dict) else type(res).__name__
                probs.append(problem(name, rec, "resourceType", got, "ndjson", f"expected a {ftype} resource"))
                continue
            rid = res.get("id")
            if not isinstance(rid, str) or not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", rid):
                if identifier_search(res) is None or ftype in NO_IDENTIFIER_SEARCH:
                    probs.append(
                        problem(name, rec, "id", rid, "ndjson", "resource has neither a valid id nor an identifier")
                    )
                    continue
                rid = f"line{lineno}"
                res = {**res, "id": rid}
            key = f"{ftype}/{rid}"
            if key in seen:
                probs.append(problem(name, rec, "id", rid, "ndjson", f"duplicate id (also at {seen[key]})"))
                continue
            seen[key] = f"{name} {rec}"
            out.append((key, res))
    return out, probs


def _levels(resources: dict[str, JsonDict]) -> dict[str, int]:
    deps: dict[str, set[str]] = {}
    for key, res in resources.items():
        targets = {h["reference"] for h in iter_references(res)}
        deps[key] = {t for t in targets if t in resources and t != key}
    level: dict[str, int] = {}
    visiting: set[str] = set()
    for root in resources:
        if root in level:
            continue
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            key, done = stack.pop()
            if done:
                visiting.discard(key)
                level[key] = 1 + max((level.get(d, 0) for d in deps[key] if d in level), default=-1)
                continue
            if key in level or key in visiting:
                continue  # a cycle: its back edge does not count as a dependency
            visiting.add(key)
            stack.append((key, True))
            stack.extend((d, False) for d in deps[key] if d not in level and d not in visiting)
    return level


def _plan_ndjson(ndjson_dir: Path, batch: int) -> UploadPlan:
    items, probs = _read_ndjson(ndjson_dir)
    if probs:
        raise InputError(probs, context=str(ndjson_dir))
    if not items:
        raise InputError(problem(str(ndjson_dir), "", "", "", "input", "no resources in the *.ndjson files"))
    resources = dict(items)
    order = {k: n for n, (k, _) in enumerate(items)}
    levels = _levels(resources)
    identifiers: dict[str, tuple[str, str]] = {}
    for key, res in resources.items():
        search = identifier_search(res)
        if search is not None and res["resourceType"] not in NO_IDENTIFIER_SEARCH:
            identifiers[key] = (res["resourceType"], search)
    by_level: dict[int, list[str]] = {}
    for key in resources:
        by_level.setdefault(levels[key], []).append(key)
    waves: list[list[BundleJob]] = []
    for lvl in sorted(by_level):
        keys = sorted(by_level[lvl], key=lambda k: (_type_rank(k.split("/", 1)[0]), order[k]))
        wave: list[BundleJob] = []
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            name = f"ndjson-L{lvl}-{start // batch + 1:05d}"
            wave.append(_ndjson_job(name, lvl, chunk, resources, identifiers))
        waves.append(wave)
    return UploadPlan(source="ndjson", waves=waves, identifiers=identifiers)


def _urn(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, key)}"


def _ndjson_job(
    name: str,
    level: int,
    chunk: list[str],
    resources: dict[str, JsonDict],
    identifiers: dict[str, tuple[str, str]],
) -> BundleJob:
    inside = set(chunk)
    external: set[str] = set()

    def local(ref: str) -> str | None:
        if ref in inside:
            return _urn(ref)
        if ref in resources and ref in identifiers:
            external.add(ref)  # resolved to the server id just before sending
        return None  # other bundles' PUT-by-id resources keep their id; foreign references stay as they are

    entries: list[JsonDict] = []
    keys: dict[int, str] = {}
    for i, key in enumerate(chunk):
        res = json.loads(json.dumps(resources[key]))
        rtype = res["resourceType"]
        rewrite_references(res, local)
        if key in identifiers:
            res.pop("id", None)
            res.pop("meta", None)
            request = {"method": "POST", "url": rtype, "ifNoneExist": identifiers[key][1]}
        else:
            res.pop("meta", None)
            request = {"method": "PUT", "url": key}
        entries.append({"fullUrl": _urn(key), "resource": res, "request": request})
        keys[i] = key
    content: JsonDict = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    _, infos = check_bundle(name, content)
    return BundleJob(
        name=name,
        level=level,
        sha256=sha256_bytes(canonical_bytes(content)),
        entries=infos,
        content=content,
        keys=keys,
        external=external,
    )


# ---------------------------------------------------------------------------------------------------------


def plan_upload(fhir_dir: Path, batch: int = 100, allow_delete: bool = False) -> UploadPlan:
    """Read and check ``fhir_dir``; raises :class:`InputError` (exit 2) on any problem.

    Every entry must be a request inoconv sends (:func:`request_refusal`); DELETE only with ``allow_delete``.
    """
    fhir_dir = Path(fhir_dir)
    if batch < 1:
        raise InputError(problem("--batch", "", "", batch, "option", "batch must be at least 1"))
    if not fhir_dir.is_dir():
        raise InputError(problem(str(fhir_dir), "", "", "", "input", "FHIR directory does not exist"))
    bundle_dir = fhir_dir / "bundles"
    ndjson_dir = fhir_dir / "ndjson"
    if bundle_dir.is_dir() and any(bundle_dir.glob("*.json")):
        return _plan_bundle_dir(bundle_dir, allow_delete)
    if ndjson_dir.is_dir() and any(ndjson_dir.glob("*.ndjson")):
        return _plan_ndjson(ndjson_dir, batch)
    raise InputError(
        problem(str(fhir_dir), "", "", "", "input", "neither bundles/*.json nor ndjson/*.ndjson found in it")
    )


def load_job_body(job: BundleJob) -> tuple[bytes, JsonDict]:
    """The bytes to send for a bundles/ job, re-read and checked against the planned sha256."""
    assert job.path is not None
    raw = job.path.read_bytes()
    if sha256_bytes(raw) != job.sha256:
        raise InputError(
            problem(job.name, "", "", "", "changed", "file changed since the upload started; rerun the upload")
        )
    data: JsonDict = json.loads(raw)
    return raw, data
