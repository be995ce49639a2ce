"""The OIDs of a form schema as arrays, for the reader's vectorised lookups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from converter.records.odm.names import form_oid, item_group_oid, item_oid
from converter.records.schema import FormSchema


@dataclass
class Vocab:
    schema: FormSchema
    forms: list[str]
    form_by_oid: dict[str, str]
    group_by_oid: dict[str, str]
    item_by_oid: dict[str, tuple[str, str]]
    codes: pd.Index[Any]  # every known OID: forms, then groups, then items
    kind: np.ndarray[Any, Any]  # 0 form, 1 group, 2 item
    form_of: np.ndarray[Any, Any]  # form index of each code
    col_of: np.ndarray[Any, Any]  # column index (in form.columns) of each item code, else -1
    known: frozenset[str]

    @classmethod
    def build(cls, schema: FormSchema) -> Vocab:
        forms = list(schema.forms)
        oids: list[str] = []
        kind: list[int] = []
        form_of: list[int] = []
        col_of: list[int] = []
        for k, oid in enumerate(forms):
            oids.append(form_oid(oid))
            kind.append(0)
            form_of.append(k)
            col_of.append(-1)
        for k, oid in enumerate(forms):
            oids.append(item_group_oid(oid))
            kind.append(1)
            form_of.append(k)
            col_of.append(-1)
        for k, oid in enumerate(forms):
            cols = schema.forms[oid].columns
            for c, name in enumerate(cols):
                oids.append(item_oid(oid, name))
                kind.append(2)
                form_of.append(k)
                col_of.append(c)
        return cls(
            schema=schema,
            forms=forms,
            form_by_oid={form_oid(o): o for o in forms},
            group_by_oid={item_group_oid(o): o for o in forms},
            item_by_oid={item_oid(o, n): (o, n) for o in forms for n in schema.forms[o].columns},
            codes=pd.Index(oids, dtype=object),
            kind=np.array(kind, dtype=np.int8),
            form_of=np.array(form_of, dtype=np.int64),
            col_of=np.array(col_of, dtype=np.int64),
            known=frozenset(oids),
        )


#: A SubjectData's data elements in their usual (and lxml's canonical) spelling: double quotes, the OID
#: first, ItemData self-closed right after its Value. ``split`` gives [text, OID, Value-or-None, text, ...]
