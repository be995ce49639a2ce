"""Lazy public names for a package's ``__init__``: a package lists where each public name lives and imports
that module only when the name is first used (PEP 562 module ``__getattr__``), so ``inoconv --help`` and light
commands do not import pandas, lxml or the specs.

    __getattr__ = lazy_names(__name__, {"sdtm_to_adam": "pipeline"})

A base module: it imports nothing from the project.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``where`` maps each public name to the submodule (relative
    to ``package``) that defines it. The value is cached in the package's namespace on first use."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            found = importlib.import_module(f"{package}.{module}")
        except AttributeError as exc:  # a failure inside the module, not "no such name": shown as such
            raise ImportError(f"{package}.{module}: {exc}") from exc
        value = getattr(found, name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
