"""SDTM frames -> FHIR R4 resources as plain dicts, one source (dataset) at a time, column-wise.

Every value is transformed a whole column at once (:mod:`converter.fhir.transforms`); the row loop only places
ready-made fragments with setters compiled from the spec paths. No pydantic models here: validation with the R4
models is :mod:`converter.fhir.resource_checks`'s job (tests and ``--strict``).

Identity: each resource's id is ``uuid5(NAMESPACE, "<Type>|<identifier system>|<identifier value>")`` of its
business identifier, so output is the same on every run and references can be written before their target is
built. References are shared dicts per target (:class:`RefTable`): one switch turns every reference into the
Bundle form (``urn:uuid:...``, or a conditional reference to a resource of another Bundle) or the NDJSON form
(``Type/id``). Ids, references and results are :mod:`converter.fhir.resource_ids`, the column helpers
:mod:`converter.fhir.frame_values`; both re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson
import pandas as pd

from converter.errors import Problem, problem
from converter.fhir.frame_values import (
    Factored,
    column_factors,
    column_values,
    eval_mask,
    link_children,
    query,
    render,
    render_distinct,
    render_per_distinct,
    row_label,
    subject_partitions,
    text_values,
    with_columns,
)
from converter.fhir.identifier_values import identifier_text_ok, identifier_texts, identifiers
from converter.fhir.mapping import (
    ChildSpec,
    Element,
    FhirSpecs,
    IdentifierSpec,
    SourceSpec,
    element_codelist,
)
from converter.fhir.path_setters import Cache, Setter3, compile_appender, compile_setter
from converter.fhir.paths import FPath, Step
from converter.fhir.resource_ids import (
    NAMESPACE,
    FhirResult,
    JsonDict,
    RefTable,
    Resource,
    SourceLines,
    identifier_query,
    resource_uuid,
    resource_uuids,
)
from converter.fhir.rowcode import Entry, compile_rows, literal
from converter.fhir.source_lines import dual_dumps, item_dicts, item_lines, rows_of, selector_checked, source_lines
from converter.fhir.study_days import submitted_days
from converter.fhir.transforms import FORWARD, SHARED, Forward, TransformContext, as_text, json_copy
from converter.gc_pause import no_gc
from converter.spec.expr import Expr
from converter.spec.model import DatasetSpec, Terminology

__all__ = [
    "NAMESPACE",
    "Builder",
    "FhirResult",
    "RefTable",
    "Resource",
    "SourceLines",
    "column_values",
    "no_gc",
    "resource_uuid",
    "sdtm_to_fhir",
    "subject_partitions",
    "with_columns",
]


_BODY_KEYS = frozenset({"resourceType", "id"})
_IDENTIFIER_KEYS = frozenset({"system", "value"})  # every business identifier's dict (identifier_values)


def _flat(template: JsonDict) -> bool:
    return all(not isinstance(v, dict | list) for v in template.values())


def _by_row(fwd: Forward, codes: np.ndarray[Any, np.dtype[np.intp]]) -> Forward:
    """The forward of a column's distinct values, row by row (``codes``: each row's distinct value)."""
    problems = fwd.problems
    if problems:
        rows = [(i, msg) for u, msg in problems for i in np.flatnonzero(codes == u).tolist()]
        problems = sorted(rows, key=lambda p: p[0])  # in row order, as a row by row transform gives them
    originals = None if fwd.originals is None else list(Factored(codes, fwd.originals))
    return Forward(Factored(codes, list(fwd.frags)), originals, problems)


def _item_path(path: FPath) -> FPath:
    return FPath(f"item.{path.text}" if path.text else "item", (Step("item"), *path.steps))


# --- the builder --------------------------------------------------------------------------------------------------
@dataclass
class _Target:
    rtype: str
    ident: IdentifierSpec
    level: str


class Builder:
    """Builds every resource of every spec source from a dict of SDTM frames."""

    def __init__(
        self,
        specs: FhirSpecs,
        ct: Terminology | None = None,
        sdtm_specs: Mapping[str, DatasetSpec] | None = None,
        text: bool = False,
        bundle_texts: bool = False,
        columnar: bool = False,
    ) -> None:
        self.specs = specs
        self.text = text or bundle_texts or columnar  # resources as NDJSON lines (Resource.line), not dicts
        self.bundle_texts = bundle_texts  # ... and as their Bundle form (Resource.bundle_line)
        # ... or NDJSON only, one SourceLines per source (FhirResult.blocks), no Resource per line
        self.columnar = columnar and not bundle_texts
        self.sdtm_specs = sdtm_specs or {}
        self.ctx = TransformContext(
            ct=ct,
            tables=specs.tables,
            original_url=specs.original_value_url,
            ncit=specs.constants.get("NCIT", "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"),
            ucum=specs.constants.get("UCUM", "http://unitsofmeasure.org"),
        )
        self.refs = RefTable()
        if self.text:
            self.refs.use("ndjson")
        self.problems: list[Problem] = []
        # columns read in this source: (what, id(frame), var) -> (frame, values); the frame kept so its id stays its
        self._memo: dict[tuple[str, int, str | Expr], tuple[pd.DataFrame, Any]] = {}
        self._targets = {t: self._target(t) for t in ("Patient", "ResearchStudy")}

    def _target(self, rtype: str) -> _Target | None:
        for s in self.specs.resources.get(rtype, ()):
            if s.identifier is not None and s.direction == "both":
                return _Target(rtype, s.identifier, s.level)
        return None

    # -- public ---------------------------------------------------------------------------------------------------
    def build(
        self,
        datasets: Mapping[str, pd.DataFrame],
        levels: tuple[str, ...] = ("study", "subject"),
        made_elsewhere: frozenset[str] = frozenset(),
    ) -> FhirResult:
        """Resources of the sources at ``levels``; ``made_elsewhere``: ids of targets built in another call."""
        # the study days of the datasets the sources at these levels read only (and DM: the reference dates)
        read = {"DM"}
        for source in (s for sources in self.specs.resources.values() for s in sources if s.level in levels):
            read.update([source.dataset or "DM", *source.from_datasets, *(c.dataset for c in source.children)])
        datasets = {**datasets, **submitted_days({k: v for k, v in datasets.items() if k in read}, self.specs)}
        resources: list[Resource] = []
        blocks: list[SourceLines] = []
        for rtype in sorted(self.specs.resources, key=self.specs.type_rank):
            for source in self.specs.resources[rtype]:
                if source.level in levels:
                    made = self._source(source, datasets)
                    if isinstance(made, SourceLines):
                        blocks.append(made)
                    else:
                        resources.extend(made)
                    self._memo.clear()
        self._check_targets(resources, blocks, made_elsewhere)
        self._check_unique(resources, blocks)
        return FhirResult(resources=resources, refs=self.refs, problems=self.problems, blocks=blocks)

    # -- columns, read once per source ------------------------------------------------------------------------------
    def _values(self, df: pd.DataFrame, var: str) -> list[Any]:
        key = ("values", id(df), var)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = (df, column_values(df, var))
        return got[1]

    def _factors(self, df: pd.DataFrame, var: str) -> Factored | None:
        key = ("factors", id(df), var)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = (df, column_factors(df, var))
        return got[1]

    def _texts(self, df: pd.DataFrame, var: str) -> list[str | None]:
        key = ("texts", id(df), var)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = (df, text_values(df, var))
        return got[1]

    def _mask(self, df: pd.DataFrame, expr: Expr) -> np.ndarray[Any, np.dtype[np.bool_]]:
        key = ("mask", id(df), expr)
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = (df, eval_mask(df, expr))
        return got[1]

    # -- one source -----------------------------------------------------------------------------------------------
    def _frame(self, source: SourceSpec, datasets: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
        if source.level == "study":
            ids: set[str] = set()
            for name in source.from_datasets:
                df = datasets.get(name)
                if df is not None and "STUDYID" in df.columns:
                    ids |= {x for x in (as_text(v) for v in column_values(df, "STUDYID")) if x}
            if not ids:
                return None
            return pd.DataFrame({"STUDYID": pd.Series(sorted(ids), dtype=object)})
        assert source.dataset is not None
        df = datasets.get(source.dataset)
        if df is None or df.empty:
            return None
        return query(df, source.where).reset_index(drop=True)

    def _forward(
        self, el: Element, df: pd.DataFrame, dataset: str | None, label: Callable[[int], str]
    ) -> Forward | None:
        """The element's fragments for every row of ``df`` (None when its variable is absent)."""
        n = len(df)
        if el.kind == "fixed":
            value = el.args["value"]
            frags: list[Any] = [value] * n
            fwd = Forward(frags)
        elif el.kind in ("study_ref", "subject_ref"):
            fwd = Forward(self._refs_for(el, df))
        else:
            if el.var is None:
                return None
            factored = self._factors(df, el.var) if el.var in df.columns else None
            if factored is not None:
                values = factored.distinct  # the transforms are value by value: each distinct value once
            elif el.var in df.columns:
                values = self._values(df, el.var)
            elif el.kind == "map" and None in el.args["map"]:
                values = [None] * n  # an absent variable is all missing: its null mapping still applies
            else:
                return None
            fn = FORWARD[el.kind]
            if el.kind in ("concept", "coding"):
                fwd = fn(el, values, self.ctx, element_codelist(el, dataset, self.sdtm_specs))
            else:
                fwd = fn(el, values, self.ctx)
            if factored is not None:
                fwd = _by_row(fwd, factored.codes)
        if el.when:
            mask = self._mask(df, el.when)
            if isinstance(fwd.frags, Factored):
                fwd.frags = fwd.frags.where(mask)
            else:
                fwd.frags = [f if m else None for f, m in zip(fwd.frags, mask.tolist(), strict=True)]
            if fwd.originals is not None:
                fwd.originals = [o if m else None for o, m in zip(fwd.originals, mask.tolist(), strict=True)]
            fwd.problems = [(i, msg) for i, msg in fwd.problems if mask[i]]
        for i, msg in fwd.problems:
            self.problems.append(
                problem(dataset or "study", label(i), el.var or "", "", "fhir-value", f"{el.path}: {msg}")
            )
        return fwd

    def _with_fallback(
        self, path: FPath, frags: Sequence[Any], originals: list[str | None] | None, el_path: FPath
    ) -> list[tuple[Entry, Sequence[Any] | None]]:
        """Writes of the fragments, and of the SDTM values their primitives could not hold."""
        if originals is None:
            return [(Entry(path), frags)]
        if el_path.string_sibling() is not None:
            sib = path.string_sibling()
            assert sib is not None
            kept = [None if o is not None else f for f, o in zip(frags, originals, strict=True)]
            return [(Entry(path), kept), (Entry(sib), list(originals))]
        ext = path.primitive_extension()
        if ext is None:
            return [(Entry(path), frags)]
        url = self.ctx.original_url
        holders = [None if o is None else {"extension": [{"url": url, "valueString": o}]} for o in originals]
        return [(Entry(path), frags), (Entry(ext), holders)]

    def _entries(
        self, el: Element, path: FPath, df: pd.DataFrame, dataset: str | None, label: Callable[[int], str]
    ) -> list[tuple[Entry, Sequence[Any] | None]]:
        """The writes of one element at ``path``: a column of fragments, or a constant (and where it applies)."""
        fwd = self._forward(el, df, dataset, label)
        if fwd is None:
            return []
        if el.kind == "fixed":
            if el.args["value"] is None:
                return []
            mask = fwd.frags if el.when else None
            return [(Entry(path, const=el.args["value"], is_const=True, has_mask=mask is not None), mask)]
        out = self._with_fallback(path, fwd.frags, fwd.originals, el.path)
        if el.kind in SHARED:
            out[0] = (replace(out[0][0], shared=True), out[0][1])
        return out

    @staticmethod
    def _fill(
        roots: list[JsonDict],
        plan: list[tuple[Entry, Sequence[Any] | None]],
        rows: list[int] | None,
        root_keys: frozenset[str],
    ) -> None:
        """Write every entry of the plan into the roots (``rows``: the rows of the columns they are, None: all)."""
        entries = [selector_checked(e, col) for e, col in plan]
        cols = [col if rows is None else rows_of(col, rows) for _e, col in plan if col is not None]
        prog = compile_rows(entries, root_keys)
        if prog is not None:
            prog(roots, *cols)
            return
        # paths the row programs do not follow: the setters, value by value (each root in plan order)
        caches: list[Cache] = [{} for _ in roots]
        it = iter(cols)
        for e in entries:
            setter = compile_setter(e.path)
            if e.is_const:
                mask: Sequence[Any] = next(it) if e.has_mask else [True] * len(roots)
                deep = isinstance(e.const, dict | list)
                vals: Sequence[Any] = [None if m is None else json_copy(e.const) if deep else e.const for m in mask]
            else:
                vals = next(it)
                if e.shared:
                    vals = [json_copy(v) if isinstance(v, dict | list) else v for v in vals]
            for root, val, cache in zip(roots, vals, caches, strict=True):
                if val is not None:
                    setter(root, val, cache)

    def _refs_for(self, el: Element, df: pd.DataFrame) -> Sequence[Any]:
        rtype = "ResearchStudy" if el.kind == "study_ref" else "Patient"
        target = self._targets.get(rtype)
        if target is None:
            raise ValueError(f"{el.where}: as: {el.kind} needs a {rtype} spec with an identifier")
        codes, pairs = render_distinct([target.ident.system, target.ident.value], df, self._texts)
        refs: list[Any] = []  # one shared reference per target, in first-seen order (the RefTable's, its problems')
        for s, v in pairs:
            if s is None or v is None:
                refs.append(None)
                continue
            u = resource_uuid(rtype, s, v)
            cond = f"{rtype}?{identifier_query(s, v)}" if target.level == "study" else None
            refs.append(self.refs.ref(rtype, u, cond))
        return Factored(codes, refs)

    def _source(self, source: SourceSpec, datasets: Mapping[str, pd.DataFrame]) -> list[Resource] | SourceLines:
        df = self._frame(source, datasets)
        if df is None or df.empty:
            return []
        ds = source.dataset
        keys = ["USUBJID", *(v for v in (source.identifier.value.vars if source.identifier else ()) if v != "USUBJID")]

        def label(i: int) -> str:
            return row_label(df, i, keys)

        n = len(df)
        ident = source.identifier
        if ident is None:
            raise ValueError(f"{source.where_text}: a source needs an identifier to make resources")
        systems = render_per_distinct(ident.system, df, self._texts)
        values = render(ident.value, df, self._texts)
        texted = self.text and identifier_text_ok(ident.path)  # the identifiers' JSON made as text, no dict per row
        ids: Sequence[Any] = identifier_texts(systems, values) if texted else identifiers(systems, values)
        plan: list[tuple[Entry, Sequence[Any] | None]] = [(Entry(ident.path, value_keys=_IDENTIFIER_KEYS), ids)]
        for el in source.elements:
            if el.to_fhir:
                plan.extend(self._entries(el, el.path, df, ds, label))
        rtype = source.resource
        systems_all, values_all = systems, values
        made = [i for i, (s, v) in enumerate(zip(systems, values, strict=True)) if s is not None and v is not None]
        rows: list[int] | None = None
        if len(made) < n:
            rows = made
            have = set(made)
            for i in range(n):
                if i in have:
                    continue
                missing = [
                    x for x in ident.value.vars + ident.system.vars if x not in df.columns or df[x].isna().iloc[i]
                ]
                self.problems.append(
                    problem(ds or "study", label(i), ",".join(missing), "", "fhir-identifier",
                            f"no {rtype} made: its identifier needs {', '.join(missing)}")
                )  # fmt: skip
            systems = [systems[i] for i in made]
            values = [values[i] for i in made]
        m_systems: list[str] = systems  # type: ignore[assignment]  # made rows: never None
        m_values: list[str] = values  # type: ignore[assignment]
        uuids = resource_uuids(rtype, m_systems, m_values)
        if self.columnar:
            subjects: list[str | None] = []  # NDJSON only: no Bundle to group by subject
        elif source.level == "subject" and "USUBJID" in df.columns:
            subjects = list(self._texts(df, "USUBJID"))
            if rows is not None:
                subjects = [subjects[i] for i in rows]
        else:
            subjects = [None] * len(made)
        present = [False] * n
        for i in made:
            present[i] = True
        groups = [(c, self._child(c, source, df, present, datasets, self.text)) for c in source.children
                  if c.direction in ("both", "to_fhir")]  # fmt: skip
        request, name = source.request, source.name
        texts = None
        if self.text:
            texts = source_lines(rtype, plan, rows, made, uuids, groups, self.refs if self.bundle_texts else None)
        if texts is not None:
            lines, twins = texts
            if self.columnar:
                return SourceLines(rtype, name, uuids, m_systems, m_values, lines)
            no_twins: list[bytes | None] = [None] * len(lines)
            return [
                Resource(rtype, {}, u, subj, s, v, request, name, line, twin)
                for u, subj, s, v, line, twin in zip(
                    uuids, subjects, m_systems, m_values, lines, twins or no_twins, strict=True
                )
            ]
        groups = item_dicts(groups) if self.text else groups  # items made as text: dicts again
        made_bodies: list[JsonDict] = [{"resourceType": rtype, "id": u} for u in uuids]
        if texted:
            plan[0] = (plan[0][0], identifiers(systems_all, values_all))
        self._fill(made_bodies, plan, rows, _BODY_KEYS)
        bodies: dict[int, JsonDict] = dict(zip(made, made_bodies, strict=True))  # by row of the source
        for child, items in groups:
            append = compile_appender(child.path) if child.mode == "list" else None
            put = compile_setter(child.path) if child.mode == "first" else None
            done: set[int] = set()
            for p, item in items:
                if append is not None:
                    append(bodies[p], item, {})
                elif put is not None and p not in done:
                    put(bodies[p], item, {})
                    done.add(p)
        if self.text:  # paths the templates do not follow: the dicts, serialised
            if self.bundle_texts:
                dumped, as_bundle = dual_dumps(made_bodies, self.refs)
            else:
                dumped, as_bundle = [orjson.dumps(body) for body in made_bodies], [None] * len(made_bodies)
            if self.columnar:
                return SourceLines(rtype, name, uuids, m_systems, m_values, dumped)
            return [
                Resource(rtype, {}, u, subj, s, v, request, name, line, twin)
                for u, subj, s, v, line, twin in zip(
                    uuids, subjects, m_systems, m_values, dumped, as_bundle, strict=True
                )
            ]
        return [
            Resource(rtype, body, u, subj, s, v, request, name)
            for body, u, subj, s, v in zip(made_bodies, uuids, subjects, m_systems, m_values, strict=True)
        ]

    # -- child rows riding on the resources of a source ----------------------------------------------------------
    def _child(
        self,
        child: ChildSpec,
        source: SourceSpec,
        parent: pd.DataFrame,
        present: list[bool],
        datasets: Mapping[str, pd.DataFrame],
        as_text: bool = False,
    ) -> list[tuple[int, Any]]:
        """The items of a child group, each with the parent row it goes to, in order (parents made only)."""
        if child.when_absent and child.when_absent in datasets and not datasets[child.when_absent].empty:
            return []
        cdf = datasets.get(child.dataset)
        if cdf is None or cdf.empty:
            return []
        cdf = query(cdf, child.where)
        if child.distinct:
            cols = list(dict.fromkeys([*child.link, *child.distinct]))
            cdf = with_columns(cdf, cols)[cols].drop_duplicates()
        cdf = cdf.reset_index(drop=True)
        if cdf.empty:
            return []
        parents, orphans = link_children(child, source, parent, cdf)
        self.problems.extend(orphans)
        keys = ["USUBJID", "IDVAR", "IDVARVAL", "QNAM", *child.link, *child.distinct]
        keys = [k for k in dict.fromkeys(keys) if k in cdf.columns][:4]

        def label(i: int) -> str:
            return row_label(cdf, i, keys)

        template = dict(child.item) if child.item else {}
        rows = [i for i, p in enumerate(parents) if p is not None and present[p]]
        if literal(template) is not None:
            items = self._child_rows(child, cdf, parents, rows, template, label, as_text)
        else:
            items = self._child_items(child, cdf, rows, template, label)
        empty = orjson.dumps(template)  # an item nothing was written into: none
        return [(p, item) for p, item in zip((parents[i] for i in rows), items, strict=True)
                if not (item == {} or item == empty or (isinstance(item, dict) and item == template))
                and p is not None]  # fmt: skip

    def _child_items(
        self, child: ChildSpec, cdf: pd.DataFrame, rows: list[int], template: JsonDict, label: Callable[[int], str]
    ) -> list[Any]:
        """Child items from a template that is not plain JSON: the setters, value by value."""
        plan: list[tuple[Setter3, Sequence[Any]]] = []
        for el in child.elements:
            if not el.to_fhir:
                continue
            fwd = self._forward(el, cdf, child.dataset, label)
            if fwd is None:
                continue
            frags = fwd.frags
            if el.kind in SHARED:
                frags = [json_copy(f) if isinstance(f, dict | list) else f for f in frags]
            for e, col in self._with_fallback(_item_path(el.path), frags, fwd.originals, el.path):
                assert col is not None
                plan.append((compile_setter(e.path), col))
        items: list[Any] = []
        for i in rows:
            holder: JsonDict = {"item": json_copy(template)}
            cache: Cache = {}
            for setter, vals in plan:
                val = vals[i]
                if val is not None:
                    setter(holder, val, cache)
            items.append(holder["item"])
        return items

    def _child_rows(
        self,
        child: ChildSpec,
        cdf: pd.DataFrame,
        parents: list[int | None],
        rows: list[int],
        template: JsonDict,
        label: Callable[[int], str],
        as_text: bool = False,
    ) -> list[Any]:
        """Child items built from a plain JSON template, column-wise (see :meth:`_fill`), or as text (item_lines)."""
        plan: list[tuple[Entry, Sequence[Any] | None]] = []
        for el in child.elements:
            if el.to_fhir:
                plan.extend(self._entries(el, el.path, cdf, child.dataset, label))
        if any(not e.path.steps for e, _col in plan):  # a value that is the item itself
            holder_plan = [(replace(e, path=_item_path(e.path)), col) for e, col in plan]
            holders: list[JsonDict] = [{"item": json_copy(template)} for _ in rows]
            self._fill(holders, holder_plan, rows, frozenset({"item"}))
            return [h["item"] for h in holders]
        sub = rows if len(rows) < len(parents) else None
        if as_text and (lines := item_lines(child, plan, sub, len(rows), template)) is not None:
            return lines
        copy_of = dict if _flat(template) else json_copy
        items = [copy_of(template) for _ in rows]
        self._fill(items, plan, sub, frozenset(template))
        return items

    # -- checks ---------------------------------------------------------------------------------------------------
    def _check_targets(
        self, resources: list[Resource], blocks: list[SourceLines], made_elsewhere: frozenset[str]
    ) -> None:
        made = {r.uuid for r in resources}.union(made_elsewhere, *(b.uuids for b in blocks))
        for target, rtype in self.refs.targets().items():
            if target not in made:
                self.problems.append(
                    problem("", "", "", target, "fhir-reference",
                            f"resources refer to a {rtype} that no SDTM row makes (id {target})")
                )  # fmt: skip

    def _check_unique(self, resources: list[Resource], blocks: list[SourceLines]) -> None:
        ids = {r.uuid for r in resources}.union(*(b.uuids for b in blocks))
        if len(ids) == len(resources) + sum(len(b.uuids) for b in blocks):
            return  # an id hashes its "<Type>|<system>|<value>": ids all distinct, identifiers all distinct
        made = [(r.rtype, r.system, r.value, r.source) for r in resources]
        made += [(b.rtype, sy, v, b.source) for b in blocks for sy, v in zip(b.systems, b.values, strict=True)]
        seen: dict[str, str] = {}  # identifier -> the source that made it first
        for rtype, system, value, source in made:
            key = f"{rtype}|{system}|{value}"
            if key in seen:
                self.problems.append(
                    problem(source, value, "identifier", value, "fhir-identifier",
                            f"{rtype} identifier {system}|{value} is not unique "
                            f"(also made by {seen[key]})")
                )  # fmt: skip
            else:
                seen[key] = source


def sdtm_to_fhir(
    datasets: Mapping[str, pd.DataFrame],
    specs: FhirSpecs,
    ct: Terminology | None = None,
    sdtm_specs: Mapping[str, DatasetSpec] | None = None,
) -> FhirResult:
    """Every resource the specs make from the SDTM frames (plain dicts), with the problems found on the way."""
    with no_gc():
        return Builder(specs, ct, sdtm_specs).build(datasets)
