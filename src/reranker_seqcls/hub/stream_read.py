"""One source file read from the Hub as a stream, never saved: the bytes pass through the caller
(the GGUF second pass quantizes them as they come) and are proven to be the commit's at the end.

The proof is the one a fetch to disk gets (:func:`.stream_fetch.verify_download`): the listed
size, the LFS sha256 computed over every byte as it passes, and the planned header at the
start. It is one GET; a connection dropped mid-body is resumed with a Range request from the
first byte not yet seen, as every streamed read is (:func:`.reads.stream_bytes`).

A caller must read the stream to its end: the sha256 is only known then, so nothing made of
the bytes may leave the run before the iterator finished without an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from reranker_seqcls.errors import HubError
from reranker_seqcls.hub.errors import hub_errors

if TYPE_CHECKING:
    from reranker_seqcls.hub.stream_fetch import SourceListing


def stream_verified(
    listing: SourceListing, name: str, token: str | None, header: bytes
) -> Iterator[bytes]:
    """The bytes of ``name`` at the listing's commit, in order, in chunks. Raises
    :class:`HubError` (exit 3) when the header is not ``header`` (as soon as it has passed), or,
    at the end, when the size or sha256 is not the listing's."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from reranker_seqcls.hub.reads import stream_bytes

    remote = listing.files[name]
    where = f"source {listing.repo_id}@{listing.commit_sha[:12]}: {name}"
    url = hf_hub_url(listing.repo_id, name, revision=listing.commit_sha)
    digest = hashlib.sha256() if remote.sha256 else hashlib.sha1(b"blob %d\0" % remote.size)
    seen = bytearray()  # the first len(header) bytes
    got = 0
    with hub_errors(where):
        stream = stream_bytes(url, build_hf_headers(token=token))
        try:
            for chunk in stream:
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
        finally:
            stream.close()
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
