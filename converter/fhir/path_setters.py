"""Setters compiled from the element paths of the FHIR specs (:mod:`converter.fhir.paths`): SDTM -> FHIR.

Setting creates what is missing: a selector step creates the item from its simple keys (``{"url": ...}``); a dict
written where a dict is already merges into it. A setter takes (resource, value, cache): ``cache`` is one dict per
resource being built, so list items found or made by a selector step are found again in O(1) by the next element
that names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from converter.fhir.paths import FPath, JsonDict, PathError, Step, matches, simple_select

Cache = dict[tuple[int, int], Any]
Setter3 = Callable[[JsonDict, Any, Cache], None]


def _scan(lst: list[Any], st: Step) -> Any:
    simple = simple_select(st.select)
    if simple is not None:
        k, v = simple
        for item in lst:
            if isinstance(item, dict) and item.get(k) == v:
                return item
        return None
    for item in lst:
        if matches(item, st.select):
            return item
    return None


_NEW = 0  # cache key (id(list), _NEW): the list was made while building this resource (no need to scan it)


def _descender(st: Step) -> Callable[[JsonDict, Cache], JsonDict]:
    """One step down from a node, creating what is missing (compiled once per step)."""
    name = st.name
    if st.plain:

        def plain(node: JsonDict, cache: Cache) -> JsonDict:
            child = node.get(name)
            if type(child) is not dict:
                child = node[name] = {}
            return child

        return plain
    if st.index is not None:
        idx = st.index

        def index(node: JsonDict, cache: Cache) -> JsonDict:
            lst = node.get(name)
            if type(lst) is not list:
                lst = node[name] = []
            while len(lst) <= idx:
                lst.append({})
            item = lst[idx]
            if type(item) is not dict:
                item = lst[idx] = {}
            return item

        return index
    sid = id(st)
    new_pairs = tuple((k, v) for k, v in st.select if "." not in k)
    simple = simple_select(st.select)
    if simple is not None:
        key, want = simple

        def select_simple(node: JsonDict, cache: Cache) -> JsonDict:
            # a short list scanned by its one key: cheaper than a cache entry per (list, step)
            lst = node.get(name)
            if type(lst) is not list:
                item: JsonDict = {key: want}
                node[name] = [item]
                return item
            for item in lst:
                if type(item) is dict and item.get(key) == want:
                    return item
            item = {key: want}
            lst.append(item)
            return item

        return select_simple

    def select(node: JsonDict, cache: Cache) -> JsonDict:
        lst = node.get(name)
        if type(lst) is not list:
            lst = node[name] = []
            cache[(id(lst), _NEW)] = True
        ck = (id(lst), sid)
        item = cache.get(ck)
        if item is None:
            item = None if (id(lst), _NEW) in cache else _scan(lst, st)
            if item is None:
                item = dict(new_pairs)
                lst.append(item)
            cache[ck] = item
        return item

    return select


def _assigner(st: Step) -> Callable[[JsonDict, Any, Cache], None]:
    """Write a value at one step of a node (compiled once per step); dicts merge into dicts."""
    name = st.name
    if st.plain:

        def plain(node: JsonDict, value: Any, cache: Cache) -> None:
            old = node.get(name)
            if type(value) is dict and type(old) is dict and old:
                old.update(value)
            else:
                node[name] = value  # the value itself (a shared reference dict stays shared)

        return plain
    if st.index is not None:
        idx = st.index

        def index(node: JsonDict, value: Any, cache: Cache) -> None:
            lst = node.get(name)
            if type(lst) is not list:
                lst = node[name] = []
            while len(lst) <= idx:
                lst.append({})
            old = lst[idx]
            if type(value) is dict and type(old) is dict and old:
                old.update(value)
            else:
                lst[idx] = value

        return index
    sid = id(st)
    new_pairs = tuple((k, v) for k, v in st.select if "." not in k)
    simple = simple_select(st.select)
    if simple is not None:
        key, want = simple

        def assign_simple(node: JsonDict, value: Any, cache: Cache) -> None:
            lst = node.get(name)
            if type(lst) is not list:
                lst = node[name] = []
            else:
                for item in lst:
                    if type(item) is dict and item.get(key) == want:
                        if type(value) is dict:
                            item.update(value)
                        return
            if type(value) is dict:
                value.setdefault(key, want)
            lst.append(value)

        return assign_simple

    def select(node: JsonDict, value: Any, cache: Cache) -> None:
        lst = node.get(name)
        if type(lst) is not list:
            lst = node[name] = []
            cache[(id(lst), _NEW)] = True
        ck = (id(lst), sid)
        item = cache.get(ck)
        if item is None and (id(lst), _NEW) not in cache:
            item = _scan(lst, st)
        if item is not None:
            if type(value) is dict:
                item.update(value)
            return
        if type(value) is dict:
            for k, v in new_pairs:
                value.setdefault(k, v)
            cache[ck] = value
        lst.append(value)

    return select


def _select_then_plain(st: Step, leaf: str) -> Setter3:
    """``list[key=value].leaf`` (the commonest shape: ``extension[url=...].valueX``) in one closure: the
    composition of :func:`_descender` and :func:`_assigner`, without the calls between them."""
    name = st.name
    simple = simple_select(st.select)
    assert simple is not None
    key, want = simple

    def set_sel_plain(node: JsonDict, value: Any, cache: Cache) -> None:
        lst = node.get(name)
        if type(lst) is not list:
            node[name] = [{key: want, leaf: value}]
            return
        for item in lst:
            if type(item) is dict and item.get(key) == want:
                old = item.get(leaf)
                if type(value) is dict and type(old) is dict and old:
                    old.update(value)
                else:
                    item[leaf] = value
                return
        lst.append({key: want, leaf: value})

    return set_sel_plain


def compile_setter(path: FPath) -> Setter3:
    """``set(resource, value, cache)``: write ``value`` at the path, creating (or merging into) what is there."""
    steps = path.steps
    if not steps:

        def set_self(node: JsonDict, value: Any, cache: Cache) -> None:
            if isinstance(value, dict):
                node.update(value)

        return set_self
    head = [_descender(st) for st in steps[:-1]]
    assign = _assigner(steps[-1])
    if not head:
        return assign
    if len(head) == 1 and simple_select(steps[0].select) is not None and steps[-1].plain:
        return _select_then_plain(steps[0], steps[-1].name)
    if len(head) == 2 and simple_select(steps[1].select) is not None and steps[-1].plain:
        d0 = head[0]
        inner = _select_then_plain(steps[1], steps[-1].name)

        def set_then_sel_plain(node: JsonDict, value: Any, cache: Cache) -> None:
            inner(d0(node, cache), value, cache)

        return set_then_sel_plain
    if len(head) == 1:
        d0 = head[0]

        def set1(node: JsonDict, value: Any, cache: Cache) -> None:
            assign(d0(node, cache), value, cache)

        return set1
    if len(head) == 2:
        d0, d1 = head

        def set2(node: JsonDict, value: Any, cache: Cache) -> None:
            assign(d1(d0(node, cache), cache), value, cache)

        return set2

    def set_(node: JsonDict, value: Any, cache: Cache) -> None:
        for d in head:
            node = d(node, cache)
        assign(node, value, cache)

    return set_


def compile_appender(path: FPath) -> Callable[[JsonDict, Any, Cache], None]:
    """``append(resource, item, cache)``: append ``item`` to the list at the path (items of child groups)."""
    steps = path.steps
    if not steps:
        raise PathError("a child group needs a path to a list")
    head, last = steps[:-1], steps[-1]

    downs = [_descender(st) for st in head]

    def append(node: JsonDict, item: Any, cache: Cache) -> None:
        for d in downs:
            node = d(node, cache)
        lst = node.get(last.name)
        if not isinstance(lst, list):
            lst = node[last.name] = []
        lst.append(item)

    return append
