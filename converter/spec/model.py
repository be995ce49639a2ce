"""The mapping-spec model: what a spec file under ``mappings/sdtm`` or ``mappings/adam`` states.

One YAML file per target dataset::

    dataset: DM                      # dataset name (<= 8 chars)
    label: Demographics              # dataset label (<= 40 chars)
    class: SPECIAL PURPOSE           # SDTM/ADaM class (Define-XML def:Class)
    structure: One record per subject
    standard: SDTMIG 3.4             # or ADaMIG 1.3
    keys: [STUDYID, USUBJID]         # sort keys = Define-XML KeySequence
    depends: []                      # datasets that must be built first (e.g. [DM] for --DY)
    intermediate: false              # ADaM only: a working dataset, built for later datasets to read (as
                                     #   admiral's ex_ext or ovr) but not part of the package (no file, not in
                                     #   define.xml); default false
    sources:                         # where rows come from; each yields rows of the dataset
      - id: DEMOG                    # source id (defaults to the form); rules may differ per source
        form: DEMOG                  # CRF form that drives the rows (one row per form record) ...
        join: [ENROL]                # ... with one-per-subject forms merged on SUBJID
        where: "RESP.notna()"       # optional condition on the source rows (the closed expression language of
                                     #   converter.spec.expr; rows left out are counted, never silently)
      - id: PARAMS
        rows: [{TSPARMCD: AGEMIN, TSVAL: "18"}, ...]   # inline protocol data (trial design datasets)
    supp: {parent: DM, idvar: ""}   # only for SUPP-- datasets built from `qualifiers:`
    variables:
      - name: SEX
        label: Sex
        type: text                   # text|integer|float|date|datetime|partialDate|time|durationDatetime
        length: 1                    # or omitted: longest value
        core: Req                    # Req|Exp|Perm (ADaM: Req|Cond|Perm)
        codelist: SEX                # codelist id under mappings/ct
        origin: Collected            # Collected|Derived|Assigned|Protocol|Predecessor (+ source for Collected)
        rule: {ct: {field: SEX, codelist: SEX}}
        # or rules: {SOURCE_ID: {...}, OTHER_ID: {...}} where sources differ
        method: "Text of the derivation for Define-XML (Derived variables)"
        format: DATE9.               # SAS display format (numeric dates in ADaM)
        value_level: {by: LBTESTCD, values: {MRD: {type: float, unit: "%"}, ...}}   # Define-XML VLM

The rule vocabularies are closed: :data:`converter.spec.rules.SDTM_RULES` and
:data:`converter.spec.adam_rules.ADAM_RULES` (by ``standard``); every rule and expression construct is listed in
``docs/spec-reference.md`` (generated), and ``docs/spec.schema.json`` is a JSON Schema of this format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converter.spec.expr import Expr

ORIGIN_TYPES = ("Collected", "Derived", "Assigned", "Protocol", "Predecessor", "Not Available")
CORE_VALUES = ("Req", "Exp", "Perm", "Cond")
DATA_TYPES = (
    "text",
    "integer",
    "float",
    "date",
    "datetime",
    "partialDate",
    "partialDatetime",
    "time",
    "durationDatetime",
    "incompleteDatetime",
)
NUMERIC_TYPES = ("integer", "float")


@dataclass(frozen=True)
class Rule:
    """One rule of the closed vocabulary: its name and its (validated) arguments."""

    name: str
    args: Any
    line: int = 0

    def describe(self) -> str:
        return f"{self.name}: {self.args}"


@dataclass(frozen=True)
class Origin:
    type: str
    source: str | None = None  # "FORM.FIELD" for Collected; "DATASET.VAR" for Predecessor
    page: str | None = None


@dataclass(frozen=True)
class ValueLevel:
    """Value-level metadata of one variable for one value of the `by` variable (Define-XML VLM)."""

    by: str
    value: str
    type: str
    length: int | None = None
    unit: str | None = None
    codelist: str | None = None
    label: str | None = None
    significant_digits: int | None = None
    origin: Origin | None = None


@dataclass(frozen=True)
class VariableSpec:
    name: str
    label: str
    type: str
    order: int
    core: str
    origin: Origin
    rules: dict[str, Rule]  # source id -> rule; key "*" applies to every source
    length: int | None = None
    codelist: str | None = None
    method: str | None = None
    format: str | None = None
    significant_digits: int | None = None
    value_level: tuple[ValueLevel, ...] = ()
    comment: str | None = None
    line: int = 0

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def rule_for(self, source_id: str) -> Rule | None:
        return self.rules.get(source_id, self.rules.get("*"))


@dataclass(frozen=True)
class SourceSpec:
    id: str
    form: str | None = None
    join: tuple[str, ...] = ()
    where: Expr | None = None  # parsed at load; str() gives the text as the spec states it
    rows: tuple[dict[str, Any], ...] = ()
    dataset: str | None = None  # an already-built target dataset as the source (ADaM from SDTM)
    line: int = 0


@dataclass(frozen=True)
class SuppSpec:
    parent: str
    idvar: str = ""
    qualifiers: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    label: str
    cls: str
    structure: str
    standard: str
    keys: tuple[str, ...]
    variables: tuple[VariableSpec, ...]
    sources: tuple[SourceSpec, ...] = ()
    depends: tuple[str, ...] = ()
    intermediate: bool = False  # a working dataset: built and read by later datasets, not written (ADaM only)
    supp: SuppSpec | None = None
    comment: str | None = None
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.name

    @property
    def ordered(self) -> list[VariableSpec]:
        """Variables in output order (``order``); ``variables`` keeps the file order, which is computation order."""
        return sorted(self.variables, key=lambda v: v.order)

    @property
    def column_names(self) -> list[str]:
        return [v.name for v in self.ordered]

    def variable(self, name: str) -> VariableSpec:
        for v in self.variables:
            if v.name == name:
                return v
        raise KeyError(f"{self.name}.{name} is not in the spec")

    @property
    def is_adam(self) -> bool:
        return self.standard.upper().startswith("ADAM")


@dataclass(frozen=True)
class Term:
    submission: str
    code: str | None  # NCI C-code
    decode: str | None = None
    synonyms: tuple[str, ...] = ()  # collected values that map to this term


@dataclass(frozen=True)
class Codelist:
    id: str  # submission short name, e.g. SEX
    name: str
    code: str | None  # NCI C-code of the codelist
    extensible: bool
    terms: tuple[Term, ...]
    data_type: str = "text"
    source: str = "CDISC/NCI"  # or "Sponsor", "MedDRA", "ISO 3166", ...
    package: str = ""  # the CT package of its file, e.g. "ADaM CT 2024-03-29" (define.xml's CT standard)

    def submission_values(self) -> set[str]:
        return {t.submission for t in self.terms}

    def collected_map(self) -> dict[str, str]:
        """Collected value (submission value, its decode or a synonym, case-insensitive) -> submission."""
        out: dict[str, str] = {}
        for t in self.terms:
            for key in (t.submission, t.decode, *t.synonyms):
                if key is not None:
                    out.setdefault(key.upper(), t.submission)
        return out


@dataclass(frozen=True)
class Terminology:
    package: str  # e.g. "SDTM CT 2024-03-29"
    codelists: dict[str, Codelist]

    def get(self, cid: str) -> Codelist:
        try:
            return self.codelists[cid]
        except KeyError:
            raise KeyError(f"codelist {cid!r} is not defined under mappings/ct") from None
