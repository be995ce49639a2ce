"""FHIR checks: R4 model validation (fhir.resources R4B models), reference resolution, identifier uniqueness.

The R4B models of fhir.resources implement R4 (4.0.1) resources plus R4B's few additions; the package's default
models are R5, which differ (e.g. ResearchSubject.subject instead of R4's ``individual``), so they are never used
here. Model validation is slow (about a thousand resources a second): it runs in tests and under ``--strict``
(``inoconv fhir``, ``inoconv tosdtm``, ``inoconv validate``); by default ``inoconv tosdtm`` and ``inoconv validate``
check resources with the fast structure check of :mod:`converter.fhir.structure` (the models are its oracle).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from converter.errors import Problem, problem
from converter.fhir.element_scan import scan_elements
from converter.fhir.fhir_input import read_input
from converter.fhir.located import FromFhir, Located
from converter.fhir.paths import FPath
from converter.fhir.structure import check_resources
from converter.fhir.terminology_checks import check_profiles, system_problem
from converter.gc_pause import no_gc

_TYPE_NAME = re.compile(r"abc\.([A-Za-z0-9]+)Type\b")
_LOCAL = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_CONDITIONAL = re.compile(r"^([A-Z][A-Za-z]+)\?(.+)$")

JsonDict = dict[str, Any]


@functools.cache
def model_class(rtype: str) -> Any:
    """The R4B model class of a resource or data type name, or None."""
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(rtype)
    except (KeyError, ValueError, AttributeError):
        return None


def _field(cls: Any, name: str) -> Any:
    fields = cls.model_fields
    for key, info in fields.items():
        if (info.alias or key) == name or key == name:
            return info
    return None


def r4b_path_problem(rtype: str, path: FPath, fanout: bool = False) -> str | None:
    """Why ``path`` is not an element of the R4 resource (None when it is).

    ``fanout``: plain steps may cross lists (``match`` paths read every item).
    """
    cls = model_class(rtype)
    if cls is None:
        return f"{rtype} is not an R4 resource type"
    for i, st in enumerate(path.steps):
        if cls is None:
            return f"{path.steps[i - 1].name} is a primitive: nothing below it"
        info = _field(cls, st.name)
        if info is None:
            return f"{cls.__name__} has no element {st.name}"
        ann = str(info.annotation)
        is_list = "List[" in ann
        if (st.index is not None or st.select) and not is_list:
            return f"{cls.__name__}.{st.name} is not a list: no [{st.index if st.index is not None else '...'}]"
        if st.plain and is_list and i < len(path.steps) - 1 and not fanout:
            return f"{cls.__name__}.{st.name} is a list: say which item ([0] or [key=value])"
        m = _TYPE_NAME.search(ann)
        cls = model_class(m.group(1)) if m else None
    return None


# --- model validation ---------------------------------------------------------------------------------------------
def validate_resource(res: Any) -> list[tuple[str, str]]:
    """(element, message) for everything the R4 model of the resource rejects; [] when valid."""
    from pydantic import ValidationError

    if not isinstance(res, dict):
        return [("", "not a JSON object")]
    rtype = res.get("resourceType")
    if not isinstance(rtype, str):
        return [("resourceType", "missing")]
    cls = model_class(rtype)
    if cls is None or not hasattr(cls, "model_validate") or getattr(cls, "__resource_type__", rtype) != rtype:
        return [("resourceType", f"{rtype!r} is not an R4 resource type")]
    try:
        cls.model_validate(res)
    except ValidationError as exc:
        out: list[tuple[str, str]] = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ()) if x != "__root__")
            out.append((loc or rtype, str(e.get("msg", ""))[:300]))
        return out
    except (ValueError, TypeError, KeyError) as exc:  # raised outside pydantic's collection (KeyError: fhir_core
        # looking up the model of an unknown contained resourceType)
        return [(rtype, str(exc)[:300])]
    return []


# --- references ---------------------------------------------------------------------------------------------------
def iter_references(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(element path, reference string) for every Reference.reference below ``node``."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            yield (path or "reference", ref)
        for k, v in node.items():
            if isinstance(v, dict | list):
                yield from iter_references(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from iter_references(v, f"{path}[{i}]")


def parse_conditional(ref: str) -> tuple[str, str, str] | None:
    """``Type?identifier=system|value`` -> (Type, system, value); None for other references."""
    m = _CONDITIONAL.match(ref)
    if not m:
        return None
    rtype, query = m.groups()
    for part in query.split("&"):
        key, _, val = part.partition("=")
        if key == "identifier":
            text = unquote(val)
            # split at the first unescaped |
            sys_chars: list[str] = []
            j = 0
            while j < len(text):
                ch = text[j]
                if ch == "\\" and j + 1 < len(text):
                    sys_chars.append(text[j + 1])
                    j += 2
                    continue
                if ch == "|":
                    value = re.sub(r"\\(.)", r"\1", text[j + 1 :])
                    return rtype, "".join(sys_chars), value
                sys_chars.append(ch)
                j += 1
            return rtype, "", re.sub(r"\\(.)", r"\1", text)
    return None


def identifiers_of(res: Mapping[str, Any]) -> list[tuple[str, str]]:
    ids = res.get("identifier")
    if isinstance(ids, dict):
        ids = [ids]
    out: list[tuple[str, str]] = []
    for i in ids if isinstance(ids, list) else ():
        if isinstance(i, dict) and isinstance(i.get("value"), str):
            out.append((str(i.get("system") or ""), i["value"]))
    return out


class Index:
    """Finds the target of a reference among loaded resources: by fullUrl, by Type/id, by identifier."""

    def __init__(self, items: Iterable[Located]) -> None:
        self.items = list(items)
        self.by_url: dict[str, Located] = {}
        self.by_id: dict[str, Located] = {}
        self._by_ident: dict[tuple[str, str, str], list[Located]] | None = None  # made at the first use
        self._memo: dict[str, tuple[Located | None, str | None]] = {}
        by_id = self.by_id
        for it in self.items:
            if it.full_url:
                self.by_url.setdefault(it.full_url, it)
            res = it.resource
            rid = res.get("id")
            if rid.__class__ is str:
                key = f"{res.get('resourceType', '')}/{rid}"
                if key not in by_id:
                    by_id[key] = it

    @property
    def by_ident(self) -> dict[tuple[str, str, str], list[Located]]:
        """(type, system, value) -> the resources with that identifier."""
        if self._by_ident is None:
            by: dict[tuple[str, str, str], list[Located]] = {}
            self._by_ident = by
            for it in self.items:  # identifiers_of of each resource, inline (most resources have one identifier)
                res = it.resource
                ids = res.get("identifier")
                if ids is None:
                    continue
                if isinstance(ids, dict):
                    ids = [ids]
                elif not isinstance(ids, list):
                    continue
                rtype = str(res.get("resourceType", ""))  # it.rtype
                for i in ids:
                    if isinstance(i, dict):
                        value = i.get("value")
                        if isinstance(value, str):
                            key = (rtype, str(i.get("system") or ""), value)
                            got = by.get(key)
                            if got is None:
                                by[key] = [it]
                            else:
                                got.append(it)
        return self._by_ident

    def identifiers_unique(self) -> bool:
        """No (type, system, value) names two resources (or one twice): :func:`check_identifiers` finds nothing."""
        return all(len(v) == 1 for v in self.by_ident.values())

    def resolve(self, ref: str) -> tuple[Located | None, str | None]:
        """(target, None) or (None, why not)."""
        got = self._memo.get(ref)
        if got is None:
            got = self._memo[ref] = self._resolve(ref)
        return got

    def _resolve(self, ref: str) -> tuple[Located | None, str | None]:
        if ref in self.by_url:
            return self.by_url[ref], None
        if ref.startswith(("urn:uuid:", "urn:oid:")):
            return None, f"no entry has fullUrl {ref}"
        m = _LOCAL.match(ref)
        if m:
            hit = self.by_id.get(ref)
            return (hit, None) if hit else (None, f"no {m.group(1)} with id {m.group(2)} in the input")
        cond = parse_conditional(ref)
        if cond is not None:
            hits = self.by_ident.get(cond, [])
            if len(hits) == 1:
                return hits[0], None
            if len(hits) > 1:
                return None, f"{len(hits)} {cond[0]} resources match {ref}"
            return None, f"no {cond[0]} with identifier {cond[1]}|{cond[2]} in the input"
        for url, hit in self.by_url.items():  # absolute URL of a resource given with a full URL
            if url.endswith("/" + ref):
                return hit, None
        return None, f"cannot resolve {ref}"


def check_references(items: list[Located], index: Index | None = None) -> list[Problem]:
    """A problem for every reference (but ``#contained`` ones) that does not resolve among ``items``: each
    resource in turn, its references in document order (those :func:`iter_references` finds)."""
    index = index or Index(items)
    return scan_elements(items, index.resolve, None)[0]


def check_identifiers(items: list[Located], index: Index | None = None) -> list[Problem]:
    """Every (type, system, value) identifies one resource. ``index``: that of ``items``, whose identifier table
    answers at once when no identifier is used twice."""
    if index is not None and index.identifiers_unique():
        return []
    seen: dict[tuple[str, str, str], Located] = {}
    out: list[Problem] = []
    for it in items:
        for system, value in identifiers_of(it.resource):
            key = (it.rtype, system, value)
            if key in seen and seen[key] is not it:
                first = seen[key]
                out.append(
                    problem(it.file, it.where, "identifier", f"{system}|{value}", "fhir-identifier",
                            f"{it.rtype} identifier also used by {first.file} {first.where}")
                )  # fmt: skip
            else:
                seen[key] = it
    return out


def check_ids(items: Iterable[Located]) -> list[Problem]:
    """Two resources of one type with one id: each one after the first is a problem (references to that id could
    mean either, and a server would keep only the last)."""
    seen: dict[str, Located] = {}
    out: list[Problem] = []
    for it in items:
        rid = it.resource.get("id")
        if not isinstance(rid, str):
            continue
        key = f"{it.rtype}/{rid}"
        first = seen.setdefault(key, it)
        if first is not it:
            msg = f"a second {it.rtype} with id {rid} (the first: {first.file} {first.where})"
            out.append(problem(it.file, it.where, "id", rid, "fhir-duplicate-id", msg))
    return out


def structure_problems(items: list[Located], strict: bool = False) -> list[list[tuple[str, str]]]:
    """(element, message) of each item's R4 problems: by the fast structure check of
    :mod:`converter.fhir.structure`, or (``strict``) by the fhir.resources R4B models."""
    if strict:
        return [validate_resource(it.resource) for it in items]
    return check_resources([it.resource for it in items])


def validate_all(items: list[Located], strict: bool = False) -> list[Problem]:
    """R4 validation of every resource (the structure check; ``strict``: the R4B models), then references and
    identifiers across all of them."""
    return _validated(items, strict, False)[0]


def _validated(items: list[Located], strict: bool, codings: bool) -> tuple[list[Problem], list[Problem]]:
    """(:func:`validate_all`'s problems, ``codings``: those of
    :func:`~converter.fhir.terminology_checks.check_codings`, found in the walk that checks the references)."""
    out: list[Problem] = []
    for it, errs in zip(items, structure_problems(items, strict), strict=True):
        for element, msg in errs:
            out.append(problem(it.file, it.where, element, "", "fhir-r4-model", msg))
    index = Index(items)
    refs, codes = scan_elements(items, index.resolve, system_problem if codings else None)
    out.extend(refs)
    out.extend(check_identifiers(items, index))
    out.extend(check_ids(items))
    return out, codes


def validate_fhir_folder(folder: Path, strict: bool = False) -> list[Problem]:
    """Every check of a FHIR folder written by ``inoconv fhir`` (its ``bundles/``, else ``ndjson/``; or any folder
    or file ``inoconv tosdtm`` reads): R4 validation (the structure check; ``strict``: the R4B models),
    references, identifier uniqueness, and the offline terminology and profile checks of
    :mod:`converter.fhir.terminology_checks`."""
    return read_and_validate(folder, strict)[0]


def read_and_validate(folder: Path, strict: bool = False) -> tuple[list[Problem], list[Located]]:
    """(:func:`validate_fhir_folder`'s problems, the resources it read): the round trip of the folder's SDTM
    converts those back (:func:`converter.fhir.roundtrip.roundtrip_folder`) instead of reading the files again."""
    sink = FromFhir(datasets={})
    with no_gc():  # the parsed resources hold no cycles; a collection would only rescan them, again and again
        items = read_input(Path(folder), sink)
        found, codes = _validated(items, strict, True)
        return sink.problems + found + codes + check_profiles(items), items


__all__ = [
    "Index",
    "Located",
    "check_identifiers",
    "check_ids",
    "check_references",
    "identifiers_of",
    "iter_references",
    "model_class",
    "parse_conditional",
    "r4b_path_problem",
    "read_and_validate",
    "structure_problems",
    "validate_all",
    "validate_fhir_folder",
    "validate_resource",
]
