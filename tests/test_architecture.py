"""The shape of converter/ (issue 14; docs: the layout in the README): imports point one way, down the layers

    cli (converter.cli, converter.stages, every ``commands`` and ``__main__`` module)
      -> engine
      -> stages, in order: records, sdtm, adam, deid, fhir, report, upload, validate, guides
         (a stage uses only earlier stages)
      -> spec, io
      -> base modules: errors, paths, frames, text, lazy, gc_pause, and the ``converter`` package itself

and: no import cycle (imports inside functions count: they are read with ``ast``, not by importing), no
library module imports a CLI-level module, no module imports another module's private (``_name``) names, every
package's ``__init__.py`` declares ``__all__`` and every name in it resolves, no module over 600 lines.

Each checker is also run on planted violations, so none is a check that cannot fail.
Data: the source files of this repository.
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "converter"
MAX_LINES = 600

CLI_MODULES = {"converter.cli", "converter.stages"}
LAYERS = {"engine": 1, "spec": 3, "io": 3, "errors": 4, "paths": 4, "frames": 4, "text": 4, "lazy": 4, "gc_pause": 4, "": 4}
STAGES = ("records", "sdtm", "adam", "deid", "fhir", "report", "upload", "validate", "guides")
for _stage in STAGES:
    LAYERS[_stage] = 2

#: private names imported across modules, each with the reason it is allowed
ALLOWED_PRIVATE = {
    "converter.__version__": "the package version: a dunder by Python convention (PEP 8), not a private name",
}

#: modules allowed past MAX_LINES for now, each with the reason (an entry here is a debt, listed in the report)
LONG_MODULES: dict[str, str] = {}


# --- reading the source ------------------------------------------------------------------------------------------
def module_name(path: Path, root: Path = ROOT) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def imports(source: str, known: Iterable[str], typing_too: bool = False) -> set[tuple[str, str]]:
    """Every (converter module, imported name or "") a source imports, at module level or inside functions.
    ``from converter.x import y`` where ``y`` is a module counts as an import of that module. Imports under
    ``if TYPE_CHECKING:`` run only for the type checker: left out unless ``typing_too``."""
    known = set(known)
    tree = ast.parse(source)
    typing_only = set()
    if not typing_too:
        typing_only = {
            id(n)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for stmt in block.body
            for n in ast.walk(stmt)
        }
    out: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out |= {(a.name, "") for a in node.names if a.name.split(".")[0] == "converter"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "converter":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add((sub, "") if sub in known else (node.module, a.name))
    return out


def graph(mods: dict[str, Path], typing_too: bool = False) -> dict[str, set[str]]:
    """Module -> the converter modules it imports (itself left out)."""
    return {
        m: {t for t, _ in imports(p.read_text(encoding="utf-8"), mods, typing_too) if t in mods and t != m}
        for m, p in mods.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a module graph (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return sorted(found)


# --- the rules ---------------------------------------------------------------------------------------------------
def is_cli(module: str) -> bool:
    return module in CLI_MODULES or module.rsplit(".", 1)[-1] in ("commands", "__main__")


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_problems(edges: dict[str, set[str]]) -> list[str]:
    """Every import that points up the layers, to a later stage, or from library code to a CLI-level module."""
    found = []
    for a, targets in sorted(edges.items()):
        if is_cli(a):
            continue
        if top(a) not in LAYERS:
            found.append(f"{a}: in no layer (add its package to LAYERS in tests/test_architecture.py)")
            continue
        for t in sorted(targets):
            if is_cli(t):
                found.append(f"{a} imports the CLI-level {t}")
                continue
            ta, tt = top(a), top(t)
            if ta == tt or tt not in LAYERS:
                continue
            if LAYERS[ta] > LAYERS[tt]:
                found.append(f"{a} (layer {ta}) imports {t} (layer {tt}, above it)")
            elif LAYERS[ta] == LAYERS[tt] == 2 and STAGES.index(ta) < STAGES.index(tt):
                found.append(f"{a} (stage {ta}) imports {t} of the later stage {tt}")
    return found


def private_problems(mods: dict[str, Path]) -> list[str]:
    """Private names (and private modules) imported from another module."""
    found = []
    for m, p in mods.items():
        for target, name in sorted(imports(p.read_text(encoding="utf-8"), mods, typing_too=True)):
            full = f"{target}.{name}" if name else target
            own = target == m or (name == "" and target.rsplit(".", 1)[0] == m.rsplit(".", 1)[0])
            hidden = [part for part in full.split(".")[1:] if part.startswith("_") and not part.startswith("__")]
            dunder = name.startswith("__") and full not in ALLOWED_PRIVATE
            if (hidden or dunder) and not own and full not in ALLOWED_PRIVATE:
                found.append(f"{m} imports {full}")
    return found


def long_modules(mods: dict[str, Path]) -> list[str]:
    found = []
    for m, p in mods.items():
        n = len(p.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES and m not in LONG_MODULES:
            found.append(f"{m}: {n} lines (split it by responsibility)")
    return found


# --- the package as it is ----------------------------------------------------------------------------------------
MODS = modules()


def test_every_module_is_in_a_layer_and_imports_point_down() -> None:
    assert layer_problems(graph(MODS, typing_too=True)) == []


def test_no_import_cycle_function_level_imports_included() -> None:
    assert cycles(graph(MODS)) == []


def test_no_private_name_is_imported_across_modules() -> None:
    assert private_problems(MODS) == []


def test_no_module_is_longer_than_600_lines() -> None:
    assert long_modules(MODS) == []
    for m, why in LONG_MODULES.items():
        assert m in MODS and why, f"{m}: an exception without a module or a reason"


@pytest.mark.parametrize("package", sorted(m for m, p in MODS.items() if p.name == "__init__.py"))
def test_every_package_declares_its_public_names(package: str) -> None:
    tree = ast.parse(MODS[package].read_text(encoding="utf-8"))
    declared = [
        n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
    ]
    assert declared, f"{package}/__init__.py has no __all__"
    mod = importlib.import_module(package)
    names = list(mod.__all__)
    assert names and len(names) == len(set(names)), f"{package}.__all__ is empty or repeats a name"
    for name in names:
        assert hasattr(mod, name), f"{package}.__all__ names {name}, which it does not provide"


# --- the checkers find what they must find -----------------------------------------------------------------------
def _planted(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = tmp_path / "converter" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return modules(tmp_path / "converter")


def test_checkers_find_planted_violations(tmp_path: Path) -> None:
    mods = _planted(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "from converter.io.xpt import write_xpt\n",  # base -> io: up
            "io/__init__.py": "",
            "io/xpt.py": "def write_xpt():\n    from converter.errors import _hidden\n",  # private name
            "sdtm/__init__.py": "",
            "sdtm/a.py": "def f():\n    from converter.sdtm.b import g\n",  # a cycle inside functions
            "sdtm/b.py": "from converter.sdtm import a\nfrom converter.adam.c import h\n",  # later stage
            "adam/__init__.py": "",
            "adam/c.py": "from converter.adam.commands import run\n",  # library -> CLI
            "adam/commands.py": "from converter.adam.c import h\n",  # CLI -> library: fine
            "engine/__init__.py": "",
            "engine/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from converter import cli\n",
            "cli.py": "from converter import __version__\n",  # the allowed dunder
            "nowhere/__init__.py": "",
            "nowhere/y.py": "",
            "big.py": "x = 1\n" * (MAX_LINES + 1),
        },
    )
    layers = layer_problems(graph(mods, typing_too=True))
    assert "converter.errors (layer errors) imports converter.io.xpt (layer io, above it)" in layers
    assert "converter.sdtm.b (stage sdtm) imports converter.adam.c of the later stage adam" in layers
    assert "converter.adam.c imports the CLI-level converter.adam.commands" in layers
    assert "converter.engine.x imports the CLI-level converter.cli" in layers  # type-checking imports count here
    assert any(p.startswith("converter.nowhere") and "in no layer" in p for p in layers)
    assert not any(p.startswith("converter.adam.commands") or p.startswith("converter.cli") for p in layers)
    assert ["converter.sdtm.a", "converter.sdtm.b"] in cycles(graph(mods))
    assert private_problems(mods) == ["converter.io.xpt imports converter.errors._hidden"]
    assert [p.split(":")[0] for p in long_modules(mods)] == ["converter.big"]


def test_cycle_finder_finds_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"f"}, "f": {"e"}, "g": set()}
    assert cycles(edges) == [["a", "b", "c"], ["e", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
