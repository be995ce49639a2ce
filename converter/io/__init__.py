"""Files in and out, knowing no stage: SAS XPORT v5 (:mod:`.xpt`, :mod:`.sas_formats`), Define-XML 2.1
(:mod:`.define` and the modules it uses, :mod:`.define_check`), CDISC Dataset-JSON (:mod:`.datasetjson`), SDTM/ADaM
packages (:mod:`.package`, :mod:`.package_kind`), atomic files and output folders with their manifests
(:mod:`.atomic`, :mod:`.outdir`, :mod:`.manifest`), large write-once files closed out of the page cache
(:mod:`.settle`) and hashed as they are written (:mod:`.hashed`), CSV for spreadsheets (:mod:`.csv_out`).

The names below are imported when first used (pandas and lxml load only then); none is also the name of a
module of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.io.atomic import atomic_dir, atomic_write
    from converter.io.datasetjson import read_dataset_json, validate_dataset_json, write_dataset_json
    from converter.io.define import build_define, write_define
    from converter.io.define_check import crosscheck_define, validate_define
    from converter.io.manifest import build_manifest, verify_path
    from converter.io.outdir import OutputFolder, output_folder
    from converter.io.package import as_read_back, check_package, in_contract, read_package, write_package
    from converter.io.package_kind import detect_kind, expect_kind
    from converter.io.xpt import check_for_xpt, read_xpt, write_xpt

__all__ = [
    "OutputFolder",
    "as_read_back",
    "atomic_dir",
    "atomic_write",
    "build_define",
    "build_manifest",
    "check_for_xpt",
    "check_package",
    "crosscheck_define",
    "detect_kind",
    "expect_kind",
    "in_contract",
    "output_folder",
    "read_dataset_json",
    "read_package",
    "read_xpt",
    "validate_dataset_json",
    "validate_define",
    "verify_path",
    "write_dataset_json",
    "write_define",
    "write_package",
    "write_xpt",
]

_WHERE = {
    "read_xpt": "xpt",
    "write_xpt": "xpt",
    "check_for_xpt": "xpt",
    "build_define": "define",
    "write_define": "define",
    "validate_define": "define_check",
    "crosscheck_define": "define_check",
    "read_dataset_json": "datasetjson",
    "write_dataset_json": "datasetjson",
    "validate_dataset_json": "datasetjson",
    "atomic_write": "atomic",
    "atomic_dir": "atomic",
    "output_folder": "outdir",
    "OutputFolder": "outdir",
    "detect_kind": "package_kind",
    "expect_kind": "package_kind",
    "read_package": "package",
    "as_read_back": "package",
    "in_contract": "package",
    "write_package": "package",
    "check_package": "package",
    "build_manifest": "manifest",
    "verify_path": "manifest",
}


__getattr__ = lazy_names(__name__, _WHERE)
