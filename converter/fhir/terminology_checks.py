"""Offline terminology and profile checks of FHIR resources (``inoconv validate`` on a FHIR folder).

* Every Coding (``coding`` items, ``valueCoding``, ``meta.security``/``meta.tag``) and every coded Quantity names a
  code system of a published terminology (:data:`KNOWN_SYSTEMS`, :data:`KNOWN_PREFIXES`): an ``http(s)`` system
  outside them, or any system on an ``.example`` host (RFC 2606: a name that can never be registered), is an
  error (``fhir-code-system``); an unknown ``urn:`` system is a warning (``fhir-code-system-urn``).
* A Coding that names a system carries a code (``fhir-code-missing``): a display alone is not a code.
* A resource that claims a profile in ``meta.profile`` has what that profile requires (:data:`PROFILES`: the
  required elements and the terminology of the coded ones, as far as they can be checked without a terminology
  server); a profile inoconv knows nothing about is reported, not silently trusted (``fhir-profile-unknown``).

Identifiers (``system`` + ``value``) are not codings: their systems are the sponsor's namespaces and are not
checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from converter.errors import Problem, problem
from converter.fhir.element_scan import scan_elements
from converter.fhir.located import Located

__all__ = [
    "KNOWN_PREFIXES",
    "KNOWN_SYSTEMS",
    "PROFILES",
    "Profile",
    "check_codings",
    "check_profiles",
    "system_problem",
]

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

#: code systems by their HL7-endorsed URIs (HL7 Terminology, THO "external" code systems)
KNOWN_SYSTEMS = frozenset(
    {
        SNOMED,
        LOINC,
        UCUM,
        RXNORM,
        NCIT,
        MEDDRA,
        ICD10CM,
        "urn:iso:std:iso:3166",  # ISO 3166-1 country codes
        "urn:iso:std:iso:3166:-2",  # ISO 3166-2 subdivisions
        "urn:oid:2.16.840.1.113883.6.238",  # CDC Race & Ethnicity (US Core race/ethnicity ombCategory)
        "urn:ietf:bcp:47",  # languages
        "urn:ietf:bcp:13",  # MIME types
        "http://www.whocc.no/atc",  # WHO ATC
        "http://fdasis.nlm.nih.gov",  # FDA UNII
    }
)
#: every code system under these: HL7 Terminology (THO), the FHIR core code systems, FHIR sid/ systems (ICD...)
KNOWN_PREFIXES = (
    "http://terminology.hl7.org/CodeSystem/",
    "http://hl7.org/fhir/sid/",
    "http://hl7.org/fhir/",
)


def system_problem(system: str) -> tuple[str, str] | None:
    """(rule, message) when ``system`` is not a known terminology; None when it is."""
    if system in KNOWN_SYSTEMS or system.startswith(KNOWN_PREFIXES):
        return None
    host = system.split("://", 1)[1].split("/", 1)[0] if "://" in system else ""
    if host == "example" or host.endswith(".example") or ".example." in f"{host}.":
        return "fhir-code-system", f"code system {system} is on an example host (RFC 2606): not a real terminology"
    if system.startswith(("http://", "https://")):
        return "fhir-code-system", f"code system {system} is not a known terminology (SNOMED CT, LOINC, UCUM, " \
            "RxNorm, NCIt, MedDRA, ISO 3166, HL7 terminology, FHIR core)"  # fmt: skip
    return "fhir-code-system-urn", f"code system {system} is not a known terminology"


def check_codings(items: list[Located]) -> list[Problem]:
    """Unknown or invented code systems and Codings without a code, one problem per element (each resource in
    turn, its Codings and coded Quantities in document order; the walk is
    :func:`converter.fhir.element_scan.scan_elements`)."""
    return scan_elements(items, None, system_problem)[1]


@dataclass(frozen=True)
class Profile:
    """What a published profile requires that can be checked offline."""

    name: str
    rtype: str
    required: tuple[str, ...]  # top-level elements that must be present
    coded: Mapping[str, tuple[str, ...]]  # element -> code systems one of its codings must use
    source: str  # where the requirements come from


MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition"

#: the profiles inoconv's output claims, with their offline-checkable requirements
PROFILES: Mapping[str, Profile] = {
    f"{MCODE}/mcode-primary-cancer-condition": Profile(
        name="mCODE PrimaryCancerCondition",
        rtype="Condition",
        # US Core Condition Problems and Health Concerns (which mCODE STU3 derives from): category, code and
        # subject 1..1/1..*; clinicalStatus and verificationStatus must-support (inoconv always sends them)
        required=("clinicalStatus", "verificationStatus", "category", "code", "subject"),
        # code: PrimaryOrUncertainBehaviorCancerDisorderVS (SNOMED CT disorders, ICD-10-CM)
        coded={"code": (SNOMED, ICD10CM)},
        source="mCODE STU3 (3.0.0), StructureDefinition-mcode-primary-cancer-condition",
    ),
}


def check_profiles(items: list[Located]) -> list[Problem]:
    """Each claimed profile's offline-checkable requirements; an unknown claimed profile is reported."""
    out: list[Problem] = []
    for it in items:
        meta = it.resource.get("meta")
        claimed = meta.get("profile") if isinstance(meta, dict) else None
        for url in claimed if isinstance(claimed, list) else []:
            canonical = str(url).split("|", 1)[0]
            prof = PROFILES.get(canonical)
            if prof is None:
                msg = f"claims the profile {url}, which inoconv cannot check offline"
                out.append(problem(it.file, it.where, "meta.profile", str(url), "fhir-profile-unknown", msg))
                continue
            if it.rtype != prof.rtype:
                msg = f"claims {prof.name}, a {prof.rtype} profile, on a {it.rtype}"
                out.append(problem(it.file, it.where, "meta.profile", str(url), "fhir-profile", msg))
                continue
            for element in prof.required:
                if it.resource.get(element) in (None, "", [], {}):
                    msg = f"claims {prof.name} but has no {element} ({prof.source})"
                    out.append(problem(it.file, it.where, element, "", "fhir-profile", msg))
            for element, systems in prof.coded.items():
                cc = it.resource.get(element)
                codings = cc.get("coding") if isinstance(cc, dict) else None
                got = {c.get("system") for c in codings or () if isinstance(c, dict) and c.get("code")}
                if cc is not None and not got & set(systems):
                    msg = f"claims {prof.name}: {element} needs a code from {' or '.join(systems)} ({prof.source})"
                    out.append(problem(it.file, it.where, element, "", "fhir-profile", msg))
    return out
