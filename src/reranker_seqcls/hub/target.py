"""The target repo: what it holds now (its head commit and the provenance recorded there), and
its creation for a push and removal when that push fails, for the whole-directory push
(:mod:`.push`) and the streamed run's pre-uploads (:mod:`.preupload`) alike."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reranker_seqcls.hub.errors import first_line, hub_errors
from reranker_seqcls.hub.reads import head_commit
from reranker_seqcls.names import PROVENANCE_FILE

if TYPE_CHECKING:
    from huggingface_hub import HfApi

# A record this tool writes is under 2 kB; a target's file is read only up to this bound.
MAX_PROVENANCE_BYTES = 64 * 1024


@dataclass(frozen=True)
class TargetState:
    """The target as a run finds it; ``head`` is the parent its push commits on."""

    exists: bool
    head: str | None
    provenance: dict[str, Any] | None  # None: absent, or not a JSON object


def target_state(repo_id: str, token: str | None) -> TargetState:
    """The target's head commit and recorded provenance (None where absent)."""
    from huggingface_hub import errors as hf

    with hub_errors(f"target {repo_id}"):
        try:
            head = head_commit(repo_id, None, token)
        except hf.RepositoryNotFoundError:
            return TargetState(False, None, None)
        if head is None:
            return TargetState(True, None, None)
        try:
            raw = read_bounded(repo_id, PROVENANCE_FILE, head, token, MAX_PROVENANCE_BYTES)
        except hf.RemoteEntryNotFoundError:
            return TargetState(True, head, None)
    if raw is None:  # larger than any record this tool writes: not a record
        return TargetState(True, head, None)
    try:
        provenance = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # not JSON (or nested past the parser): no record
        provenance = None
    return TargetState(True, head, provenance if isinstance(provenance, dict) else None)


def read_bounded(
    repo_id: str, name: str, revision: str, token: str | None, limit: int
) -> bytes | None:
    """The bytes of a small file of a repo we do not trust, read into memory and never onto
    disk (no ``HF_HOME`` cache entry); None when it is over ``limit`` bytes (reading stops
    there). Retried like the run's other reads; the client's errors (not found...) raise."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from reranker_seqcls.hub.reads import read_file_bytes

    url = hf_hub_url(repo_id, name, revision=revision)
    data = read_file_bytes(url, build_hf_headers(token=token), limit=limit + 1)
    return None if len(data) > limit else data


def create_target(api: HfApi, repo_id: str, private: bool) -> bool:
    """Create the target repo; False when it exists already (created since the run looked)."""
    from huggingface_hub import errors as hf

    try:
        api.create_repo(repo_id, private=private)
    except hf.HfHubHTTPError as exc:
        if exc.response is not None and exc.response.status_code == 409:
            return False
        raise
    return True


def delete_created(api: HfApi, repo_id: str, log: Callable[[str], None]) -> None:
    """Remove the target this run created for a push that failed: no empty repo is left."""
    try:
        api.delete_repo(repo_id)
    except Exception as exc:  # best effort: the push's own error is what gets reported
        log(f"warning: could not remove {repo_id}, created by this run ({first_line(exc)[:120]})")
    else:
        log(f"removed {repo_id}: this run created it, and the push failed")
