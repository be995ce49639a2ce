"""SDTM <-> FHIR R4, both ways through the same specs (``mappings/fhir/*.yaml``, one per resource type).

* :mod:`.spec` loads and checks the specs (every SDTM variable mapped or listed in ``not_mapped``, every path
  an R4 element); :mod:`.paths` and :mod:`.transforms` are the element paths and value transforms.
* :mod:`.to_fhir` builds plain resource dicts column-wise (the fast path; no pydantic); :mod:`.bundles` makes
  the transaction Bundles (study.json + one per subject), :mod:`.ndjson` the Bulk Data files, :mod:`.writer`
  the output folder (subject partitions, ``--strict`` checks).
* :mod:`.to_sdtm` reads Bundles, resources or NDJSON back into SDTM frames, reporting resource by resource what
  it cannot convert; :mod:`.validate` checks resources with the fhir.resources R4B models, references and
  identifiers; :mod:`.roundtrip` compares SDTM -> FHIR -> SDTM variable by variable.
* :mod:`.commands`: ``inoconv fhir``, ``inoconv tosdtm``, ``inoconv roundtrip``.
"""
