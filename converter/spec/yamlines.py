"""YAML loading for specs: safe, bounded, and remembering line numbers so a spec error can name its line.

Specs are data exchanged between sponsors, vendors and registries, so the loader trusts nothing in them:

- only the YAML safe schema (mappings, lists, text, numbers, booleans, null; no Python tags);
- anchors and aliases (``&a`` / ``*a``) are allowed, but the document's size *with every alias expanded* is
  bounded by :data:`MAX_EXPANDED_NODES` (200,000 nodes; the largest spec shipped expands to a few thousand).
  A "billion laughs" alias bomb is a SpecError naming the file and the line of the node that crosses the
  bound, found on the composed node graph before anything is built, in time and memory linear in the file;
  a recursive alias is refused the same way;
- nesting deeper than :data:`MAX_DEPTH` (100) levels is refused;
- a value (or key) holding a control character is refused with its line (the one rule of
  :mod:`converter.text`, no tab either);
- duplicate keys in a mapping are an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from converter.errors import SpecError
from converter.text import escape_controls, first_control

__all__ = [
    "LINE_KEY",
    "MAX_DEPTH",
    "MAX_EXPANDED_NODES",
    "Line",
    "line_of",
    "line_of_key",
    "load_yaml_lines",
    "strip_lines",
]

#: most nodes a spec document may hold once every alias is expanded
MAX_EXPANDED_NODES = 200_000
#: deepest nesting of mappings and lists in a spec document
MAX_DEPTH = 100

LINE_KEY = "__line__"


class Line(int):
    """The line of a mapping (an int, as ``__line__`` always was) that also knows the line of each key's value."""

    keys: dict[str, int]

    def __new__(cls, line: int, keys: dict[str, int]) -> Line:
        obj = super().__new__(cls, line)
        obj.keys = keys
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (Line, (int(self), self.keys))


_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: ~10x faster


class _LineLoader(_Base):  # type: ignore[misc]
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(k, deep=True) for k, _ in node.value]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate key(s) {sorted(map(str, dupes))}", node.start_mark
        )
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    values = {str(k.value): v.start_mark.line + 1 for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    mapping[LINE_KEY] = Line(node.start_mark.line + 1, values)
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_lines(path: Path) -> Any:
    """Parse a YAML file; every mapping gets a ``__line__`` entry with its 1-based line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise SpecError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        loader = _LineLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            check_nodes(node, path)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError([f"{path}:{where} invalid YAML: {escape_controls(' '.join(str(exc).split()))}"]) from None
    except RecursionError:
        raise SpecError([f"{path}: nested too deeply (more than {MAX_DEPTH} levels)"]) from None


def check_nodes(root: yaml.Node, path: Path) -> None:
    """Refuse a composed YAML document that expands (aliases included) past :data:`MAX_EXPANDED_NODES` nodes,
    nests deeper than :data:`MAX_DEPTH`, refers to itself, or holds a control character in a value or key.

    Iterative (no recursion), each distinct node visited once: linear in the size of the file."""
    size: dict[int, int] = {}  # id(node) -> expanded size, once known
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if done:
            kids = _children(node)
            total = 1 + sum(size[id(k)] for k in kids)
            on_path.discard(key)
            size[key] = total
            if total > MAX_EXPANDED_NODES:
                raise SpecError([f"{path}:{line}: this node expands to more than {MAX_EXPANDED_NODES:,} nodes with its "
                                 "YAML aliases (*name) expanded; refused (an alias bomb, or a spec far larger than any "
                                 "spec needs)"])  # fmt: skip
            continue
        if key in size:
            continue
        if key in on_path:
            raise SpecError([f"{path}:{line}: a YAML alias refers to a node that contains it (recursive alias)"])
        if depth > MAX_DEPTH:
            raise SpecError([f"{path}:{line}: nested more than {MAX_DEPTH} levels deep"])
        if isinstance(node, yaml.ScalarNode):
            text = str(node.value)
            pos = first_control(text)
            if pos is not None:
                shown = escape_controls(text)
                raise SpecError([f"{path}:{line}: a control character (U+{ord(text[pos]):04X}) in the value "
                                 f"'{shown}': spec values are text without control characters"])  # fmt: skip
            size[key] = 1
            continue
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((k, depth + 1, False) for k in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def line_of(node: Any) -> int:
    return int(node.get(LINE_KEY, 0)) if isinstance(node, dict) else 0


def line_of_key(node: Any, key: str) -> int:
    """The line where the value of ``key`` starts in a loaded mapping (else the mapping's line, else 0)."""
    line = node.get(LINE_KEY) if isinstance(node, dict) else None
    if isinstance(line, Line):
        return line.keys.get(key, int(line))
    return line_of(node)


def strip_lines(node: Any) -> Any:
    """The same structure without the ``__line__`` bookkeeping."""
    if isinstance(node, dict):
        return {k: strip_lines(v) for k, v in node.items() if k != LINE_KEY}
    if isinstance(node, list):
        return [strip_lines(v) for v in node]
    return node
