"""Reading resources back from a FHIR server: searches that follow ``next`` links, and counts.

Same connection rules as the upload (:mod:`.connection`): the token only to the server's origin, a ``next``
link to another origin is refused, one deadline per request, a size limit per page. Failures raise
:class:`~converter.upload.results.FhirServerError` with a redacted, escaped message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

from converter.upload.auth import Secret, resolve_token, safe_url
from converter.upload.bundles import JsonDict
from converter.upload.connection import FhirHttp, origin_of
from converter.upload.options import DEFAULTS
from converter.upload.results import FhirServerError, RetryPolicy, UploadFailure

__all__ = ["count_resources", "fetch_all", "iter_resources"]


def _http(
    server: str,
    token: str | Secret | None,
    token_file: Path | None,
    timeout: float,
    verify: bool,
    retry: RetryPolicy | None,
    allow_insecure_http: bool,
) -> FhirHttp:
    return FhirHttp(
        server,
        resolve_token(token, token_file),
        timeout=timeout,
        verify=verify,
        retry=retry or RetryPolicy(max_attempts=DEFAULTS.max_attempts),
        max_answer_bytes=DEFAULTS.max_answer_bytes,
        allow_insecure_http=allow_insecure_http,
    )


def iter_resources(
    server: str,
    resource_type: str,
    params: Mapping[str, str] | None = None,
    *,
    token: str | Secret | None = None,
    token_file: Path | None = None,
    timeout: float = 30.0,
    verify: bool = True,
    page_size: int | None = 100,
    max_pages: int = 100_000,
    retry: RetryPolicy | None = None,
    allow_insecure_http: bool = False,
) -> Iterator[JsonDict]:
    """Every resource of ``resource_type`` matching ``params``, following the searchset ``next`` links.

    The token is sent only to the server's own origin: a ``next`` link to another origin is an error.
    """
    query = dict(params or {})
    if page_size is not None and "_count" not in query:
        query["_count"] = str(page_size)
    base = server.rstrip("/") + "/"
    url: str | None = f"{base}{resource_type}" + (f"?{urlencode(query, safe='|:/,')}" if query else "")
    seen: set[str] = set()
    with _http(server, token, token_file, timeout, verify, retry, allow_insecure_http) as http:
        pages = 0
        while url is not None:
            if url in seen or pages >= max_pages:
                raise FhirServerError(f"paging loop or too many pages at {safe_url(url)}")
            seen.add(url)
            pages += 1
            try:
                page = http.get_json(url, what=f"search {resource_type}")
            except UploadFailure as f:
                raise FhirServerError(f.rejection.render()) from None
            for entry in page.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    search = entry.get("search")
                    if isinstance(search, dict) and search.get("mode") == "include":
                        continue
                    yield entry["resource"]
            url = None
            for link in page.get("link") or []:
                if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
                    nxt = urljoin(base, link["url"])
                    if origin_of(nxt) != http.origin:
                        raise FhirServerError(
                            f"search {resource_type}: the next page is at another origin ({safe_url(nxt)}); "
                            "not followed: the token goes only to the server's origin"
                        )
                    url = nxt


def fetch_all(
    server: str,
    resource_type: str,
    params: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[JsonDict]:
    """All resources of a type (following ``next`` links) as a list; see :func:`iter_resources`."""
    return list(iter_resources(server, resource_type, params, **kwargs))


def count_resources(
    server: str,
    resource_type: str,
    params: Mapping[str, str] | None = None,
    *,
    token: str | Secret | None = None,
    token_file: Path | None = None,
    timeout: float = 30.0,
    verify: bool = True,
    allow_insecure_http: bool = False,
) -> int:
    """How many resources match, by ``_summary=count``."""
    query = {**(params or {}), "_summary": "count"}
    url = f"{server.rstrip('/')}/{resource_type}?{urlencode(query, safe='|:/,')}"
    with _http(server, token, token_file, timeout, verify, None, allow_insecure_http) as http:
        try:
            data = http.get_json(url, what=f"count {resource_type}")
        except UploadFailure as f:
            raise FhirServerError(f.rejection.render()) from None
    total = data.get("total")
    if not isinstance(total, int):
        raise FhirServerError(f"the server gave no total for {resource_type}")
    return total
