"""`run` of a Hub source in one streamed pass, against the loopback Hub: the real CLI in a
subprocess, a tiny model in several shards."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reranker_seqcls.stream.disk import disk_usage
from tests.conftest import NEWLINE_PAD_PAIRS, repo_files, run_cli, with_newline_pad_token
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER

UPSTREAM = "qwen-team/Qwen3-Reranker-tiny-sharded"
TARGET = f"{TEST_USER}/Qwen3-Reranker-tiny-sharded-seq-cls"
SHARDS = 4


@pytest.fixture
def sharded(tiny_model) -> dict[str, bytes]:
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=SHARDS))
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# tiny sharded reranker\n"
    return files


def _shard_sizes(files: dict[str, bytes]) -> list[int]:
    return [len(data) for name, data in files.items() if name.endswith(".safetensors")]


class _Poller:
    """Polls the disk use of the run's directories while it runs (the peak it saw)."""

    def __init__(self, *roots: Path, skip_part: str | None = None) -> None:
        self.roots, self.skip_part = roots, skip_part
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            used = disk_usage(*(r for r in self.roots if r.exists()), skip_dir=self.skip_part)
            self.peak = max(self.peak, used)
            time.sleep(0.002)

    def __enter__(self) -> _Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _env(hub_env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path]:
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    return {**hub_env, "TMPDIR": str(tmp)}, tmp


def start_run_until_preupload(
    hub_server, env: dict[str, str], model: str, target: str, *args: str
) -> subprocess.Popen[str]:
    """``run --model MODEL --target TARGET ARGS`` in its own process, returned once its first
    output shard is being pre-uploaded (not committed), still running."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reranker_seqcls", "run", "--model", model, "--target", target,
         *args],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (
        hub_server.request_count(path_contains="/preupload/", method="POST") == 0
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before its first pre-upload was seen"
    return proc


def _run(env: dict[str, str], tmp_path: Path, *args: str):
    result_path = tmp_path / "result.json"
    result = run_cli("run", *args, "--result-json", result_path, env=env)
    data = json.loads(result_path.read_text()) if result_path.exists() else None
    for text in (result.stdout, result.stderr, json.dumps(data)):
        assert TEST_TOKEN not in text
    return result, data


def _no_shard_in(directory: Path) -> bool:
    return not [p for p in directory.rglob("*") if p.name.endswith(".safetensors")]


def test_streamed_run_pushes_what_the_whole_snapshot_run_pushes(
    hub_server, hub_env, sharded, tmp_path
):
    """One shard at a time, each fetched once, into the run's own directory (not HF_HOME); one
    commit whose weights, index and config are byte for byte those of today's run."""
    upstream = hub_server.seed_repo(UPSTREAM, sharded)
    env, tmp = _env(hub_env, tmp_path)
    streamed, data = _run(env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert streamed.returncode == 0, streamed.stderr
    assert data["status"] == "pushed" and data["parity"]["passed"]
    assert "streamed run: 4 shard(s)" in streamed.stderr
    assert f"shard {SHARDS}/{SHARDS}" in streamed.stderr
    assert len(hub_server.list_commits(TARGET)) == 2  # the initial commit and the conversion
    downloaded = hub_server.downloaded_files(UPSTREAM)
    for name, data_ in sharded.items():
        if name.endswith(".safetensors"):  # the header by a range request, then the shard once
            assert len(data_) <= downloaded[name] <= len(data_) + 100_000, name
    assert _no_shard_in(Path(hub_env["HF_HOME"]))  # never the whole-snapshot cache
    assert list(tmp.iterdir()) == []  # the run's directory is gone

    whole = f"{TEST_USER}/whole-snapshot"
    kept = tmp_path / "kept"
    old, _ = _run(env, tmp_path, "--model", UPSTREAM, "--target", whole, "--output-dir", str(kept))
    assert old.returncode == 0, old.stderr
    assert "streamed run" not in old.stderr
    files = hub_server.list_files(TARGET)
    assert sorted(files) == sorted(hub_server.list_files(whole))
    for name in files:
        if name.endswith((".safetensors", ".json", ".jinja")) and name != "parity_report.json":
            a, b = hub_server.read_file(TARGET, name), hub_server.read_file(whole, name)
            assert a == b, name
    provenance = json.loads(hub_server.read_file(TARGET, "reranker_seqcls.json"))
    assert provenance["source"]["commit_sha"] == upstream


@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> dict[str, bytes]:
    """12 layers in 6 shards: a model whose 2-layer twin is smaller than the model, as for
    every real size (the 2-layer tiny model is its own twin)."""
    from testkit.tiny import build_model

    directory = build_model(
        "qwen3", tmp_path_factory.mktemp("deep") / "m", tied=False, num_shards=6,
        config_overrides={"num_hidden_layers": 12},
    )  # fmt: skip
    return repo_files(directory)


def test_streamed_run_never_holds_the_model_on_disk(hub_server, hub_env, deep, tmp_path):
    """With a disk limit smaller than the model (CI's stand-in for the 8B on a 14 GB runner),
    the run checks layer by layer and proves the consumers on a twin. Polled while it runs:
    the transfer (source shards in flight, output shards before their upload, small files,
    HF_HOME) stays at about two shards, and everything, the twin included, within the limit
    and below the model's size."""
    hub_server.seed_repo(UPSTREAM, deep)
    env, tmp = _env(hub_env, tmp_path)
    model = sum(_shard_sizes(deep))
    largest = max(_shard_sizes(deep))
    small = sum(len(v) for k, v in deep.items() if not k.endswith(".safetensors"))
    # two shards, the small files twice (source and output), a block of slack for each file
    # there and each header placeholder
    bound = 2 * largest + 2 * small + 4096 * 2 * len(deep)
    limit = model * 9 // 10
    assert bound < limit
    roots = (tmp, Path(hub_env["HF_HOME"]))
    with _Poller(*roots, skip_part="twin") as transfer, _Poller(*roots) as everything:
        result, data = _run(env, tmp_path, "--model", UPSTREAM, "--target", TARGET,
                            "--max-disk", str(limit))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "checked layer by layer" in result.stderr
    assert transfer.peak > largest  # the poller saw a shard on disk
    assert transfer.peak <= bound, (transfer.peak, bound, model)
    assert everything.peak <= limit < model, (everything.peak, limit, model)
    assert data["parity"]["passed"]
    report = json.loads(hub_server.read_file(TARGET, "parity_report.json"))
    assert report["consumers_proven_on"].startswith("twin")
    assert report["backbone_hash"] == "identical"
    assert "converted (layerwise)" in report["metrics"], report["metrics"].keys()
    # the verdict is bound to every byte published: shards as uploaded, small files
    published = set(hub_server.list_files(TARGET)) - {
        "README.md",
        "parity_report.json",
        ".gitattributes",
    }  # the Hub's own
    assert set(report["checked_files"]) == published
    for name, digest in report["checked_files"].items():
        assert hashlib.sha256(hub_server.read_file(TARGET, name)).hexdigest() == digest, name
    assert report["real_pass"]["pairs"] == 3 and not report["real_pass"]["full"]
    line = next(x for x in result.stderr.splitlines() if "streamed run: peak disk" in x)
    assert "layers 12/12" in result.stderr and line


def test_max_disk_below_the_need_refuses_before_fetching_shards(
    hub_server, hub_env, sharded, tmp_path
):
    hub_server.seed_repo(UPSTREAM, sharded)
    env, tmp = _env(hub_env, tmp_path)
    result, data = _run(
        env, tmp_path, "--model", UPSTREAM, "--target", TARGET, "--max-disk", "300KB"
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: this run needs up to") and "--max-disk" in last
    assert "Traceback" not in result.stderr
    assert data["status"] == "failed"
    for name, served in hub_server.downloaded_files(UPSTREAM).items():
        if name.endswith(".safetensors"):
            assert served <= 100_000 < len(sharded[name]), name  # a header range only
    assert not hub_server.repo_exists(TARGET)
    assert list(tmp.iterdir()) == []

    bad = run_cli("run", "--model", UPSTREAM, "--target", TARGET, "--max-disk", "lots", env=env)
    assert bad.returncode == 2 and "is not a size" in bad.stderr.strip().splitlines()[-1]


def test_sha256_mismatch_of_a_shard_pushes_nothing_and_leaves_no_file(
    hub_server, hub_env, sharded, tmp_path
):
    """A Hub whose second shard's bytes are not the ones it lists (same header, same size, one
    byte flipped in the data): exit 3, one line naming the shard, nothing committed, the
    target this run created for its pre-uploads deleted again, no temporary file left."""
    hub_server.seed_repo(UPSTREAM, sharded)
    name = sorted(n for n in sharded if n.endswith(".safetensors"))[1]
    corrupted = bytearray(sharded[name])
    corrupted[-1] ^= 0xFF
    hub_server.serve_instead(UPSTREAM, name, bytes(corrupted))
    env, tmp = _env(hub_env, tmp_path)
    result, data = _run(env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and name in lines[-1] and "sha256" in lines[-1]
    assert "nothing was pushed" in lines[-1]
    assert "Traceback" not in result.stderr
    assert data["status"] == "failed"
    assert "shard 1/4" in result.stderr  # the first shard went through before
    assert not hub_server.repo_exists(TARGET)
    assert list(tmp.iterdir()) == []
    assert _no_shard_in(Path(hub_env["HF_HOME"]))


def test_dry_run_streams_and_uploads_nothing(hub_server, hub_env, sharded, tmp_path):
    hub_server.seed_repo(UPSTREAM, sharded)
    env, tmp = _env(hub_env, tmp_path)
    result, data = _run(env, tmp_path, "--model", UPSTREAM, "--target", TARGET, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert data["status"] == "dry_run"
    assert "streamed run" in result.stderr
    would = next(x for x in result.stderr.splitlines() if "dry run: would commit" in x)
    for name, data_ in sharded.items():
        if name.endswith(".safetensors"):  # a shard that held only lm_head is dropped
            header = json.loads(data_[8 : 8 + int.from_bytes(data_[:8], "little")])
            kept = set(header) - {"__metadata__", "lm_head.weight"}
            assert (name in would) == bool(kept), name
    assert "score.safetensors" in would
    assert not hub_server.repo_exists(TARGET)
    assert hub_server.bytes_received(method="POST") + hub_server.bytes_received(method="PUT") == 0
    assert list(tmp.iterdir()) == []


def test_stop_signal_after_pre_uploads_commits_nothing_and_leaves_no_file(
    hub_server, hub_env, sharded, tmp_path
):
    """SIGTERM once output shards went up (pre-uploaded, not committed): exit 143, no commit,
    the target the run created for the pre-uploads deleted, the run's directory gone."""
    import signal

    hub_server.seed_repo(UPSTREAM, sharded)
    env, tmp = _env(hub_env, tmp_path)
    proc = start_run_until_preupload(hub_server, env, UPSTREAM, TARGET)
    assert hub_server.repo_exists(TARGET)  # created for the pre-uploads
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert not hub_server.repo_exists(TARGET)
    assert hub_server.request_count(path_contains="/commit/", method="POST") == 0
    assert list(tmp.iterdir()) == []


def test_layerwise_parity_failure_commits_nothing_and_names_the_cause(
    hub_server, hub_env, tiny_model, tmp_path
):
    """A conversion the check must refuse (the source's pad token is "\\n", the last token of
    every mxbai prompt: the classifier pools an earlier token), checked layer by layer
    (--check-memory far below the model) while streaming: exit 1 naming pad_token_id, as the
    whole-model check names it; no commit; the target created for the pre-uploads deleted."""
    upstream = "mixedbread-ai/mxbai-rerank-tiny-sharded-v2"
    files = repo_files(tiny_model("qwen2", tied=False, num_shards=3))
    hub_server.seed_repo(upstream, with_newline_pad_token(files))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(NEWLINE_PAD_PAIRS)
    env, tmp = _env(hub_env, tmp_path)
    target = f"{TEST_USER}/never-pushed"
    result, data = _run(env, tmp_path, "--model", upstream, "--target", target,
                        "--pairs", str(pairs), "--check-memory", "1KB")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "layerwise" in result.stderr and "shard 3/3" in result.stderr
    assert data["status"] == "failed" and data["parity"]["passed"] is False
    last = result.stderr.strip().splitlines()[-1]
    assert "pad_token_id" in last and "nothing was pushed" in last, last
    assert "Traceback" not in result.stderr
    assert not hub_server.repo_exists(target)
    assert hub_server.request_count(path_contains="/commit/", method="POST") == 0
    assert list(tmp.iterdir()) == []
