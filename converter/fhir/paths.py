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
    return FPath(text, tuple(steps))


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


# --- writing ---------------------------------------------------------------------------------------------------------
def _new_item(select: tuple[tuple[str, str], ...]) -> JsonDict:
    return {k: v for k, v in select if "." not in k}


def _descend(node: JsonDict, st: Step) -> JsonDict:
    if st.plain:
        child = node.get(st.name)
        if not isinstance(child, dict):
            child = node[st.name] = {}
        return child
    lst = node.get(st.name)
    if not isinstance(lst, list):
        lst = node[st.name] = []
    if st.index is not None:
        while len(lst) <= st.index:
            lst.append({})
        item = lst[st.index]
        if not isinstance(item, dict):
            item = lst[st.index] = {}
        return item
    for item in lst:
        if matches(item, st.select):
            return item  # type: ignore[no-any-return]
    new = _new_item(st.select)
    lst.append(new)
    return new


def _assign(node: JsonDict, st: Step, value: Any) -> None:
    if st.plain:
        old = node.get(st.name)
        if isinstance(value, dict) and isinstance(old, dict):
            old.update(value)
        else:
            node[st.name] = value
        return
    lst = node.get(st.name)
    if not isinstance(lst, list):
        lst = node[st.name] = []
    if st.index is not None:
        while len(lst) <= st.index:
            lst.append({})
        old = lst[st.index]
        if isinstance(value, dict) and isinstance(old, dict):
            old.update(value)
        else:
            lst[st.index] = value
        return
    for item in lst:
        if matches(item, st.select):
            if isinstance(value, dict):
                item.update(value)
            return
    if isinstance(value, dict):
        for k, v in _new_item(st.select).items():
            value.setdefault(k, v)
        lst.append(value)
    else:
        lst.append(value)


def compile_setter(path: FPath) -> Setter:
    """``set(resource, value)``: write ``value`` at the path, creating (or merging into) what is there."""
    steps = path.steps
    if not steps:

        def set_self(node: JsonDict, value: Any) -> None:
            if isinstance(value, dict):
                node.update(value)

        return set_self
    head, last = steps[:-1], steps[-1]
    if not head and last.plain:
        name = last.name

        def set1(node: JsonDict, value: Any) -> None:
            old = node.get(name)
            if isinstance(value, dict) and isinstance(old, dict):
                old.update(value)
            else:
                node[name] = value

        return set1
    if len(head) == 1 and head[0].plain and last.plain:
        h, name = head[0].name, last.name

        def set2(node: JsonDict, value: Any) -> None:
            child = node.get(h)
            if not isinstance(child, dict):
                child = node[h] = {}
            old = child.get(name)
            if isinstance(value, dict) and isinstance(old, dict):
                old.update(value)
            else:
                child[name] = value

        return set2

    def set_(node: JsonDict, value: Any) -> None:
        for st in head:
            node = _descend(node, st)
        _assign(node, last, value)

    return set_


def compile_appender(path: FPath) -> Callable[[JsonDict, Any], None]:
    """``append(resource, item)``: append ``item`` to the list at the path (list items of child groups)."""
    steps = path.steps
    if not steps:
        raise PathError("a child group needs a path to a list")
    head, last = steps[:-1], steps[-1]

    def append(node: JsonDict, item: Any) -> None:
        for st in head:
            node = _descend(node, st)
        lst = node.get(last.name)
        if not isinstance(lst, list):
            lst = node[last.name] = []
        lst.append(item)

    return append
