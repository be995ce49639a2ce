"""The rule vocabularies by standard: which registry a spec uses, and any rule by name for the engine."""

from __future__ import annotations

from converter.spec.adam_rules import ADAM_RULES
from converter.spec.rules import SDTM_RULES, RuleDef

__all__ = ["ADAM_RULES", "SDTM_RULES", "rule_def", "vocabulary"]


def vocabulary(standard: str) -> dict[str, RuleDef]:
    """The rule vocabulary of a spec's standard: ADaM for ``ADaMIG ...``, else SDTM."""
    return ADAM_RULES if standard.strip().upper().startswith("ADAM") else SDTM_RULES


def rule_def(name: str) -> RuleDef:
    """A rule of either vocabulary, by name (for the engine, which runs both)."""
    found = SDTM_RULES.get(name) or ADAM_RULES.get(name)
    if found is None:
        raise KeyError(f"unknown rule {name!r}")
    return found
