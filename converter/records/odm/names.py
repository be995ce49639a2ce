"""ODM 1.3.2 names: the namespace, element tags and the OID convention of the project's files, and XML escaping."""

from __future__ import annotations

import re

from converter.records.schema import Field, Form

NS = "http://www.cdisc.org/ns/odm/v1.3"
ODM_VERSION = "1.3.2"
STUDY_EVENT_OID = "SE.STUDY"
TAG = "{" + NS + "}"
TAG_ODM = TAG + "ODM"
TAG_MDV = TAG + "MetaDataVersion"
TAG_CLINICAL = TAG + "ClinicalData"
TAG_SUBJECT = TAG + "SubjectData"
TAG_EVENT = TAG + "StudyEventData"
TAG_FORM = TAG + "FormData"
TAG_GROUP = TAG + "ItemGroupData"
TAG_ITEM = TAG + "ItemData"


_DATA_TYPES = {"text": "text", "integer": "integer", "float": "float", "date": "date"}


_ESCAPES = (
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ('"', "&quot;"),
    ("\t", "&#9;"),
    ("\n", "&#10;"),
    ("\r", "&#13;"),
)


# --------------------------------------------------------------------------------------------------- OIDs


def form_oid(form: str) -> str:
    return f"F.{form}"


def item_group_oid(form: str) -> str:
    return f"IG.{form}"


def item_oid(form: str, name: str) -> str:
    return f"IT.{form}.{name}"


def codelist_oid(form: str, name: str) -> str:
    return f"CL.{form}.{name}"


def unit_oid(unit: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9]+", "_", unit.replace("%", "PCT")).strip("_").upper()
    return f"MU.{safe or 'UNIT'}"


def odm_data_type(f: Field) -> str:
    return "partialDate" if f.type == "date" and f.partial else _DATA_TYPES[f.type]


def data_fields(form: Form) -> list[Field]:
    """The fields written as ItemData: all but SUBJID (that is the SubjectKey)."""
    return [f for f in form.fields.values() if f.name != "SUBJID"]


# ----------------------------------------------------------------------------------------------- escaping


def esc(text: str) -> str:
    """Escape for an XML attribute value or text node (tabs and line ends kept as character references)."""
    for a, b in _ESCAPES:
        if a in text:
            text = text.replace(a, b)
    return text
