"""Upload output shards to the target before the commit, so each may leave the disk at once.

``HfApi.preupload_lfs_files`` sends an LFS object to the target's storage without committing
it; the run's one ``create_commit`` at the end (:func:`reranker_seqcls.hub.push` with
``preuploaded``) then references the objects, together with the small files, against the
``parent_commit`` read when the run started: the push stays one atomic commit.

What a failed run leaves: nothing committed. LFS objects it pre-uploaded stay in the target's
storage, referenced by no commit (the Hub garbage-collects unreferenced objects; a rerun that
uploads the same bytes finds them there and skips them). The preupload endpoint needs the target
repo to exist, so a new target is created before the first shard goes up (not at commit time as
in the whole-directory push) and deleted again when the run fails for any reason it survives to
handle (an error, a failed parity check, a stop signal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.hub.reads import head_commit, hub_api
from reranker_seqcls.hub.target import create_target as _create_target
from reranker_seqcls.hub.target import delete_created as _delete_created

Log = Callable[[str], None]


class Preuploader:
    """The pre-uploaded operations of one run against one target."""

    def __init__(
        self,
        repo_id: str,
        *,
        token: str | None,
        private: bool,
        create_pr: bool,
        head: str | None,
        dry_run: bool,
        log: Log,
    ) -> None:
        self.repo_id = repo_id
        self.private = private
        self.create_pr = create_pr
        self.dry_run = dry_run
        self.log = log
        self.head = head  # the parent commit of the final commit
        self.created = False  # whether this run created the target
        self.operations: list[Any] = []  # CommitOperationAdd (a dry run: _DryRunAdd)
        self.token = token
        self._api = hub_api(token)

    def upload(self, path_in_repo: str, file: Path, sha256: str | None = None) -> bool:
        """Pre-upload ``file`` as ``path_in_repo``; whether the local file may be deleted now
        (False for a file the Hub stores in git: its bytes go with the commit). ``sha256``:
        the file's sha256 when the caller knows it (a hard link of a shard verified on
        download): ``UploadInfo`` then does not read the file to hash it (its ``sha256`` is
        computed lazily, on first use, unless set)."""
        from huggingface_hub import CommitOperationAdd

        if self.dry_run:
            self.operations.append(_DryRunAdd(path_in_repo))
            return True
        self.ensure_target()
        op = CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(file))
        if sha256 is not None:
            op.upload_info.sha256 = bytes.fromhex(sha256)
        with hub_errors(f"push to {self.repo_id}"):
            self._api.preupload_lfs_files(self.repo_id, [op], create_pr=self.create_pr)
        self.operations.append(op)
        return bool(op._upload_mode == "lfs" and op._is_uploaded)

    def uploaded_sha256(self) -> dict[str, str]:
        """The sha256 of each pre-uploaded file, as the client computed it for the upload
        (nothing for a dry run): what the run's verdict is bound to."""
        return {
            op.path_in_repo: op.upload_info.sha256.hex()
            for op in self.operations
            if getattr(op, "upload_info", None) is not None
        }

    def ensure_target(self) -> None:
        """Create the target when it does not exist (once; before the first upload). A run
        that uploads from another thread calls it first in its own, so that :meth:`abandon`
        knows of any target it created."""
        if self.head is not None:
            return
        with hub_errors(f"push to {self.repo_id}"):
            self.created = _create_target(self._api, self.repo_id, self.private)
            self.head = head_commit(self.repo_id, None, self.token)
        if self.created:
            self.log(f"created {self.repo_id} to pre-upload into (removed if the run fails)")

    def abandon(self) -> None:
        """The run failed before its commit: remove a target this run created."""
        if self.created:
            _delete_created(self._api, self.repo_id, self.log)
            self.created = False


@dataclass(frozen=True)
class _DryRunAdd:
    """What a dry run would have pre-uploaded: a name for the push's listing."""

    path_in_repo: str


def commit_preuploaded(
    folder: Path,
    uploader: Preuploader,
    *,
    commit_message: str,
    commit_description: str,
    log: Log,
) -> Any:
    """The run's one commit: the small files of ``folder``, the pre-uploaded shards, and the
    deletion of target files the conversion lacks, on the head the uploads started from, with
    the guarantees of :func:`reranker_seqcls.hub.push.commit_operations`; a ``PushResult``.
    A failed commit removes a target the run created for its pre-uploads."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    from reranker_seqcls.hub.push import (
        PushResult,
        commit_operations,
        dry_run_result,
        folder_files,
        stale_files,
    )

    repo_id = uploader.repo_id
    sent = {op.path_in_repo: op for op in uploader.operations}
    local = [name for name in folder_files(folder) if name not in sent]
    names = sorted([*local, *sent])
    stale = stale_files(repo_id, names, head=uploader.head, token=uploader.token)
    if uploader.dry_run:
        return dry_run_result(repo_id, names, stale, log)
    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in local
    ]
    operations += list(sent.values())
    operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
    try:
        commit = commit_operations(
            repo_id,
            operations,
            token=uploader.token,
            private=uploader.private,
            create_pr=uploader.create_pr,
            parent_commit=uploader.head,
            commit_message=commit_message,
            commit_description=commit_description,
            log=log,
        )
    except BaseException:
        uploader.abandon()
        raise
    return PushResult(commit.sha, commit.url, commit.pr_url, names, stale, commit.made)
