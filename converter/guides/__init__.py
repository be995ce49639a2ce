"""Reviewer's guides generated from the specs: the cSDRG (SDTM) and the ADRG (ADaM), as Markdown and HTML.

The trial-specific text (conventions, non-standard decisions) lives in ``mappings/guides/{sdtm,adam}.yaml``;
everything else (datasets, keys, classes, derivations, sponsor codelists and sponsor extensions of CDISC CT,
de-identification rules) is read from the specs, so the guides cannot drift from what the converter does.
"""

from converter.guides.build import GUIDES, Guide, build_guide, render_html, render_markdown, write_guides

__all__ = ["GUIDES", "Guide", "build_guide", "render_html", "render_markdown", "write_guides"]
