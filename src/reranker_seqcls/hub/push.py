"""Push: one atomic commit to the target, or nothing at all.

Two layers: :func:`push` turns a converted folder into commit operations (every file added, the
target's other files deleted) and commits them with :func:`commit_operations`, which holds the
guarantees for any list of operations (a streamed run pre-uploads its LFS files and commits them
through it too):

- ``parent_commit`` (the head read when the run started) makes a concurrent writer's commit
  fail this push instead of interleaving with it; None means the target does not exist yet;
- a target is created only now that the commit is ready (a streamed run, whose pre-uploads need
  it, creates it before its first one: :mod:`.preupload`), and deleted again when it fails;
- when the commit call fails without an answer (a dropped connection, a 5xx after the commit
  was applied), the target's head is compared with what the commit wrote, and a commit that
  landed is reported as pushed, so that this run and a rerun agree;
- a commit that changes nothing is reported as such ("already holds identical files").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.hub.reads import files_at, head_commit, hub_api
from reranker_seqcls.hub.repo_ids import repo_url
from reranker_seqcls.hub.target import create_target, delete_created
from reranker_seqcls.interrupt import Interrupted, raise_if_stopped, stop_signals_deferred

if TYPE_CHECKING:
    from huggingface_hub import CommitOperation, CommitOperationAdd, HfApi
    from huggingface_hub.hf_api import RepoFile

# Target files the tool never deletes (the Hub manages them).
_KEEP_IN_TARGET = {".gitattributes"}


@dataclass(frozen=True)
class PushResult:
    commit_sha: str | None
    commit_url: str | None
    pr_url: str | None
    added: list[str]
    deleted: list[str]
    # False when the target already held these files: the Hub made no commit (commit_sha is
    # the unchanged head).
    committed: bool = True


@dataclass(frozen=True)
class Commit:
    """What :func:`commit_operations` made: ``made`` is False when the target already held
    these files (``sha`` is then its unchanged head)."""

    sha: str
    url: str | None
    pr_url: str | None
    made: bool


def push(
    folder: Path,
    repo_id: str,
    *,
    token: str | None,
    private: bool,
    create_pr: bool,
    parent_commit: str | None,
    commit_message: str,
    commit_description: str,
    dry_run: bool,
    log: Callable[[str], None],
) -> PushResult:
    """One commit holding every file of ``folder``, deleting target files the folder lacks."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    local = folder_files(folder)
    stale = stale_files(repo_id, local, head=parent_commit, token=token)
    if dry_run:
        return dry_run_result(repo_id, local, stale, log)
    operations: list[CommitOperation] = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in local
    ]
    operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
    commit = commit_operations(
        repo_id,
        operations,
        token=token,
        private=private,
        create_pr=create_pr,
        parent_commit=parent_commit,
        commit_message=commit_message,
        commit_description=commit_description,
        log=log,
    )
    return PushResult(commit.sha, commit.url, commit.pr_url, local, stale, commit.made)


def stale_files(
    repo_id: str, names: list[str], *, head: str | None, token: str | None
) -> list[str]:
    """The target's files at ``head`` that a commit of ``names`` deletes (none for a new
    target; never the files the Hub manages)."""
    if head is None:
        return []
    with hub_errors(f"target {repo_id}"):
        remote = hub_api(token).list_repo_files(repo_id, revision=head)
    return sorted(set(remote) - set(names) - _KEEP_IN_TARGET)


def dry_run_result(
    repo_id: str, names: list[str], stale: list[str], log: Callable[[str], None]
) -> PushResult:
    """What a dry run says it would commit and delete."""
    log(f"dry run: would commit {len(names)} file(s) to {repo_id}: {', '.join(names)}")
    if stale:
        log(f"dry run: would delete {', '.join(stale)}")
    return PushResult(None, None, None, names, stale)


def folder_files(folder: Path) -> list[str]:
    """The files of ``folder`` a push uploads (relative POSIX paths), hidden ones left out."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def commit_operations(
    repo_id: str,
    operations: Sequence[CommitOperation],
    *,
    token: str | None,
    private: bool,
    create_pr: bool,
    parent_commit: str | None,
    commit_message: str,
    commit_description: str,
    log: Callable[[str], None],
    before_commit: Callable[[], None] | None = None,
) -> Commit:
    """Commit ``operations`` to ``repo_id`` on ``parent_commit`` (None: a new target, created
    here) with the guarantees of this module. ``before_commit`` runs once the target exists and
    before the commit (to pre-upload LFS files into a target created here); what it raises is
    handled like a failed commit."""
    api = hub_api(token)
    created = False
    if parent_commit is None:  # a new target: created now that the commit is ready to go
        with hub_errors(f"push to {repo_id}"):
            created = create_target(api, repo_id, private)
    try:
        with hub_errors(f"push to {repo_id}"):
            if before_commit is not None:
                before_commit()
            raise_if_stopped()  # a stop whose exception was lost: nothing is published
            if parent_commit is None:
                # A repo created just now has an initial commit; guard against anything after it.
                parent_commit = head_commit(repo_id, None, token)
    except BaseException:  # no commit was sent: nothing can have landed
        if created:
            delete_created(api, repo_id, log)
        raise
    # A stop signal from here on cannot stop the Hub applying the commit: it waits for the
    # answer, and when the answer is lost, for the lookup of whether the commit landed (and the
    # removal of a target created for it), so what the run reports is what happened.
    with stop_signals_deferred(log):
        sha, url, pr_url = _commit_or_find_it(
            api, repo_id, operations, token=token, create_pr=create_pr,
            parent_commit=parent_commit, commit_message=commit_message,
            commit_description=commit_description, created=created, log=log,
        )  # fmt: skip
    made = create_pr or sha != parent_commit
    _log_commit(repo_id, operations, made, log)
    return Commit(sha, url, pr_url, made)


def _commit_or_find_it(
    api: HfApi,
    repo_id: str,
    operations: Sequence[CommitOperation],
    *,
    token: str | None,
    create_pr: bool,
    parent_commit: str | None,
    commit_message: str,
    commit_description: str,
    created: bool,
    log: Callable[[str], None],
) -> tuple[str, str, str | None]:
    """The commit's sha, URL and pull-request URL. When the call fails, or its answer is lost
    after the Hub applied it, the target is looked at before anything is reported, so a rerun
    and this run tell the same story; a target created for a commit that did not land is
    removed."""
    try:
        with hub_errors(f"push to {repo_id}"):
            info = api.create_commit(
                repo_id,
                list(operations),
                commit_message=commit_message,
                commit_description=commit_description,
                parent_commit=parent_commit,
                create_pr=create_pr,
            )
        return info.oid, info.commit_url, info.pr_url
    except BaseException as exc:
        landed = None if create_pr else _landed_commit(repo_id, parent_commit, operations, token)
        if landed is None and created:
            delete_created(api, repo_id, log)
        if landed is None or not isinstance(exc, Exception | Interrupted):
            raise
        log(
            f"the Hub's answer to the commit was lost, but {repo_id} now holds it "
            f"(commit {landed[:12]})"
        )
        return landed, f"{repo_url(repo_id)}/commit/{landed}", None


def _log_commit(
    repo_id: str, operations: Sequence[CommitOperation], made: bool, log: Callable[[str], None]
) -> None:
    from huggingface_hub import CommitOperationDelete

    if not made:
        log(f"{repo_id} already holds identical files: no commit was made")
        return
    removed = sum(isinstance(op, CommitOperationDelete) for op in operations)
    deleted = f", deleted {removed}" if removed else ""
    log(f"pushed {len(operations) - removed} file(s) to {repo_id}{deleted}")


def _landed_commit(
    repo_id: str,
    parent_commit: str | None,
    operations: Sequence[CommitOperation],
    token: str | None,
) -> str | None:
    """The target's new head when it holds exactly what ``operations`` write (a commit whose
    answer was lost), else None. Never raises: it only decides what to report."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    adds = [op for op in operations if isinstance(op, CommitOperationAdd)]
    deletes = {op.path_in_repo for op in operations if isinstance(op, CommitOperationDelete)}
    if len(adds) + len(deletes) != len(operations):  # a copy: not told apart from its source
        return None
    try:
        head = head_commit(repo_id, None, token)
        if head is None or head == parent_commit:
            return None
        paths = [op.path_in_repo for op in adds] + sorted(deletes)
        remote = {entry.path: entry for entry in files_at(repo_id, paths, head, token)}
        if deletes & remote.keys():
            return None
        for op in adds:
            entry = remote.get(op.path_in_repo)
            if entry is None or not _same_content(entry, op):
                return None
    except Exception:
        return None
    return head


def _same_content(entry: RepoFile, op: CommitOperationAdd) -> bool:
    """Whether a file of the target holds what an upload operation sends."""
    if entry.size != op.upload_info.size:
        return False
    if entry.lfs is not None:
        return entry.lfs.sha256 == op.upload_info.sha256.hex()
    with op.as_file() as file:
        data = file.read()
    return entry.blob_id == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
