"""The Define-XML 2.1 stylesheet beside every define.xml, and ``define.html`` rendered with it.

**The stylesheet.** ``define2-1.xsl`` (package data beside this module) is the CDISC Define-XML v2.1 stylesheet by
Lex Jansen (CDISC Data Exchange Standards team), copied byte for byte from the PyPI package ``defineutils`` 0.2.1
(``defineutils/definehtml/define2-1.xsl``; sha256 in :data:`STYLESHEET_SHA256`). It is MIT licensed: the file
keeps its MIT copyright and permission notice in its header, every copy this module writes is that same file
with that header, and the licence as ``defineutils`` ships it is kept beside it in the source tree
(``define2-1.xsl.LICENSE``). We do not modify it; a newer release is taken by copying the file again and updating
the checksum.

**Why a pre-rendered define.html as well.** define.xml carries ``<?xml-stylesheet type="text/xsl"
href="define2-1.xsl"?>`` (written by :mod:`converter.io.define`), so an XSLT-capable viewer shows the tables.
Browsers no longer do that for a file opened from disk: Chromium treats every ``file:`` URL as its own origin and
refuses to load the stylesheet ("Unsafe attempt to load URL file:///.../define2-1.xsl from frame with URL
file:///.../define.xml"), and it reports XSLT processing instructions as deprecated, to be removed. The reviewer's
view therefore is ``define.html``: the same stylesheet applied here with lxml (libxslt, the XSLT 1.0 engine
browsers used), written beside define.xml. Its links to the ``.xpt`` files are the ``def:leaf`` hrefs, relative,
so they work from disk; its anchors are the stylesheet's (see :func:`dataset_anchor`, :func:`variable_anchor`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lxml import etree

from converter.io.xml_errors import describe_xml_error
from converter.io.xpt import atomic_file

STYLESHEET_NAME = "define2-1.xsl"
DEFINE_HTML_NAME = "define.html"
STYLESHEET_SOURCE = "defineutils 0.2.1 (PyPI): defineutils/definehtml/define2-1.xsl"
STYLESHEET_LICENSE = "MIT, Copyright (c) 2013-2019 Lex Jansen"
STYLESHEET_SHA256 = "2fb853af88371d200b84f8864505bd211be497b44c6525b11f0c72a2477aeb93"
ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
DEF_NS = "http://www.cdisc.org/ns/def/v2.1"


class DefineRenderError(Exception):
    """define.xml could not be rendered with the stylesheet (unreadable XML or an XSLT error)."""


@dataclass(frozen=True)
class DefineView:
    """What :func:`write_define_view` wrote beside one define.xml."""

    define: Path
    stylesheet: Path
    html: Path | None


def stylesheet_bytes() -> bytes:
    """The stylesheet as shipped (licence header included)."""
    return resources.files("converter.io").joinpath(STYLESHEET_NAME).read_bytes()


def write_stylesheet(folder: Path | str) -> Path:
    """Copy ``define2-1.xsl`` (unchanged, with its MIT notice) into ``folder``; returns its path."""
    target = Path(folder) / STYLESHEET_NAME
    data = stylesheet_bytes()
    if target.is_file() and target.read_bytes() == data:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as fh:
        fh.write(data)
    return target


@lru_cache(maxsize=1)
def _transform() -> etree.XSLT:
    return etree.XSLT(etree.fromstring(stylesheet_bytes()))


def render_define_html(define_xml: Path | str, params: Mapping[str, str | int] | None = None) -> bytes:
    """define.xml rendered by the stylesheet: an HTML document (bytes, UTF-8) as a browser would show it.

    ``params`` sets the stylesheet's parameters (``nCodeListItemDisplay``, ``displayMethodsTable``,
    ``displayCommentsTable``, ``displayPrefix``, ``displayLengthDFormatSD``).
    """
    path = Path(define_xml)
    try:
        doc = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True))
    except etree.XMLSyntaxError as exc:
        raise DefineRenderError(f"{path}: cannot read define.xml: {describe_xml_error(exc)}") from exc
    except OSError as exc:
        raise DefineRenderError(f"{path}: cannot read define.xml: {exc.strerror or exc}") from exc
    xslt_params = {k: etree.XSLT.strparam(v) if isinstance(v, str) else str(int(v)) for k, v in (params or {}).items()}
    transform = _transform()
    try:
        result = transform(doc, **xslt_params)
    except etree.XSLTApplyError as exc:
        raise DefineRenderError(f"{path}: the stylesheet failed: {exc}") from exc
    errors = [str(e) for e in transform.error_log if e.level_name in ("ERROR", "FATAL")]
    out = bytes(result)
    if errors or not out.strip():
        raise DefineRenderError(f"{path}: the stylesheet failed: {'; '.join(errors) or 'empty output'}")
    return out.replace(b"</head>", VIEW_CSS + b"</head>", 1)


#: added to the rendered page, after the stylesheet's own CSS (the stylesheet itself is not modified): its menu
#: does not wrap (``#menu {white-space: nowrap}``, 20% wide), which cut a long study name off at the right
VIEW_CSS = (
    b'<style type="text/css">/* inoconv */ #menu .study-name {display: block; white-space: normal; '
    b"overflow-wrap: anywhere;}</style>\n"
)


#: define.xml bytes (SHA-256) -> their rendering, the last few: ``inoconv run`` renders each package's define.html
#: when the package is written and again for the run's view (:func:`write_define_views`), from the same bytes
_RENDERED: dict[bytes, bytes] = {}
_RENDERED_KEEP = 4


def write_define_html(define_xml: Path | str, out: Path | str | None = None) -> Path:
    """Write ``define.html`` (default: beside define.xml, named after it) rendered with the stylesheet.

    The same define.xml bytes rendered before in this process are not rendered again (the stylesheet is fixed);
    a target that already holds the rendering is left as it is."""
    src = Path(define_xml)
    target = Path(out) if out is not None else src.with_suffix(".html")
    try:
        key: bytes | None = hashlib.sha256(src.read_bytes()).digest()
    except OSError:
        key = None  # render_define_html says what is wrong with the file
    html = _RENDERED.get(key) if key is not None else None
    if html is None:
        html = render_define_html(src)
        if key is not None:
            while len(_RENDERED) >= _RENDERED_KEEP:
                del _RENDERED[next(iter(_RENDERED))]
            _RENDERED[key] = html
    elif target.is_file() and target.read_bytes() == html:
        return target
    with atomic_file(target) as fh:
        fh.write(html)
    return target


def write_define_view(define_xml: Path | str, *, html: bool = True) -> DefineView:
    """The stylesheet beside ``define_xml`` and, with ``html`` (default), the pre-rendered ``define.html``."""
    src = Path(define_xml)
    if not src.is_file():
        raise DefineRenderError(f"{src}: no such define.xml")
    xsl = write_stylesheet(src.parent)
    page = write_define_html(src) if html else None
    return DefineView(define=src, stylesheet=xsl, html=page)


def write_define_views(root: Path | str, *, html: bool = True) -> list[DefineView]:
    """:func:`write_define_view` for ``root/define.xml`` and each ``root/*/define.xml`` (an ``inoconv run``
    folder: ``sdtm/``, ``adam/``)."""
    base = Path(root)
    found = [base / "define.xml", *sorted(base.glob("*/define.xml"))]
    return [write_define_view(p, html=html) for p in found if p.is_file()]


def dataset_anchor(item_group_oid: str) -> str:
    """The id the stylesheet gives a dataset's variable table (``IG.`` + the ItemGroupDef OID)."""
    return f"IG.{item_group_oid}"


def variable_anchor(item_group_oid: str, item_oid: str) -> str:
    """The id the stylesheet gives a variable's row in its dataset's table (``ItemGroupOID.ItemOID``)."""
    return f"{item_group_oid}.{item_oid}"


@dataclass(frozen=True)
class DefineIndex:
    """What a page linking into define.xml needs: the standard, the study and the stylesheet's anchors."""

    standard: str  # the implementation guide, e.g. "SDTMIG 3.4" ("" when define.xml names none)
    study_name: str
    datasets: dict[str, tuple[str, dict[str, str]]]  # name -> (dataset anchor, {variable -> variable anchor})

    def anchor(self, dataset: str, variable: str = "") -> str | None:
        """The anchor of the variable's row (when given and defined), else of the dataset's table, else None."""
        entry = self.datasets.get(dataset.upper())
        if entry is None:
            return None
        return entry[1].get(variable.upper(), entry[0]) if variable else entry[0]


def define_index(define_xml: Path | str) -> DefineIndex:
    """Read define.xml for its standard, study name and the anchors the stylesheet renders.

    Anchors are those :func:`render_define_html` (and a browser applying the stylesheet) produce. A missing or
    unreadable file gives an empty index.
    """
    try:
        root = etree.parse(str(define_xml), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except (OSError, etree.XMLSyntaxError):
        return DefineIndex("", "", {})
    ns = {"odm": ODM_NS, "def": DEF_NS}
    names = {str(i.get("OID")): str(i.get("Name")) for i in root.iterfind(".//odm:ItemDef", ns)}
    datasets: dict[str, tuple[str, dict[str, str]]] = {}
    for igd in root.iterfind(".//odm:ItemGroupDef", ns):
        ig_oid, name = igd.get("OID"), igd.get("Name")
        if not ig_oid or not name:
            continue
        variables: dict[str, str] = {}
        for ref in igd.iterfind("odm:ItemRef", ns):
            item_oid = ref.get("ItemOID")
            if item_oid and item_oid in names:
                variables.setdefault(names[item_oid].upper(), variable_anchor(ig_oid, item_oid))
        datasets[name.upper()] = (dataset_anchor(ig_oid), variables)
    ig = root.find(".//def:Standards/def:Standard[@Type='IG']", ns)
    standard = " ".join(x for x in (ig.get("Name"), ig.get("Version")) if x) if ig is not None else ""
    study = root.findtext(".//odm:GlobalVariables/odm:StudyName", default="", namespaces=ns)
    return DefineIndex(standard, study.strip(), datasets)


def define_anchors(define_xml: Path | str) -> dict[str, tuple[str, dict[str, str]]]:
    """Dataset name -> (dataset anchor, {variable name -> variable anchor}), read from define.xml itself."""
    return define_index(define_xml).datasets


def stylesheet_checksum() -> str:
    return hashlib.sha256(stylesheet_bytes()).hexdigest()
