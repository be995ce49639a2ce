"""SDTM <-> FHIR R4, both ways through the same specs (``mappings/fhir/*.yaml``, one per resource type).

* :mod:`.mapping` loads and checks the specs (every SDTM variable mapped or listed in ``not_mapped``, every path
  an R4 element); :mod:`.paths` and :mod:`.transforms` are the element paths and value transforms.
* :mod:`.to_fhir` builds plain resource dicts column-wise (the fast path; no pydantic); :mod:`.bundles` makes
  the transaction Bundles (study.json + one per subject), :mod:`.ndjson` the Bulk Data files, :mod:`.writer`
  the output folder (subject partitions, ``--strict`` checks).
* FHIR -> SDTM: :mod:`.fhir_input` reads and checks the input (files, NDJSON lines, limits, control characters),
  :mod:`.located` is a resource where it was found and what became of it, :mod:`.to_sdtm` converts resources to
  rows and :mod:`.sdtm_assembly` makes them datasets; :mod:`.ndjson_stream` does it a partition of subjects at
  a time; :mod:`.sdtm_dir` reads and writes SDTM folders.
* :mod:`.resource_checks` checks resources with the fhir.resources R4B models, references, identifiers and ids;
  :mod:`.roundtrip` compares SDTM -> FHIR -> SDTM dataset by dataset and variable by variable.
* :mod:`.commands`: ``inoconv fhir``, ``inoconv tosdtm``, ``inoconv roundtrip``.

The names below are imported when first used (pandas, orjson and the specs load only then); none is also the
name of a module of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.fhir.located import FromFhir, Located, Outcome
    from converter.fhir.mapping import FhirSpecs, load_fhir_specs, load_fhir_stage
    from converter.fhir.ndjson_stream import stream_to_parts
    from converter.fhir.resource_checks import validate_all, validate_fhir_folder
    from converter.fhir.roundtrip import RoundTrip, roundtrip_folder
    from converter.fhir.to_fhir import sdtm_to_fhir
    from converter.fhir.to_sdtm import convert_path, fhir_to_sdtm

__all__ = [
    "FhirSpecs",
    "FromFhir",
    "Located",
    "Outcome",
    "RoundTrip",
    "convert_path",
    "fhir_to_sdtm",
    "load_fhir_specs",
    "load_fhir_stage",
    "roundtrip_folder",
    "sdtm_to_fhir",
    "stream_to_parts",
    "validate_all",
    "validate_fhir_folder",
]

_WHERE = {
    "FromFhir": "located",
    "Located": "located",
    "Outcome": "located",
    "FhirSpecs": "mapping",
    "load_fhir_specs": "mapping",
    "load_fhir_stage": "mapping",
    "stream_to_parts": "ndjson_stream",
    "validate_all": "resource_checks",
    "validate_fhir_folder": "resource_checks",
    "RoundTrip": "roundtrip",
    "roundtrip_folder": "roundtrip",
    "sdtm_to_fhir": "to_fhir",
    "convert_path": "to_sdtm",
    "fhir_to_sdtm": "to_sdtm",
}


__getattr__ = lazy_names(__name__, _WHERE)
