"""Validate a folder: find out what it holds, read it, run the rule families that apply.

A folder is one of

* an **SDTM** package: ``*.xpt`` and/or Dataset-JSON files (``dm.xpt``, ``ae.json``, ...) and ``define.xml``;
* an **ADaM** package: the same, with ADaM datasets (names starting with ``AD``; ADSL among them);
* **FHIR** output: ``*.ndjson`` (one resource per line) or ``*.json`` resources / Bundles;
* the whole ``inoconv run`` output: subfolders ``sdtm/``, ``adam/``, ``fhir/`` (each validated as above, and
  the SDTM -> FHIR -> SDTM round trip reported in the same table).

The round trip of ``sdtm/`` goes through the FHIR delivered beside it when ``fhir/`` is ``inoconv fhir``'s output
(its ``bundles/`` or ``ndjson/``): those files, as the FHIR check read them, are converted back and compared with
``sdtm/``, so a loss in the delivered files (or FHIR written from other SDTM) is found. Otherwise (an SDTM folder
alone, as ``inoconv roundtrip`` takes it) the round trip builds its FHIR in memory, serialises and reads it back.

Every deliverable found is read: when a dataset comes as both ``xx.xpt`` and ``xx.json``, the rules run on the
XPT (the submission format) and the Dataset-JSON is checked against the Dataset-JSON 1.1 rules and compared with
the XPT (:mod:`converter.validate.pairs`). Each finding names the file it is about (relative to the folder
validated). The Define-XML, FHIR and round-trip checks are called directly (:mod:`converter.io.define`,
:func:`converter.fhir.resource_checks.validate_fhir_folder`, :func:`converter.fhir.roundtrip.roundtrip_folder`);
a check that fails to run is an error finding, never a silent skip.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from converter.errors import InputError, SpecError
from converter.spec.model import DatasetSpec
from converter.validate.common import DatasetInfo, finding, info_from_meta
from converter.validate.findings import Finding
from converter.validate.pairs import check_dataset_json, compare_pair

DATASET_SUFFIXES = (".xpt", ".json", ".ndjson")
DEFINE_NAME = "define.xml"
_HEAD_LIMIT = 16 * 1024 * 1024  # the longest first line of an .ndjson file read to tell what it is


@dataclass
class Package:
    """The datasets of one folder, read back to the data contract, with what the files say about them.

    ``files``: the file each dataset's rules ran on (XPT where there is one); ``root``: the folder validated, that
    finding files are named relative to.
    """

    folder: Path
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    info: dict[str, DatasetInfo] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    root: Path | None = None

    @property
    def is_adam(self) -> bool:
        names = list(self.frames)
        return bool(names) and ("ADSL" in names or all(n.startswith("AD") for n in names))

    def name_of(self, path: Path) -> str:
        """``path`` as findings name it: relative to the folder validated."""
        return relative(path, self.root or self.folder)

    def with_files(self, findings: Iterable[Finding]) -> list[Finding]:
        """``findings`` with the file of their dataset filled in where they name none."""
        out: list[Finding] = []
        for f in findings:
            path = self.files.get(f.dataset) if not f.file else None
            out.append(dataclasses.replace(f, file=self.name_of(path)) if path is not None else f)
        return out


def relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- what is in a folder ------------------------------------------------------------------------------------------
_KEYS_KEPT = 4096  # files whose top-level keys are remembered (per process; the oldest forgotten first)
_keys_seen: OrderedDict[tuple[str, int, int, int], frozenset[str] | None] = OrderedDict()
_keys_lock = threading.Lock()


def _json_keys(path: Path) -> frozenset[str] | None:
    """The top-level keys of the first JSON object of a .json/.ndjson file (whole document for .json), or None if
    it is not a JSON object. Remembered per process for the file as it is (path, size, modification time, inode):
    one validation asks this of every file several times (:func:`detect`, :func:`all_dataset_files`), and
    ``inoconv run`` validates the same folder in several calls."""
    try:
        st = path.stat()
    except OSError:
        return None
    stamp = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _keys_lock:
        if stamp in _keys_seen:
            _keys_seen.move_to_end(stamp)
            return _keys_seen[stamp]
    try:
        if path.suffix.lower() == ".ndjson":
            with path.open("rb") as fh:
                line = fh.readline(_HEAD_LIMIT)  # bounded: a first line of gigabytes is not read whole to sniff it
            doc = orjson.loads(line)
        else:
            doc = orjson.loads(path.read_bytes())
    except (orjson.JSONDecodeError, OSError):
        doc = None
    keys = frozenset(doc) if isinstance(doc, dict) else None
    with _keys_lock:
        _keys_seen[stamp] = keys
        if len(_keys_seen) > _KEYS_KEPT:
            _keys_seen.popitem(last=False)
    return keys


def is_fhir_file(path: Path) -> bool:
    keys = _json_keys(path) if path.suffix.lower() in (".json", ".ndjson") else None
    return keys is not None and "resourceType" in keys


def is_dataset_json(path: Path) -> bool:
    keys = _json_keys(path) if path.suffix.lower() in (".json", ".ndjson") else None
    return keys is not None and "resourceType" not in keys and ("columns" in keys or "datasetJSONVersion" in keys)


def fhir_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*")) if p.is_file() and is_fhir_file(p)]


def _has_fhir_file(folder: Path) -> bool:
    """``bool(fhir_files(folder))``, reading files only up to the first FHIR one (a run's bundles/ holds one file
    per subject, each read whole to tell what it is)."""
    return any(p.is_file() and is_fhir_file(p) for p in sorted(folder.glob("*")))


def dataset_files(folder: Path) -> dict[str, Path]:
    """Dataset name -> file; XPT preferred (the submission format), Dataset-JSON where no XPT exists."""
    return {name: paths[0] for name, paths in all_dataset_files(folder).items()}


def all_dataset_files(folder: Path, strict: bool = True) -> dict[str, list[Path]]:
    """Dataset name -> every file that delivers it: the XPT first, then Dataset-JSON (``.json``, ``.ndjson``).

    ``strict=False`` (reading a package): also the ``.json`` files beside an XPT of the same name and those that
    are not JSON at all, so that a broken Dataset-JSON is reported rather than passed over."""
    out: dict[str, list[Path]] = {}
    for p in sorted(folder.glob("*.xpt")):
        out.setdefault(p.stem.upper(), []).append(p)
    for p in sorted(folder.glob("*.json")) + sorted(folder.glob("*.ndjson")):
        if is_dataset_json(p) or (not strict and (p.stem.upper() in out or _json_keys(p) is None)):
            out.setdefault(p.stem.upper(), []).append(p)
    return dict(sorted(out.items()))


def detect(folder: Path) -> dict[str, Path]:
    """Family ("sdtm", "adam", "fhir") -> folder holding it."""
    parts: dict[str, Path] = {}
    for sub in ("sdtm", "adam", "fhir"):
        p = folder / sub
        if p.is_dir():
            kinds = detect(p)
            if sub in kinds:
                parts[sub] = p
            elif kinds:
                parts.update({k: v for k, v in kinds.items() if k not in parts})
    if parts:
        return parts
    names = list(dataset_files(folder))
    if names:
        adam = "ADSL" in names or all(n.startswith("AD") for n in names)
        parts["adam" if adam else "sdtm"] = folder
    if _has_fhir_file(folder) or any(
        (folder / s).is_dir() and _has_fhir_file(folder / s) for s in ("bundles", "ndjson")
    ):
        parts["fhir"] = folder  # resources, or the bundles/ and ndjson/ that inoconv fhir writes
    return parts


# --- reading ----------------------------------------------------------------------------------------------------
def _read(path: Path) -> tuple[pd.DataFrame, DatasetInfo]:
    if path.suffix.lower() == ".xpt":
        from converter.io.xpt import read_xpt

        df, meta = read_xpt(path)
    else:
        from converter.io.datasetjson import read_dataset_json

        df, meta = read_dataset_json(path)
    return df, info_from_meta(meta)


def read_package(folder: Path, root: Path | None = None) -> Package:
    """Every dataset file of ``folder``; a dataset in both formats is read twice and the two compared."""
    from converter.io.package import known_same_frames

    pkg = Package(folder=folder, root=root)
    for name, paths in all_dataset_files(folder, strict=False).items():
        read: dict[Path, tuple[pd.DataFrame, DatasetInfo]] = {}
        for path in paths:
            where = pkg.name_of(path)
            if path.suffix.lower() != ".xpt":
                pkg.findings += check_dataset_json(path, name, where)
            try:
                read[path] = _read(path)
            except InputError as exc:  # a broken file is a finding, not a crash
                for p in exc.problems:
                    msg = f"{p.record + ': ' if p.record else ''}{p.message}"
                    pkg.findings.append(finding("INO-PKG-002", name, message=msg, file=where))
            except Exception as exc:
                msg = f"{type(exc).__name__}: {exc}"
                pkg.findings.append(finding("INO-PKG-002", name, message=msg, file=where))
        if not read:
            continue
        first = next(iter(read))
        pkg.frames[name], pkg.info[name] = read[first]
        pkg.files[name] = first
        for other in list(read)[1:]:
            if first.suffix.lower() == ".xpt":
                equal = known_same_frames(first, other)  # this process wrote and verified these very bytes
                pkg.findings += compare_pair(name, read[first], read[other], pkg.name_of(other), known_equal=equal)
    return pkg


def _load_adam_specs() -> tuple[dict[str, DatasetSpec] | None, list[Finding]]:
    from converter.adam.pipeline import read_adam_specs  # registers the ADaM rule vocabulary
    from converter.errors import SpecError
    from converter.paths import mappings_dir

    folder = mappings_dir() / "adam"
    if not folder.is_dir() or not any(folder.glob("*.yaml")):
        return None, [finding("INO-PKG-004", "", message="no ADaM specs under mappings/adam; checked without")]
    try:
        return read_adam_specs(folder), []
    except (SpecError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"ADaM specs not loaded ({first}); the spec-based rules could not run"
        return None, [finding("INO-PKG-004", "", message=msg, severity="error")]


# --- Define-XML ---------------------------------------------------------------------------------------------------
def check_define(pkg: Package, specs: Mapping[str, DatasetSpec] | None) -> list[Finding]:
    from converter.io.define import crosscheck_define, validate_define

    path = pkg.folder / DEFINE_NAME
    if not path.exists():
        return [finding("INO-DEFINE-003", "", message=f"no {DEFINE_NAME} in {pkg.folder}")]
    where = pkg.name_of(path)
    try:
        out = [finding("INO-DEFINE-001", "", message=str(m), file=where) for m in validate_define(path)]
    except Exception as exc:  # the check could not run: an error, never a pass
        return [finding("INO-DEFINE-001", "", message=f"could not be checked: {type(exc).__name__}: {exc}", file=where)]
    pairs: dict[str, tuple[pd.DataFrame, DatasetSpec | None]]
    if specs is None:  # no spec given: the define.xml is the spec (lengths, codelists, labels, variables)
        pairs = {n: (df, None) for n, df in pkg.frames.items()}
    else:
        pairs = {n: (df, specs[n]) for n, df in pkg.frames.items() if n in specs}
    if pairs:
        try:  # each frame as read from its file (check_define runs before the rules see them)
            problems = crosscheck_define(path, pairs, {n: pkg.files[n] for n in pairs if n in pkg.files})
        except Exception as exc:
            problems = [f"cross-check failed: {type(exc).__name__}: {exc}"]
        for p in problems:
            text = str(p)
            ds = text.split(":", 1)[0].split(".", 1)[0] if ":" in text else ""
            out.append(finding("INO-DEFINE-002", ds if ds in pkg.frames else "", message=text, file=where))
    return out


# --- FHIR and round trip -------------------------------------------------------------------------------------------
#: the rule of a FHIR input problem (converter.fhir) -> the finding's rule id
FHIR_RULES = {
    "fhir-r4-model": "INO-FHIR-001",
    "fhir-reference": "INO-FHIR-002",
    "fhir-identifier": "INO-FHIR-003",
    "fhir-code": "INO-FHIR-004",
    "fhir-code-system-urn": "INO-FHIR-004",
    "fhir-code-system": "INO-FHIR-008",
    "fhir-code-missing": "INO-FHIR-009",
    "fhir-profile": "INO-FHIR-010",
    "fhir-profile-unknown": "INO-FHIR-011",
    "fhir-duplicate-id": "INO-FHIR-007",
    "fhir-duplicate-subject": "INO-FHIR-003",
    "json": "INO-FHIR-006",
    "json-depth": "INO-FHIR-006",
    "line-length": "INO-FHIR-006",
    "file-size": "INO-FHIR-006",
    "read": "INO-FHIR-006",
    "fhir-input": "INO-FHIR-006",
    "control-character": "INO-FHIR-006",
}


def check_fhir(folder: Path, root: Path | None = None, strict: bool = False) -> list[Finding]:
    """R4 validation (the fast structure check; ``strict``: the R4B models), references, identifiers and ids of
    every resource under ``folder``."""
    return _check_fhir(folder, root, strict)[0]


def _check_fhir(folder: Path, root: Path | None, strict: bool) -> tuple[list[Finding], list[Any] | None]:
    """(:func:`check_fhir`'s findings, the resources read: None when the check could not run)."""
    from converter.fhir.resource_checks import read_and_validate

    root = root or folder
    try:
        problems, items = read_and_validate(folder, strict)
    except Exception as exc:  # the check could not run: an error finding, not a pass
        msg = f"FHIR validation could not run: {type(exc).__name__}: {exc}"
        return [finding("INO-FHIR-005", "", message=msg, file=relative(folder, root))], None
    out: list[Finding] = []
    for p in problems:
        where = ":".join(x for x in (p.record, p.field) if x)
        value = f" (value '{p.value}')" if p.value else ""
        msg = f"{where + ': ' if where else ''}{p.message}{value}"
        rule = FHIR_RULES.get(p.rule, "INO-FHIR-005")
        out.append(finding(rule, "", p.field, msg, file=relative(folder / p.file, root)))
    return out, items


def written_fhir(parts: Mapping[str, Path]) -> Path | None:
    """The folder of FHIR written from ``parts["sdtm"]`` by ``inoconv fhir`` (its ``bundles/`` or ``ndjson/``), in
    a folder of its own beside it (as ``inoconv run`` writes them); None when there is none."""
    fhir, sdtm = parts.get("fhir"), parts.get("sdtm")
    if fhir is None or sdtm is None or fhir == sdtm:
        return None
    return fhir if (fhir / "bundles").is_dir() or (fhir / "ndjson").is_dir() else None


def check_roundtrip(
    sdtm: Path, pkg: Package | None = None, fhir: Path | None = None, items: list[Any] | None = None
) -> list[Finding]:
    """SDTM -> FHIR -> SDTM on ``sdtm``: every value that came back different, every row missing, every dataset
    or variable not carried and not listed as not mapped; a round trip that cannot run is an error finding.

    ``fhir``: the FHIR written from ``sdtm`` (:func:`written_fhir`): the round trip converts what was delivered
    back (``items``: its resources, when the FHIR check read them) instead of a FHIR it builds itself."""
    from converter.fhir.roundtrip import roundtrip_folder

    name = pkg.name_of(sdtm) if pkg is not None else str(sdtm)
    try:
        rt = roundtrip_folder(sdtm) if fhir is None else roundtrip_folder(sdtm, fhir, items)
    except InputError as exc:
        return [finding("INO-RT-002", "", message=f"round trip could not read {p}", file=name) for p in exc.problems]
    except SpecError as exc:
        msg = "round trip could not run, the FHIR specs are invalid: " + "; ".join(exc.messages[:3])
        return [finding("INO-RT-002", "", message=msg, file=name)]
    except Exception as exc:
        return [finding("INO-RT-002", "", message=f"round trip failed: {type(exc).__name__}: {exc}", file=name)]
    out: list[Finding] = []
    for f in rt.findings():
        rule = {"roundtrip-not-carried": "INO-RT-003"}.get(f["rule"], "INO-RT-001")
        ds = f["dataset"] if f["rule"].startswith("roundtrip-") else ""
        out.append(finding(rule, ds, f["variable"], f["message"], file="" if ds else name))
    return pkg.with_files(out) if pkg is not None else out


# --- the whole folder -----------------------------------------------------------------------------------------------
def merge_levels(specific: list[Finding], standard: list[Finding]) -> list[Finding]:
    """The spec level's findings, then the standard level's that say something the spec level did not (same rule,
    dataset, variable and row: the spec level's message is kept)."""
    seen = {(f.rule_id, f.dataset, f.variable, f.row) for f in specific}
    return specific + [f for f in standard if (f.rule_id, f.dataset, f.variable, f.row) not in seen]


#: the parts of a validation, in the order of their findings
FAMILIES = ("sdtm", "adam", "fhir", "roundtrip")


def validate_folder(
    folder: Path,
    *,
    roundtrip: bool = True,
    meddra: Path | None = None,
    spec_dir: Path | None = None,
    families: tuple[str, ...] = FAMILIES,
    strict: bool = False,
) -> list[Finding]:
    """Every rule family that applies to ``folder``. SDTM: the standard level always; the spec level against
    ``spec_dir``, else the package's define.xml, else none (:mod:`converter.validate.levels`). ADaM: the standard
    level (ADaMIG 1.3, OCCDS 1.1, CDISC CT) and the ADaM rules with the project's ADaM specs. FHIR: the fast
    structure check (``strict``: the R4B models), references, identifiers, codings.

    ``families``: only these of :data:`FAMILIES` (``inoconv run`` checks FHIR and the round trip beside the rest).
    The findings of calls with families that share none, put together in the order of :data:`FAMILIES`, are those
    of one call with them all; a folder with nothing to validate is reported by the call that has ``sdtm``."""
    from converter.validate.adam_rules import run_adam_rules
    from converter.validate.levels import sdtm_spec_level
    from converter.validate.sdtm_rules import run_sdtm_rules
    from converter.validate.standard_rules import run_standard_rules

    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown validation families {unknown}; known: {', '.join(FAMILIES)}")
    parts = detect(folder)
    if not parts:
        if "sdtm" not in families:
            return []
        return [finding("INO-PKG-001", "", message=f"{folder}: no SDTM/ADaM datasets or FHIR resources found")]
    out: list[Finding] = []
    sdtm_pkg: Package | None = None
    if "sdtm" in parts and "sdtm" in families:
        sdtm_pkg = read_package(parts["sdtm"], folder)
        level = sdtm_spec_level(parts["sdtm"], spec_dir)
        out += sdtm_pkg.findings + level.notes
        define = check_define(sdtm_pkg, level.specs) if level.define is not None else []  # on the frames as read
        standard = run_standard_rules(sdtm_pkg.frames, sdtm_pkg.info, level.ct)  # the IG's rules
        specific = run_sdtm_rules(sdtm_pkg.frames, level.specs, level.ct, sdtm_pkg.info, meddra)  # data (+ spec)
        out += sdtm_pkg.with_files(merge_levels(specific, standard)) + define
    if "adam" in parts and "adam" in families:
        adam_pkg = read_package(parts["adam"], folder)
        adam_specs, notes = _load_adam_specs()
        out += adam_pkg.findings + notes
        adam_define = check_define(adam_pkg, adam_specs)  # on the frames as read
        adam_standard = run_standard_rules(adam_pkg.frames, adam_pkg.info)  # ADaMIG 1.3 / OCCDS 1.1 / CT
        adam_specific = run_adam_rules(adam_pkg.frames, adam_specs, adam_pkg.info)
        out += adam_pkg.with_files(merge_levels(adam_specific, adam_standard)) + adam_define
    was = gc.isenabled()
    gc.disable()  # the resources the FHIR check reads live on into the round trip: a collection would rescan them
    try:
        items: list[Any] | None = None  # the FHIR check's resources, converted back by the round trip
        if "fhir" in parts and "fhir" in families:
            found, items = _check_fhir(parts["fhir"], folder, strict)
            out += found
        if roundtrip and "sdtm" in parts and "roundtrip" in families:
            pkg = sdtm_pkg or _files_only(parts["sdtm"], folder)
            out += check_roundtrip(parts["sdtm"], pkg, written_fhir(parts), items)
        del items
    finally:
        if was:
            gc.enable()
    return out


def _files_only(folder: Path, root: Path) -> Package:
    """The package as :func:`read_package` names its files (the first file of each dataset), nothing read: what
    the round trip's findings need when the SDTM rules run in another call. (A first file that cannot be read
    stops the round trip itself, whose findings then name the folder.)"""
    files = {name: paths[0] for name, paths in all_dataset_files(folder, strict=False).items()}
    return Package(folder=folder, root=root, files=files)
