"""The report stage: the analysis spec's end points from an ADaM package, against the published values.

``mappings/analysis/endpoints.yaml`` (:mod:`converter.report.spec`) says what to compute; :mod:`.endpoints`
computes it with the exact statistics of :mod:`.stats`; :mod:`.published` compares; :mod:`.render` writes
report.md, report.json (with :mod:`.ars`'s ARS-shaped reportingEvent) and the figures; :mod:`.html` and
:mod:`.tables` the reviewer's page; :mod:`.commands` is ``inoconv report`` (CLI-level: not
imported here, so library code importing the stage never loads the CLI).
"""

from converter.report.endpoints import Endpoint, Endpoints, compute_endpoints
from converter.report.html import PreparedPage, prepare_index, prepare_run_view, write_index_html, write_run_view
from converter.report.published import Comparison, compare, published_values
from converter.report.render import write_report
from converter.report.spec import AnalysisSpec, load_analysis_spec
from converter.report.stats import clopper_pearson, kaplan_meier, logrank

__all__ = [
    "AnalysisSpec",
    "Comparison",
    "Endpoint",
    "Endpoints",
    "PreparedPage",
    "clopper_pearson",
    "compare",
    "compute_endpoints",
    "kaplan_meier",
    "load_analysis_spec",
    "logrank",
    "prepare_index",
    "prepare_run_view",
    "published_values",
    "write_index_html",
    "write_report",
    "write_run_view",
]
