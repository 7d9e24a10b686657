"""Download exactly what a conversion needs from one commit of a source repo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import HubError
from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.hub.reads import head_commit
from reranker_seqcls.names import README_FILE, download_patterns

if TYPE_CHECKING:
    from reranker_seqcls.hub.stream_fetch import SourceListing


@dataclass(frozen=True)
class Fetched:
    """A source snapshot on disk: the files of ``commit_sha`` that a conversion reads."""

    path: Path
    repo_id: str
    revision: str | None
    commit_sha: str


def resolve_commit(repo_id: str, revision: str | None, token: str | None) -> str:
    """The exact commit ``revision`` (None: the default branch) of ``repo_id`` names."""
    with hub_errors(f"source {repo_id}" + (f"@{revision}" if revision else "")):
        sha = head_commit(repo_id, revision, token)
    if sha is None:  # the Hub names the commit of every revision it resolves
        raise HubError(f"source {repo_id}: the Hub named no commit for it; try again later")
    return sha


def fetch(
    repo_id: str,
    revision: str | None,
    *,
    token: str | None,
    log: Callable[[str], None],
    commit_sha: str | None = None,
) -> Fetched:
    """Download the safetensors (else, pickle) weights and the files around them of one commit
    of ``repo_id``: ``commit_sha`` when the caller resolved it already. Each file is checked
    against the commit's listing (size, LFS sha256 or git blob id) as the streamed run checks
    its own: bytes the Hub serves that are not the ones it lists are refused (exit 3)."""
    from huggingface_hub import snapshot_download

    from reranker_seqcls.hub.stream_fetch import list_source

    sha = commit_sha or resolve_commit(repo_id, revision, token)
    listing = list_source(repo_id, sha, token)
    kind = "safetensors" if listing.has_safetensors else "pickle"
    patterns = [*download_patterns(include_pickle=not listing.has_safetensors), README_FILE]
    with hub_errors(f"source {repo_id}@{sha[:12]}"):
        log(f"downloading {repo_id}@{sha[:12]} ({kind})")
        path = snapshot_download(repo_id, revision=sha, allow_patterns=patterns, token=token)
    for name in sorted(listing.files):
        _verify_cached(listing, name, Path(path) / name)
    return Fetched(Path(path), repo_id, revision, sha)


def _verify_cached(listing: SourceListing, name: str, path: Path) -> None:
    """One file of the snapshot against the listing. A file with other bytes is removed from
    the cache, its link and its blob, so that a retry downloads it anew rather than finding it
    there."""
    from reranker_seqcls.hub.stream_fetch import verify_download

    if not path.is_file():
        raise HubError(
            f"source {listing.repo_id}@{listing.commit_sha[:12]}: the Hub lists {name}, but the "
            "download did not bring it; nothing was pushed, try again"
        )
    try:
        verify_download(listing, listing.files[name], path, b"")
    except HubError:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise
