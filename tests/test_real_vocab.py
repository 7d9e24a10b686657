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


def test_gemma4_vocabulary_matches_llama_cpps_expected_tokenizations(gemma_tokenizer_dir):
    from tests.gemma_vocab import cases

    tokenizer = AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    assert len(tokenizer) == 262144
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    expected = cases()
    assert len(expected) == 46
    for text, ids in expected:  # llama.cpp's ggml-vocab-gemma-4.gguf.inp/.out, all of them
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids, text
    assert tokenizer("Yes")["input_ids"] == [2, 10784]  # <bos> added; bge's classifier token
    # SentencePiece pieces: spaces are "▁", newline runs are pieces of their own, and a newline
    # ending a text merges with the "\n" piece after it (the family's only boundary merge)
    assert tokenizer.tokenize("Tower?\n") == ["Tower", "?", "\n"]
    assert tokenizer.tokenize("Tower?\n\n") == ["Tower", "?", "\n\n"]


def test_bge_on_the_gemma_vocabulary_passes_with_its_gap_measured(real_vocab_model, tmp_path):
    source = real_vocab_model("gemma", name="bge-reranker-v2-gemma-real")
    out = tmp_path / "out"
    result = run_cli("convert", source, out, "--preset", "bge-reranker-v2-gemma")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 262144
    report_path = tmp_path / "report.json"
    result = run_cli("check", source, out, "--report", report_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    gap = report["tokenization_gap"]
    # only the pairs whose query or document ends in "\n" meet a merge ("\n" + "\n" -> "\n\n"),
    # unlike the byte-level Qwen vocabulary, where "?", ".", spaces merge with "\n" too
    assert gap["merges"] == {"\n\n": 5}
    eiffel = {i for i, row in enumerate(report["scores"]) if row["group"] == "eiffel-edges"}
    assert set(gap["pairs"]) == eiffel and gap["num_pairs"] == report["num_pairs"]
    assert gap["max_abs_prob"] > 0  # measured, reported, allowed
    assert "allowed:" in result.stdout
