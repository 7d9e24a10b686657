"""Red team of the streamed run's worker threads (issue 21)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import repo_files, run_cli
from tests.loopback_hub.fixtures import TEST_USER

UPSTREAM = "qwen-team/Qwen3-Reranker-tiny-slowup"
TARGET = f"{TEST_USER}/Qwen3-Reranker-tiny-slowup-seq-cls"


def test_streamed_dry_run_checks_layer_by_layer_without_crashing(
    hub_server, hub_env, tiny_model, tmp_path
):
    """A streamed --dry-run checked layer by layer: exit 0, no error, the run's directory gone.
    The dry run's "pre-upload" returns at once, so the upload thread deletes the output shard
    while the main thread may still stat it; the error then left the layer-compute thread running
    inside torch at exit (SIGABRT, "terminate called without an active exception")."""
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=4))
    hub_server.seed_repo(UPSTREAM, files)
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    env = {**hub_env, "TMPDIR": str(tmp)}
    result = run_cli("run", "--model", UPSTREAM, "--target", TARGET, "--dry-run",
                     "--check-memory", "1KB", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "No such file" not in result.stderr
    assert list(Path(tmp).iterdir()) == []


def test_bad_shard_while_layers_run_exits_3_not_abort(hub_server, hub_env, tiny_model, tmp_path):
    """A shard whose bytes are not the listed ones, fetched while the previous shard's layers
    run on the worker thread (--full-check: every pair, layer by layer): exit 3 naming sha256,
    no abort at exit (the worker must not be left inside torch), the target deleted."""
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=4))
    name = sorted(n for n in files if n.endswith(".safetensors"))[2]
    corrupted = bytearray(files[name])
    corrupted[-1] ^= 0xFF
    hub_server.seed_repo(UPSTREAM, files)
    hub_server.serve_instead(UPSTREAM, name, bytes(corrupted))
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    env = {**hub_env, "TMPDIR": str(tmp)}
    result = run_cli("run", "--model", UPSTREAM, "--target", TARGET, "--full-check",
                     "--check-memory", "1KB", env=env)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "terminate called" not in result.stderr
    assert "sha256" in result.stderr.strip().splitlines()[-1]
    assert not hub_server.repo_exists(TARGET)
    assert list(Path(tmp).iterdir()) == []
