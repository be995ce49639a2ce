"""YAML loading that remembers line numbers, so a spec error can name the line it is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from converter.errors import SpecError

LINE_KEY = "__line__"


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
    mapping[LINE_KEY] = node.start_mark.line + 1
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
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError([f"{path}:{where} invalid YAML: {exc}"]) from None


def line_of(node: Any) -> int:
    return int(node.get(LINE_KEY, 0)) if isinstance(node, dict) else 0


def strip_lines(node: Any) -> Any:
    """The same structure without the ``__line__`` bookkeeping."""
    if isinstance(node, dict):
        return {k: strip_lines(v) for k, v in node.items() if k != LINE_KEY}
    if isinstance(node, list):
        return [strip_lines(v) for v in node]
    return node
