"""The loopback Hub against the REAL ``huggingface_hub`` client.

``huggingface_hub`` reads ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` when it is imported, and this
pytest process may already have imported it (transformers does), so every client call runs in a
fresh subprocess started with the ``hub_env`` environment (see ``_client``). The server runs in
this process, so the tests seed it, inject faults and inspect its state and traffic directly.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import textwrap
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.loopback_hub.fixtures import (
    BAD_TOKEN,
    OTHER_TOKEN,
    TEST_ORG,
    TEST_READ_TOKEN,
    TEST_USER,
    make_hub_env,
    make_server,
    run_python,
)
from tests.loopback_hub.server import CHUNK_SIZE, LoopbackHubServer

_MARK = "@@RESULT@@"

# Prepended to every client script: `result` is printed as JSON at the end, and `attempt(fn)`
# returns what the call raised as {"type", "status", "message"} (or {"ok": value}).
_PRELUDE = """
import json, os
from huggingface_hub import (
    CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download, snapshot_download,
)
from huggingface_hub import errors

api = HfApi()
result = {}

def attempt(fn):
    try:
        return {"ok": fn()}
    except Exception as exc:
        response = getattr(exc, "response", None)
        return {
            "type": type(exc).__name__,
            "status": getattr(response, "status_code", None),
            "message": str(exc),
        }

def files_in(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            if not rel.startswith(".cache/"):
                out[rel] = open(full, "rb").read().decode("latin-1")
    return out
"""

CONFIG = b'{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"}'
WEIGHTS = bytes(range(256)) * 8  # 2 KiB, *.safetensors => LFS
BIN = b"\x00pickle" * 100  # *.bin => LFS, must never be downloaded when filtered out
TOKENIZER = b'{"version": "1.0"}'
CARD = "---\nlibrary_name: transformers\npipeline_tag: text-ranking\n---\n# Tiny\n"


def _client(env: dict[str, str], code: str, *, timeout: float = 60) -> dict[str, Any]:
    """Run ``code`` with the real client in a subprocess; return its ``result`` dict."""
    script = _PRELUDE + textwrap.dedent(code) + f"\nprint({_MARK!r} + json.dumps(result))\n"
    proc = run_python(script, env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    assert proc.returncode == 0 and lines, (
        f"client failed (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}"
    )
    return json.loads(lines[-1][len(_MARK) :])


def _seed_model(hub: LoopbackHubServer, repo_id: str = "acme/tiny-reranker") -> str:
    return hub.seed_repo(
        repo_id,
        {
            "config.json": CONFIG,
            "model.safetensors": WEIGHTS,
            "pytorch_model.bin": BIN,
            "tokenizer/tokenizer.json": TOKENIZER,
            "README.md": CARD,
        },
        message="Add tiny model",
    )


# --------------------------------------------------------------------------------- downloads


def test_snapshot_download_branch_with_allow_patterns(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    sha = _seed_model(hub_server)
    result = _client(
        hub_env,
        """
        folder = snapshot_download(
            "acme/tiny-reranker", revision="main", allow_patterns=["*.json", "*.safetensors"]
        )
        result["folder"] = os.path.basename(folder)
        result["files"] = files_in(folder)
        """,
    )
    assert result["folder"] == sha  # snapshots/<commit sha>
    assert sorted(result["files"]) == [
        "config.json",
        "model.safetensors",
        "tokenizer/tokenizer.json",
    ]
    assert result["files"]["model.safetensors"].encode("latin-1") == WEIGHTS
    served = hub_server.downloaded_files("acme/tiny-reranker")
    assert served == {
        "config.json": len(CONFIG),
        "model.safetensors": len(WEIGHTS),
        "tokenizer/tokenizer.json": len(TOKENIZER),
    }
    assert hub_server.request_count(path_contains=".bin") == 0  # not even a HEAD
    assert hub_server.bytes_served(path_contains="pytorch_model.bin") == 0
    stats = hub_server.stats_by_path()
    assert stats[f"/acme/tiny-reranker/resolve/{sha}/model.safetensors"].methods == {
        "HEAD": 1,
        "GET": 1,
    }


def test_snapshot_download_at_commit_sha(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    old = _seed_model(hub_server)
    hub_server.commit_files("acme/tiny-reranker", {"config.json": b"{}"}, message="Break config")
    result = _client(
        hub_env,
        f"""
        folder = snapshot_download("acme/tiny-reranker", revision="{old}", allow_patterns="*.json")
        result["config"] = open(os.path.join(folder, "config.json"), "rb").read().decode()
        """,
    )
    assert result["config"].encode() == CONFIG
    # A 40-hex revision is immutable: the client lists the tree at it, without /revision/.
    assert hub_server.request_count(path_contains="/revision/") == 0
    assert hub_server.request_count(path_contains=f"/tree/{old}") == 1
    assert hub_server.downloaded_files() == {
        "config.json": len(CONFIG),
        "tokenizer/tokenizer.json": len(TOKENIZER),
    }


def test_model_info_sha_and_card_data(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    first = _seed_model(hub_server)
    second = hub_server.commit_files("acme/tiny-reranker", {"extra.txt": b"x"}, message="More")
    result = _client(
        hub_env,
        f"""
        info = api.model_info("acme/tiny-reranker")
        result["sha"] = info.sha
        result["old"] = api.model_info("acme/tiny-reranker", revision="{first}").sha
        result["siblings"] = sorted(s.rfilename for s in info.siblings)
        result["library"] = info.library_name
        result["pipeline"] = info.pipeline_tag
        blobs = api.model_info("acme/tiny-reranker", files_metadata=True).siblings
        result["lfs"] = {{s.rfilename: s.lfs.sha256 if s.lfs else None for s in blobs}}
        """,
    )
    assert result["sha"] == second == hub_server.head_sha("acme/tiny-reranker")
    assert result["old"] == first
    assert result["siblings"] == hub_server.list_files("acme/tiny-reranker")
    assert result["library"] == "transformers"
    assert result["pipeline"] == "text-ranking"
    weights = hub_server.get_file("acme/tiny-reranker", "model.safetensors")
    assert result["lfs"]["model.safetensors"] == weights.sha256
    assert result["lfs"]["config.json"] is None


def test_tree_and_commit_listing_are_paged(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    _seed_model(hub_server)
    for i in range(3):
        hub_server.commit_files("acme/tiny-reranker", {f"f{i}.txt": b"%d" % i}, message=f"c{i}")
    hub_server.tree_page_size = 2
    hub_server.commits_page_size = 2
    result = _client(
        hub_env,
        """
        result["files"] = sorted(api.list_repo_files("acme/tiny-reranker"))
        result["titles"] = [c.title for c in api.list_repo_commits("acme/tiny-reranker")]
        """,
    )
    assert result["files"] == hub_server.list_files("acme/tiny-reranker")
    assert result["titles"] == ["c2", "c1", "c0", "Add tiny model", "initial commit"]
    assert [c.title for c in hub_server.list_commits("acme/tiny-reranker")] == result["titles"]
    assert hub_server.request_count(path_contains="/tree/") > 1


# ----------------------------------------------------------------------------------- uploads


def test_create_repo_private_exist_ok(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    result = _client(
        hub_env,
        f"""
        url = api.create_repo("{TEST_USER}/private-model", private=True, exist_ok=True)
        again = api.create_repo("{TEST_USER}/private-model", private=True, exist_ok=True)
        result["urls"] = [url.repo_id, again.repo_id]
        result["conflict"] = attempt(lambda: api.create_repo("{TEST_USER}/private-model"))
        result["org"] = api.create_repo("{TEST_ORG}/shared").repo_id
        result["foreign"] = attempt(lambda: api.create_repo("somebody-else/model"))
        result["private"] = api.model_info("{TEST_USER}/private-model").private
        """,
    )
    assert result["urls"] == [f"{TEST_USER}/private-model"] * 2
    assert result["conflict"]["status"] == 409
    assert result["org"] == f"{TEST_ORG}/shared"
    assert result["foreign"]["status"] == 403
    assert result["private"] is True
    assert hub_server.is_private(f"{TEST_USER}/private-model")
    # Repos created over HTTP start, like on the Hub, with an "initial commit" of .gitattributes.
    assert hub_server.list_files(f"{TEST_USER}/private-model") == [".gitattributes"]


def test_create_commit_regular_lfs_and_deletions(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    repo = f"{TEST_USER}/converted"
    hub_server.seed_repo(repo, {"old/a.txt": b"a", "old/b.txt": b"b", "stale.json": b"{}"})
    parent = hub_server.head_sha(repo)
    result = _client(
        hub_env,
        f"""
        info = api.create_commit(
            "{repo}",
            operations=[
                CommitOperationAdd("config.json", {CONFIG!r}),
                CommitOperationAdd("model.safetensors", {WEIGHTS!r}),
                CommitOperationAdd("README.md", b"---\\nlicense: mit\\n---\\n# Converted\\n"),
                CommitOperationDelete("stale.json"),
                CommitOperationDelete("old/"),
            ],
            commit_message="Convert to seqcls",
            commit_description="Converted by the test suite",
            parent_commit="{parent}",
        )
        result["oid"] = info.oid
        result["url"] = info.commit_url
        # Same content again: the client skips the no-op additions (preupload returns the oid).
        result["noop"] = api.create_commit(
            "{repo}", operations=[CommitOperationAdd("config.json", {CONFIG!r})],
            commit_message="noop",
        ).oid
        """,
    )
    head = hub_server.head_sha(repo)
    assert result["oid"] == head == result["noop"]
    assert result["url"].endswith(f"/{repo}/commit/{head}")
    assert hub_server.list_files(repo) == ["README.md", "config.json", "model.safetensors"]
    weights = hub_server.get_file(repo, "model.safetensors")
    assert weights.lfs and weights.data == WEIGHTS
    assert not hub_server.get_file(repo, "config.json").lfs
    commit = hub_server.get_commit(repo)
    assert (commit.title, commit.message, commit.author) == (
        "Convert to seqcls",
        "Converted by the test suite",
        TEST_USER,
    )
    assert commit.parents == (parent,)
    # The LFS file went through the batch API and one PUT; the README through validate-yaml.
    assert hub_server.request_count(path_contains=".git/info/lfs/objects/batch") == 1
    assert hub_server.request_count(path_contains="/_lfs/upload/", method="PUT") == 1
    assert hub_server.bytes_received(path_contains="/_lfs/upload/") == len(WEIGHTS)
    assert hub_server.request_count(path_contains="/api/validate-yaml") == 1


def test_invalid_model_card_yaml_is_refused_before_upload(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    repo = f"{TEST_USER}/card"
    hub_server.seed_repo(repo, {"config.json": CONFIG})
    result = _client(
        hub_env,
        f"""
        result["err"] = attempt(lambda: api.upload_file(
            path_or_fileobj=b"---\\nlicense: [unclosed\\n---\\n", path_in_repo="README.md",
            repo_id="{repo}",
        ))
        """,
    )
    assert result["err"]["type"] == "ValueError"
    assert "Invalid metadata in README.md" in result["err"]["message"]
    assert hub_server.request_count(path_contains="/commit/") == 0


def test_parent_commit_conflict_is_refused_with_412(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    repo = f"{TEST_USER}/race"
    stale = hub_server.seed_repo(repo, {"config.json": CONFIG})
    head = hub_server.commit_files(repo, {"other.txt": b"concurrent"}, message="Concurrent run")
    result = _client(
        hub_env,
        f"""
        result["err"] = attempt(lambda: api.create_commit(
            "{repo}", operations=[CommitOperationAdd("model.safetensors", {WEIGHTS!r})],
            commit_message="Mine", parent_commit="{stale}",
        ))
        result["short"] = api.create_commit(
            "{repo}", operations=[CommitOperationAdd("x.txt", b"x")],
            commit_message="Short parent", parent_commit="{head[:7]}",
        ).oid
        """,
    )
    assert result["err"]["type"] == "HfHubHTTPError"
    assert result["err"]["status"] == 412
    assert "A commit has happened since" in result["err"]["message"]
    assert hub_server.get_commit(repo).title == "Short parent"
    assert hub_server.get_commit(repo).parents == (head,)
    assert "model.safetensors" not in hub_server.list_files(repo)


def test_create_pr_opens_pr_refs(hub_server: LoopbackHubServer, hub_env: dict[str, str]) -> None:
    repo = "acme/upstream"
    hub_server.add_org("acme", [TEST_USER])
    main = hub_server.seed_repo(repo, {"config.json": CONFIG})
    result = _client(
        hub_env,
        f"""
        first = api.create_commit(
            "{repo}", operations=[CommitOperationAdd("model.safetensors", {WEIGHTS!r})],
            commit_message="Add seqcls weights", create_pr=True,
        )
        second = api.create_commit(
            "{repo}", operations=[CommitOperationDelete("config.json")],
            commit_message="Second PR", create_pr=True,
        )
        result["prs"] = [first.pr_revision, second.pr_revision, first.pr_num]
        result["pr_url"] = first.pr_url
        result["pr_files"] = sorted(api.list_repo_files("{repo}", revision="refs/pr/1"))
        path = hf_hub_download("{repo}", "model.safetensors", revision=first.pr_revision)
        result["pr_weights"] = open(path, "rb").read() == {WEIGHTS!r}
        refs = api.list_repo_refs("{repo}", include_pull_requests=True)
        result["refs"] = sorted(r.ref for r in refs.pull_requests)
        """,
    )
    assert result["prs"] == ["refs/pr/1", "refs/pr/2", 1]
    assert result["pr_url"].endswith(f"/{repo}/discussions/1")
    assert result["pr_files"] == ["config.json", "model.safetensors"]
    assert result["pr_weights"] is True
    assert result["refs"] == ["refs/pr/1", "refs/pr/2"]
    assert hub_server.head_sha(repo) == main  # main untouched
    assert hub_server.list_files(repo, "refs/pr/2") == []
    assert hub_server.get_commit(repo, "refs/pr/1").parents == (main,)


# ------------------------------------------------------------------------- fault injection


def test_server_errors_are_retried_by_the_client(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    _seed_model(hub_server)
    tree_fault = hub_server.fail_nth(1, 500, path_contains="/tree/")
    preupload_fault = hub_server.fail_nth(1, 503, path_contains="/preupload/")
    result = _client(
        hub_env,
        f"""
        folder = snapshot_download("acme/tiny-reranker", allow_patterns="*.json")
        result["files"] = sorted(files_in(folder))
        api.create_repo("{TEST_USER}/retry")
        result["oid"] = api.create_commit(
            "{TEST_USER}/retry", operations=[CommitOperationAdd("w.safetensors", b"w")],
            commit_message="retried",
        ).oid
        """,
    )
    assert result["files"] == ["config.json", "tokenizer/tokenizer.json"]
    assert result["oid"] == hub_server.head_sha(f"{TEST_USER}/retry")
    assert (tree_fault.triggered, preupload_fault.triggered) == (1, 1)
    assert hub_server.request_count(path_contains="/tree/", status=500) == 1
    assert hub_server.request_count(path_contains="/tree/", status=200) == 1
    assert hub_server.request_count(path_contains="/preupload/") == 2


def test_dropped_connection_mid_upload(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    repo = f"{TEST_USER}/flaky"
    before = hub_server.seed_repo(repo, {"config.json": CONFIG})
    # The LFS PUT is cut after 1 KiB: http_backoff retries it and the commit lands.
    put_fault = hub_server.drop_nth(1, path_contains="/_lfs/upload/", after_bytes=1024)
    # The commit POST is cut mid-body: it is not retried, so the client fails.
    commit_fault = hub_server.drop_nth(2, path_contains="/commit/main", after_bytes=64)
    result = _client(
        hub_env,
        f"""
        ok = api.create_commit(
            "{repo}", operations=[CommitOperationAdd("model.safetensors", {WEIGHTS!r})],
            commit_message="first",
        )
        result["ok"] = ok.oid
        result["err"] = attempt(lambda: api.create_commit(
            "{repo}", operations=[CommitOperationAdd("more.safetensors", {BIN!r})],
            commit_message="cut", parent_commit=ok.oid,
        ))
        """,
    )
    assert put_fault.triggered == 1 and commit_fault.triggered == 1
    assert result["ok"] == hub_server.head_sha(repo)
    assert hub_server.get_commit(repo).parents == (before,)
    assert hub_server.read_file(repo, "model.safetensors") == WEIGHTS
    assert result["err"]["type"] in ("RemoteProtocolError", "ReadError", "WriteError")
    # Nothing of the cut commit reached the branch.
    assert [c.title for c in hub_server.list_commits(repo)] == [
        "first",
        "Seed repo",
        "initial commit",
    ]
    assert "more.safetensors" not in hub_server.list_files(repo)


def test_download_cut_mid_body_is_fetched_again(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    _seed_model(hub_server)
    fault = hub_server.drop_nth(
        1, path_contains="model.safetensors", method="GET", during="response", after_bytes=500
    )
    result = _client(
        hub_env,
        """
        path = hf_hub_download("acme/tiny-reranker", "model.safetensors")
        result["size"] = os.path.getsize(path)
        """,
    )
    assert fault.triggered == 1
    assert result["size"] == len(WEIGHTS)
    assert hub_server.downloaded_files() == {"model.safetensors": 500 + len(WEIGHTS)}


# ------------------------------------------------------------------------ errors and auth


def test_errors_map_to_client_exceptions(
    hub_server: LoopbackHubServer, hub_env: dict[str, str]
) -> None:
    _seed_model(hub_server)
    hub_server.seed_repo("gate-keeper/gated", {"config.json": CONFIG}, gated="auto")
    result = _client(
        hub_env,
        f"""
        result["repo"] = attempt(lambda: api.model_info("acme/missing"))
        result["repo_dl"] = attempt(lambda: snapshot_download("acme/missing"))
        result["revision"] = attempt(lambda: api.model_info("acme/tiny-reranker", revision="v9"))
        result["revision_dl"] = attempt(
            lambda: snapshot_download("acme/tiny-reranker", revision="v9")
        )
        result["entry"] = attempt(lambda: hf_hub_download("acme/tiny-reranker", "missing.bin"))
        result["gated"] = attempt(lambda: hf_hub_download("gate-keeper/gated", "config.json"))
        result["gated_info"] = attempt(lambda: api.model_info("gate-keeper/gated").gated)
        result["whoami"] = attempt(lambda: api.whoami(token="{BAD_TOKEN}"))
        result["bad_token"] = attempt(
            lambda: HfApi(token="{BAD_TOKEN}").model_info("acme/tiny-reranker")
        )
        result["read_only"] = attempt(
            lambda: HfApi(token="{TEST_READ_TOKEN}").create_repo("{TEST_USER}/nope")
        )
        result["exists"] = [
            api.repo_exists("acme/tiny-reranker"), api.repo_exists("acme/missing"),
            api.file_exists("acme/tiny-reranker", "config.json"),
            api.file_exists("acme/tiny-reranker", "nope.json"),
        ]
        """,
    )

    def kind(key: str) -> tuple[str, int | None]:
        return result[key].get("type"), result[key].get("status")

    assert kind("repo") == ("RepositoryNotFoundError", 404)
    assert kind("repo_dl") == ("RepositoryNotFoundError", 404)
    assert kind("revision") == ("RevisionNotFoundError", 404)
    assert kind("revision_dl") == ("RevisionNotFoundError", 404)
    assert kind("entry") == ("RemoteEntryNotFoundError", 404)
    assert kind("gated") == ("GatedRepoError", 403)
    assert result["gated_info"] == {"ok": "auto"}
    assert kind("whoami") == ("HfHubHTTPError", 401)
    assert "Invalid user token" in result["whoami"]["message"]
    assert kind("bad_token") == ("HfHubHTTPError", 401)
    assert kind("read_only") == ("HfHubHTTPError", 403)
    assert result["exists"] == [True, False, True, False]


def test_private_repo_needs_a_token(
    hub_server: LoopbackHubServer,
    hub_env: dict[str, str],
    hub_env_anonymous: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = f"{TEST_USER}/secret"
    hub_server.seed_repo(repo, {"config.json": CONFIG}, private=True)
    hub_server.seed_repo("gate-keeper/gated", {"config.json": CONFIG}, gated="manual")
    code = f"""
        result["info"] = attempt(lambda: api.model_info("{repo}").private)
        result["snapshot"] = attempt(lambda: os.path.basename(snapshot_download("{repo}")))
        result["download"] = attempt(lambda: hf_hub_download("{repo}", "config.json") and True)
        result["gated"] = attempt(lambda: hf_hub_download("gate-keeper/gated", "config.json"))
        result["upload"] = attempt(lambda: api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="{repo}"
        ))
    """
    anonymous = _client(hub_env_anonymous, code)
    for key in ("info", "snapshot", "download"):
        assert (anonymous[key]["type"], anonymous[key]["status"]) == (
            "RepositoryNotFoundError",
            401,
        ), key
    assert (anonymous["gated"]["type"], anonymous["gated"]["status"]) == ("GatedRepoError", 401)
    assert anonymous["upload"]["status"] == 401

    other = _client(make_hub_env(hub_server.url, tmp_path / "other", token=OTHER_TOKEN), code)
    assert (other["info"]["type"], other["info"]["status"]) == ("RepositoryNotFoundError", 404)
    assert (other["gated"]["type"], other["gated"]["status"]) == ("GatedRepoError", 403)

    hub_server.grant_access("gate-keeper/gated", TEST_USER)
    head = hub_server.head_sha(repo)
    owner = _client(hub_env, code)
    assert owner["info"] == {"ok": True}
    assert owner["snapshot"] == {"ok": head}
    assert owner["download"] == {"ok": True}
    assert "ok" in owner["gated"]
    assert "ok" in owner["upload"]
    assert hub_server.read_file(repo, "x.txt") == b"x"


# ------------------------------------------------------------------- server-side behaviour


def test_python_api_state_helpers() -> None:
    with LoopbackHubServer(tokens={"t": "u"}) as hub:
        first = hub.seed_repo("u/m", {"a.txt": b"1", "w/x.safetensors": b"\x00" * 10})
        second = hub.commit_files("u/m", {"b.txt": "two"}, delete=["w/"], message="Two\n\nbody")
        hub.create_branch("u/m", "dev", revision=first)
        hub.create_tag("u/m", "v1", revision=first)
        assert hub.head_sha("u/m") == second and hub.head_sha("u/m", "dev") == first
        assert hub.head_sha("u/m", "refs/tags/v1") == first == hub.head_sha("u/m", first[:8])
        assert hub.list_files("u/m") == ["a.txt", "b.txt"]
        assert hub.list_files("u/m", "v1") == ["a.txt", "w/x.safetensors"]
        assert hub.get_file("u/m", "w/x.safetensors", "dev").lfs
        assert hub.read_file("u/m", "b.txt") == b"two"
        commits = hub.list_commits("u/m")
        assert [(c.title, c.message) for c in commits] == [
            ("Two", "body"),
            ("Seed repo", ""),
            ("initial commit", ""),
        ]
        assert len(commits[0].id) == 40 and commits[0].parents == (first,)
        assert hub.refs("u/m") == {
            "refs/heads/main": second,
            "refs/heads/dev": first,
            "refs/tags/v1": first,
        }
        hub.reset()
        assert not hub.repo_exists("u/m") and hub.requests == []


def test_fault_counting_and_raw_http() -> None:
    with LoopbackHubServer() as hub:
        hub.seed_repo("u/m", {"a.txt": b"hello"})
        url = f"{hub.url}/u/m/resolve/main/a.txt"
        fault = hub.fail_nth(2, 429, path_contains="a.txt", times=2, headers={"Retry-After": "1"})
        statuses = []
        for _ in range(5):
            try:
                with urllib.request.urlopen(url) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as err:
                with err:
                    statuses.append(err.code)
                    assert err.headers["Retry-After"] == "1"
        assert statuses == [200, 429, 429, 200, 200]
        assert (fault.seen, fault.triggered) == (5, 2)
        ranged = urllib.request.Request(url, headers={"Range": "bytes=1-3"})
        with urllib.request.urlopen(ranged) as response:
            assert response.status == 206 and response.read() == b"ell"
            assert response.headers["Content-Range"] == "bytes 1-3/5"
        assert hub.downloaded_files() == {"a.txt": 3 * 5 + 3}  # the 429s served no file bytes
        assert hub.request_count(path_contains="a.txt", status=429) == 2
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{hub.url}/api/models/u/missing")
        # Anonymous callers get 401 for a missing (or private) repo, like on the Hub.
        with info.value as err:
            assert err.code == 401 and err.headers["X-Error-Code"] == "RepoNotFound"


def test_stop_closes_idle_keep_alive_connections() -> None:
    before = set(threading.enumerate())
    hub = LoopbackHubServer().start()
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=5)
    conn.request("GET", "/api/models")
    assert conn.getresponse().read() == b"[]"  # connection stays open (HTTP/1.1 keep-alive)
    assert len(set(threading.enumerate()) - before) == 2  # serving thread + connection handler
    hub.stop()
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before
    conn.close()


# ----------------------------------------------------------------------- on-disk blob store

MIB = 1024 * 1024
BIG = 20 * MIB + 123  # more than CHUNK_SIZE and than the 16 MiB streaming bound


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def blob_hub(tmp_path: Path) -> Iterator[LoopbackHubServer]:
    """A server of its own whose LFS objects live in ``tmp_path/blobs``."""
    server = make_server(blob_dir=tmp_path / "blobs").start()
    try:
        yield server
    finally:
        server.stop()


def test_blob_store_seeds_from_a_path_and_serves_downloads_and_ranges(
    blob_hub: LoopbackHubServer, tmp_path: Path
) -> None:
    assert BIG > 16 * MIB > CHUNK_SIZE
    data = _random_bytes(BIG, seed=0)
    sha = hashlib.sha256(data).hexdigest()
    source = tmp_path / "source.safetensors"
    source.write_bytes(data)
    blob_hub.seed_repo("acme/big", {"model.safetensors": source, "config.json": CONFIG})
    # The same object again, as a Path and as bytes, in another repo: still stored once.
    blob_hub.seed_repo("acme/copy", {"a.safetensors": source, "b.bin": data})
    weights = blob_hub.get_file("acme/big", "model.safetensors")
    assert weights.lfs and weights.content is None and weights.size == BIG
    assert weights.blob == tmp_path / "blobs" / sha and weights.sha256 == sha
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == [sha]
    assert os.stat(source).st_nlink == 2  # hard-linked: same filesystem
    assert blob_hub.get_file("acme/copy", "b.bin").blob == weights.blob
    assert blob_hub.get_file("acme/big", "config.json").content == CONFIG  # small: in memory
    assert weights.read_range(10, 20) == data[10:20]
    assert b"".join(weights.iter_chunks()) == data == blob_hub.read_file("acme/big", weights.path)
    assert all(len(c) <= CHUNK_SIZE for c in weights.iter_chunks())

    env = make_hub_env(blob_hub.url, tmp_path / "hf_home")
    result = _client(
        env,
        """
        import hashlib
        path = hf_hub_download("acme/big", "model.safetensors")
        blob = open(path, "rb").read()
        result["sha"] = hashlib.sha256(blob).hexdigest()
        result["size"] = len(blob)
        """,
    )
    assert (result["sha"], result["size"]) == (sha, BIG)
    assert blob_hub.downloaded_files("acme/big") == {"model.safetensors": BIG}

    url = f"{blob_hub.url}/acme/big/resolve/main/model.safetensors"
    last = BIG - 1
    for spec, start, end in [
        ("bytes=0-7", 0, 7),  # a safetensors header length
        (f"bytes={CHUNK_SIZE - 5}-{2 * CHUNK_SIZE + 5}", CHUNK_SIZE - 5, 2 * CHUNK_SIZE + 5),
        ("bytes=-100", BIG - 100, last),
        (f"bytes={BIG - 3}-", BIG - 3, last),
    ]:
        request = urllib.request.Request(url, headers={"Range": spec})
        with urllib.request.urlopen(request) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == f"bytes {start}-{end}/{BIG}"
            assert response.read() == data[start : end + 1]
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(url, headers={"Range": f"bytes={BIG}-"}))
    with info.value as refused:
        assert refused.code == 416 and refused.headers["Content-Range"] == f"bytes */{BIG}"
    blob_hub.reset()
    assert list((tmp_path / "blobs").iterdir()) == []


def test_blob_store_receives_uploads_once_per_object(
    blob_hub: LoopbackHubServer, tmp_path: Path
) -> None:
    big = _random_bytes(BIG, seed=1)
    small = b"\x01weights" * 10
    work = tmp_path / "work"
    work.mkdir()
    (work / "big.safetensors").write_bytes(big)
    repo = f"{TEST_USER}/uploaded"
    env = make_hub_env(blob_hub.url, tmp_path / "hf_home")
    result = _client(
        env,
        f"""
        api.create_repo("{repo}")
        api.upload_file(
            path_or_fileobj="{work / "big.safetensors"}", path_in_repo="model.safetensors",
            repo_id="{repo}",
        )
        result["oid"] = api.create_commit(
            "{repo}",
            operations=[
                CommitOperationAdd("copy/model.safetensors", "{work / "big.safetensors"}"),
                CommitOperationAdd("extra.bin", {small!r}),
                CommitOperationAdd("notes.txt", b"not lfs"),
            ],
            commit_message="more",
        ).oid
        """,
        timeout=120,
    )
    assert result["oid"] == blob_hub.head_sha(repo)
    big_sha, small_sha = hashlib.sha256(big).hexdigest(), hashlib.sha256(small).hexdigest()
    stored = blob_hub.get_file(repo, "model.safetensors")
    assert stored.blob is not None and stored.content is None and stored.sha256 == big_sha
    assert hashlib.sha256(stored.blob.read_bytes()).hexdigest() == big_sha
    assert blob_hub.get_file(repo, "copy/model.safetensors").blob == stored.blob
    assert blob_hub.get_file(repo, "extra.bin").read_range(0, len(small)) == small
    assert blob_hub.get_file(repo, "notes.txt").content == b"not lfs"
    # One file per distinct object, no temporary file left behind.
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == sorted([big_sha, small_sha])
    assert blob_hub.blobs is not None and blob_hub.blobs.objects() == sorted([big_sha, small_sha])
    puts = [r for r in blob_hub.requests if r.method == "PUT" and "/_lfs/upload/" in r.path]
    assert sorted(r.bytes_in for r in puts) == sorted([BIG, len(small)])  # the copy: no upload
    assert all(r.status == 200 for r in puts)


def _peak_server_memory(hub: LoopbackHubServer, tmp_path: Path, size: int) -> int:
    """tracemalloc peak of this process (the server) while a client uploads then downloads."""
    tmp_path.mkdir()
    (tmp_path / "up.safetensors").write_bytes(_random_bytes(size, seed=2))
    env = make_hub_env(hub.url, tmp_path / "hf_home")
    repo = f"{TEST_USER}/memory"
    code = f"""
        api.create_repo("{repo}")
        api.upload_file(
            path_or_fileobj="{tmp_path / "up.safetensors"}", path_in_repo="w.safetensors",
            repo_id="{repo}",
        )
        result["size"] = os.path.getsize(hf_hub_download("{repo}", "w.safetensors"))
        """
    tracemalloc.start()
    try:
        result = _client(env, code, timeout=180)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["size"] == size
    assert hub.bytes_received(path_contains="/_lfs/upload/") == size
    assert hub.downloaded_files(repo) == {"w.safetensors": size}
    return peak


def test_blob_store_keeps_server_memory_flat(tmp_path: Path) -> None:
    size = 64 * MIB
    with make_server(blob_dir=tmp_path / "blobs") as hub:
        peak = _peak_server_memory(hub, tmp_path / "disk", size)
    print(f"server tracemalloc peak, {size // MIB} MiB up+down with blob_dir: {peak / MIB:.1f} MiB")
    assert peak < 32 * MIB
    # The same traffic held in memory peaks above the object size: the measurement can tell.
    with make_server() as hub:
        in_memory = _peak_server_memory(hub, tmp_path / "ram", size)
    print(f"same without blob_dir: {in_memory / MIB:.1f} MiB")
    assert in_memory > size
