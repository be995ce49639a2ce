"""Element paths of the FHIR specs, and the getters/setters compiled from them.

A path names one element of a resource (or of a list item), in a small dotted syntax::

    gender                                   plain element
    identifier[0].value                      list element by position
    extension[url=https://x/y].valueString   list element by content (a "selector"): the item whose ``url`` is ...
    category[coding.system=http://z]         selector with a dotted key: any ``coding`` item with that system
    _birthDate                               the primitive's extension holder (FHIR JSON ``_name``)
    (empty)                                  the node itself (list items of child groups)

Setting (SDTM -> FHIR) creates what is missing: a selector step creates the item from its simple keys
(``{"url": ...}``); a dict written where a dict is already merges into it. Getting (FHIR -> SDTM) never creates,
tolerates a list where one object is expected (takes the first) and answers ``None`` for anything absent.
The setters are compiled by :mod:`converter.fhir.path_setters`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JsonDict = dict[str, Any]
Getter = Callable[[Any], Any]
Setter = Callable[[JsonDict, Any], None]

_STEP = re.compile(r"^(?P<name>_?[A-Za-z][A-Za-z0-9]*)(?:\[(?P<sel>[^\]]*)\])?$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PathError(ValueError):
    """A path that does not parse."""


@dataclass(frozen=True)
class Step:
    name: str
    index: int | None = None
    select: tuple[tuple[str, str], ...] = ()

    @property
    def plain(self) -> bool:
        return self.index is None and not self.select

    def __str__(self) -> str:
        if self.index is not None:
            return f"{self.name}[{self.index}]"
        if self.select:
            return f"{self.name}[{','.join(f'{k}={v}' for k, v in self.select)}]"
        return self.name


@dataclass(frozen=True)
class FPath:
    text: str
    steps: tuple[Step, ...]

    def __str__(self) -> str:
        return self.text

    @property
    def is_self(self) -> bool:
        return not self.steps

    @property
    def last(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    def primitive_extension(self) -> FPath | None:
        """The ``_name`` sibling of a plain last step (where a primitive's extensions live), else None."""
        last = self.last
        if last is None or not last.plain or last.name.startswith("_"):
            return None
        steps = (*self.steps[:-1], Step("_" + last.name))
        return FPath(".".join(str(s) for s in steps), steps)

    def string_sibling(self) -> FPath | None:
        """``...extension[...].valueString`` for ``...extension[...].value<Type>`` (other than valueString)."""
        last = self.last
        if last is None or not last.plain or len(self.steps) < 2 or self.steps[-2].name != "extension":
            return None
        if not last.name.startswith("value") or last.name == "valueString":
            return None
        steps = (*self.steps[:-1], _intern(Step("valueString")))
        return FPath(".".join(str(s) for s in steps), steps)

    def fallback(self) -> FPath | None:
        """Where an SDTM value the element's primitive cannot hold goes: an extension's value[x] becomes a
        valueString (value[x] allows one type, and R4 models reject ``_value...`` inside extensions); any
        other primitive keeps its value's exact prefix and gets the original-value extension on ``_name``."""
        return self.string_sibling() or self.primitive_extension()

    def join(self, other: FPath) -> FPath:
        if not self.steps:
            return other
        if not other.steps:
            return self
        return FPath(f"{self.text}.{other.text}", self.steps + other.steps)


def _split(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise PathError(f"unbalanced ']' in {text!r}")
        if ch == "." and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise PathError(f"unbalanced '[' in {text!r}")
    parts.append("".join(cur))
    return parts


_INTERNED: dict[Step, Step] = {}


def _intern(st: Step) -> Step:
    """One Step object per distinct step, so setters can key their caches on its identity."""
    return _INTERNED.setdefault(st, st)


def parse_path(text: str) -> FPath:
    text = text.strip()
    if not text:
        return FPath("", ())
    steps: list[Step] = []
    for part in _split(text):
        m = _STEP.match(part)
        if not m:
            raise PathError(f"bad path step {part!r} in {text!r}")
        sel = m.group("sel")
        if sel is None:
            steps.append(Step(m.group("name")))
        elif sel.isdigit():
            steps.append(Step(m.group("name"), index=int(sel)))
        else:
            pairs: list[tuple[str, str]] = []
            for item in sel.split(","):
                key, eq, value = item.partition("=")
                key = key.strip()
                if not eq or not _KEY.match(key) or not value:
                    raise PathError(f"bad selector [{sel}] in {text!r}: use [key=value] or [N]")
                pairs.append((key, value.strip()))
            steps.append(Step(m.group("name"), select=tuple(pairs)))
    return FPath(text, tuple(_intern(st) for st in steps))


# --- reading ---------------------------------------------------------------------------------------------------------
def _dotted_values(node: Any, keys: list[str]) -> list[Any]:
    """Every value at a dotted key below ``node``, looking into lists on the way."""
    cur = [node]
    for k in keys:
        nxt: list[Any] = []
        for c in cur:
            c_items = c if isinstance(c, list) else [c]
            for it in c_items:
                if isinstance(it, dict) and k in it:
                    v = it[k]
                    if isinstance(v, list):
                        nxt.extend(v)
                    else:
                        nxt.append(v)
        cur = nxt
    return cur


def matches(item: Any, select: tuple[tuple[str, str], ...]) -> bool:
    if not isinstance(item, dict):
        return False
    for key, value in select:
        if "." in key:
            if value not in _dotted_values(item, key.split(".")):
                return False
        elif item.get(key) != value:
            return False
    return True


def _find(container: Any, select: tuple[tuple[str, str], ...]) -> Any:
    if isinstance(container, dict):
        return container if matches(container, select) else None
    if isinstance(container, list):
        for item in container:
            if matches(item, select):
                return item
    return None


def _get_step(node: Any, st: Step) -> Any:
    if isinstance(node, list):
        node = node[0] if node else None
    if not isinstance(node, dict):
        return None
    val = node.get(st.name)
    if val is None:
        return None
    if st.index is not None:
        if isinstance(val, list):
            return val[st.index] if len(val) > st.index else None
        return val if st.index == 0 else None
    if st.select:
        return _find(val, st.select)
    return val


def compile_getter(path: FPath) -> Getter:
    steps = path.steps
    if not steps:
        return lambda node: node
    if len(steps) == 1 and steps[0].plain:
        name = steps[0].name

        def get1(node: Any) -> Any:
            if isinstance(node, dict):
                return node.get(name)
            return _get_step(node, steps[0])

        return get1

    def get(node: Any) -> Any:
        for st in steps:
            node = _get_step(node, st)
            if node is None:
                return None
        return node

    return get


def find_all(container: Any, select: tuple[tuple[str, str], ...]) -> list[Any]:
    """Every item of a list that matches a selector (all of them when ``select`` is empty)."""
    if isinstance(container, dict):
        container = [container]
    if not isinstance(container, list):
        return []
    return [it for it in container if isinstance(it, dict) and (not select or matches(it, select))]


def simple_select(select: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    """The one (key, value) of a selector on a plain key (``url=...``), else None."""
    if len(select) == 1 and "." not in select[0][0]:
        return select[0]
    return None


# --- reading many paths at once ---------------------------------------------------------------------------------------
class _TNode:
    __slots__ = ("complex", "groups", "index", "leaves", "plain", "steps", "terminal")

    def __init__(self) -> None:
        self.leaves: list[int] = []
        self.steps: dict[Step, _TNode] = {}
        self.plain: list[tuple[str, _TNode]] = []
        self.index: list[tuple[str, int, _TNode]] = []
        # selector children on the same list by the same simple key: (list name, key) -> {value: node}
        self.groups: list[tuple[str, str, dict[str, _TNode]]] = []
        self.complex: list[tuple[Step, _TNode]] = []
        self.terminal = True

    def child(self, st: Step) -> _TNode:
        node = self.steps.get(st)
        if node is not None:
            return node
        node = self.steps[st] = _TNode()
        self.terminal = False
        simple = simple_select(st.select)
        if st.plain:
            self.plain.append((st.name, node))
        elif st.index is not None:
            self.index.append((st.name, st.index, node))
        elif simple is not None:
            for name, key, by_value in self.groups:
                if name == st.name and key == simple[0]:
                    by_value[simple[1]] = node
                    break
            else:
                self.groups.append((st.name, simple[0], {simple[1]: node}))
        else:
            self.complex.append((st, node))
        return node


class PathSet:
    """Many paths read in one walk per resource: shared prefixes once, selector lists indexed once."""

    def __init__(self, paths: list[FPath]) -> None:
        self.root = _TNode()
        self.n = len(paths)
        for k, p in enumerate(paths):
            node = self.root
            for st in p.steps:
                node = node.child(st)
            node.leaves.append(k)

    def get_all(self, root: Any) -> list[Any]:
        out: list[Any] = [None] * self.n
        if root is not None:
            self._walk(self.root, root, out)
        return out

    def _visit(self, t: _TNode, v: Any, out: list[Any]) -> None:
        for k in t.leaves:
            out[k] = v
        if not t.terminal:
            self._walk(t, v, out)

    def _walk(self, t: _TNode, value: Any, out: list[Any]) -> None:
        for k in t.leaves:
            out[k] = value
        if type(value) is list:
            value = value[0] if value else None
        if type(value) is not dict:
            return
        get = value.get
        for name, child in t.plain:
            v = get(name)
            if v is not None:
                if child.terminal:
                    for k in child.leaves:
                        out[k] = v
                else:
                    self._walk(child, v, out)
        for name, idx, child in t.index:
            lst = get(name)
            v = lst if type(lst) is not list and idx == 0 else None
            if type(lst) is list and len(lst) > idx:
                v = lst[idx]
            if v is not None:
                self._visit(child, v, out)
        for name, key, by_value in t.groups:
            lst = get(name)
            if lst is None:
                continue
            if type(lst) is dict:
                lst = [lst]
            elif type(lst) is not list:
                continue
            seen: set[Any] = set()
            for item in lst:
                if type(item) is dict:
                    kv = item.get(key)
                    if kv in by_value and kv not in seen:
                        seen.add(kv)
                        child = by_value[kv]
                        if child.terminal:
                            for k in child.leaves:
                                out[k] = item
                        else:
                            self._walk(child, item, out)
        for st, child in t.complex:
            v = _get_step(value, st)
            if v is not None:
                self._visit(child, v, out)
