"""Registry upload: send FHIR R4 transaction Bundles to a FHIR server (``inoconv upload``).

Idempotent (conditional create/update entries), resumable (fsync'ed journal), robust (retries with
backoff and jitter, Retry-After), concurrent, and careful with the bearer token. See :mod:`.client`.
"""

from converter.upload.auth import Secret, redact, resolve_token
from converter.upload.bundles import UploadPlan, plan_upload
from converter.upload.client import (
    BundleRejection,
    IssueReport,
    Progress,
    RetryPolicy,
    UploadSummary,
    count_resources,
    fetch_all,
    iter_resources,
    upload,
)

__all__ = [
    "BundleRejection",
    "IssueReport",
    "Progress",
    "RetryPolicy",
    "Secret",
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
