"""``inoconv report ADAM_DIR --out DIR``: the analysis spec's end points from an ADaM package, against the
published values.

Reads the ADaM package (XPT, else Dataset-JSON), checks that it is one (the datasets the analysis spec names,
ADSL at least), computes every end point of ``mappings/analysis/endpoints.yaml``, prints the table and writes
report.md, report.json, the Kaplan-Meier figures and index.html. Returns 1 when a published figure is not
reproduced within its tolerance, else 0. A folder that is not an ADaM package is bad input (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from converter.errors import InputError, problem
from converter.report.spec import AnalysisSpec
from converter.spec.model import DatasetSpec

Echo = Callable[[str], None]


def needed_datasets(spec: AnalysisSpec) -> list[str]:
    """Every dataset the spec reads, ADSL-level first."""
    names = [s.dataset for s in spec.analysis_sets.values()]
    names += [a.records_dataset for a in spec.analyses if a.records_dataset]
    names += [p.dataset for p in spec.parameters.values()]
    if spec.adverse_events is not None:
        names.append(spec.adverse_events.dataset)
    return list(dict.fromkeys(n.upper() for n in names if n))


def read_adam(adam_dir: Path, spec: AnalysisSpec) -> dict[str, pd.DataFrame]:
    """The ADaM package's datasets; an :class:`InputError` saying what was expected and found otherwise."""
    from converter.io.package import read_package

    folder = Path(adam_dir)
    if not folder.is_dir():
        raise InputError(
            problem(
                str(folder),
                "",
                "",
                "",
                "ADaM folder",
                "no such folder: expected the ADaM package `inoconv adam` writes",
            )
        )
    specs = _adam_specs()
    try:
        adam = read_package(folder, specs)
    except FileNotFoundError as exc:
        raise InputError(
            problem(str(folder), "", "", "", "ADaM folder", f"expected an ADaM package (*.xpt or Dataset-JSON): {exc}")
        ) from None
    need = needed_datasets(spec)
    missing = [n for n in need if n not in adam]
    if missing:
        found = ", ".join(sorted(adam)) or "no datasets"
        raise InputError(
            problem(
                str(folder),
                "",
                "",
                "",
                "ADaM folder",
                f"expected an ADaM package with {', '.join(need)} (the analysis spec "
                f"{spec.path.name} reads them) but found {found}; missing {', '.join(missing)}",
            )
        )
    return adam


def _adam_specs() -> dict[str, DatasetSpec] | None:
    """The ADaM specs, for the types of what is read back (integer variables as Int64); None when absent."""
    from converter.paths import mappings_dir

    folder = mappings_dir() / "adam"
    if not folder.is_dir() or not any(folder.glob("*.yaml")):
        return None
    from converter.adam.pipeline import read_adam_specs

    return dict(read_adam_specs(folder))


def report_command(
    adam_dir: Path, out: Path, echo: Echo = print, source_label: str | None = None, *, page: bool = True
) -> int:
    """``source_label``: how the report names ADAM_DIR (default: as given), e.g. where a run's staged folder goes.
    ``page=False``: no index.html (``inoconv run`` writes it at its end, with validate's findings)."""
    from converter.io.package_kind import expect_kind
    from converter.report.endpoints import compute_endpoints
    from converter.report.html import write_index_html
    from converter.report.published import compare
    from converter.report.render import markdown, write_report
    from converter.report.spec import load_analysis_spec

    expect_kind(Path(adam_dir), "report", ("adam",))
    spec = load_analysis_spec()
    adam = read_adam(Path(adam_dir), spec)
    endpoints = compute_endpoints(adam, spec)
    comparisons = compare(endpoints, spec)
    label = source_label or str(adam_dir)
    files = write_report(endpoints, comparisons, Path(out), source=label)
    defines = [Path(adam_dir) / "define.xml", Path(adam_dir).parent / "sdtm" / "define.xml"]
    if page:
        files.append(write_index_html(Path(out), define_href=defines, adam=adam, spec=spec))
    echo(markdown(endpoints, comparisons, label))
    echo("wrote " + ", ".join(str(f) for f in files))
    return 0 if all(c.within for c in comparisons) else 1
