"""The ODM writer: metadata first, then ``ClinicalData`` a chunk of subjects at a time, each chunk one ``str.join``
over an object matrix of prepared text pieces (no string built twice)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from converter import __version__
from converter.io.atomic import atomic_write
from converter.records.checks import field_strings
from converter.records.odm.metadata import metadata_xml
from converter.records.odm.names import (
    NS,
    ODM_VERSION,
    STUDY_EVENT_OID,
    data_fields,
    esc,
    form_oid,
    item_group_oid,
    item_oid,
)
from converter.records.schema import Form, FormSchema, load_forms

#: subjects per chunk of the writer


WRITE_CHUNK = 2000


_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ILLEGAL_XML_BUT_NUL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# ------------------------------------------------------------------------------------------------- writer


def _creation_datetime() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    t = time.gmtime(int(epoch)) if epoch and epoch.isdigit() else time.gmtime()
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", t)


@dataclass
class _FormStrings:
    """A form's rows sorted by subject, with each field's ItemData text prepared (cells of one big join)."""

    form: Form
    subject_code: np.ndarray[Any, Any]  # int64 index into the sorted subject list, ascending
    heads: list[np.ndarray[Any, Any]]  # per field: '<ItemData ItemOID=".." Value="' or "" (missing)
    values: list[np.ndarray[Any, Any]]  # per field: the escaped value or ""
    tails: list[np.ndarray[Any, Any]]  # per field: '"/>' or ""


def _escaped(strings: np.ndarray[Any, Any], where: str) -> list[str]:
    """XML-escape many strings at C speed (join with NUL, escape once, split); refuse what XML cannot hold."""
    values: list[str] = strings.tolist()
    if not values:
        return []
    joined = "\0".join(values)
    bad = _ILLEGAL_XML_BUT_NUL.search(joined)
    if bad is None and joined.count("\0") != len(values) - 1:
        bad = _ILLEGAL_XML.search("\0")
    if bad:
        raise ValueError(f"{where}: character U+{ord(bad.group()):04X} cannot be written to XML")
    return esc(joined).split("\0")


def _prepare_form(form: Form, frame: pd.DataFrame, subject_index: pd.Index[Any]) -> _FormStrings:
    n = len(frame)
    subj = frame["SUBJID"].to_numpy(dtype=object) if "SUBJID" in frame.columns else np.full(n, None, object)
    if n and pd.isna(subj).any():
        raise ValueError(f"form {form.oid}: a record without SUBJID cannot be written to ODM")
    codes = subject_index.get_indexer(pd.Index(pd.Series(subj, dtype=object).astype(str))) if n else np.zeros(0, int)
    order = np.argsort(codes, kind="stable")
    codes = np.asarray(codes)[order]
    heads: list[np.ndarray[Any, Any]] = []
    values: list[np.ndarray[Any, Any]] = []
    tails: list[np.ndarray[Any, Any]] = []
    for f in data_fields(form):
        if f.name not in frame.columns or n == 0:
            continue
        strings = field_strings(frame[f.name].iloc[order], f)
        present = np.asarray(pd.notna(strings), dtype=bool)
        if not present.any():
            continue
        vals = strings[present]
        if f.type not in ("integer", "float"):
            vals = np.array(_escaped(vals, f"form {form.oid} field {f.name}"), dtype=object)
        head = np.full(n, "", dtype=object)
        head[present] = f'<ItemData ItemOID="{esc(item_oid(form.oid, f.name))}" Value="'
        value = np.full(n, "", dtype=object)
        value[present] = vals
        tail = np.full(n, "", dtype=object)
        tail[present] = '"/>'
        heads.append(head)
        values.append(value)
        tails.append(tail)
    return _FormStrings(form=form, subject_code=codes, heads=heads, values=values, tails=tails)


def _subject_index(records: Mapping[str, pd.DataFrame]) -> pd.Index[Any]:
    keys: list[pd.Series[Any]] = []
    for frame in records.values():
        if "SUBJID" in frame.columns and len(frame):
            keys.append(frame["SUBJID"].dropna().astype(str))
    if not keys:
        return pd.Index([], dtype=object)
    uniq = pd.unique(pd.concat(keys, ignore_index=True))
    return pd.Index(sorted(uniq), dtype=object)


def _chunk_xml(prepared: list[_FormStrings], subjects: pd.Index[Any], lo: int, hi: int, ind: str) -> str:
    """The ``SubjectData`` of subjects ``lo..hi-1`` (indices into the sorted subject list).

    Every piece of text is a cell of one object matrix (one row per ItemGroupData, padded with ""), joined
    once at the end: no string is built twice.
    """
    width = 1 + 3 * max((len(fs.heads) for fs in prepared), default=0) + 1
    blocks: list[np.ndarray[Any, Any]] = []
    subj_parts: list[np.ndarray[Any, Any]] = []
    form_parts: list[np.ndarray[Any, Any]] = []
    pos_parts: list[np.ndarray[Any, Any]] = []
    for k, fs in enumerate(prepared):
        a, b = (int(x) for x in np.searchsorted(fs.subject_code, [lo, hi]))
        if a == b:
            continue
        m = b - a
        codes = fs.subject_code[a:b]
        block = np.full((m, width), "", dtype=object)
        oid = esc(item_group_oid(fs.form.oid))
        if fs.form.repeating:
            first = np.searchsorted(codes, codes, side="left")
            rk = (np.arange(m) - first + 1).astype(str).astype(object)
            block[:, 0] = f'{ind * 5}<ItemGroupData ItemGroupOID="{oid}" ItemGroupRepeatKey="' + rk + '">'
        else:
            block[:, 0] = f'{ind * 5}<ItemGroupData ItemGroupOID="{oid}">'
        for j, (h, v, t) in enumerate(zip(fs.heads, fs.values, fs.tails, strict=True)):
            block[:, 1 + 3 * j] = h[a:b]
            block[:, 2 + 3 * j] = v[a:b]
            block[:, 3 + 3 * j] = t[a:b]
        block[:, width - 1] = "</ItemGroupData>\n"
        blocks.append(block)
        subj_parts.append(codes)
        form_parts.append(np.full(m, k, dtype=np.int64))
        pos_parts.append(np.arange(m))
    if not blocks:
        return ""
    subj = np.concatenate(subj_parts)
    frm = np.concatenate(form_parts)
    order = np.lexsort((np.concatenate(pos_parts), frm, subj))
    subj, frm = subj[order], frm[order]
    body = np.concatenate(blocks)[order]
    n = len(subj)
    new_subject = np.ones(n, dtype=bool)
    new_subject[1:] = subj[1:] != subj[:-1]
    new_form = new_subject.copy()
    new_form[1:] |= frm[1:] != frm[:-1]
    end_subject = np.ones(n, dtype=bool)
    end_subject[:-1] = new_subject[1:]
    end_form = np.ones(n, dtype=bool)
    end_form[:-1] = new_form[1:]
    open_subject = np.full(n, "", dtype=object)
    keys = np.array([str(subjects[int(c)]) for c in subj[new_subject]], dtype=object)
    open_subject[new_subject] = (
        f'{ind * 2}<SubjectData SubjectKey="'
        + np.array(_escaped(keys, "SUBJID"), dtype=object)
        + f'">\n{ind * 3}<StudyEventData StudyEventOID="{STUDY_EVENT_OID}">\n'
    )
    open_form = np.full(n, "", dtype=object)
    form_oids = np.array([f'{ind * 4}<FormData FormOID="{esc(form_oid(fs.form.oid))}">\n' for fs in prepared], object)
    open_form[new_form] = form_oids[frm[new_form]]
    close = np.full(n, "", dtype=object)
    close[end_form] = f"{ind * 4}</FormData>\n"
    close[end_subject] = f"{ind * 4}</FormData>\n{ind * 3}</StudyEventData>\n{ind * 2}</SubjectData>\n"
    cells = np.concatenate([open_subject[:, None], open_form[:, None], body, close[:, None]], axis=1)
    return "".join(cells.ravel().tolist())


def iter_odm_chunks(
    records: Mapping[str, pd.DataFrame],
    schema: FormSchema | None = None,
    *,
    creation_datetime: str | None = None,
    file_oid: str | None = None,
    chunk_subjects: int = WRITE_CHUNK,
) -> Iterator[str]:
    """The ODM document as consecutive text chunks (header, metadata, then ``chunk_subjects`` subjects each)."""
    schema = schema or load_forms()
    unknown = set(records) - set(schema.forms)
    if unknown:
        raise ValueError(f"forms not in the schema: {sorted(unknown)}")
    st = schema.study
    ind = "  "
    created = creation_datetime or _creation_datetime()
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ODM xmlns="{NS}" FileType="Snapshot" FileOID="{esc(file_oid or st.oid + ".SNAPSHOT")}"'
        f' CreationDateTime="{esc(created)}" ODMVersion="{ODM_VERSION}" Granularity="All"'
        f' Originator="inoconv" SourceSystem="inoconv" SourceSystemVersion="{esc(__version__)}">\n'
        f'{ind}<Study OID="{esc(st.oid)}">\n'
    )
    yield metadata_xml(schema, level=2, step=ind)
    yield (
        f'{ind}</Study>\n{ind}<ClinicalData StudyOID="{esc(st.oid)}" MetaDataVersionOID="{esc(st.metadata_version)}">\n'
    )
    subjects = _subject_index(records)
    prepared = [_prepare_form(form, records[oid], subjects) for oid, form in schema.forms.items() if oid in records]
    for lo in range(0, len(subjects), chunk_subjects):
        yield _chunk_xml(prepared, subjects, lo, min(lo + chunk_subjects, len(subjects)), ind)
    yield f"{ind}</ClinicalData>\n</ODM>\n"


def write_odm(
    records: Mapping[str, pd.DataFrame],
    path: Path | str | IO[bytes],
    schema: FormSchema | None = None,
    *,
    creation_datetime: str | None = None,
    file_oid: str | None = None,
) -> None:
    """Write ``records`` as one ODM 1.3.2 snapshot file (atomically when given a path).

    Rows are written in the order given within each subject (normalised records: key order); subjects in
    sorted SUBJID order. ``creation_datetime`` defaults to now (or ``SOURCE_DATE_EPOCH``); ``file_oid`` to
    ``<study oid>.SNAPSHOT``, so two writes of the same records differ only in ``CreationDateTime``.
    """
    chunks = iter_odm_chunks(records, schema, creation_datetime=creation_datetime, file_oid=file_oid)
    if isinstance(path, (str, Path)):
        with atomic_write(path) as fh:
            for chunk in chunks:
                fh.write(chunk.encode("utf-8"))
    else:
        for chunk in chunks:
            path.write(chunk.encode("utf-8"))
