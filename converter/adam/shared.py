"""Results shared between the variables of one ADaM build (and between the rules of one validation run).

Several variables read the same right dataset with the same filter, order and keys (ADSL reads EX, RS, DS and PR
a few times each; every Predecessor variable merges from ADSL by USUBJID). Inside :func:`shared_results` (one
``sdtm_to_adam`` call), what depends only on such inputs (a dataset's filtered rows, the record picked per group,
a column's key text or SAS dates, the lookup positions of one key set in another) is computed once and reused.

Entries are keyed by the identity of the objects they were computed from and hold those objects, so an identity
is never reused while its entry lives; the rules never change a built dataset, a source frame or a computed
column in place, so an entry stays true for the whole build. Outside :func:`shared_results` nothing is kept and
every call computes afresh. What a caller gets from here is shared: it must not be changed in place. The
conformance rules use the same machinery for a column's texts (:func:`converter.validate.common.coded`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = ["shared", "shared_results"]

T = TypeVar("T")

_CACHE: ContextVar[dict[tuple[Hashable, ...], tuple[tuple[Any, ...], Any]] | None] = ContextVar(
    "adam_shared_results", default=None
)


@contextmanager
def shared_results() -> Iterator[None]:
    """Share results between the variables of one build (see the module's description); dropped at exit."""
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def shared(what: Hashable, inputs: tuple[Any, ...], make: Callable[[], T]) -> T:
    """``make()``, computed once per build for ``what`` (a hashable description) of these ``inputs`` objects."""
    cache = _CACHE.get()
    if cache is None:
        return make()
    key = (what, *(id(x) for x in inputs))
    hit = cache.get(key)
    if hit is None:
        hit = (inputs, make())
        cache[key] = hit
    result: T = hit[1]
    return result
