"""A staging folder left by a killed inoconv (``kill -9``) is removed by the next command into the same --out,
and nothing else is (converter/io/outdir.py, ``remove_stale_staging``).

Data: none beyond a few files the tests write themselves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from converter.io.outdir import output_folder, remove_stale_staging

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from converter.io.outdir import output_folder

    with output_folder(Path(sys.argv[1]), command=["inoconv", "test"]) as dest:
        (dest.path / "half.txt").write_text("half written")
        print(dest.path, flush=True)
        time.sleep(600)
    """
)


def _killed_staging(out: Path) -> Path:
    """Start a process that writes into ``out``, kill -9 it mid-way; the staging folder it leaves."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(out)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    staging = Path(child.stdout.readline().strip())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert staging.is_dir() and (staging / "half.txt").is_file()
    assert staging.name.startswith(f".{out.name}.inoconv-{child.pid}-") and staging.name.endswith(".tmp")
    return staging


def test_the_next_run_removes_a_killed_runs_staging_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    staging = _killed_staging(out)
    with output_folder(out, command=["inoconv", "test"]) as dest:
        (dest.path / "a.txt").write_text("a")
    assert not staging.exists()
    assert (out / "a.txt").read_text() == "a" and (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_only_inoconvs_own_stale_folders_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = _killed_staging(out)  # a dead pid, for names of our own making below
    pid = dead.name.split("-")[1]
    alive = tmp_path / ".out.inoconv-1-abc123.tmp"  # pid 1 is always alive: another process still writing
    alive.mkdir()
    other = tmp_path / f".other.inoconv-{pid}-abc123.tmp"  # the staging folder of another --out
    other.mkdir()
    a_file = tmp_path / f".out.inoconv-{pid}-filexy.tmp"  # a file, not a folder
    a_file.write_text("user")
    users = tmp_path / ".out.inoconv-notes.tmp"  # no pid: not inoconv's pattern
    users.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / f".out.inoconv-{pid}-link12.tmp"  # a link to a folder is never followed nor removed
    link.symlink_to(target)
    removed = remove_stale_staging(out)
    assert removed == [dead]
    for kept in (alive, other, a_file, users, link, target / "keep.txt"):
        assert os.path.lexists(kept), kept
    assert a_file.read_text() == "user" and (target / "keep.txt").read_text() == "keep"


def test_a_parked_old_folder_of_a_killed_swap_is_removed_too(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = _killed_staging(out)
    pid = dead.name.split("-")[1]
    parked = tmp_path / f".out.inoconv-old-{pid}-xyz789.tmp"
    parked.mkdir()
    (parked / "old.txt").write_text("old")
    with output_folder(out, command=["inoconv", "test"]) as dest:
        (dest.path / "b.txt").write_text("b")
    assert not parked.exists() and not dead.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
