"""One walk over each FHIR resource's elements for the checks that look at every element: the references that do
not resolve (``fhir-reference``) and the Codings and coded Quantities whose code system is not a known terminology
or that carry no code (``fhir-code-system``, ``fhir-code-system-urn``, ``fhir-code-missing``).

What is a reference and what is a Coding is decided as by :func:`converter.fhir.resource_checks.iter_references`
(every string ``reference`` of an object) and by :func:`converter.fhir.terminology_checks.check_codings` (the
items of a ``coding`` array, of the resource's ``meta.security`` and ``meta.tag``, a ``valueCoding`` object;
any other object with a ``system`` and a numeric ``value`` is a coded Quantity). The walk recurses (a function for
objects, one for arrays; no generators) down to :data:`_DEEP` levels and goes on iteratively below; each container
carries a link to the one holding it (``(link, container, key)``), from which an element's path
(``component[0].code.coding[1]``) is rendered only for a finding: the findings are those of walking each check on
its own, in the same order (each resource in turn, its objects in document order, an object before what is inside
it).
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
_DEEP = 120  # the walk recurses this deep; below, it goes on without recursion (_walk_iter)

#: where a container is: (the link of the container holding it, the container, its key there); None above the resource
Link = tuple[Any, Any, Any] | None
#: what the walk does with an object that holds a reference or a code system, or with a Coding
_Visit = Callable[[dict[str, Any], bool, Link, Any], None]


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
    it: Any = None

    def visit(node: dict[str, Any], coding: bool, link: Link, k: Any) -> None:
        _visit(node, coding, it, link, k, resolve, system_check, known, refs, codes)

    for it in items:
        res: Any = it.resource
        if isinstance(res, dict):
            if "reference" in res or "system" in res:
                visit(res, False, None, "")
            _in_dict(res, (None, res, None), 1, visit)
        elif isinstance(res, list):
            _in_list(res, False, (None, res, None), 1, visit)
    return refs, codes


def _in_dict(node: dict[str, Any], link: Link, depth: int, visit: _Visit) -> None:
    """The walk below an object (``depth`` levels down): module functions, not closures of :func:`scan_elements`,
    so no reference cycle keeps the scan's ``resolve`` (its index of every parsed resource) alive after it."""
    for k, v in node.items():
        c = v.__class__
        if c is str:
            continue
        if c is dict or (c is not list and isinstance(v, dict)):
            if k == "valueCoding":
                visit(v, True, link, k)
            elif "reference" in v or "system" in v:
                visit(v, False, link, k)
            if depth < _DEEP:
                _in_dict(v, (link, v, k), depth + 1, visit)
            else:
                _walk_iter(v, (link, v, k), False, visit)
        elif c is list or isinstance(v, list):
            listed = k == "coding" or (k in _LISTED_IN_META and _link_path(link) == "meta")
            if depth < _DEEP:
                _in_list(v, listed, (link, v, k), depth + 1, visit)
            else:
                _walk_iter(v, (link, v, k), listed, visit)


def _in_list(node: list[Any], listed: bool, link: Link, depth: int, visit: _Visit) -> None:
    """The walk below an array (``listed``: its items are Codings)."""
    for k, v in enumerate(node):
        c = v.__class__
        if c is str:
            continue
        if c is dict or (c is not list and isinstance(v, dict)):
            if listed or "reference" in v or "system" in v:
                visit(v, listed, link, k)
            if depth < _DEEP:
                _in_dict(v, (link, v, k), depth + 1, visit)
            else:
                _walk_iter(v, (link, v, k), False, visit)
        elif c is list or isinstance(v, list):
            if depth < _DEEP:
                _in_list(v, False, (link, v, k), depth + 1, visit)
            else:
                _walk_iter(v, (link, v, k), False, visit)


def _unroll(link: Link) -> tuple[list[Any], list[Any]]:
    """(nodes, keys) of :func:`element_path` for the container of ``link`` (``nodes[-1]``)."""
    nodes: list[Any] = []
    keys: list[Any] = []
    while link is not None:
        parent, node, key = link
        nodes.append(node)
        if parent is not None:
            keys.append(key)
        link = parent
    nodes.reverse()
    keys.reverse()
    return nodes, keys


def _link_path(link: Link) -> Any:
    """The path of the container of ``link``."""
    return element_path(*_unroll(link))


def _member_path(link: Link, k: Any) -> Any:
    """The path of the member ``k`` of the container of ``link`` ("" for the resource itself: ``link`` None)."""
    nodes, keys = _unroll(link)
    return element_path(nodes, [*keys, k])


def _walk_iter(root: Any, link: Link, listed: bool, visit: _Visit) -> None:
    """What the recursive walk of :func:`scan_elements` does below ``root`` (the container of ``link``; ``listed``:
    its items are Codings), without recursion: for elements nested deeper than the walk recurses."""
    top: Iterator[tuple[Any, Any]] = iter(root.items()) if isinstance(root, dict) else enumerate(root)
    walks: list[tuple[Iterator[tuple[Any, Any]], Any, Link, bool]] = [(top, root, link, listed)]
    while walks:
        walk, node, lk, coded = walks[-1]
        for k, v in walk:
            c = v.__class__
            if c is str:
                continue
            if c is dict or (c is not list and isinstance(v, dict)):
                coding = coded or k == "valueCoding"
                if coding or "reference" in v or "system" in v:
                    visit(v, coding, lk, k)
                walks.append((iter(v.items()), v, (lk, v, k), False))
                break
            if c is list or isinstance(v, list):
                sub = k == "coding" or (k in _LISTED_IN_META and isinstance(node, dict) and _link_path(lk) == "meta")
                walks.append((enumerate(v), v, (lk, v, k), sub))
                break
        else:
            walks.pop()


def _visit(
    node: dict[str, Any],
    coding: bool,
    it: Located,
    link: Link,
    k: Any,
    resolve: Resolve | None,
    system_check: SystemCheck | None,
    known: dict[str, tuple[str, str] | None],
    refs: list[Problem],
    codes: list[Problem],
) -> None:
    """The checks of one object, ``node`` (the member ``k`` of the container of ``link``; the resource when
    ``link`` is None); its path is rendered only for a finding."""
    ref = node.get("reference")
    if resolve is not None and isinstance(ref, str) and not ref.startswith("#"):
        target, why = resolve(ref)
        if target is None:
            path = _member_path(link, k)
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
    path = _member_path(link, k)
    if bad is not None:
        codes.append(problem(it.file, it.where, path, system, *bad))
    if missing:
        what = "Coding" if coding else "Quantity"
        msg = f"the {what} names the code system {system} but carries no code"
        codes.append(problem(it.file, it.where, path, str(node.get("display") or ""), "fhir-code-missing", msg))


__all__ = ["Resolve", "SystemCheck", "element_path", "scan_elements"]
