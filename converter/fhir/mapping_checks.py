"""Checks of the SDTM <-> FHIR specs against the SDTM specs and the R4 models: every SDTM variable mapped or
listed as not mapped (:func:`check_coverage`), the variables re-derived on the way back (:func:`rederivations`),
every element path an R4 element (:func:`check_paths_r4b`), the CT codelist of an element
(:func:`element_codelist`).
"""

from __future__ import annotations

from collections.abc import Mapping

from converter.fhir.paths import FPath, Step, parse_path
from converter.fhir.resource_checks import r4b_path_problem
from converter.fhir.spec_model import Element, FhirSpecs, NotMapped
from converter.spec.model import DatasetSpec

IMPLIED = ("DOMAIN", "RDOMAIN")


def coverage(specs: FhirSpecs) -> dict[str, dict[str, str]]:
    """Per dataset: variable -> "mapped" | "not mapped: <reason>" | "implied" over every spec."""
    out: dict[str, dict[str, str]] = {}
    for s in specs.sources():
        if s.dataset and s.direction == "both":
            d = out.setdefault(s.dataset, {})
            for v in s.mapped_vars():
                d[v] = "mapped"
            d.setdefault("DOMAIN", "implied")
            for v, nm in s.not_mapped.items():
                d.setdefault(v, f"not mapped: {nm.reason}")
        for c in s.children:
            if c.direction != "both":
                continue
            d = out.setdefault(c.dataset, {})
            for e in c.elements:
                if e.var and e.direction == "both" and not e.as_submitted:
                    d[e.var] = "mapped"
            for v in c.link:
                d[v] = "mapped"
            if c.supp:
                for v in ("STUDYID", "USUBJID"):
                    d[v] = "mapped"
                d.setdefault("RDOMAIN", "implied")
            else:
                d.setdefault("DOMAIN", "implied")
            for v, nm in c.not_mapped.items():
                d.setdefault(v, f"not mapped: {nm.reason}")
    return out


def check_coverage(specs: FhirSpecs, sdtm_specs: Mapping[str, DatasetSpec]) -> list[str]:
    """Every variable of every SDTM spec is mapped both ways, implied, or listed in not_mapped with a reason."""
    cov = coverage(specs)
    problems: list[str] = []
    for name, ds in sdtm_specs.items():
        known = cov.get(name)
        if known is None:
            problems.append(f"SDTM dataset {name} ({ds.path}): no FHIR spec carries it")
            continue
        for v in ds.variables:
            if v.name not in known:
                problems.append(f"{name}.{v.name}: neither mapped nor listed in not_mapped (mappings/fhir)")
    return problems


def rederivations(specs: FhirSpecs) -> dict[str, dict[str, Mapping[str, str]]]:
    """Per dataset: not-mapped variable -> its rederive rule (e.g. {study_day: AESTDTC})."""
    out: dict[str, dict[str, Mapping[str, str]]] = {}
    for s in specs.sources():
        groups: list[tuple[str | None, Mapping[str, NotMapped]]] = [(s.dataset, s.not_mapped)]
        groups += [(c.dataset, c.not_mapped) for c in s.children]
        for ds, nm in groups:
            if ds is None:
                continue
            for v, entry in nm.items():
                if entry.rederive:
                    out.setdefault(ds, {})[v] = entry.rederive
    return out


def check_paths_r4b(specs: FhirSpecs) -> list[str]:
    """Every element path exists in the R4 (R4B models) resource, with lists indexed and objects not.

    Imports fhir.resources (slow): meant for tests and ``--strict``, not for every run.
    """
    problems: list[str] = []
    for s in specs.sources():
        base = parse_path("")
        paths: list[tuple[FPath, str]] = [(e.path, e.where) for e in s.elements]
        if s.identifier is not None:
            paths.append((s.identifier.path.join(parse_path("value")), s.where_text))
        for p, _v in s.match:
            msg = r4b_path_problem(s.resource, p, fanout=True)
            if msg:
                problems.append(f"{s.where_text}: match {s.resource}.{p}: {msg}")
        for c in s.children:
            paths.append((c.path, c.where_text))
            item_base = c.path if c.mode == "first" else _as_item(c.path)
            for e in c.elements:
                paths.append((item_base.join(e.path), e.where))
        for p, where in paths:
            msg = r4b_path_problem(s.resource, base.join(p))
            if msg:
                problems.append(f"{where}: {s.resource}.{p}: {msg}")
    return problems


def _as_item(path: FPath) -> FPath:
    """The path of one item of the list at ``path`` (for checking child element paths)."""
    last = path.steps[-1]
    steps = (*path.steps[:-1], Step(last.name, index=0))
    return FPath(f"{path.text}[0]", steps)


def element_codelist(el: Element, dataset: str | None, sdtm_specs: Mapping[str, DatasetSpec]) -> str | None:
    """The codelist of an element: as the FHIR spec names it, or (``codelist: auto``) the SDTM variable's."""
    cl = el.args.get("codelist")
    if cl != "auto":
        return str(cl) if cl else None
    spec = sdtm_specs.get(dataset or "")
    if spec is None or el.var is None:
        return None
    try:
        return spec.variable(el.var).codelist
    except KeyError:
        return None
