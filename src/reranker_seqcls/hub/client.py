"""The Hub side: download an exact commit, read a target's provenance, push one atomic commit.

``HF_TOKEN``, ``HF_ENDPOINT`` and ``HF_HOME`` are honoured the way huggingface_hub defines them.
Every Hub exception becomes a one-line :class:`BadInput` (exit 2: the repo, revision or token is
wrong) or :class:`HubError` (exit 3: the Hub or network failed after the client's retries), with
tokens redacted.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reranker_seqcls.errors import BadInput, HubError
from reranker_seqcls.log import Log
from reranker_seqcls.names import PROVENANCE_FILE, README_FILE, download_patterns
from reranker_seqcls.redact import redact

T = TypeVar("T")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", re.ASCII)
# Target files the tool never deletes (the Hub manages them).
_KEEP_IN_TARGET = {".gitattributes"}


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` is a repo id the Hub client accepts: the client's own validator (at most
    96 characters a part, ASCII letters, digits, ``-_.``, no ``--``/``..``), and whole-string
    matching, so a trailing newline or a full-width character is no repo id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not _REPO_ID.fullmatch(text) or ".." in text or text.endswith("."):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def require_repo_id(text: str, role: str, *, or_directory: bool = False) -> None:
    """Refuse (exit 2, one line) a ``role`` ("target", "source") that is no Hub repo id; with
    ``or_directory`` the text was no local directory either."""
    if not looks_like_repo_id(text):
        what = "neither a directory nor a Hub repo id" if or_directory else "not a Hub repo id"
        fix = "give a checkpoint directory or owner/name" if or_directory else "give owner/name"
        raise BadInput(
            f"{role} {text!r} is {what} (ASCII letters, digits, '-', '_', '.'; at most 96 "
            f"characters a part): {fix}"
        )


@dataclass(frozen=True)
class Fetched:
    path: Path
    repo_id: str
    revision: str | None
    commit_sha: str


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


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Translate huggingface_hub and network exceptions into one-line, token-free errors.

    The client wraps some failures in its own exceptions (an LFS upload that failed after its
    retries is a ``RuntimeError`` raised *from* the HTTP error), so the chain of explicit causes
    (``raise … from``) is searched for the first exception that says what went wrong.
    """
    try:
        yield
    except Exception as exc:
        seen: set[int] = set()
        cause: BaseException | None = exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            translated = _translate(what, cause)
            if translated is not None:
                raise translated from None
            cause = cause.__cause__
        raise


def _translate(what: str, exc: BaseException) -> BadInput | HubError | None:
    """The one-line error for a Hub or network exception; None for anything else."""
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.GatedRepoError):
        return BadInput(
            f"{what}: the repo is gated: accept its conditions on the Hub and set HF_TOKEN"
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return BadInput(
            f"{what}: repository not found (or private and HF_TOKEN cannot read it): "
            "check the repo id and the token"
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return BadInput(f"{what}: revision not found: check --revision")
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return BadInput(f"{what}: file not found in the repo")
    if isinstance(exc, hf.HFValidationError):
        return BadInput(f"{what}: the Hub client refused the name ({_first_line(exc)[:160]})")
    if isinstance(exc, hf.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        detail = _first_line(exc)[:200]
        if status == 412:
            return HubError(
                f"{what}: the target changed since this run started (another commit landed); "
                "nothing was pushed: rerun to convert against the new head"
            )
        if status in (401, 403):
            return BadInput(
                f"{what}: the Hub refused the token ({status}): set HF_TOKEN to a token with "
                "access (write access to push)"
            )
        if status is not None and 400 <= status < 500:
            return BadInput(f"{what}: the Hub refused the request ({detail})")
        return HubError(f"{what}: the Hub failed after retries ({detail}); try again later")
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return HubError(f"{what}: HF_HUB_OFFLINE is set: unset it to reach the Hub")
    if isinstance(exc, (OSError, ConnectionError)):
        return HubError(
            f"{what}: network error ({_first_line(exc)[:160]}): check HF_ENDPOINT and the "
            "connection"
        )
    if type(exc).__module__.split(".")[0] in _NETWORK_MODULES:
        return HubError(
            f"{what}: network error ({type(exc).__name__}): check HF_ENDPOINT and the connection"
        )
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return redact(text.splitlines()[0]) if text.strip() else ""


RETRY_DELAYS = (1.0, 2.0, 4.0)


def with_retries(call: Callable[[], T]) -> T:
    """Retry an idempotent read on 5xx answers and dropped connections.

    huggingface_hub retries downloads and uploads itself, but not ``model_info`` (the revision
    and head lookups a run starts with).
    """
    from huggingface_hub import errors as hf

    for delay in (*RETRY_DELAYS, None):
        try:
            return call()
        except hf.HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if delay is None or status is None or status < 500:
                raise
        except (ConnectionError, OSError) as exc:
            if delay is None or isinstance(exc, hf.HfHubHTTPError):
                raise
        except Exception as exc:
            if delay is None or type(exc).__module__.split(".")[0] not in _NETWORK_MODULES:
                raise
        time.sleep(delay)
    raise AssertionError("unreachable")


_NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "h11")


def _api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def resolve_commit(repo_id: str, revision: str | None, token: str | None) -> str:
    with hub_errors(f"source {repo_id}" + (f"@{revision}" if revision else "")):
        return with_retries(lambda: _api(token).model_info(repo_id, revision=revision).sha)


def fetch(
    repo_id: str,
    revision: str | None,
    *,
    token: str | None,
    log: Log,
    commit_sha: str | None = None,
) -> Fetched:
    """Download exactly what a conversion needs from one commit of ``repo_id``."""
    from huggingface_hub import snapshot_download

    sha = commit_sha or resolve_commit(repo_id, revision, token)
    with hub_errors(f"source {repo_id}@{sha[:12]}"):
        files = _api(token).list_repo_files(repo_id, revision=sha)
        has_safetensors = any(f.endswith(".safetensors") for f in files)
        patterns = [*download_patterns(include_pickle=not has_safetensors), README_FILE]
        log(f"downloading {repo_id}@{sha[:12]} ({'safetensors' if has_safetensors else 'pickle'})")
        path = snapshot_download(repo_id, revision=sha, allow_patterns=patterns, token=token)
    return Fetched(Path(path), repo_id, revision, sha)


@dataclass(frozen=True)
class TargetState:
    exists: bool
    head: str | None
    provenance: dict[str, Any] | None


def target_state(repo_id: str, token: str | None) -> TargetState:
    """The target's head commit and recorded provenance (None where absent)."""
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    api = _api(token)
    with hub_errors(f"target {repo_id}"):
        try:
            head = with_retries(lambda: api.model_info(repo_id).sha)
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
    except ValueError:
        provenance = None
    return TargetState(True, head, provenance if isinstance(provenance, dict) else None)


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
    log: Log,
) -> PushResult:
    """One commit holding every file of ``folder``, deleting target files the folder lacks.

    ``parent_commit`` (the head read when the run started) makes a concurrent writer's commit
    fail this push instead of interleaving with it; None means the target does not exist yet.
    A target this call creates is deleted again when the commit fails. When the commit call
    fails without an answer (a dropped connection, a 5xx after the commit was applied), the
    target's head is compared with what the commit wrote, and a commit that landed is reported
    as pushed, so that this run and a rerun agree.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    local = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    api = _api(token)
    remote: list[str] = []
    if parent_commit is not None:
        with hub_errors(f"target {repo_id}"):
            remote = api.list_repo_files(repo_id, revision=parent_commit)
    stale = sorted(set(remote) - set(local) - _KEEP_IN_TARGET)
    if dry_run:
        log(f"dry run: would commit {len(local)} file(s) to {repo_id}: {', '.join(local)}")
        if stale:
            log(f"dry run: would delete {', '.join(stale)}")
        return PushResult(None, None, None, local, stale)
    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name)) for name in local
    ]
    operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
    created = False
    if parent_commit is None:  # a new target: created now that the commit is ready to go
        with hub_errors(f"push to {repo_id}"):
            created = _create_target(api, repo_id, private)
    try:
        with hub_errors(f"push to {repo_id}"):
            if parent_commit is None:
                # A repo created just now has an initial commit; guard against anything after it.
                parent_commit = with_retries(lambda: api.model_info(repo_id).sha)
            info = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message,
                commit_description=commit_description,
                parent_commit=parent_commit,
                create_pr=create_pr,
            )
        sha, commit_url, pr_url = info.oid, info.commit_url, info.pr_url
    except BaseException as exc:
        # The commit call failed, or its answer was lost after the Hub applied it: look at the
        # target before reporting, so a rerun and this run tell the same story.
        landed = None if create_pr else _landed_commit(api, repo_id, parent_commit, operations)
        if landed is None and created:
            _delete_created(api, repo_id, log)
        if landed is None or not isinstance(exc, Exception):
            raise
        log(
            f"the Hub's answer to the commit was lost, but {repo_id} now holds it "
            f"(commit {landed[:12]})"
        )
        sha, commit_url, pr_url = landed, f"{repo_url(repo_id)}/commit/{landed}", None
    committed = create_pr or sha != parent_commit
    if not committed:
        log(f"{repo_id} already holds identical files: no commit was made")
    else:
        deleted = f", deleted {len(stale)}" if stale else ""
        log(f"pushed {len(local)} file(s) to {repo_id}{deleted}")
    return PushResult(sha, commit_url, pr_url, local, stale, committed)


def _create_target(api: Any, repo_id: str, private: bool) -> bool:
    """Create the target repo; False when it exists already (created since the run looked)."""
    from huggingface_hub import errors as hf

    try:
        api.create_repo(repo_id, private=private)
    except hf.HfHubHTTPError as exc:
        if exc.response is not None and exc.response.status_code == 409:
            return False
        raise
    return True


def _delete_created(api: Any, repo_id: str, log: Log) -> None:
    """Remove the target this run created for a push that failed: no empty repo is left."""
    try:
        api.delete_repo(repo_id)
    except Exception as exc:  # best effort: the push's own error is what gets reported
        log(f"warning: could not remove {repo_id}, created by this run ({_first_line(exc)[:120]})")
    else:
        log(f"removed {repo_id}: this run created it, and the push failed")


def _landed_commit(
    api: Any, repo_id: str, parent_commit: str | None, operations: list[Any]
) -> str | None:
    """The target's new head when it holds exactly what ``operations`` write (a commit whose
    answer was lost), else None. Never raises: it only decides what to report."""
    from huggingface_hub import CommitOperationAdd

    adds = [op for op in operations if isinstance(op, CommitOperationAdd)]
    deletes = {op.path_in_repo for op in operations if not isinstance(op, CommitOperationAdd)}
    try:
        head = with_retries(lambda: api.model_info(repo_id).sha)
        if head is None or head == parent_commit:
            return None
        paths = [op.path_in_repo for op in adds] + sorted(deletes)
        found = with_retries(lambda: api.get_paths_info(repo_id, paths, revision=head))
        remote = {entry.path: entry for entry in found}
        if deletes & remote.keys():
            return None
        for op in adds:
            entry = remote.get(op.path_in_repo)
            if entry is None or not _same_content(entry, op):
                return None
    except Exception:
        return None
    return head


def _same_content(entry: Any, op: Any) -> bool:
    """Whether a file of the target (``RepoFile``) holds what an upload operation sends."""
    if getattr(entry, "size", None) != op.upload_info.size:
        return False
    lfs = getattr(entry, "lfs", None)
    if lfs is not None:
        return lfs.sha256 == op.upload_info.sha256.hex()
    data = Path(op.path_or_fileobj).read_bytes()
    return entry.blob_id == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def repo_url(repo_id: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{repo_id}"
