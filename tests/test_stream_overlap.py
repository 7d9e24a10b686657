"""The streamed run's worker threads (issue 21): a failure, a stop signal or a slow upload while
the layers run or a shard goes up still exits with its own code, within the disk it forecast."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import repo_files, run_cli
from tests.loopback_hub.fixtures import TEST_USER
from tests.test_streamed_run import _env, _Poller, start_run_until_preupload

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
    env, tmp = _env(hub_env, tmp_path)
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
    env, tmp = _env(hub_env, tmp_path)
    result = run_cli("run", "--model", UPSTREAM, "--target", TARGET, "--full-check",
                     "--check-memory", "1KB", env=env)  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "terminate called" not in result.stderr
    assert "sha256" in result.stderr.strip().splitlines()[-1]
    assert not hub_server.repo_exists(TARGET)
    assert list(Path(tmp).iterdir()) == []


def _two_fat_shards(tmp_path: Path) -> dict[str, bytes]:
    """A 12-layer untied tiny Qwen3 re-sharded so the head shard is mostly layers: shard 1 the
    embedding and layers 0-3, shard 2 layers 4-11, the norm and ``lm_head`` (its rewrite without
    ``lm_head`` is nearly as large as itself)."""
    from safetensors.torch import load_file, save_file

    from testkit.tiny import build_model

    directory = build_model("qwen3", tmp_path / "fat", tied=False,
                            config_overrides={"num_hidden_layers": 12, "hidden_size": 256,
                                              "intermediate_size": 1024})  # fmt: skip
    whole = directory / "model.safetensors"
    tensors = load_file(whole)
    whole.unlink()

    def first(name: str) -> bool:
        if name.startswith("model.layers."):
            return int(name.split(".")[2]) < 4
        return name.startswith("model.embed_tokens")

    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    parts = [{k: v for k, v in tensors.items() if first(k)},
             {k: v for k, v in tensors.items() if not first(k)}]  # fmt: skip
    for name, part in zip(names, parts, strict=True):
        save_file(part, directory / name, metadata={"format": "pt"})
    index = {
        "metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
        "weight_map": {k: names[0 if first(k) else 1] for k in tensors},
    }
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return repo_files(directory)


def test_slow_pre_upload_keeps_the_run_within_max_disk(hub_server, hub_env, tmp_path):
    """--max-disk set to the run's own forecast, each LFS upload held 2 s (a runner whose upload
    is slower than its download): shard 2 is fetched ahead while shard 1's output (a hard link:
    its blocks) is still uploading, then rewritten without lm_head beside both. The peak the run
    measures itself must stay within --max-disk, and so must the disk polled while it runs (the
    run measures after the rewrite's source is deleted: it misses the moment all three exist)."""
    hub_server.seed_repo(UPSTREAM, _two_fat_shards(tmp_path))
    env, tmp = _env(hub_env, tmp_path)
    args = ("run", "--model", UPSTREAM, "--target", TARGET, "--check-memory", "1KB")
    refused = run_cli(*args, "--max-disk", "150KB", env=env)  # over the small files
    assert refused.returncode == 2, refused.stderr
    need = re.search(r"needs up to ([\d.]+ ?[kMG]?B) of disk", refused.stderr)
    assert need is not None, refused.stderr
    limit = int(_bytes(need.group(1))) + 100_000  # the printed need is rounded to 0.1 MB
    hub_server.delay(2.0, path_contains="/_lfs/upload/", method="PUT")
    roots = (tmp, Path(hub_env["HF_HOME"]))
    with _Poller(*roots) as polled:
        result = run_cli(*args, "--max-disk", str(limit), env=env)
    assert result.returncode == 0, result.stderr
    assert "rewritten, pre-upload started" in result.stderr, result.stderr
    peak = re.search(r"streamed run: peak disk ([\d.]+ ?[kMG]?B)", result.stderr)
    assert peak is not None, result.stderr
    assert _bytes(peak.group(1)) <= limit, (peak.group(1), limit, result.stderr)
    assert polled.peak <= limit, (polled.peak, limit, result.stderr)
    assert list(Path(tmp).iterdir()) == []


def _bytes(text: str) -> float:
    match = re.fullmatch(r"([\d.]+) ?([kMG]?B)", text.strip())
    assert match is not None, text
    return float(match.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[match.group(2)]


def test_streamed_run_with_one_fitting_pair_refuses_before_fetching(
    hub_server, hub_env, tiny_model, tmp_path
):
    """--pairs of which one pair fits the family's scoring length (the check needs two), checked
    layer by layer: exit 2 naming the cause (as the whole-model check does) before any shard is
    fetched and without creating the target; not after streaming and pre-uploading every shard,
    when the twin's check finds it."""
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=4))
    hub_server.seed_repo(UPSTREAM, files)
    long = " ".join(["Paris is the capital and largest city of France."] * 1200)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"query": q, "document": d}) + "\n"
                for q, d in (("capital?", long), ("city?", long), ("France?", "Paris.")))
    )  # fmt: skip
    env, tmp = _env(hub_env, tmp_path)
    result = run_cli("run", "--model", UPSTREAM, "--target", TARGET, "--pairs", str(pairs),
                     "--check-memory", "1KB", env=env)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "scoring length" in result.stderr.strip().splitlines()[-1], result.stderr
    assert "shard 1/4" not in result.stderr  # refused before the transfer
    assert not hub_server.repo_exists(TARGET)
    assert list(Path(tmp).iterdir()) == []


def test_stop_signal_while_layers_run_exits_143_not_abort(
    hub_server, hub_env, tiny_model, tmp_path
):
    """SIGTERM once a shard is pre-uploaded, in a layerwise run scoring every pair (the worker
    busy in torch): exit 143 without "terminate called" (SIGABRT), the target deleted, the run's
    directory gone."""
    import signal

    files = repo_files(tiny_model("qwen3", tied=False, num_shards=4))
    hub_server.seed_repo(UPSTREAM, files)
    env, tmp = _env(hub_env, tmp_path)
    proc = start_run_until_preupload(
        hub_server, env, UPSTREAM, TARGET, "--full-check", "--check-memory", "1KB"
    )
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert "terminate called" not in stderr, stderr
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert not hub_server.repo_exists(TARGET)
    assert list(Path(tmp).iterdir()) == []
