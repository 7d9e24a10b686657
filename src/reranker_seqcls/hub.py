"""The Hub side: download an exact commit, read a target's provenance, push one atomic commit.

``HF_TOKEN``, ``HF_ENDPOINT`` and ``HF_HOME`` are honoured the way huggingface_hub defines them.
Every Hub exception becomes a one-line :class:`BadInput` (exit 2: the repo, revision or token is
wrong) or :class:`HubError` (exit 3: the Hub or network failed after the client's retries), with
tokens redacted.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import BadInput, HubError
from .files import PROVENANCE_FILE, download_patterns
from .redact import redact

Log = Callable[[str], None]
T = TypeVar("T")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# Target files the tool never deletes (the Hub manages them).
_KEEP_IN_TARGET = {".gitattributes"}


def looks_like_repo_id(text: str) -> bool:
    return bool(_REPO_ID.match(text)) and ".." not in text and not text.endswith(".")


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


@contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Translate huggingface_hub and network exceptions into one-line, token-free errors."""
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.GatedRepoError:
        raise BadInput(
            f"{what}: the repo is gated: accept its conditions on the Hub and set HF_TOKEN"
        ) from None
    except hf.RepositoryNotFoundError:
        raise BadInput(
            f"{what}: repository not found (or private and HF_TOKEN cannot read it): "
            "check the repo id and the token"
        ) from None
    except hf.RevisionNotFoundError:
        raise BadInput(f"{what}: revision not found: check --revision") from None
    except hf.RemoteEntryNotFoundError:
        raise BadInput(f"{what}: file not found in the repo") from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        detail = redact(str(exc).splitlines()[0])[:200]
        if status == 412:
            raise HubError(
                f"{what}: the target changed since this run started (another commit landed); "
                "nothing was pushed: rerun to convert against the new head"
            ) from None
        if status in (401, 403):
            raise BadInput(
                f"{what}: the Hub refused the token ({status}): set HF_TOKEN to a token with "
                "access (write access to push)"
            ) from None
        if status is not None and 400 <= status < 500:
            raise BadInput(f"{what}: the Hub refused the request ({detail})") from None
        raise HubError(
            f"{what}: the Hub failed after retries ({detail}); try again later"
        ) from None
    except hf.OfflineModeIsEnabled:
        raise HubError(f"{what}: HF_HUB_OFFLINE is set: unset it to reach the Hub") from None
    except (OSError, ConnectionError) as exc:
        raise HubError(
            f"{what}: network error ({redact(str(exc).splitlines()[0] if str(exc) else '')[:160]}"
            "): check HF_ENDPOINT and the connection"
        ) from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in _NETWORK_MODULES:
            raise HubError(
                f"{what}: network error ({type(exc).__name__}): "
                "check HF_ENDPOINT and the connection"
            ) from None
        raise


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
        patterns = [*download_patterns(include_pickle=not has_safetensors), "README.md"]
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


def identity(provenance: dict[str, Any]) -> dict[str, Any]:
    """The parts of a provenance record that decide whether a re-conversion changes anything."""
    source = provenance.get("source") or {}
    return {
        "tool_version": (provenance.get("tool") or {}).get("version"),
        "source_repo": source.get("repo_id"),
        "source_sha": source.get("commit_sha"),
        "recipe": provenance.get("recipe"),
    }


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
    fail this push instead of interleaving with it.
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
    with hub_errors(f"push to {repo_id}"):
        api.create_repo(repo_id, exist_ok=True, private=private)
        if parent_commit is None:
            # A repo created just now has an initial commit; guard against anything after it.
            parent_commit = api.model_info(repo_id).sha
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message,
            commit_description=commit_description,
            parent_commit=parent_commit,
            create_pr=create_pr,
        )
    if info.oid == parent_commit and not create_pr:
        log(f"{repo_id} already holds identical files: no commit was made")
    else:
        deleted = f", deleted {len(stale)}" if stale else ""
        log(f"pushed {len(local)} file(s) to {repo_id}{deleted}")
    return PushResult(info.oid, info.commit_url, info.pr_url, local, stale)


def repo_url(repo_id: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{repo_id}"
