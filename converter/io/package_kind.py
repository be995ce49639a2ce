"""What kind of input a path is, told from its names and first bytes only, so that each command can say at once
"inoconv adam expects an SDTM package; found an ADaM package (ADSL, ADTTE)" instead of failing deep inside.

:func:`detect_kind` reads no dataset: file and folder names, the first line or 4 KiB of at most a few files
(the root element of an XML file, the first JSON keys of a JSON or NDJSON file). :func:`expect_kind` raises an
:class:`~converter.errors.InputError` (exit 2) naming the command, what it expected, what it found and which
command takes what was found.

Kinds:

- ``records-odm``: a CDISC ODM-XML file (root element ``ODM``), or a folder holding one;
- ``records-csv``: a folder of CSV files, one per CRF form;
- ``sdtm`` / ``adam``: a folder of datasets as SAS XPORT (``*.xpt``) or Dataset-JSON (``*.json``/``*.ndjson``
  with ``datasetJSONVersion``), ADaM when every dataset name starts with ``AD``; also the Parquet parts of
  ``inoconv stream`` (``<DS>/part-NNNNN.parquet``);
- ``fhir``: JSON or NDJSON that is not Dataset-JSON (FHIR ``resourceType``, or broken JSON, which the FHIR
  reader then reports line by line): a file, a folder of them, or our output (``bundles/``, ``ndjson/``);
- ``run``: the output folder of ``inoconv run`` or ``inoconv stream`` (``sdtm/`` beside ``adam/``/``fhir/``);
- ``report``: the output of ``inoconv report`` (``report.json``);
- ``missing`` (no such path) and ``unknown`` (none of the above: an empty folder, other files).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from converter.errors import InputError, problem

Kind = Literal["records-csv", "records-odm", "sdtm", "adam", "fhir", "run", "report", "missing", "unknown"]

__all__ = ["KINDS", "Found", "Kind", "describe", "detect_kind", "expect_kind", "inspect_path"]

#: every kind, as a user calls it (after "found")
KINDS: dict[Kind, str] = {
    "records-csv": "patient records as CSV",
    "records-odm": "patient records as ODM-XML",
    "sdtm": "an SDTM package",
    "adam": "an ADaM package",
    "fhir": "FHIR resources",
    "run": "the output folder of a whole run",
    "report": "a report folder",
    "missing": "nothing: no such file or folder",
    "unknown": "no input inoconv reads",
}

#: what a command expects, in full (after "expects")
_EXPECTED: dict[Kind, str] = {
    "records-csv": "patient records as CSV (a folder, one file per CRF form)",
    "records-odm": "patient records as CDISC ODM-XML (a file)",
    "sdtm": "an SDTM package (a folder of SDTM datasets as XPT or Dataset-JSON, as inoconv sdtm writes)",
    "adam": "an ADaM package (a folder of ADaM datasets as XPT or Dataset-JSON, as inoconv adam writes)",
    "fhir": "FHIR R4 (transaction Bundles, resources or Bulk Data NDJSON: a file or a folder)",
    "run": "the output folder of inoconv run",
    "report": "a report folder",
    "missing": "nothing",
    "unknown": "anything",
}

#: which command takes each kind (the hint after "found ...")
_TAKEN_BY: dict[Kind, str] = {
    "records-csv": "inoconv sdtm or inoconv stream",
    "records-odm": "inoconv sdtm or inoconv stream",
    "sdtm": "inoconv adam, fhir, roundtrip or validate",
    "adam": "inoconv report or validate",
    "fhir": "inoconv tosdtm or upload",
    "run": "inoconv validate",
}

_HEAD = 4096
_PROVENANCE = {"manifest.json", "stream.json", "report.json", "findings.json", "tosdtm-report.json"}


@dataclass(frozen=True)
class Found:
    """What a path holds: its kind and the evidence (a few names), for the user's sentence."""

    kind: Kind
    evidence: str = ""


def _head(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(_HEAD).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _json_kind(path: Path) -> Literal["dataset-json", "fhir", ""]:
    head = _head(path)
    first = head.lstrip("\ufeff \t\r\n")[:_HEAD]
    if path.suffix.lower() == ".ndjson":
        first = first.split("\n", 1)[0]
    if '"datasetJSONVersion"' in first or '"clinicalData"' in first or '"referenceData"' in first:
        return "dataset-json"
    if '"resourceType"' in first:
        return "fhir"
    return ""


def _is_odm(path: Path) -> bool:
    head = _head(path)
    i = head.find("<ODM")
    return i >= 0 and head[i + 4 : i + 5] in (" ", ">", "\n", "\r", "\t")


def _names(paths: Iterable[Path], limit: int = 6, datasets: bool = False) -> str:
    """A few names: dataset names (``DM``, ``ADSL``) when ``datasets``, else file names."""
    names = sorted({p.stem.upper() if datasets and p.is_file() else p.name for p in paths})
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _datasets(folder: Path, files: list[Path]) -> Found | None:
    """SDTM or ADaM datasets (XPT, Dataset-JSON, or Parquet part folders), else None."""
    data = [p for p in files if p.suffix.lower() == ".xpt"]
    fmt = "XPT"
    if not data:
        data = [p for p in files if p.suffix.lower() in (".json", ".ndjson") and p.name not in _PROVENANCE]
        data = [p for p in data if _json_kind(p) == "dataset-json"]
        fmt = "Dataset-JSON"
    if not data:
        data = [d for d in folder.iterdir() if d.is_dir() and any(d.glob("part-*.parquet"))]
        fmt = "Parquet parts"
    if not data:
        return None
    names = [(p.stem if p.is_file() else p.name).upper() for p in data]
    adam = [n for n in names if n.startswith("AD")]
    if adam and len(adam) == len(names):
        return Found("adam", f"{_names(data, datasets=True)} as {fmt}")
    if not adam:
        return Found("sdtm", f"{_names(data, datasets=True)} as {fmt}")
    return Found("unknown", f"SDTM and ADaM datasets mixed: {_names(data, datasets=True)}")


def _holds_datasets(folder: Path) -> bool:
    files = [p for p in folder.iterdir() if p.is_file()]
    return _datasets(folder, files) is not None


def inspect_path(path: Path) -> Found:
    """The kind of ``path`` and the names that show it."""
    path = Path(path)
    if not path.exists():
        return Found("missing")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".xml" and _is_odm(path):
            return Found("records-odm", path.name)
        if suffix in (".json", ".ndjson"):
            if _json_kind(path) == "dataset-json":
                return Found("unknown", f"one Dataset-JSON file ({path.name}); give its folder")
            return Found("fhir", path.name)  # FHIR or broken JSON: the FHIR reader says which line is wrong
        if suffix == ".xpt":
            return Found("unknown", f"one XPT file ({path.name}); give its folder")
        if suffix == ".csv":
            return Found("unknown", f"one CSV file ({path.name}); give the folder of the CRF forms")
        return Found("unknown", f"a file {path.name}")
    try:
        entries = sorted(path.iterdir())
    except OSError as exc:
        return Found("unknown", f"an unreadable folder ({exc.strerror})")
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")]
    dirs = {p.name for p in entries if p.is_dir() and not p.name.startswith(".")}
    if "sdtm" in dirs and dirs & {"adam", "fhir", "report", "validate"} and _holds_datasets(path / "sdtm"):
        return Found("run", ", ".join(f"{d}/" for d in sorted(dirs & {"sdtm", "adam", "report", "fhir", "validate"})))
    if {"bundles", "ndjson"} & dirs and not any(p.suffix.lower() == ".xpt" for p in files):
        return Found("fhir", ", ".join(f"{d}/" for d in sorted({"bundles", "ndjson"} & dirs)))
    found = _datasets(path, files)
    if found is not None:
        return found
    if any(p.name == "report.json" for p in files):
        return Found("report", "report.json")
    if any(p.name == "findings.json" for p in files):
        return Found("unknown", "conformance findings (findings.json), the output of inoconv validate")
    specs = [p for p in files if p.suffix.lower() in (".yaml", ".yml")]
    if specs or any((path / d).is_dir() and any((path / d).glob("*.yaml")) for d in dirs):
        return Found("unknown", f"mapping specs (YAML: {_names(specs or [path / d for d in sorted(dirs)])})")
    fhir = [p for p in files if p.suffix.lower() in (".json", ".ndjson") and p.name not in _PROVENANCE]
    if fhir:  # not Dataset-JSON (above): FHIR, or broken JSON that the FHIR reader reports line by line
        return Found("fhir", _names(fhir))
    odm = [p for p in files if p.suffix.lower() == ".xml" and _is_odm(p)]
    if len(odm) == 1:
        return Found("records-odm", odm[0].name)
    csvs = [p for p in files if p.suffix.lower() == ".csv"]
    if csvs:
        return Found("records-csv", f"{_names(csvs, datasets=True)} as CSV")
    if not files and not dirs:
        return Found("unknown", "an empty folder")
    return Found("unknown", f"{_names(files or [path / d for d in sorted(dirs)])}")


def detect_kind(path: Path) -> Kind:
    """``records-csv``, ``records-odm``, ``sdtm``, ``adam``, ``fhir``, ``run``, ``report``, ``missing`` or
    ``unknown`` (see the module's docstring)."""
    return inspect_path(path).kind


def describe(found: Found) -> str:
    """``an ADaM package (ADSL, ADTTE as XPT)``: what a user reads after "found"."""
    what = KINDS[found.kind]
    if not found.evidence:
        return what
    return f"{what}: {found.evidence}" if found.kind == "unknown" else f"{what} ({found.evidence})"


def expect_kind(path: Path, command: str, allowed: Collection[str]) -> Found:
    """What ``path`` holds, when it is one of ``allowed``; else an :class:`InputError` (exit 2) with the sentence
    "inoconv <command> expects <allowed>; found <what> (<evidence>): that is input for <command(s)>"."""
    wanted_kinds = [k for k in KINDS if k in allowed]
    if len(wanted_kinds) != len(set(allowed)):
        raise ValueError(f"expect_kind: unknown kind(s) {sorted(set(allowed) - set(KINDS))}")  # a programming error
    found = inspect_path(path)
    if found.kind in allowed:
        return found
    wanted = [_EXPECTED[k] for k in wanted_kinds]
    expected = " or ".join(wanted) if len(wanted) < 3 else "; ".join(wanted[:-1]) + "; or " + wanted[-1]
    sentence = f"inoconv {command} expects {expected}; found {describe(found)}"
    if found.kind in _TAKEN_BY:
        sentence += f": that is input for {_TAKEN_BY[found.kind]}"
    raise InputError(problem(str(path), "", "", "", "input-kind", sentence))
