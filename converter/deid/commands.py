"""``inoconv deid SDTM_DIR --out DIR [--key KEYFILE] [--k K]`` and ``inoconv deid-check DIR --original SDTM_DIR``.

``deid`` reads the SDTM package, applies ``mappings/deid/sdtm.yaml`` (:mod:`converter.deid.transform`), writes the
de-identified package (XPT v5, Dataset-JSON, define.xml, as ``inoconv sdtm`` does) with ``deid-report.csv`` (per
dataset and variable: class, rule, values changed, why) and ``deid.json`` (the mark that ``inoconv fhir`` carries
on and ``inoconv upload`` asks for), and runs the residual check on what it wrote before it says yes.

The key - the secret, old and new identifiers, each subject's offset - goes only to ``--key`` (owner-only
permissions, never inside ``--out``); an existing key file is read again, so a second delivery of the same study
gets the same identifiers and offsets. Without ``--key`` the secret is random and forgotten.

Exit codes: 0 written and clean; 1 the residual check found something (ConformanceError: nothing is put in
place); 2 bad input or rules. The output folder follows the rule of every command (:mod:`converter.io.outdir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from converter.deid.mark import MARK_FILE
from converter.deid.residual import Leak, residual_check
from converter.deid.rules import load_deid_rules
from converter.deid.transform import deidentify
from converter.errors import ConformanceError, InputError, problem
from converter.io.csv_out import dict_writer

__all__ = ["deid_check_command", "deid_command"]

_KEY_KIND = "inoconv de-identification key"

Echo = Callable[[str], Any]


def _read_secret(key: Path) -> bytes | None:
    if not key.exists():
        return None
    try:
        doc = json.loads(key.read_text(encoding="utf-8"))
        if doc.get("kind") != _KEY_KIND:
            raise ValueError("not an inoconv key")
        return bytes.fromhex(str(doc["secret"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise InputError(problem(str(key), "", "", "", "deid-key",
                                 "exists and is not an inoconv de-identification key: "
                                 "give a new path or the key of an earlier run")) from None  # fmt: skip


def _write_key(key: Path, body: dict[str, Any]) -> None:
    key.parent.mkdir(parents=True, exist_ok=True)
    tmp = key.with_name(f".{key.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=1, default=str)
        os.chmod(tmp, 0o600)
        os.replace(tmp, key)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _inside(path: Path, folder: Path) -> bool:
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_report(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = dict_writer(fh, fieldnames=["dataset", "variable", "class", "rule", "changed", "note", "why"])
        writer.writeheader()
        writer.writerows(rows)


def deid_command(sdtm_dir: Path, out: Path, key: Path | None = None, k: int | None = None,
                 echo: Echo = print, overwrite: bool = False) -> int:  # fmt: skip
    from converter.io.outdir import output_folder
    from converter.io.package import read_package, write_package
    from converter.io.xpt import prepare_for_xpt
    from converter.paths import mappings_dir
    from converter.spec.loader import load_specs, load_terminology

    sdtm_dir, out = Path(sdtm_dir), Path(out)
    if key is not None and _inside(key, out):
        raise InputError(problem(str(key), "", "--key", "", "deid-key",
                                 f"the key must not be written inside --out ({out}): it would undo the "
                                 "de-identification"))  # fmt: skip
    if key is not None and _inside(key, sdtm_dir):
        raise InputError(problem(str(key), "", "--key", "", "deid-key", "the key must not be written into the input"))
    rules_file = mappings_dir() / "deid" / "sdtm.yaml"
    rules = load_deid_rules(rules_file, k)
    specs = load_specs(mappings_dir() / "sdtm")
    original = read_package(sdtm_dir, specs)
    files = {name: f"{sdtm_dir / name.lower()}.xpt" for name in original}
    secret = (_read_secret(key) if key is not None else None) or secrets.token_bytes(32)
    result = deidentify(original, rules, secret, files)
    if result.problems:
        raise InputError(result.problems, context=f"de-identification of {sdtm_dir}")
    missing = sorted(set(result.datasets) - set(specs))
    if missing:
        raise InputError([problem(files[n], "", "", "", "deid-spec",
                                  f"{n} has no SDTM spec in {mappings_dir() / 'sdtm'}: cannot write it as a package")
                          for n in missing])  # fmt: skip
    ct = load_terminology(mappings_dir() / "ct")
    study = next((str(df["STUDYID"].dropna().iloc[0]) for df in result.datasets.values()
                  if "STUDYID" in df.columns and df["STUDYID"].notna().any()), "STUDY")  # fmt: skip
    with output_folder(out, inputs=[sdtm_dir], overwrite=overwrite) as dest:
        staging = dest.path
        ordered = {n: prepare_for_xpt(df, specs[n]) for n, df in result.datasets.items()}  # new ids, new order
        write_package(staging, ordered, {n: specs[n] for n in ordered}, ct, standard="SDTMIG 3.4",
                      study_oid=study, study_name=study, protocol_name=study,
                      study_description=f"{study}: de-identified SDTM ({rules.standard})")  # fmt: skip
        written = sorted(p for p in staging.rglob("*") if p.is_file())
        leaks = residual_check(original, result.datasets, rules, written, read_package(staging, specs))
        if leaks:  # nothing is put in place
            raise ConformanceError([f"residual check: {leak}" for leak in leaks[:50]])
        _write_report(staging / "deid-report.csv", result.report)
        mark: dict[str, Any] = {
            "deidentified": True,
            "residual_check": "passed",
            "standard": rules.standard,
            "rules": {"file": rules_file.name, "sha256": _sha256(rules_file)},
            "small_cell_k": rules.k,
            "offset_days": [rules.offset_min, rules.offset_max],
            "subjects": len(result.key["subjects"]),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "key": "kept by the data owner" if key is not None else "discarded",
        }
        (staging / MARK_FILE).write_text(json.dumps(mark, indent=1) + "\n", encoding="utf-8")
    if key is not None:
        _write_key(key, {"kind": _KEY_KIND, "secret": secret.hex(), "created": mark["created"],
                         "rules_sha256": mark["rules"]["sha256"], **result.key})  # fmt: skip
    changed = sum(int(r["changed"]) for r in result.report)
    echo(f"de-identified {len(result.datasets)} datasets, {mark['subjects']} subjects: {changed} values changed "
         f"(see {out / 'deid-report.csv'}); residual check passed -> {out}")  # fmt: skip
    echo(f"key: {key} (owner-only)" if key is not None else "key: discarded (no --key)")
    return 0


def deid_check_command(deid_dir: Path, original_dir: Path, echo: Echo = print) -> list[Leak]:
    """The residual check of an existing de-identified folder against its original package."""
    from converter.io.package import read_package
    from converter.paths import mappings_dir
    from converter.spec.loader import load_specs

    rules = load_deid_rules(mappings_dir() / "deid" / "sdtm.yaml")
    specs = load_specs(mappings_dir() / "sdtm")
    original = read_package(Path(original_dir), specs)
    deid = read_package(Path(deid_dir), specs)
    files = sorted(p for p in Path(deid_dir).rglob("*") if p.is_file())
    leaks = residual_check(original, None, rules, files, deid)
    echo(f"residual check of {deid_dir}: " + ("clean" if not leaks else f"{len(leaks)} finding(s)"))
    for leak in leaks[:50]:
        echo(f"  {leak}")
    return leaks

