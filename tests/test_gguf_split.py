"""Split GGUFs (``gguf/writer.py``: a first split of keys and ``cls_out``, one split per shard)
as the real ``llama-server`` loads them, and the streamed ``run --gguf`` that writes them
(``gguf/streamed.py``): one split per converted shard while it is on disk, pre-uploaded as it
is written, one commit to the GGUF target after every row passed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import repo_files, run_cli
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER
from tests.test_gguf import few_pairs, llama_env  # noqa: F401 - the fixtures, shared

pytestmark = [pytest.mark.llama, pytest.mark.slow]


def test_llama_server_scores_a_split_gguf_like_the_single_file(
    real_vocab_model,
    llama_env,  # noqa: F811
    tmp_path,
):
    """A tiny Qwen3-Reranker in three shards, converted with ``--gguf f16``; the same f16
    written as splits (keys and head first, then one per shard) is scored by llama-server
    exactly like the single file on eight pairs."""
    from reranker_seqcls.check.pairs import builtin_pairs
    from reranker_seqcls.gguf.reader import read_header
    from reranker_seqcls.gguf.row import score_gguf
    from reranker_seqcls.gguf.tensors import _weight_files
    from reranker_seqcls.gguf.types import GGUF_TYPES
    from reranker_seqcls.gguf.writer import (
        Split,
        data_split_plans,
        split_file_name,
        write_data_split,
        write_gguf,
    )
    from reranker_seqcls.recipes.presets import PRESETS

    source = _split_source(real_vocab_model)
    out = tmp_path / "Qwen3-Reranker-split"
    done = run_cli("convert", source, out, "--gguf", "f16", env=llama_env)
    assert done.returncode == 0, done.stderr
    single = tmp_path / "Qwen3-Reranker-split-GGUF" / "Qwen3-Reranker-split-f16.gguf"

    f16 = GGUF_TYPES["f16"]
    blocks = json.loads((out / "config.json").read_text())["num_hidden_layers"]
    shards = [s for s in _weight_files(out) if data_split_plans(s, blocks, f16)]
    assert len(shards) >= 2
    count = len(shards) + 1
    tensors = sum(len(data_split_plans(s, blocks, f16)) for s in shards) + 1
    splits = tmp_path / "splits"
    splits.mkdir()
    recipe = PRESETS["qwen3-reranker"]
    first = splits / split_file_name("tiny", f16, 1, count)
    write_gguf(out, first, f16, recipe, name="tiny", split=Split(1, count, tensors))
    for number, shard in enumerate(shards, start=2):
        write_data_split(shard, splits / split_file_name("tiny", f16, number, count), f16,
                         blocks=blocks, split=Split(number, count, tensors))  # fmt: skip
    assert sorted(p.name for p in splits.iterdir()) == [
        f"tiny-f16-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)
    ]
    head = read_header(first)
    assert head.fields["split.count"] == count and head.fields["split.no"] == 0
    assert list(head.tensors) == ["cls.output.weight"]  # keys and the head only
    assert sum(p.stat().st_size for p in splits.iterdir()) < single.stat().st_size * 1.05

    pairs = builtin_pairs(takes_instruction=True)[:8]
    template = head.fields["tokenizer.chat_template.rerank"]
    binary = Path(llama_env["RERANKER_SEQCLS_LLAMA_SERVER"])
    whole, _ = score_gguf(binary, single, pairs, template, 512)
    split, _ = score_gguf(binary, first, pairs, template, 512)
    assert len(set(whole)) > 1
    assert split == whole


UPSTREAM = "qwen-team/Qwen3-Reranker-split"
TARGET = f"{TEST_USER}/Qwen3-Reranker-split-seq-cls"
GGUF_TARGET = TARGET + "-GGUF"


def _split_source(real_vocab_model) -> Path:
    """The model of the first test (cached): a tiny Qwen3-Reranker in three shards."""
    return real_vocab_model(
        "qwen3", name="Qwen3-Reranker-split", preset="qwen3-reranker", num_shards=3
    )


def _size(text: str) -> int:
    from reranker_seqcls.sizes import parse_size

    return parse_size(text.replace(" ", ""), "size")


def test_streamed_run_pushes_split_ggufs_in_one_commit_within_its_forecast(
    hub_server,
    hub_env,
    real_vocab_model,
    llama_env,  # noqa: F811
    few_pairs,  # noqa: F811
    tmp_path,
):
    """``run --gguf f16,q8_0`` of a three-shard Hub source takes the streamed road: one split
    per shard and type, written from the converted shard and pre-uploaded as it passes, the
    keys-and-head split last; both llama.cpp rows pass; one commit to the GGUF target. The disk
    polled while it runs stays within the forecast it printed, which counts the splits: a
    ``--max-disk`` that would hold the run without them is refused before any shard moves."""
    from tests.test_streamed_run import _Poller

    hub_server.seed_repo(UPSTREAM, repo_files(_split_source(real_vocab_model)))
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    env = {**hub_env, **llama_env, "TMPDIR": str(tmp)}
    result_path = tmp_path / "result.json"
    # --check-memory: checked layer by layer, so the shards go and the splits are written
    args = ["run", "--model", UPSTREAM, "--target", TARGET, "--gguf", "f16,q8_0",
            "--pairs", few_pairs, "--result-json", result_path,
            "--check-memory", "1KB"]  # fmt: skip
    with _Poller(tmp) as disk:
        result = run_cli(*args, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "shard 3/3" in err and "pre-upload started" in err  # the streamed road
    need = _size(re.search(r"disk needed at most ([\d.]+ [KMG]?B) one shard", err)[1])  # type: ignore[index]
    splits = _size(re.search(r"gguf: .*?: ([\d.]+ [KMG]?B) kept on disk", err)[1])  # type: ignore[index]
    assert disk.peak > splits  # the poller saw the splits on disk
    assert disk.peak <= need, (disk.peak, need)
    assert list(tmp.iterdir()) == []

    data = json.loads(result_path.read_text())
    assert data["status"] == "pushed" and data["parity"]["passed"]
    assert data["gguf_target_repo"] == GGUF_TARGET
    assert data["gguf_commit_sha"] == hub_server.head_sha(GGUF_TARGET)
    ours = [c for c in hub_server.list_commits(GGUF_TARGET) if c.title != "initial commit"]
    assert len(ours) == 1 and "(GGUF: f16, q8_0)" in ours[0].title, ours
    files = set(hub_server.list_files(GGUF_TARGET))
    # the third shard holds only lm_head? then two data splits; count what llama.cpp needs
    count = 1 + len([n for n in files if n.startswith("Qwen3-Reranker-split-f16-") and
                     not n.startswith("Qwen3-Reranker-split-f16-00001-")])  # fmt: skip
    expected = {
        f"Qwen3-Reranker-split-{t}-{i:05d}-of-{count:05d}.gguf"
        for t in ("f16", "q8_0")
        for i in range(1, count + 1)
    }
    assert count >= 3 and expected | {"README.md", "reranker_seqcls.json"} <= files, files
    assert not any(n.endswith(".gguf") for n in hub_server.list_files(TARGET))
    report = json.loads(hub_server.read_file(TARGET, "parity_report.json"))
    assert {"llama.cpp f16", "llama.cpp q8_0"} <= set(report["metrics"])
    assert all(row["llama"].keys() == {"f16", "q8_0"} for row in report["scores"])
    card = hub_server.read_file(GGUF_TARGET, "README.md").decode()
    assert f"llama-server -m Qwen3-Reranker-split-f16-00001-of-{count:05d}.gguf" in card
    assert card.count("| PASS |") == 2 and TEST_TOKEN not in card
    assert f"Each type is split in {count} files" in card
    assert "the 3 short pairs the real model scored in the quick check" in card

    # the forecast of each shape, from the run's own line: a --max-disk between the two
    # takes the second pass, whose splits are the one pass's bytes; below both is refused
    one, two = _pass_forecasts(err)
    assert one == need and two < one, (one, two)
    committed = {n: hub_server.read_file(GGUF_TARGET, n) for n in files if n.endswith(".gguf")}
    again = run_cli(*args, "--force", "--max-disk", str(two // 2), env=env)
    assert again.returncode == 2, again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert "--max-disk" in last and "no shard was fetched" in last, last
    assert hub_server.head_sha(GGUF_TARGET) == data["gguf_commit_sha"]

    with _Poller(tmp) as disk:
        second = run_cli(*args, "--force", "--max-disk", str((one + two) // 2),
                         "--gguf-target", GGUF_TARGET + "-2", env=env, timeout=900)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "a second pass" in second.stderr and ": second pass (one pass misses --max-disk" in (
        second.stderr
    ), second.stderr
    assert "written from the stream" in second.stderr
    assert disk.peak <= two, (disk.peak, two)
    assert set(hub_server.list_files(GGUF_TARGET + "-2")) == files
    for name, blob in committed.items():  # byte-identical splits
        assert hub_server.read_file(GGUF_TARGET + "-2", name) == blob, name
    report = json.loads(hub_server.read_file(TARGET, "parity_report.json"))
    assert {"llama.cpp f16", "llama.cpp q8_0"} <= set(report["metrics"])
    assert list(tmp.iterdir()) == []


def _pass_forecasts(stderr: str) -> tuple[int, int]:
    """The disk each GGUF shape needs, as the run's choice line says it."""
    found = re.search(r"gguf: one pass needs ([\d.]+ [KMG]?B) of disk, a second pass ([\d.]+ "
                      r"[KMG]?B):", stderr)  # fmt: skip
    assert found, stderr
    return _size(found[1]), _size(found[2])


def test_second_pass_refuses_bytes_changed_since_the_first(
    hub_server,
    hub_env,
    real_vocab_model,
    llama_env,  # noqa: F811
    few_pairs,  # noqa: F811
    tmp_path,
):
    """A shard whose bytes change after pass 1 fetched it (the Hub serves other bytes under
    the same listing to the second GET): pass 2's sha256 refuses them, exit 3 in the fetch's
    words; nothing is committed to either target, both targets created for the pre-uploads are
    removed, and no split is left outside the run's directory (gone with it)."""
    source = _split_source(real_vocab_model)
    files = repo_files(source)
    hub_server.seed_repo(UPSTREAM, files)
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    env = {**hub_env, **llama_env, "TMPDIR": str(tmp)}
    args = ["run", "--model", UPSTREAM, "--target", TARGET, "--gguf", "q8_0",
            "--pairs", few_pairs, "--check-memory", "1KB"]  # fmt: skip
    planned = run_cli(*args, "--max-disk", "40MB", env=env)  # refused after the plan
    assert planned.returncode == 2, planned.stderr
    one, two = _pass_forecasts(planned.stderr)
    name = sorted(n for n in files if n.endswith(".safetensors"))[0]
    data = bytearray(files[name])
    data[-1] ^= 0xFF  # a tensor byte, not the header
    hub_server.serve_instead(UPSTREAM, name, bytes(data), after_downloads=1)
    result = run_cli(*args, "--max-disk", str((one + two) // 2), env=env, timeout=900)
    assert result.returncode == 3, result.stderr
    assert ": second pass (" in result.stderr and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert name in last and "sha256" in last and "not the commit's" in last, last
    assert "nothing was pushed" in last, last
    assert not hub_server.repo_exists(TARGET) and not hub_server.repo_exists(GGUF_TARGET)
    assert hub_server.request_count(path_contains="/commit/", method="POST") == 0
    assert list(tmp.iterdir()) == []


def test_streamed_run_with_a_wrong_gguf_head_commits_nothing(
    hub_server,
    hub_env,
    real_vocab_model,
    llama_env,  # noqa: F811
    few_pairs,  # noqa: F811
    tmp_path,
):
    """A deliberately wrong GGUF head (one row on qwen3: llama.cpp's softmax scores 1.0 for
    everything), injected into the writer of the real CLI: its row fails, exit 1 naming the
    cause, nothing committed to either target, both targets created for the pre-uploads
    removed again, nothing left in the run's directory."""
    hub_server.seed_repo(UPSTREAM, repo_files(_split_source(real_vocab_model)))
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    inject = (
        "import sys, reranker_seqcls.gguf.writer as w; head = w._head_rows; "
        "w._head_rows = lambda rows, hidden: head(rows, hidden)[:1]; "
        "from reranker_seqcls.cli import main; main(sys.argv[1:])"
    )
    result = subprocess.run(
        [sys.executable, "-c", inject, "run", "--model", UPSTREAM, "--target", TARGET,
         "--gguf", "f16", "--pairs", str(few_pairs)],
        env={**os.environ, **hub_env, **llama_env, "TMPDIR": str(tmp)},
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "llama.cpp f16" in last and "one row" in last and "nothing was pushed" in last, last
    assert "pre-upload" in result.stderr and "Traceback" not in result.stderr
    # a tiny model's shards stay for the whole check: one file per type, written at the end
    assert "gguf: writing Qwen3-Reranker-split-f16.gguf" in result.stderr
    assert not hub_server.repo_exists(TARGET) and not hub_server.repo_exists(GGUF_TARGET)
    assert hub_server.request_count(path_contains="/commit/", method="POST") == 0
    assert list(tmp.iterdir()) == []
