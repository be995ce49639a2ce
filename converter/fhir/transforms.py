"""Value transforms between SDTM values and FHIR JSON fragments, column at a time, both ways.

Forward (SDTM -> FHIR) takes the values of one variable (``None`` for missing) and gives, per row, the JSON
fragment to write at the element's path (``None``: write nothing) and, where the primitive cannot hold the SDTM
value exactly, the SDTM value itself for the original-value extension on the primitive's ``_name`` holder.
Inverse (FHIR -> SDTM) takes the fragments read at the path (and the ``_name`` holders) and gives the values.

Both directions report problems as ``(row index, message)``; nothing is dropped without one.

Each distinct value is converted once. The dict fragments of :data:`SHARED` transforms are one object per distinct
value, shared by the rows that have it: whoever writes into a fragment copies it first (the builder does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from converter.fhir.fhir_dates import fhir_date
from converter.fhir.mapping import Element
from converter.spec.model import Terminology

Problems = list[tuple[int, str]]

_CODE = re.compile(r"^[^\s]+( [^\s]+)*$")


@dataclass
class TransformContext:
    ct: Terminology | None
    tables: Mapping[str, Mapping[Any, Any]]
    original_url: str
    ncit: str
    ucum: str
    # per codelist id: submission -> C-code, C-code -> submission, submission -> decode
    _codes: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = field(default_factory=dict)

    def codes(self, codelist: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        got = self._codes.get(codelist)
        if got is None:
            fwd: dict[str, str] = {}
            back: dict[str, str] = {}
            decode: dict[str, str] = {}
            if self.ct is not None and codelist in self.ct.codelists:
                for t in self.ct.codelists[codelist].terms:
                    if t.code:
                        fwd[t.submission] = t.code
                        back.setdefault(t.code, t.submission)
                    if t.decode:
                        decode[t.submission] = t.decode
            got = self._codes[codelist] = (fwd, back, decode)
        return got


def as_text(v: Any) -> str | None:
    """An SDTM character value: str as is, a whole float without '.0', None for missing/empty."""
    if v is None:
        return None
    if isinstance(v, str):
        return v if v != "" else None
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    return str(v)


_NONE_TYPE = type(None)
_TEXT_TYPES = frozenset({str, _NONE_TYPE})
_HASHABLE = frozenset({str, int, float, bool})


def as_texts(values: Sequence[Any]) -> list[str | None]:
    """:func:`as_text` of each value (text columns: only ``""`` becomes None)."""
    if set(map(type, values)) <= _TEXT_TYPES:
        return [v or None for v in values]
    return [as_text(v) for v in values]


def _number(v: Any) -> float | int | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
        return None if math.isnan(f) or math.isinf(f) else f
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


# --- forward -------------------------------------------------------------------------------------------------------
@dataclass
class Forward:
    frags: Sequence[Any]
    originals: list[str | None] | None = None
    problems: Problems = field(default_factory=list)


def _fallback(el: Element) -> bool:
    """Can this element keep an SDTM value its primitive cannot hold (in the original-value extension)?"""
    return el.path.fallback() is not None


def fwd_string(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    kinds = set(map(type, values))
    if kinds <= _TEXT_TYPES:  # text columns: no conversion
        return Forward(list(values))
    kinds.discard(_NONE_TYPE)
    if len(kinds) == 1 and kinds <= _HASHABLE:  # one type (numbers): each distinct value converted once
        text_of = {v: as_text(v) for v in set(values)}
        return Forward(list(map(text_of.__getitem__, values)))
    return Forward([v if v.__class__ is str else as_text(v) for v in values])


def _per_value(el: Element, values: Sequence[Any], convert: Callable[[Any], tuple[Any, str | None]]) -> Forward:
    """Convert value by value; ``convert`` gives (the FHIR value, why the SDTM value does not fit or None).

    A value that does not fit is kept as written in the original-value extension where the element has one,
    else reported as a problem of its row."""
    kinds = set(map(type, values))
    kinds.discard(_NONE_TYPE)
    if len(kinds) <= 1:  # one type: equal values are the same value (1 and 1.0 and True never meet)
        try:
            conv = {v: convert(v) for v in set(values)}
        except TypeError:  # an unhashable value
            conv = None
        if conv is not None and all(lost is None for _val, lost in conv.values()):
            value_of = {v: val for v, (val, _lost) in conv.items()}
            return Forward(list(map(value_of.__getitem__, values)))
    out: list[Any] = []
    orig: list[str | None] = []
    probs: Problems = []
    can = _fallback(el)
    seen: dict[tuple[type, Any], tuple[Any, str | None]] = {}  # values repeat: convert each distinct one once
    for i, v in enumerate(values):
        key = (v.__class__, v)  # by type too: 1 and 1.0 are equal keys but not the same JSON
        try:
            got = seen.get(key)
            if got is None:
                got = seen[key] = convert(v)
        except TypeError:  # an unhashable value: converted on its own
            got = convert(v)
        val, lost = got
        out.append(val)
        if lost is None:
            orig.append(None)
        elif can:
            orig.append(as_text(v))
        else:
            orig.append(None)
            probs.append((i, lost))
    return Forward(out, orig if any(o is not None for o in orig) else None, probs)


def fwd_code(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    def convert(v: Any) -> tuple[Any, str | None]:
        t = as_text(v)
        if t is None or _CODE.match(t):
            return t, None
        return None, f"{t!r} is not a valid FHIR code (whitespace)"

    return _per_value(el, values, convert)


def fwd_integer(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    def convert(v: Any) -> tuple[Any, str | None]:
        n = _number(v)
        if n is None:
            return None, (f"{v!r} is not a number" if v is not None and as_text(v) is not None else None)
        if isinstance(n, int) or float(n).is_integer():
            return int(n), None
        return None, f"{v!r} is not a whole number"

    return _per_value(el, values, convert)


def fwd_decimal(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    def convert(v: Any) -> tuple[Any, str | None]:
        n = _number(v)
        if n is None and v is not None and as_text(v) is not None:
            return None, f"{v!r} is not a number"
        return n, None

    return _per_value(el, values, convert)


def _fwd_date(with_time: bool) -> Callable[[Element, Sequence[Any], TransformContext], Forward]:
    def fwd(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
        def convert(v: Any) -> tuple[Any, str | None]:
            t = as_text(v)
            if t is None:
                return None, None
            val, exact = fhir_date(t, with_time)
            return val, None if exact else f"{t!r} is not a FHIR {'dateTime' if with_time else 'date'}; kept {val!r}"

        return _per_value(el, values, convert)

    return fwd


def fwd_map(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    table: Mapping[Any, Any] = el.args["map"]
    partial = bool(el.args.get("partial"))
    null = table.get(None)
    texts = as_texts(values)
    distinct = set(texts)
    distinct.discard(None)
    if all(t in table for t in distinct):  # every value mapped
        value_of = {t: table[t] for t in distinct}
        value_of[None] = null
        return Forward(list(map(value_of.__getitem__, texts)))
    out: list[Any] = []
    orig: list[str | None] = []
    probs: Problems = []
    can = _fallback(el)
    for i, t in enumerate(texts):
        if t is None:
            out.append(null)
            orig.append(None)
            continue
        if t in table:
            out.append(table[t])
            orig.append(None)
            continue
        out.append(None)
        if partial:
            orig.append(None)
        elif can:
            orig.append(t)
        else:
            orig.append(None)
            probs.append((i, f"{t!r} is not in the value map of {el.path}"))
    return Forward(out, orig if any(o is not None for o in orig) else None, probs)


def _ncit(el: Element, codelist: str | None, t: str, ctx: TransformContext) -> dict[str, str] | None:
    if not codelist:
        return None
    fwd, _back, decode = ctx.codes(codelist)
    code = fwd.get(t)
    return {"system": ctx.ncit, "code": code, "display": decode.get(t, t)} if code else None


def _std_coding(el: Element, t: str) -> dict[str, str] | None:
    system = el.args.get("system")
    if not system:
        return None
    table = el.args.get("map")
    if table is None:
        return {"system": system, "code": t} if _CODE.match(t) else None
    code = table.get(t)
    if code is None:
        return None
    c = {"system": system, "code": str(code)}
    disp = (el.args.get("display") or {}).get(t)
    if disp:
        c["display"] = str(disp)
    return c


def fwd_concept(el: Element, values: Sequence[Any], ctx: TransformContext, codelist: str | None = None) -> Forward:
    text = el.args.get("text", True)
    partial = el.args.get("partial")
    texts = as_texts(values)
    frag: dict[str | None, Any] = {None: None}  # per distinct value: the CodeableConcept (shared) ...
    msgs: dict[str, str] = {}  # ... and why it has no code, where that is a problem
    for t in set(texts):
        if t is None:
            continue
        codings = [c for c in (_std_coding(el, t), _ncit(el, codelist, t, ctx)) if c is not None]
        keep_text = bool(text) or not codings
        cc: dict[str, Any] = {}
        if codings:
            cc["coding"] = codings
        if keep_text:
            cc["text"] = t
        frag[t] = cc
        if keep_text and not text and not partial:
            msgs[t] = f"{t!r} has no code in {el.args.get('system')}; kept as text"
    probs: Problems = [(i, msgs[t]) for i, t in enumerate(texts) if t in msgs] if msgs else []
    return Forward(list(map(frag.__getitem__, texts)), None, probs)


def fwd_coding(el: Element, values: Sequence[Any], ctx: TransformContext, codelist: str | None = None) -> Forward:
    partial = bool(el.args.get("partial"))
    texts = as_texts(values)
    frag: dict[str | None, Any] = {None: None}  # per distinct value: the Coding (shared)
    msgs: dict[str, str] = {}
    for t in set(texts):
        if t is None:
            continue
        c = _std_coding(el, t) or _ncit(el, codelist, t, ctx)
        if c is None and el.args.get("system") and not el.args.get("map"):
            c = {"system": el.args["system"], "display": t}
        if c is None and not partial:
            msgs[t] = f"{t!r} has no code in {el.args.get('system') or codelist}"
        frag[t] = c
    probs: Problems = [(i, msgs[t]) for i, t in enumerate(texts) if t in msgs] if msgs else []
    return Forward(list(map(frag.__getitem__, texts)), None, probs)


def fwd_unit(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    table = ctx.tables.get(str(el.args.get("table", "ucum")), {})
    texts = as_texts(values)
    frag: dict[str | None, Any] = {None: None}  # per distinct value: the Quantity's unit part (shared)
    for t in set(texts):
        if t is not None:
            code = table.get(t)
            frag[t] = {"unit": t, "system": ctx.ucum, "code": str(code)} if code is not None else {"unit": t}
    return Forward(list(map(frag.__getitem__, texts)))


def fwd_number_code(el: Element, values: Sequence[Any], ctx: TransformContext) -> Forward:
    texts = as_texts(values)
    bad = {t for t in set(texts) if t is not None and not _CODE.match(t)}
    if not bad:
        return Forward(texts)
    out: list[Any] = []
    probs: Problems = []
    for i, t in enumerate(texts):
        if t in bad:
            probs.append((i, f"{t!r} is not a valid FHIR code"))
            t = None
        out.append(t)
    return Forward(out, None, probs)


#: transforms whose dict fragments are shared by the rows with the same value (copy before writing into one)
SHARED = frozenset({"concept", "coding", "unit", "map"})


def json_copy(value: Any) -> Any:
    """A fresh copy of a JSON value (dicts, lists, tuples copied; str, numbers, bool, None and any other object
    kept): what each resource needs of a shared fragment before a setter writes into it. Several times cheaper
    than ``copy.deepcopy``, which keeps a memo of every object it visits."""
    if isinstance(value, dict):
        return {k: json_copy(v) if isinstance(v, dict | list | tuple) else v for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) if isinstance(v, dict | list | tuple) else v for v in value]
    if isinstance(value, tuple):
        return tuple(json_copy(v) for v in value)
    return value


FORWARD: dict[str, Callable[..., Forward]] = {
    "string": fwd_string,
    "code": fwd_code,
    "integer": fwd_integer,
    "decimal": fwd_decimal,
    "date": _fwd_date(False),
    "dateTime": _fwd_date(True),
    "map": fwd_map,
    "concept": fwd_concept,
    "coding": fwd_coding,
    "unit": fwd_unit,
    "number_code": fwd_number_code,
}


# --- inverse -------------------------------------------------------------------------------------------------------
def original_value(holder: Any, url: str) -> str | None:
    """The SDTM value kept in a ``_name`` holder's original-value extension (or a valueString sibling), if any."""
    if isinstance(holder, str):
        return holder
    if not isinstance(holder, dict):
        return None
    for ext in holder.get("extension") or ():
        if isinstance(ext, dict) and ext.get("url") == url:
            v = ext.get("valueString")
            return v if isinstance(v, str) else None
    return None


def _reverse(table: Mapping[Any, Any]) -> tuple[dict[Any, Any], dict[str, Any]]:
    exact: dict[Any, Any] = {}
    folded: dict[str, Any] = {}
    for k, v in table.items():
        exact.setdefault(v, k)
        if isinstance(v, str):
            folded.setdefault(v.casefold(), k)
    return exact, folded


def _back(table: Mapping[Any, Any], value: Any) -> tuple[bool, Any]:
    exact, folded = _reverse(table)
    if value in exact:
        return True, exact[value]
    if isinstance(value, str) and value.casefold() in folded:
        return True, folded[value.casefold()]
    return False, None


_TEXT_KINDS = frozenset({"string", "code", "date", "dateTime"})


def inverse(
    el: Element,
    frags: Sequence[Any],
    holders: Sequence[Any] | None,
    ctx: TransformContext,
    codelist: str | None = None,
) -> tuple[list[Any], Problems]:
    """SDTM values of one element for every resource (``None`` where the element gives nothing)."""
    kind = el.kind
    if holders is None and kind in _TEXT_KINDS and set(map(type, frags)) <= _TEXT_TYPES:
        return [f or None for f in frags], []  # the loop's answer for text and None values ("" is None)
    out: list[Any] = [None] * len(frags)
    probs: Problems = []
    url = ctx.original_url
    table = el.args.get("map")
    rev = _reverse(table) if isinstance(table, Mapping) else ({}, {})
    null_value = table.get(None) if isinstance(table, Mapping) else None
    for i, f in enumerate(frags):
        if kind == "present":
            if f is not None or (holders is not None and holders[i] is not None):
                out[i] = el.args["value"]
            continue
        if holders is not None and holders[i] is not None:
            o = original_value(holders[i], url)
            if o is not None:
                out[i] = o
                continue
        if f is None:
            continue
        if kind in ("string", "code", "date", "dateTime"):
            if isinstance(f, str):
                out[i] = f if f != "" else None
            elif isinstance(f, bool | int | float):
                out[i] = as_text(f)
            else:
                probs.append((i, f"expected a text value at {el.path}, found {type(f).__name__}"))
        elif kind in ("integer", "decimal"):
            n = _number(f) if not isinstance(f, str) else None
            if n is None:
                probs.append((i, f"expected a number at {el.path}, found {f!r}"[:160]))
            else:
                out[i] = int(n) if kind == "integer" and float(n).is_integer() else n
        elif kind == "number_code":
            n = _number(f)
            if n is None:
                probs.append((i, f"expected a numeric code at {el.path}, found {f!r}"[:160]))
            else:
                out[i] = n
        elif kind == "number_text":
            n = _number(f) if not isinstance(f, str) else None
            out[i] = as_text(float(n)) if n is not None else None
        elif kind == "map":
            if f == null_value and isinstance(table, Mapping) and None in table:
                continue
            back = el.args.get("back")
            if isinstance(back, Mapping) and f in back:
                out[i] = back[f]
                continue
            if f in rev[0]:
                out[i] = rev[0][f]
            elif isinstance(f, str) and f.casefold() in rev[1]:
                out[i] = rev[1][f.casefold()]
            elif not el.args.get("partial"):
                known = ", ".join(str(x) for x in [*rev[0], *(el.args.get("back") or {})])
                probs.append((i, f"code {f!r} at {el.path} has no SDTM value (known: {known})"[:200]))
        elif kind == "concept":
            val, msg = _concept_back(el, f, ctx, codelist, rev)
            out[i] = val
            if msg:
                probs.append((i, msg))
        elif kind == "coding":
            val, msg = _coding_back(el, f, ctx, codelist, rev)
            out[i] = val
            if msg and not el.args.get("partial"):
                probs.append((i, msg))
        elif kind == "unit" and isinstance(f, dict):
            if isinstance(f.get("unit"), str) and f["unit"]:
                out[i] = f["unit"]
            elif isinstance(f.get("code"), str):
                ok, back = _back(ctx.tables.get(str(el.args.get("table", "ucum")), {}), f["code"])
                out[i] = back if ok else f["code"]
    return out, probs


def _coding_back(
    el: Element, c: Any, ctx: TransformContext, codelist: str | None, rev: tuple[dict[Any, Any], dict[str, Any]]
) -> tuple[Any, str | None]:
    if not isinstance(c, dict):
        return None, f"expected a Coding at {el.path}"
    system, code = c.get("system"), c.get("code")
    if codelist and system == ctx.ncit and isinstance(code, str):
        sub = ctx.codes(codelist)[1].get(code)
        if sub is not None:
            return sub, None
        if isinstance(c.get("display"), str):
            return c["display"], None
    want = el.args.get("system")
    if want and system == want:
        if el.args.get("map") is None:
            if isinstance(code, str):
                return code, None
            if isinstance(c.get("display"), str):
                return c["display"], None
        elif code in rev[0]:
            return rev[0][code], None
        elif isinstance(code, str) and code.casefold() in rev[1]:
            return rev[1][code.casefold()], None
        return None, f"unknown code {system}|{code} at {el.path}"
    return None, f"no coding of {want or codelist} at {el.path} (found {system}|{code})"


def _concept_back(
    el: Element, cc: Any, ctx: TransformContext, codelist: str | None, rev: tuple[dict[Any, Any], dict[str, Any]]
) -> tuple[Any, str | None]:
    if not isinstance(cc, dict):
        return None, f"expected a CodeableConcept at {el.path}"
    codings = [c for c in cc.get("coding") or () if isinstance(c, dict)]
    if codelist:
        back = ctx.codes(codelist)[1]
        for c in codings:
            if c.get("system") == ctx.ncit:
                code = c.get("code")
                if isinstance(code, str) and code in back:
                    return back[code], None
    want = el.args.get("system")
    unknown: str | None = None
    if want:
        table = el.args.get("map")
        for c in codings:
            if c.get("system") != want:
                continue
            code = c.get("code")
            if table is None:
                if isinstance(code, str) and code:
                    return code, None
            elif code in rev[0]:
                return rev[0][code], None
            elif isinstance(code, str) and code.casefold() in rev[1]:
                return rev[1][code.casefold()], None
            else:
                unknown = f"unknown code {want}|{code} at {el.path}"
    text = cc.get("text")
    if isinstance(text, str) and text:
        return text, None
    if unknown:
        return None, unknown
    for c in codings:
        if isinstance(c.get("display"), str) and c["display"]:
            return c["display"], None
    if codings and not el.args.get("partial"):
        sys_codes = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in codings)
        return None, f"no known code or text at {el.path} ({sys_codes})"[:200]
    return None, None
