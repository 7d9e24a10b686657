"""The parity check passes for every family and fails, with a pointed reason, for broken ones."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

FAMILIES = [
    ("qwen3", True, "float32", "qwen3-reranker"),
    ("qwen3", False, "bfloat16", "qwen3-reranker"),
    ("qwen2", False, "float32", "mxbai-rerank-v2"),
    ("gemma", True, "float32", "bge-reranker-v2-gemma"),
]


def _convert(source: Path, out: Path, *args: str) -> None:
    result = run_cli("convert", source, out, *args)
    assert result.returncode == 0, result.stderr


def _check(source: Path, out: Path, tmp_path: Path, *args: str):
    report_path = tmp_path / f"report-{out.name}.json"
    result = run_cli("check", source, out, "--report", report_path, *args)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return result, report


@pytest.mark.parametrize(("family", "tied", "dtype", "preset"), FAMILIES,
                         ids=[f"{f[3]}-{f[2]}" for f in FAMILIES])  # fmt: skip
def test_parity_passes_for_each_family(tiny_model, tmp_path, family, tied, dtype, preset):
    source = tiny_model(family, tied=tied, dtype=dtype)
    out = tmp_path / "converted"
    _convert(source, out, "--preset", preset)
    result, report = _check(source, out, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "parity: PASS" in result.stdout
    assert report["passed"] and report["dtype"] == dtype
    assert report["num_pairs"] >= 16 - (2 if preset == "bge-reranker-v2-gemma" else 0)
    assert set(report["metrics"]) == {
        "converted (batched)", "converted (one by one)", "sentence-transformers"
    }  # fmt: skip
    # CrossEncoder on raw text gives sigmoid(reference logit) for every pair whose one-string
    # prompt tokenizes like the family's pieces, and sigmoid(the converted model's logit on its
    # own ids) for the others (whitespace merged across a piece boundary: reported, not hidden)
    tol = report["tolerance"]["prob"]
    gap = report["tokenization_gap"]
    merged = set(gap["pairs"]) if gap else set()
    if preset == "qwen3-reranker":
        assert not merged  # its piece boundaries are special tokens
    else:
        assert merged and "allowed:" in result.stdout
    for index, row in enumerate(report["scores"]):
        logit = row["converted_template_ids" if index in merged else "reference"][0]
        assert abs(row["sentence_transformers"][0] - 1 / (1 + math.exp(-logit))) <= tol
    spread = [row["reference"][0] for row in report["scores"]]
    assert max(spread) - min(spread) > 0.5  # the pairs really score differently


def test_crossencoder_in_process_equals_causal_lm(tiny_model, tmp_path):
    """Independent of the check's own code: the user's two lines give the original's scores."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.recipes.prompts import build_prompt_ids

    source = tiny_model("qwen3", tied=False, dtype="float32")
    out = tmp_path / "converted"
    _convert(source, out, "--preset", "qwen3-reranker")
    pairs = [("What is the capital of France?", "Paris is the capital of France."),
             ("What is the capital of France?", "Bananas are yellow."),
             ("熊猫吃什么？", "大熊猫吃竹子。")]  # fmt: skip
    scores = CrossEncoder(str(out)).predict(pairs)

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source).eval()
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    for (query, document), score in zip(pairs, scores, strict=True):
        ids = build_prompt_ids(tokenizer, PRESETS["qwen3-reranker"], query, document)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
        expected = torch.softmax(logits[[no, yes]], dim=-1)[1].item()
        assert abs(float(score) - expected) < 1e-5


def test_swapped_tokens_fail(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=True)
    out = tmp_path / "swapped"
    _convert(source, out, "--tokens", '["yes", "no"]', "--method", "from_2_way_softmax")
    result, report = _check(source, out, tmp_path, "--preset", "qwen3-reranker")
    assert result.returncode == 1
    assert "parity: FAIL" in result.stdout
    assert "swapped" in result.stderr and result.stderr.count("error:") == 1
    assert not report["passed"] and "swapped" in report["reasons"][0]


def test_wrong_pad_token_id_fails(tiny_model, tmp_path):
    from transformers import AutoTokenizer

    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.recipes.prompts import build_prompt_ids

    source = tiny_model("qwen3", tied=True)
    out = tmp_path / "badpad"
    _convert(source, out, "--preset", "qwen3-reranker")
    tokenizer = AutoTokenizer.from_pretrained(source)
    last = build_prompt_ids(tokenizer, PRESETS["qwen3-reranker"], "q", "d")[-1]
    config = json.loads((out / "config.json").read_text())
    config["pad_token_id"] = last
    (out / "config.json").write_text(json.dumps(config))
    result, report = _check(source, out, tmp_path)
    assert result.returncode == 1
    assert "pad_token_id" in report["reasons"][0] and "pad_token_id" in result.stderr


def test_template_off_by_one_character_fails(tiny_model, tmp_path):
    source = tiny_model("qwen2", tied=False)
    out = tmp_path / "badtemplate"
    _convert(source, out, "--preset", "mxbai-rerank-v2")
    template = out / "chat_template.jinja"
    text = template.read_text()
    assert "document: " in text
    template.write_text(text.replace("document: ", "document:", 1))
    result, report = _check(source, out, tmp_path)
    assert result.returncode == 1
    assert "chat template" in report["reasons"][0] and "different prompt" in report["reasons"][0]
    # the converted classifier itself is fine: only the consumer path fails
    assert report["metrics"]["converted (batched)"]["max_abs_logit"] < 1e-3


def test_dropped_bos_fails(tiny_model, tmp_path):
    source = tiny_model("gemma", tied=True)
    out = tmp_path / "nobos"
    _convert(source, out, "--preset", "bge-reranker-v2-gemma")
    st_config = out / "sentence_bert_config.json"
    config = json.loads(st_config.read_text())
    assert config.pop("processing_kwargs")  # asks the template to write <bos>
    st_config.write_text(json.dumps(config))
    result, report = _check(source, out, tmp_path)
    assert result.returncode == 1
    assert "BOS" in report["reasons"][0]


def _gemma2_softcapped(gemma_dir: Path, out: Path, softcap: float) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM

    gemma = AutoModelForCausalLM.from_pretrained(gemma_dir)
    cfg = gemma.config.to_dict()
    for key in ("architectures", "model_type", "transformers_version", "dtype", "torch_dtype"):
        cfg.pop(key, None)
    config = Gemma2Config(**{**cfg, "final_logit_softcapping": softcap,
                             "attn_logit_softcapping": None, "query_pre_attn_scalar": 16,
                             "sliding_window": 4096})  # fmt: skip
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config)
    model.load_state_dict(gemma.state_dict(), strict=False)
    model.save_pretrained(out)
    for path in gemma_dir.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens")):
            shutil.copyfile(path, out / path.name)
    return out


def test_softcapping_is_reported_not_passed_silently(tiny_model, tmp_path):
    source = _gemma2_softcapped(tiny_model("gemma", tied=True), tmp_path / "bge-gemma2", 1.5)
    out = tmp_path / "converted"
    refused = run_cli("convert", source, out, "--preset", "bge-reranker-v2-gemma")
    assert refused.returncode == 2 and "final_logit_softcapping" in refused.stderr
    _convert(source, out, "--preset", "bge-reranker-v2-gemma", "--allow-softcapping")

    result, report = _check(source, out, tmp_path)
    assert result.returncode == 1
    assert "final_logit_softcapping" in report["reasons"][0]

    result, report = _check(source, out, tmp_path, "--allow-softcapping")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS (with allowances)" in result.stdout
    assert "final_logit_softcapping" in report["allowances"][0]
    assert report["metrics"]["converted (batched)"]["max_abs_logit"] > 1e-3  # the real difference


def test_pairs_file(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=True)
    out = tmp_path / "converted"
    _convert(source, out, "--preset", "qwen3-reranker")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"query": "a", "document": "b"}\n{"query": "a", "document": "c", "instruction": "x"}\n'
    )
    result, report = _check(source, out, tmp_path, "--pairs", pairs)
    assert result.returncode == 0, result.stderr
    assert report["num_pairs"] == 2

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": 1}\n')
    result, _ = _check(source, out, tmp_path, "--pairs", bad)
    assert result.returncode == 2 and "needs string fields" in result.stderr
