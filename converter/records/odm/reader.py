"""``read_odm``: the raw text read in blocks of whole subjects while the lxml pass checks the document."""

from __future__ import annotations

import codecs
import concurrent.futures
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

from converter.errors import problem
from converter.records.odm.collector import RX_GAP, Collector, Unsafe
from converter.records.odm.names import NS, TAG_ODM, esc
from converter.records.odm.validation import lxml_pass, markup_gap_problems, sniff
from converter.records.odm.vocab import Vocab
from converter.records.raw import RawRead, RawTable, empty_raw
from converter.records.schema import FormSchema, load_forms

RAW_BLOCK = 1 << 24
#: text carried over without a whole subject in it, at most: past it the file is read by the lxml pass alone,
#: whose limits (:data:`~converter.records.odm.validation.XML_NODE_LIMIT`) refuse an oversized value
MAX_CARRY = 2 * RAW_BLOCK


def _carried(text: str) -> str:
    if len(text) > MAX_CARRY:
        raise Unsafe(f"more than {MAX_CARRY} characters without a whole SubjectData")
    return text


def raw_blocks(path: Path) -> Iterator[tuple[str, int]]:
    """Blocks of whole ``SubjectData`` elements (about ``RAW_BLOCK`` bytes each) and their first line, cut
    from the file's own UTF-8 text.

    Only for documents whose data region (from the first ``<ClinicalData``) holds elements and attributes
    alone: a comment, CDATA section, processing instruction or an undecodable byte raises :class:`Unsafe`
    and the caller reads the file through lxml instead. Well-formedness is the caller's separate concern.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    carry = ""
    line = 1
    started = False
    first = True
    end_tag = "</SubjectData>"
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(RAW_BLOCK)
            final = not chunk
            try:
                text = carry + decoder.decode(chunk, final)
            except UnicodeDecodeError:
                raise Unsafe("not UTF-8") from None
            if first:
                text = text.removeprefix("\ufeff")
                first = False
            if not started:
                i = text.find("<ClinicalData")
                if i < 0:
                    if final:
                        return
                    carry = _carried(text)
                    continue
                if "<SubjectData" in text[:i]:
                    raise Unsafe("SubjectData before ClinicalData")
                line += text.count("\n", 0, i)
                text = text[i:]
                started = True
            if "<!--" in text or "-->" in text or "<![CDATA[" in text or "<?" in text:
                raise Unsafe("comment, CDATA or processing instruction among the clinical data")
            start = text.find("<SubjectData ")
            cut = text.rfind(end_tag)
            if start < 0 or cut < start:
                if final:
                    return
                carry = _carried(text)
                continue
            cut += len(end_tag)
            head = text[:start]
            if head and not head.startswith("<ClinicalData") and RX_GAP.fullmatch(head) is None:
                raise Unsafe("unexpected markup between subjects")
            line += head.count("\n")
            body = text[start:cut]
            yield body, line
            if final:
                return
            line += body.count("\n")
            carry = text[cut:]


#: files from this size on are read by two processes at once: lxml checks while the raw text is read
PARALLEL_MIN = 32 * 1024 * 1024


def empty_tables(schema: FormSchema, file: str) -> dict[str, RawTable]:
    return {oid: empty_raw(form, file) for oid, form in schema.forms.items()}


def read_odm(
    path: Path | str, schema: FormSchema | None = None, *, validate: bool = True, parallel: bool = True
) -> RawRead:
    """Stream an ODM file into raw per-form tables plus every problem met (XML, XSD, metadata, structure).

    The subjects' data is cut from the file's own text (fast); a separate streaming lxml parse checks
    well-formedness, the XSD (``validate``), the MetaDataVersion and the study. For files of at least
    :data:`PARALLEL_MIN` bytes the lxml parse runs in a second process (``parallel``). Files the raw reading
    cannot vouch for (another encoding, namespace prefixes, comments among the data) are read by lxml alone.
    If the XML is not well-formed only the parse errors are returned (no tables).
    """
    path = Path(path)
    schema = schema or load_forms()
    vocab = Vocab.build(schema)
    file = str(path)
    gap = markup_gap_problems(path)  # before anything parses the file
    if gap:
        return RawRead(tables=empty_tables(schema, file), problems=gap)
    root = sniff(path)
    if root is not None and root.tag != TAG_ODM:
        msg = f"not an ODM 1.3 document: the root element is {root.tag}"
        return RawRead(
            tables=empty_tables(schema, file), problems=[problem(file, "line 1", "", root.tag, "format", msg)]
        )
    if root is not None and root.doctype:
        msg = "a DOCTYPE declaration is not allowed in an ODM file (no DTD, no entities)"
        return RawRead(tables=empty_tables(schema, file), problems=[problem(file, "line 1", "", "", "xml", msg)])
    decls = "".join(f' xmlns{":" + p if p else ""}="{esc(u)}"' for p, u in (root.nsmap.items() if root else ()))
    raw_ok = (
        root is not None and root.nsmap.get(None) == NS and root.encoding.replace("_", "-").upper() in ("UTF-8", "UTF8")
    )
    if raw_ok:
        collector = Collector(vocab, file, (f"<ClinicalData{decls}>", "</ClinicalData>"))
        future = None
        executor = None
        if parallel and path.stat().st_size >= PARALLEL_MIN and (os.cpu_count() or 1) > 1:
            try:
                ctx = multiprocessing.get_context("fork")
                executor = concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx)
                future = executor.submit(lxml_pass, path, schema, validate, None)
            except (ValueError, OSError):
                executor = None
        try:
            if future is None:
                problems, well_formed = lxml_pass(path, schema, validate, None)
                if not well_formed:
                    return RawRead(tables=empty_tables(schema, file), problems=problems)
            try:
                for block, line in raw_blocks(path):
                    collector.add_block(block, line)
                tables = collector.tables()
            except Unsafe:
                raw_ok = False
            if future is not None:
                try:
                    problems, well_formed = future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    problems, well_formed = lxml_pass(path, schema, validate, None)
                if not well_formed:
                    return RawRead(tables=empty_tables(schema, file), problems=problems)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        if raw_ok:
            return RawRead(tables=tables, problems=problems + collector.problems)
    collector = Collector(vocab, file, ("<wrap>", "</wrap>"))
    problems, well_formed = lxml_pass(path, schema, validate, collector)
    if not well_formed:
        return RawRead(tables=empty_tables(schema, file), problems=problems)
    return RawRead(tables=collector.tables(), problems=problems + collector.problems)
