"""The SDTM <-> FHIR specs (``mappings/fhir/*.yaml``): one file per FHIR resource type, both directions.

A spec names, per SDTM variable, the FHIR element (a :mod:`converter.fhir.paths` path) and the value transform
(``as``); the way back is the same entry read in reverse. Layout of a file::

    resource: AdverseEvent
    tables: {name: {sdtm value: fhir value}}        # optional, beside those of _common.yaml
    blocks: {name: [elements]}                      # optional reusable element lists ("$name" in a list)
    sources:                                        # SDTM rows that make resources of this type
      - dataset: AE                                 # one resource per row (or level: study + from: [...])
        level: subject                              # subject: in the subject's Bundle; study: in study.json
        where: "AESER == 'Y'"                       # optional row filter (converter.spec.expr, parsed at load)
        identifier: {system: "urn:inoconv:{STUDYID:lower}:ae", value: "{USUBJID}-{AESEQ}"}
        request: conditional | id                   # PUT Type?identifier=... | PUT Type/<uuid5>
        default: true                               # FHIR -> SDTM: resources that match no source come here
        match: [{path: ..., value: ...}]            # FHIR -> SDTM: this source takes resources where it holds
        key: [USUBJID]                              # rows of one dataset from several resources merge on it
        direction: both | to_fhir                   # to_fhir: derived resources, skipped on the way back
        elements:
          - {var: AESER, path: seriousness, as: concept, system: ..., map: {Y: serious}, codelist: NY}
          - {path: actuality, as: fixed, value: actual}            # a constant (SDTM -> FHIR only)
          - {var: X, path: ..., when: "--STRESN.notna()"}          # written only where the expression holds
          - {var: X, path: ..., direction: to_sdtm}                # an alternative read on the way back
        children:                                   # rows of another dataset riding on this resource
          - {dataset: SUPPAE, link: supp, path: extension, item: {url: ...}, elements: [...]}
        not_mapped: {AESTDY: {reason: ..., rederive: {study_day: AESTDTC}}}

A variable may appear in several elements: SDTM -> FHIR writes every one whose ``when`` holds; FHIR -> SDTM
takes the first that gives a value. Every variable of the SDTM specs must be mapped (both ways) or listed in
``not_mapped`` with a reason (:func:`check_coverage`); DOMAIN and a SUPP--'s RDOMAIN are implied by the source.

Transforms (``as``): string, code, integer, decimal, date, dateTime (ISO 8601 kept at its precision; what FHIR
cannot hold goes to the original-value extension), map (a value table; unmapped values go to the original-value
extension), concept / coding (CodeableConcept / Coding: a standard system through ``map``, NCIt from the CT
``codelist``, the SDTM value as text), unit (Quantity unit + UCUM), number_code, study_ref, subject_ref,
present and number_text (way back only), fixed (way there only).

This module loads the folder (``_common.yaml``, included sets, every resource file); one file's entries are parsed
by :mod:`converter.fhir.spec_parse` into the dataclasses of :mod:`converter.fhir.spec_model`, and checked against
the SDTM specs and R4 by :mod:`converter.fhir.mapping_checks`; their public names are re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.fhir.mapping_checks import (
    IMPLIED,
    check_coverage,
    check_paths_r4b,
    coverage,
    element_codelist,
    rederivations,
)
from converter.fhir.spec_model import (
    DIRECTIONS,
    LEVELS,
    REQUESTS,
    RESULT_TYPES,
    TEMPLATE_VAR,
    TO_FHIR_ONLY,
    TO_SDTM_ONLY,
    TRANSFORMS,
    ChildSpec,
    Element,
    FhirSpecs,
    IdentifierSpec,
    NotMapped,
    SourceSpec,
    Template,
)
from converter.fhir.spec_parse import (
    FILE_KEYS,
    RESOURCE_NAME,
    ParseContext,
    SpecErrors,
    parse_child,
    parse_source,
    parse_template,
    prefix_of,
    subst,
    subst_deep,
)
from converter.paths import bundled_mappings_dir, mappings_dir
from converter.spec.yamlines import line_of, load_yaml_lines, strip_lines

__all__ = [
    "DIRECTIONS",
    "IMPLIED",
    "LEVELS",
    "REQUESTS",
    "RESULT_TYPES",
    "TEMPLATE_VAR",
    "TO_FHIR_ONLY",
    "TO_SDTM_ONLY",
    "TRANSFORMS",
    "ChildSpec",
    "Element",
    "FhirSpecs",
    "IdentifierSpec",
    "NotMapped",
    "SourceSpec",
    "Template",
    "check_coverage",
    "check_paths_r4b",
    "coverage",
    "element_codelist",
    "load_fhir_specs",
    "load_fhir_stage",
    "parse_template",
    "prefix_of",
    "rederivations",
]


def load_fhir_specs(folder: Path | None = None) -> FhirSpecs:
    """Every spec under ``mappings/fhir`` (``_common.yaml`` first) and the sets it includes, checked; raises
    SpecError with all problems.

    ``_common.yaml`` ``include: [standard]`` adds the spec files of another folder (a path relative to this one, or
    ``inoconv:fhir/standard`` for the folder in inoconv's own mappings, so a second study uses the standard set
    without copying it). An included folder's ``_set.yaml`` may hold ``tables``, ``blocks`` (visible to every
    spec; the study's own of the same name win) and ``supplemental_qualifiers`` (below). A source of the study's
    own files replaces an included source of the same dataset: the study extends or overrides the standard set.

    ``supplemental_qualifiers: {path, item, elements}`` (in ``_common.yaml`` or a ``_set.yaml``): every SDTM
    domain's SUPP-- dataset rides on the resources of its parent domain (the first subject-level source of that
    dataset, carried both ways) as that child group, unless a spec already carries the SUPP-- dataset itself.
    """
    folder = folder or mappings_dir() / "fhir"
    key = str(Path(folder).resolve())
    hit = _LOADED.get(key)
    if hit is not None and hit[0] == _stamps(hit[1]):
        return hit[2]
    dirs: list[Path] = [Path(folder)]
    specs = _parse_fhir_specs(Path(folder), dirs)
    _LOADED[key] = (_stamps(dirs), tuple(dirs), specs)
    return specs


# Specs loaded in this process, by folder: (what the folders held then, the folders, the specs). Stages of one
# run (the FHIR stage, validate's round trip) read the same files; a file added, removed or changed is read again.
_LOADED: dict[str, tuple[tuple[tuple[str, bytes], ...], tuple[Path, ...], FhirSpecs]] = {}


def _stamps(dirs: Sequence[Path]) -> tuple[tuple[str, bytes], ...]:
    """Every YAML file of the folders (``_common.yaml`` and ``_set.yaml`` included) with its content's digest
    (content, not mtime: an edit within the clock's tick that keeps the size is still seen)."""
    paths = sorted({p for d in dirs for p in Path(d).glob("*.yaml")})
    return tuple((str(p), hashlib.blake2b(p.read_bytes(), digest_size=16).digest()) for p in paths)


def _parse_fhir_specs(folder: Path, dirs: list[Path]) -> FhirSpecs:
    """:func:`load_fhir_specs` from the files; ``dirs`` gets every folder an ``include`` adds."""
    err = SpecErrors()
    common_path = folder / "_common.yaml"
    common: dict[str, Any] = {}
    if common_path.exists():
        doc = load_yaml_lines(common_path)
        if not isinstance(doc, dict):
            raise SpecError([f"{common_path}: must be a mapping"])
        common = doc
    constants = {str(k): str(v) for k, v in strip_lines(common.get("constants") or {}).items()}
    cerr = SpecErrors()
    sets = _included_sets(common, folder, cerr)
    dirs.extend(inc for inc, _doc in sets)
    set_tables: dict[str, Any] = {}
    set_blocks: dict[str, Any] = {}
    supp_raw: Any = common.get("supplemental_qualifiers")
    for _inc, doc in sets:
        set_tables.update(subst_deep(strip_lines(doc.get("tables") or {}), constants, "_set.yaml", cerr))
        set_blocks.update(subst_deep(doc.get("blocks") or {}, constants, "_set.yaml", cerr))
        supp_raw = supp_raw if supp_raw is not None else doc.get("supplemental_qualifiers")
    common_tables = {
        **set_tables, **subst_deep(strip_lines(common.get("tables") or {}), constants, "_common.yaml", cerr)
    }  # fmt: skip
    common_blocks = {**set_blocks, **subst_deep(common.get("blocks") or {}, constants, "_common.yaml", cerr)}
    original = subst(str(common.get("original_value", "${EXT}/sdtm-original-value")), constants, "_common.yaml", cerr)
    err.items.extend(cerr.items)
    own = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    included = [p for inc, _doc in sets for p in sorted(inc.glob("*.yaml")) if not p.name.startswith("_")]
    if not own and not included:
        raise SpecError([f"{folder}: no FHIR spec files (*.yaml)"])
    resources: dict[str, list[SourceSpec]] = {}
    from_set: set[int] = set()
    for path in own + included:
        raw = load_yaml_lines(path)
        if not isinstance(raw, dict):
            err.add(path.name, "a spec must be a mapping with resource and sources")
            continue
        for key in sorted(set(raw) - FILE_KEYS - {"__line__"}):
            err.add(f"{path.name}:{line_of(raw)}", f"unknown key {key!r}")
        doc = subst_deep(raw, constants, path.name, err)
        resource = str(doc.get("resource", ""))
        if not RESOURCE_NAME.match(resource):
            err.add(path.name, f"resource {resource!r} is not a FHIR resource type name")
            continue
        tables = {**common_tables, **strip_lines(doc.get("tables") or {})}
        blocks = {**common_blocks, **(doc.get("blocks") or {})}
        ctx = ParseContext(file=path, constants=constants, tables=tables, blocks=blocks, err=err)
        sources = [s for s in (parse_source(r, resource, ctx) for r in doc.get("sources") or ()) if s is not None]
        if not sources:
            err.add(path.name, "no sources")
        if path not in own:
            from_set.update(id(s) for s in sources)
        resources.setdefault(resource, []).extend(sources)
    resources = _own_first(resources, from_set)
    if supp_raw is not None:
        ctx = ParseContext(file=common_path, constants=constants, tables=common_tables, blocks=common_blocks, err=err)
        resources = _with_supp_children(resources, subst_deep(supp_raw, constants, "_common.yaml", err), ctx)
    for rtype, group in resources.items():
        if sum(1 for s in group if s.default) > 1:
            err.add(rtype, "more than one source is the default for FHIR -> SDTM")
    if err.items:
        raise SpecError(err.items)
    return FhirSpecs(
        resources={k: tuple(v) for k, v in resources.items()},
        constants=constants,
        tables=common_tables,
        original_value_url=original,
        bundle_order=tuple(common.get("bundle_order") or ()),
        folder=folder,
        not_mapped_datasets=_not_mapped_datasets(common.get("not_mapped_datasets")),
        files=tuple(own + included),
    )


def _included_sets(common: Mapping[str, Any], folder: Path, err: SpecErrors) -> list[tuple[Path, dict[str, Any]]]:
    """The folders ``_common.yaml`` ``include``s, each with its ``_set.yaml`` (``{}`` when it has none)."""
    raw = strip_lines(common.get("include") or [])
    if not isinstance(raw, list):
        err.add("_common.yaml", "include must be a list of folders")
        return []
    out: list[tuple[Path, dict[str, Any]]] = []
    for entry in raw:
        text = str(entry)
        path = bundled_mappings_dir() / text[len("inoconv:") :] if text.startswith("inoconv:") else folder / text
        if not path.is_dir():
            err.add("_common.yaml", f"include {text!r}: no such folder ({path})")
            continue
        if path.resolve() == folder.resolve() or any(path.resolve() == p.resolve() for p, _d in out):
            err.add("_common.yaml", f"include {text!r}: the folder is already loaded")
            continue
        doc: Any = load_yaml_lines(path / "_set.yaml") if (path / "_set.yaml").is_file() else {}
        if not isinstance(doc, dict):
            err.add(str(path / "_set.yaml"), "must be a mapping")
            doc = {}
        for key in sorted(set(doc) - {"tables", "blocks", "supplemental_qualifiers", "comment", "__line__"}):
            err.add(str(path / "_set.yaml"), f"unknown key {key!r}")
        out.append((path, doc))
    return out


def _own_first(resources: dict[str, list[SourceSpec]], from_set: set[int]) -> dict[str, list[SourceSpec]]:
    """The study's own sources, and the included ones for datasets the study's files do not carry themselves."""
    own = [s for group in resources.values() for s in group if id(s) not in from_set]
    carried = {s.dataset for s in own if s.dataset} | {c.dataset for s in own for c in s.children}
    out: dict[str, list[SourceSpec]] = {}
    for rtype, group in resources.items():
        kept = [s for s in group if id(s) not in from_set or s.dataset not in carried]
        if kept:
            out[rtype] = kept
    return out


def _with_supp_children(
    resources: dict[str, list[SourceSpec]], raw: Any, ctx: ParseContext
) -> dict[str, list[SourceSpec]]:
    """Each domain's SUPP-- dataset as a child group of its parent's first source, where no spec carries it."""
    if not isinstance(raw, dict):
        ctx.err.add("_common.yaml", "supplemental_qualifiers must be {path, item, elements}")
        return resources
    carried = {s.dataset for g in resources.values() for s in g if s.dataset}
    carried |= {c.dataset for g in resources.values() for s in g for c in s.children}
    done: set[str] = set()
    out: dict[str, list[SourceSpec]] = {}
    for rtype, group in resources.items():
        kept: list[SourceSpec] = []
        for s in group:
            ds = s.dataset
            if ds and s.level == "subject" and s.direction == "both" and not ds.startswith("SUPP"):
                supp = f"SUPP{ds}"
                if supp not in carried and supp not in done:
                    child = parse_child({**raw, "dataset": supp, "link": "supp"}, ctx)
                    if child is not None:
                        s = replace(s, children=(*s.children, child))
                        done.add(supp)
            kept.append(s)
        out[rtype] = kept
    return out


def _not_mapped_datasets(raw: Any) -> dict[str, str]:
    """``not_mapped_datasets: {DS: reason}`` of ``_common.yaml``: every entry a dataset name and a reason."""
    raw = strip_lines(raw or {})
    bad = [k for k, v in raw.items() if not isinstance(v, str) or not v.strip()] if isinstance(raw, dict) else [raw]
    if bad:
        raise SpecError([f"_common.yaml: not_mapped_datasets must map dataset names to reasons ({bad[0]!r})"])
    return {str(k).upper(): str(v) for k, v in raw.items()}


def load_fhir_stage(mappings: Path | None = None) -> tuple[Any, Any, Any]:
    """(FHIR specs, CT, SDTM specs), checked: every SDTM spec variable mapped or listed as not mapped."""
    from converter.spec.loader import load_specs, load_terminology

    root = mappings or mappings_dir()
    specs = load_fhir_specs(root / "fhir")
    ct = load_terminology(root / "ct") if (root / "ct").is_dir() else None
    sdtm_specs = load_specs(root / "sdtm") if (root / "sdtm").is_dir() else {}
    gaps = check_coverage(specs, sdtm_specs)
    if gaps:
        raise SpecError(gaps)
    return specs, ct, sdtm_specs
