"""FHIR R4 (transaction/collection Bundles, single resources or NDJSON) -> SDTM frames, through the same specs.

Each resource is matched to a spec source (by its identifier system, by the source's ``match`` conditions, else
the type's default source); every element of the source is read back column-wise with the inverse transform,
alternatives in spec order (first value wins). Child groups (SUPP--, DS, TS, TA, TE) come back from their list
items. Rows of one dataset from several resource types (DM from Patient and ResearchSubject) merge on the
source ``key``; study days that are not mapped are derived again (``not_mapped ... rederive``).

Nothing is dropped silently: every input resource gets an :class:`Outcome` (converted, derived, not converted
with the reason, invalid), and bad input (invalid JSON, a resource the R4 model rejects, a reference the
conversion needs that does not resolve, an unknown code) is a :class:`~converter.errors.Problem` naming the
file, the entry or line, and the element.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from converter.errors import Problem, problem
from converter.fhir.mapping import (
    RESULT_TYPES,
    ChildSpec,
    Element,
    FhirSpecs,
    SourceSpec,
    element_codelist,
    rederivations,
)
from converter.fhir.paths import FPath, PathSet, compile_getter, find_all, parse_path
from converter.fhir.resource_checks import (
    Index,
    Located,
    identifiers_of,
    iter_references,
    parse_conditional,
    validate_resource,
)
from converter.fhir.to_fhir import no_gc
from converter.fhir.transforms import TransformContext, as_text, inverse
from converter.spec.model import DatasetSpec, Terminology

JsonDict = dict[str, Any]
_SKIP_TOP = {"resourceType", "id", "meta", "text", "contained", "implicitRules", "language"}


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


# --- reading the input ---------------------------------------------------------------------------------------------
def _located_from_json(data: Any, name: str, sink: FromFhir) -> list[Located]:
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        sink.problems.append(problem(name, "", "resourceType", "", "fhir-input", "not a FHIR resource or Bundle"))
        return []
    if data["resourceType"] != "Bundle":
        return [Located(data, name, "resource")]
    out: list[Located] = []
    entries = data.get("entry")
    if entries is None:
        return out
    if not isinstance(entries, list):
        sink.problems.append(problem(name, "", "entry", "", "fhir-input", "Bundle.entry is not a list"))
        return out
    for i, e in enumerate(entries):
        where = f"entry[{i}]"
        if not isinstance(e, dict):
            sink.problems.append(problem(name, where, "", "", "fhir-input", "entry is not a JSON object"))
            continue
        res = e.get("resource")
        full = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
        if res is None:
            req_raw = e.get("request")
            req: dict[str, Any] = req_raw if isinstance(req_raw, dict) else {}
            what = f"{req.get('method', '')} {req.get('url', '')}".strip()
            rtype = re.split(r"[/?]", str(req.get("url", "")), maxsplit=1)[0]
            reason = f"entry has no resource ({what})"
            sink.outcomes.append(Outcome(name, where, rtype, "", "not converted", "", reason))
            continue
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            sink.problems.append(
                problem(name, where, "resource", "", "fhir-input", "entry resource has no resourceType")
            )
            continue
        out.append(Located(res, name, where + (f" {full}" if full else ""), full))
    return out


def read_input(path: Path, sink: FromFhir) -> list[Located]:
    """Every resource under ``path``: a Bundle or resource JSON file, an NDJSON file, or a folder of them.

    A folder written by ``inoconv fhir`` is read from its ``bundles/`` (else its ``ndjson/``).
    """
    files, base = input_files(path)
    out: list[Located] = []
    for f in files:
        name = str(f.relative_to(base)) if f.is_relative_to(base) else f.name
        try:
            raw = f.read_bytes()
        except OSError as exc:
            sink.problems.append(problem(name, "", "", "", "read", f"cannot read ({exc.strerror})"))
            continue
        if f.suffix.lower() == ".ndjson":
            out.extend(_read_ndjson(raw, name, sink))
            continue
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            sink.problems.append(problem(name, "", "", "", "json", f"not valid JSON: {exc}"))
            continue
        out.extend(_located_from_json(data, name, sink))
    return out


def input_files(path: Path) -> tuple[list[Path], Path]:
    """(the files :func:`read_input` reads under ``path``, in reading order; the folder names are relative to)."""
    if path.is_dir():
        if (path / "bundles").is_dir():
            files = sorted((path / "bundles").glob("*.json"))
        elif (path / "ndjson").is_dir():
            files = sorted((path / "ndjson").glob("*.ndjson"))
        else:
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".ndjson") and p.is_file())
        base = path
    elif path.exists():
        files = [path]
        base = path.parent
    else:
        raise FileNotFoundError(str(path))
    return files, base


def _read_ndjson(raw: bytes, name: str, sink: FromFhir) -> list[Located]:
    out: list[Located] = []
    lines = raw.splitlines()
    first = next((ln for ln in lines if ln.strip()), b"")
    try:
        head = orjson.loads(first) if first else None
    except orjson.JSONDecodeError:
        head = None
    if first and not (isinstance(head, dict) and isinstance(head.get("resourceType"), str)):
        sink.notes.append(f"{name}: not FHIR NDJSON (its first line is not a FHIR resource); skipped")
        return out
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            sink.problems.append(problem(name, where, "", "", "json", f"not valid JSON: {exc}"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
            sink.problems.append(problem(name, where, "resourceType", "", "fhir-input", "not a FHIR resource"))
            continue
        if data["resourceType"] == "Bundle":
            out.extend(_located_from_json(data, f"{name} {where}", sink))
        else:
            out.append(Located(data, name, where))
    return out


# --- the converter -------------------------------------------------------------------------------------------------
def _values_where_missing(values: list[Any], new: list[Any]) -> None:
    for i, v in enumerate(new):
        if values[i] is None and v is not None:
            values[i] = v


@dataclass
class _Part:
    """Rows of one dataset from one source (or child group)."""

    dataset: str
    columns: dict[str, list[Any]]
    n: int
    key: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)  # var -> transform kind (for typing)


class Converter:
    def __init__(
        self,
        specs: FhirSpecs,
        ct: Terminology | None = None,
        sdtm_specs: Mapping[str, DatasetSpec] | None = None,
        validate: bool = True,
    ) -> None:
        self.specs = specs
        self.sdtm_specs = sdtm_specs or {}
        self.validate = validate
        self.ctx = TransformContext(
            ct=ct,
            tables=specs.tables,
            original_url=specs.original_value_url,
            ncit=specs.constants.get("NCIT", "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"),
            ucum=specs.constants.get("UCUM", "http://unitsofmeasure.org"),
        )
        self._sys_re: dict[int, re.Pattern[str]] = {}
        self.usubjid: dict[int, str | None] = {}  # id(Located) of a Patient -> USUBJID
        self.studyid: dict[int, str | None] = {}  # id(Located) of a ResearchStudy -> STUDYID
        self._patient = self._source_for("Patient")
        self._study = self._source_for("ResearchStudy")

    def _source_for(self, rtype: str) -> SourceSpec | None:
        for s in self.specs.resources.get(rtype, ()):
            if s.identifier is not None and s.direction == "both":
                return s
        return None

    def _system_re(self, s: SourceSpec) -> re.Pattern[str] | None:
        if s.identifier is None:
            return None
        got = self._sys_re.get(id(s))
        if got is None:
            got = self._sys_re[id(s)] = s.identifier.system.regex()
        return got

    # -- dispatch -------------------------------------------------------------------------------------------------
    def dispatch(self, it: Located) -> tuple[SourceSpec | None, str]:
        sources = self.specs.resources.get(it.rtype)
        if not sources:
            return None, f"no FHIR spec for {it.rtype} under mappings/fhir"
        systems = [s for s, _v in identifiers_of(it.resource)]
        for s in sources:
            rx = self._system_re(s)
            if rx is not None and any(rx.match(x) for x in systems):
                return s, ""
        for s in sources:
            if s.match and all(v in _all_values(it.resource, p) for p, v in s.match):
                return s, ""
        for s in sources:
            if s.default:
                return s, ""
        return None, f"matches no source of the {it.rtype} spec ({', '.join(x.name for x in sources)})"

    # -- references -----------------------------------------------------------------------------------------------
    def _ref_value(self, ref: Any, it: Located, el: Element, index: Index, sink: FromFhir, kind: str) -> str | None:
        if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
            return None
        text = ref["reference"]
        target, why = index.resolve(text)
        table = self.usubjid if kind == "subject_ref" else self.studyid
        want = "Patient" if kind == "subject_ref" else "ResearchStudy"
        if target is not None:
            if target.rtype != want:
                sink.problems.append(
                    problem(
                        it.file,
                        it.where,
                        str(el.path),
                        text,
                        "fhir-reference",
                        f"refers to a {target.rtype}, not a {want}",
                    )
                )
                return None
            return table.get(id(target))
        # not in the input: what the reference itself says
        source = self._patient if kind == "subject_ref" else self._study
        cond = parse_conditional(text)
        if cond is not None and source is not None and source.identifier is not None:
            rx = self._system_re(source)
            if cond[0] == want and rx is not None and rx.match(cond[1]):
                m = source.identifier.value.regex().match(cond[2])
                var = "USUBJID" if kind == "subject_ref" else "STUDYID"
                if m and var in m.groupdict():
                    return m.group(var)
        sink.problems.append(
            problem(it.file, it.where, str(el.path), text, "fhir-reference", f"dangling reference: {why}")
        )
        m2 = re.match(rf"^{want}/([A-Za-z0-9\-.]+)$", text)
        return m2.group(1) if m2 else None

    # -- one source -----------------------------------------------------------------------------------------------
    def _identifier_values(
        self, s: SourceSpec, items: list[Located], known: Mapping[str, list[Any]]
    ) -> dict[str, list[Any]]:
        ident = s.identifier
        out: dict[str, list[Any]] = {}
        if ident is None or not ident.path.steps:
            return out
        rx = self._system_re(s)
        fields = list(ident.value.vars)
        for v in fields:
            out[v] = [None] * len(items)
        numeric = [v for v in fields if self._is_integer(s.dataset, v)]
        name = ident.path.steps[0].name
        known_cols = {k: vals for k, vals in known.items() if k in fields}
        sys_ok: dict[str, bool] = {}
        for i, it in enumerate(items):
            node = it.resource.get(name)
            cands = node if isinstance(node, list) else [node] if isinstance(node, dict) else []
            kn = {k: t for k, vals in known_cols.items() if (t := as_text(vals[i])) is not None}
            for c in cands:
                if not isinstance(c, dict) or not isinstance(c.get("value"), str):
                    continue
                system = str(c.get("system") or "")
                ok = sys_ok.get(system)
                if ok is None:
                    ok = sys_ok[system] = rx is None or rx.match(system) is not None
                if not ok:
                    continue
                got = ident.value.parse(c["value"], kn, numeric)
                if got is None:
                    continue
                for k, v in got.items():
                    out[k][i] = v
                for k, v in kn.items():
                    out[k][i] = v
                break
        return out

    def _is_integer(self, dataset: str | None, var: str) -> bool:
        spec = self.sdtm_specs.get(dataset or "")
        if spec is not None:
            try:
                return spec.variable(var).type == "integer"
            except KeyError:
                pass
        return var.endswith("SEQ") or var.endswith("ORD")

    def _read_elements(
        self,
        elements: Iterable[Element],
        nodes: list[Any],
        owners: list[Located],
        dataset: str | None,
        index: Index,
        sink: FromFhir,
        columns: dict[str, list[Any]],
        kinds: dict[str, str],
    ) -> None:
        n = len(nodes)
        els = [e for e in elements if e.to_sdtm and e.var is not None]
        if not els:
            return
        paths: list[FPath] = []
        for e in els:
            paths.append(e.path)
            paths.append(e.path.fallback() or e.path)
        ps = PathSet(paths)
        matrix = [ps.get_all(node) for node in nodes]
        for k, el in enumerate(els):
            var = el.var
            assert var is not None
            values = columns.setdefault(var, [None] * n)
            todo = [i for i in range(n) if values[i] is None]
            if not todo:
                continue
            frags = [matrix[i][2 * k] for i in todo]
            no_holder = el.path.fallback() is None or all(matrix[i][2 * k + 1] is None for i in todo)
            if el.kind != "present" and no_holder and all(f is None for f in frags):
                continue
            if el.kind in ("subject_ref", "study_ref"):
                new = [
                    self._ref_value(f, owners[i], el, index, sink, el.kind) for f, i in zip(frags, todo, strict=True)
                ]
            else:
                holders = [matrix[i][2 * k + 1] for i in todo] if el.path.fallback() is not None else None
                new, probs = inverse(el, frags, holders, self.ctx, element_codelist(el, dataset, self.sdtm_specs))
                for j, msg in probs:
                    it = owners[todo[j]]
                    sink.problems.append(problem(it.file, it.where, str(el.path), "", "fhir-code", msg))
            for j, i in enumerate(todo):
                if new[j] is not None:
                    values[i] = new[j]
                    kinds.setdefault(var, el.kind)

    def _source_rows(self, s: SourceSpec, items: list[Located], index: Index, sink: FromFhir) -> list[_Part]:
        n = len(items)
        columns: dict[str, list[Any]] = {}
        kinds: dict[str, str] = {}
        nodes: list[Any] = [it.resource for it in items]
        refs = [e for e in s.elements if e.kind in ("subject_ref", "study_ref")]
        self._read_elements(refs, nodes, items, s.dataset, index, sink, columns, kinds)
        for var, vals in self._identifier_values(s, items, columns).items():
            columns.setdefault(var, [None] * n)
            _values_where_missing(columns[var], vals)
            kinds.setdefault(var, "identifier")
        rest = [e for e in s.elements if e.kind not in ("subject_ref", "study_ref")]
        self._read_elements(rest, nodes, items, s.dataset, index, sink, columns, kinds)
        if s.resource == "Patient":
            for i, it in enumerate(items):
                self.usubjid[id(it)] = as_text(columns.get("USUBJID", [None] * n)[i])
        if s.resource == "ResearchStudy":
            for i, it in enumerate(items):
                sid = as_text(columns.get("STUDYID", [None] * n)[i])
                if sid is None:
                    ids = identifiers_of(it.resource)
                    sid = ids[0][1] if ids else it.resource.get("id")
                self.studyid[id(it)] = sid
        parts: list[_Part] = []
        if s.level == "subject" and s.dataset and s.direction == "both":
            parts.append(_Part(s.dataset, columns, n, s.key, kinds))
        for child in s.children:
            if child.direction == "both":
                part = self._child_rows(child, s, items, columns, index, sink)
                if part is not None:
                    parts.append(part)
        return parts

    def _child_rows(
        self,
        child: ChildSpec,
        s: SourceSpec,
        items: list[Located],
        parent: dict[str, list[Any]],
        index: Index,
        sink: FromFhir,
    ) -> _Part | None:
        get = compile_getter(child.path)
        select = tuple((k, str(v)) for k, v in child.item.items() if not isinstance(v, dict | list))
        nodes: list[Any] = []
        owners: list[Located] = []
        parent_row: list[int] = []
        for i, it in enumerate(items):
            for node in find_all(get(it.resource), select):
                nodes.append(node)
                owners.append(it)
                parent_row.append(i)
        if not nodes:
            return None
        columns: dict[str, list[Any]] = {}
        kinds: dict[str, str] = {}
        self._read_elements(child.elements, nodes, owners, child.dataset, index, sink, columns, kinds)
        m = len(nodes)
        if child.supp:
            for var in ("STUDYID", "USUBJID"):
                pv = parent.get(var, [None] * len(items))
                columns[var] = [pv[p] for p in parent_row]
            columns["RDOMAIN"] = [s.dataset] * m
        else:
            for cvar, pvar in child.link.items():
                pv = parent.get(pvar, [None] * len(items))
                vals = columns.setdefault(cvar, [None] * m)
                for j, p in enumerate(parent_row):
                    if vals[j] is None:
                        vals[j] = pv[p]
        return _Part(child.dataset, columns, m, (), kinds)

    # -- the whole input ------------------------------------------------------------------------------------------
    def validated(self, items: list[Located], sink: FromFhir) -> list[Located]:
        """The items the R4 models accept (all of them without ``validate``); the others get an outcome."""
        if not self.validate:
            return list(items)
        valid: list[Located] = []
        for it in items:
            errs = validate_resource(it.resource)
            if errs:
                for element, msg in errs:
                    sink.problems.append(problem(it.file, it.where, element, "", "fhir-r4-model", msg))
                sink.outcomes.append(
                    Outcome(it.file, it.where, it.rtype, _rid(it), "invalid", "", f"R4 validation: {errs[0][1]}")
                )
                continue
            valid.append(it)
        return valid

    def convert(
        self,
        items: list[Located],
        sink: FromFhir,
        context: Iterable[Located] = (),
        render_notes: bool = True,
        prevalidated: bool = False,
    ) -> FromFhir:
        """Convert ``items`` into ``sink``.

        ``context``: resources already converted by this converter (the study part of a partitioned input, already
        validated) that references of ``items`` may resolve to; they are not converted again. ``render_notes``:
        turn the note tallies into notes (a partitioned conversion renders them once, for all partitions).
        ``prevalidated``: ``items`` went through :meth:`validated` already.
        """
        valid = items if prevalidated else self.validated(items, sink)
        index = Index([*valid, *context])
        plan: dict[int, list[Located]] = {}
        sources: dict[int, SourceSpec] = {}
        for it in valid:
            s, reason = self.dispatch(it)
            if s is None:
                sink.outcomes.append(Outcome(it.file, it.where, it.rtype, _rid(it), "not converted", "", reason))
                continue
            if s.direction == "to_fhir":
                sink.outcomes.append(
                    Outcome(it.file, it.where, it.rtype, _rid(it), "derived", s.dataset or "",
                            f"derived SDTM -> FHIR only ({s.name}); its data come back through the source rows")
                )  # fmt: skip
                continue
            plan.setdefault(id(s), []).append(it)
            sources[id(s)] = s
        # Patients and studies first: other resources refer to them
        order = sorted(sources.values(), key=lambda x: (x.resource not in ("Patient", "ResearchStudy"), 0))
        parts: list[_Part] = []
        for s in order:
            its = plan[id(s)]
            parts.extend(self._source_rows(s, its, index, sink))
            for it in its:
                ds = s.dataset or ", ".join(c.dataset for c in s.children if c.direction == "both")
                sink.outcomes.append(Outcome(it.file, it.where, it.rtype, _rid(it), "converted", ds, ""))
        self._notes(plan, sources, index, sink)
        sink.datasets = self._assemble(parts, sink)
        if render_notes:
            sink.render_notes()
        return sink

    def _notes(
        self, plan: dict[int, list[Located]], sources: dict[int, SourceSpec], index: Index, sink: FromFhir
    ) -> None:
        """Elements of converted resources that no spec path reads, and references not followed."""
        read: dict[str, set[str]] = {}
        for s in self.specs.sources():
            tops = read.setdefault(s.resource, set())
            for e in s.elements:
                if e.path.steps:
                    tops.add(e.path.steps[0].name.lstrip("_"))
            if s.identifier is not None and s.identifier.path.steps:
                tops.add(s.identifier.path.steps[0].name)
            for c in s.children:
                if c.path.steps:
                    tops.add(c.path.steps[0].name)
        unread = sink.unread
        dangling = sink.dangling
        for key, its in plan.items():
            s = sources[key]
            tops = read.get(s.resource, set())
            for it in its:
                for k, v in it.resource.items():
                    if k in _SKIP_TOP or k.lstrip("_") in tops:
                        continue
                    d = unread.setdefault(s.resource, {})
                    d[k] = d.get(k, 0) + 1
                    for _path, ref in iter_references(v, k):
                        if not ref.startswith("#") and index.resolve(ref)[0] is None:
                            t = ref.split("/")[0].split("?")[0]
                            dangling[t] = dangling.get(t, 0) + 1

    # -- assembling datasets --------------------------------------------------------------------------------------
    def _assemble(self, parts: list[_Part], sink: FromFhir) -> dict[str, pd.DataFrame]:
        by_ds: dict[str, list[_Part]] = {}
        for p in parts:
            by_ds.setdefault(p.dataset, []).append(p)
        order = self._var_order()
        out: dict[str, pd.DataFrame] = {}
        for ds, group in by_ds.items():
            frames = [self._frame(p, ds) for p in group]
            keyed = [p for p in group if p.key]
            if len(keyed) == len(group) and len(group) > 1:
                key = list(group[0].key)
                df = frames[0]
                for f in frames[1:]:
                    df = df.merge(f, on=key, how="outer", suffixes=("", "__r"))
                    for c in [c for c in df.columns if c.endswith("__r")]:
                        base = c[:-3]
                        df[base] = df[base].where(df[base].notna(), df[c])
                        df = df.drop(columns=c)
            else:
                df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
            df = self._finish(ds, df, order.get(ds, []), sink)
            out[ds] = df
        self._fill_studyid(out)
        self._study_days(out)
        self._none_for_nan(out)
        return dict(sorted(out.items()))

    @staticmethod
    def _none_for_nan(out: dict[str, pd.DataFrame]) -> None:
        """Text columns hold ``str`` or ``None`` (the outer merge of DM and the STUDYID fill leave NaN behind)."""
        for df in out.values():
            for c in df.columns:
                col = df[c]
                if col.dtype != object:
                    continue
                na = col.isna().to_numpy()
                if na.any():
                    vals = col.to_numpy(dtype=object, copy=True)
                    vals[na] = None
                    df[c] = pd.Series(vals, index=df.index, dtype=object)

    @staticmethod
    def _fill_studyid(out: dict[str, pd.DataFrame]) -> None:
        """STUDYID of rows whose resource does not say it (SUPPDM rows ride on the Patient): the subject's, from DM."""
        dm = out.get("DM")
        if dm is None or "STUDYID" not in dm.columns or "USUBJID" not in dm.columns:
            return
        study = {u: s for u, s in zip(dm["USUBJID"], dm["STUDYID"], strict=True) if u is not None and s is not None}
        for ds, df in out.items():
            if ds == "DM" or "STUDYID" not in df.columns or "USUBJID" not in df.columns:
                continue
            missing = df["STUDYID"].isna()
            if missing.any():
                df.loc[missing, "STUDYID"] = df.loc[missing, "USUBJID"].map(study)

    def _frame(self, p: _Part, ds: str) -> pd.DataFrame:
        data: dict[str, pd.Series] = {}
        for var, vals in p.columns.items():
            data[var] = self._typed(ds, var, vals, p.kinds.get(var))
        return pd.DataFrame(data, index=pd.RangeIndex(p.n))

    def _sdtm_type(self, ds: str, var: str, kind: str | None) -> str:
        spec = self.sdtm_specs.get(ds)
        if spec is not None:
            try:
                t = spec.variable(var).type
                return t if t in ("integer", "float") else "text"
            except KeyError:
                pass
        if kind == "identifier":
            return "integer" if self._is_integer(ds, var) else "text"
        return RESULT_TYPES.get(kind or "", "text")

    def _typed(self, ds: str, var: str, vals: list[Any], kind: str | None) -> pd.Series:
        t = self._sdtm_type(ds, var, kind)
        if t in ("integer", "float"):
            nums: list[float] = []
            for v in vals:
                try:
                    nums.append(float(v) if v is not None else np.nan)
                except (TypeError, ValueError):
                    nums.append(np.nan)
            arr = np.array(nums, dtype="float64")
            finite = arr[~np.isnan(arr)]
            if t == "integer" and np.all(np.mod(finite, 1) == 0):
                return pd.Series(pd.array([None if np.isnan(x) else int(x) for x in arr], dtype="Int64"))
            return pd.Series(arr)
        obj = np.empty(len(vals), dtype=object)
        obj[:] = [as_text(v) for v in vals]
        return pd.Series(obj, dtype=object)

    def _var_order(self) -> dict[str, list[str]]:
        """Per dataset, its variables in the order the specs name them (for datasets without an SDTM spec)."""
        out: dict[str, list[str]] = {}
        for s in self.specs.sources():
            groups: list[tuple[str | None, Iterable[Element]]] = [(s.dataset, s.elements)]
            groups += [(c.dataset, c.elements) for c in s.children]
            for ds, elements in groups:
                if ds is None:
                    continue
                lst = out.setdefault(ds, [])
                for e in elements:
                    if e.var and e.var not in lst:
                        lst.append(e.var)
                ident = s.identifier if ds == s.dataset else None
                if ident is not None:
                    for v in ident.value.vars:
                        if v not in lst:
                            lst.append(v)
        return out

    def column_order(self, ds: str, columns: Iterable[str]) -> list[str]:
        """``columns`` of dataset ``ds`` in the order a conversion gives them (its spec's, else the FHIR specs')."""
        return self._column_order(ds, list(columns), self._var_order().get(ds, []))

    def _column_order(self, ds: str, columns: list[str], fallback: list[str]) -> list[str]:
        spec = self.sdtm_specs.get(ds)
        if spec is not None:
            cols = [c for c in spec.column_names if c in columns]
        else:
            have = set(columns)
            head = ["STUDYID", "DOMAIN", "RDOMAIN", "USUBJID"]
            cols = [c for c in head if c in have]
            cols += [c for c in fallback if c in have and c not in cols]
        cols += [c for c in columns if c not in cols]
        return cols

    def _finish(self, ds: str, df: pd.DataFrame, fallback: list[str], sink: FromFhir) -> pd.DataFrame:
        spec = self.sdtm_specs.get(ds)
        is_supp = ds.startswith("SUPP")
        if not is_supp and "DOMAIN" not in df.columns:
            df["DOMAIN"] = pd.Series([ds] * len(df), dtype=object)
        self._assign_seq(ds, df, sink)
        keep = set(spec.column_names) if spec is not None else set()
        keep |= {"STUDYID", "DOMAIN", "RDOMAIN", "USUBJID", f"{ds[:2]}SEQ", "IDVAR", "IDVARVAL"}
        empty = [c for c in df.columns if c not in keep and df[c].isna().all()]
        if empty:
            df = df.drop(columns=empty)
        cols = self._column_order(ds, list(df.columns), fallback)
        if spec is not None:
            keys = [k for k in spec.keys if k in df.columns]
        else:
            keys = [k for k in ("STUDYID", "USUBJID", f"{ds[:2]}SEQ", "IDVAR", "IDVARVAL", "QNAM") if k in df.columns]
        df = df[cols]
        if keys and len(df):
            df = df.sort_values(keys, kind="stable", na_position="last")
        return df.reset_index(drop=True)

    def _assign_seq(self, ds: str, df: pd.DataFrame, sink: FromFhir) -> None:
        """Rows that came without a --SEQ (resources written elsewhere) get the next numbers of their subject."""
        seq = f"{ds[:2]}SEQ"
        if ds.startswith("SUPP") or seq not in df.columns or "USUBJID" not in df.columns:
            return
        missing = df[seq].isna()
        if not missing.any():
            return
        dtc = next((c for c in (f"{ds[:2]}STDTC", f"{ds[:2]}DTC") if c in df.columns), None)
        values = df[seq].astype("Float64").copy()
        by_subject: dict[Any, list[Any]] = {}  # rows without a subject numbered together (groupby cannot)
        for r, u in zip(df.index[missing], df.loc[missing, "USUBJID"], strict=True):
            by_subject.setdefault(None if pd.isna(u) else u, []).append(r)
        for _u, rows in by_subject.items():
            same = df["USUBJID"].isna() if _u is None else df["USUBJID"] == _u
            start = df.loc[same, seq].max()
            start = 0 if pd.isna(start) else int(start)
            if dtc is not None:
                rows.sort(key=lambda r: str(df.at[r, dtc]) if df.at[r, dtc] is not None else "~")
            for k, r in enumerate(rows, start=1):
                values.at[r] = start + k
        df[seq] = values.astype("Int64")
        sink.unnumbered[ds] = sink.unnumbered.get(ds, 0) + int(missing.sum())

    def _study_days(self, out: dict[str, pd.DataFrame]) -> None:
        dm = out.get("DM")
        if dm is None or "RFSTDTC" not in dm.columns or "USUBJID" not in dm.columns:
            return
        ref = {u: _day(r) for u, r in zip(dm["USUBJID"], dm["RFSTDTC"], strict=True)}
        for ds, rules in rederivations(self.specs).items():
            df = out.get(ds)
            if df is None or "USUBJID" not in df.columns:
                continue
            for var, rule in rules.items():
                src = rule.get("study_day")
                if not src or src not in df.columns:
                    continue
                vals: list[int | None] = []
                for u, d in zip(df["USUBJID"], df[src], strict=True):
                    r0, d0 = ref.get(u), _day(d)
                    if r0 is None or d0 is None:
                        vals.append(None)
                    else:
                        delta = (d0 - r0).days
                        vals.append(delta + 1 if delta >= 0 else delta)
                df[var] = pd.array(vals, dtype="Int64")
            spec = self.sdtm_specs.get(ds)
            if spec is not None:
                cols = [c for c in spec.column_names if c in df.columns]
                cols += [c for c in df.columns if c not in cols]
                out[ds] = df[cols]


def _day(value: Any) -> dt.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _rid(it: Located) -> str:
    rid = it.resource.get("id")
    return rid if isinstance(rid, str) else ""


def _all_values(node: Any, path: FPath) -> list[Any]:
    """Every value at ``path`` below ``node``, fanning out over lists (for ``match`` conditions)."""
    cur = [node]
    for st in path.steps:
        nxt: list[Any] = []
        for c in cur:
            items = c if isinstance(c, list) else [c]
            for it in items:
                if not isinstance(it, dict) or st.name not in it:
                    continue
                v = it[st.name]
                vs = v if isinstance(v, list) else [v]
                if st.index is not None:
                    vs = vs[st.index : st.index + 1]
                elif st.select:
                    vs = find_all(vs, st.select)
                nxt.extend(vs)
        cur = nxt
    return cur


def fhir_to_sdtm(
    items: list[Located],
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    validate: bool = True,
    sink: FromFhir | None = None,
) -> FromFhir:
    """SDTM frames from FHIR resources, with an outcome for every resource and the problems of the input."""
    sink = sink or FromFhir(datasets={})
    with no_gc():
        return Converter(specs, ct, sdtm_specs, validate).convert(items, sink)


def convert_path(
    path: Path,
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    validate: bool = True,
) -> FromFhir:
    sink = FromFhir(datasets={})
    with no_gc():
        items = read_input(path, sink)
    return fhir_to_sdtm(items, specs, ct, sdtm_specs, validate, sink)


def parse_items(named: Mapping[str, bytes]) -> tuple[list[Located], FromFhir]:
    """Resources from in-memory files (name -> bytes; ``.ndjson`` names are NDJSON), e.g. for the round trip."""
    sink = FromFhir(datasets={})
    out: list[Located] = []
    with no_gc():
        return _parse_named(named, sink, out)


def _parse_named(named: Mapping[str, bytes], sink: FromFhir, out: list[Located]) -> tuple[list[Located], FromFhir]:
    for name, raw in named.items():
        if name.endswith(".ndjson"):
            out.extend(_read_ndjson(raw, name, sink))
        else:
            try:
                out.extend(_located_from_json(orjson.loads(raw), name, sink))
            except orjson.JSONDecodeError as exc:
                sink.problems.append(problem(name, "", "", "", "json", f"not valid JSON: {exc}"))
    return out, sink


__all__ = [
    "Converter",
    "FromFhir",
    "Outcome",
    "convert_path",
    "fhir_to_sdtm",
    "input_files",
    "parse_items",
    "parse_path",
    "read_input",
]
