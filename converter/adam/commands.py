"""``inoconv adam``: folder in, folder out, around :mod:`converter.adam.pipeline` (``inoconv report`` is
:mod:`converter.report.commands`).

``adam_command(SDTM_DIR, OUT)`` reads the SDTM package (XPT, else Dataset-JSON), builds ADaM and writes it as a
package (XPT v5, Dataset-JSON, Define-XML 2.1 with ADaMIG metadata) through :func:`converter.io.package.write_package`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from converter.adam.pipeline import AdamResult, sdtm_to_adam
from converter.errors import ConformanceError
from converter.io.package import in_contract, read_package
from converter.spec.model import DatasetSpec

Echo = Callable[[str], None]


def _specs(stage: str) -> dict[str, DatasetSpec]:
    """The stage's specs (for the types of what is read back), unchecked: checking is the pipeline's job."""
    from converter.adam.pipeline import read_adam_specs
    from converter.paths import mappings_dir
    from converter.spec.loader import load_specs

    folder = mappings_dir() / stage
    if not folder.is_dir() or not any(folder.glob("*.yaml")):
        return {}
    return read_adam_specs(folder) if stage == "adam" else load_specs(folder)


def write_adam_package(result: AdamResult, out: Path, study_name: str | None = None) -> str:
    """Write the ADaM datasets as a package; returns the package listing."""
    from converter.io.package import write_package

    adsl = result.datasets.get("ADSL")
    study = str(adsl["STUDYID"].dropna().iloc[0]) if adsl is not None and adsl["STUDYID"].notna().any() else "STUDY"
    report = write_package(
        out, result.datasets, result.specs, result.ct, standard=next(iter(result.specs.values())).standard,
        study_oid=study, study_name=study_name or study, protocol_name=study,
        study_description=f"{study}: analysis datasets (ADaM)",
    )  # fmt: skip
    return report.render()


def adam_command(
    sdtm_dir: Path, out: Path, echo: Echo = print, read_back: dict[str, pd.DataFrame] | None = None
) -> None:
    """ADaM from the SDTM package in ``sdtm_dir``, written to ``out``. ``read_back``: that package's frames as its
    XPT files give them (:func:`converter.io.package.as_read_back`), where they are at hand before the files are
    (``inoconv run``): the same ADaM without reading the folder."""
    from converter.io.package_kind import expect_kind

    if read_back is None:
        expect_kind(Path(sdtm_dir), "adam", ("sdtm",))
        sdtm = read_package(Path(sdtm_dir), _specs("sdtm"))
    else:
        sdtm = in_contract(dict(read_back), _specs("sdtm"))
    result = sdtm_to_adam(sdtm)
    if result.checks:
        raise ConformanceError([f"ADaM cross-check failed: {m}" for m in result.checks])
    echo(write_adam_package(result, Path(out)))
    echo("cross-checks passed: ADSL one record per DM subject, every subject in ADSL, no event after the data cut, "
         "every event date from its cited record")  # fmt: skip

