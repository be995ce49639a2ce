"""De-identification of an SDTM package by rules kept as data (``mappings/deid/sdtm.yaml``), with a residual check.

* :mod:`.rules`: load and check the rules (the closed rule vocabulary).
* :mod:`.transform`: apply them, column-wise, one offset and one new identifier per subject.
* :mod:`.residual`: what of the original still shows in a de-identified package.
* :mod:`.mark`: the ``deid.json`` mark and :func:`is_deidentified`.
* :mod:`.commands`: ``inoconv deid`` and ``inoconv deid-check`` (CLI-level: not imported here, so the stages
  that use de-identification never load the CLI).
"""

from converter.deid.mark import MARK_FILE, is_deidentified
from converter.deid.residual import Leak, residual_check
from converter.deid.rules import DeidRules, load_deid_rules
from converter.deid.transform import DeidResult, deidentify

__all__ = [
    "MARK_FILE",
    "DeidResult",
    "DeidRules",
    "Leak",
    "deidentify",
    "is_deidentified",
    "load_deid_rules",
    "residual_check",
]
