"""Download exactly what a conversion needs from one commit of a source repo."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.errors import HubError
from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.hub.reads import head_commit

# As snapshot_download: that many files are downloaded at once.
_PARALLEL_DOWNLOADS = 8


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
    of ``repo_id`` (``commit_sha`` when the caller resolved it already) into the ``HF_HOME``
    cache, several files at once as ``snapshot_download`` would. Each file is fetched by
    :func:`.stream_fetch.download_verified`, the streamed run's own fetch, so it is checked
    against the commit's listing (size, LFS sha256 or git blob id) the same way: bytes the Hub
    serves that are not the ones it lists are refused (exit 3) and leave the cache."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    from reranker_seqcls.hub.stream_fetch import download_verified, list_source

    sha = commit_sha or resolve_commit(repo_id, revision, token)
    listing = list_source(repo_id, sha, token)
    kind = "safetensors" if listing.has_safetensors else "pickle"
    log(f"downloading {repo_id}@{sha[:12]} ({kind})")
    snapshot = Path(constants.HF_HUB_CACHE, repo_folder_name(repo_id=repo_id, repo_type="model"))
    snapshot = snapshot / "snapshots" / sha
    snapshot.mkdir(parents=True, exist_ok=True)  # a directory even when nothing is listed
    pool = ThreadPoolExecutor(max_workers=_PARALLEL_DOWNLOADS)
    try:
        for _ in pool.map(lambda name: download_verified(listing, name, token), listing.files):
            pass
    finally:  # a failure stops the files not yet started; those in flight finish
        pool.shutdown(wait=True, cancel_futures=True)
    return Fetched(snapshot, repo_id, revision, sha)
