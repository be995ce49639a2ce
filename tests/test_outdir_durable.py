"""An output folder's manifest is written only once every file it lists is on disk (converter/io/outdir.py with
``converter.io.atomic.sync_tree``): after a crash a folder with a manifest never holds files still in the page
cache only. Files a writer already put on disk (``written``: the NDJSON parts closed by ``close_settled``) are
not synced twice. The folder swaps and the one-file output (``output_file``) are on disk too.

The tests record every ``fsync`` (its file, through /proc/self/fd) and every manifest written, in order.

Data: none beyond a few files the tests write themselves.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import converter.io.atomic as atomic
import converter.io.outdir as outdir
from converter.io.hashed import open_hashed, written
from converter.io.outdir import output_file, output_folder

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """("fsync", path) and ("manifest", path), in the order they happen."""
    seen: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    real_write = outdir.write_manifest_file

    def write_manifest_file(path: Path, manifest: object) -> Path:
        seen.append(("manifest", str(path)))
        return real_write(path, manifest)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(outdir, "write_manifest_file", write_manifest_file)
    return seen


def _before_manifest(seen: list[tuple[str, str]]) -> list[str]:
    first = next(i for i, (kind, _) in enumerate(seen) if kind == "manifest")
    return [path for kind, path in seen[:first] if kind == "fsync"]


def test_every_file_and_folder_is_on_disk_before_the_manifest(tmp_path: Path, events: list[tuple[str, str]]) -> None:
    out = tmp_path / "out"
    with output_folder(out, command=["inoconv", "test"]) as dest:
        staging = dest.path
        (staging / "a.txt").write_text("a")
        (staging / "sdtm").mkdir()
        (staging / "sdtm" / "dm.xpt").write_bytes(b"x" * 10_000)
        (staging / "sdtm" / "deep").mkdir()
        (staging / "sdtm" / "deep" / "part-00000.parquet").write_bytes(b"p")
    synced = _before_manifest(events)
    for rel in ["a.txt", "sdtm/dm.xpt", "sdtm/deep/part-00000.parquet", "sdtm/deep", "sdtm", "."]:
        assert str((staging / rel).resolve()) in synced, rel
    # deepest folder names first, the staging folder's own names last
    assert synced.index(str(staging / "sdtm" / "deep")) < synced.index(str(staging / "sdtm"))
    assert synced.index(str(staging / "sdtm")) < synced.index(str(staging))
    # the swap into place: the parent's names on disk after the rename
    assert ("fsync", str(tmp_path)) in events[events.index(next(e for e in events if e[0] == "manifest")) :]
    assert (out / "sdtm" / "deep" / "part-00000.parquet").read_bytes() == b"p"


def test_files_written_out_by_their_writer_are_not_synced_again(tmp_path: Path, events: list[tuple[str, str]]) -> None:
    out = tmp_path / "out"
    with output_folder(out, command=["inoconv", "test"]) as dest:
        staging = dest.path
        (staging / "fhir").mkdir()
        with open_hashed(staging / "fhir" / "Patient.ndjson") as fh:
            fh.write(b'{"resourceType":"Patient"}\n')
        dest.written["fhir/Patient.ndjson"] = written(fh)
        (staging / "fhir" / "other.txt").write_text("o")
    synced = _before_manifest(events)
    assert str(staging / "fhir" / "other.txt") in synced
    assert str(staging / "fhir" / "Patient.ndjson") not in synced
    assert str(staging / "fhir") in synced  # its name still is


def test_a_file_by_file_overwrite_syncs_each_folder_it_moved_files_into(
    tmp_path: Path, events: list[tuple[str, str]]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "theirs.txt").write_text("kept")  # a file inoconv did not write: the folder is filled file by file
    with output_folder(out, command=["inoconv", "test"], overwrite=True) as dest:
        (dest.path / "sub").mkdir()
        (dest.path / "sub" / "ours.txt").write_text("ours")
    assert (out / "theirs.txt").read_text() == "kept"
    tail = [p for kind, p in events[events.index(next(e for e in events if e[0] == "manifest")) :] if kind == "fsync"]
    assert str(out / "sub") in tail and str(out) in tail


def test_a_one_file_output_is_on_disk_before_its_manifest(tmp_path: Path, events: list[tuple[str, str]]) -> None:
    out = tmp_path / "records.xml"
    with output_file(out, command=["inoconv", "test"]) as staging:
        staging.write_bytes(b"<ODM/>")
    assert str(staging) in _before_manifest(events)
    assert out.read_bytes() == b"<ODM/>"


def test_a_file_that_cannot_be_synced_fails_the_command_and_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="Input/output error"), output_folder(out, command=["inoconv", "test"]) as dest:
        (dest.path / "a.txt").write_text("a")
        (dest.path / "b.txt").write_text("b")
    assert not out.exists() and list(tmp_path.iterdir()) == []
