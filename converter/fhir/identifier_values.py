"""A resource's business identifier per row: as ``{"system", "value"}`` dicts, or as their JSON text for the
NDJSON text path (:mod:`converter.fhir.line_templates`)."""

from __future__ import annotations

import orjson

from converter.fhir.line_templates import JsonTexts
from converter.fhir.paths import FPath
from converter.fhir.resource_ids import JsonDict

__all__ = ["identifier_text_ok", "identifier_texts", "identifiers"]


def identifiers(systems: list[str | None], values: list[str | None]) -> list[JsonDict | None]:
    """A resource's identifier per row: ``{"system", "value"}``, None where either is missing."""
    return [{"system": s, "value": v} if s and v else None for s, v in zip(systems, values, strict=True)]


def identifier_texts(systems: list[str | None], values: list[str | None]) -> JsonTexts:
    """The orjson text of :func:`identifiers`' dicts, made as text: each distinct system's JSON once."""
    dumps = orjson.dumps
    heads = {s: b'{"system":' + dumps(s) + b',"value":' for s in set(systems) if s}
    return JsonTexts(
        [b"%s%s}" % (heads[s], dumps(v)) if s and v else None for s, v in zip(systems, values, strict=True)]
    )


def identifier_text_ok(path: FPath) -> bool:
    """Whether identifiers written at ``path`` may be given as JSON text (no selector of theirs to check)."""
    last = path.last
    return last is None or not last.select or all(k not in ("system", "value") for k, _v in last.select)
