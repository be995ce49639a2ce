"""define.html is rendered once per define.xml content in a process (inoconv run writes it with each package and
again for the run's view): the same bytes give the same page without a second XSLT run; changed bytes render again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_io_define import CT, DM, STUDY, frames

import converter.io.define_stylesheet as view
from converter.io.define import build_define, define_bytes


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    monkeypatch.setattr(view, "_RENDERED", {})
    seen: list[Path] = []
    real = view.render_define_html

    def counted(path: Path | str, params: object = None) -> bytes:
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(view, "render_define_html", counted)
    return seen


def _define(folder: Path, name: str = "Study A") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tree = build_define([DM], CT, standard="SDTMIG 3.4", datasets=frames(), **{**STUDY, "study_name": name})
    (folder / "define.xml").write_bytes(define_bytes(tree))
    return folder / "define.xml"


def test_same_bytes_render_once(tmp_path: Path, renders: list[Path]) -> None:
    first = view.write_define_html(_define(tmp_path / "staged"))
    page = first.read_bytes()
    moved = tmp_path / "final"
    shutil.copytree(tmp_path / "staged", moved)
    (moved / "define.html").unlink()
    again = view.write_define_html(moved / "define.xml")  # the same define.xml where the package ended up
    assert again.read_bytes() == page == view.render_define_html(moved / "define.xml")
    assert renders[:2] == [tmp_path / "staged" / "define.xml", moved / "define.xml"]  # 2nd: the check above


def test_changed_bytes_render_again(tmp_path: Path, renders: list[Path]) -> None:
    path = _define(tmp_path, "Study A")
    assert b"Study A" in view.write_define_html(path).read_bytes()
    _define(tmp_path, "Study B")
    assert b"Study B" in view.write_define_html(path).read_bytes()
    assert len(renders) == 2


def test_a_broken_define_still_fails(tmp_path: Path, renders: list[Path]) -> None:
    (tmp_path / "define.xml").write_bytes(b"<ODM")
    for _ in range(2):
        with pytest.raises(view.DefineRenderError, match=r"cannot read define\.xml"):
            view.write_define_html(tmp_path / "define.xml")
    with pytest.raises(view.DefineRenderError, match=r"no such define\.xml"):
        view.write_define_view(tmp_path / "missing" / "define.xml")
