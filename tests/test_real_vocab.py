"""The real Qwen vocabulary fixture: real ids, real merges across prompt-piece boundaries."""

from __future__ import annotations

import json

from transformers import AutoTokenizer

from tests.conftest import run_cli
from tests.real_vocab import KNOWN_IDS


def test_real_qwen_tokenizer_has_published_ids(qwen_tokenizer_dir):
    layouts = (("qwen3", 151669, "</think>"), ("qwen2", 151665, "<|file_sep|>"))
    for generation, size, last in layouts:
        tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir(generation))
        assert len(tokenizer) == size
        assert tokenizer.convert_tokens_to_ids(last) == size - 1
        assert tokenizer.pad_token_id == 151643 and tokenizer.eos_token_id == 151645
        for text, token_id in KNOWN_IDS.items():
            assert tokenizer(text, add_special_tokens=False)["input_ids"] == [token_id]
        # real BPE merges: a query's final "?" merges with the newline that follows it
        assert tokenizer.tokenize("France?\n") == ["France", "?Ċ"]


def test_real_vocab_model_converts_with_published_token_ids(real_vocab_model, tmp_path):
    source = real_vocab_model("qwen3", name="Qwen3-Reranker-real")
    out = tmp_path / "out"
    result = run_cli("convert", source, out)
    assert result.returncode == 0, result.stderr
    provenance = json.loads((out / "reranker_seqcls.json").read_text())
    assert provenance["classifier"]["token_ids"] == [2152, 9693]
    config = json.loads((out / "config.json").read_text())
    assert config["vocab_size"] == 151669 and config["head_dim"] == 64
