"""Records -> SDTM: load and check the specs, then build every dataset. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from converter.paths import mappings_dir
from converter.records.model import Records
from converter.records.schema import FormSchema, load_forms
from converter.sdtm.engine import Accounting, build_all
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


def records_to_sdtm(records: Records, mappings: Path | None = None) -> SdtmResult:
    specs, ct, forms = load_sdtm_specs(mappings)
    datasets, accounting = build_all(specs, records, ct, forms)
    return SdtmResult(datasets=datasets, specs=specs, ct=ct, accounting=accounting, forms=forms)
