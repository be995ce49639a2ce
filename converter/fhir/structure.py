"""The fast structure check of FHIR R4 resources: what ``inoconv tosdtm`` and ``inoconv validate`` run by default
(the fhir.resources R4B models, about 20x slower, run under ``--strict`` and are this check's test oracle).

It walks each resource against the element list of the R4 models (:mod:`converter.fhir.structure_meta`, data
made from the models, checked current by a test) and the JSON representation rules of FHIR R4
(https://hl7.org/fhir/R4/json.html, primitive formats from https://hl7.org/fhir/R4/datatypes.html):

* **unknown elements**: a name that is not an element of the resource or data type (``_x`` only beside a
  primitive ``x``), an unknown ``resourceType``, a contained resource without one;
* **primitive types and formats**: ``boolean`` a JSON boolean; ``integer``/``unsignedInt``/``positiveInt`` a
  JSON number without fraction in range; ``decimal`` a JSON number; every other primitive a non-empty JSON
  string matching its R4 regex (``code``, ``id`` of at most 64 characters, ``uri``, ``date``/``dateTime``/
  ``instant``/``time`` with real calendar dates, ``oid``, ``uuid``, ``base64Binary``; the narrative ``div``
  an XHTML ``<div>``);
* **cardinality**: an element of ``0..*`` is a non-empty JSON array, any other element is not an array; no
  ``null`` (but in arrays of primitives, paired with their ``_x``), no empty objects;
* **required elements** (minimum 1, e.g. ``Observation.code``, ``Extension.url``) and choice elements
  (``value[x]``: at most one, exactly one when required);
* **references**: ``Reference.reference`` a string; a relative reference ``Type/id`` names an R4 resource type
  and a valid id.

Where the R4B models are laxer than FHIR's JSON rules (they accept ``"5"`` for an integer, ``"true"`` for a
boolean, empty arrays, ``Patient/`` as a reference, a ``uri`` with a space), this check follows FHIR. Each
problem is ``(element path, message)`` with the path as the models give it (``component.0.code``).

Primitive values that passed are remembered per type (codes, systems and dates repeat), so a value is matched
against its regex once.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
from collections.abc import Callable
from typing import Any

import orjson

from converter.fhir.structure_meta import load

Problems = list[tuple[str, str]]
_Check = Callable[[Any], str | None]  # a primitive value -> why it is invalid, or None

# --- primitive formats (FHIR R4 datatypes: the regex of each type) ---------------------------------------------
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_RX = {
    "string": r"[ \r\n\t\S]+",
    "markdown": r"[ \r\n\t\S]+",
    "code": r"[^\s]+(\s[^\s]+)*",
    "id": r"[A-Za-z0-9\-\.]{1,64}",
    "uri": r"\S+",
    "url": r"\S+",
    "canonical": r"\S+",
    "oid": r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+",
    "uuid": r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "base64Binary": r"(\s*([0-9a-zA-Z\+/\=]){4}\s*)+",
    "date": _YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?",
    "dateTime": _YEAR + r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T" + _TIME + _TZ + r")?)?)?",
    "instant": _YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T" + _TIME + _TZ,
    "time": _TIME,
    "xhtml": r"\s*<div[\s>/][\s\S]*",
    "integer64": r"[0]|[-+]?[1-9][0-9]*",
}
_DATED = ("date", "dateTime", "instant")
#: types whose values repeat over resources (codes, systems, dates): each value passed is remembered
_REPEATING = frozenset(("code", "uri", "url", "canonical", "oid", "date", "dateTime", "instant", "time"))
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "unsignedInt": (0, 2**31 - 1), "positiveInt": (1, 2**31 - 1)}
_REF_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([^/?#]*)(/_history/([^/?#]*))?")
_ID = re.compile(_RX["id"])
_CACHE_MAX = 200_000  # values remembered per primitive type (then forgotten, to bound memory)


def _what(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an array" if isinstance(v, list) else "an object"


def _string_check(tname: str) -> _Check:
    rx = re.compile(_RX[tname]).fullmatch
    good: set[str] = set()
    dated = tname in _DATED
    text = tname in ("string", "markdown")  # any printable text is valid (printable: no whitespace but the space)

    def check(v: Any) -> str | None:
        if v.__class__ is str:
            if v in good or (text and v and v.isprintable()):
                return None
            if not rx(v):
                return f"{v!r} is not a valid {tname}" + ("" if v else " (empty strings are not allowed)")
            if dated and len(v) >= 10:
                try:
                    _dt.date(int(v[:4]), int(v[5:7]), int(v[8:10]))
                except ValueError:
                    return f"{v!r} is not a valid {tname}: no such calendar date"
            if tname in _REPEATING:
                if len(good) > _CACHE_MAX:
                    good.clear()
                good.add(v)
            return None
        return f"{tname} must be a JSON string, not {_what(v)}"

    if tname in _REPEATING:
        check.good = good  # type: ignore[attr-defined]  # the boolean pass looks values up here first
    return check


def _int_check(tname: str) -> _Check:
    lo, hi = _INT_RANGE[tname]

    def check(v: Any) -> str | None:
        if v.__class__ is int:
            return None if lo <= v <= hi else f"{v} is outside the range of {tname} ({lo}..{hi})"
        return f"{tname} must be a JSON number without fraction, not {_what(v)}"

    return check


def _decimal(v: Any) -> str | None:
    if v.__class__ is int or (v.__class__ is float and v == v and v not in (float("inf"), float("-inf"))):
        return None
    return f"decimal must be a JSON number, not {_what(v)}"


def _boolean(v: Any) -> str | None:
    return None if v is True or v is False else f"boolean must be JSON true or false, not {_what(v)}"


def _primitive_check(tname: str) -> _Check:
    if tname == "boolean":
        return _boolean
    if tname == "decimal":
        return _decimal
    if tname in _INT_RANGE:
        return _int_check(tname)
    return _string_check(tname)


_NOTHING: set[str] = set()  # the remembered values of elements that remember none (never added to)


def _no_check(v: Any) -> str | None:
    """The primitive check of a complex element (never called: its values are walked)."""
    return None


# --- compiled element tables --------------------------------------------------------------------------------------
class _Type:
    """One resource or data type: element name -> (is list, primitive check or None, complex type name)."""

    __slots__ = ("choice_sets", "choices", "elements", "fast", "name", "required", "required_names")

    def __init__(self, name: str, elements: dict[str, tuple[bool, _Check | None, str]],
                 required: list[tuple[str, ...]], choices: list[tuple[str, frozenset[str], bool]]) -> None:  # fmt: skip
        self.name = name
        self.elements = elements
        self.required = required  # each: the names any one of which satisfies it (x and _x; a choice's members)
        self.choices = choices  # (stem, member names, required)
        # for the boolean pass: element -> (is list, kind, primitive check, remembered good values, type name);
        # kind 0 complex, 1 string-like primitive, 2 other primitive, 3 a resource's resourceType
        self.fast: dict[str, tuple[bool, int, _Check, set[str], str]] = {}
        self.required_names = frozenset(alts[0] for alts in required)
        self.choice_sets = [(members, req) for _stem, members, req in choices]


@functools.cache
def _tables() -> tuple[dict[str, _Type], frozenset[str]]:
    data = load()
    checks: dict[str, _Check] = {}
    types: dict[str, _Type] = {}
    for name, els in data["types"].items():
        elements: dict[str, tuple[bool, _Check | None, str]] = {}
        required: list[tuple[str, ...]] = []
        groups: dict[str, list[str]] = {}
        group_required: dict[str, bool] = {}
        for el, (tname, is_list, req, group) in els.items():
            prim = tname[:1].islower()
            chk = checks.setdefault(tname, _primitive_check(tname)) if prim else None
            elements[el] = (bool(is_list), chk, tname)
            if group:
                groups.setdefault(group, []).append(el)
                group_required[group] = group_required.get(group, False) or bool(req)
            elif req:
                required.append((el, f"_{el}") if prim else (el,))
        choices = []
        for g, members in groups.items():
            names = frozenset([*members, *(f"_{m}" for m in members if f"_{m}" in elements)])
            choices.append((g, names, group_required[g]))
        types[name] = _Type(name, elements, required, choices)
    for t in types.values():
        for el, (is_list, chk, tname) in t.elements.items():
            if chk is None:
                t.fast[el] = (is_list, 0, _no_check, _NOTHING, tname)
            else:
                good = getattr(chk, "good", None)
                t.fast[el] = (is_list, 1 if good is not None else 2, chk, good if good is not None else _NOTHING, tname)
    for rname in data["resources"]:
        types[rname].fast["resourceType"] = (False, 3, _no_check, _NOTHING, "")
    return types, frozenset(data["resources"])


def resource_types() -> frozenset[str]:
    """The R4 resource type names."""
    return _tables()[1]


# --- the walk -----------------------------------------------------------------------------------------------------
def _reference(v: str, path: str, out: Problems) -> None:
    m = _REF_RELATIVE.fullmatch(v)
    if m is None:
        return  # absolute URL, urn:uuid:/urn:oid:, #contained, a conditional Type?query: not checked here
    rtype, rid, _h, vid = m.groups()
    if rtype not in _tables()[1]:
        out.append((path, f"reference {v!r}: {rtype} is not an R4 resource type"))
    elif not _ID.fullmatch(rid) or (vid is not None and not _ID.fullmatch(vid)):
        out.append((path, f"reference {v!r}: not a valid id after {rtype}/"))


def _walk(node: dict[str, Any], t: _Type, path: str, out: Problems, resource: bool = False) -> None:
    types = _tables()[0]
    keys = node.keys()
    els = t.elements
    for k, v in node.items():
        e = els.get(k)
        if e is None:
            if k == "resourceType" and resource:
                continue
            if k != "fhir_comments":
                out.append((f"{path}{k}", f"{t.name} has no element {k}"))
            continue
        is_list, chk, tname = e
        where = f"{path}{k}"
        if v.__class__ is list:
            if not is_list:
                out.append((where, f"{t.name}.{k} is not a list (0..1): an array is not allowed"))
                continue
            if not v:
                out.append((where, "empty array (FHIR JSON never has empty arrays)"))
                continue
            paired = chk is not None or tname == "FHIRPrimitiveExtension"  # nulls in primitive arrays pair with _x
            for i, item in enumerate(v):
                if item is None:
                    if not paired:
                        out.append((f"{where}.{i}", "null is not allowed as an item"))
                    continue
                _value(item, chk, tname, f"{where}.{i}", types, out)
            continue
        if is_list:
            out.append((where, f"{t.name}.{k} is a list (0..*): a JSON array is required, not {_what(v)}"))
            continue
        if v is None:
            out.append((where, "null is not allowed (leave the element out)"))
            continue
        _value(v, chk, tname, where, types, out)
        if k == "reference" and t.name == "Reference" and v.__class__ is str:
            _reference(v, where, out)
    for alts in t.required:
        if not any(a in node and node[a] is not None for a in alts):
            out.append((f"{path}{alts[0]}", f"{t.name}.{alts[0]} is required (minimum cardinality 1)"))
    for stem, members, req in t.choices:
        present = members & keys
        n = len({m.lstrip("_") for m in present})
        if n > 1:
            out.append((f"{path}{stem}[x]", f"{t.name}.{stem}[x]: only one of {', '.join(sorted(present))}"))
        elif req and n == 0:
            out.append((f"{path}{stem}[x]", f"{t.name}.{stem}[x] is required (one of its types)"))


def _value(v: Any, chk: _Check | None, tname: str, where: str, types: dict[str, _Type], out: Problems) -> None:
    if chk is not None:
        msg = chk(v)
        if msg is not None:
            out.append((where, msg))
        return
    if v.__class__ is not dict:
        out.append((where, f"{tname} must be a JSON object, not {_what(v)}"))
        return
    if not v:
        out.append((where, "empty object (FHIR JSON never has empty objects)"))
        return
    if tname == "Resource":
        _resource(v, f"{where}.", out)
        return
    _walk(v, types[tname], f"{where}.", out)


def _resource(res: dict[str, Any], prefix: str, out: Problems) -> None:
    types, resources = _tables()
    rtype = res.get("resourceType")
    if rtype.__class__ is not str or rtype not in resources:
        what = "no resourceType" if rtype is None else f"{rtype!r} is not an R4 resource type"
        out.append((f"{prefix}resourceType", what))
        return
    _walk(res, types[rtype], prefix, out, resource=True)


# --- the boolean pass (valid resources, the common case, are accepted without building any path) --------------
def _ok(node: dict[str, Any], t: _Type, types: dict[str, _Type]) -> bool:
    fast = t.fast
    for k, v in node.items():
        e = fast.get(k)
        if e is None:
            return False
        is_list, kind, chk, good, tname = e
        if kind == 3:
            continue  # a resource's resourceType (checked before)
        if v.__class__ is list:
            if not is_list or not v:
                return False
            if kind == 0:
                if tname == "FHIRPrimitiveExtension" or tname == "Resource":
                    return False  # nulls to pair, or contained resources: the detailed pass
                sub = types[tname]
                for x in v:
                    if x.__class__ is not dict or not x or not _ok(x, sub, types):
                        return False
            elif kind == 1:
                for x in v:
                    if x.__class__ is not str or (x not in good and chk(x) is not None):
                        return False
            else:
                for x in v:
                    if chk(x) is not None:
                        return False
        elif is_list:
            return False
        elif kind == 1:
            if v.__class__ is not str or (v not in good and chk(v) is not None):
                return False
        elif kind == 2:
            if v is None or chk(v) is not None:
                return False
            if k == "reference" and t.name == "Reference" and not _reference_ok(v):
                return False
        elif v.__class__ is not dict or not v or tname == "Resource" or not _ok(v, types[tname], types):
            return False
    if t.required_names and not t.required_names <= node.keys():
        return False
    for members, req in t.choice_sets:
        n = len(members & node.keys())
        if n > 1 or (req and n == 0):
            return False
    return True


def _reference_ok(ref: str) -> bool:
    m = _REF_RELATIVE.fullmatch(ref)
    if m is None:
        return True
    rtype, rid, _h, vid = m.groups()
    return rtype in _tables()[1] and bool(_ID.fullmatch(rid)) and (vid is None or bool(_ID.fullmatch(vid)))


# --- the column-wise pass: a batch of nodes of one type, element by element ----------------------------------------
def _prim_column_ok(col: list[Any], kind: int, chk: _Check, good: set[str] | None, tname: str) -> bool:
    """Every value of a column of one primitive type valid (distinct values checked once)."""
    classes = set(map(type, col))
    if tname == "boolean":
        return classes == {bool}
    if tname == "decimal":
        return classes <= {int, float} and (float not in classes or all(map(math.isfinite, col)))
    if tname in _INT_RANGE:
        lo, hi = _INT_RANGE[tname]
        return classes == {int} and lo <= min(col) and max(col) <= hi
    if classes != {str}:
        return False
    if tname in ("string", "markdown") and all(col) and all(map(str.isprintable, col)):
        return True
    distinct = set(col)
    if good is not None:
        distinct -= good
    return all(chk(v) is None for v in distinct)


def _column_ok(nodes: list[dict[str, Any]], t: _Type, types: dict[str, _Type], resources: frozenset[str]) -> bool:
    """All of ``nodes`` (dicts of type ``t``) valid: each element's values gathered over every node and checked
    as one column; an element's children the same way, one level down. Nodes are grouped by the elements they
    have (a handful of shapes), so that unknown, required and choice elements are checked once per shape."""
    fast = t.fast
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for n in nodes:
        key = tuple(n)
        g = shapes.get(key)
        if g is None:
            shapes[key] = [n]
        else:
            g.append(n)
    groups: list[tuple[frozenset[str], list[dict[str, Any]]]] = []
    present: set[str] = set()
    for key, g in shapes.items():
        ks = frozenset(key)
        if not ks <= fast.keys() or not t.required_names <= ks:
            return False
        for members, req in t.choice_sets:
            used = len(members & ks)
            if used > 1 or (req and not used):
                return False
        groups.append((ks, g))
        present |= ks
    for k in present:
        is_list, kind, chk, good, tname = fast[k]
        if kind == 3:
            continue
        col = [n[k] for ks, g in groups if k in ks for n in g]
        if is_list:
            if set(map(type, col)) != {list} or not all(col):
                return False
            col = [x for v in col for x in v]
        if kind == 0:
            if tname == "FHIRPrimitiveExtension" and is_list:
                col = [x for x in col if x is not None]  # the nulls that pair with a primitive array's items
            if tname == "Resource" or set(map(type, col)) != {dict} or not all(col):
                return False  # contained resources (by their own type), anything wrong: the detailed pass
            if len(col) > 32 and t.name not in resources:  # below a resource, objects repeat: each checked once
                col = list({orjson.dumps(x): x for x in col}.values())
            if not _column_ok(col, types[tname], types, resources):
                return False
        else:
            if not _prim_column_ok(col, kind, chk, good, tname):
                return False
            if k == "reference" and t.name == "Reference" and not all(map(_reference_ok, set(col))):
                return False
    return True


def check_resources(resources: list[Any], batch: int = 500) -> list[Problems]:
    """:func:`check_resource` of each resource, column-wise: resources of one type are checked together a batch
    at a time; only a batch with a problem is checked again resource by resource (to name each problem)."""
    types, known = _tables()
    out: list[Problems] = [[] for _ in resources]
    by_type: dict[str, list[int]] = {}
    for i, r in enumerate(resources):
        rt = r.get("resourceType") if r.__class__ is dict else None
        by_type.setdefault(rt if rt.__class__ is str and rt in known else "", []).append(i)
    for rt, idx in by_type.items():
        for start in range(0, len(idx), batch):
            part = idx[start : start + batch]
            if rt and _column_ok([resources[i] for i in part], types[rt], types, known):
                continue
            for i in part:
                out[i] = check_resource(resources[i])
    return out


def check_resource(res: Any) -> Problems:
    """(element, message) for every structure problem of one resource (a dict parsed from JSON); [] when valid.

    The element is dotted as the R4B models' error locations are (``component.0.valueQuantity.value``).
    """
    if res.__class__ is not dict:
        return [("", f"a resource must be a JSON object, not {_what(res)}")]
    types, resources = _tables()
    rtype = res.get("resourceType")
    if rtype in resources and _ok(res, types[rtype], types):
        return []
    out: Problems = []
    _resource(res, "", out)
    return out


__all__ = ["Problems", "check_resource", "check_resources", "resource_types"]
