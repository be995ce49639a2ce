"""Closing a large file that is written once and not read again by the writing process.

A long run writes far more than the page cache can hold (100,000 subjects: about 22 GB of FHIR NDJSON). Left to
the kernel, the dirty pages pile up until every further ``write`` has to reclaim memory first: on the 2-core
machine of ``benchmarks/RESULTS.md`` the system time of writing one partition's 440 MB grew from 0.1 s to 2-3 s
once about 3 GB were written. :func:`close_settled` writes the file's data out (``fdatasync``) and then drops its
pages from the cache (``POSIX_FADV_DONTNEED``), so the cost per file stays what it was at the start, and the file
is on disk when the run reports it written. Where the platform lacks either call, that step is skipped.
"""

from __future__ import annotations

import os
from typing import IO

__all__ = ["close_settled"]


def close_settled(fh: IO[bytes]) -> None:
    """Flush ``fh``, write its data to disk, drop its pages from the page cache and close it."""
    try:
        fh.flush()
        fd = fh.fileno()
        if hasattr(os, "fdatasync"):
            os.fdatasync(fd)
        else:  # pragma: no cover - e.g. macOS
            os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        fh.close()
