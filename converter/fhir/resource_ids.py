"""Identity and references of the FHIR resources built from SDTM: each resource's id is
``uuid5(NAMESPACE, "<Type>|<identifier system>|<identifier value>")`` of its business identifier
(:func:`resource_uuid`, :func:`resource_uuids` for a whole column), so output is the same on every run and
references can be written before their target is built; :class:`RefTable` shares one reference dict per target,
switched at once to the Bundle or the NDJSON form; :class:`Resource` and :class:`FhirResult` are what the builder
(:mod:`converter.fhir.to_fhir`) gives (:class:`SourceLines`: a source's NDJSON as columns, no object per resource).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from converter.errors import Problem

NAMESPACE = uuid.UUID("5b0e7c52-3a0e-4d8e-9f31-6f1c0f7d2a90")  # fixed: ids and fullUrls stable across runs

JsonDict = dict[str, Any]


_NS_BYTES = NAMESPACE.bytes
_SAFE = re.compile(r"^[A-Za-z0-9:/@\-._~]*$")


_VARIANT = {f"{i:x}": f"{(i & 0x3) | 0x8:x}" for i in range(16)}  # the RFC 4122 variant bits on a hex digit


def resource_uuid(rtype: str, system: str, value: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, "<Type>|<system>|<value>"))``, computed without the UUID object."""
    x = hashlib.sha1(_NS_BYTES + f"{rtype}|{system}|{value}".encode()).hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def resource_uuids(rtype: str, systems: list[str], values: list[str]) -> list[str]:
    """:func:`resource_uuid` of each (system, value) pair: the hash of the common prefix taken once, the digests
    turned into UUID text a column at a time."""
    if not values:
        return []
    bases: dict[str, Any] = {}
    digests: list[bytes] = []
    for system, value in zip(systems, values, strict=True):
        base = bases.get(system)
        if base is None:
            base = bases[system] = hashlib.sha1(_NS_BYTES + f"{rtype}|{system}|".encode())
        h = base.copy()
        h.update(value.encode())
        digests.append(h.digest()[:16])
    raw = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x50  # version 5
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexes = np.empty((len(raw), 32), dtype=np.uint8)
    hexes[:, 0::2] = _HEX[raw >> 4]
    hexes[:, 1::2] = _HEX[raw & 0x0F]
    text = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    for a, b, c in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, c : c + b - a] = hexes[:, a:b]
    joined = text.tobytes().decode("ascii")
    return [joined[i : i + 36] for i in range(0, len(joined), 36)]


def search_escape(value: str) -> str:
    """FHIR search token escaping (``\\|``, ``\\,``, ``\\$``) and percent-encoding for a query string."""
    if _SAFE.match(value):
        return value
    from urllib.parse import quote

    escaped = value.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
    return quote(escaped, safe=":/@-._~\\")


def identifier_query(system: str, value: str) -> str:
    return f"identifier={search_escape(system)}|{search_escape(value)}"


class RefTable:
    """One shared ``{"reference": ...}`` dict per target; :meth:`use` rewrites them all at once."""

    def __init__(self) -> None:
        self._refs: dict[str, tuple[JsonDict, str, str | None]] = {}
        self._twins: dict[int, JsonDict] = {}  # id of a shared dict -> its Bundle-form twin (made on demand)
        self.mode = "bundle"

    def ref(self, rtype: str, target: str, conditional: str | None) -> JsonDict:
        got = self._refs.get(target)
        if got is None:
            d: JsonDict = {"reference": self._text(rtype, target, conditional, self.mode)}
            self._refs[target] = (d, rtype, conditional)
            return d
        return got[0]

    @staticmethod
    def _text(rtype: str, target: str, conditional: str | None, mode: str) -> str:
        if mode == "ndjson":
            return f"{rtype}/{target}"
        return conditional or f"urn:uuid:{target}"

    def use(self, mode: str) -> None:
        """``bundle``: ``urn:uuid:`` (conditional for targets in another Bundle); ``ndjson``: ``Type/id``."""
        if mode not in ("bundle", "ndjson"):
            raise ValueError(mode)
        self.mode = mode
        for target, (d, rtype, cond) in self._refs.items():
            d["reference"] = self._text(rtype, target, cond, mode)

    def bundle_twins(self, values: list[Any]) -> list[Any] | None:
        """``values`` with each of this table's reference dicts replaced by a dict of its Bundle form (the others
        as they are); ``None`` when none of them is one of this table's."""
        twins = self._twins
        if len(twins) < len(self._refs):  # the targets added since: their twins (the dicts live as long as the table)
            for target, (d, rtype, cond) in self._refs.items():
                if id(d) not in twins:
                    twins[id(d)] = {"reference": self._text(rtype, target, cond, "bundle")}
        if not any(type(v) is dict and id(v) in twins for v in values):
            return None
        return [twins.get(id(v), v) if type(v) is dict else v for v in values]

    def targets(self) -> dict[str, str]:
        return {t: rtype for t, (_d, rtype, _c) in self._refs.items()}


@dataclass(slots=True)
class Resource:
    rtype: str
    body: JsonDict
    uuid: str
    subject: str | None  # USUBJID: the subject's Bundle; None: the study Bundle
    system: str
    value: str
    request: str  # conditional | id
    source: str
    line: bytes | None = None  # made as text (Builder(text=True)): the NDJSON line, and ``body`` is empty
    bundle_line: bytes | None = None  # and (Builder(bundle_texts=True)) its Bundle form (urn:uuid/conditional refs)

    @property
    def request_url(self) -> str:
        if self.request == "id":
            return f"{self.rtype}/{self.uuid}"
        return f"{self.rtype}?{identifier_query(self.system, self.value)}"


@dataclass(slots=True)
class SourceLines:
    """One source's resources as columns, NDJSON only (``Builder(columnar=True)``): no object per resource.
    ``lines[i]`` is the NDJSON line (no newline) of the resource with id ``uuids[i]`` and business identifier
    ``systems[i]|values[i]``, in build order."""

    rtype: str
    source: str
    uuids: list[str]
    systems: list[str]
    values: list[str]
    lines: list[bytes]


@dataclass
class FhirResult:
    resources: list[Resource]
    refs: RefTable
    problems: list[Problem] = field(default_factory=list)
    blocks: list[SourceLines] = field(default_factory=list)  # Builder(columnar=True): per source, in build order

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.resources:
            out[r.rtype] = out.get(r.rtype, 0) + 1
        for b in self.blocks:
            out[b.rtype] = out.get(b.rtype, 0) + len(b.lines)
        return dict(sorted(out.items()))
