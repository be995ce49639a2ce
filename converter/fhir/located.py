"""A FHIR resource as found in the input, and what became of it (the shared vocabulary of FHIR -> SDTM).

:class:`Located` is one resource with the file and place (Bundle entry, NDJSON line) it came from;
:class:`Outcome` is what became of one input resource; :class:`FromFhir` collects the datasets, outcomes,
problems and notes of a conversion (or of one partition of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from converter.errors import Problem

JsonDict = dict[str, Any]


@dataclass
class Located:
    """A resource as found in the input: file, where in it (entry / line), its fullUrl."""

    resource: JsonDict
    file: str
    where: str
    full_url: str | None = None

    @property
    def rtype(self) -> str:
        return str(self.resource.get("resourceType", ""))

    @property
    def key(self) -> str:
        rid = self.resource.get("id")
        return f"{self.rtype}/{rid}" if isinstance(rid, str) else (self.full_url or f"{self.file}#{self.where}")


@dataclass
class Outcome:
    """What became of one input resource."""

    file: str
    where: str
    resource_type: str
    id: str
    status: str  # converted | derived | not converted | invalid
    dataset: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "file": self.file,
            "where": self.where,
            "resourceType": self.resource_type,
            "id": self.id,
            "status": self.status,
            "dataset": self.dataset,
            "reason": self.reason,
        }


@dataclass
class FromFhir:
    datasets: dict[str, pd.DataFrame]
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # tallies behind some notes, kept as counts so that partitions of one input add up (rendered by render_notes)
    unread: dict[str, dict[str, int]] = field(default_factory=dict)  # resource type -> element -> resources
    dangling: dict[str, int] = field(default_factory=dict)  # target type -> references not in the input
    unnumbered: dict[str, int] = field(default_factory=dict)  # dataset -> rows numbered per subject

    def add_tallies(self, other: FromFhir) -> None:
        """Add the note tallies of ``other`` (another partition of the same input) to these."""
        for rtype, d in other.unread.items():
            mine = self.unread.setdefault(rtype, {})
            for k, n in d.items():
                mine[k] = mine.get(k, 0) + n
        for t, n in other.dangling.items():
            self.dangling[t] = self.dangling.get(t, 0) + n
        for ds, n in other.unnumbered.items():
            self.unnumbered[ds] = self.unnumbered.get(ds, 0) + n

    def render_notes(self) -> None:
        """Append the notes of the tallies (elements not carried, references not followed, rows numbered)."""
        for rtype, d in sorted(self.unread.items()):
            listed = ", ".join(f"{k} ({n})" for k, n in sorted(d.items()))
            self.notes.append(f"{rtype}: elements not carried to SDTM: {listed}")
        if self.dangling:
            listed = ", ".join(f"{k} ({n})" for k, n in sorted(self.dangling.items()))
            self.notes.append(f"references to resources not in the input, not needed for SDTM: {listed}")
        for ds, n in sorted(self.unnumbered.items()):
            seq = f"{ds[:2]}SEQ"
            self.notes.append(f"{ds}: {n} row(s) without {seq} (no inoconv identifier) numbered per subject")

    def summary(self) -> dict[str, dict[str, int]]:
        """resource type -> status -> count."""
        out: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            d = out.setdefault(o.resource_type or "?", {})
            d[o.status] = d.get(o.status, 0) + 1
        return dict(sorted(out.items()))


__all__ = ["FromFhir", "JsonDict", "Located", "Outcome"]
