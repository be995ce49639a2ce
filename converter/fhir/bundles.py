"""Transaction Bundles: one per subject (``bundles/<USUBJID>.json``) and one for the study (``bundles/study.json``).

Entries are idempotent on stable business identifiers, so a Bundle can be sent again without duplicates:

* ``PUT <Type>?identifier=<system>|<value>`` (conditional update) for resource types whose R4 search parameters
  include ``identifier``; the resource is sent without an id (the server keeps or assigns its own);
* ``PUT <Type>/<uuid5>`` (update as create, the resource carries that id) where R4 defines no ``identifier``
  search parameter (AdverseEvent).

``fullUrl`` is ``urn:uuid:<uuid5 of the identifier>``: references inside a subject's Bundle point there (the
server rewrites them); references to the study (in another Bundle) are conditional references
``ResearchStudy?identifier=...``, resolved by the server against ``study.json``, which is sent first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from converter.fhir.mapping import FhirSpecs
from converter.fhir.resource_ids import search_escape
from converter.fhir.to_fhir import FhirResult, Resource, no_gc

STUDY_BUNDLE = "study.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

JsonDict = dict[str, Any]


def bundle_file_name(usubjid: str, taken: set[str]) -> str:
    """A file name for a subject's Bundle: USUBJID with unsafe characters replaced, unique, never study.json."""
    base = _UNSAFE.sub("_", usubjid).strip(".") or "subject"
    name = f"{base}.json"
    n = 1
    while name in taken or name == STUDY_BUNDLE:
        n += 1
        name = f"{base}_{n}.json"
    taken.add(name)
    return name


def entry(res: Resource) -> JsonDict:
    body = res.body if res.request == "id" else {k: v for k, v in res.body.items() if k != "id"}
    return {
        "fullUrl": f"urn:uuid:{res.uuid}",
        "resource": body,
        "request": {"method": "PUT", "url": res.request_url},
    }


def transaction(resources: list[Resource]) -> JsonDict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry(r) for r in resources]}


_HEAD = b'{"resourceType":"Bundle","type":"transaction","entry":['
_ENTRY = b'{"fullUrl":"urn:uuid:%s","resource":%s,"request":{"method":"PUT","url":%s}}'
_CUT = b'{"fullUrl":"urn:uuid:%s","resource":%s%s,"request":{"method":"PUT","url":%s}}'  # the id cut out


def _entry_texts(resources: list[Resource]) -> list[bytes]:
    """``orjson.dumps(entry(r))`` of each resource; from its Bundle-form text where it was made as text (the
    references in Bundle form must be in use for the others)."""
    dumps = orjson.dumps
    kept_of: dict[str, bytes] = {}  # per type: the text before the id (the root's first key)
    system_of: dict[str, str] = {}  # per identifier system: its search text
    out: list[bytes] = []
    for res in resources:
        text = res.bundle_line
        if text is None:
            out.append(dumps(entry(res)))
            continue
        rtype, u = res.rtype, res.uuid
        if res.request == "id":
            out.append(_ENTRY % (u.encode(), text, b'"%s/%s"' % (rtype.encode(), u.encode())))
            continue
        kept = kept_of.get(rtype)
        if kept is None:
            kept = kept_of[rtype] = b'{"resourceType":' + dumps(rtype)
        system = system_of.get(res.system)
        if system is None:
            system = system_of[res.system] = search_escape(res.system)
        url = dumps(f"{rtype}?identifier={system}|{search_escape(res.value)}")
        cut = len(kept) + 44  # ,"id":"<36>"
        at_id = text.startswith(kept) and text.startswith(b',"id":"%s"' % u.encode(), len(kept))
        if at_id and text[cut : cut + 1] in (b",", b"}"):
            out.append(_CUT % (u.encode(), kept, text[cut:], url))  # sent without its id: the text without it
        else:
            body = {k: v for k, v in orjson.loads(text).items() if k != "id"}
            out.append(_ENTRY % (u.encode(), dumps(body), url))
    return out


def transaction_text(resources: list[Resource]) -> bytes:
    """``orjson.dumps(transaction(resources))``, the entries made as text where the resources were."""
    if all(r.bundle_line is None for r in resources):
        return orjson.dumps(transaction(resources))
    return _HEAD + b",".join(_entry_texts(resources)) + b"]}"


def grouped(result: FhirResult, specs: FhirSpecs) -> tuple[list[Resource], dict[str, list[Resource]]]:
    """(study-level resources, subject -> resources), each in Bundle order (type order, then build order)."""
    study: list[Resource] = []
    subjects: dict[str, list[Resource]] = {}
    for r in result.resources:
        if r.subject is None:
            study.append(r)
        else:
            subjects.setdefault(r.subject, []).append(r)
    order = {t: i for i, t in enumerate(specs.bundle_order)}
    rank = len(order)

    def key(r: Resource) -> int:
        return order.get(r.rtype, rank)

    study.sort(key=key)
    for rs in subjects.values():
        rs.sort(key=key)
    return study, dict(sorted(subjects.items()))


def iter_bundles(
    result: FhirResult, specs: FhirSpecs, taken: set[str] | None = None, study: bool = True
) -> Iterator[tuple[str, bytes]]:
    """(file name, JSON bytes) of every Bundle: study.json first, then one per subject (sorted by USUBJID).

    Serialises as it goes: the references are in Bundle form while this runs.
    """
    result.refs.use("bundle")
    study_res, subjects = grouped(result, specs)
    taken = set() if taken is None else taken
    if study and study_res:
        yield STUDY_BUNDLE, transaction_text(study_res)
    for usubjid, rs in subjects.items():
        with no_gc():
            data = transaction_text(rs)
        yield bundle_file_name(usubjid, taken), data


def write_bundles(
    result: FhirResult, specs: FhirSpecs, folder: Path, taken: set[str] | None = None, study: bool = True
) -> dict[str, int]:
    """Write the Bundles into ``folder`` (created); returns file name -> number of entries."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, data in iter_bundles(result, specs, taken, study):
        (folder / name).write_bytes(data)
        counts[name] = data.count(b'"fullUrl"')
    return counts
