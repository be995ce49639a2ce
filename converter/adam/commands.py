"""``inoconv adam`` and ``inoconv report``: folder in, folder out, around :mod:`converter.adam.pipeline` and
:mod:`converter.report`.

``adam_command(SDTM_DIR, OUT)`` reads the SDTM package (XPT, else Dataset-JSON), builds ADaM and writes it as a
package (XPT v5, Dataset-JSON, Define-XML 2.1 with ADaMIG metadata) through :func:`converter.io.package.write_package`.
``report_command(ADAM_DIR, OUT)`` recomputes the publication's end points from the ADaM package, prints the table
and writes report.md, report.json and the Kaplan-Meier plots; it returns 1 when a published figure is not
reproduced within its tolerance, else 0.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from converter.adam.pipeline import AdamResult, sdtm_to_adam
from converter.errors import ConformanceError
from converter.io.package import read_package
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


def adam_command(sdtm_dir: Path, out: Path, echo: Echo = print) -> None:
    sdtm = read_package(Path(sdtm_dir), _specs("sdtm"))
    result = sdtm_to_adam(sdtm)
    if result.checks:
        raise ConformanceError([f"ADaM cross-check failed: {m}" for m in result.checks])
    echo(write_adam_package(result, Path(out)))
    echo("cross-checks passed: ADSL one record per DM subject, every subject in ADSL, no event after the data cut, "
         "every event date from its cited record")  # fmt: skip


def report_command(adam_dir: Path, out: Path, echo: Echo = print) -> int:
    from converter.report.endpoints import compute_endpoints
    from converter.report.published import compare, load_published
    from converter.report.render import markdown, write_report

    adam = read_package(Path(adam_dir), _specs("adam"))
    endpoints = compute_endpoints(adam)
    from converter.paths import published_facts

    if published_facts().exists():
        comparisons = compare(endpoints, load_published())
    else:  # the published facts are reference material beside the project, not part of a user's data
        comparisons = []
        echo(f"note: no published facts at {published_facts()} (set INOCONV_PUBLISHED); end points not compared")
    files = write_report(endpoints, comparisons, Path(out), source=str(adam_dir))
    from converter.report.html import write_index_html

    defines = [Path(adam_dir) / "define.xml", Path(adam_dir).parent / "sdtm" / "define.xml"]
    files.append(write_index_html(Path(out), define_href=defines, adam=adam))
    echo(markdown(endpoints, comparisons, str(adam_dir)))
    echo("wrote " + ", ".join(str(f) for f in files))
    return 0 if all(c.within for c in comparisons) else 1
