"""Records -> SDTM through the mapping specs (``mappings/sdtm/*.yaml``).

* :mod:`.pipeline` loads and cross-checks the specs, CT and forms, and converts records (whole or partitioned);
* :mod:`.build` applies the specs: sources (``where`` parsed at load), row rules, stacking, dataset rules,
  types and key order, with the accounting of every source record;
* :mod:`.context` is what a rule implementation sees and the registry of implementations; :mod:`.algorithms`
  implements the SDTM vocabulary (:mod:`converter.spec.rules`), :mod:`.derivations` the named derivations.

The names below are imported when first used (pandas and the specs load only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.sdtm.build import Accounting, build_all, build_dataset
    from converter.sdtm.pipeline import SdtmResult, load_sdtm_specs, records_to_sdtm, sdtm_partitioned

__all__ = [
    "Accounting",
    "SdtmResult",
    "build_all",
    "build_dataset",
    "load_sdtm_specs",
    "records_to_sdtm",
    "sdtm_partitioned",
]

_WHERE = {
    "Accounting": "build",
    "build_all": "build",
    "build_dataset": "build",
    "SdtmResult": "pipeline",
    "load_sdtm_specs": "pipeline",
    "records_to_sdtm": "pipeline",
    "sdtm_partitioned": "pipeline",
}


__getattr__ = lazy_names(__name__, _WHERE)
