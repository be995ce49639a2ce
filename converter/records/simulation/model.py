"""The cohort model (``mappings/records/simulation.yaml``): loading, and its checks against the forms.

The model is data: strata, response codes, terms with their MedDRA SOCs, grades, rates, time windows, the
dosing schedule, the toxicities (each with a generator ``kind``) and where each drawn quantity is written
(``records:``, roles -> forms.yaml form and fields). :func:`check_model` refuses a model whose codes are not
codes of the fields they are written to, whose terms are undefined or carry a SOC that is not one of the 27
MedDRA SOC names (``mappings/ct/meddra-soc.yaml``), or whose roles are missing, with every problem at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.paths import mappings_dir
from converter.records.schema import FormSchema
from converter.spec.yamlines import load_yaml_lines, strip_lines

__all__ = [
    "ACTION_KEYS",
    "MEDDRA_KEYS",
    "RECORD_ROLES",
    "SERIOUSNESS_CRITERIA",
    "TOXICITY_KINDS",
    "check_model",
    "default_seed",
    "load_parameters",
    "meddra_socs",
    "schedule",
    "simulation_path",
    "strata",
    "toxicity",
]

#: the seriousness criteria of ``adverse_events.seriousness`` (ICH E2A), each an item of records.adverse_events
SERIOUSNESS_CRITERIA = (
    "death",
    "life_threatening",
    "hospitalisation",
    "disability",
    "congenital",
    "medically_important",
)
#: what a term of ``meddra`` states (codes: 8-digit MedDRA codes or null)
MEDDRA_KEYS = ("llt", "llt_code", "pt_code", "hlt", "hlt_code", "hlgt", "hlgt_code")
#: the keys of ``adverse_events.action``
ACTION_KEYS = ("after_treatment", "fatal", "interrupted", "interrupt_from_grade", "other")
#: per record role, the items the generator writes (each a field name in ``records.<role>``)
RECORD_ROLES: dict[str, tuple[str, ...]] = {
    "enrolment": ("subject", "site", "consent", "enrolment", "investigator"),
    "demography": ("subject", "birth", "age", "sex", "race", "ethnic", "country"),
    "diagnosis": (
        "subject",
        "date",
        "stratum",
        "marker",
        "cytogenetics",
        "marrow_blasts",
        "target_expression",
        "wbc",
        "prior_regimens",
        "prior_regimen_names",
        "prior_transplant",
        "prior_agent",
    ),
    "prior_therapy": ("subject", "number", "treatment"),
    "supportive_care": ("subject", "number", "treatment", "indication", "start", "end"),
    "dosing": ("subject", "course", "drug", "day", "date", "dose", "unit", "frequency", "route"),
    "response": ("subject", "date", "course", "visit", "response", "marrow_blasts", "mrd", "mrd_level"),
    "transplant": ("subject", "date", "donor"),
    "relapse": ("subject", "date", "visit", "site"),
    "end_of_treatment": ("subject", "date", "courses", "reason"),
    "follow_up": ("subject", "last_alive", "status"),
    "death": ("subject", "date", "cause"),
    "adverse_events": (
        "subject",
        "number",
        "verbatim",
        "term",
        "soc",
        "start",
        "end",
        "grade",
        "serious",
        "relationship",
        "outcome",
        "flag",
        "llt",
        "llt_code",
        "pt_code",
        "hlt",
        "hlt_code",
        "hlgt",
        "hlgt_code",
        "soc_code",
        *SERIOUSNESS_CRITERIA,
        "action",
    ),
    "labs": ("subject", "date", "visit", "test", "value", "unit"),
}
#: roles a model may leave out (then the generator writes no such records)
OPTIONAL_ROLES = frozenset({"prior_therapy", "supportive_care"})
#: items a role may leave out (the prior regimens as one text, where the forms collect them one per record)
OPTIONAL_ITEMS = frozenset({("diagnosis", "prior_regimen_names")})
#: what a term of ``terms`` states
TERM_KEYS = {"soc", "verbatim", "rel", "serious"}
#: the toxicity generators, in the order they draw
TOXICITY_KINDS = ("dose-or-transplant", "dose-related", "course-episodes", "term-episodes", "after-transplant")


def simulation_path() -> Path:
    return mappings_dir() / "records" / "simulation.yaml"


class ModelSection(dict[str, Any]):
    """A mapping of the model that names itself: a key the simulator needs and the file lacks (a section renamed
    or deleted) is a :class:`SpecError` naming the file and the key's dotted place, not an internal KeyError."""

    def __init__(self, items: dict[str, Any], file: str, where: str) -> None:
        super().__init__(items)
        self.file, self.where = file, where

    def __missing__(self, key: str) -> Any:
        place = f"{self.where}.{key}" if self.where else str(key)
        raise SpecError([f"{self.file}: {place}: missing (the simulator reads it; see the model's comments)"])

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelSection:
        return ModelSection({k: copy.deepcopy(v, memo) for k, v in self.items()}, self.file, self.where)


def _sections(value: Any, file: str, where: str) -> Any:
    if isinstance(value, dict):
        items = {k: _sections(v, file, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        return ModelSection(items, file, where)
    if isinstance(value, list):
        return [_sections(v, file, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


@lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Any]:
    doc = strip_lines(load_yaml_lines(path))  # the specs' loader: safe, alias expansion bounded, no controls
    if not isinstance(doc, dict):
        raise SpecError([f"{path}: not a simulation model (expected a mapping)"])
    out: dict[str, Any] = _sections(doc, str(path), "")
    return out


def load_parameters(path: Path | None = None) -> dict[str, Any]:
    """The cohort model (``mappings/records/simulation.yaml``) as a plain mapping (a fresh copy)."""
    return copy.deepcopy(_load((path or simulation_path()).resolve()))


def default_seed(path: Path | None = None) -> int:
    """The calibrated default seed (``calibration.default_seed``): the bundled example is made with it."""
    return int(_load((path or simulation_path()).resolve())["calibration"]["default_seed"])


def meddra_socs(path: Path | None = None) -> dict[str, int]:
    """The MedDRA System Organ Classes (``mappings/ct/meddra-soc.yaml``): SOC name -> MedDRA SOC code."""
    return dict(_socs((path or mappings_dir() / "ct" / "meddra-soc.yaml").resolve()))


@lru_cache(maxsize=4)
def _socs(path: Path) -> tuple[tuple[str, int], ...]:
    doc = _load(path)
    rows = doc.get("meddra_soc")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"code", "name"} <= set(r) for r in rows):
        raise SpecError([f"{path}: meddra_soc: expected a list of {{code, name}}"])
    return tuple((str(r["name"]), int(r["code"])) for r in rows)


def strata(P: Mapping[str, Any]) -> tuple[str, ...]:
    """The model's strata, in order (``diagnosis.strata``)."""
    return tuple(str(s) for s in P["diagnosis"]["strata"])


def toxicity(P: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The toxicity of a generator kind (exactly one per kind; :func:`check_model` makes sure)."""
    found = [t for t in P["toxicity"].values() if t.get("kind") == kind]
    return dict(found[0])


def check_model(P: Mapping[str, Any], schema: FormSchema, path: Path | None = None) -> None:
    """Every problem of the model against the forms, raised together as a :class:`SpecError`."""
    errors: list[str] = []
    name = str(path or simulation_path())
    rec = P.get("records") or {}
    for role, items in RECORD_ROLES.items():
        spec = rec.get(role)
        if spec is None and role in OPTIONAL_ROLES:
            continue
        if not isinstance(spec, dict) or spec.get("form") not in schema.forms:
            errors.append(f"{name} records.{role}: needs `form`, a form of forms.yaml")
            continue
        fields = schema.forms[spec["form"]].fields
        for item in items:
            if spec.get(item) is None and (role, item) in OPTIONAL_ITEMS:
                continue
            if spec.get(item) not in fields:
                errors.append(f"{name} records.{role}.{item}: {spec.get(item)!r} is not a field of {spec['form']}")
    kinds = [t.get("kind") for t in P["toxicity"].values()]
    for kind in TOXICITY_KINDS:
        if kinds.count(kind) != 1:
            errors.append(f"{name} toxicity: needs exactly one toxicity of kind {kind} ({kinds.count(kind)} found)")
    if errors:
        raise SpecError(errors)

    def codes(role: str, item: str) -> set[str]:
        spec = rec[role]
        return set(schema.forms[spec["form"]].fields[spec[item]].codes)

    def check(values: Any, role: str, item: str, where: str) -> None:
        allowed = codes(role, item)
        bad = sorted({str(v) for v in values} - allowed) if allowed else []
        if bad:
            errors.append(f"{name} {where}: {bad} not codes of {rec[role]['form']}.{rec[role][item]}")

    dg, tr, rp, dz, az = P["diagnosis"], P["treatment"], P["response"], P["deaths"], P["adverse_events"]
    check(dg["strata"], "diagnosis", "stratum", "diagnosis.strata")
    check(dg["cytogenetics"], "diagnosis", "cytogenetics", "diagnosis.cytogenetics")
    check([dg["marker"]["cytogenetics"]], "diagnosis", "cytogenetics", "diagnosis.marker.cytogenetics")
    check(dg["marker"]["codes"].values(), "diagnosis", "marker", "diagnosis.marker.codes")
    check(P["demography"]["race"], "demography", "race", "demography.race")
    check(P["demography"]["ethnic"], "demography", "ethnic", "demography.ethnic")
    for key, item in (("drug", "drug"), ("unit", "unit"), ("freq", "frequency"), ("route", "route")):
        check([i[key] for i in tr["schedule"]], "dosing", item, "treatment.schedule")
    if tr["study_drug"] not in {i["drug"] for i in tr["schedule"]}:
        errors.append(f"{name} treatment.study_drug: {tr['study_drug']!r} is not a drug of treatment.schedule")
    unknown_when = sorted({str(i["when"]) for i in tr["schedule"] if "when" in i} - set(tr.get("subgroups") or {}))
    if unknown_when:
        errors.append(f"{name} treatment.schedule: when {unknown_when} not among treatment.subgroups")
    check(tr["early_stop_reasons"], "end_of_treatment", "reason", "treatment.early_stop_reasons")
    check(tr["end_reasons"].values(), "end_of_treatment", "reason", "treatment.end_reasons")
    resp_codes = [str(c) for c in rp["codes"]]
    check(resp_codes, "response", "response", "response.codes")
    roles = [rp["complete"], rp["partial"], rp["no_response"], rp["progression"], *rp["cr_first_seen_as_codes"]]
    roles += [*rp["other_responses"], *rp["nonresponse"]]
    if missing := sorted({str(c) for c in roles} - set(resp_codes)):
        errors.append(f"{name} response: codes {missing} are not in response.codes")
    responders = [str(rp["complete"]), *map(str, rp["other_responses"])]
    if resp_codes[0] != responders[0] or set(resp_codes[: len(responders)]) != set(responders):
        errors.append(f"{name} response.codes: the complete response first, then the other responses, best first")
    if set(map(str, rp["nonresponse"])) - set(map(str, tr["nonresponder_courses"])):
        errors.append(f"{name} treatment.nonresponder_courses: a course count for every response.nonresponse code")
    check(rp["mrd_codes"].values(), "response", "mrd", "response.mrd_codes")
    check(P["transplant"]["donor"], "transplant", "donor", "transplant.donor")
    check(rp["relapse_site"], "relapse", "site", "response.relapse_site")
    check(P["follow_up"]["status"].values(), "follow_up", "status", "follow_up.status")
    for k in ("nonresponder_early", "nonresponder_late", "after_relapse", "in_remission_after_sct"):
        check(dz[k], "death", "cause", f"deaths.{k}")
    check(dz["in_remission_no_sct"], "death", "cause", "deaths.in_remission_no_sct")
    check(dz["fatal_events"], "death", "cause", "deaths.fatal_events")
    check(dz["after_transplant_causes"], "death", "cause", "deaths.after_transplant_causes")
    check([dz["too_early"]["cause"], dz["too_early"]["instead"]], "death", "cause", "deaths.too_early")
    check(P["labs"]["units"], "labs", "test", "labs.units")
    check(P["labs"]["units"].values(), "labs", "unit", "labs.units")
    check(az["outcomes"].values(), "adverse_events", "outcome", "adverse_events.outcomes")
    terms = P["terms"]
    used = [p for v in dz["fatal_events"].values() for p in v] + list(az["flag_terms"])
    used += [e["pt"] for e in P["other_events"]]
    for key, tx in P["toxicity"].items():
        used += list(tx.get("terms") or []) + ([tx["term"]] if "term" in tx else [])
        if "cause" in tx:
            check([tx["cause"]], "death", "cause", f"toxicity.{key}.cause")
        if "count" in tx and tx["count"] not in P["targets"]["counts"]:
            errors.append(f"{name} toxicity.{key}: count {tx['count']!r} is not a targets.counts entry")
        lab = tx.get("lab")
        if lab is not None and lab["test"] not in P["labs"]["units"]:
            errors.append(f"{name} toxicity.{key}.lab: test {lab['test']!r} not in labs.units")
    if missing := sorted({u for u in used if u not in terms}):
        errors.append(f"{name}: terms {missing} used but not defined under `terms`")
    socs = meddra_socs()
    for t, spec in terms.items():
        if not isinstance(spec, dict):
            errors.append(f"{name} terms.{t}: expected {{soc, verbatim, rel, serious}}")
            continue
        if stray := sorted(str(k) for k in set(spec) - TERM_KEYS):
            errors.append(
                f"{name} terms.{t}: unknown keys {stray} (an unquoted comma in a flow mapping splits a value: quote it)"
            )
        if spec.get("soc") not in socs:
            soc = spec.get("soc")
            errors.append(f"{name} terms.{t}: soc {soc!r} is not a MedDRA SOC name (mappings/ct/meddra-soc.yaml)")
        if spec.get("rel") not in codes("adverse_events", "relationship"):
            errors.append(f"{name} terms.{t}: rel {spec.get('rel')!r} is not an AEREL code")
    errors += _visit_problems(P, name, codes)
    errors += _meddra_problems(P, name)
    errors += _ae_coding_problems(P, name, codes)
    for key, tx in P["toxicity"].items():
        if "soc" in tx and tx["soc"] not in socs:
            errors.append(f"{name} toxicity.{key}: soc {tx['soc']!r} is not a MedDRA SOC name")
    if not errors:
        errors += _counted_terms_kept(P, name)
    if not {1, 2} <= {int(k) for k in tr["assessment_courses"]}:
        errors.append(f"{name} treatment.assessment_courses must include courses 1 and 2")
    if errors:
        raise SpecError(errors)


def _visit_problems(P: Mapping[str, Any], name: str, codes: Callable[[str, str], set[str]]) -> list[str]:
    """``treatment.visits``: screening, course (with ``{n}``) and follow-up, each a VISIT code of the forms."""
    vz = P["treatment"].get("visits") or {}
    if sorted(vz) != ["course", "follow_up", "screening"] or "{n}" not in str(vz.get("course")):
        return [f"{name} treatment.visits: expected {{screening, course (with {{n}}), follow_up}}"]
    kmax = int(P["treatment"]["max_courses"])
    want = [vz["screening"], vz["follow_up"]] + [str(vz["course"]).format(n=k) for k in range(1, kmax + 1)]
    errors = []
    for role in ("labs", "response", "relapse"):
        allowed = codes(role, "visit")
        if bad := [v for v in want if v not in allowed]:
            errors.append(f"{name} treatment.visits: {bad} are not VISIT codes of the {role} form")
    return errors


def _meddra_problems(P: Mapping[str, Any], name: str) -> list[str]:
    """``meddra``: one entry per term of ``terms``, known keys, codes 8-digit integers or null."""
    errors: list[str] = []
    md = P.get("meddra") or {}
    if not isinstance(md, dict):
        return [f"{name} meddra: expected a mapping of terms"]
    if missing := sorted(set(P["terms"]) - set(md)):
        errors.append(f"{name} meddra: terms {missing} have no MedDRA coding (give null codes where unconfirmed)")
    for t, spec in md.items():
        if t not in P["terms"]:
            errors.append(f"{name} meddra.{t}: not a term of `terms`")
            continue
        if not isinstance(spec, dict) or set(spec) - set(MEDDRA_KEYS):
            errors.append(f"{name} meddra.{t}: expected keys among {list(MEDDRA_KEYS)}")
            continue
        for k in ("llt_code", "pt_code", "hlt_code", "hlgt_code"):
            v = spec.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 10000000 <= v <= 99999999):
                errors.append(f"{name} meddra.{t}.{k}: {v!r} is not an 8-digit MedDRA code")
        if spec.get("llt") == t and spec.get("llt_code") != spec.get("pt_code"):
            errors.append(f"{name} meddra.{t}: the LLT named as its PT carries the PT's code")
    return errors


def _ae_coding_problems(P: Mapping[str, Any], name: str, codes: Callable[[str, str], set[str]]) -> list[str]:
    """``adverse_events.seriousness`` (grades per criterion) and ``adverse_events.action`` (AEACN codes)."""
    errors: list[str] = []
    az = P["adverse_events"]
    ser = az.get("seriousness") or {}
    if stray := sorted(set(ser) ^ set(SERIOUSNESS_CRITERIA)):
        errors.append(
            f"{name} adverse_events.seriousness: expected exactly {list(SERIOUSNESS_CRITERIA)} (differs: {stray})"
        )
    covered = {int(g) for v in ser.values() for g in (v or [])}
    if missing := sorted(set(range(1, 6)) - covered):
        errors.append(f"{name} adverse_events.seriousness: a serious event of grade {missing} would meet no criterion")
    act = az.get("action") or {}
    if stray := sorted(set(act) ^ set(ACTION_KEYS)):
        errors.append(f"{name} adverse_events.action: expected exactly {list(ACTION_KEYS)} (differs: {stray})")
    allowed = codes("adverse_events", "action")
    for k in ("after_treatment", "fatal", "interrupted", "other"):
        if k in act and allowed and act[k] not in allowed:
            errors.append(f"{name} adverse_events.action.{k}: {act[k]!r} is not an AEACN code of the AE form")
    return errors


def _counted_terms_kept(P: Mapping[str, Any], name: str) -> list[str]:
    """Other events must not change a published count: no grade 3+ of a counted term or SOC."""
    errors: list[str] = []
    terms, tx = P["terms"], P["toxicity"].values()
    counted_terms = {t["term"] for t in tx if "count" in t and "term" in t}
    counted_socs = {t["soc"] for t in tx if "count" in t and "soc" in t}
    for t in tx:
        for term in t.get("terms") or []:
            if "soc" in t and terms[term]["soc"] != t["soc"]:
                errors.append(f"{name} toxicity: term {term} is not of SOC {t['soc']}")
    for e in P["other_events"]:
        hi = max(int(gr) for gr in e["grades"])
        if hi >= 3 and (e["pt"] in counted_terms or terms[e["pt"]]["soc"] in counted_socs):
            errors.append(f"{name} other_events {e['pt']}: grade 3+ would change a published count")
    return errors


def _courses_of(spec: Any, kmax: int) -> list[int]:
    if spec == "odd":
        return list(range(1, kmax + 1, 2))
    if spec == "even":
        return list(range(2, kmax + 1, 2))
    return [int(c) for c in spec]


def schedule(P: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The protocol's administrations, one item per course / drug / day, in dosing-form key order."""
    kmax = int(P["treatment"]["max_courses"])
    items: list[dict[str, Any]] = []
    for it in P["treatment"]["schedule"]:
        for c in _courses_of(it["courses"], kmax):
            for d in it["days"]:
                items.append({**it, "course": c, "day": int(d)})
    keys = [(i["course"], str(i["drug"]), i["day"]) for i in items]
    if len(set(keys)) != len(keys):
        raise SpecError(["simulation.yaml treatment.schedule: two administrations share course, drug and day"])
    order = sorted(range(len(items)), key=lambda i: keys[i])
    return [items[i] for i in order]
