"""Issue 13: the newer families (zerank-2, ctxl-rerank-v2, the larger Qwen3-Reranker and mxbai
sizes), classifier tokens by id, folded scales, recipes from sentence-transformers LogitScore
files, and the families that are refused.

Fixtures use the real Qwen vocabulary ("Yes"=9454, "yes"=9693, "!"=0) and a tiny Mistral-style
tokenizer (``<unk>`` at id 0, ``<s>`` prepended; not the real Mistral vocabulary). Independent
references are computed here from the families' published code paths, not with the package's
prompt builders.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli

PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("What is the capital of France?", "Bananas are a good source of potassium."),
    ("Wie hoch ist die Zugspitze?", "Die Zugspitze ist mit 2962 Metern der höchste Berg."),
    ("熊猫吃什么？", "大熊猫的食物几乎全部是竹子。"),
]
YES, LOWER_YES = 9454, 9693


def _convert(source: Path, out: Path, *args: str):
    result = run_cli("convert", source, out, *args)
    assert result.returncode == 0, result.stderr
    return result


def _check(source: Path, out: Path, tmp_path: Path, *args: str):
    report_path = tmp_path / f"report-{out.name}.json"
    result = run_cli("check", source, out, "--report", report_path, *args)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return result, report


def _provenance(out: Path) -> dict:
    return json.loads((out / "reranker_seqcls.json").read_text())


@torch.no_grad()
def _last_logits(source: Path, prompts: list[list[int]]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    return torch.stack([model(input_ids=torch.tensor([p])).logits[0, -1] for p in prompts])


def _head(source: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).lm_head.weight


def _score_weight(out: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(out / "score.safetensors"))["score.weight"]


# --------------------------------------------------------------------------- zerank-2


@pytest.fixture(scope="module")
def zerank(real_vocab_model) -> Path:
    # Qwen3-4B based and tied, like the published checkpoint
    return real_vocab_model("qwen3", tied=True, name="zerank-2", preset="zerank-2")


def test_zerank2_detected_folded_and_official(zerank, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    out = tmp_path / "zerank-2-seq-cls"
    result = _convert(zerank, out)
    assert "recipe: zerank-2" in result.stderr
    assert "sigmoid(l(Yes) / 5)" in result.stderr  # the log says which score is served
    provenance = _provenance(out)
    assert provenance["classifier"]["token_ids"] == [YES]
    assert provenance["classifier"]["scale"] == 0.2
    # score.weight = W[Yes] / 5, computed in double and rounded once
    expected = (_head(zerank)[YES].double() / 5).float()
    assert torch.equal(_score_weight(out)[0], expected)

    check, report = _check(zerank, out, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert report["recipe"] == "zerank-2" and report["num_pairs"] == 18

    # official: apply_chat_template([system: query, user: document], add_generation_prompt=True),
    # then sigmoid(l(Yes) / 5) -- zeroentropy's modeling_zeranker.py, with the repo's chat template
    tokenizer = AutoTokenizer.from_pretrained(zerank)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": q}, {"role": "user", "content": d}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for q, d in PAIRS
    ]
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    official = torch.sigmoid(_last_logits(zerank, ids)[:, YES] / 5)
    served = torch.tensor(CrossEncoder(str(out)).predict(PAIRS), dtype=torch.float32)
    assert torch.allclose(served, official, atol=1e-5), (served, official)
    assert float(official.max() - official.min()) > 0.05  # the pairs really score differently


def test_zerank2_miscased_token_is_named(zerank, tmp_path):
    out = tmp_path / "lowercase-yes"
    _convert(zerank, out, "--tokens", '["yes"]', "--method", "no_post_processing", "--scale", "0.2")
    assert _provenance(out)["classifier"]["token_ids"] == [LOWER_YES]
    result, report = _check(zerank, out, tmp_path, "--preset", "zerank-2")
    assert result.returncode == 1
    reason = report["reasons"][0]
    assert "'yes' (id 9693)" in reason and "'Yes' (id 9454)" in reason and "case" in reason
    assert "case" in result.stderr and result.stderr.count("error:") == 1


def test_zerank2_missing_scale_is_named(zerank, tmp_path):
    out = tmp_path / "unscaled"
    _convert(zerank, out, "--tokens", '["Yes"]', "--method", "no_post_processing")
    assert _provenance(out)["recipe"]["name"] == "custom"  # not the preset: the scale differs
    result, report = _check(zerank, out, tmp_path, "--preset", "zerank-2")
    assert result.returncode == 1
    assert "scale is missing" in report["reasons"][0] and "0.2" in report["reasons"][0]
    assert "scale is missing" in result.stderr


# --------------------------------------------------------------------------- ctxl-rerank-v2


def _ctxl_prompt(query: str, document: str) -> str:
    # ContextualAI's model card code (families.md section 2)
    return (
        "Check whether a given document contains information helpful to answer the query.\n"
        f"<Document> {document}\n<Query> {query} ??"
    )


@pytest.fixture(scope="module")
def ctxl_qwen(real_vocab_model) -> Path:
    return real_vocab_model(
        "qwen3", tied=True, name="ctxl-rerank-v2-instruct-multilingual-1b", preset="ctxl-rerank-v2"
    )


@pytest.fixture(scope="module")
def ctxl_mistral(tmp_path_factory) -> Path:
    from reranker_seqcls.tiny import build_model

    root = tmp_path_factory.mktemp("mistral")
    return build_model(
        "mistral", root / "ctxl-rerank-v2-instruct-multilingual-6b", tied=False,
        preset="ctxl-rerank-v2",
    )  # fmt: skip


@pytest.mark.parametrize("which", ["qwen3-1b", "mistral-6b"])
def test_ctxl_converts_by_id_and_scores_raw_id0(which, ctxl_qwen, ctxl_mistral, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    source = ctxl_qwen if which == "qwen3-1b" else ctxl_mistral
    out = tmp_path / f"ctxl-{which}"
    _convert(source, out)
    classifier = _provenance(out)["classifier"]
    assert classifier["token_ids"] == [0]
    assert classifier["tokens"] == (["!"] if which == "qwen3-1b" else ["<unk>"])

    result, report = _check(source, out, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["recipe"] == "ctxl-rerank-v2"

    tokenizer = AutoTokenizer.from_pretrained(source)
    ids = [tokenizer(_ctxl_prompt(q, d))["input_ids"] for q, d in PAIRS]
    if which == "mistral-6b":
        assert all(p[0] == tokenizer.bos_token_id == 1 for p in ids)  # <s> prepended
    else:
        assert all(p[0] != 151643 for p in ids) and tokenizer.bos_token_id is None
    raw = _last_logits(source, ids)[:, 0]  # logits[:, -1, 0]
    served = torch.tensor(CrossEncoder(str(out)).predict(PAIRS), dtype=torch.float32)
    assert torch.allclose(served, torch.sigmoid(raw), atol=1e-5), (served, raw)
    assert float(raw.max() - raw.min()) > 0.5


def test_ctxl_6b_needs_the_id_not_a_string(ctxl_mistral, tmp_path):
    refused = run_cli(
        "convert", ctxl_mistral, tmp_path / "x", "--tokens", '["<unk>"]', "--method",
        "no_post_processing",
    )  # fmt: skip
    assert refused.returncode == 2 and "unknown token" in refused.stderr

    out = tmp_path / "wrong-id"
    _convert(ctxl_mistral, out, "--token-ids", "[2]", "--method", "no_post_processing")
    result, report = _check(ctxl_mistral, out, tmp_path, "--preset", "ctxl-rerank-v2")
    assert result.returncode == 1
    assert "differs from the source head rows" in report["reasons"][0]
    assert "ids [0]" in report["reasons"][0]


# --------------------------------------------------------------------------- larger family members


@pytest.mark.parametrize(
    ("name", "family", "tied", "preset", "ids"),
    [
        ("Qwen3-Reranker-4B", "qwen3", True, "qwen3-reranker", [2152, 9693]),
        ("Qwen3-Reranker-8B", "qwen3", False, "qwen3-reranker", [2152, 9693]),
        ("mxbai-rerank-large-v2", "qwen2", True, "mxbai-rerank-v2", [15, 16]),
    ],
)
def test_larger_family_members_detected_and_converted(
    real_vocab_model, tmp_path, name, family, tied, preset, ids
):
    source = real_vocab_model(family, tied=tied, name=name, tie_word_embeddings=tied)
    out = tmp_path / f"{name}-seq-cls"
    result = _convert(source, out)
    assert f"recipe: {preset}" in result.stderr
    provenance = _provenance(out)
    assert provenance["classifier"]["token_ids"] == ids
    assert provenance["classifier"]["score_from"] == (
        "model.embed_tokens.weight" if tied else "lm_head.weight"
    )
    extra: list[str] = []
    if preset == "mxbai-rerank-v2":
        # mxbai's code tokenizes prompt pieces separately; with the real BPE a text ending in
        # punctuation merges with the following "\n" piece ("?\n" is one token), which no
        # one-string template reproduces (docs/design.md). Texts ending in a letter do not merge.
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(
            json.dumps({"query": q.rstrip("?？"), "document": d.rstrip(".。"), "group": q}) + "\n"
            for q, d in PAIRS
        ))  # fmt: skip
        extra = ["--pairs", str(pairs)]
    check, report = _check(source, out, tmp_path, *extra)
    assert check.returncode == 0, check.stdout + check.stderr
    assert report["recipe"] == preset
