"""``inoconv validate DIR``: run every rule family that applies to DIR, print the table, write the reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from converter.errors import InputError, problem
from converter.io.progress import Tick, no_progress
from converter.validate.findings import exit_code, render_table, write_reports


def validate_command(
    folder: Path,
    fail_on: str = "error",
    out: Path | None = None,
    echo: Callable[[str], Any] = print,
    meddra: Path | None = None,
    spec: Path | None = None,
    progress: Tick = no_progress,
    strict: bool = False,
) -> int:
    """0 when no errors were found (with ``fail_on="warning"``: no errors and no warnings), else 1.

    ``out``: folder for ``findings.json`` and ``findings.csv`` (UTF-8 with BOM, for Excel); nothing is written
    when it is None. ``meddra``: the MedAscii folder of a MedDRA release; AE's terms and codes are checked
    against it. ``spec``: the specs of the spec level (else the package's define.xml; without either, only the
    standard level runs). A missing folder, a bad ``fail_on``, a bad dictionary or a bad spec folder is an input
    error (exit code 2). ``progress``: ticked per step (the rules, the reports). ``strict``: FHIR resources
    checked with the R4B models rather than the fast structure check.
    """
    from converter.io.package_kind import expect_kind
    from converter.validate.folder import validate_folder

    if fail_on not in ("error", "warning"):
        raise InputError(problem("", "", "--fail-on", fail_on, "fail-on", "must be 'error' or 'warning'"))
    folder = Path(folder)
    expect_kind(folder, "validate", ("sdtm", "adam", "fhir", "run"))
    if not folder.is_dir():
        raise InputError(problem(str(folder), "", "", "", "folder", "is not a folder (give the folder of the files)"))
    if meddra is not None:
        from converter.validate.meddra import MeddraDictionary

        MeddraDictionary.read(meddra)  # a bad dictionary is an input error (exit 2) before any rule runs
    progress(0, total=2, step=f"rules on {folder.name}")
    findings = validate_folder(folder, meddra=meddra, spec_dir=spec, strict=strict)
    progress(step="reports")
    echo(f"inoconv validate: {folder}")
    echo(render_table(findings))
    if out is not None:
        paths = write_reports(findings, Path(out))
        echo("reports: " + ", ".join(str(p) for p in paths))
    progress(step="done")
    return exit_code(findings, fail_on)
