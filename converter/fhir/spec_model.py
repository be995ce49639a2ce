"""The SDTM <-> FHIR specs as data (what :mod:`converter.fhir.mapping` loads ``mappings/fhir/*.yaml`` into): the
transforms and their keys, directions, levels and requests, and the frozen dataclasses of a not-mapped variable,
an element, an identifier template, a child group, a source and the whole set of specs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter.fhir.paths import FPath
from converter.spec.expr import Expr

TRANSFORMS: dict[str, frozenset[str]] = {
    "string": frozenset(),
    "code": frozenset(),
    "integer": frozenset(),
    "decimal": frozenset(),
    "date": frozenset(),
    "dateTime": frozenset(),
    "map": frozenset({"map", "partial", "back"}),
    "concept": frozenset({"system", "map", "display", "codelist", "text", "partial"}),
    "coding": frozenset({"system", "map", "display", "codelist", "partial"}),
    "unit": frozenset({"table"}),
    "number_code": frozenset(),
    "study_ref": frozenset(),
    "subject_ref": frozenset(),
    "present": frozenset({"value"}),
    "number_text": frozenset(),
    "fixed": frozenset({"value"}),
}
TO_SDTM_ONLY = frozenset({"present", "number_text"})
TO_FHIR_ONLY = frozenset({"fixed"})
DIRECTIONS = ("both", "to_fhir", "to_sdtm")
LEVELS = ("subject", "study")
REQUESTS = ("conditional", "id")
#: SDTM type of the values a transform gives back (for variables without an SDTM spec)
RESULT_TYPES = {"integer": "integer", "decimal": "float", "number_code": "float"}
TEMPLATE_VAR = re.compile(r"\{([A-Z][A-Z0-9_]*|--[A-Z0-9_]+)(?::(lower|upper))?\}")
NUMERIC = re.compile(r"^-?\d+(?:\.0+)?$")


@dataclass(frozen=True)
class NotMapped:
    reason: str
    rederive: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Element:
    var: str | None
    path: FPath
    kind: str
    args: Mapping[str, Any]
    when: Expr | None = None  # parsed at load (converter.spec.expr); absent variables count as missing
    direction: str = "both"
    where: str = ""  # "file:line" for messages
    # FHIR -> SDTM: read only from resources written elsewhere (not recognised by their identifier as this
    # source's own): an alternative such as --ORRES from valueQuantity, which would invent a value our own
    # resources leave out on purpose (a derived row without an original result)
    elsewhere: bool = False
    # a study day listed as derived again (not_mapped rederive study_day), carried only where the submitted value
    # is not what the derivation gives (a day counted from another reference, a day without a date): generated
    # by the loader, never listed as mapped (the variable stays "derived again")
    as_submitted: bool = False

    @property
    def to_fhir(self) -> bool:
        return self.direction in ("both", "to_fhir")

    @property
    def to_sdtm(self) -> bool:
        return self.direction in ("both", "to_sdtm") and self.var is not None


@dataclass(frozen=True)
class Template:
    """A string with ``{VAR}`` / ``{VAR:lower}`` fields filled from a row."""

    text: str
    fields: tuple[tuple[str, str | None], ...]  # (var, filter)

    @property
    def vars(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for v, _ in self.fields))

    def render(self, values: Mapping[str, str]) -> str:
        def sub(m: re.Match[str]) -> str:
            v = values[m.group(1)]
            f = m.group(2)
            return v.lower() if f == "lower" else v.upper() if f == "upper" else v

        return TEMPLATE_VAR.sub(sub, self.text)

    @functools.cached_property
    def pieces(self) -> tuple[str | tuple[str, str | None], ...]:
        out: list[str | tuple[str, str | None]] = []
        pos = 0
        for m in TEMPLATE_VAR.finditer(self.text):
            if m.start() > pos:
                out.append(self.text[pos : m.start()])
            out.append((m.group(1), m.group(2)))
            pos = m.end()
        if pos < len(self.text):
            out.append(self.text[pos:])
        return tuple(out)

    def parse(
        self, text: str, known: Mapping[str, str] | None = None, numeric: Iterable[str] = ()
    ) -> dict[str, str] | None:
        """The field values of a rendered string (known fields given), or None when it does not match."""
        known = known or {}
        segs: list[str | tuple[str, str | None]] = []
        for pc in self.pieces:
            if isinstance(pc, tuple) and pc[0] in known:
                v = known[pc[0]]
                segs.append(v.lower() if pc[1] == "lower" else v.upper() if pc[1] == "upper" else v)
            else:
                segs.append(pc)
        unknown = [i for i, sg in enumerate(segs) if isinstance(sg, tuple)]
        if not unknown:
            return {} if "".join(str(sg) for sg in segs) == text else None
        if len(unknown) == 1:
            i = unknown[0]
            prefix = "".join(str(sg) for sg in segs[:i])
            suffix = "".join(str(sg) for sg in segs[i + 1 :])
            if len(text) <= len(prefix) + len(suffix) or not text.startswith(prefix) or not text.endswith(suffix):
                return None
            mid = text[len(prefix) : len(text) - len(suffix)]
            seg = segs[i]
            assert isinstance(seg, tuple)
            var, flt = seg
            if var in set(numeric) and not NUMERIC.match(mid):
                return None
            return {} if flt else {var: mid}
        m = self.regex(known, numeric).match(text)
        return None if m is None else m.groupdict()

    def regex(self, known: Mapping[str, str] | None = None, numeric: Iterable[str] = ()) -> re.Pattern[str]:
        """A pattern that matches rendered strings; unknown fields become named groups."""
        known = known or {}
        num = set(numeric)
        out: list[str] = []
        pos = 0
        seen: set[str] = set()
        matches = list(TEMPLATE_VAR.finditer(self.text))
        for i, m in enumerate(matches):
            out.append(re.escape(self.text[pos : m.start()]))
            var, flt = m.group(1), m.group(2)
            if var in known:
                v = known[var]
                out.append(re.escape(v.lower() if flt == "lower" else v.upper() if flt == "upper" else v))
            elif var in seen or flt:
                out.append(".+?" if i < len(matches) - 1 else ".+")
            else:
                seen.add(var)
                body = r"-?\d+(?:\.0+)?" if var in num else (".+?" if i < len(matches) - 1 else ".+")
                out.append(f"(?P<{var}>{body})")
            pos = m.end()
        out.append(re.escape(self.text[pos:]))
        return re.compile("^" + "".join(out) + "$")


@dataclass(frozen=True)
class IdentifierSpec:
    system: Template
    value: Template
    path: FPath  # identifier[0] (a list) or identifier (R4 AdverseEvent: 0..1)

    @property
    def single(self) -> bool:
        last = self.path.last
        return last is not None and last.plain


@dataclass(frozen=True)
class ChildSpec:
    dataset: str
    supp: bool  # link: supp (USUBJID + IDVAR/IDVARVAL to the parent row; RDOMAIN = parent dataset)
    link: Mapping[str, str]  # child var -> parent var
    path: FPath
    mode: str  # list | first
    item: Mapping[str, Any]
    elements: tuple[Element, ...]
    where: Expr | None = None
    distinct: tuple[str, ...] = ()
    when_absent: str | None = None
    direction: str = "both"
    not_mapped: Mapping[str, NotMapped] = field(default_factory=dict)
    where_text: str = ""


@dataclass(frozen=True)
class SourceSpec:
    resource: str
    dataset: str | None  # None for level study
    level: str
    elements: tuple[Element, ...]
    identifier: IdentifierSpec | None = None
    request: str = "conditional"
    default: bool = False
    match: tuple[tuple[FPath, str], ...] = ()
    key: tuple[str, ...] = ()
    where: Expr | None = None
    direction: str = "both"
    from_datasets: tuple[str, ...] = ()
    children: tuple[ChildSpec, ...] = ()
    not_mapped: Mapping[str, NotMapped] = field(default_factory=dict)
    where_text: str = ""

    @property
    def name(self) -> str:
        return f"{self.resource}<-{self.dataset or 'study'}"

    def mapped_vars(self) -> set[str]:
        """Variables this source carries both ways (elements, identifier fields, child links)."""
        out = {
            e.var
            for e in self.elements
            if e.var and e.direction == "both" and e.kind not in TO_FHIR_ONLY and not e.as_submitted
        }
        if self.identifier is not None:
            out |= set(self.identifier.value.vars)
        return out


@dataclass(frozen=True)
class FhirSpecs:
    resources: Mapping[str, tuple[SourceSpec, ...]]
    constants: Mapping[str, str]
    tables: Mapping[str, Mapping[Any, Any]]
    original_value_url: str
    bundle_order: tuple[str, ...]
    folder: Path
    # SDTM datasets intentionally not carried to FHIR (_common.yaml ``not_mapped_datasets``): name -> reason
    not_mapped_datasets: Mapping[str, str] = field(default_factory=dict)
    # every spec file loaded: the folder's own, then those of the sets _common.yaml includes
    files: tuple[Path, ...] = ()

    def sources(self) -> list[SourceSpec]:
        return [s for group in self.resources.values() for s in group]

    def datasets(self) -> set[str]:
        """Every SDTM dataset some spec reads or writes (sources and children)."""
        out: set[str] = set()
        for s in self.sources():
            if s.dataset:
                out.add(s.dataset)
            out |= {c.dataset for c in s.children}
        return out

    def type_rank(self, rtype: str) -> int:
        try:
            return self.bundle_order.index(rtype)
        except ValueError:
            return len(self.bundle_order)
