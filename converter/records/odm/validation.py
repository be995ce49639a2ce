"""The lxml pass over an ODM file: well-formedness, the ODM 1.3.2 XSD (streaming), the MetaDataVersion and the
study; the root sniffer; syntax and XSD errors as problems."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree

from converter.errors import Problem, problem
from converter.io.xml_errors import xml_error
from converter.records.odm.collector import Collector
from converter.records.odm.metadata import check_metadata
from converter.records.odm.names import TAG_MDV, TAG_SUBJECT
from converter.records.odm.vocab import Vocab
from converter.records.schema import FormSchema

#: above this size a failed streaming validation is not repeated on a whole tree to find line numbers
LINE_LOOKUP_LIMIT = 64 * 1024 * 1024


# ------------------------------------------------------------------------------------------------- reader


@lru_cache(maxsize=1)
def odm_xsd() -> etree.XMLSchema:
    """The ODM 1.3.2 XML schema shipped with odmlib, loaded without network access."""
    spec = importlib.util.find_spec("odmlib")  # its folder, without importing it (0.05 s of CPU)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("odmlib is needed for the ODM 1.3.2 schema", name="odmlib")
    base = Path(spec.origin).resolve().parent / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(base), parser))


#: libxml2's limits with lxml's ``huge_tree`` off (every ODM parse here): a longer attribute value or text node,
#: or deeper nesting, is refused as a ``limit`` problem instead of being built in memory
XML_NODE_LIMIT = 10_000_000
XML_DEPTH_LIMIT = 256
_LIMIT_NOTE = (
    f" (an attribute value or text node may hold at most about {XML_NODE_LIMIT:,} bytes and elements nest at"
    f" most {XML_DEPTH_LIMIT} deep: larger input is refused, not read)"
)


def _syntax_rule(type_name: str, message: str) -> str:
    text = message.lower()
    if "RESOURCE_LIMIT" in type_name or "xml_parse_huge" in text:
        return "limit"
    if "ENCODING" in type_name or "encoding" in text or "utf-8" in text:
        return "encoding"
    return "xml"


def syntax_problems(file: str, err: etree.XMLSyntaxError) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[int, str]] = set()
    for e in err.error_log:
        if e.domain_name == "SCHEMASV" or e.level_name == "WARNING":
            continue
        key = (e.line, e.message)
        if key in seen:
            continue
        seen.add(key)
        rule = _syntax_rule(e.type_name, e.message)
        note = _LIMIT_NOTE if rule == "limit" else ""
        out.append(problem(file, f"line {e.line}", "", "", rule, e.message.strip() + note))
    if not out:
        line, msg = xml_error(err)  # as text, never a bytes literal; the line once, in the record
        rule = _syntax_rule("", msg)
        note = _LIMIT_NOTE if rule == "limit" else ""
        out.append(problem(file, f"line {line}" if line else "", "", "", rule, msg + note))
    return out


def xsd_problems(file: str, entries: Iterable[Any], path: Path | None) -> list[Problem]:
    """XSD problems; streaming validation gives no lines, so a small file is validated again as a tree."""
    msgs = [e for e in entries if e.domain_name == "SCHEMASV"]
    if not msgs:
        return []
    if path is not None and path.stat().st_size <= LINE_LOOKUP_LIMIT:
        parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=False)
        try:
            tree = etree.parse(str(path), parser)
        except etree.XMLSyntaxError:
            tree = None
        if tree is not None:
            xsd = odm_xsd()
            if not xsd.validate(tree):
                return [
                    problem(file, f"line {e.line}", "", "", "xsd", e.message.strip()) for e in list(xsd.error_log)[:200]
                ]
    return [problem(file, "", "", "", "xsd", e.message.strip()) for e in msgs[:200]]


@dataclass(frozen=True)
class Root:
    tag: str
    nsmap: dict[str | None, str]
    encoding: str
    doctype: str


#: the longest run of bytes without a "<" that is parsed at all: a text node or a start tag longer than this holds
#: a value over libxml2's limit anyway, and libxml2's push parser would first buffer all of it (several times its
#: size in memory) before saying so; refused by a byte scan of :data:`GAP_BLOCK` at a time, memory flat
MAX_MARKUP_GAP = 16 * 1024 * 1024
GAP_BLOCK = 1 << 24


@lru_cache(maxsize=8)
def _first_gap(file: str, mtime_ns: int, size: int, limit: int) -> int | None:
    """Offset after the first "<" (or the start) that is followed by more than ``limit`` bytes without one."""
    last = -1
    with open(file, "rb") as fh:
        base = 0
        while block := fh.read(GAP_BLOCK):
            marks = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 60) + base
            bounds = np.concatenate(([last], marks))
            over = np.flatnonzero(np.diff(bounds) - 1 > limit)
            if len(over):
                return int(bounds[over[0]]) + 1
            if len(marks):
                last = int(marks[-1])
            base += len(block)
    return last + 1 if size - last - 1 > limit else None


def markup_gap_problems(path: Path) -> list[Problem]:
    """A ``limit`` problem when the file has a run of more than :data:`MAX_MARKUP_GAP` bytes without markup."""
    try:
        st = path.stat()
    except OSError:
        return []
    at = _first_gap(str(path), st.st_mtime_ns, st.st_size, MAX_MARKUP_GAP)
    if at is None:
        return []
    with path.open("rb") as fh:
        line = 1 + sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(min(GAP_BLOCK, at - fh.tell())), b""))
    msg = (
        f"more than {MAX_MARKUP_GAP:,} bytes without markup (a value or text node over the limit of about"
        f" {XML_NODE_LIMIT:,} bytes, or not XML): refused before parsing"
    )
    return [problem(str(path), f"line {line}", "", "", "limit", msg)]


def sniff(path: Path) -> Root | None:
    """The root element and prolog of an XML file, or None when it does not start as XML (or holds a run of
    text over the limit: :func:`markup_gap_problems`)."""
    if markup_gap_problems(path):
        return None
    try:
        for _ev, el in etree.iterparse(
            str(path), events=("start",), no_network=True, resolve_entities=False, huge_tree=False, load_dtd=False
        ):
            info = el.getroottree().docinfo
            return Root(str(el.tag), dict(el.nsmap), str(info.encoding or "UTF-8"), str(info.doctype or ""))
    except etree.XMLSyntaxError:
        return None
    return None


def sniff_root(path: Path) -> str | None:
    """The root element's ``{namespace}name`` of an XML file, or None when it does not start as XML."""
    root = sniff(path)
    return root.tag if root else None


def lxml_pass(
    path: Path, schema: FormSchema, validate: bool, collector: Collector | None
) -> tuple[list[Problem], bool]:
    """One streaming lxml parse: well-formedness, XSD (when ``validate``), metadata and study checks, and
    with a ``collector`` the subjects too. Returns (problems, whether the XML was well-formed)."""
    file = str(path)
    gap = markup_gap_problems(path)
    if gap:
        return gap, False
    vocab = Vocab.build(schema)
    problems: list[Problem] = []
    # no resolve_entities=False here: together with a schema it makes lxml swallow parse errors at the end
    # of a truncated file. Entities cannot be declared anyway: read_odm refuses documents with a DOCTYPE.
    kw: dict[str, Any] = {
        "events": ("end",),
        "tag": (TAG_MDV, TAG_SUBJECT),
        "no_network": True,
        "load_dtd": False,
        "huge_tree": False,
        "collect_ids": False,
    }
    if validate:
        kw["schema"] = odm_xsd()
    etree.clear_error_log()
    it = etree.iterparse(str(path), **kw)
    study: tuple[str | None, str | None] | None = None
    mdv_oids: list[str] = []
    try:
        for _ev, el in it:
            if el.tag == TAG_SUBJECT:
                parent = el.getparent()
                here = (parent.get("StudyOID"), parent.get("MetaDataVersionOID"))
                if here != study:
                    study = here
                    problems += check_clinical(here, schema, mdv_oids, file, parent.sourceline)
                if el.get("SubjectKey") is None:
                    problems.append(
                        problem(
                            file,
                            f"line {el.sourceline}",
                            "SUBJID",
                            "",
                            "odm-structure",
                            "SubjectData without SubjectKey",
                        )
                    )
                elif collector is not None:
                    collector.add_subject(etree.tostring(el, encoding="unicode", with_tail=False), el.sourceline)
            else:
                mdv_oids.append(el.get("OID") or "")
                problems += check_metadata(el, vocab, file)
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as err:
        entries = list(err.error_log)
        if not entries or any(e.domain_name != "SCHEMASV" for e in entries):
            return problems + syntax_problems(file, err), False
        return problems + xsd_problems(file, entries, path), True
    if validate:
        problems += xsd_problems(file, it.error_log, path)
    return problems, True


def check_clinical(
    here: tuple[str | None, str | None], schema: FormSchema, mdv_oids: list[str], file: str, line: int | None
) -> list[Problem]:
    study_oid, mdv = here
    out: list[Problem] = []
    where = f"line {line}" if line else ""
    if study_oid != schema.study.oid:
        out.append(
            problem(
                file,
                where,
                "",
                study_oid,
                "metadata",
                f"ClinicalData is for study {study_oid!r}, the schema is for {schema.study.oid!r}",
            )
        )
    if mdv_oids and mdv not in mdv_oids:
        out.append(
            problem(
                file,
                where,
                "",
                mdv,
                "metadata",
                f"ClinicalData refers to MetaDataVersion {mdv!r}, the file defines {', '.join(mdv_oids)}",
            )
        )
    return out
