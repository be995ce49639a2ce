"""converter.lazy: a package's public names imported on first use."""

from __future__ import annotations

import sys
import types

import pytest

from converter.lazy import lazy_names


def _package(tmp_path, monkeypatch, body: str) -> types.ModuleType:
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from converter.lazy import lazy_names\n__getattr__ = lazy_names(__name__, {'f': 'impl', 'g': 'broken'})\n"
    )
    (pkg / "impl.py").write_text("def f():\n    return 42\n")
    (pkg / "broken.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        monkeypatch.delitem(sys.modules, name)
    import lazypkg

    return lazypkg


def test_a_name_is_imported_on_first_use_and_cached(tmp_path, monkeypatch) -> None:
    pkg = _package(tmp_path, monkeypatch, "g = 1\n")
    assert "lazypkg.impl" not in sys.modules
    assert pkg.f() == 42
    assert "lazypkg.impl" in sys.modules
    assert pkg.__dict__["f"] is sys.modules["lazypkg.impl"].f  # cached: __getattr__ is not asked again


def test_an_unknown_name_is_an_attribute_error(tmp_path, monkeypatch) -> None:
    pkg = _package(tmp_path, monkeypatch, "g = 1\n")
    with pytest.raises(AttributeError, match="'lazypkg' has no attribute 'nope'"):
        pkg.nope  # noqa: B018
    assert not hasattr(pkg, "nope")


def test_an_attribute_error_inside_the_module_is_not_hidden(tmp_path, monkeypatch) -> None:
    pkg = _package(tmp_path, monkeypatch, "import os\nos.no_such_function\ng = 1\n")
    with pytest.raises(ImportError, match=r"lazypkg\.broken: .*no_such_function"):
        pkg.g  # noqa: B018


def test_the_function_is_the_one_every_package_uses() -> None:
    import converter.adam
    import converter.fhir

    assert converter.adam.__getattr__.__qualname__ == lazy_names("x", {}).__qualname__
    assert converter.fhir.__getattr__.__qualname__ == lazy_names("x", {}).__qualname__
