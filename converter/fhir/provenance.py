"""Where the FHIR output came from (Provenance, issue 18) and how it is marked (meta.security).

Every Bundle ``inoconv fhir`` writes carries one R4 Provenance resource (``study.json`` the study's, each subject's
Bundle its own) whose ``target`` lists every other resource of that Bundle: a resource is traced to its Provenance
the R4 way (``Provenance.target``; on a server ``GET <Type>?_revinclude=Provenance:target``). One Provenance per
Bundle keeps each one bounded (a subject's resources, not the whole study's) and lets it be written with the
Bundle, before the next partition is built. ``meta.source`` (a uri naming the source system) was not used: it
cannot point at a Provenance the server can resolve.

A Provenance says:

* ``agent``: inoconv and its version (``who.display``; type ``assembler``, HL7 provenance-participant-type);
* ``entity`` (role ``source``): the SDTM package, identified by the SHA-256 of its data (each dataset's values in
  name order, so the same data hash the same whether read from XPT or Dataset-JSON, or written another day), and
  the specs, by the SHA-256 of the mapping files the conversion read (``FhirSpecs.files``);
* ``recorded``: when the conversion ran (UTC); ``activity``: v3-DataOperation CREATE.

A de-identified SDTM folder (``deid.json`` with a passed residual check) makes every resource carry the HL7
security label for pseudonymised data: ``meta.security`` v3-ObservationValue ``PSEUDED``.

R4 Provenance has no ``identifier``: its Bundle entry is ``PUT Provenance/<uuid5>`` on an id derived from the study
and the Bundle, so sending a Bundle again replaces its Provenance instead of adding one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from converter import __version__
from converter.fhir.to_fhir import FhirResult, Resource, resource_uuid

__all__ = [
    "PSEUDONYMISED",
    "Origin",
    "data_digest",
    "files_digest",
    "is_inoconv_provenance",
    "stamp",
]

#: HL7 security label (SecurityIntegrityObservationValue) for data whose identifiers were replaced by pseudonyms
PSEUDONYMISED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "PSEUDED",
    "display": "pseudonymized",
}
_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_ALGORITHM = "SHA-256"


@dataclass(frozen=True)
class Origin:
    """What every Provenance of one conversion says (the same for all its Bundles)."""

    sdtm_digest: str  # SHA-256 of the SDTM data (data_digest)
    sdtm_name: str  # the SDTM folder's name, for display
    specs_digest: str  # SHA-256 of the spec files (files_digest)
    recorded: str  # ISO 8601 instant, UTC
    deidentified: bool = False

    @classmethod
    def of(
        cls, datasets: Mapping[str, pd.DataFrame], sdtm_name: str, spec_files: Iterable[Path], deidentified: bool
    ) -> Origin:
        now = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(data_digest(datasets), sdtm_name, files_digest(spec_files), now, deidentified)


def data_digest(datasets: Mapping[str, pd.DataFrame]) -> str:
    """SHA-256 over the datasets in name order: each its name, then its values as CSV (header, ``\\n`` lines)."""
    h = hashlib.sha256()
    for name in sorted(datasets):
        h.update(f"{name}\n".encode())
        h.update(datasets[name].to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return h.hexdigest()


def files_digest(files: Iterable[Path]) -> str:
    """SHA-256 over the files in name order: each its name, then its bytes."""
    h = hashlib.sha256()
    for p in sorted({Path(f) for f in files}, key=lambda f: (f.name, str(f))):
        h.update(f"{p.name}\n".encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _entity(display: str, digest: str) -> dict[str, Any]:
    return {
        "role": "source",
        "what": {"identifier": {"type": {"text": _ALGORITHM}, "value": digest}, "display": display},
    }


def _provenance(targets: list[Resource], result: FhirResult, origin: Origin, key: str) -> Resource:
    uid = resource_uuid("Provenance", "urn:inoconv:provenance", key)
    body: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": uid,
        "target": [result.refs.ref(r.rtype, r.uuid, None) for r in targets],
        "recorded": origin.recorded,
        "activity": {"coding": [{"system": _OPERATION, "code": "CREATE", "display": "create"}]},
        "agent": [
            {
                "type": {"coding": [{"system": _PARTICIPANT, "code": "assembler", "display": "Assembler"}]},
                "who": {"display": f"inoconv {__version__}"},
            }
        ],
        "entity": [
            _entity(f"SDTM package {origin.sdtm_name}", origin.sdtm_digest),
            _entity("inoconv FHIR mapping specs", origin.specs_digest),
        ],
    }
    if origin.deidentified:
        body["meta"] = {"security": [dict(PSEUDONYMISED)]}
    subject = targets[0].subject if targets else None
    return Resource("Provenance", body, uid, subject, "", "", "id", "provenance")


def stamp(result: FhirResult, origin: Origin, study_key: str) -> None:
    """Add the security label (when de-identified) to every resource of ``result`` and one Provenance per Bundle
    (the study's, each subject's) targeting that Bundle's resources. ``study_key`` names the conversion's study
    (e.g. its STUDYID) so Provenance ids are stable and distinct per Bundle."""
    if origin.deidentified:
        label = dict(PSEUDONYMISED)
        for r in result.resources:
            meta = r.body.setdefault("meta", {})
            meta.setdefault("security", []).append(label)
    groups: dict[str | None, list[Resource]] = {}
    for r in result.resources:
        groups.setdefault(r.subject, []).append(r)
    for subject, members in groups.items():
        key = f"{study_key}|{subject if subject is not None else ''}"
        result.resources.append(_provenance(members, result, origin, key))


def is_inoconv_provenance(resource: Mapping[str, Any]) -> bool:
    """A Provenance written by :func:`stamp` (its agent is inoconv): FHIR -> SDTM counts it as derived."""
    if resource.get("resourceType") != "Provenance":
        return False
    agents = resource.get("agent")
    return isinstance(agents, list) and any(
        isinstance(a, dict) and str((a.get("who") or {}).get("display", "")).startswith("inoconv ") for a in agents
    )
