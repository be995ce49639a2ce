"""Subjects into per-form raw tables: the fast path over the file's own text (markup turned into separators
and read by pandas' C parser) and the element-by-element path through lxml, with line numbers."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lxml import etree

from converter.errors import Problem, problem
from converter.records.odm.names import (
    TAG_EVENT,
    TAG_FORM,
    TAG_GROUP,
    TAG_ITEM,
    TAG_SUBJECT,
    form_oid,
    item_group_oid,
    item_oid,
)
from converter.records.odm.vocab import Vocab
from converter.records.raw import RawTable
from converter.text import CONTROL_RULE, control_mask, escape_controls, first_control

#: data elements per batch of the fast path


READ_BATCH = 400_000
#: problems of one kind reported per batch before the rest are left out
MAX_PROBLEMS = 1000


class Unsafe(Exception):
    """The raw text holds markup the fast raw reading does not handle (comments, CDATA, odd encodings)."""


RX_GAP = re.compile(r"\s*(?:(?:</ClinicalData>|<ClinicalData\b[^<>]*>)\s*)*")


#: comments, namespace prefixes) is noticed by counting and read element by element instead.
_RX_DATA = re.compile(
    r'<(?:ItemData ItemOID|ItemGroupData ItemGroupOID|FormData FormOID)="([^"]*)"(?: Value="([^"]*)"/>)?'
)
_RX_BAD_ENTITY = re.compile(r"&(?!(?:lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")
_RX_CHARREF = re.compile(r"&#(x[0-9a-fA-F]+|[0-9]+);")
_RX_KEY = re.compile(r'<SubjectData SubjectKey="([^"]*)"')
#: a block of subjects becomes lines "kind \x1f OID [\x1f Value \x1f rest]" ended by \x1e (both illegal in XML)
_BLOCK_MARKS = (
    ('<SubjectData SubjectKey="', "\x1eS\x1f"),
    ('<FormData FormOID="', "\x1eF\x1f"),
    ('<ItemGroupData ItemGroupOID="', "\x1eG\x1f"),
    ('<ItemData ItemOID="', "\x1eI\x1f"),
    ('" Value="', "\x1f"),
    ('"/>', "\x1f"),
)
_BLOCK_KIND = {"F": 0, "G": 1, "I": 2, "S": 3}


def _read_marked(block: str) -> pd.DataFrame:
    return pd.read_csv(
        io.StringIO(block),
        sep="\x1f",
        lineterminator="\x1e",
        header=None,
        names=["k", "o", "v", "r"],
        dtype=str,
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        engine="c",
        skip_blank_lines=False,
    )


def _joined_has_quote(values: np.ndarray[Any, Any]) -> bool:
    return bool(len(values)) and '"' in "\0".join(values.tolist())


def _charref(m: re.Match[str]) -> str:
    ref = m.group(1)
    return chr(int(ref[1:], 16) if ref[0] == "x" else int(ref))


def _decode_one(value: str) -> str:
    value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\t", " ")
    value = _RX_CHARREF.sub(_charref, value)
    for a, b in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        value = value.replace(a, b)
    return value


def _decode_attrs(values: list[str]) -> list[str]:
    """Attribute values as an XML parser reports them, for many at once (joined by NUL, never in XML).

    Literal tab/CR/LF become spaces (attribute-value normalisation), then character references and the
    predefined entities are replaced, ``&amp;`` last so that nothing is decoded twice.
    """
    joined = "\0".join(values)
    if "&" not in joined and "\t" not in joined and "\n" not in joined and "\r" not in joined:
        return values
    decoded = _decode_one(joined)
    if decoded.count("\0") != len(values) - 1:  # a character reference to NUL (not XML): one by one
        return [_decode_one(v) for v in values]
    return decoded.split("\0")


class _Where(Sequence[str]):
    """``line N SubjectKey=K`` of the subjects of a block, the lines counted only when first asked for."""

    def __init__(self, block: str, first_line: int, keys: list[str]) -> None:
        self.block = block
        self.first_line = first_line
        self.keys = keys
        self._lines: list[int] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, s: Any) -> Any:
        if self._lines is None:
            starts = [m.start() for m in re.finditer("<SubjectData ", self.block)]
            lines, line, prev = [], self.first_line, 0
            for a in starts:
                line += self.block.count("\n", prev, a)
                lines.append(line)
                prev = a
            self._lines = lines
        return f"line {self._lines[s]} SubjectKey={self.keys[s]}"


def _split_subjects(block: str, line: int) -> list[tuple[str, int]]:
    """A block of whole subjects cut into each SubjectData's text and first line."""
    segs = block.split("<SubjectData ")
    if segs[0].strip():
        raise Unsafe("text before the first subject of a block")
    out: list[tuple[str, int]] = []
    line += segs[0].count("\n")
    for seg in segs[1:]:
        end = seg.rfind("</SubjectData>")
        if end < 0:
            raise Unsafe("SubjectData without end tag")
        end += len("</SubjectData>")
        if RX_GAP.fullmatch(seg[end:]) is None:
            raise Unsafe("unexpected markup between subjects")
        out.append(("<SubjectData " + seg[:end], line))
        line += seg.count("\n")
    return out


class Collector:
    """Collects the subjects of one file into per-form raw frames, mostly in vectorised batches.

    Each subject comes as the text of its ``SubjectData`` element (the file's own bytes, or lxml's
    serialisation), with its line. Fast path: :data:`_RX_DATA` takes it apart and a batch of subjects is
    assembled with numpy. A subject the counts do not vouch for is parsed on its own with lxml (``wrap``
    supplies the namespace declarations) and read element by element, with line numbers.
    """

    def __init__(self, vocab: Vocab, file: str, wrap: tuple[str, str]) -> None:
        self.v = vocab
        self.file = file
        self.wrap = wrap
        self.problems: list[Problem] = []
        self.frames: dict[str, list[pd.DataFrame]] = {f: [] for f in vocab.forms}
        # current fast-path batch
        self.b_texts: list[str] = []
        self.b_lines: list[int] = []
        self.b_keys: list[str] = []
        self.b_oids: list[str] = []
        self.b_values: list[str | None] = []
        self.b_counts: list[int] = []
        # rows read element by element
        self.slow_rows: dict[str, list[dict[str, str | None]]] = {f: [] for f in vocab.forms}

    # -- fast path --------------------------------------------------------------------------------------
    def add_subject(self, text: str, line: int) -> None:
        m = _RX_KEY.match(text)
        parts = _RX_DATA.split(text)
        oids, values = parts[1::3], parts[2::3]
        n_open = values.count(None)  # FormData and ItemGroupData (each has an end tag)
        rest = "".join(parts[0::3])  # everything but the matched starts: end tags, white space, other markup
        # Every element accounted for: the matches, SubjectData and StudyEventData starts and an end tag for
        # each non-ItemData; an ItemData not matched whole (other attributes, no Value, not self-closed),
        # another element or a comment leaves a "<" over and the subject takes the slow path.
        if (
            m is None
            or rest.count("<") != 2 + 2 * rest.count("</StudyEventData>") + n_open
            or "<ItemData" in rest
            or not self.v.known.issuperset(oids)
            or ("&" in text and _RX_BAD_ENTITY.search(text) is not None)
        ):
            self._slow_text(text, line)
            return
        self.b_texts.append(text)
        self.b_lines.append(line)
        self.b_keys.append(m.group(1))
        self.b_oids.extend(oids)
        self.b_values.extend(values)
        self.b_counts.append(len(oids))
        if len(self.b_oids) >= READ_BATCH:
            self.flush()

    # -- whole blocks of subjects ------------------------------------------------------------------------
    def add_block(self, block: str, line: int) -> None:
        """Many whole subjects at once (``block`` starts at a SubjectData, ``line`` is its line): markup
        turned into separators and read by pandas' C parser.

        Counts must vouch that every element is spelled the usual way; otherwise the block is cut into its
        subjects, which go one by one through :meth:`add_subject`.
        """
        if not block:
            return
        if not self._block_fast(block, line):
            for text, ln in _split_subjects(block, line):
                self.add_subject(text, ln)

    def _block_fast(self, block: str, first_line: int) -> bool:
        block_text = block
        if "\x1e" in block or "\x1f" in block or ("&" in block and _RX_BAD_ENTITY.search(block) is not None):
            return False
        for a, b in _BLOCK_MARKS:
            block = block.replace(a, b)
        try:
            frame = _read_marked(block)
        except (pd.errors.ParserError, ValueError):  # a stray separator: some element spelled otherwise
            return False
        kind_text = frame["k"].to_numpy(dtype=object)
        oid_text = frame["o"].to_numpy(dtype=object)
        value_text = frame["v"].to_numpy(dtype=object)
        rest_text = frame["r"].to_numpy(dtype=object)
        if len(kind_text) == 0 or kind_text[0] != "":  # the block starts with a subject: line 0 is empty
            return False
        kind_text, oid_text, value_text, rest_text = kind_text[1:], oid_text[1:], value_text[1:], rest_text[1:]
        kind_all = pd.Series(kind_text, dtype=object).map(_BLOCK_KIND).to_numpy(dtype="float64")
        if np.isnan(kind_all).any():
            return False
        kind_all = kind_all.astype(np.int64)
        is_s = kind_all == 3
        is_item = kind_all == 2
        n_s = int(is_s.sum())
        # S/F/G lines: the OID, then '"' and the rest of the start tag and what follows up to the next mark
        head = np.flatnonzero(~is_item)
        split = [o.partition('"') for o in oid_text[head].tolist()]
        oid_text = oid_text.copy()
        oid_text[head] = [t[0] for t in split]
        # Everything that is not an OID or a Value must be end tags, StudyEventData / ClinicalData tags and
        # white space: no other element, no attribute after Value, no Value outside ItemData.
        tails = "".join([t[2] for t in split]) + "".join(rest_text[is_item].tolist())
        n_groups = len(head) - n_s  # FormData and ItemGroupData
        n_events = tails.count("<StudyEventData")
        n_clinical = tails.count("<ClinicalData") + tails.count("</ClinicalData>")
        if (
            (value_text[~is_item] != "").any()
            or (rest_text[~is_item] != "").any()
            or tails.count("<") != n_s + n_groups + 2 * n_events + n_clinical
            or tails.count("</") != n_s + n_groups + n_events + tails.count("</ClinicalData>")
            or _joined_has_quote(oid_text[is_item])
            or _joined_has_quote(value_text[is_item])
        ):
            return False
        keys = oid_text[is_s]
        subj_all = np.cumsum(is_s) - 1
        data = ~is_s
        oids = oid_text[data]
        factor, uniques = pd.factorize(oids)
        codes = np.asarray(self.v.codes.get_indexer(pd.Index(_decode_attrs(list(uniques)), dtype=object)))[factor]
        kind = kind_all[data]
        if (codes < 0).any() or (self.v.kind[np.maximum(codes, 0)] != kind).any():
            return False
        where = _Where(block_text, first_line, keys.tolist())
        values = np.full(len(kind), None, dtype=object)
        values[kind == 2] = value_text[data][kind == 2]
        self._assemble(np.array(_decode_attrs(keys.tolist()), dtype=object), where, subj_all[data], codes, kind, values)
        return True

    def flush(self) -> None:
        if not self.b_keys:
            return
        v = self.v
        nsubj = len(self.b_keys)
        subj_of = np.repeat(np.arange(nsubj), self.b_counts)
        oids = self.b_oids
        factor, uniques = pd.factorize(np.array(oids, dtype=object))
        codes = np.asarray(v.codes.get_indexer(pd.Index(_decode_attrs(list(uniques)), dtype=object)))[factor]
        kind = v.kind[codes].astype(np.int64)  # all known (checked per subject)
        raw_values = np.array(self.b_values, dtype=object)
        has_value = np.asarray(pd.notna(raw_values), dtype=bool)
        # an element that is not what its OID says (a Value on a group, an item without Value): slow path
        odd = np.zeros(nsubj, dtype=bool)
        odd[subj_of[has_value != (kind == 2)]] = True
        if odd.any():
            texts, lines = self.b_texts, self.b_lines
            for s in np.flatnonzero(odd):
                self._slow_text(texts[s], lines[s])
            keep = ~odd[subj_of]
            subj_map = np.cumsum(~odd) - 1
            subj_of, codes, kind, raw_values = subj_map[subj_of[keep]], codes[keep], kind[keep], raw_values[keep]
            keys = [k for k, o in zip(self.b_keys, odd, strict=True) if not o]
            where = [f"line {ln} SubjectKey={k}" for k, ln, o in zip(self.b_keys, lines, odd, strict=True) if not o]
        else:
            keys = self.b_keys
            where = [f"line {ln} SubjectKey={k}" for k, ln in zip(self.b_keys, self.b_lines, strict=True)]
        self._assemble(np.array(_decode_attrs(keys), dtype=object), where, subj_of, codes, kind, raw_values)
        self.b_texts, self.b_lines, self.b_keys, self.b_oids, self.b_values, self.b_counts = [], [], [], [], [], []

    def _assemble(
        self,
        keys: np.ndarray[Any, Any],
        where: Sequence[str],
        subj_of: np.ndarray[Any, Any],
        codes: np.ndarray[Any, Any],
        kind: np.ndarray[Any, Any],
        raw_values: np.ndarray[Any, Any],
    ) -> None:
        v = self.v
        is_form, is_group, is_item = kind == 0, kind == 1, kind == 2
        group_pos = np.flatnonzero(is_group)
        form_pos = np.flatnonzero(is_form)
        item_pos = np.flatnonzero(is_item)
        group_id = np.cumsum(is_group) - 1
        form_id = np.cumsum(is_form) - 1
        group_form = v.form_of[codes[group_pos]]
        fid = form_id[group_pos]
        if len(form_pos):
            safe = np.maximum(fid, 0)
            enclosing = np.where(fid >= 0, v.form_of[codes[form_pos[safe]]], -1)
            same_subject = (fid >= 0) & (subj_of[form_pos[safe]] == subj_of[group_pos])
        else:
            enclosing = np.full(len(group_pos), -1)
            same_subject = np.zeros(len(group_pos), dtype=bool)
        # an ItemGroupData in the FormData of another form
        misfiled = (group_form != enclosing) | ~same_subject
        for g in np.flatnonzero(misfiled)[:MAX_PROBLEMS]:
            s = int(subj_of[group_pos[g]])
            outer = form_oid(v.forms[enclosing[g]]) if same_subject[g] else "(none)"
            gid = item_group_oid(v.forms[group_form[g]])
            self.problems.append(
                problem(self.file, where[s], "", gid, "unknown-form", f"ItemGroupData {gid} inside FormData {outer}")
            )
        item_group = group_id[item_pos]
        safe_group = np.maximum(item_group, 0)
        item_form = v.form_of[codes[item_pos]]
        in_subject = (item_group >= 0) & (subj_of[group_pos[safe_group]] == subj_of[item_pos])
        # an ItemData of another form's field inside an ItemGroupData
        wrong_item = in_subject & (item_form != group_form[safe_group])
        for i in np.flatnonzero(wrong_item)[:MAX_PROBLEMS]:
            s = int(subj_of[item_pos[i]])
            form = v.forms[group_form[safe_group[i]]]
            oid = item_oid(
                v.forms[item_form[i]], v.schema.forms[v.forms[item_form[i]]].columns[v.col_of[codes[item_pos[i]]]]
            )
            self.problems.append(
                problem(self.file, where[s], oid, "", "unknown-item", f"ItemOID {oid} is not a field of form {form}")
            )
        keep_item = in_subject & ~wrong_item & ~misfiled[safe_group]
        item_values = raw_values[item_pos]
        values = np.array(_decode_attrs(item_values.tolist()), dtype=object) if len(item_values) else item_values
        self._controls(keys, values, where, subj_of[item_pos], codes[item_pos], subj_of)
        for k, oid in enumerate(v.forms):
            form = v.schema.forms[oid]
            sel = np.flatnonzero((group_form == k) & ~misfiled)
            if len(sel) == 0:
                continue
            local = np.full(len(group_pos), -1, dtype=np.int64)
            local[sel] = np.arange(len(sel))
            ncol = len(form.columns)
            mat = np.full((len(sel), ncol), None, dtype=object)
            its = np.flatnonzero(keep_item & (item_form == k))
            if len(its):
                rows = local[item_group[its]]
                cols = v.col_of[codes[item_pos[its]]]
                cell = rows * ncol + cols
                uniq, counts = np.unique(cell, return_counts=True)
                for c in uniq[counts > 1][:MAX_PROBLEMS]:
                    s = int(subj_of[group_pos[sel[int(c // ncol)]]])
                    self.problems.append(
                        problem(
                            self.file,
                            where[s],
                            form.columns[int(c % ncol)],
                            "",
                            "duplicate-item",
                            f"item given twice in one ItemGroupData of form {oid}",
                        )
                    )
                mat[rows, cols] = values[its]
            subj_col = form.columns.index("SUBJID")
            given = mat[:, subj_col]
            expected = keys[subj_of[group_pos[sel]]]
            has = np.asarray(pd.notna(given), dtype=bool)
            for r in np.flatnonzero(has & (given != expected))[:MAX_PROBLEMS]:
                s = int(subj_of[group_pos[sel[r]]])
                self.problems.append(
                    problem(
                        self.file,
                        where[s],
                        "SUBJID",
                        given[r],
                        "odm-structure",
                        "SUBJID item differs from the SubjectKey",
                    )
                )
            mat[:, subj_col] = expected
            mat[mat == ""] = None
            self.frames[oid].append(pd.DataFrame(mat, columns=form.columns, dtype=object))

    def _controls(
        self,
        keys: np.ndarray[Any, Any],
        values: np.ndarray[Any, Any],
        where: Sequence[str],
        item_subject: np.ndarray[Any, Any],
        item_codes: np.ndarray[Any, Any],
        subj_of: np.ndarray[Any, Any],
    ) -> None:
        """A problem per SubjectKey and item value holding a control character (tab allowed), column-wise."""
        for s in np.flatnonzero(control_mask(pd.Series(keys, dtype=object), allow_tab=True))[:MAX_PROBLEMS]:
            self._control(where[int(s)], "SUBJID", str(keys[s]))
        hits = np.flatnonzero(control_mask(pd.Series(values, dtype=object), allow_tab=True))
        for i in hits[:MAX_PROBLEMS].tolist():
            code = int(item_codes[i])
            name = self.v.schema.forms[self.v.forms[self.v.form_of[code]]].columns[self.v.col_of[code]]
            self._control(where[int(item_subject[i])], name, str(values[i]))

    def _control(self, where: str, field: str, value: str) -> None:
        at = first_control(value, allow_tab=True) or 0
        msg = f"control character {escape_controls(value[at])} at position {at + 1}: refused in a value (tab aside)"
        self.problems.append(problem(self.file, where, field, value, CONTROL_RULE, msg))

    # -- element by element -----------------------------------------------------------------------------
    def _slow_text(self, text: str, line: int) -> None:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False, load_dtd=False)
        try:
            wrapped = etree.fromstring(self.wrap[0] + text + self.wrap[1], parser)
        except etree.XMLSyntaxError:
            return  # not well-formed: the file's parse reports it
        el = wrapped.find(TAG_SUBJECT) if wrapped.tag != TAG_SUBJECT else wrapped
        if el is None:
            return
        key = el.get("SubjectKey")
        if key is None:
            return  # reported by the file's parse
        if first_control(key, allow_tab=True) is not None:
            self._control(f"line {line} SubjectKey={key}", "SUBJID", key)
        self._slow_subject(el, key, line - 1)

    def line(self, el: Any, offset: int) -> str:
        return f"line {(el.sourceline or 1) + offset}"

    # -- element by element -----------------------------------------------------------------------------
    def _slow_subject(self, el: Any, key: str, offset: int) -> None:
        v = self.v
        for ev in el.iterchildren(TAG_EVENT):
            for fd in ev.iterchildren(TAG_FORM):
                foid = fd.get("FormOID")
                fform = v.form_by_oid.get(foid or "")
                if fform is None:
                    self.problems.append(
                        problem(
                            self.file,
                            f"{self.line(fd, offset)} SubjectKey={key}",
                            "",
                            foid,
                            "unknown-form",
                            f"FormOID {foid!r} is not a form of the schema",
                        )
                    )
                    continue
                for ig in fd.iterchildren(TAG_GROUP):
                    self._slow_group(ig, key, fform, offset)

    def _slow_group(self, ig: Any, key: str, fform: str, offset: int) -> None:
        v = self.v
        goid = ig.get("ItemGroupOID")
        form = v.group_by_oid.get(goid or "")
        where = f"{self.line(ig, offset)} SubjectKey={key}"
        if form is None or form != fform:
            msg = (
                f"ItemGroupOID {goid!r} is not a form of the schema"
                if form is None
                else f"ItemGroupData {goid} inside FormData {form_oid(fform)}"
            )
            self.problems.append(problem(self.file, where, "", goid, "unknown-form", msg))
            return
        row: dict[str, str | None] = {}
        for it in ig:
            tag = it.tag
            if not isinstance(tag, str) or not tag.startswith(TAG_ITEM):
                continue  # comments, AuditRecord, Annotation, ...
            ioid = it.get("ItemOID")
            target = v.item_by_oid.get(ioid or "")
            line = f"{self.line(it, offset)} SubjectKey={key}"
            if target is None or target[0] != form:
                self.problems.append(
                    problem(
                        self.file,
                        line,
                        ioid or "",
                        "",
                        "unknown-item",
                        f"ItemOID {ioid!r} is not a field of form {form}",
                    )
                )
                continue
            name = target[1]
            if it.get("IsNull") == "Yes":
                value = None
            elif tag == TAG_ITEM:
                value = it.get("Value")
            else:  # typed ItemDataString etc. carry the value as text
                value = it.text or ""
            if name in row:
                self.problems.append(
                    problem(
                        self.file,
                        line,
                        name,
                        value,
                        "duplicate-item",
                        f"item given twice in one ItemGroupData of form {form}",
                    )
                )
                continue
            if value is not None and first_control(value, allow_tab=True) is not None:
                self._control(line, name, value)
            row[name] = value
        if row.get("SUBJID") not in (None, key):
            self.problems.append(
                problem(
                    self.file,
                    where,
                    "SUBJID",
                    row["SUBJID"],
                    "odm-structure",
                    "SUBJID item differs from the SubjectKey",
                )
            )
        row["SUBJID"] = key
        self.slow_rows[form].append(row)

    def tables(self) -> dict[str, RawTable]:
        self.flush()
        out: dict[str, RawTable] = {}
        for oid in self.v.forms:
            cols = self.v.schema.forms[oid].columns
            parts = list(self.frames[oid])
            if self.slow_rows[oid]:
                rows = [[row.get(c) for c in cols] for row in self.slow_rows[oid]]
                parts.append(pd.DataFrame(rows, columns=cols, dtype=object))
            if parts:
                frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            else:
                frame = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
            out[oid] = RawTable(form=oid, file=self.file, frame=frame)
        return out
