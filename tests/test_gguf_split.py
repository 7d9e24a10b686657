"""Split GGUFs (``gguf/writer.py``: a first split of keys and ``cls_out``, one split per shard)
as the real ``llama-server`` loads them, and the streamed ``run --gguf`` that writes them
(``gguf/streamed.py``): one split per converted shard while it is on disk, pre-uploaded as it
is written, one commit to the GGUF target after every row passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.test_gguf import llama_env  # noqa: F401 - the fixture, shared

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

    source = real_vocab_model(
        "qwen3", name="Qwen3-Reranker-split", preset="qwen3-reranker", num_shards=3
    )
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
