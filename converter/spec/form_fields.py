"""What the spec checks need of the CRF forms: which forms exist and which fields each has.

The spec layer sits below the records stage, so it does not import the forms schema
(:class:`converter.records.schema.FormSchema`); it states the little it reads as a protocol, which the schema
satisfies (and so does any mapping-backed stand-in a caller builds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["FormFields", "FormsIndex"]


class FormFields(Protocol):
    """One CRF form: its fields by name."""

    @property
    def fields(self) -> Mapping[str, object]: ...


class FormsIndex(Protocol):
    """The CRF forms by OID (``forms.yaml``)."""

    @property
    def forms(self) -> Mapping[str, FormFields]: ...
