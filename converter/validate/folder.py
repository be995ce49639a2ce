"""Validate a folder: find out what it holds, read it, run the rule families that apply.

A folder is one of

* an **SDTM** package: ``*.xpt`` and/or Dataset-JSON files (``dm.xpt``, ``ae.json``, ...) and ``define.xml``;
* an **ADaM** package: the same, with ADaM datasets (names starting with ``AD``; ADSL among them);
* **FHIR** output: ``*.ndjson`` (one resource per line) or ``*.json`` resources / Bundles;
* the whole ``inoconv run`` output: subfolders ``sdtm/``, ``adam/``, ``fhir/`` (each validated as above, and
  the SDTM -> FHIR -> SDTM round trip reported in the same table).

Readers and the Define-XML / FHIR checkers live elsewhere (``converter.io``, ``converter.fhir``); they are imported
when needed, and a family whose module is absent is reported as skipped (INO-PKG-003, info), never as passed.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from converter.spec.model import DatasetSpec, Terminology
from converter.validate.common import DatasetInfo, finding, info_from_meta
from converter.validate.findings import Finding

DATASET_SUFFIXES = (".xpt", ".json", ".ndjson")
DEFINE_NAME = "define.xml"


@dataclass
class Package:
    """The datasets of one folder, read back to the data contract, with what the files say about them."""

    folder: Path
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    info: dict[str, DatasetInfo] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    @property
    def is_adam(self) -> bool:
        names = list(self.frames)
        return bool(names) and ("ADSL" in names or all(n.startswith("AD") for n in names))


# --- what is in a folder ------------------------------------------------------------------------------------------
def _json_head(path: Path) -> dict[str, Any] | None:
    """The first JSON object of a .json/.ndjson file (whole document for .json), or None if not JSON."""
    try:
        if path.suffix.lower() == ".ndjson":
            with path.open("rb") as fh:
                line = fh.readline()
            doc = orjson.loads(line)
        else:
            doc = orjson.loads(path.read_bytes())
    except (orjson.JSONDecodeError, OSError):
        return None
    return doc if isinstance(doc, dict) else None


def is_fhir_file(path: Path) -> bool:
    head = _json_head(path) if path.suffix.lower() in (".json", ".ndjson") else None
    return head is not None and "resourceType" in head


def is_dataset_json(path: Path) -> bool:
    head = _json_head(path) if path.suffix.lower() in (".json", ".ndjson") else None
    return head is not None and "resourceType" not in head and ("columns" in head or "datasetJSONVersion" in head)


def fhir_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*")) if p.is_file() and is_fhir_file(p)]


def dataset_files(folder: Path) -> dict[str, Path]:
    """Dataset name -> file; XPT preferred (the submission format), Dataset-JSON where no XPT exists."""
    out: dict[str, Path] = {}
    for p in sorted(folder.glob("*.xpt")):
        out[p.stem.upper()] = p
    for p in sorted(folder.glob("*.json")) + sorted(folder.glob("*.ndjson")):
        if p.stem.upper() not in out and is_dataset_json(p):
            out[p.stem.upper()] = p
    return out


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
    if fhir_files(folder):
        parts["fhir"] = folder
    return parts


# --- reading ----------------------------------------------------------------------------------------------------
def read_package(folder: Path) -> Package:
    pkg = Package(folder=folder)
    for name, path in dataset_files(folder).items():
        try:
            if path.suffix.lower() == ".xpt":
                from converter.io.xpt import read_xpt

                df, meta = read_xpt(path)
            else:
                from converter.io.datasetjson import read_dataset_json

                df, meta = read_dataset_json(path)
        except ImportError as exc:
            pkg.findings.append(finding("INO-PKG-003", name, message=f"no reader for {path.name}: {exc}"))
            continue
        except Exception as exc:  # a broken file is a finding, not a crash
            pkg.findings.append(finding("INO-PKG-002", name, message=f"{path.name}: {type(exc).__name__}: {exc}"))
            continue
        pkg.frames[name] = df
        pkg.info[name] = info_from_meta(meta)
        pkg.files[name] = path
    return pkg


def _load_sdtm_specs() -> tuple[dict[str, DatasetSpec] | None, Terminology | None, list[Finding]]:
    from converter.errors import SpecError
    from converter.sdtm.pipeline import load_sdtm_specs

    try:
        specs, ct, _ = load_sdtm_specs()
    except (SpecError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, None, [finding("INO-PKG-004", "", message=f"SDTM specs/CT not loaded ({first}); checked without")]
    return specs, ct, []


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
        return None, [finding("INO-PKG-004", "", message=f"ADaM specs not loaded ({first}); checked without")]


def _import(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


# --- Define-XML ---------------------------------------------------------------------------------------------------
def check_define(pkg: Package, specs: Mapping[str, DatasetSpec] | None) -> list[Finding]:
    path = pkg.folder / DEFINE_NAME
    if not path.exists():
        return [finding("INO-DEFINE-003", "", message=f"no {DEFINE_NAME} in {pkg.folder}")]
    mod = _import("converter.io.define")
    if mod is None:
        return [finding("INO-PKG-003", "", message="Define-XML checks skipped: converter.io.define is not available")]
    out = [finding("INO-DEFINE-001", "", message=str(m)) for m in mod.validate_define(path)]
    pairs = {n: (df, specs[n]) for n, df in pkg.frames.items() if specs and n in specs}
    if pairs:
        try:
            problems = mod.crosscheck_define(path, pairs)
        except Exception as exc:
            problems = [f"cross-check failed: {type(exc).__name__}: {exc}"]
        for p in problems:
            text = str(p)
            ds = text.split(":", 1)[0].split(".", 1)[0] if ":" in text else ""
            out.append(finding("INO-DEFINE-002", ds if ds in pkg.frames else "", message=text))
    return out


# --- FHIR and round trip (adapters over converter.fhir.*) ------------------------------------------------------------
_FHIR_KINDS = (
    ("reference", "INO-FHIR-002"),
    ("identifier", "INO-FHIR-003"),
    ("system", "INO-FHIR-004"),
    ("code", "INO-FHIR-004"),
    ("model", "INO-FHIR-001"),
    ("schema", "INO-FHIR-001"),
    ("invalid", "INO-FHIR-001"),
)


def adapt_result(item: Any, default_rule: str, dataset: str = "") -> Finding:
    """A problem reported by another module (a string, a Finding-like object or a dict) as a Finding."""
    if isinstance(item, Finding):
        return item
    if isinstance(item, Mapping):
        get: Callable[[str], Any] = item.get
    else:

        def get(key: str) -> Any:
            return getattr(item, key, None)

    message = str(get("message") or item)
    kind = " ".join(str(get(k) or "") for k in ("rule_id", "rule", "kind", "code", "category")).lower()
    rule = default_rule
    if default_rule.startswith("INO-FHIR"):
        rule = next((r for word, r in _FHIR_KINDS if word in kind), default_rule)
    sev = str(get("severity") or "").lower()
    severity = sev if sev in ("error", "warning", "info") else None
    where = str(get("resource") or get("dataset") or dataset)
    row = get("row")
    return finding(
        rule, where, str(get("variable") or get("path") or get("element") or ""), message,
        subject=str(get("subject") or ""), row=row if isinstance(row, int) else None,
        severity=severity,  # type: ignore[arg-type]
    )  # fmt: skip


def _call_first(mod: Any, names: Iterable[str], *args: Any) -> tuple[bool, Any]:
    for name in names:
        fn = getattr(mod, name, None)
        if callable(fn):
            try:
                params = inspect.signature(fn).parameters
                required = [p for p in params.values() if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                            p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
                if len(required) > len(args):
                    continue
            except (TypeError, ValueError):
                pass
            return True, fn(*args)
    return False, None


def _as_items(result: Any) -> list[Any]:
    if result is None:
        return []
    for attr in ("findings", "problems", "issues", "errors"):
        if hasattr(result, attr) and not isinstance(result, Mapping):
            return list(getattr(result, attr))
    if isinstance(result, Mapping):
        return [f"{k}: {v}" for k, v in result.items()] if result else []
    if isinstance(result, str | bytes):
        return [result]
    return list(result)


def check_fhir(folder: Path) -> list[Finding]:
    mod = _import("converter.fhir.resource_checks")
    if mod is None:
        return [finding("INO-PKG-003", "", message="FHIR checks skipped: their module is not available")]
    names = ("validate_fhir_folder", "validate_folder", "validate_fhir_dir", "validate_dir", "validate_path",
             "validate_fhir", "validate")  # fmt: skip
    try:
        called, result = _call_first(mod, names, folder)
    except Exception as exc:
        return [finding("INO-FHIR-005", "", message=f"FHIR validation failed: {type(exc).__name__}: {exc}")]
    if not called:
        return [finding("INO-PKG-003", "", message="FHIR checks skipped: no entry point")]
    return [adapt_result(i, "INO-FHIR-005") for i in _as_items(result)]


def check_roundtrip(sdtm: Path, pkg: Package | None) -> list[Finding]:
    mod = _import("converter.fhir.roundtrip")
    if mod is None:
        return [finding("INO-PKG-003", "", message="round trip skipped: converter.fhir.roundtrip is not available")]
    try:
        called, result = _call_first(mod, ("roundtrip_folder", "check_roundtrip", "roundtrip_report"), sdtm)
        if not called and pkg is not None:
            called, result = _call_first(mod, ("roundtrip_frames", "roundtrip_datasets", "roundtrip"), pkg.frames)
    except Exception as exc:
        return [finding("INO-RT-001", "", message=f"round trip failed: {type(exc).__name__}: {exc}")]
    if not called:
        return [finding("INO-PKG-003", "", message="round trip skipped: converter.fhir.roundtrip has no entry point")]
    return [adapt_result(i, "INO-RT-001") for i in _as_items(result)]


# --- the whole folder -----------------------------------------------------------------------------------------------
def validate_folder(folder: Path, *, roundtrip: bool = True) -> list[Finding]:
    from converter.validate.adam_rules import run_adam_rules
    from converter.validate.sdtm_rules import run_sdtm_rules

    parts = detect(folder)
    if not parts:
        return [finding("INO-PKG-001", "", message=f"{folder}: no SDTM/ADaM datasets or FHIR resources found")]
    out: list[Finding] = []
    sdtm_pkg: Package | None = None
    if "sdtm" in parts:
        sdtm_pkg = read_package(parts["sdtm"])
        specs, ct, notes = _load_sdtm_specs()
        out += sdtm_pkg.findings + notes
        out += run_sdtm_rules(sdtm_pkg.frames, specs, ct, sdtm_pkg.info)
        out += check_define(sdtm_pkg, specs)
    if "adam" in parts:
        adam_pkg = read_package(parts["adam"])
        adam_specs, notes = _load_adam_specs()
        out += adam_pkg.findings + notes
        out += run_adam_rules(adam_pkg.frames, adam_specs, adam_pkg.info)
        out += check_define(adam_pkg, adam_specs)
    if "fhir" in parts:
        out += check_fhir(parts["fhir"])
    if roundtrip and "sdtm" in parts:
        out += check_roundtrip(parts["sdtm"], sdtm_pkg)
    return out
