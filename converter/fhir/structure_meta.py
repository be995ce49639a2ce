"""The element list of every R4 resource and data type, as data (``r4b_elements.json``), for the fast structure
check of :mod:`converter.fhir.structure`.

The file is made from the fhir.resources R4B models (the same models ``--strict`` validates with) by
:func:`generate`; tests/test_fhir_structure.py regenerates it and fails when the shipped file is not current
(``INOCONV_UPDATE_R4B_ELEMENTS=1`` rewrites it). At run time only the JSON is read: the models are not imported.

Layout: ``{"resources": [type, ...], "types": {type: {json name: [type, list, required, choice group]}}}`` where
*type* is a data type, backbone element or resource name (``Resource`` for any resource: ``contained``,
``Bundle.entry.resource``), a primitive name (``string``, ``code``, ``dateTime``, ...) or
``FHIRPrimitiveExtension`` (the ``_x`` sibling of a primitive); *list* is 1 for ``0..*`` / ``1..*``; *required*
1 for a minimum cardinality of 1 (a choice group's required flag is on each of its members); *choice group* the
``value[x]`` stem or "" (at most one member of a group may be present; one must be when *required*).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
import typing
from pathlib import Path
from typing import Any

import orjson

DATA_FILE = Path(__file__).with_name("r4b_elements.json")

#: fhir_core's primitive constraint classes -> the FHIR primitive type name
_PRIMITIVES = {
    "String": "string", "Code": "code", "Id": "id", "Uri": "uri", "Url": "url", "Canonical": "canonical",
    "Oid": "oid", "Uuid": "uuid", "Markdown": "markdown", "Base64Binary": "base64Binary", "Date": "date",
    "DateTime": "dateTime", "Instant": "instant", "Time": "time", "Decimal": "decimal", "Integer": "integer",
    "Integer64": "integer64", "UnsignedInt": "unsignedInt", "PositiveInt": "positiveInt", "Xhtml": "xhtml",
}  # fmt: skip
_ABC = re.compile(r"abc\.([A-Za-z0-9]+)Type\b")


def _primitive(ann: Any) -> str | None:
    for a in typing.get_args(ann):
        if a is bool:
            return "boolean"
        if getattr(a, "__name__", "") == "UUID":
            return "uuid"
        name = _PRIMITIVES.get(type(a).__name__) or (_PRIMITIVES.get(a.__name__) if isinstance(a, type) else None)
        if name:
            return name
        got = _primitive(a)
        if got:
            return got
    return "boolean" if ann is bool else None


def _element(info: Any) -> list[Any]:
    ann = info.annotation
    text = str(ann)
    is_list = "List[" in text
    m = _ABC.search(text)
    tname = m.group(1) if m else _primitive(ann)
    if tname is None:
        raise ValueError(f"no FHIR type for the annotation {text}")
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    required = info.is_required() or bool(extra.get("element_required")) or bool(extra.get("one_of_many_required"))
    return [tname, int(is_list), int(required), str(extra.get("one_of_many") or "")]


def generate() -> dict[str, Any]:
    """The element list of every class of the R4B models (imports them all: tests and builds only)."""
    import fhir.resources.R4B as r4b
    from fhir.resources.R4B import get_fhir_model_class

    names: set[str] = set()
    resources: set[str] = set()
    for mod in pkgutil.iter_modules(r4b.__path__):
        module = importlib.import_module(f"fhir.resources.R4B.{mod.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and hasattr(obj, "model_fields"):
                if obj.__name__ in ("FHIRAbstractModel", "FHIRResourceModel", "FHIRPrimitiveExtension"):
                    continue
                names.add(obj.__name__)
    types: dict[str, dict[str, list[Any]]] = {}
    todo = [*sorted(names), "FHIRPrimitiveExtension"]
    while todo:
        name = todo.pop()
        if name in types:
            continue
        cls = get_fhir_model_class(name)
        els: dict[str, list[Any]] = {}
        for key, info in cls.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            alias = info.alias or key
            if key == "fhir_comments":
                continue
            marked = extra.get("element_property") or key.endswith("__ext")
            if not marked and name != "FHIRPrimitiveExtension":  # its id and extension: elements, not so marked
                continue
            els[alias] = _element(info)
            if els[alias][0] not in types and els[alias][0][:1].isupper():
                todo.append(els[alias][0])
        types[name] = els
        rtype = getattr(cls, "get_resource_type", None)
        if callable(rtype) and getattr(cls, "has_resource_base", lambda: False)() and rtype() == name:
            resources.add(name)
    resources.discard("Resource")
    resources.discard("DomainResource")
    return {"resources": sorted(resources), "types": {k: types[k] for k in sorted(types)}}


def render(data: dict[str, Any]) -> bytes:
    """The file's bytes: one line per type, sorted (diffs stay readable)."""
    lines = [b'{"resources": ' + orjson.dumps(data["resources"]) + b",", b'"types": {']
    items = list(data["types"].items())
    for i, (k, v) in enumerate(items):
        sep = b"," if i < len(items) - 1 else b""
        lines.append(orjson.dumps(k) + b": " + orjson.dumps(v, option=orjson.OPT_SORT_KEYS) + sep)
    lines.append(b"}}")
    return b"\n".join(lines) + b"\n"


@functools.cache
def load() -> dict[str, Any]:
    """The shipped element list."""
    data: dict[str, Any] = orjson.loads(DATA_FILE.read_bytes())
    return data


__all__ = ["DATA_FILE", "generate", "load", "render"]
