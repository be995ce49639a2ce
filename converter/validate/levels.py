"""Which spec an SDTM package is checked against: the two levels of ``inoconv validate``.

* **Standard level** (always): the implementation guides' own rules (:mod:`converter.validate.standard_rules`)
  and the data rules - any package, whoever made it.
* **Spec level** (lengths, codelists, origins, labels the study declares), against, in this order:

  1. ``--spec DIR`` (a mappings folder with ``sdtm/`` and ``ct/``, or a folder of SDTM spec YAML files);
  2. the package's own ``define.xml``: when inoconv wrote it for the study of the configured specs (its
     ``SourceSystem`` is inoconv and its Study OID is the one of ``mappings/records/forms.yaml``), those specs,
     which are what the define.xml was made from (the cross-check with the define.xml still runs); any other
     define.xml is itself the spec (:func:`converter.io.define_check.crosscheck_define`);
  3. nothing: a package without define.xml and without ``--spec`` gets the standard level only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from converter.errors import InputError, SpecError, problem
from converter.spec.model import DatasetSpec, Terminology
from converter.validate.common import finding
from converter.validate.findings import Finding

DEFINE_NAME = "define.xml"


@dataclass
class SpecLevel:
    """The spec level chosen for a package: ``source`` says which (empty: none, standard level only)."""

    source: str = ""
    specs: dict[str, DatasetSpec] | None = None
    ct: Terminology | None = None
    define: Path | None = None
    notes: list[Finding] = field(default_factory=list)


def define_origin(path: Path) -> tuple[str, str]:
    """(ODM SourceSystem, Study OID) of a define.xml ("" where absent or not parseable): read from its start only."""
    from lxml import etree

    source, study = "", ""
    try:
        for event, el in etree.iterparse(str(path), events=("start",), no_network=True, resolve_entities=False):
            tag = etree.QName(el).localname
            if tag == "ODM":
                source = str(el.get("SourceSystem") or "")
            elif tag == "Study":
                study = str(el.get("OID") or "")
                break
            del event
    except (etree.XMLSyntaxError, OSError):
        pass
    return source, study


def load_spec_dir(folder: Path) -> tuple[dict[str, DatasetSpec], Terminology | None]:
    """The SDTM specs (and CT, when there is a ``ct/`` folder) of ``--spec DIR``; a bad spec is a SpecError."""
    from converter.sdtm.pipeline import load_sdtm_specs  # registers the SDTM rule vocabulary
    from converter.spec.loader import load_specs, load_terminology

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(problem(str(folder), "", "--spec", "", "spec", "not a folder (give a mappings folder or "
                                 "a folder of SDTM spec YAML files)"))  # fmt: skip
    if (folder / "records" / "forms.yaml").is_file() and (folder / "sdtm").is_dir():
        specs, ct, _ = load_sdtm_specs(folder)
        return specs, ct
    sdtm = folder / "sdtm" if (folder / "sdtm").is_dir() else folder
    if not any(sdtm.glob("*.yaml")):
        raise InputError(problem(str(folder), "", "--spec", "", "spec", "holds no SDTM spec (*.yaml) files"))
    ct_dir = next((d for d in (folder / "ct", folder.parent / "ct") if d.is_dir()), None)
    return load_specs(sdtm), load_terminology(ct_dir) if ct_dir is not None else None


def sdtm_spec_level(folder: Path, spec_dir: Path | None = None) -> SpecLevel:
    """The spec level for the SDTM package in ``folder`` (see the module doc)."""
    define = folder / DEFINE_NAME
    have_define = define.is_file()
    if spec_dir is not None:
        specs, ct = load_spec_dir(spec_dir)
        return SpecLevel(f"--spec {spec_dir}", specs, ct, define if have_define else None)
    if not have_define:
        msg = f"no {DEFINE_NAME} and no --spec: checked against SDTMIG 3.4 only (standard level)"
        return SpecLevel(notes=[finding("INO-DEFINE-003", "", message=msg)])
    source, study = define_origin(define)
    if source == "inoconv":
        from converter.sdtm.pipeline import load_sdtm_specs

        try:
            specs, ct, forms = load_sdtm_specs()
        except (SpecError, OSError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = f"SDTM specs/CT not loaded ({first}); the spec-based rules could not run"
            note = finding("INO-PKG-004", "", message=msg, severity="error")  # the define.xml is checked instead
            return SpecLevel(DEFINE_NAME, None, None, define, [note])
        if forms.study.oid == study:
            return SpecLevel(f"the specs of {study} ({DEFINE_NAME} made from them)", specs, ct, define)
    return SpecLevel(DEFINE_NAME, None, None, define)
