"""Define-XML 2.1 checked: against the official XSD (odmlib's copy, imports resolved locally, no network), its
OID references the XSD does not check, and cross-checked with the datasets it describes (variables, lengths,
codelists, value-level metadata, leaf files). Empty lists mean valid.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lxml import etree

from converter.io.check_memo import file_digest, lookup, remember, remembered
from converter.io.define_metadata import (
    DEF_NS,
    LENGTH_TYPES,
    NS,
    XLINK_NS,
    matches_mask,
    number_digits,
    odm_tag,
    text_number_digits,
    value_text,
)
from converter.io.xml_errors import describe_xml_error
from converter.io.xpt_read import plain_v5_header
from converter.spec.model import DatasetSpec


# --- validation ----------------------------------------------------------------------------------------------------
def schema_path() -> Path:
    """odmlib's copy of the Define-XML 2.1 XSD, found without importing odmlib (0.05 s of CPU for a path)."""
    spec = importlib.util.find_spec("odmlib")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("odmlib is needed for the Define-XML 2.1 schema", name="odmlib")
    return Path(spec.origin).parent / "schemas" / "define" / "2.1" / "define2-1-0.xsd"


@lru_cache(maxsize=1)
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(schema_path()), parser))


def validate_define(path: Path | str) -> list[str]:
    """Problems of a define.xml file: XML syntax, the Define-XML 2.1 XSD (odmlib's copy, imports resolved
    locally, no network) and OID references the XSD does not check. Empty list: valid.

    The same bytes validated before in this process give the errors found then (:mod:`converter.io.check_memo`)."""
    digest = file_digest(Path(path))
    key = ("define-xsd", digest) if digest is not None else None
    if key is not None and (hit := lookup(key)) is not None:
        return [f"{path}: {e}" for e in hit]
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    try:
        tree = etree.parse(str(path), parser)
    except etree.XMLSyntaxError as exc:
        return [f"{path}: {describe_xml_error(exc)}"]
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror or exc}"]
    errors = validate_define_tree(tree)
    if key is not None:
        remember(key, errors)
    return [f"{path}: {e}" for e in errors]


def validate_define_tree(tree: etree._ElementTree) -> list[str]:
    schema = _schema()
    errors = [] if schema.validate(tree) else [f"line {e.line}: {e.message}" for e in schema.error_log]
    return errors + _reference_errors(tree)


_REFS = (
    ("odm:ItemRef", "ItemOID", ("odm:ItemDef",)),
    ("odm:ItemRef", "MethodOID", ("odm:MethodDef",)),
    ("odm:CodeListRef", "CodeListOID", ("odm:CodeList",)),
    ("def:ValueListRef", "ValueListOID", ("def:ValueListDef",)),
    ("def:WhereClauseRef", "WhereClauseOID", ("def:WhereClauseDef",)),
    ("odm:RangeCheck", f"{{{DEF_NS}}}ItemOID", ("odm:ItemDef",)),
    ("*", f"{{{DEF_NS}}}CommentOID", ("def:CommentDef",)),
    ("*", f"{{{DEF_NS}}}StandardOID", ("def:Standard",)),
)


def _reference_errors(tree: etree._ElementTree) -> list[str]:
    root = tree.getroot()
    errors: list[str] = []
    oids: dict[str, set[str]] = {}
    for tag in ("odm:ItemDef", "odm:MethodDef", "odm:CodeList", "def:ValueListDef", "def:WhereClauseDef",
                "def:CommentDef", "def:Standard", "odm:ItemGroupDef"):  # fmt: skip
        found = [str(e.get("OID")) for e in root.iterfind(f".//{tag}", NS)]
        errors += [
            f"{tag} OID {dup} is defined more than once" for dup in sorted({o for o in found if found.count(o) > 1})
        ]
        oids[tag] = set(found)
    for tag, attr, targets in _REFS:
        for el in root.iterfind(f".//{tag}", NS):
            ref = el.get(attr)
            if ref is not None and not any(ref in oids[t] for t in targets):
                errors.append(f"line {el.sourceline}: {attr.split('}')[-1]}={ref!r} refers to no {targets[0]}")
    return errors


# --- cross-check with the data -------------------------------------------------------------------------------------
class _Define:
    """A define.xml parsed, its definitions by OID and its datasets by name."""

    def __init__(self, path: Path) -> None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False)
        self.root = etree.parse(str(path), parser).getroot()
        self.itemdefs = {str(e.get("OID")): e for e in self.root.iterfind(".//odm:ItemDef", NS)}
        self.codelists = {str(e.get("OID")): e for e in self.root.iterfind(".//odm:CodeList", NS)}
        self.wheres = {str(e.get("OID")): e for e in self.root.iterfind(".//def:WhereClauseDef", NS)}
        self.vlds = {str(e.get("OID")): e for e in self.root.iterfind(".//def:ValueListDef", NS)}
        self.groups = {str(e.get("Name")): e for e in self.root.iterfind(".//odm:ItemGroupDef", NS)}

    def leaves(self) -> tuple[str, ...]:
        """Each dataset's name and its def:leaf href (``name``, or ``name NUL href``: XML holds no NUL)."""
        out = []
        for name, igd in self.groups.items():
            leaf = igd.find("def:leaf", NS)
            out.append(name if leaf is None else f"{name}\0{leaf.get(f'{{{XLINK_NS}}}href')}")
        return tuple(out)


def crosscheck_define(
    define_path: Path | str,
    datasets: Mapping[str, tuple[pd.DataFrame, DatasetSpec | None]],
    sources: Mapping[str, Path] | None = None,
) -> list[str]:
    """Define-XML against the data it describes; empty list when they agree.

    Every dataset and variable in the data is in define.xml and vice versa (same order); every codelist a spec
    names is referenced and defined, and no defined codelist is unused; data values of a variable with an internal
    codelist are terms of it; Length >= the longest value (text bytes, integer/float digits), also per value-level
    item; each ``def:leaf`` file exists, and for ``.xpt`` files the XPT header agrees with define.xml (variables,
    labels, character widths == Length).

    ``sources``: dataset name -> the file its frame is the unchanged read of (:func:`converter.io.xpt.read_xpt`,
    :func:`converter.io.datasetjson.read_dataset_json`). With it, each part of the result is remembered per process
    (:mod:`converter.io.check_memo`) under the contents it depends on: define.xml's bytes (and the datasets'
    names), and for a dataset with a source, that file's bytes, its def:leaf file's and the spec's codelist names.
    The same check on the same contents again is then a lookup; a changed byte anywhere runs the part again.
    """
    path = Path(define_path)
    digest = file_digest(path) if sources is not None else None
    parsed: list[_Define] = []

    def define() -> _Define:
        if not parsed:
            parsed.append(_Define(path))
        return parsed[0]

    problems = remembered(("crosscheck", digest, frozenset(datasets)) if digest else None,
                          lambda: _outline_problems(define(), datasets))  # fmt: skip
    leaves: dict[str, str | None] | None = None
    if digest is not None:
        listed = remembered(("define-leaves", digest), lambda: list(define().leaves()))
        leaves = {n.split("\0", 1)[0]: (n.split("\0", 1)[1] if "\0" in n else None) for n in listed}
    digests: dict[Path, bytes | None] = {}
    for name, (df, spec) in datasets.items():
        key = _dataset_key(digest, name, spec, sources, leaves, path.parent, digests)
        problems += remembered(key, partial(_dataset_problems, define, name, df, spec, path.parent))
    return problems


def _dataset_key(
    digest: bytes | None,
    name: str,
    spec: DatasetSpec | None,
    sources: Mapping[str, Path] | None,
    leaves: Mapping[str, str | None] | None,
    base: Path,
    digests: dict[Path, bytes | None],
) -> tuple[object, ...] | None:
    """What :func:`_dataset_problems` depends on besides define.xml (``digest``), or None when not all known."""
    source = (sources or {}).get(name)
    if digest is None or leaves is None or source is None:
        return None

    def content(p: Path) -> bytes | None:
        if p not in digests:
            digests[p] = file_digest(p)
        return digests[p]

    if (data := content(source)) is None:
        return None
    leaf: tuple[object, ...] = ()
    href = leaves.get(name)
    if href is not None:
        target = base / href
        if not target.exists():
            leaf = ("missing",)
        elif target.suffix.lower() != ".xpt":
            leaf = ("exists",)
        elif (leaf_data := content(target)) is not None:
            leaf = ("xpt", leaf_data)
        else:
            return None
    spec_key = None if spec is None else tuple((v.name, v.codelist) for v in spec.variables)
    return ("crosscheck", digest, name, source.suffix.lower(), data, spec_key, href, leaf)


def _outline_problems(d: _Define, datasets: Mapping[str, object]) -> list[str]:
    """The datasets missing on either side and the codelists no variable uses."""
    problems: list[str] = []
    for name in sorted(set(datasets) - set(d.groups)):
        problems.append(f"{name}: dataset is not in define.xml")
    for name in sorted(set(d.groups) - set(datasets)):
        problems.append(f"{name}: define.xml describes a dataset that is not in the data")
    used_cl: set[str] = set()
    for e in d.root.iterfind(".//odm:CodeListRef", NS):
        used_cl.add(str(e.get("CodeListOID")))
    for oid in sorted(set(d.codelists) - used_cl):
        problems.append(f"codelist {oid} is defined in define.xml but no variable uses it")
    return problems


def _dataset_problems(
    parsed: Callable[[], _Define], name: str, df: pd.DataFrame, spec: DatasetSpec | None, base: Path
) -> list[str]:
    """The cross-check of one dataset (``parsed``: the define.xml, parsed when first asked for)."""
    d = parsed()
    igd = d.groups.get(name)
    if igd is None:
        return []
    problems: list[str] = []
    refs = sorted(igd.iterfind("odm:ItemRef", NS), key=lambda r: int(r.get("OrderNumber") or 0))
    defs = [d.itemdefs.get(str(r.get("ItemOID"))) for r in refs]
    dnames = [str(i.get("Name")) if i is not None else f"?{r.get('ItemOID')}" for i, r in zip(defs, refs, strict=True)]
    cols = [str(c) for c in df.columns]
    for v in [c for c in cols if c not in dnames]:
        problems.append(f"{name}.{v}: variable is in the data but not in define.xml")
    for v in [c for c in dnames if c not in cols]:
        problems.append(f"{name}.{v}: variable is in define.xml but not in the data")
    if set(cols) == set(dnames) and cols != dnames:
        problems.append(f"{name}: define.xml order {dnames} differs from the data's {cols}")
    for item in defs:
        if item is None:
            continue
        var = str(item.get("Name"))
        if var not in df.columns:
            continue
        problems += _check_item(name, var, item, df[var], d.codelists, spec)
        vref = item.find("def:ValueListRef", NS)
        if vref is not None:
            problems += _check_vlm(name, var, df, d.vlds.get(str(vref.get("ValueListOID"))), d.itemdefs, d.wheres,
                                   d.codelists)  # fmt: skip
    problems += _check_leaf(name, igd, base, d.itemdefs, refs)
    return problems


def _coded_values(cl: etree._Element) -> set[str] | None:
    if cl.find("odm:ExternalCodeList", NS) is not None:
        return None
    return {str(i.get("CodedValue")) for i in cl if i.tag in (odm_tag("CodeListItem"), odm_tag("EnumeratedItem"))}


def _values_as_text(col: pd.Series) -> list[str]:
    """The distinct values of ``col`` as define.xml writes them, missing ones left out (the checks here need the
    longest and the set of values, so each distinct value is converted once, not each row)."""
    out: list[str] = []
    for v in pd.unique(col.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v == "":
            continue
        out.append(value_text(v))
    return out


def _check_length(where: str, item: etree._Element, values: list[str], numeric: bool) -> list[str]:
    length = item.get("Length")
    dtype = item.get("DataType")
    if length is None or dtype not in LENGTH_TYPES or not values:
        return []
    if dtype == "text":
        longest = max(len(v.encode("utf-8")) for v in values)
    elif numeric:
        longest = max(number_digits(float(v))[0] for v in values)
    else:
        longest = max(text_number_digits(v)[0] for v in values)
    if longest > int(length):
        return [f"{where}: define.xml Length {length} is shorter than the longest value ({longest})"]
    return []


def _check_item(
    ds: str,
    var: str,
    item: etree._Element,
    col: pd.Series,
    codelists: dict[str, etree._Element],
    spec: DatasetSpec | None,
) -> list[str]:
    where = f"{ds}.{var}"
    problems: list[str] = []
    numeric = not pd.api.types.is_object_dtype(col.dtype)
    values = _values_as_text(col)
    problems += _check_length(where, item, values, numeric)
    ref = item.find("odm:CodeListRef", NS)
    try:
        want = spec.variable(var).codelist if spec is not None else None
    except KeyError:
        want = None
    have = str(ref.get("CodeListOID")) if ref is not None else None
    if want and have != f"CL.{want}":
        problems.append(f"{where}: the spec names codelist {want} but define.xml references {have}")
    if have and not want and spec is not None:  # no spec: the define.xml is the spec
        problems.append(f"{where}: define.xml references {have} but the spec names no codelist")
    if have:
        cl = codelists.get(have)
        if cl is None:
            problems.append(f"{where}: codelist {have} is referenced but not defined in define.xml")
        else:
            terms = _coded_values(cl)
            if terms is not None:
                missing = sorted(set(values) - terms)
                if missing:
                    problems.append(f"{where}: values {missing[:20]} are not in codelist {have}")
    return problems


def _check_vlm(
    ds: str,
    var: str,
    df: pd.DataFrame,
    vld: etree._Element | None,
    itemdefs: dict[str, etree._Element],
    wheres: dict[str, etree._Element],
    codelists: dict[str, etree._Element],
) -> list[str]:
    if vld is None:
        return [f"{ds}.{var}: def:ValueListRef points to no def:ValueListDef"]
    problems: list[str] = []
    numeric = not pd.api.types.is_object_dtype(df[var].dtype)
    for iref in vld.iterfind("odm:ItemRef", NS):
        item = itemdefs.get(str(iref.get("ItemOID")))
        wref = iref.find("def:WhereClauseRef", NS)
        wcd = wheres.get(str(wref.get("WhereClauseOID"))) if wref is not None else None
        if item is None or wcd is None:
            continue
        mask = pd.Series(True, index=df.index)
        desc = []
        for rc in wcd.iterfind("odm:RangeCheck", NS):
            by_item = itemdefs.get(str(rc.get(f"{{{DEF_NS}}}ItemOID")))
            by = str(by_item.get("Name")) if by_item is not None else ""
            vals = {str(c.text) for c in rc.iterfind("odm:CheckValue", NS)}
            if by not in df.columns or rc.get("Comparator") not in ("EQ", "IN"):
                mask[:] = False
                continue
            mask &= pd.Series(matches_mask(df[by].to_numpy(dtype=object), vals), index=df.index)
            desc.append(f"{by} in {sorted(vals)}")
        where = f"{ds}.{var} [{', '.join(desc)}]"
        values = _values_as_text(df.loc[mask.astype(bool), var])
        problems += _check_length(where, item, values, numeric)
        ref = item.find("odm:CodeListRef", NS)
        if ref is not None and (cl := codelists.get(str(ref.get("CodeListOID")))) is not None:
            terms = _coded_values(cl)
            if terms is not None and (missing := sorted(set(values) - terms)):
                problems.append(f"{where}: values {missing[:20]} are not in codelist {ref.get('CodeListOID')}")
    return problems


def _check_leaf(
    ds: str, igd: etree._Element, base: Path, itemdefs: dict[str, etree._Element], refs: list[etree._Element]
) -> list[str]:
    leaf = igd.find("def:leaf", NS)
    if leaf is None:
        return [f"{ds}: ItemGroupDef has no def:leaf"]
    href = str(leaf.get(f"{{{XLINK_NS}}}href"))
    target = base / href
    if not target.exists():
        return [f"{ds}: def:leaf {href} does not exist beside define.xml"]
    if target.suffix.lower() != ".xpt":
        return []
    problems: list[str] = []
    meta = _xpt_header(target)
    xnames = list(meta.column_names)
    defs = [itemdefs.get(str(r.get("ItemOID"))) for r in refs]
    dnames = [str(d.get("Name")) for d in defs if d is not None]
    if xnames != dnames:
        problems.append(f"{ds}: {href} has variables {xnames}, define.xml {dnames}")
    label = igd.findtext("odm:Description/odm:TranslatedText", namespaces=NS)
    if (meta.file_label or "") != (label or ""):
        problems.append(f"{ds}: {href} label {meta.file_label!r} differs from define.xml {label!r}")
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    for d in defs:
        if d is None or str(d.get("Name")) not in labels:
            continue
        var = str(d.get("Name"))
        dlabel = d.findtext("odm:Description/odm:TranslatedText", namespaces=NS) or ""
        if (labels[var] or "") != dlabel:
            problems.append(f"{ds}.{var}: {href} label {labels[var]!r} differs from define.xml {dlabel!r}")
        width = meta.variable_storage_width.get(var)
        if d.get("DataType") == "text" and d.get("Length") and width != int(str(d.get("Length"))):
            problems.append(f"{ds}.{var}: {href} width {width} differs from define.xml Length {d.get('Length')}")
    return problems


@dataclass(frozen=True)
class _XptHeader:
    """The parts of ``pyreadstat.read_xport(..., metadataonly=True)``'s metadata that :func:`_check_leaf` uses."""

    column_names: list[str]
    column_labels: list[str | None]
    file_label: str | None
    variable_storage_width: dict[str, int]


def _xpt_header(path: Path) -> Any:
    """pyreadstat's metadata of an XPT file; for a plain v5 file (:func:`converter.io.xpt_read.plain_v5_header`) the
    same values from the header bytes, without importing pyreadstat (empty labels None, as pyreadstat gives them)."""
    head = plain_v5_header(path.read_bytes())
    if head is None:
        import pyreadstat

        return pyreadstat.read_xport(str(path), metadataonly=True)[1]
    cols = head.columns
    return _XptHeader([c.name for c in cols], [c.label or None for c in cols], head.file_label or None,
                      {c.name: c.width for c in cols})  # fmt: skip
