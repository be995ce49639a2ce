"""FHIR R4 (transaction/collection Bundles, single resources or NDJSON) -> SDTM frames, through the same specs.

Each resource is matched to a spec source (by its identifier system, by the source's ``match`` conditions, else
the type's default source); every element of the source is read back column-wise with the inverse transform,
alternatives in spec order (first value wins). Child groups (SUPP--, DS, TS, TA, TE) come back from their list
items. Rows of one dataset from several resource types (DM from Patient and ResearchSubject) merge on the
source ``key``; study days that are not mapped are derived again (``not_mapped ... rederive``).

Nothing is dropped silently: every input resource gets an :class:`Outcome` (converted, derived, not converted
with the reason, invalid), and bad input is a :class:`~converter.errors.Problem` naming the file, the entry or
line, and the element: what :mod:`converter.fhir.fhir_input` refuses while reading (JSON, limits, control
characters), two resources of one type with one id, a resource that is not valid R4 (the structure check of
:mod:`converter.fhir.structure`; the R4B models under ``strict``), a reference to a subject
not in the input (or one the conversion needs that does not resolve), a second Patient for one subject, an
unknown code. Reading is :mod:`converter.fhir.fhir_input`; typing, merging and ordering the rows into datasets
is :mod:`converter.fhir.sdtm_assembly`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from converter.errors import problem
from converter.fhir.fhir_input import input_files, parse_named, read_input
from converter.fhir.located import FromFhir, Located, Outcome
from converter.fhir.mapping import ChildSpec, Element, FhirSpecs, SourceSpec, element_codelist
from converter.fhir.paths import FPath, PathSet, compile_getter, find_all, simple_select
from converter.fhir.provenance import is_inoconv_provenance
from converter.fhir.resource_checks import (
    Index,
    check_ids,
    identifiers_of,
    iter_references,
    parse_conditional,
    structure_problems,
)
from converter.fhir.sdtm_assembly import Assembly, Part
from converter.fhir.to_fhir import no_gc
from converter.fhir.transforms import TransformContext, as_text, inverse
from converter.spec.model import DatasetSpec, Terminology

_SKIP_TOP = {"resourceType", "id", "meta", "text", "contained", "implicitRules", "language"}


# --- the converter -------------------------------------------------------------------------------------------------
def _values_where_missing(values: list[Any], new: list[Any]) -> None:
    for i, v in enumerate(new):
        if values[i] is None and v is not None:
            values[i] = v


class Converter(Assembly):
    def __init__(
        self,
        specs: FhirSpecs,
        ct: Terminology | None = None,
        sdtm_specs: Mapping[str, DatasetSpec] | None = None,
        validate: bool = True,
        strict: bool = False,
    ) -> None:
        self.specs = specs
        self.sdtm_specs = sdtm_specs or {}
        self.validate = validate
        self.strict = strict
        self.ctx = TransformContext(
            ct=ct,
            tables=specs.tables,
            original_url=specs.original_value_url,
            ncit=specs.constants.get("NCIT", "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"),
            ucum=specs.constants.get("UCUM", "http://unitsofmeasure.org"),
        )
        self._sys_re: dict[int, re.Pattern[str]] = {}
        self._sys_hits: dict[tuple[int, str], bool] = {}
        self.usubjid: dict[int, str | None] = {}  # id(Located) of a Patient -> USUBJID
        self.studyid: dict[int, str | None] = {}  # id(Located) of a ResearchStudy -> STUDYID
        self.subjects: dict[str, str] = {}  # USUBJID -> where its Patient is (kept over partitions)
        self.ours: set[int] = set()  # id(Located) of resources recognised by a source's identifier system
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

    def _system_matches(self, s: SourceSpec, system: str) -> bool:
        """Whether an identifier system is the source's (remembered per source and system)."""
        key = (id(s), system)
        got = self._sys_hits.get(key)
        if got is None:
            rx = self._system_re(s)
            got = self._sys_hits[key] = rx is not None and rx.match(system) is not None
        return got

    # -- dispatch -------------------------------------------------------------------------------------------------
    def dispatch(self, it: Located) -> tuple[SourceSpec | None, str]:
        sources = self.specs.resources.get(it.rtype)
        if not sources:
            return None, f"no FHIR spec for {it.rtype} under mappings/fhir"
        systems = [s for s, _v in identifiers_of(it.resource)]
        for s in sources:
            if systems and any(self._system_matches(s, x) for x in systems):
                self.ours.add(id(it))
                return s, ""
        for s in sources:
            if s.match and all(v in _all_values(it.resource, p) for p, v in s.match):
                return s, ""
        for s in sources:
            if s.default:
                return s, ""
        return None, f"matches no source of the {it.rtype} spec ({', '.join(x.name for x in sources)})"

    # -- references -----------------------------------------------------------------------------------------------
    def _ref_values(
        self, frags: list[Any], owners: list[Located], el: Element, index: Index, sink: FromFhir, kind: str
    ) -> list[str | None]:
        """The USUBJID (``subject_ref``) or STUDYID (``study_ref``) of each reference in ``frags``; a reference
        text is resolved once, each resource whose reference fails gets its problem."""
        memo: dict[str, tuple[str | None, str | None]] = {}
        out: list[str | None] = []
        for ref, it in zip(frags, owners, strict=True):
            text = ref.get("reference") if ref.__class__ is dict else None
            if text.__class__ is not str:
                out.append(None)
                continue
            got = memo.get(text)
            if got is None:
                got = memo[text] = self._ref_value(text, el, index, kind)
            value, why = got
            if why is not None:
                sink.problems.append(problem(it.file, it.where, str(el.path), text, "fhir-reference", why))
            out.append(value)
        return out

    def _ref_value(self, text: str, el: Element, index: Index, kind: str) -> tuple[str | None, str | None]:
        """(the value a reference text gives, why it is a problem or None)."""
        target, why = index.resolve(text)
        table = self.usubjid if kind == "subject_ref" else self.studyid
        want = "Patient" if kind == "subject_ref" else "ResearchStudy"
        if target is not None:
            if target.rtype != want:
                return None, f"refers to a {target.rtype}, not a {want}"
            return table.get(id(target)), None
        # not in the input. A study: what a conditional reference itself says (STUDYID). A subject: bad input,
        # since the rows would belong to a subject without its DM row (and without the Patient's data).
        cond = parse_conditional(text)
        if kind == "study_ref" and cond is not None and self._study is not None and self._study.identifier:
            rx = self._system_re(self._study)
            if cond[0] == want and rx is not None and rx.match(cond[1]):
                m = self._study.identifier.value.regex().match(cond[2])
                if m and "STUDYID" in m.groupdict():
                    return m.group("STUDYID"), None
        what = "a subject not in the input" if kind == "subject_ref" else "dangling reference"
        return None, f"{what}: {why}"

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
        numeric = [v for v in fields if self.is_integer(s.dataset, v)]
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
        cols: list[Any] = list(zip(*[ps.get_all(node) for node in nodes], strict=True)) or [()] * len(paths)
        for k, el in enumerate(els):
            var = el.var
            assert var is not None
            values = columns.setdefault(var, [None] * n)
            # the rows still without a value (None: every row, the common case, without a list of row numbers)
            todo: list[int] | None = None if values.count(None) == n else [i for i, v in enumerate(values) if v is None]
            if el.elsewhere and self.ours:
                todo = [i for i in (range(n) if todo is None else todo) if id(owners[i]) not in self.ours]
            if todo is not None and not todo:
                continue
            col, hcol = cols[2 * k], cols[2 * k + 1]
            frags = list(col) if todo is None else [col[i] for i in todo]
            has_fallback = el.path.fallback() is not None
            holders = (list(hcol) if todo is None else [hcol[i] for i in todo]) if has_fallback else None
            no_holder = holders is None or holders.count(None) == len(holders)
            if el.kind != "present" and no_holder and frags.count(None) == len(frags):
                continue
            rows = range(n) if todo is None else todo
            if el.kind in ("subject_ref", "study_ref"):
                new = self._ref_values(frags, [owners[i] for i in rows], el, index, sink, el.kind)
            else:
                codelist = element_codelist(el, dataset, self.sdtm_specs)
                new, probs = inverse(el, frags, None if no_holder else holders, self.ctx, codelist)
                for j, msg in probs:
                    it = owners[rows[j]]
                    sink.problems.append(problem(it.file, it.where, str(el.path), "", "fhir-code", msg))
            if new.count(None) == len(new):
                continue
            kinds.setdefault(var, el.kind)
            if todo is None:
                values[:] = new
            else:
                for j, i in enumerate(todo):
                    if new[j] is not None:
                        values[i] = new[j]

    def _source_rows(self, s: SourceSpec, items: list[Located], index: Index, sink: FromFhir) -> list[Part]:
        n = len(items)
        columns: dict[str, list[Any]] = {}
        kinds: dict[str, str] = {}
        nodes: list[Any] = [it.resource for it in items]
        refs = [e for e in s.elements if e.kind in ("subject_ref", "study_ref")]
        self._read_elements(refs, nodes, items, s.dataset, index, sink, columns, kinds)
        # the elements carried both ways first: they hold the exact values (a decimal VISITNUM 9.299999999999999
        # of an XPT is 9.3 in an identifier's text); then the identifier's fields (--SEQ); then the alternatives
        # read FHIR -> SDTM only (a Patient's id as USUBJID when no identifier of ours names it)
        rest = [e for e in s.elements if e.kind not in ("subject_ref", "study_ref")]
        exact = [e for e in rest if e.direction == "both"]
        self._read_elements(exact, nodes, items, s.dataset, index, sink, columns, kinds)
        for var, vals in self._identifier_values(s, items, columns).items():
            columns.setdefault(var, [None] * n)
            _values_where_missing(columns[var], vals)
            kinds.setdefault(var, "identifier")
        alternatives = [e for e in rest if e.direction != "both"]
        self._read_elements(alternatives, nodes, items, s.dataset, index, sink, columns, kinds)
        if s.resource == "Patient":
            for i, it in enumerate(items):
                u = self.usubjid[id(it)] = as_text(columns.get("USUBJID", [None] * n)[i])
                if u is None:
                    continue
                first = self.subjects.setdefault(u, f"{it.file} {it.where}")
                if first != f"{it.file} {it.where}":
                    msg = f"a second Patient for subject {u} (the first: {first})"
                    sink.problems.append(problem(it.file, it.where, "identifier", u, "fhir-duplicate-subject", msg))
        if s.resource == "ResearchStudy":
            for i, it in enumerate(items):
                sid = as_text(columns.get("STUDYID", [None] * n)[i])
                if sid is None:
                    ids = identifiers_of(it.resource)
                    sid = ids[0][1] if ids else it.resource.get("id")
                self.studyid[id(it)] = sid
        parts: list[Part] = []
        if s.level == "subject" and s.dataset and s.direction == "both":
            parts.append(Part(s.dataset, columns, n, s.key, kinds))
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
    ) -> Part | None:
        get = compile_getter(child.path)
        select = tuple((k, str(v)) for k, v in child.item.items() if not isinstance(v, dict | list))
        nodes: list[Any] = []
        owners: list[Located] = []
        parent_row: list[int] = []
        simple = simple_select(select)
        for i, it in enumerate(items):
            got = get(it.resource)
            if simple is not None and got.__class__ is list:  # find_all's common case, inline
                key, value = simple
                found = [x for x in got if x.__class__ is dict and x.get(key) == value]
            else:
                found = find_all(got, select)
            for node in found:
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
        return Part(child.dataset, columns, m, (), kinds)

    # -- the whole input ------------------------------------------------------------------------------------------
    def validated(self, items: list[Located], sink: FromFhir) -> list[Located]:
        """The items that are valid R4 (all of them without ``validate``): by the structure check of
        :mod:`converter.fhir.structure`, or (``strict``) by the R4B models; the others get an outcome."""
        if not self.validate:
            return list(items)
        valid: list[Located] = []
        for it, errs in zip(items, structure_problems(items, self.strict), strict=True):
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
        self.ours.clear()  # ids of this call's items only (an id of a freed item may be reused)
        for it in valid:
            if it.rtype == "Provenance" and is_inoconv_provenance(it.resource):
                sink.outcomes.append(
                    Outcome(it.file, it.where, it.rtype, _rid(it), "derived", "",
                            "inoconv's Provenance of the conversion: where the data came from, not SDTM data")
                )  # fmt: skip
                continue
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
        parts: list[Part] = []
        for s in order:
            its = plan[id(s)]
            parts.extend(self._source_rows(s, its, index, sink))
            for it in its:
                ds = s.dataset or ", ".join(c.dataset for c in s.children if c.direction == "both")
                sink.outcomes.append(Outcome(it.file, it.where, it.rtype, _rid(it), "converted", ds, ""))
        self._notes(plan, sources, index, sink)
        sink.datasets = self.assemble(parts, sink)
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
            known = _SKIP_TOP | tops | {f"_{t}" for t in tops}  # (a key outside it may still be "__x" of a top)
            for it in its:
                res = it.resource
                if res.keys() <= known:
                    continue
                for k, v in res.items():
                    if k in known or k.lstrip("_") in tops:
                        continue
                    d = unread.setdefault(s.resource, {})
                    d[k] = d.get(k, 0) + 1
                    for _path, ref in iter_references(v, k):
                        if not ref.startswith("#") and index.resolve(ref)[0] is None:
                            t = ref.split("/")[0].split("?")[0]
                            dangling[t] = dangling.get(t, 0) + 1


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
    strict: bool = False,
) -> FromFhir:
    """SDTM frames from FHIR resources, with an outcome for every resource and the problems of the input.

    ``validate``: each resource checked first (``strict``: by the R4B models, else by the structure check)."""
    sink = sink or FromFhir(datasets={})
    with no_gc():
        return Converter(specs, ct, sdtm_specs, validate, strict).convert(items, sink)


def convert_path(
    path: Path,
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
    validate: bool = True,
    strict: bool = False,
) -> FromFhir:
    """The whole input under ``path`` converted at once (see :mod:`converter.fhir.fhir_input` for what it reads)."""
    sink = FromFhir(datasets={})
    with no_gc():  # for the checks too: a collection would scan every resource read
        items = read_input(path, sink)
        sink.problems.extend(check_ids(items))
        return fhir_to_sdtm(items, specs, ct, sdtm_specs, validate, sink, strict)


def parse_items(named: Mapping[str, bytes]) -> tuple[list[Located], FromFhir]:
    """Resources from in-memory files (name -> bytes; ``.ndjson`` names are NDJSON), e.g. for the round trip."""
    sink = FromFhir(datasets={})
    with no_gc():
        items = parse_named(named, sink)
    sink.problems.extend(check_ids(items))
    return items, sink


__all__ = [
    "Converter",
    "FromFhir",
    "Outcome",
    "convert_path",
    "fhir_to_sdtm",
    "input_files",
    "parse_items",
    "read_input",
]
