"""An ODM file a partition at a time: runs of whole ``SubjectData`` cut from its bytes, each read on its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from converter.errors import InputError, Problem, problem
from converter.records.odm.collector import RX_GAP, Collector, Unsafe
from converter.records.odm.names import NS, TAG_ODM
from converter.records.odm.reader import MAX_CARRY, empty_tables
from converter.records.odm.validation import lxml_pass, sniff
from converter.records.odm.vocab import Vocab
from converter.records.raw import RawRead
from converter.records.schema import FormSchema, load_forms

# ------------------------------------------------------------------------------------ partition by partition


@dataclass(frozen=True)
class OdmSlice:
    """A run of whole ``SubjectData`` elements of an ODM file: bytes ``start``..``end``, from line ``line``."""

    file: str
    start: int
    end: int
    line: int
    subjects: int


def odm_stream_problems(path: Path) -> list[Problem]:
    """Why an ODM file cannot be read a partition at a time (empty: it can). Its well-formedness, XSD, metadata
    and study are checked by a separate pass (:func:`odm_document_problems`)."""
    file = str(path)
    root = sniff(path)
    if root is None:
        return lxml_pass(path, load_forms(), False, None)[0] or [problem(file, "line 1", "", "", "xml", "not XML")]
    if root.tag != TAG_ODM:
        return [problem(file, "line 1", "", root.tag, "format", f"not an ODM 1.3 document: the root is {root.tag}")]
    if root.doctype:
        return [problem(file, "line 1", "", "", "xml", "a DOCTYPE declaration is not allowed in an ODM file")]
    if root.nsmap.get(None) != NS or root.encoding.replace("_", "-").upper() not in ("UTF-8", "UTF8"):
        msg = "streaming needs UTF-8 and the ODM namespace as the default namespace: convert it whole (inoconv sdtm)"
        return [problem(file, "line 1", "", root.encoding, "odm-stream", msg)]
    return []


def odm_document_problems(path: Path, schema: FormSchema, validate: bool = True) -> list[Problem]:
    """The whole-document checks of an ODM file in one streaming lxml pass (memory stays flat): well-formedness,
    the XSD (``validate``), the MetaDataVersion against the form schema, and the study."""
    return lxml_pass(path, schema, validate, None)[0]


def odm_slices(path: Path, subjects: int, read_size: int = 1 << 24) -> Iterator[OdmSlice]:
    """Cut the data region of an ODM file into runs of ``subjects`` whole ``SubjectData`` elements (bytes only:
    nothing is parsed here). Each run begins right after the previous one, so what lies between subjects
    (``</ClinicalData><ClinicalData ...>``) is in a run and checked there."""
    end_tag = b"</SubjectData>"
    file = str(path)
    with path.open("rb") as fh:
        buf = b""
        base = 0  # file offset of buf[0]
        line = 1  # line of buf[0]
        started = False
        scan = last = 0  # where to look for the next end tag; end of the last one found
        count = 0
        while True:
            more = fh.read(read_size)
            final = not more
            buf += more
            if not started:
                i = buf.find(b"<ClinicalData")
                if i < 0:
                    if final:
                        return
                    keep = max(0, len(buf) - len(b"<ClinicalData"))
                    line += buf.count(b"\n", 0, keep)
                    base += keep
                    buf = buf[keep:]
                    continue
                line += buf.count(b"\n", 0, i)
                base += i
                buf = buf[i:]
                started = True
            while True:
                j = buf.find(end_tag, scan)
                if j < 0:
                    break
                count += 1
                scan = last = j + len(end_tag)
                if count == subjects:
                    yield OdmSlice(file, base, base + last, line, count)
                    line += buf.count(b"\n", 0, last)
                    base += last
                    buf = buf[last:]
                    scan = last = count = 0
            if final:
                if count:
                    yield OdmSlice(file, base, base + last, line, count)
                return
            if len(buf) - last > MAX_CARRY:
                at = line + buf.count(b"\n", 0, last)
                msg = (
                    f"more than {MAX_CARRY} bytes without the end of a SubjectData: refused (the limit for one subject)"
                )
                raise InputError(problem(file, f"line {at}", "", "", "limit", msg))
            scan = max(scan, len(buf) - len(end_tag) + 1)


def read_odm_slice(sl: OdmSlice, schema: FormSchema) -> RawRead:
    """The raw tables of one run of subjects (the fast reading of :func:`read_odm`), with the file's lines."""
    vocab = Vocab.build(schema)
    path = Path(sl.file)
    with path.open("rb") as fh:
        fh.seek(sl.start)
        data = fh.read(sl.end - sl.start)
    where = f"line {sl.line}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        at = sl.line + data.count(b"\n", 0, err.start)
        bad = problem(sl.file, f"line {at}", "", "", "encoding", "not UTF-8")
        return RawRead(empty_tables(schema, sl.file), [bad])
    unsafe = ""
    if "<!--" in text or "<![CDATA[" in text or "<?" in text:
        unsafe = "a comment, CDATA section or processing instruction among the subjects"
    start = text.find("<SubjectData ")
    head = text[: max(start, 0)]
    if not unsafe and (start < 0 or (head and RX_GAP.fullmatch(head) is None)):
        unsafe = "markup other than ClinicalData tags between subjects"
    collector = Collector(vocab, sl.file, (f'<ClinicalData xmlns="{NS}">', "</ClinicalData>"))
    if not unsafe:
        try:
            collector.add_block(text[start:], sl.line + head.count("\n"))
        except Unsafe as err:
            unsafe = str(err)
    if unsafe:
        msg = f"{unsafe}: the streaming reader cannot vouch for these subjects; convert the file whole (inoconv sdtm)"
        return RawRead(empty_tables(schema, sl.file), [problem(sl.file, where, "", "", "odm-stream", msg)])
    return RawRead(tables=collector.tables(), problems=collector.problems)
