"""Row programs: the setters of a source's paths compiled into one Python function that fills every row.

:func:`converter.fhir.path_setters.compile_setter` gives one closure per path, called once per value with lookups
(``node.get``) at every step. For a fixed list of paths written in a fixed order, which nodes exist at any moment
of a row follows from which values the row has, so a generated function can keep each node in a local variable
(created on the first value that needs it) and place every value with one or two plain statements:

    for b, v0, v1, v2 in zip(roots, c0, c1, c2):
        n1 = n2 = n3 = None
        if v0 is not None:
            if n1 is None:
                n1 = b['extension'] = []
            n2 = {'url': 'https://x/y'}
            n1.append(n2)
            n2['valueString'] = v0
        ...

The result is the same JSON, key for key and item for item, as the closures applied path after path (the
specs are unchanged; this is only how they run). :func:`compile_rows` answers ``None`` for path sets whose
outcome depends on the values in ways the generated code does not follow (a list reached both by position and by
selector, a node written before another path descends into it, a dict value carrying its selector key, a path
to the node itself); the caller then uses the closures.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from converter.fhir.paths import FPath, Step

JsonDict = dict[str, Any]
RowProgram = Callable[..., None]

_JSON_SCALARS = (str, int, bool, type(None))


@dataclass(frozen=True)
class Entry:
    """One write of the plan: a column of values (``None``: nothing) or a constant JSON value (a fresh copy per
    row), written where ``mask`` (a column, ``None``: every row) is not None."""

    path: FPath
    const: Any = None
    is_const: bool = False
    has_mask: bool = False
    dict_selector_key: bool = False  # a value is a dict holding the key of the path's selector step
    shared: bool = False  # dict values may be one object for many rows: copied before anything writes into them
    value_keys: frozenset[str] | None = None  # the keys every dict value has, when known (an identifier's)


@dataclass
class _Node:
    var: str
    parent: _Node | None
    step: Step | None
    list_var: str | None = None  # items of a list: the list's local variable
    descents: list[int] = field(default_factory=list)  # entries going below this node
    assigns: list[int] = field(default_factory=list)  # entries writing at this node
    depth: int = 0  # the index of its step in the paths


def literal(value: Any) -> str | None:
    """Python source that builds a fresh copy of a JSON value (None when it is not plain JSON)."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, _JSON_SCALARS):
        return repr(value)
    if isinstance(value, list):
        items = [literal(v) for v in value]
        return None if any(i is None for i in items) else "[" + ", ".join(str(i) for i in items) + "]"
    if isinstance(value, dict):
        parts: list[str] = []
        for k, v in value.items():
            lv = literal(v)
            if not isinstance(k, str) or lv is None:
                return None
            parts.append(f"{k!r}: {lv}")
        return "{" + ", ".join(parts) + "}"
    return None


def _kind(st: Step) -> tuple[str, str | None]:
    if st.plain:
        return ("plain", None)
    if st.index is not None:
        return ("index", None)
    if len(st.select) == 1 and "." not in st.select[0][0]:
        return ("simple", st.select[0][0])
    return ("complex", None)


class _Unsupported(Exception):
    pass


class _Compiler:
    def __init__(self, entries: Sequence[Entry], root_keys: frozenset[str]) -> None:
        self.entries = entries
        self.root = _Node("b", None, None)
        self.nodes: dict[tuple[int, Step], _Node] = {}
        self.lists: dict[tuple[int, str], tuple[str, str | None, str]] = {}  # -> (kind, key, var)
        self.plains: set[tuple[int, str]] = {(id(self.root), k) for k in root_keys}
        self.items: dict[tuple[int, str], list[_Node]] = {}  # list -> the nodes that are its items
        self.mixed: set[tuple[int, str]] = set()  # lists reached by steps of different kinds
        self.order: list[_Node] = []
        self.leaves: list[_Node] = []
        for i, e in enumerate(entries):
            if not e.path.steps:
                raise _Unsupported("a path to the node itself")
            node = self.root
            for st in e.path.steps[:-1]:
                node = self._child(node, st)
                node.descents.append(i)
            leaf = self._child(node, e.path.steps[-1])
            leaf.assigns.append(i)
            self.leaves.append(leaf)
        for pk in self.mixed:
            self._check_mixed(self.items[pk])
        for n in self.order:
            if n.descents and n.assigns and max(n.descents) > min(n.assigns):
                raise _Unsupported(f"{n.step}: written before a path goes below it")
            assert n.step is not None
            kind, key = _kind(n.step)
            if n.assigns and kind == "simple" and any(entries[i].dict_selector_key for i in n.assigns):
                raise _Unsupported(f"{n.step}: a dict value holds the selector key {key}")

    def _check_mixed(self, nodes: list[_Node]) -> None:
        """A list reached by selectors of different keys, or by position and by selector: the setters find an
        item by scanning the list, the program by the step that made it. They agree when no selector can match
        an item another step made (nothing is written at the items themselves, and the keys any item can hold
        are its selector's and the first steps of the paths below it; a value written at an item by position
        only when its keys are known, :attr:`Entry.value_keys`), and when every item reached by position is
        reached before any selector adds an item."""
        for n in nodes:
            if n.assigns and (
                _kind(n.step)[0] != "index"  # type: ignore[arg-type]
                or n.descents
                or any(self.entries[i].value_keys is None for i in n.assigns)
            ):
                raise _Unsupported("a value written at an item of a list reached by different kinds of step")
        by_position = [
            i
            for n in nodes
            if _kind(n.step)[0] == "index"  # type: ignore[arg-type]
            for i in [*n.descents, *n.assigns]
        ]
        by_selector = [i for n in nodes if _kind(n.step)[0] != "index" for i in n.descents]  # type: ignore[arg-type]
        if by_position and by_selector and max(by_position) > min(by_selector):
            raise _Unsupported("an item reached by position after a selector added one")
        keys = {id(n): self._item_keys(n) for n in nodes}
        for b in nodes:
            assert b.step is not None
            if b.step.index is not None:
                continue
            for a in nodes:
                if a is not b and self._may_match(b.step, a, keys[id(a)]):
                    raise _Unsupported(f"{b.step} may find the item {a.step} made")

    def _item_keys(self, node: _Node) -> set[str]:
        assert node.step is not None
        keys = {k for k, _v in node.step.select if "." not in k}
        keys |= {self.entries[i].path.steps[node.depth + 1].name for i in node.descents}
        for i in node.assigns:  # values written at the item by position (known keys: _check_mixed)
            keys |= self.entries[i].value_keys or set()
        return keys

    @staticmethod
    def _may_match(st: Step, other: _Node, other_keys: set[str]) -> bool:
        assert other.step is not None
        fixed = {k: v for k, v in other.step.select if "." not in k}
        for k, want in st.select:
            head = k.split(".")[0]
            if head not in other_keys or (k in fixed and fixed[k] != want):
                return False  # a key the other item never has, or holds with another value
        return True

    def _child(self, parent: _Node, st: Step) -> _Node:
        got = self.nodes.get((id(parent), st))
        if got is not None:
            return got
        kind, key = _kind(st)
        pk = (id(parent), st.name)
        list_var: str | None = None
        if kind == "plain":
            if pk in self.lists:
                raise _Unsupported(f"{st.name}: both an element and a list")
            self.plains.add(pk)
        else:
            if pk in self.plains:
                raise _Unsupported(f"{st.name}: both an element and a list")
            have = self.lists.get(pk)
            if have is None:
                have = self.lists[pk] = (kind, key, f"l{len(self.lists)}")
            elif have[:2] != (kind, key):
                self.mixed.add(pk)
            list_var = have[2]
        node = _Node(f"n{len(self.nodes)}", parent, st, list_var, depth=0 if parent.step is None else parent.depth + 1)
        self.nodes[(id(parent), st)] = node
        if list_var is not None:
            self.items.setdefault(pk, []).append(node)
        self.order.append(node)
        return node

    def as_is(self) -> tuple[bool, ...]:
        """Per entry: is a dict value written as it is? True where the entry alone writes its node and nothing
        goes below it, and the write tests nothing of the value (no merge into an earlier node, no selector key
        added): there, like any value that is not a dict, only whether it is present shapes the rest."""
        out: list[bool] = []
        for i, leaf in enumerate(self.leaves):
            assert leaf.step is not None
            kind, _key = _kind(leaf.step)
            only = leaf.assigns == [i] and not leaf.descents
            out.append(only and (kind in ("plain", "index") or not _pairs(leaf.step)))
        return tuple(out)

    # -- code ------------------------------------------------------------------------------------------------------
    # Each local (node or list) is, at a given entry, surely unset (no earlier entry touched it), surely set (an
    # entry that every row has made it) or either: only the last needs an ``is None`` test.
    def _ensure_list(self, node: _Node, state: dict[str, str], ind: str, out: list[str]) -> None:
        assert node.list_var is not None and node.parent is not None and node.step is not None
        lv = node.list_var
        have = state.get(lv, _UNSET)
        if have == _SET:
            return
        if have == _MAYBE:
            out.append(f"{ind}if {lv} is None:")
            ind += "    "
        self._ensure(node.parent, state, ind, out)
        out.append(f"{ind}{lv} = {node.parent.var}[{node.step.name!r}] = []")
        state[lv] = _SET if have == _UNSET else _MAYBE

    def _ensure(self, node: _Node, state: dict[str, str], ind: str, out: list[str]) -> None:
        """Code that makes ``node`` (a dict) exist, as the descenders of paths.py would find or create it."""
        if node.parent is None:
            return
        have = state.get(node.var, _UNSET)
        if have == _SET:
            return
        if have == _MAYBE:
            out.append(f"{ind}if {node.var} is None:")
            ind += "    "
        st = node.step
        assert st is not None
        kind, _key = _kind(st)
        if kind == "plain":
            self._ensure(node.parent, state, ind, out)
            out.append(f"{ind}{node.var} = {node.parent.var}[{st.name!r}] = {{}}")
        else:
            self._ensure_list(node, state, ind, out)
            lv = node.list_var
            if kind == "index":
                out.append(f"{ind}while len({lv}) <= {st.index}:")
                out.append(f"{ind}    {lv}.append({{}})")
                out.append(f"{ind}{node.var} = {lv}[{st.index}]")
            else:
                out.append(f"{ind}{node.var} = {{{_pairs(st)}}}")
                out.append(f"{ind}{lv}.append({node.var})")
        state[node.var] = _SET if have == _UNSET else _MAYBE

    def _assign(self, i: int, v: str, state: dict[str, str], ind: str, out: list[str]) -> None:
        """Code that writes ``v`` at the entry's node, as the assigners of paths.py do."""
        leaf = self.leaves[i]
        st = leaf.step
        parent = leaf.parent
        assert st is not None and parent is not None
        kind, _key = _kind(st)
        only = len(leaf.assigns) == 1 and not leaf.descents
        if self.entries[i].shared and (not only or kind in ("simple", "complex")):
            out.append(f"{ind}if type({v}) is dict:")  # it may be written into (merged, keyed): a copy of its own
            out.append(f"{ind}    {v} = dict({v})")
        if kind == "plain":
            if only and parent.descents == [i] and not parent.assigns and parent.step is not None:
                pkind, _k = _kind(parent.step)
                if pkind in ("simple", "complex"):  # an item of a list only this entry makes: one literal
                    self._ensure_list(parent, state, ind, out)
                    sep = ", " if _pairs(parent.step) else ""
                    out.append(f"{ind}{parent.list_var}.append({{{_pairs(parent.step)}{sep}{st.name!r}: {v}}})")
                    return
            self._ensure(parent, state, ind, out)
            have = state.get(leaf.var, _UNSET)
            if only or have == _UNSET:
                out.append(f"{ind}{'' if only else leaf.var + ' = '}{parent.var}[{st.name!r}] = {v}")
            else:
                out.append(f"{ind}if type({v}) is dict and type({leaf.var}) is dict and {leaf.var}:")
                out.append(f"{ind}    {leaf.var}.update({v})")
                out.append(f"{ind}else:")
                out.append(f"{ind}    {leaf.var} = {parent.var}[{st.name!r}] = {v}")
            if not only:
                state[leaf.var] = _MAYBE
            return
        fresh = state.get(leaf.list_var or "", _UNSET) == _UNSET
        self._ensure_list(leaf, state, ind, out)
        lv = leaf.list_var
        if kind == "index" and fresh and st.index is not None:  # the list made just now: [{}, ..., v]
            out.append(f"{ind}{lv}.extend([{'{}, ' * st.index}{v}])")
            return
        if kind == "index":
            out.append(f"{ind}while len({lv}) <= {st.index}:")
            out.append(f"{ind}    {lv}.append({{}})")
            out.append(f"{ind}old = {lv}[{st.index}]")
            out.append(f"{ind}if type({v}) is dict and type(old) is dict and old:")
            out.append(f"{ind}    old.update({v})")
            out.append(f"{ind}else:")
            out.append(f"{ind}    {lv}[{st.index}] = {v}")
            return
        # a selector: the item this step made or found before (a dict), else the value appended
        setdefaults = [f"{v}.setdefault({k!r}, {want!r})" for k, want in st.select if "." not in k]
        if only:
            if setdefaults:
                out.append(f"{ind}if type({v}) is dict:")
                out += [f"{ind}    {x}" for x in setdefaults]
            out.append(f"{ind}{lv}.append({v})")
            return
        have = state.get(leaf.var, _UNSET)
        inner = ind
        if have != _UNSET:
            out.append(f"{ind}if {leaf.var} is None:")
            inner += "    "
        out.append(f"{inner}if type({v}) is dict:")
        out += [f"{inner}    {x}" for x in setdefaults]
        out.append(f"{inner}    {leaf.var} = {v}")
        out.append(f"{inner}{lv}.append({v})")
        if have != _UNSET:
            out.append(f"{ind}elif type({v}) is dict:")
            out.append(f"{ind}    {leaf.var}.update({v})")
        state[leaf.var] = _MAYBE

    def source(self) -> str:
        cols: list[str] = []
        body: list[str] = []
        state: dict[str, str] = {}
        for i, e in enumerate(self.entries):
            ind = "        "
            if e.is_const:
                lit = literal(e.const)
                if lit is None:
                    raise _Unsupported("a constant that is not plain JSON")
                always = not e.has_mask
                if e.has_mask:
                    cols.append(f"m{i}")
                    body.append(f"{ind}if m{i} is not None:")
                    ind += "    "
                if lit[0] in "[{":
                    body.append(f"{ind}v = {lit}")
                    val = "v"
                else:
                    val = lit
            else:
                cols.append(f"v{i}")
                body.append(f"{ind}if v{i} is not None:")
                ind += "    "
                val = f"v{i}"
                always = False
            before = dict(state)
            self._assign(i, val, state, ind, body)
            if not always:  # what this entry made exists in some rows only
                for var, have in state.items():
                    if before.get(var, _UNSET) != have:
                        state[var] = _MAYBE
        tests = "\n".join(x for x in body if x.lstrip().startswith(("if ", "elif ")))
        tested = set(re.findall(r"\b([nl]\d+)\b", tests))  # the locals read before being surely set
        local = [v for v in [n.var for n in self.order] + [v for (_k, _s, v) in self.lists.values()] if v in tested]
        names = ", ".join(cols)
        lines = [f"def run(roots, {names}):" if cols else "def run(roots):"]
        lines.append(f"    for b, {names} in zip(roots, {names}):" if cols else "    for b in roots:")
        if local:
            lines.append(f"        {' = '.join(local)} = None")
        lines += body or ["        pass"]
        return "\n".join(lines) + "\n"


_UNSET, _MAYBE, _SET = "unset", "maybe", "set"


def _pairs(st: Step) -> str:
    return ", ".join(f"{k!r}: {v!r}" for k, v in st.select if "." not in k)


_CACHE: dict[Any, RowProgram | None] = {}


def compile_rows(entries: Sequence[Entry], root_keys: frozenset[str] = frozenset()) -> RowProgram | None:
    """``run(roots, *columns)``: every entry written into every root (columns: the non-constant entries' values
    and the masks of the masked constants, in entry order); ``None`` when the paths need the closures.

    ``root_keys``: keys the roots already hold (a child item's template), which no path may go through."""
    key = (
        root_keys,
        tuple(
            (e.path.text, e.is_const, e.has_mask, e.dict_selector_key, e.shared, literal(e.const), e.value_keys)
            for e in entries
        ),
    )
    if key in _CACHE:
        return _CACHE[key]
    try:
        code = _Compiler(entries, root_keys).source()
    except _Unsupported:
        _CACHE[key] = None
        return None
    if any(e.path.steps and e.path.steps[0].name in root_keys for e in entries):
        _CACHE[key] = None
        return None
    namespace: dict[str, Any] = {}
    exec(compile(code, f"<row program {len(_CACHE)}>", "exec"), namespace)  # the source generated above
    prog: RowProgram = namespace["run"]
    prog.__doc__ = code
    _CACHE[key] = prog
    return prog


_AS_IS: dict[Any, tuple[bool, ...] | None] = {}


def dicts_as_is(entries: Sequence[Entry], root_keys: frozenset[str] = frozenset()) -> tuple[bool, ...] | None:
    """Per entry, whether the row program writes a dict value as it is (see :meth:`_Compiler.as_is`): where it
    does not, the value's content decides what the row becomes. ``None`` when :func:`compile_rows` is ``None``."""
    key = (
        root_keys,
        tuple((e.path.text, e.is_const, e.has_mask, e.dict_selector_key, e.shared, e.value_keys) for e in entries),
    )
    if key not in _AS_IS:
        _AS_IS[key] = None if compile_rows(entries, root_keys) is None else _Compiler(entries, root_keys).as_is()
    return _AS_IS[key]
