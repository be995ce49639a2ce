"""SDTM -> ADaM through the mapping specs (``mappings/adam/*.yaml``) and the ADaM rule vocabulary
(:mod:`converter.spec.adam_rules`).

* :mod:`.pipeline` loads and checks the ADaM specs against the SDTM columns, builds the datasets with the SDTM
  engine and checks across datasets; :mod:`.commands` is ``inoconv adam`` / ``inoconv report``'s entry;
* the rule implementations, by responsibility: :mod:`.common` (row variables, SAS dates, ordering, keys),
  :mod:`.merges`, :mod:`.dates`, :mod:`.derive`, :mod:`.tte`; :mod:`.algorithms` registers them all and names
  their public helpers.

The names below are imported when first used (pandas and the specs load only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.adam.pipeline import AdamResult, check_adam_specs, load_adam_specs, read_adam_specs, sdtm_to_adam

__all__ = ["AdamResult", "check_adam_specs", "load_adam_specs", "read_adam_specs", "sdtm_to_adam"]

_WHERE = {name: "pipeline" for name in __all__}


__getattr__ = lazy_names(__name__, _WHERE)
