"""Registry upload: send FHIR R4 transaction Bundles to a FHIR server (``inoconv upload``).

Idempotent (conditional create/update entries; nothing else is sent, DELETE only when allowed), resumable
(fsync'ed journal of real transaction-responses), robust (one deadline and a size limit per request, retries
with backoff and jitter, Retry-After), concurrent, and careful with the bearer token (own origin only, never
shown). Modules:

* :mod:`.options` - every option, its default and help (the command line and :func:`upload` use them);
* :mod:`.bundles` - what to send (bundles/ or ndjson/), checked before anything goes out;
* :mod:`.transport`, :mod:`.connection` - HTTP to one server: deadline, size limit, origins, retries;
* :mod:`.answers` - when an answer is an acceptance; :mod:`.journal` - what was accepted;
* :mod:`.client` - the upload itself; :mod:`.search` - reading back; :mod:`.auth` - the token;
* :mod:`.commands` - the typer command.

The names below are imported when first used, so ``import converter.upload.commands`` (the CLI at start-up)
does not load httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converter.lazy import lazy_names

if TYPE_CHECKING:
    from converter.upload.auth import Secret, redact, resolve_token
    from converter.upload.bundles import UploadPlan, plan_upload
    from converter.upload.client import upload
    from converter.upload.options import DEFAULTS, UploadOptions
    from converter.upload.results import (
        BundleRejection,
        FhirServerError,
        IssueReport,
        Progress,
        RetryPolicy,
        UploadSummary,
    )
    from converter.upload.search import count_resources, fetch_all, iter_resources

__all__ = [
    "DEFAULTS",
    "BundleRejection",
    "FhirServerError",
    "IssueReport",
    "Progress",
    "RetryPolicy",
    "Secret",
    "UploadOptions",
    "UploadPlan",
    "UploadSummary",
    "count_resources",
    "fetch_all",
    "iter_resources",
    "plan_upload",
    "redact",
    "resolve_token",
    "upload",
]

_WHERE = {
    "Secret": "auth",
    "redact": "auth",
    "resolve_token": "auth",
    "UploadPlan": "bundles",
    "plan_upload": "bundles",
    "upload": "client",
    "DEFAULTS": "options",
    "UploadOptions": "options",
    "BundleRejection": "results",
    "FhirServerError": "results",
    "IssueReport": "results",
    "Progress": "results",
    "RetryPolicy": "results",
    "UploadSummary": "results",
    "count_resources": "search",
    "fetch_all": "search",
    "iter_resources": "search",
}


__getattr__ = lazy_names(__name__, _WHERE)
