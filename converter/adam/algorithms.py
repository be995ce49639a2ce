"""The ADaM rules: the vocabulary is declared in :mod:`converter.spec.adam_rules` (``ADAM_RULES``, with the rule
table), the implementations live by responsibility and register themselves on import:

- :mod:`converter.adam.common`: reading row variables, SAS dates, content-determined ordering, key matching;
- :mod:`converter.adam.merges`: ``merge``, ``merge_flag``, ``merge_summary``, ``supp``, ``extreme_date``;
- :mod:`converter.adam.dates`: ``date``, ``date_flag``, ``datetime``, ``time_flag``, ``duration``, ``rel_day``,
  ``trtemfl``;
- :mod:`converter.adam.derive`: ``group``, ``compute``, ``extreme_flag``;
- :mod:`converter.adam.tte`: ``tte``, ``tte_attr``;
- :mod:`converter.adam.response`: ``extreme_event``, ``event_attr``, ``relative_flag``;
- :mod:`converter.adam.records`: ``extreme_record``, ``record_attr``.

Importing this module registers every ADaM rule implementation (it does not change any vocabulary: an SDTM spec
naming an ADaM rule is refused whatever is imported). The names below are the public surface the ADaM
pipeline, the validator and the report use.
"""

from __future__ import annotations

from converter.adam import derive as _derive  # noqa: F401 - registers group, compute, extreme_flag
from converter.adam import merges as _merges  # noqa: F401 - registers the merge rules
from converter.adam import records as _records  # noqa: F401 - registers extreme_record, record_attr
from converter.adam import response as _response  # noqa: F401 - registers extreme_event, event_attr, relative_flag
from converter.adam.common import (
    MONTH_DAYS,
    SAS_EPOCH,
    UNIT_DAYS,
    as_sas_date,
    is_numeric,
    iso_to_sas,
    partial_dates,
    pick,
    sas_round,
    sas_to_iso,
    sort_keys,
)
from converter.adam.dates import Imputed, ImputedDatetime, impute_dates, impute_datetimes
from converter.adam.tte import tte_choice
from converter.sdtm import algorithms as _sdtm_rules  # noqa: F401 - the shared rules ADaM specs use (field, case ...)
from converter.spec.adam_rules import (
    ENUM_ARGS,
    ROW_NAME_ARGS,
    TTE_ATTRS,
    check_events,
    check_records,
    check_tte_sources,
    dataset_names,
    enum_problems,
    row_names,
)

__all__ = [
    "ENUM_ARGS",
    "MONTH_DAYS",
    "ROW_NAME_ARGS",
    "SAS_EPOCH",
    "TTE_ATTRS",
    "UNIT_DAYS",
    "Imputed",
    "ImputedDatetime",
    "as_sas_date",
    "check_events",
    "check_records",
    "check_tte_sources",
    "dataset_names",
    "enum_problems",
    "impute_dates",
    "impute_datetimes",
    "is_numeric",
    "iso_to_sas",
    "partial_dates",
    "pick",
    "row_names",
    "sas_round",
    "sas_to_iso",
    "sort_keys",
    "tte_choice",
]
