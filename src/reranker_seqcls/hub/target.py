"""What the target repo holds now: its head commit and the provenance recorded there."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.hub.reads import head_commit
from reranker_seqcls.names import PROVENANCE_FILE


@dataclass(frozen=True)
class TargetState:
    """The target as a run finds it; ``head`` is the parent its push commits on."""

    exists: bool
    head: str | None
    provenance: dict[str, Any] | None  # None: absent, or not a JSON object


def target_state(repo_id: str, token: str | None) -> TargetState:
    """The target's head commit and recorded provenance (None where absent)."""
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    with hub_errors(f"target {repo_id}"):
        try:
            head = head_commit(repo_id, None, token)
        except hf.RepositoryNotFoundError:
            return TargetState(False, None, None)
        if head is None:
            return TargetState(True, None, None)
        try:
            path = hf_hub_download(repo_id, PROVENANCE_FILE, revision=head, token=token)
        except hf.RemoteEntryNotFoundError:
            return TargetState(True, head, None)
    try:
        provenance = json.loads(Path(path).read_text("utf-8"))
    except (ValueError, RecursionError):  # not JSON (or nested past the parser): no record
        provenance = None
    return TargetState(True, head, provenance if isinstance(provenance, dict) else None)
