"""The CRF form schema (``mappings/records/forms.yaml``): forms, fields, types, codes, units, cross-checks.

Every consumer of source records (ODM and CSV readers/writers, record checks, the simulator, the SDTM
spec checker) reads the forms from here, never from code. The record cross-checks the file declares
(``cross_checks:``, see :mod:`converter.records.cross_spec`) are validated against the forms on loading,
each error naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.paths import mappings_dir
from converter.records.cross_spec import CrossChecks, at, parse_cross_checks
from converter.spec.yamlines import line_of, load_yaml_lines, strip_lines

FIELD_TYPES = ("text", "integer", "float", "date")
TOP_KEYS = ("study", "forms", "cross_checks")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    type: str
    required: bool = False
    partial: bool = False
    length: int | None = None
    codes: dict[str, str] = field(default_factory=dict)
    unit: str | None = None
    min: float | None = None
    max: float | None = None

    @property
    def pandas_dtype(self) -> str:
        """Canonical in-memory dtype: text and dates as ``object`` str/None, integers ``Int64``, floats float64."""
        return {"integer": "Int64", "float": "float64"}.get(self.type, "object")


@dataclass(frozen=True)
class Form:
    oid: str
    label: str
    repeating: bool
    key: tuple[str, ...]
    fields: dict[str, Field]

    @property
    def columns(self) -> list[str]:
        return list(self.fields)


@dataclass(frozen=True)
class Study:
    oid: str
    name: str
    protocol: str
    metadata_version: str


@dataclass(frozen=True)
class FormSchema:
    study: Study
    forms: dict[str, Form]
    path: Path
    #: the record cross-checks the file declares (none when it declares none)
    cross_checks: CrossChecks = field(default_factory=CrossChecks)

    def form(self, oid: str) -> Form:
        try:
            return self.forms[oid]
        except KeyError:
            raise KeyError(f"unknown form {oid!r}; forms are {', '.join(self.forms)}") from None


def _field(form: str, name: str, raw: Any, path: Path) -> Field:
    if not isinstance(raw, dict):
        raise SpecError([f"{path}: form {form} field {name}: expected a mapping"])
    unknown = set(raw) - {"label", "type", "required", "partial", "length", "codes", "unit", "min", "max"}
    if unknown:
        raise SpecError([f"{path}: form {form} field {name}: unknown keys {sorted(unknown)}"])
    ftype = raw.get("type", "text")
    if ftype not in FIELD_TYPES:
        raise SpecError([f"{path}: form {form} field {name}: type {ftype!r} not one of {FIELD_TYPES}"])
    codes = {str(k): str(v) for k, v in (raw.get("codes") or {}).items()}
    return Field(
        name=name,
        label=str(raw.get("label", name)),
        type=ftype,
        required=bool(raw.get("required", False)),
        partial=bool(raw.get("partial", False)),
        length=raw.get("length"),
        codes=codes,
        unit=raw.get("unit"),
        min=raw.get("min"),
        max=raw.get("max"),
    )


def parse_forms(doc: dict[str, Any], path: Path) -> FormSchema:
    """The schema of a forms document (mappings may carry ``__line__``: errors then name the line)."""
    errors: list[str] = []
    unknown = sorted(str(k) for k in doc if k not in TOP_KEYS and k != "__line__")
    if unknown:
        errors.append(f"{path}: unknown top-level keys {unknown} (expected {', '.join(TOP_KEYS)})")
    st = strip_lines(doc.get("study") or {})
    study = Study(
        oid=str(st.get("oid", "STUDY")),
        name=str(st.get("name", "")),
        protocol=str(st.get("protocol", "")),
        metadata_version=str(st.get("metadata_version", "MDV.1")),
    )
    forms: dict[str, Form] = {}
    raw_forms = doc.get("forms") or {}
    for oid, raw_lines in raw_forms.items():
        if oid == "__line__":
            continue
        raw = strip_lines(raw_lines)
        if not isinstance(raw, dict):
            raise SpecError([f"{at(path, line_of(raw_forms))}: form {oid}: expected a mapping"])
        fields = {name: _field(oid, name, f, path) for name, f in (raw.get("fields") or {}).items()}
        key = tuple(raw.get("key") or ())
        for k in key:
            if k not in fields:
                errors.append(f"{at(path, line_of(raw_lines))}: form {oid}: key field {k} is not a field of the form")
        if "SUBJID" not in fields:
            errors.append(f"{at(path, line_of(raw_lines))}: form {oid}: every form needs SUBJID")
        forms[oid] = Form(
            oid=oid,
            label=str(raw.get("label", oid)),
            repeating=bool(raw.get("repeating", False)),
            key=key,
            fields=fields,
        )
    described = {oid: {n: (f.type, tuple(f.codes)) for n, f in form.fields.items()} for oid, form in forms.items()}
    checks, check_errors = parse_cross_checks(doc.get("cross_checks"), path, described)
    errors += check_errors
    if errors:
        raise SpecError(errors)
    return FormSchema(study=study, forms=forms, path=path, cross_checks=checks)


@lru_cache(maxsize=8)
def _load(path: Path) -> FormSchema:
    doc = load_yaml_lines(path)
    if not isinstance(doc, dict):
        raise SpecError([f"{path}: not a forms schema (expected a mapping at top level)"])
    return parse_forms(doc, path)


def load_forms(path: Path | None = None) -> FormSchema:
    return _load((path or mappings_dir() / "records" / "forms.yaml").resolve())
