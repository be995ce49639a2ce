"""Load mapping specs and controlled terminology, and check them before any data is read.

Every error names the spec file, the variable and the line: an unknown rule, a missing source field or a
codelist that does not exist stops the run here, not half-way through a conversion.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from converter.errors import SpecError
from converter.paths import mappings_dir
from converter.spec.columns import expression_column_problems
from converter.spec.expr import Expr, parse_expression
from converter.spec.form_fields import FormsIndex
from converter.spec.model import (
    CORE_VALUES,
    DATA_TYPES,
    ORIGIN_TYPES,
    Codelist,
    DatasetSpec,
    Origin,
    Rule,
    SourceSpec,
    SuppSpec,
    Term,
    Terminology,
    ValueLevel,
    VariableSpec,
)
from converter.spec.rules import RuleDef, check_args, compile_expressions, normalise_args
from converter.spec.vocabulary import vocabulary
from converter.spec.yamlines import line_of, line_of_key, load_yaml_lines, strip_lines

_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")
DATASET_KEYS = {
    "dataset", "label", "class", "structure", "standard", "keys", "depends", "intermediate", "sources", "supp",
    "variables", "comment", "extra",
}  # fmt: skip
VARIABLE_KEYS = {
    "name", "label", "type", "length", "order", "core", "codelist", "origin", "rule", "rules", "method",
    "format", "significant_digits", "value_level", "comment",
}  # fmt: skip
SOURCE_KEYS = {"id", "form", "join", "where", "rows", "dataset"}


class _Errors:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, line: int, where: str, msg: str) -> None:
        loc = f"{self.path}:{line}" if line else str(self.path)
        self.items.append(f"{loc}: {where}: {msg}" if where else f"{loc}: {msg}")

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)


def _parse_origin(raw: Any, var: str, line: int, err: _Errors) -> Origin:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict) or raw.get("type") not in ORIGIN_TYPES:
        err.add(line, f"variable {var}", f"origin must be one of {ORIGIN_TYPES} (got {strip_lines(raw)!r})")
        return Origin("Derived")
    return Origin(type=str(raw["type"]), source=raw.get("source"), page=raw.get("page"))


def _expr(text: Any, line: int, where: str, err: _Errors) -> Expr | None:
    """A spec expression parsed and checked (syntax and constructs; columns later, in check_specs)."""
    try:
        return parse_expression(text, file=str(err.path), line=line, where=where)
    except SpecError as exc:
        err.items.extend(exc.messages)
        return None


def _parse_rule(raw: Any, var: str, line: int, err: _Errors, rules: dict[str, RuleDef]) -> Rule | None:
    if not isinstance(raw, dict):
        err.add(line, f"variable {var}", f"rule must be a mapping {{name: args}}, got {raw!r}")
        return None
    body = strip_lines(raw)
    if len(body) != 1:
        err.add(line_of(raw) or line, f"variable {var}", f"rule must name exactly one rule, got {sorted(body)}")
        return None
    name, args = next(iter(body.items()))
    rdef = rules.get(name)
    at = line_of(raw) or line
    if rdef is None:
        err.add(at, f"variable {var}", f"unknown rule {name!r} (known: {', '.join(rules)})")
        return None
    nargs = normalise_args(rdef, args)
    problems = check_args(rdef, nargs)
    for msg in problems:
        err.add(at, f"variable {var}", msg)
    if not problems:
        raw_args = raw.get(name)

        def parse(text: str, what: str, key: str, index: int | None) -> Expr | None:
            line = line_of_key(raw_args, key) or at
            item = raw_args.get(key) if isinstance(raw_args, dict) else None
            if key != "when" and index is not None and isinstance(item, list) and index < len(item):
                line = line_of_key(item[index], "filter") or line  # a source of a list: its own line
            return _expr(text, line, f"variable {var} {what}", err)

        before = len(err.items)
        nargs = compile_expressions(rdef, nargs, parse)
        if len(err.items) > before:
            return None
    return Rule(name=name, args=nargs, line=at)


def _parse_value_level(raw: Any, var: str, line: int, err: _Errors) -> tuple[ValueLevel, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or "by" not in raw or not isinstance(raw.get("values"), dict):
        err.add(line, f"variable {var}", "value_level needs {by: VAR, values: {VALUE: {type: ...}}}")
        return ()
    out = []
    for value, meta in raw["values"].items():
        if value == "__line__":
            continue
        meta = meta or {}
        vtype = meta.get("type", "text")
        if vtype not in DATA_TYPES:
            err.add(line_of(meta) or line, f"variable {var} value {value}", f"type {vtype!r} not in {DATA_TYPES}")
        origin = meta.get("origin")
        out.append(
            ValueLevel(
                by=str(raw["by"]),
                value=str(value),
                type=vtype,
                length=meta.get("length"),
                unit=meta.get("unit"),
                codelist=meta.get("codelist"),
                label=meta.get("label"),
                significant_digits=meta.get("significant_digits"),
                origin=_parse_origin(origin, var, line, err) if origin else None,
            )
        )
    return tuple(out)


def _parse_variable(raw: Any, order: int, err: _Errors, vocab: dict[str, RuleDef]) -> VariableSpec | None:
    line = line_of(raw)
    if not isinstance(raw, dict) or "name" not in raw:
        err.add(line, "", f"variable #{order} needs at least a name (got {strip_lines(raw)!r})")
        return None
    name = str(raw["name"])
    where = f"variable {name}"
    for key in sorted(set(raw) - VARIABLE_KEYS - {"__line__"}):
        err.add(line, where, f"unknown key {key!r} (allowed: {', '.join(sorted(VARIABLE_KEYS))})")
    if not _NAME.match(name):
        err.add(line, where, "name must be 1-8 characters, upper-case letters, digits or _, starting with a letter")
    label = str(raw.get("label", ""))
    if not label:
        err.add(line, where, "label is required")
    vtype = raw.get("type")
    if vtype not in DATA_TYPES:
        err.add(line, where, f"type must be one of {DATA_TYPES} (got {vtype!r})")
    core = raw.get("core", "Perm")
    if core not in CORE_VALUES:
        err.add(line, where, f"core must be one of {CORE_VALUES} (got {core!r})")
    length = raw.get("length")
    if length is not None and length != "auto" and (not isinstance(length, int) or not 1 <= length <= 200):
        err.add(line, where, f"length must be 1..200 or 'auto' (got {length!r})")
    rules: dict[str, Rule] = {}
    if "rule" in raw and "rules" in raw:
        err.add(line, where, "give either rule (all sources) or rules (per source id), not both")
    if "rule" in raw:
        r = _parse_rule(raw["rule"], name, line, err, vocab)
        if r:
            rules["*"] = r
    elif "rules" in raw:
        per = raw["rules"]
        if not isinstance(per, dict):
            err.add(line, where, "rules must map source ids to rules")
        else:
            for sid, rr in per.items():
                if sid == "__line__":
                    continue
                r = _parse_rule(rr, name, line_of(per) or line, err, vocab)
                if r:
                    rules[str(sid)] = r
    origin = _parse_origin(raw.get("origin", "Derived"), name, line, err)
    return VariableSpec(
        name=name,
        label=label,
        type=str(vtype),
        order=int(raw.get("order", order)),
        core=str(core),
        origin=origin,
        rules=rules,
        length=None if length in (None, "auto") else int(length),
        codelist=raw.get("codelist"),
        method=raw.get("method"),
        format=raw.get("format"),
        significant_digits=raw.get("significant_digits"),
        value_level=_parse_value_level(raw.get("value_level"), name, line, err),
        comment=raw.get("comment"),
        line=line,
    )


def _parse_source(raw: Any, err: _Errors) -> SourceSpec | None:
    line = line_of(raw)
    if not isinstance(raw, dict):
        err.add(line, "sources", f"each source must be a mapping, got {raw!r}")
        return None
    for key in sorted(set(raw) - SOURCE_KEYS - {"__line__"}):
        err.add(line, "sources", f"unknown key {key!r} (allowed: {', '.join(sorted(SOURCE_KEYS))})")
    kinds = [k for k in ("form", "rows", "dataset") if k in raw]
    if len(kinds) != 1:
        err.add(line, "sources", "a source needs exactly one of form, rows, dataset")
        return None
    sid = str(raw.get("id") or raw.get("form") or raw.get("dataset") or "ROWS")
    rows = tuple(strip_lines(r) for r in raw.get("rows") or ())
    where = _expr(raw["where"], line_of_key(raw, "where"), f"source {sid} where", err) if "where" in raw else None
    return SourceSpec(
        id=sid,
        form=raw.get("form"),
        join=tuple(raw.get("join") or ()),
        where=where,
        rows=rows,
        dataset=raw.get("dataset"),
        line=line,
    )


def parse_spec(doc: Any, path: Path) -> DatasetSpec:
    err = _Errors(path)
    if not isinstance(doc, dict):
        raise SpecError([f"{path}: a spec must be a mapping with dataset, label, variables"])
    for key in sorted(set(doc) - DATASET_KEYS - {"__line__"}):
        err.add(line_of(doc), "", f"unknown key {key!r} (allowed: {', '.join(sorted(DATASET_KEYS))})")
    name = str(doc.get("dataset", ""))
    if not _NAME.match(name):
        err.add(1, "", f"dataset name {name!r} must be 1-8 upper-case characters")
    label = str(doc.get("label", ""))
    if not label:
        err.add(1, "", "dataset label is required")
    raw_vars = doc.get("variables")
    if not isinstance(raw_vars, list) or not raw_vars:
        err.add(1, "", "variables must be a non-empty list")
        raw_vars = []
    vocab = vocabulary(str(doc.get("standard", "SDTMIG 3.4")))
    variables = [v for i, rv in enumerate(raw_vars, start=1) if (v := _parse_variable(rv, i, err, vocab))]
    names = [v.name for v in variables]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        err.add(0, f"variable {dup}", "defined more than once")
    sources = [s for raw in doc.get("sources") or () if (s := _parse_source(raw, err))]
    ids = [s.id for s in sources]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        err.add(0, "sources", f"source id {dup} used twice: give each an id")
    keys = tuple(doc.get("keys") or ())
    for k in keys:
        if k not in names:
            err.add(line_of(doc), "keys", f"key variable {k} is not a variable of the dataset")
    supp = None
    if doc.get("supp"):
        s = doc["supp"]
        supp = SuppSpec(
            parent=str(s.get("parent", "")),
            idvar=str(s.get("idvar", "")),
            qualifiers=tuple(strip_lines(q) for q in s.get("qualifiers") or ()),
        )
    for v in variables:
        for sid in v.rules:
            if sid != "*" and sid not in ids:
                err.add(v.line, f"variable {v.name}", f"rules name source {sid!r}, which is not in sources {ids}")
    intermediate = doc.get("intermediate", False)
    if not isinstance(intermediate, bool):
        err.add(line_of_key(doc, "intermediate"), "", f"intermediate must be true or false, got {intermediate!r}")
    elif intermediate and not str(doc.get("standard", "")).upper().startswith("ADAM"):
        err.add(line_of_key(doc, "intermediate"), "", "only an ADaM spec can be intermediate (a working dataset)")
    err.raise_if_any()
    return DatasetSpec(
        name=name,
        label=label,
        cls=str(doc.get("class", "")),
        structure=str(doc.get("structure", "")),
        standard=str(doc.get("standard", "SDTMIG 3.4")),
        keys=keys,
        variables=tuple(variables),  # file order = computation order; `order` gives the output order
        sources=tuple(sources),
        depends=tuple(doc.get("depends") or ()),
        intermediate=intermediate is True,
        supp=supp,
        comment=doc.get("comment"),
        path=path,
        extra=strip_lines(doc.get("extra") or {}),
    )


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def load_spec(path: Path) -> DatasetSpec:
    """One spec file, parsed and checked (cached while the file is unchanged: specs are read by every stage)."""
    return _load_spec_cached(*_stamp(path), path)


@functools.lru_cache(maxsize=256)
def _load_spec_cached(key: str, mtime: int, size: int, path: Path) -> DatasetSpec:
    return parse_spec(load_yaml_lines(path), path)


def load_specs(folder: Path) -> dict[str, DatasetSpec]:
    """Every ``*.yaml`` spec in a folder, in dependency order (a dataset after the ones it depends on)."""
    files = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))
    if not files:
        raise SpecError([f"{folder}: no spec files (*.yaml)"])
    errors: list[str] = []
    specs: dict[str, DatasetSpec] = {}
    for p in files:
        try:
            s = load_spec(p)
        except SpecError as exc:
            errors.extend(exc.messages)
            continue
        if s.name in specs:
            errors.append(f"{p}: dataset {s.name} is also defined in {specs[s.name].path}")
        specs[s.name] = s
    if errors:
        raise SpecError(errors)
    return _dependency_order(specs)


def _dependency_order(specs: dict[str, DatasetSpec]) -> dict[str, DatasetSpec]:
    ordered: dict[str, DatasetSpec] = {}
    visiting: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise SpecError([f"circular depends: {' -> '.join((*chain, name))}"])
        visiting.add(name)
        spec = specs[name]
        for dep in spec.depends:
            if dep not in specs:
                raise SpecError([f"{spec.path}: depends on {dep}, which has no spec"])
            visit(dep, (*chain, name))
        ordered[name] = spec

    for n in specs:
        visit(n, ())
    return ordered


# --- controlled terminology ----------------------------------------------------------------------------------
def _parse_codelists(doc: Any, path: Path, err: _Errors) -> dict[str, Codelist]:
    out: dict[str, Codelist] = {}
    for cid, raw in (doc.get("codelists") or {}).items():
        if cid == "__line__":
            continue
        line = line_of(raw)
        if not isinstance(raw, dict) or not isinstance(raw.get("terms"), list):
            err.add(line, f"codelist {cid}", "needs terms: [...]")
            continue
        terms = []
        for t in raw["terms"]:
            if isinstance(t, str | int | float):
                t = {"submission": str(t)}
            if "submission" not in t:
                err.add(line_of(t) or line, f"codelist {cid}", f"term without submission value: {strip_lines(t)}")
                continue
            terms.append(
                Term(
                    submission=str(t["submission"]),
                    code=t.get("code"),
                    decode=t.get("decode"),
                    synonyms=tuple(str(s) for s in t.get("synonyms") or ()),
                )
            )
        subs = [t.submission for t in terms]
        for dup in sorted({s for s in subs if subs.count(s) > 1}):
            err.add(line, f"codelist {cid}", f"term {dup!r} listed twice")
        out[str(cid)] = Codelist(
            id=str(cid),
            name=str(raw.get("name", cid)),
            code=raw.get("code"),
            extensible=bool(raw.get("extensible", False)),
            terms=tuple(terms),
            data_type=str(raw.get("data_type", "text")),
            source=str(raw.get("source", "CDISC/NCI")),
        )
    return out


def load_terminology(folder: Path | None = None) -> Terminology:
    """All codelists under ``mappings/ct/*.yaml``; the first file's ``package`` names the CT version.

    Cached while none of the files changes (Terminology is immutable)."""
    folder = folder or mappings_dir() / "ct"
    return _load_terminology_cached(tuple(_stamp(p) for p in sorted(folder.glob("*.yaml"))), folder)


@functools.lru_cache(maxsize=16)
def _load_terminology_cached(stamps: tuple[tuple[str, int, int], ...], folder: Path) -> Terminology:
    codelists: dict[str, Codelist] = {}
    packages: list[str] = []
    errors: list[str] = []
    for p in sorted(folder.glob("*.yaml")):
        err = _Errors(p)
        doc = load_yaml_lines(p)
        if not isinstance(doc, dict):
            errors.append(f"{p}: a terminology file must be a mapping with package and codelists")
            continue
        if doc.get("package"):
            packages.append(str(doc["package"]))
        for cid, cl in _parse_codelists(doc, p, err).items():
            if cid in codelists:
                err.add(line_of(doc), f"codelist {cid}", "defined in more than one file")
            codelists[cid] = dataclasses.replace(cl, package=str(doc.get("package") or ""))
        errors.extend(err.items)
    if errors:
        raise SpecError(errors)
    return Terminology(package="; ".join(dict.fromkeys(packages)), codelists=codelists)


# --- cross-checks against the forms and terminology, before data ------------------------------------------------
def check_specs(
    specs: dict[str, DatasetSpec],
    forms: FormsIndex | None,
    ct: Terminology,
    upstream: Iterable[str] | Mapping[str, Collection[str]] = (),
) -> None:
    """Raise SpecError listing every reference a spec makes that does not exist.

    Checks: source forms and fields exist in forms.yaml; codelists exist; rules read only earlier target
    variables; lookups name a dataset built before (or one of ``upstream``, e.g. SDTM for ADaM specs); every
    column an expression reads exists in the rows it runs on (:mod:`converter.spec.columns`; for input datasets
    when ``upstream`` maps them to their columns).
    """
    errors: list[str] = []
    available = set(upstream)
    columns: dict[str, Collection[str]] = dict(upstream) if isinstance(upstream, Mapping) else {}
    for spec in specs.values():
        err = _Errors(spec.path or Path(spec.name))
        rules = vocabulary(spec.standard)
        for s in spec.sources:
            if s.form is not None:
                if forms is None or s.form not in forms.forms:
                    err.add(s.line, f"source {s.id}", f"form {s.form!r} is not in forms.yaml")
                    continue
                for j in s.join:
                    if j not in forms.forms:
                        err.add(s.line, f"source {s.id}", f"joined form {j!r} is not in forms.yaml")
            if s.dataset is not None and s.dataset not in available and s.dataset not in specs:
                err.add(s.line, f"source {s.id}", f"dataset {s.dataset!r} is not built before this one")
        row_phase = {v.name for v in spec.variables if any(rules[r.name].phase == "row" for r in v.rules.values())}
        row_phase |= {v.name for v in spec.variables if not v.rules}
        seen: list[str] = []
        for v in spec.variables:
            where = f"variable {v.name}"
            if v.codelist and v.codelist not in ct.codelists:
                err.add(v.line, where, f"codelist {v.codelist!r} does not exist under mappings/ct")
            for vl in v.value_level:
                if vl.codelist and vl.codelist not in ct.codelists:
                    err.add(v.line, where, f"value-level codelist {vl.codelist!r} does not exist")
            inline_only = bool(spec.sources) and all(s.rows for s in spec.sources)
            if not v.rules and not inline_only:
                err.add(v.line, where, "no rule fills this variable")
            for sid, rule in v.rules.items():
                rdef = rules[rule.name]
                for src in spec.sources:
                    if sid not in ("*", src.id) or src.form is None or forms is None:
                        continue
                    if src.form not in forms.forms:
                        continue
                    for fld in rdef.fields(rule.args):
                        if not _field_known(fld, src, forms):
                            err.add(rule.line, where, f"rule {rule.name}: source field {fld!r} is not in "
                                    f"form {src.form}" + (f" or joined {list(src.join)}" if src.join else ""))
                if rule.name == "ct":
                    cl = rule.args.get("codelist")
                    if cl not in ct.codelists:
                        err.add(rule.line, where, f"rule ct: codelist {cl!r} does not exist under mappings/ct")
                if rule.name == "lookup":
                    ds = rule.args.get("dataset")
                    if ds not in available and ds != spec.name and ds not in spec.depends:
                        err.add(rule.line, where, f"rule lookup: dataset {ds!r} is not built before {spec.name} "
                                "(add it to depends)")
                if rule.name == "subject_agg" and forms is not None:
                    f_form, f_field = rule.args.get("form"), rule.args.get("field")
                    if f_form not in forms.forms or f_field not in forms.forms[f_form].fields:
                        err.add(rule.line, where, f"rule subject_agg: {f_form}.{f_field} is not in forms.yaml")
                for t in rdef.targets(rule.args):
                    if t not in seen and t not in row_phase and t != v.name:
                        err.add(rule.line, where, f"rule {rule.name} reads {t}, which is not an earlier variable")
            seen.append(v.name)
        errors.extend(err.items)
        errors.extend(expression_column_problems(spec, forms, columns))
        available.add(spec.name)
        columns[spec.name] = [v.name for v in spec.variables]
    if errors:
        raise SpecError(errors)


def _field_known(name: str, src: SourceSpec, forms: FormsIndex) -> bool:
    if "." in name:
        form, fld = name.split(".", 1)
        return form in forms.forms and fld in forms.forms[form].fields and form in (src.form, *src.join)
    return any(name in forms.forms[f].fields for f in (src.form, *src.join) if f is not None and f in forms.forms)
