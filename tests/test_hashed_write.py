"""Files hashed while written (converter.io.hashed) and the manifest that takes those hashes: the same entries as
hashing the files afterwards, never a stale hash for a file changed since, and ``inoconv stream`` not reading its
NDJSON parts back to seal its folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

import converter.io.manifest as manifest_mod
from converter.cli import app
from converter.io.hashed import Written, open_hashed, written
from converter.io.manifest import build_manifest, file_entries, verify_path
from converter.paths import example_study_dir


def test_hash_and_size_of_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "a.ndjson"
    fh = open_hashed(path, buffering=64)
    assert fh.name == str(path)
    with pytest.raises(ValueError, match="still open"):
        written(fh)
    parts = [b'{"resourceType":"Patient","id":"%d"}\n' % i for i in range(1000)]
    fh.writelines(parts)
    fh.write(memoryview(b"tail"))
    fh.close()
    data = path.read_bytes()
    assert data == b"".join(parts) + b"tail"
    got = written(fh)
    assert got == Written(hashlib.sha256(data).hexdigest(), len(data), path.stat().st_mtime_ns)
    assert got.still(path)


def test_manifest_uses_a_recorded_hash_only_while_the_file_is_unchanged(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "x.ndjson").write_bytes(b"one\n")
    (folder / "y.csv").write_bytes(b"a,b\n")
    honest = {e.path: e for e in file_entries([folder], base=folder)}
    st = (folder / "x.ndjson").stat()
    planted = Written("0" * 64, st.st_size, st.st_mtime_ns)  # a record the manifest can only have taken from us
    m = build_manifest(folder, command=["t"], inputs=(), specs_folder=None, specs=(), written={"x.ndjson": planted})
    got = {e.path: e for e in m.outputs}
    assert got["x.ndjson"].sha256 == "0" * 64 and got["y.csv"] == honest["y.csv"]
    (folder / "x.ndjson").write_bytes(b"two\n")  # same size, rewritten after the record
    os.utime(folder / "x.ndjson", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    m = build_manifest(folder, command=["t"], inputs=(), specs_folder=None, specs=(), written={"x.ndjson": planted})
    assert {e.path: e for e in m.outputs}["x.ndjson"].sha256 == hashlib.sha256(b"two\n").hexdigest()
    (folder / "x.ndjson").unlink()
    assert not planted.still(folder / "x.ndjson")


def test_stream_seals_its_folder_without_reading_the_ndjson_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    real = manifest_mod.sha256_file

    def counting(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
        read.append(path.name)
        return real(path, chunk)

    monkeypatch.setattr(manifest_mod, "sha256_file", counting)
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["stream", str(example_study_dir() / "csv"), "--out", str(out), "--subjects", "30"])
    assert res.exit_code == 0, res.output
    parts = sorted(p.name for p in (out / "fhir" / "ndjson").glob("*.0000*.ndjson"))
    assert len(parts) > 10
    assert not set(parts) & set(read)  # hashed by the workers as they wrote them
    assert any(name.endswith(".parquet") for name in read)  # everything else is hashed when sealed
    monkeypatch.setattr(manifest_mod, "sha256_file", real)
    report = verify_path(out)  # and every hash in the manifest is the file's real hash
    assert (
        report is not None
        and report.intact
        and report.checked == len(orjson.loads((out / "manifest.json").read_bytes())["outputs"])
    )
