"""Define-XML 2.1 from the mapping specs: build, validate against the official XSD, cross-check with the data.

The same :class:`~converter.spec.model.DatasetSpec` objects that drive the conversion and the XPT metadata are
turned into the ODM 1.3.2 / Define-XML 2.1 document, so the three cannot drift apart.

Content (Define-XML v2.1 specification; element order as the XSD requires):

* ``ODM`` with ``def:Context`` (Submission/Other), ``FileType="Snapshot"``, ``ODMVersion="1.3.2"``, the
  ``<?xml-stylesheet type="text/xsl" href="define2-1.xsl"?>`` processing instruction;
* ``MetaDataVersion`` with ``def:DefineVersion="2.1.0"`` and ``def:Standards``: one ``Type="IG"`` standard per
  implementation guide named by the specs (``SDTMIG 3.4``, ``ADaMIG 1.3``) and one ``Name="CDISC/NCI"
  Type="CT"`` standard per package in ``Terminology.package`` (``"SDTM CT 2024-03-29"``);
* one ``ItemGroupDef`` per dataset (Domain for SDTM, SASDatasetName, Repeating, IsReferenceData, Purpose
  Tabulation/Analysis, def:Structure, def:StandardOID, def:ArchiveLocationID + ``def:leaf`` to the ``.xpt``,
  ``def:Class`` as the 2.1 *element*, ItemRefs with OrderNumber, Mandatory (core Req -> Yes), KeySequence from
  ``spec.keys`` and MethodOID for Derived variables);
* ``ItemDef`` per variable: DataType from the spec type, Length only for text/integer/float (the 2.1 rule; ISO
  8601 types carry none), SignificantDigits for float, SASFieldName, def:DisplayFormat from ``spec.format``,
  CodeListRef, ``def:Origin`` with ``Source`` (Collected -> Investigator, Derived/Assigned/Protocol -> Sponsor),
  a description of the CRF ``FORM.FIELD`` for Collected (plus a ``def:DocumentRef`` with the page to the
  annotated CRF when ``acrf_href`` is given), the predecessor for Predecessor; ``def:ValueListRef`` where the
  spec has ``value_level``;
* value-level metadata: ``def:ValueListDef`` + ``def:WhereClauseDef`` (``RangeCheck Comparator="EQ"
  SoftHard="Soft"`` on the ``by`` variable) and one ItemDef per value;
* ``CodeList`` for every codelist a spec uses (variables and value level), in order of first use. **All terms of
  the study terminology** (``mappings/ct``, itself the study's subset of CDISC CT) are listed, not only the ones in
  the data: the document then depends on the specs alone, and :func:`crosscheck_define` reports data values
  missing from a codelist. ``EnumeratedItem`` when no term has a decode, else ``CodeListItem`` + ``Decode``;
  NCI C-codes as ``Alias Context="nci:ExtCodeID"`` on list and terms; ``def:ExtendedValue="Yes"`` for terms
  without a C-code in an extensible CDISC list; a codelist whose ``source`` is an external dictionary (MedDRA,
  WHODD, ISO 3166, ...; give the version as ``source: MedDRA 26.1``) becomes an ``ExternalCodeList``;
* ``MethodDef`` per derived variable (the spec's ``method`` text, else its rule), ``def:CommentDef`` for spec
  comments, ``def:leaf`` for the annotated CRF.

This module builds and writes the document; :mod:`converter.io.define_metadata` holds the metadata it is made
of (standards, classes, lengths, the pre-build checks) and :mod:`converter.io.define_check` validates it (XSD,
references) and cross-checks it with the data. Their public functions are importable from here too.

Lengths follow the XPT policy (:func:`converter.io.xpt.char_lengths`): pass the frames as ``datasets`` so
variables without ``length`` in the spec get their longest value; integer/float Length is the number of digits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from lxml import etree

from converter import __version__
from converter.errors import ConformanceError
from converter.io.datasetjson import item_group_oid, item_oid
from converter.io.define_check import crosscheck_define, schema_path, validate_define, validate_define_tree
from converter.io.define_metadata import (
    ACRF_LEAF,
    DEFINE_VERSION,
    LENGTH_TYPES,
    NS,
    NSMAP,
    ORIGIN_SOURCE,
    STYLESHEET,
    XLINK_NS,
    XML_NS,
    Standard,
    check_for_define,
    codelist_standard,
    ct_standards,
    def_tag,
    external_dictionary,
    ig_standards,
    is_cdisc_codelist,
    is_external,
    item_group_class,
    mdv_oid,
    odm_tag,
    safe_name,
    trial_title,
    used_codelists,
    variable_lengths,
    vlm_lengths,
)
from converter.io.xpt import atomic_file
from converter.spec.model import Codelist, DatasetSpec, Origin, Terminology, VariableSpec

#: the document (built here) and, re-exported, the checks of define_check and the metadata callers need
__all__ = [
    "NS",
    "build_define",
    "check_for_define",
    "crosscheck_define",
    "define_bytes",
    "mdv_oid",
    "schema_path",
    "validate_define",
    "validate_define_tree",
    "write_define",
]


# --- building ------------------------------------------------------------------------------------------------------
def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    el = etree.SubElement(parent, odm_tag(tag))
    tt = etree.SubElement(el, odm_tag("TranslatedText"))
    tt.set(f"{{{XML_NS}}}lang", "en")
    tt.text = text
    return el


def _set(el: etree._Element, **attrs: Any) -> etree._Element:
    for k, v in attrs.items():
        if v is not None:
            el.set(k, str(v))
    return el


def _method_text(var: VariableSpec) -> str:
    if var.method:
        return var.method
    if var.rules:
        parts = [r.describe() if sid == "*" else f"{sid}: {r.describe()}" for sid, r in var.rules.items()]
        return "; ".join(parts)
    return "Derived by the sponsor (the mapping spec gives no derivation text)"


def _crf_text(origin: Origin) -> str | None:
    if not origin.source:
        return None
    form, _, fld = origin.source.partition(".")
    text = f"CRF form {form}, field {fld}" if fld else f"CRF {origin.source}"
    return text + (f" (page {origin.page})" if origin.page else "")


def _origin(parent: etree._Element, origin: Origin, acrf: bool) -> None:
    el = _set(etree.SubElement(parent, def_tag("Origin")), Type=origin.type, Source=ORIGIN_SOURCE.get(origin.type))
    if origin.type == "Collected":
        text = _crf_text(origin)
        if text:
            _text(el, "Description", text)
        if acrf:
            ref = _set(etree.SubElement(el, def_tag("DocumentRef")), leafID=ACRF_LEAF)
            if origin.page:
                _set(etree.SubElement(ref, def_tag("PDFPageRef")), PageRefs=origin.page, Type="PhysicalRef")
    elif origin.type in ("Predecessor", "Assigned", "Protocol") and origin.source:
        _text(el, "Description", origin.source)


def _leaf(parent: etree._Element, leaf_id: str, href: str, title: str) -> None:
    leaf = etree.SubElement(parent, def_tag("leaf"))
    leaf.set("ID", leaf_id)
    leaf.set(f"{{{XLINK_NS}}}href", href)
    etree.SubElement(leaf, def_tag("title")).text = title


class _Oids:
    """Unique OIDs for value-level items (values may hold blanks or clash once made safe)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, base: str) -> str:
        oid = base
        n = 2
        while oid in self.used:
            oid = f"{base}.{n}"
            n += 1
        self.used.add(oid)
        return oid


def build_define(
    specs: Sequence[DatasetSpec],
    ct: Terminology,
    *,
    study_oid: str,
    study_name: str,
    protocol_name: str,
    standard: str,
    context: str = "Submission",
    dataset_files: Mapping[str, str] | None = None,
    datasets: Mapping[str, pd.DataFrame] | None = None,
    study_description: str | None = None,
    acrf_href: str | None = None,
    originator: str | None = None,
    created: str | None = None,
    metadata_version_oid: str | None = None,
) -> etree._ElementTree:
    """The Define-XML 2.1 document for ``specs`` (raises ConformanceError listing what the specs lack).

    ``standard`` is the main implementation guide (``"SDTMIG 3.4"``/``"ADaMIG 1.3"``); ``dataset_files`` maps a
    dataset name to its file's href (default ``<name lower>.xpt``); ``datasets`` gives the frames so lengths of
    variables without a spec length come from the data; ``acrf_href`` links Collected origins to the annotated CRF.
    """
    problems = check_for_define(specs, ct, standard=standard)
    if context not in ("Submission", "Other"):
        problems.append(f"context {context!r} must be Submission or Other")
    if problems:
        raise ConformanceError(problems)
    files = dict(dataset_files or {})
    frames = dict(datasets or {})
    created = created or dt.datetime.now().astimezone().isoformat(timespec="seconds")
    igs = ig_standards(specs, standard)
    main_ig = igs[standard]
    cts = ct_standards(ct, standard)
    ct_std = next((s for s in cts if s.publishing_set == "SDTM"), cts[0] if cts else None)
    ct_of = {cid: codelist_standard(ct.codelists[cid], cts, ct_std) for cid in used_codelists(specs)}
    cts = [s for s in cts if s in ct_of.values()]  # a CT standard is declared only when a codelist cites it
    acrf = acrf_href is not None

    root = etree.Element(odm_tag("ODM"), nsmap=NSMAP)
    _set(
        root,
        FileType="Snapshot",
        FileOID=f"{study_oid}.Define-XML_{DEFINE_VERSION}.{safe_name(main_ig.name)}",
        ODMVersion="1.3.2",
        CreationDateTime=created,
        Originator=originator,
        SourceSystem="inoconv",
        SourceSystemVersion=__version__,
    )
    root.set(def_tag("Context"), context)
    study = _set(etree.SubElement(root, odm_tag("Study")), OID=study_oid)
    gv = etree.SubElement(study, odm_tag("GlobalVariables"))
    etree.SubElement(gv, odm_tag("StudyName")).text = study_name
    etree.SubElement(gv, odm_tag("StudyDescription")).text = study_description or trial_title(frames) or study_name
    etree.SubElement(gv, odm_tag("ProtocolName")).text = protocol_name
    mdv = _set(
        etree.SubElement(study, odm_tag("MetaDataVersion")),
        OID=metadata_version_oid or mdv_oid(study_oid, standard),
        Name=f"{study_name}, {main_ig.name} {main_ig.version} data definitions",
        Description=f"Data definitions for {study_name} ({main_ig.name} {main_ig.version})",
    )
    mdv.set(def_tag("DefineVersion"), DEFINE_VERSION)

    stds = etree.SubElement(mdv, def_tag("Standards"))
    for std in [*dict.fromkeys(igs.values()), *cts]:
        _set(etree.SubElement(stds, def_tag("Standard")), OID=std.oid, Name=std.name, Type=std.type,
             PublishingSet=std.publishing_set, Version=std.version, Status="Final")  # fmt: skip
    if acrf:
        crf = etree.SubElement(mdv, def_tag("AnnotatedCRF"))
        _set(etree.SubElement(crf, def_tag("DocumentRef")), leafID=ACRF_LEAF)

    oids = _Oids()
    vlds: list[etree._Element] = []
    wcds: list[etree._Element] = []
    igds: list[etree._Element] = []
    itemdefs: list[etree._Element] = []
    methods: dict[str, tuple[str, str]] = {}  # oid -> (name, text)
    comments: dict[str, str] = {}

    for spec in specs:
        df = frames.get(spec.name)
        lengths = variable_lengths(df, spec)
        keys = {k: i for i, k in enumerate(spec.keys, start=1)}
        cls = item_group_class(spec)
        assert cls is not None  # checked
        href = files.get(spec.name, f"{spec.name.lower()}.xpt")
        leaf_id = f"LF.{spec.name}"
        std = igs.get(spec.standard, main_ig) if spec.standard else main_ig
        adam = std.name.upper().startswith("ADAM")
        igd = etree.Element(odm_tag("ItemGroupDef"))
        _set(
            igd,
            OID=item_group_oid(spec.name),
            Name=spec.name,
            Domain=None if adam else str(spec.extra.get("domain", spec.name)),
            SASDatasetName=spec.name,
            Repeating="No" if _one_per_subject(spec) else "Yes",
            IsReferenceData="Yes" if cls[0] == "TRIAL DESIGN" or spec.extra.get("reference_data") else "No",
            Purpose="Analysis" if adam else "Tabulation",
        )
        igd.set(def_tag("Structure"), spec.structure)
        igd.set(def_tag("StandardOID"), std.oid)
        igd.set(def_tag("ArchiveLocationID"), leaf_id)
        if spec.comment:
            comments[f"COM.{spec.name}"] = spec.comment
            igd.set(def_tag("CommentOID"), f"COM.{spec.name}")
        _text(igd, "Description", spec.label)
        for n, var in enumerate(sorted(spec.variables, key=lambda v: v.order), start=1):
            iref = _set(
                etree.SubElement(igd, odm_tag("ItemRef")),
                ItemOID=item_oid(spec.name, var.name),
                OrderNumber=n,
                Mandatory="Yes" if var.core == "Req" else "No",
                KeySequence=keys.get(var.name),
            )
            if var.origin.type == "Derived":
                moid = f"MT.{spec.name}.{var.name}"
                methods[moid] = (f"Algorithm to derive {spec.name}.{var.name}", _method_text(var))
                iref.set("MethodOID", moid)
            itemdefs.append(_item_def(spec, var, lengths[var.name], acrf, comments))
            if var.value_level:
                vld, new_wcds, new_items = _value_list(spec, var, df, acrf, oids, methods)
                vlds.append(vld)
                wcds.extend(new_wcds)
                itemdefs.extend(new_items)
        domain = str(spec.extra.get("domain", spec.name))
        if not adam and domain != spec.name:  # only a split dataset names its domain (else the description shows twice)
            description = str(spec.extra.get("domain_description", spec.label))
            _set(etree.SubElement(igd, odm_tag("Alias")), Context="DomainDescription", Name=description)
        cel = _set(etree.SubElement(igd, def_tag("Class")), Name=cls[0])
        if cls[1]:
            _set(etree.SubElement(cel, def_tag("SubClass")), Name=cls[1])
        _leaf(igd, leaf_id, href, Path(href).name)
        igds.append(igd)

    for el in [*vlds, *wcds, *igds, *itemdefs]:
        mdv.append(el)
    for cid in used_codelists(specs):
        mdv.append(_codelist(ct.codelists[cid], ct_of[cid]))
    for moid, (name, text) in methods.items():
        m = _set(etree.SubElement(mdv, odm_tag("MethodDef")), OID=moid, Name=name, Type="Computation")
        _text(m, "Description", text)
    for coid, text in comments.items():
        c = _set(etree.SubElement(mdv, def_tag("CommentDef")), OID=coid)
        _text(c, "Description", text)
    if acrf_href is not None:
        _leaf(mdv, ACRF_LEAF, acrf_href, "Annotated CRF")

    tree = etree.ElementTree(root)
    root.addprevious(etree.ProcessingInstruction("xml-stylesheet", f'type="text/xsl" href="{STYLESHEET}"'))
    return tree


def _one_per_subject(spec: DatasetSpec) -> bool:
    keys = [k for k in spec.keys if k != "STUDYID"]
    return keys == ["USUBJID"] or spec.structure.strip().lower().rstrip(".") == "one record per subject"


def _item_def(
    spec: DatasetSpec,
    var: VariableSpec,
    length: tuple[int | None, int | None],
    acrf: bool,
    comments: dict[str, str],
) -> etree._Element:
    el = etree.Element(odm_tag("ItemDef"))
    _set(
        el,
        OID=item_oid(spec.name, var.name),
        Name=var.name,
        DataType=var.type,
        Length=length[0] if var.type in LENGTH_TYPES else None,
        SignificantDigits=length[1] if var.type == "float" else None,
        SASFieldName=var.name,
    )
    if var.format:
        el.set(def_tag("DisplayFormat"), var.format)
    if var.comment:
        coid = f"COM.{spec.name}.{var.name}"
        comments[coid] = var.comment
        el.set(def_tag("CommentOID"), coid)
    _text(el, "Description", var.label)
    if var.codelist:
        _set(etree.SubElement(el, odm_tag("CodeListRef")), CodeListOID=f"CL.{var.codelist}")
    _origin(el, var.origin, acrf)
    if var.value_level:
        _set(etree.SubElement(el, def_tag("ValueListRef")), ValueListOID=f"VL.{spec.name}.{var.name}")
    return el


def _value_list(
    spec: DatasetSpec,
    var: VariableSpec,
    df: pd.DataFrame | None,
    acrf: bool,
    oids: _Oids,
    methods: dict[str, tuple[str, str]],
) -> tuple[etree._Element, list[etree._Element], list[etree._Element]]:
    vld = _set(etree.Element(def_tag("ValueListDef")), OID=f"VL.{spec.name}.{var.name}")
    wcds: list[etree._Element] = []
    items: list[etree._Element] = []
    for n, vl in enumerate(var.value_level, start=1):
        base = f"{spec.name}.{var.name}.{safe_name(vl.value)}"
        ioid = oids.make(f"IT.{base}")
        woid = oids.make(f"WC.{base}")
        origin = vl.origin or var.origin
        iref = _set(
            etree.SubElement(vld, odm_tag("ItemRef")),
            ItemOID=ioid,
            OrderNumber=n,
            Mandatory="Yes" if var.core == "Req" else "No",
        )
        if origin.type == "Derived":
            moid = f"MT.{spec.name}.{var.name}"
            methods.setdefault(moid, (f"Algorithm to derive {spec.name}.{var.name}", _method_text(var)))
            iref.set("MethodOID", moid)
        _set(etree.SubElement(iref, def_tag("WhereClauseRef")), WhereClauseOID=woid)
        wcd = _set(etree.Element(def_tag("WhereClauseDef")), OID=woid)
        rc = _set(etree.SubElement(wcd, odm_tag("RangeCheck")), Comparator="EQ", SoftHard="Soft")
        rc.set(def_tag("ItemOID"), item_oid(spec.name, vl.by))
        etree.SubElement(rc, odm_tag("CheckValue")).text = vl.value
        wcds.append(wcd)
        length, sig = vlm_lengths(df, vl, var)
        item = _set(
            etree.Element(odm_tag("ItemDef")),
            OID=ioid,
            Name=var.name,
            DataType=vl.type,
            Length=length,
            SignificantDigits=sig,
            SASFieldName=var.name,
        )
        label = vl.label or f"{var.label} ({vl.by} = {vl.value})"
        _text(item, "Description", label + (f" [{vl.unit}]" if vl.unit and vl.label else ""))
        if vl.codelist:
            _set(etree.SubElement(item, odm_tag("CodeListRef")), CodeListOID=f"CL.{vl.codelist}")
        _origin(item, origin, acrf)
        items.append(item)
    return vld, wcds, items


def _codelist(cl: Codelist, ct_std: Standard | None) -> etree._Element:
    el = _set(etree.Element(odm_tag("CodeList")), OID=f"CL.{cl.id}", Name=cl.name, DataType=cl.data_type)
    if is_external(cl):
        dictionary, version = external_dictionary(cl.source)
        _set(etree.SubElement(el, odm_tag("ExternalCodeList")), Dictionary=dictionary, Version=version)
        return el
    cdisc = is_cdisc_codelist(cl)
    if cdisc and ct_std is not None:
        el.set(def_tag("StandardOID"), ct_std.oid)
    decoded = any(t.decode and t.decode != t.submission for t in cl.terms)
    for n, term in enumerate(cl.terms, start=1):
        item = _set(etree.SubElement(el, odm_tag("CodeListItem" if decoded else "EnumeratedItem")),
                    CodedValue=term.submission, OrderNumber=n)  # fmt: skip
        if cdisc and cl.extensible and term.code is None:
            item.set(def_tag("ExtendedValue"), "Yes")
        if decoded:
            _text(item, "Decode", term.decode or term.submission)
        if term.code:
            _set(etree.SubElement(item, odm_tag("Alias")), Context="nci:ExtCodeID", Name=term.code)
    if cl.code:
        _set(etree.SubElement(el, odm_tag("Alias")), Context="nci:ExtCodeID", Name=cl.code)
    return el


def define_bytes(tree: etree._ElementTree) -> bytes:
    out: bytes = etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def write_define(path: Path | str, *args: Any, **kwargs: Any) -> Path:
    """Build (see :func:`build_define`, same arguments), check against the XSD and write ``path`` atomically.

    Raises ConformanceError when the document does not validate (nothing is written then).
    """
    tree = build_define(*args, **kwargs)
    errors = validate_define_tree(tree)
    if errors:
        raise ConformanceError([f"define.xml does not validate: {e}" for e in errors])
    path = Path(path)
    with atomic_file(path) as fh:
        fh.write(define_bytes(tree))
    return path


