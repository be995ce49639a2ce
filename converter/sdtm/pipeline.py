"""Records -> SDTM: load and check the specs, then build every dataset. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from converter.paths import mappings_dir
from converter.records.model import Records, empty_frame
from converter.records.partitions import is_study_level, map_partitions, split_records, stack
from converter.records.schema import FormSchema, load_forms
from converter.sdtm.build import Accounting, build_all
from converter.spec.loader import check_specs, load_specs, load_terminology
from converter.spec.model import DatasetSpec, Terminology


@dataclass
class SdtmResult:
    datasets: dict[str, pd.DataFrame]
    specs: dict[str, DatasetSpec]
    ct: Terminology
    accounting: Accounting
    forms: FormSchema


def load_sdtm_specs(mappings: Path | None = None) -> tuple[dict[str, DatasetSpec], Terminology, FormSchema]:
    """The SDTM specs, CT and form schema, cross-checked before any data is read."""
    root = mappings or mappings_dir()
    forms = load_forms(root / "records" / "forms.yaml")
    ct = load_terminology(root / "ct")
    specs = load_specs(root / "sdtm")
    check_specs(specs, forms, ct)
    return specs, ct, forms


def records_to_sdtm(records: Records, mappings: Path | None = None, partitions: int = 1) -> SdtmResult:
    """Every SDTM dataset of the specs. With ``partitions`` > 1 the subjects are converted in that many
    independent groups (the same functions; the result is identical) so memory follows the partition size."""
    specs, ct, forms = load_sdtm_specs(mappings)
    if partitions <= 1:
        datasets, accounting = build_all(specs, records, ct, forms)
        return SdtmResult(datasets=datasets, specs=specs, ct=ct, accounting=accounting, forms=forms)
    datasets, accounting = sdtm_partitioned(split_records(records, partitions), specs, ct, forms)
    return SdtmResult(datasets=datasets, specs=specs, ct=ct, accounting=accounting, forms=forms)


def sdtm_partitioned(
    parts: Iterable[Records], specs: dict[str, DatasetSpec], ct: Terminology, forms: FormSchema
) -> tuple[dict[str, pd.DataFrame], Accounting]:
    """Study-level datasets once, subject-level datasets per partition, stacked in key order."""
    study = {n: s for n, s in specs.items() if is_study_level(s)}
    subject = {n: s for n, s in specs.items() if n not in study}
    empty = {oid: empty_frame(f) for oid, f in forms.forms.items()}
    study_sets, _ = build_all(study, empty, ct, forms)
    accounting = Accounting()
    accounting.start(empty)

    def one(part: Records) -> dict[str, pd.DataFrame]:
        frames, acc = build_all(subject, part, ct, forms)
        accounting.merge(acc)
        return frames

    stacked = stack(map_partitions(parts, one), specs)
    datasets = {n: study_sets[n] if n in study_sets else stacked[n] for n in specs}
    return datasets, accounting
