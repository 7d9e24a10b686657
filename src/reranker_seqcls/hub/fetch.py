"""Download exactly what a conversion needs from one commit of a source repo."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.errors import HubError
from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.hub.reads import head_commit, hub_api
from reranker_seqcls.names import README_FILE, download_patterns


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
    of ``repo_id``: ``commit_sha`` when the caller resolved it already."""
    from huggingface_hub import snapshot_download

    sha = commit_sha or resolve_commit(repo_id, revision, token)
    with hub_errors(f"source {repo_id}@{sha[:12]}"):
        files = hub_api(token).list_repo_files(repo_id, revision=sha)
        has_safetensors = any(f.endswith(".safetensors") for f in files)
        patterns = [*download_patterns(include_pickle=not has_safetensors), README_FILE]
        log(f"downloading {repo_id}@{sha[:12]} ({'safetensors' if has_safetensors else 'pickle'})")
        path = snapshot_download(repo_id, revision=sha, allow_patterns=patterns, token=token)
    return Fetched(Path(path), repo_id, revision, sha)
