"""The class-data archive options of the Spark engine's local sessions (no JVM started)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from converter.engine.spark_jvm import LIGHT_JVM, cds_folder, cds_options, session_jvm_options

MAGIC = bytes.fromhex("a8ab0bf0")


def test_off_and_default_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INOCONV_SPARK_CDS", "off")
    assert cds_folder() is None
    assert session_jvm_options(light=True) == LIGHT_JVM
    assert session_jvm_options(light=False) == ""
    monkeypatch.delenv("INOCONV_SPARK_CDS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cds_folder() == tmp_path / "inoconv" / "spark-cds"


def test_first_session_writes_the_archive_later_ones_use_it(tmp_path: Path) -> None:
    first = cds_options(LIGHT_JVM, tmp_path)
    assert "-XX:ArchiveClassesAtExit=" in first and "-XX:SharedArchiveFile" not in first
    tmp = Path(first.split("-XX:ArchiveClassesAtExit=")[1].split()[0])
    assert tmp.parent == tmp_path and tmp.name.endswith(".tmp")
    tmp.write_bytes(bytes(16))  # the JVM is still writing: its header (written last) is not there yet
    assert "-XX:ArchiveClassesAtExit=" in cds_options(LIGHT_JVM, tmp_path)
    assert tmp.exists()
    tmp.write_bytes(MAGIC + bytes(12))  # written
    second = cds_options(LIGHT_JVM, tmp_path)
    archive = Path(second.split("-XX:SharedArchiveFile=")[1].split()[0])
    assert archive.exists() and not tmp.exists() and archive.name + "." in tmp.name
    late = tmp_path / f"{archive.name}.99.tmp"  # a session that started before the archive was there
    late.write_bytes(MAGIC + bytes(12))
    assert cds_options(LIGHT_JVM, tmp_path) == second and not late.exists()
    other = cds_options("", tmp_path)  # other JVM options, another archive
    assert "-XX:ArchiveClassesAtExit=" in other and archive.name not in other


def test_no_archive_where_the_option_cannot_say_the_path(tmp_path: Path) -> None:
    assert cds_options(LIGHT_JVM, tmp_path / "with space") == ""
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert cds_options(LIGHT_JVM, blocked / "sub") == ""
