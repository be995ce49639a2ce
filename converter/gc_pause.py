"""Python's cyclic garbage collector paused while millions of small objects are made or parsed (FHIR built or
read, an ADaM build, a process's imports): a base module, so every stage pauses it the same way."""

from __future__ import annotations

import gc

__all__ = ["no_gc"]


class no_gc:
    """Cyclic GC off while millions of small dicts are made (it would rescan them all, again and again)."""

    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was:
            gc.enable()
