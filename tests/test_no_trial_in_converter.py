"""converter/ knows no trial: the names, codes and people of NCT01371630 live in mappings/ and examples/ only.

The words are this trial's: its registry id, its drugs and regimen, its disease-specific events and strata, its
site and its publication. A generic word of the disease area (response, transplant, MRD) may stay in the engine;
what a trial calls them comes from its specs.
"""

from __future__ import annotations

import re
from pathlib import Path

CONVERTER = Path(__file__).resolve().parent.parent / "converter"
TRIAL_WORDS = re.compile(
    r"nct01371630|inotuzumab|ozogamicin|hyper-?cvd|blinatumomab|salvage|veno-?occlusive|\bvod\b|gvhd|"
    r"cytarabine|rituximab|methotrexate|jama oncol|\bmdacc\b",
    re.IGNORECASE,
)


def test_no_module_of_converter_names_the_trial() -> None:
    hits = [
        f"{path.relative_to(CONVERTER.parent)}:{n}: {line.strip()[:100]}"
        for path in sorted(CONVERTER.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if TRIAL_WORDS.search(line)
    ]
    assert hits == []


def test_the_check_finds_a_planted_trial_word(tmp_path: Path) -> None:
    assert TRIAL_WORDS.search('EXAMPLE = "NCT01371630"') and TRIAL_WORDS.search("if drug == 'Inotuzumab':")
    assert not TRIAL_WORDS.search("responders with MRD-negative status")
