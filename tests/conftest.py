"""Shared fixtures. The test tree is importable (tests/ on sys.path) for small data helpers.

Slow tests. ``python -m pytest`` (the README's command) runs the fast tests only, on two worker processes:
pyproject's ``addopts`` says ``-m "not slow" -n 2``. ``python -m pytest -m slow -n 0`` runs the slow ones, one at a
time (``.ci/run`` runs both). A test is slow when it
is marked ``@pytest.mark.slow`` in its module or listed in :data:`SLOW` below (whole modules or single tests
that took tens of seconds on the 2-core CI machine, with the reason). Naming a test file or test on the command
line (``python -m pytest tests/test_spark.py``) runs its slow tests too, unless ``-m`` is given there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: module, or module::test (any parametrisation), -> why it is slow (seconds measured on the loaded 2-core machine)
SLOW: dict[str, str] = {
    "test_spark.py": "a local Spark session (JVM) and the chain on Spark: ~80 s to start, 50-120 s per cohort",
    "test_browser.py": "headless Chromium",
    "test_fhir_server.py": "a Medplum FHIR server on Node",
    "test_upload_roundtrip.py": "a Medplum FHIR server on Node",
    "test_install.py": "builds a wheel and a virtual environment: ~110 s",
    "test_sdtm_property.py": "property test over many generated record sets: 77 s",
    "test_records_io.py::test_random_valid_records_survive_odm_and_csv": "hypothesis, both readers: 315 s",
    "test_fhir_roundtrip.py::test_pilot_round_trip_is_lossless": "the CDISC pilot's SDTM through FHIR and back: 116 s",
    "test_fhir_roundtrip.py::test_cli_commands_on_an_sdtm_folder": "sdtm, fhir, tosdtm, roundtrip end to end: 51 s",
    "test_fhir_stream.py::test_simulated_1000_subjects_streamed_equals_whole": "1,000 simulated subjects",
    "test_stream.py::test_stream_equals_whole_on_a_simulated_cohort": "a simulated cohort streamed and converted whole",
    # measured on the fast run (load average 20): 30-60 s each; a cheaper case of each stays in the fast tests
    "test_cli_mutations.py": "25 mutated inputs through every command: ~65 s",
    "test_fhir_stream.py::test_example_cohort_streamed_equals_whole[4]": "57 s ([1] stays fast)",
    "test_fhir_stream.py::test_example_cohort_streamed_equals_whole[64]": "48 s ([1] stays fast)",
    "test_fhir_provenance.py::test_a_deidentified_folder_carries_its_mark_and_label_on": "de-identify, then FHIR: 48 s",
    "test_output_folders.py::test_overwrite_then_rerun_over_its_own_output[run]": "inoconv run twice: 43 s",
    "test_fhir_terminology.py::test_inoconv_output_of_the_example_passes_and_an_invented_system_fails": "41 s",
    # measured 2026-12-02 on a quiet machine, to keep the README's command under 5 minutes (it was 4 min 50 s):
    "test_stream.py::test_bad_odm_is_reported_with_its_line": "a bad ODM document streamed: 8 s",
    "test_stream.py::test_stream_equals_whole_on_the_example": "the example streamed and converted whole, CSV and ODM: 9 s",
    "test_fhir_roundtrip.py::test_what_is_not_carried_is_listed_or_fails": "round trips with specs cut down: 6 s",
    "test_upload_guards.py::test_a_server_trickling_bytes_is_cut_at_the_deadline": "waits for its deadline twice: 6 s",
    "test_upload_guards.py::test_tls_goes_through_the_same_deadline": "waits for its deadline over TLS: 4 s",
    "test_deid.py::test_the_analyses_give_the_same_end_points_on_the_deidentified_package": "ADaM and the report on a de-identified package: 4.4 s",
}


def _slow_reason(item: pytest.Item) -> str | None:
    """Listed as module::test[case] (that case), module::test (every case) or module (every test)."""
    module = item.path.name
    name = item.name.split("[", 1)[0]
    return SLOW.get(f"{module}::{item.name}") or SLOW.get(f"{module}::{name}") or SLOW.get(module)


def pytest_configure(config: pytest.Config) -> None:
    """Tests named on the command line run even when slow: the default ``-m "not slow"`` (from addopts) is
    dropped when every argument is a test file or test id and ``-m`` was not given again on the command line."""
    args = [a for a in config.args if not a.startswith("-")]
    named = bool(args) and all(a.split("::", 1)[0].endswith(".py") for a in args)
    given = any(a == "-m" or (a.startswith("-m") and not a.startswith("--")) for a in config.invocation_params.args)
    if named and not given and config.option.markexpr == "not slow":
        config.option.markexpr = ""


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _slow_reason(item) is not None:
            item.add_marker(pytest.mark.slow)
