"""The idempotent Hub reads a run makes itself, retried by huggingface_hub's own backoff.

huggingface_hub retries its downloads and uploads (``http_backoff``), but ``HfApi.model_info``
and ``HfApi.get_paths_info`` send one request: the head and revision lookups a run starts with,
and the lost-commit lookup after a push failed, would give up on the first 5xx or rate limit.
So these two requests go through ``huggingface_hub.utils.http_backoff`` with the client's own
headers and error mapping (``hf_raise_for_status``): rate limits (429, waiting as long as
``Retry-After`` or the ``RateLimit`` header says), 408 and 5xx answers and dropped connections
are retried :data:`MAX_RETRIES` times, waiting 1, 2, 4 s in between.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    from httpx2 import Response
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

MAX_RETRIES = 3
CHUNK = 1024 * 1024  # bytes per read from a streamed answer
RETRIED_STATUSES = (408, 429, *range(500, 600))


def hub_api(token: str | None) -> HfApi:
    """The client for every other Hub call (downloads, commits, repo creation)."""
    from huggingface_hub import HfApi

    return HfApi(token=token)


def head_commit(repo_id: str, revision: str | None, token: str | None) -> str | None:
    """The commit sha ``revision`` (None: the default branch) of model ``repo_id`` points at;
    None for a repo without commits. ``HfApi.model_info(...).sha``, retried."""
    from huggingface_hub.utils import validate_repo_id

    validate_repo_id(repo_id)
    path = f"/api/models/{repo_id}"
    if revision is not None:
        path += f"/revision/{quote(revision, safe='')}"
    sha = _retried("GET", path, token).json().get("sha")
    return sha if isinstance(sha, str) else None


def files_at(repo_id: str, paths: list[str], revision: str, token: str | None) -> list[RepoFile]:
    """The files among ``paths`` that model ``repo_id`` holds at commit ``revision`` (absent
    paths and folders are left out). ``HfApi.get_paths_info``, retried."""
    from huggingface_hub.hf_api import RepoFile

    response = _retried(
        "POST",
        f"/api/models/{repo_id}/paths-info/{quote(revision, safe='')}",
        token,
        data={"paths": paths, "expand": False},
    )
    return [RepoFile(**entry) for entry in response.json() if entry.get("type") == "file"]


def read_file_bytes(url: str, headers: dict[str, str], *, limit: int, start: int = 0) -> bytes:
    """At most ``limit`` bytes of a file URL from byte ``start``, into memory (never onto disk),
    retried as the other reads: the one partial read, for a shard's header (a Range request in
    ``headers``) and a target's small record alike. Reading stops at the bound whatever the
    server sends (:func:`stream_bytes`: a dropped connection resumed, a server that ignores the
    Range header has its first ``start`` bytes skipped). The client's HTTP errors raise."""
    chunks: list[bytes] = []
    got = 0
    stream = stream_bytes(url, headers, start=start)
    try:
        for chunk in stream:
            chunks.append(chunk)
            got += len(chunk)
            if got >= limit:
                break
    finally:
        stream.close()
    return b"".join(chunks)[:limit]


def stream_bytes(url: str, headers: dict[str, str], *, start: int = 0) -> Generator[bytes]:
    """The bytes of a file URL from byte ``start`` (``headers`` may hold the first request's
    Range), in chunks of :data:`CHUNK`, for as long as the caller reads. A connection dropped
    mid-body is resumed by a Range request from the first byte not yet given out, at most
    :data:`MAX_RETRIES` times, waiting 1, 2, 4 s; a server that ignores the Range (200, the
    whole file) has the bytes before that skipped. HTTP errors and rate limits are retried by
    :func:`retried_stream`.

    The drop is caught inside the request's block: ``http_stream_backoff`` cannot retry a body
    it already gave out (huggingface_hub 2.4.0 tries, and ends in "generator didn't stop after
    throw()")."""
    from reranker_seqcls.hub.errors import is_network_exception

    at, drops = start, 0
    while True:
        asked = headers if at == start else {**headers, "range": f"bytes={at}-"}
        dropped: Exception | None = None
        with retried_stream(url, asked) as response:
            skip = at if response.status_code == 200 else 0
            try:
                for chunk in response.iter_bytes(CHUNK):
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    if chunk:
                        at += len(chunk)
                        yield chunk
            except Exception as exc:
                if not is_network_exception(exc):
                    raise
                dropped = exc
        if dropped is None:
            return
        drops += 1
        if drops > MAX_RETRIES:
            raise dropped
        time.sleep(2 ** (drops - 1))


@contextmanager
def retried_stream(url: str, headers: dict[str, str]) -> Iterator[Response]:
    """One streamed GET of a file URL, retried like the run's other reads (redirects followed);
    the client's own HTTP errors raise. The caller reads as many bytes as it bounds."""
    from huggingface_hub.utils import hf_raise_for_status, http_stream_backoff

    with http_stream_backoff(
        "GET",
        url,
        headers=headers,
        follow_redirects=True,
        max_retries=MAX_RETRIES,
        max_wait_time=4,
        retry_on_status_codes=RETRIED_STATUSES,
    ) as response:
        hf_raise_for_status(response)
        yield response


def _retried(
    method: Literal["GET", "POST"],
    path: str,
    token: str | None,
    data: dict[str, object] | None = None,
) -> Response:
    """One Hub API request through ``http_backoff``; raises the client's own HTTP errors."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff

    response = http_backoff(
        method,
        f"{constants.ENDPOINT.rstrip('/')}{path}",
        headers=build_hf_headers(token=token),
        max_retries=MAX_RETRIES,
        base_wait_time=1,
        max_wait_time=4,
        retry_on_status_codes=RETRIED_STATUSES,
        data=data,
    )
    hf_raise_for_status(response)
    return response
