"""One source file read from the Hub as a stream, never saved: the bytes pass through the caller
(the GGUF second pass quantizes them as they come) and are proven to be the commit's at the end.

The proof is the one a fetch to disk gets (:func:`.stream_fetch.verify_download`): the listed
size, the LFS sha256 computed over every byte as it passes, and the planned header at the
start. It is one GET; a connection dropped mid-body is resumed with a Range request from the
first byte not yet seen (a server that ignores the Range answers 200 with the whole file: its
first bytes are skipped), at most :data:`.reads.MAX_RETRIES` times, waiting 1, 2, 4 s; HTTP
errors and rate limits are retried by :func:`.reads.retried_stream` as every other read.

A caller must read the stream to its end: the sha256 is only known then, so nothing made of
the bytes may leave the run before the iterator finished without an error.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from reranker_seqcls.errors import HubError
from reranker_seqcls.hub.errors import hub_errors, is_network_exception

if TYPE_CHECKING:
    from reranker_seqcls.hub.stream_fetch import SourceListing

CHUNK = 1024 * 1024  # bytes per read from the connection


def stream_verified(
    listing: SourceListing, name: str, token: str | None, header: bytes
) -> Iterator[bytes]:
    """The bytes of ``name`` at the listing's commit, in order, in chunks. Raises
    :class:`HubError` (exit 3) when the header is not ``header`` (as soon as it has passed), or,
    at the end, when the size or sha256 is not the listing's."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from reranker_seqcls.hub.reads import MAX_RETRIES, retried_stream

    remote = listing.files[name]
    where = f"source {listing.repo_id}@{listing.commit_sha[:12]}: {name}"
    url = hf_hub_url(listing.repo_id, name, revision=listing.commit_sha)
    digest = hashlib.sha256() if remote.sha256 else hashlib.sha1(b"blob %d\0" % remote.size)
    seen = bytearray()  # the first len(header) bytes
    got = drops = 0
    while True:
        headers = build_hf_headers(token=token)
        if got:
            headers["range"] = f"bytes={got}-"
        dropped: Exception | None = None
        with hub_errors(where), retried_stream(url, headers) as response:
            skip = got if response.status_code == 200 else 0
            try:
                for chunk in response.iter_bytes(CHUNK):
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                    if not chunk:
                        continue
                    if got + len(chunk) > remote.size:
                        raise HubError(_size_error(where, got + len(chunk), remote.size))
                    digest.update(chunk)
                    if len(seen) < len(header):
                        seen += chunk[: len(header) - len(seen)]
                        if len(seen) == len(header) and bytes(seen) != header:
                            raise HubError(
                                f"{where} has another header than its range request answered: "
                                "the Hub served two versions of one file, nothing was pushed; "
                                "try again"
                            )
                    got += len(chunk)
                    yield chunk
            except Exception as exc:
                # caught here: http_stream_backoff cannot retry a body it already gave out
                if not is_network_exception(exc):
                    raise
                dropped = exc
        if dropped is None:
            break
        drops += 1
        if drops > MAX_RETRIES:
            with hub_errors(where):
                raise dropped
        time.sleep(2 ** (drops - 1))
    if got != remote.size:
        raise HubError(_size_error(where, got, remote.size))
    expected = remote.sha256 or remote.blob_id
    if expected and digest.hexdigest() != expected:
        kind = "sha256" if remote.sha256 else "git blob id"
        raise HubError(
            f"{where} has {kind} {digest.hexdigest()[:12]}…, but the Hub lists "
            f"{expected[:12]}…: the bytes are not the commit's, nothing was pushed; "
            "try again, and report it to the repo's owner if it persists"
        )


def _size_error(where: str, got: int, size: int) -> str:
    return (
        f"{where} arrived with {got} bytes, but the Hub lists {size}: the transfer was "
        "corrupted, nothing was pushed; try again"
    )
