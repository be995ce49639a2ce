"""inoconv: spec-driven conversion between clinical-trial data standards.

EDC records (ODM-XML / CSV) -> SDTM -> ADaM -> the publication's end points, and SDTM <-> FHIR R4.
Every trial-specific fact lives in the YAML specs under ``mappings/``; this package holds only generic code.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
