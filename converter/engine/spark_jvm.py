"""JVM options of the Spark engine's local sessions: a light JVM, and Spark's classes from a class-data archive.

Most of a local session's start is the JVM loading and verifying Spark's classes. Java's application class-data
sharing (CDS) maps them from an archive written by an earlier JVM instead: the first local session of a
pyspark/Java pair records the classes it loaded and writes them when its JVM exits
(``-XX:ArchiveClassesAtExit``); later sessions start from that archive (``-XX:SharedArchiveFile``). The archive
(about 120 MB) is kept in ``$INOCONV_SPARK_CDS``, else ``$XDG_CACHE_HOME/inoconv/spark-cds`` (``~/.cache/...``);
``INOCONV_SPARK_CDS=off`` turns it off. A JVM that cannot use an archive (another Java, another class path)
ignores it; the archive only changes how fast the JVM starts, never what Spark computes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

__all__ = ["LIGHT_JVM", "cds_folder", "cds_options", "session_jvm_options"]

#: JVM options of a local session whose JVM only schedules (``reader="files"``): the C1 compiler alone and the
#: serial collector start the JVM with about half the CPU (8.3 -> 4.5 s, first job 2.3 -> 1.6 s; measured
#: 2026-12-02); Spark's CSV reader runs slower without the optimising compiler, so it keeps the defaults
LIGHT_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

_MAGIC = bytes.fromhex("a8ab0bf0")  # a dynamic CDS archive's first bytes; its header is written last
_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"  # classes CDS skips are reported as warnings on stdout


def cds_folder() -> Path | None:
    """Where the class-data archives are kept, None when ``INOCONV_SPARK_CDS`` is ``off`` (or ``0``, ``no``)."""
    env = os.environ.get("INOCONV_SPARK_CDS")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "no", "false") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "inoconv" / "spark-cds"


def _archive_name(jvm_options: str) -> str:
    """One archive per pyspark, Java and JVM options (an archive holds the classes of one class path and Java)."""
    import pyspark

    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else (shutil.which("java") or "java")
    real = os.path.realpath(java)
    stamp = str(os.stat(real).st_mtime_ns) if os.path.exists(real) else ""
    key = "\n".join([pyspark.__version__, pyspark.__file__, real, stamp, jvm_options, sys.platform])
    return f"spark-{pyspark.__version__}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


def _adopt(archive: Path) -> None:
    """Archives written by earlier sessions (``<archive>.<pid>.tmp``: a JVM writes it at exit, after its driver
    ended): the first complete one (its header, written last, is there) put in place, those complete after it
    removed, as is one left half-written for an hour."""
    import time

    for tmp in sorted(archive.parent.glob(f"{archive.name}.*.tmp")):
        try:
            with tmp.open("rb") as fh:
                complete = fh.read(4) == _MAGIC
            if complete and not archive.exists():
                os.replace(tmp, archive)
            elif complete or tmp.stat().st_mtime < time.time() - 3600:
                tmp.unlink()
        except OSError:
            continue


def cds_options(jvm_options: str, folder: Path | None = None) -> str:
    """The CDS options for a local session started with ``jvm_options``: use the archive of ``folder`` (default
    :func:`cds_folder`) when there is one, else write it when this JVM exits; ``""`` when CDS is off or the
    folder cannot be made (or its path holds a space, which the JVM's option string cannot quote)."""
    folder = folder if folder is not None else cds_folder()
    if folder is None:
        return ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder / _archive_name(jvm_options)
        _adopt(archive)
    except OSError:
        return ""
    if any(c.isspace() for c in str(archive)):
        return ""
    if archive.exists():
        return f"-XX:SharedArchiveFile={archive} {_QUIET}"
    return f"-XX:ArchiveClassesAtExit={archive}.{os.getpid()}.tmp {_QUIET}"


def session_jvm_options(light: bool) -> str:
    """The driver JVM's options of a local session: :data:`LIGHT_JVM` when ``light`` (the JVM only schedules),
    with :func:`cds_options`."""
    base = LIGHT_JVM if light else ""
    return " ".join(o for o in (base, cds_options(base)) if o)
