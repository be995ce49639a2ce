"""The ``MetaDataVersion`` an ODM file gets from forms.yaml, and the check that a file's own does not contradict it."""

from __future__ import annotations

from typing import Any

from converter.errors import Problem, problem
from converter.records.odm.names import (
    STUDY_EVENT_OID,
    TAG,
    codelist_oid,
    data_fields,
    esc,
    form_oid,
    item_group_oid,
    item_oid,
    odm_data_type,
    unit_oid,
)
from converter.records.odm.vocab import Vocab
from converter.records.schema import Field, FormSchema

# ----------------------------------------------------------------------------------------------- metadata


def _length(f: Field) -> int | None:
    if f.length is not None:
        return int(f.length)
    if f.type == "text" and f.codes:
        return max(len(c) for c in f.codes)
    if f.type == "integer" and f.max is not None:
        return len(str(int(f.max)))
    return None


def _tt(text: str) -> str:
    return f'<TranslatedText xml:lang="en">{esc(text)}</TranslatedText>'


def metadata_xml(schema: FormSchema, level: int = 2, step: str = "  ") -> str:
    """``GlobalVariables``, ``BasicDefinitions`` and ``MetaDataVersion`` of ``Study``, generated from the schema.

    Lines are indented by ``step`` times ``level`` (the nesting depth of Study's children) and deeper.
    """
    st = schema.study
    i1, i2, i3, i4 = (step * (level + k) for k in range(4))
    out: list[str] = [
        f"{i1}<GlobalVariables>",
        f"{i2}<StudyName>{esc(st.oid)}</StudyName>",
        f"{i2}<StudyDescription>{esc(st.name)}</StudyDescription>",
        f"{i2}<ProtocolName>{esc(st.protocol or st.oid)}</ProtocolName>",
        f"{i1}</GlobalVariables>",
    ]
    units: dict[str, str] = {}
    for form in schema.forms.values():
        for f in data_fields(form):
            if f.unit:
                units.setdefault(unit_oid(f.unit), f.unit)
    if units:
        out.append(f"{i1}<BasicDefinitions>")
        for oid, unit in units.items():
            out.append(f'{i2}<MeasurementUnit OID="{esc(oid)}" Name="{esc(unit)}">')
            out.append(f"{i3}<Symbol>{_tt(unit)}</Symbol>")
            out.append(f"{i2}</MeasurementUnit>")
        out.append(f"{i1}</BasicDefinitions>")
    out.append(f'{i1}<MetaDataVersion OID="{esc(st.metadata_version)}" Name="{esc(st.name or st.oid)}">')
    out.append(f"{i2}<Protocol>")
    out.append(f'{i3}<StudyEventRef StudyEventOID="{STUDY_EVENT_OID}" OrderNumber="1" Mandatory="Yes"/>')
    out.append(f"{i2}</Protocol>")
    out.append(f'{i2}<StudyEventDef OID="{STUDY_EVENT_OID}" Name="Study" Repeating="No" Type="Common">')
    for n, oid in enumerate(schema.forms, 1):
        out.append(f'{i3}<FormRef FormOID="{esc(form_oid(oid))}" OrderNumber="{n}" Mandatory="No"/>')
    out.append(f"{i2}</StudyEventDef>")
    for oid, form in schema.forms.items():
        out.append(f'{i2}<FormDef OID="{esc(form_oid(oid))}" Name="{esc(form.label)}" Repeating="No">')
        out.append(f'{i3}<ItemGroupRef ItemGroupOID="{esc(item_group_oid(oid))}" Mandatory="Yes"/>')
        out.append(f"{i2}</FormDef>")
    for oid, form in schema.forms.items():
        rep = "Yes" if form.repeating else "No"
        out.append(f'{i2}<ItemGroupDef OID="{esc(item_group_oid(oid))}" Name="{esc(oid)}" Repeating="{rep}">')
        out.append(f"{i3}<Description>{_tt(form.label)}</Description>")
        for n, f in enumerate(data_fields(form), 1):
            mand = "Yes" if f.required else "No"
            out.append(f'{i3}<ItemRef ItemOID="{esc(item_oid(oid, f.name))}" OrderNumber="{n}" Mandatory="{mand}"/>')
        out.append(f"{i2}</ItemGroupDef>")
    for oid, form in schema.forms.items():
        for f in data_fields(form):
            length = _length(f)
            attrs = f'OID="{esc(item_oid(oid, f.name))}" Name="{esc(f.name)}" DataType="{odm_data_type(f)}"'
            if length is not None:
                attrs += f' Length="{length}"'
            out.append(f"{i2}<ItemDef {attrs}>")
            out.append(f"{i3}<Question>{_tt(f.label)}</Question>")
            if f.unit:
                out.append(f'{i3}<MeasurementUnitRef MeasurementUnitOID="{esc(unit_oid(f.unit))}"/>')
            if f.codes:
                out.append(f'{i3}<CodeListRef CodeListOID="{esc(codelist_oid(oid, f.name))}"/>')
            out.append(f"{i2}</ItemDef>")
    for oid, form in schema.forms.items():
        for f in data_fields(form):
            if not f.codes:
                continue
            out.append(f'{i2}<CodeList OID="{esc(codelist_oid(oid, f.name))}" Name="{esc(f.label)}" DataType="text">')
            for code, decode in f.codes.items():
                out.append(f'{i3}<CodeListItem CodedValue="{esc(code)}">')
                out.append(f"{i4}<Decode>{_tt(decode)}</Decode>")
                out.append(f"{i3}</CodeListItem>")
            out.append(f"{i2}</CodeList>")
    out.append(f"{i1}</MetaDataVersion>")
    return "\n".join(out) + "\n"


def check_metadata(mdv: Any, vocab: Vocab, file: str) -> list[Problem]:
    """Problems where the file's MetaDataVersion contradicts the schema."""
    out: list[Problem] = []
    schema = vocab.schema
    codelists: dict[str, set[str]] = {}
    for cl in mdv.iterchildren(TAG + "CodeList"):
        codelists[cl.get("OID") or ""] = {
            item.get("CodedValue") or "" for item in cl.iterchildren(TAG + "CodeListItem", TAG + "EnumeratedItem")
        }

    def where(el: Any) -> str:
        return f"line {el.sourceline}"

    for fd in mdv.iterchildren(TAG + "FormDef"):
        oid = fd.get("OID") or ""
        if oid not in vocab.form_by_oid:
            out.append(problem(file, where(fd), "", oid, "unknown-form", f"FormDef {oid} is not a form of the schema"))
    for gd in mdv.iterchildren(TAG + "ItemGroupDef"):
        oid = gd.get("OID") or ""
        form = vocab.group_by_oid.get(oid)
        if form is None:
            out.append(
                problem(file, where(gd), "", oid, "unknown-form", f"ItemGroupDef {oid} is not a form of the schema")
            )
            continue
        rep = gd.get("Repeating")
        expected = "Yes" if schema.forms[form].repeating else "No"
        if rep != expected:
            out.append(
                problem(
                    file,
                    where(gd),
                    "",
                    rep,
                    "metadata",
                    f"ItemGroupDef {oid}: Repeating={rep}, the schema says {expected}",
                )
            )
        for ref in gd.iterchildren(TAG + "ItemRef"):
            ioid = ref.get("ItemOID") or ""
            target = vocab.item_by_oid.get(ioid)
            if target is None or target[0] != form:
                out.append(
                    problem(
                        file,
                        where(ref),
                        ioid,
                        "",
                        "unknown-item",
                        f"ItemGroupDef {oid} refers to ItemOID {ioid}, not a field of form {form}",
                    )
                )
    for idf in mdv.iterchildren(TAG + "ItemDef"):
        oid = idf.get("OID") or ""
        target = vocab.item_by_oid.get(oid)
        if target is None:
            out.append(
                problem(file, where(idf), oid, "", "unknown-item", f"ItemDef {oid} is not a field of the schema")
            )
            continue
        f = schema.forms[target[0]].fields[target[1]]
        dtype = idf.get("DataType")
        expected_type = odm_data_type(f)
        # a stricter type than the schema's is no contradiction: "date" for a partial date, "string" for text
        if not (dtype == expected_type or (f.partial and dtype == "date") or (f.type == "text" and dtype == "string")):
            out.append(
                problem(
                    file,
                    where(idf),
                    target[1],
                    dtype,
                    "metadata",
                    f"ItemDef {oid}: DataType {dtype}, the schema says {expected_type}",
                )
            )
        ref = idf.find(TAG + "CodeListRef")
        if ref is not None and f.codes:
            extra = sorted(codelists.get(ref.get("CodeListOID") or "", set()) - set(f.codes))
            if extra:
                out.append(
                    problem(
                        file,
                        where(ref),
                        target[1],
                        ", ".join(extra),
                        "metadata",
                        f"code list {ref.get('CodeListOID')} has values the schema does not allow",
                    )
                )
    return out
