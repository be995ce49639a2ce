"""One walk over each FHIR resource's elements for the checks that look at every element: the references that do
not resolve (``fhir-reference``) and the Codings and coded Quantities whose code system is not a known terminology
or that carry no code (``fhir-code-system``, ``fhir-code-system-urn``, ``fhir-code-missing``).

What is a reference and what is a Coding is decided as by :func:`converter.fhir.resource_checks.iter_references`
(every string ``reference`` of an object) and by :func:`converter.fhir.terminology_checks.check_codings` (the
items of a ``coding`` array, of the resource's ``meta.security`` and ``meta.tag``, a ``valueCoding`` object;
any other object with a ``system`` and a numeric ``value`` is a coded Quantity). The walk is iterative (a stack of
the containers from the resource down to where it is, no recursion, no generators) and renders an element's path
(``component[0].code.coding[1]``) only for a finding: the findings are those of walking each check on its own, in
the same order (each resource in turn, its objects in document order, an object before what is inside it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from converter.errors import Problem, problem
from converter.fhir.located import Located

#: a reference -> (its target or None, why it does not resolve)
Resolve = Callable[[str], tuple[object | None, str | None]]
#: a code system -> (rule, message) when it is not a known terminology, else None
SystemCheck = Callable[[str], tuple[str, str] | None]

_LISTED_IN_META = ("security", "tag")  # lists of Codings in the resource's meta


def element_path(nodes: list[Any], keys: list[Any]) -> Any:
    """The path of the element reached from ``nodes[0]`` by ``keys`` (``keys[j]`` its key in ``nodes[j]``): an
    object's member ``.name`` (the bare name first), an array's item ``[i]``; "" for ``nodes[0]`` itself."""
    out: Any = ""
    for node, k in zip(nodes, keys, strict=False):
        out = f"{out}[{k}]" if isinstance(node, list) else (f"{out}.{k}" if out else k)
    return out


def scan_elements(
    items: Iterable[Located], resolve: Resolve | None, system_check: SystemCheck | None
) -> tuple[list[Problem], list[Problem]]:
    """(reference problems, coding problems) of every resource of ``items``, in one walk of each.

    ``resolve``: the reference check (None: references are not checked); ``system_check``: the coding check (None:
    codings are not checked)."""
    refs: list[Problem] = []
    codes: list[Problem] = []
    known: dict[str, tuple[str, str] | None] = {}  # code system -> system_check's answer
    for it in items:
        res: Any = it.resource
        if isinstance(res, dict):
            top: Iterator[tuple[Any, Any]] = iter(res.items())
        elif isinstance(res, list):
            top = enumerate(res)
        else:
            continue
        nodes: list[Any] = [res]  # the containers from the resource down to the one being walked
        keys: list[Any] = []  # keys[j]: the key of nodes[j + 1] in nodes[j]
        walks: list[Iterator[tuple[Any, Any]]] = [top]
        coded = [False]  # per container: its objects are Codings (the items of a list of Codings)
        if isinstance(res, dict) and ("reference" in res or "system" in res):
            _visit(res, False, it, nodes[:0], keys, "", resolve, system_check, known, refs, codes)
        while walks:
            for k, v in walks[-1]:
                c = v.__class__
                if c is str:
                    continue
                if c is dict or (c is not list and isinstance(v, dict)):
                    coding = coded[-1] or k == "valueCoding"
                    if coding or "reference" in v or "system" in v:
                        _visit(v, coding, it, nodes, keys, k, resolve, system_check, known, refs, codes)
                    walks.append(iter(v.items()))
                    listed = False
                elif c is list or isinstance(v, list):
                    walks.append(enumerate(v))
                    listed = k == "coding" or (
                        k in _LISTED_IN_META and isinstance(nodes[-1], dict) and element_path(nodes, keys) == "meta"
                    )
                else:
                    continue
                nodes.append(v)
                keys.append(k)
                coded.append(listed)
                break
            else:
                walks.pop()
                nodes.pop()
                coded.pop()
                if keys:
                    keys.pop()
    return refs, codes


def _visit(
    node: dict[str, Any],
    coding: bool,
    it: Located,
    nodes: list[Any],
    keys: list[Any],
    k: Any,
    resolve: Resolve | None,
    system_check: SystemCheck | None,
    known: dict[str, tuple[str, str] | None],
    refs: list[Problem],
    codes: list[Problem],
) -> None:
    """The checks of one object, ``node`` (the member ``k`` of ``nodes[-1]``; the resource when ``nodes`` is
    empty); its path is rendered only for a finding."""
    ref = node.get("reference")
    if resolve is not None and isinstance(ref, str) and not ref.startswith("#"):
        target, why = resolve(ref)
        if target is None:
            path = element_path(nodes, [*keys, k])
            msg = f"dangling reference: {why}"
            refs.append(problem(it.file, it.where, path or "reference", ref, "fhir-reference", msg))
    if system_check is None:
        return
    if not coding and not ("system" in node and "value" in node and isinstance(node.get("value"), int | float)):
        return
    system, code = node.get("system"), node.get("code")
    if not isinstance(system, str):
        return
    if system in known:
        bad = known[system]
    else:
        bad = known[system] = system_check(system)
    missing = not (isinstance(code, str) and code.strip())
    if bad is None and not missing:
        return
    path = element_path(nodes, [*keys, k])
    if bad is not None:
        codes.append(problem(it.file, it.where, path, system, *bad))
    if missing:
        what = "Coding" if coding else "Quantity"
        msg = f"the {what} names the code system {system} but carries no code"
        codes.append(problem(it.file, it.where, path, str(node.get("display") or ""), "fhir-code-missing", msg))


__all__ = ["Resolve", "SystemCheck", "element_path", "scan_elements"]
