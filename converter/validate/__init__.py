"""Conformance findings (``inoconv validate``): CDISC CORE ids where a check is a published CORE rule, else
``INO-`` ids of this project. Modules:

* :mod:`.findings` - the :class:`Finding` (rule, severity, file, dataset, variable, subject, row) and the reports;
* :mod:`.common` - the rule registry and shared helpers; :mod:`.sdtm_rules`, :mod:`.adam_rules` - the rules;
* :mod:`.standard_rules` - any package against SDTMIG 3.4 (no trial spec); :mod:`.levels` - which spec applies;
* :mod:`.folder` - what a folder holds, reading every deliverable, the Define-XML / FHIR / round-trip checks;
* :mod:`.pairs` - a dataset delivered as XPT and as Dataset-JSON: do they say the same;
* :mod:`.commands` - the command.

The names below are imported when first used (pandas and the readers load only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.validate.adam_rules import run_adam_rules
    from converter.validate.findings import Finding, exit_code, render_table, write_reports
    from converter.validate.folder import detect, read_package, validate_folder
    from converter.validate.levels import sdtm_spec_level
    from converter.validate.pairs import check_dataset_json, compare_pair
    from converter.validate.sdtm_rules import run_sdtm_rules
    from converter.validate.standard_rules import run_standard_level, run_standard_rules

__all__ = [
    "Finding",
    "check_dataset_json",
    "compare_pair",
    "detect",
    "exit_code",
    "read_package",
    "render_table",
    "run_adam_rules",
    "run_sdtm_rules",
    "run_standard_level",
    "run_standard_rules",
    "sdtm_spec_level",
    "validate_folder",
    "write_reports",
]

_WHERE = {
    "Finding": "findings",
    "exit_code": "findings",
    "render_table": "findings",
    "write_reports": "findings",
    "detect": "folder",
    "read_package": "folder",
    "validate_folder": "folder",
    "check_dataset_json": "pairs",
    "compare_pair": "pairs",
    "run_adam_rules": "adam_rules",
    "run_sdtm_rules": "sdtm_rules",
    "run_standard_level": "standard_rules",
    "run_standard_rules": "standard_rules",
    "sdtm_spec_level": "levels",
}


__getattr__ = lazy_names(__name__, _WHERE)
