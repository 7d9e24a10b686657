"""The streamed check: layerwise scores equal the full model's, shards are released as they are
used, no more than one layer's weights is ever held, and every broken conversion the full check
catches is still caught with the same cause (consumers proven on a structural twin)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from reranker_seqcls.check.parity import ParityReport, converted_scores, reference_scores
from reranker_seqcls.check.streamed import StreamedCheck, source_shards, streamed_check
from reranker_seqcls.check.twin import consumer_plan, float32_load_bytes
from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.steps import load_check_pairs, resolve_token_ids
from tests.conftest import run_cli

LAYERS = 4  # more than the twin's 2, so the twin really is another shape

CASES = [
    ("qwen3", True, "float32", 3, "qwen3-reranker"),
    ("qwen3", False, "bfloat16", 3, "qwen3-reranker"),
    ("qwen2", False, "float32", 2, "mxbai-rerank-v2"),
    ("gemma", True, "bfloat16", 2, "bge-reranker-v2-gemma"),
]


def _model(tmp_path: Path, family: str, tied: bool, dtype: str, shards: int) -> Path:
    from testkit.tiny import build_model

    return build_model(
        family,  # type: ignore[arg-type]
        tmp_path / f"{family}-{tied}-{dtype}",
        tied=tied,
        dtype=dtype,  # type: ignore[arg-type]
        num_shards=shards,
        config_overrides={"num_hidden_layers": LAYERS},
    )


def _convert(source: Path, out: Path, *args: str) -> Path:
    result = run_cli("convert", source, out, *args)
    assert result.returncode == 0, result.stderr
    return out


def _streamed(source: Path, out: Path, preset: str, **kwargs: object) -> ParityReport:
    recipe = PRESETS[preset]
    return streamed_check(
        source, out, recipe, load_check_pairs(recipe, None),
        token_ids=resolve_token_ids(source, recipe), check_memory=0, log=lambda _m: None,
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


CASE_IDS = [f"{c[4]}-{c[2]}-{'tied' if c[1] else 'untied'}" for c in CASES]


@pytest.mark.parametrize(("family", "tied", "dtype", "shards", "preset"), CASES, ids=CASE_IDS)
def test_layerwise_scores_equal_the_full_model(tmp_path, family, tied, dtype, shards, preset):
    source = _model(tmp_path, family, tied, dtype, shards)
    out = _convert(source, tmp_path / "converted", "--preset", preset)
    recipe = PRESETS[preset]
    pairs = load_check_pairs(recipe, None)
    token_ids = resolve_token_ids(source, recipe)
    check = StreamedCheck(source, out, recipe, pairs, token_ids=token_ids)

    held: set[Path] = set()
    most_held = 0
    for shard in source_shards(source):
        held.add(shard)
        most_held = max(most_held, len(held))
        held -= set(check.feed_source(shard))
    assert not held  # every shard released once used
    assert most_held <= 2  # a shard is kept only while a layer spanning it waits for the next
    for shard in source_shards(out):
        check.feed_converted(shard)
    report = check.report()

    # The full-model scorings of the same pairs, float32 (a bf16 checkpoint upcast).
    official, reference = reference_scores(source, recipe, pairs, token_ids, "float32")
    full = converted_scores(out, [o.ids for o in official], "float32")
    layerwise_ref = [row.reference for row in report.scores]
    layerwise_conv = [row.converted_layerwise for row in report.scores]

    def worst(a: list[list[float]], b: list[list[float]]) -> float:
        pairs = [(x, y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True)]
        return max(abs(x - y) for x, y in pairs)

    # Same batches and padding as the full reference and batched classifier: equal to 1e-5.
    assert worst(layerwise_ref, reference) <= 1e-5
    assert worst(layerwise_conv, full.batched) <= 1e-5
    # One by one (no padding) the full model itself moves by float32 summation order.
    assert worst(layerwise_conv, full.single) <= 1e-5 + worst(full.batched, full.single)
    assert report.passed, report.reasons
    assert report.backbone_hash == "identical"

    # Never more than one layer's weights in memory; the embedding never whole.
    ledger = check.scorer.ledger
    assert 0 < ledger.peak <= check.scorer.largest_layer_bytes()
    assert ledger.held == 0
    vocab = json.loads((source / "config.json").read_text())["vocab_size"]
    assert 0 < ledger.embedding_rows < vocab


def test_good_conversion_passes_with_consumers_on_the_twin(tmp_path):
    source = _model(tmp_path, "qwen3", True, "float32", 2)
    out = _convert(source, tmp_path / "converted", "--preset", "qwen3-reranker")
    report = _streamed(source, out, "qwen3-reranker")
    assert report.passed, report.reasons
    assert report.consumers_proven_on is not None
    assert report.consumers_proven_on.startswith(f"twin (2 of {LAYERS} layers")
    assert set(report.metrics) >= {
        "converted (layerwise)", "twin: converted (batched)", "twin: sentence-transformers"
    }  # fmt: skip
    assert report.metrics["converted (layerwise)"].max_abs_logit < 1e-4
    data = json.loads(json.dumps(report.to_json()))
    assert data["consumers_proven_on"] == report.consumers_proven_on
    assert data["backbone_hash"] == "identical"
    again = ParityReport.from_json(data)
    assert again.consumers_proven_on == report.consumers_proven_on
    assert "Consumers proven on: twin \\(2 of" in report.markdown()
    assert any("consumers proven on: twin" in row for row in report.table_rows())


def _swapped(tmp_path: Path, source: Path) -> Path:
    return _convert(source, tmp_path / "swapped", "--tokens", '["yes", "no"]', "--method",
                    "from_2_way_softmax")  # fmt: skip


def _negated(tmp_path: Path, source: Path) -> Path:
    from safetensors.numpy import load_file, save_file

    out = _convert(source, tmp_path / "negated", "--preset", "qwen3-reranker")
    score = out / "score.safetensors"
    tensors = load_file(str(score))
    score.unlink()
    save_file({k: -v for k, v in tensors.items()}, str(score), metadata={"format": "pt"})
    return out


def _bad_pad(tmp_path: Path, source: Path) -> Path:
    from transformers import AutoTokenizer

    from reranker_seqcls.recipes.prompts import build_prompt_ids

    out = _convert(source, tmp_path / "badpad", "--preset", "qwen3-reranker")
    tokenizer = AutoTokenizer.from_pretrained(source)
    last = build_prompt_ids(tokenizer, PRESETS["qwen3-reranker"], "q", "d")[-1]
    config = json.loads((out / "config.json").read_text())
    config["pad_token_id"] = last
    (out / "config.json").write_text(json.dumps(config))
    return out


def _bad_template(tmp_path: Path, source: Path) -> Path:
    out = _convert(source, tmp_path / "badtemplate", "--preset", "mxbai-rerank-v2")
    template = out / "chat_template.jinja"
    text = template.read_text()
    assert "document: " in text
    template.write_text(text.replace("document: ", "document:", 1))
    return out


def _no_bos(tmp_path: Path, source: Path) -> Path:
    out = _convert(source, tmp_path / "nobos", "--preset", "bge-reranker-v2-gemma")
    st_config = out / "sentence_bert_config.json"
    config = json.loads(st_config.read_text())
    assert config.pop("processing_kwargs")  # asks the template to write <bos>
    st_config.write_text(json.dumps(config))
    return out


def _other_backbone(tmp_path: Path, source: Path) -> Path:
    """A converted copy whose layer-0 q_proj has one value changed (shards copied, not linked:
    the source must stay intact)."""
    out = _convert(source, tmp_path / "otherbackbone", "--preset", "qwen3-reranker", "--copy")
    name = "model.layers.0.self_attn.q_proj.weight"
    for shard in source_shards(out):
        raw = shard.read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + length])
        if name in header:
            start = 8 + length + header[name]["data_offsets"][0]
            patched = bytearray(raw)
            patched[start] ^= 0x40
            shard.unlink()
            shard.write_bytes(bytes(patched))
    return out


BROKEN = [
    # (family, tied, preset the check uses, how the conversion is broken, cause in reasons[0])
    ("qwen3", True, "qwen3-reranker", _swapped, "swapped"),
    ("qwen3", True, "qwen3-reranker", _negated, "negation"),
    ("qwen3", True, "qwen3-reranker", _bad_pad, "pad_token_id"),
    ("qwen2", False, "mxbai-rerank-v2", _bad_template, "renders a different prompt"),
    ("gemma", True, "bge-reranker-v2-gemma", _no_bos, "BOS"),
    ("qwen3", True, "qwen3-reranker", _other_backbone, "backbone differs"),
]


@pytest.mark.parametrize(("family", "tied", "preset", "break_it", "cause"), BROKEN,
                         ids=[b[3].__name__.lstrip("_") for b in BROKEN])  # fmt: skip
def test_broken_conversion_fails_with_its_cause(tmp_path, family, tied, preset, break_it, cause):
    source = _model(tmp_path, family, tied, "float32", 2)
    out = break_it(tmp_path, source)
    report = _streamed(source, out, preset)
    assert not report.passed
    assert cause in report.reasons[0], report.reasons
    assert report.consumers_proven_on is not None
    assert report.consumers_proven_on.startswith("twin")
    if break_it is _bad_template:  # the classifier itself is fine: only the consumer path fails
        assert report.metrics["converted (layerwise)"].max_abs_logit < 1e-3
    if break_it is _other_backbone:
        assert report.backbone_hash == "differs"


def test_softcapping_is_caught_layerwise(tmp_path):
    from tests.test_parity import _gemma2_softcapped

    gemma = _model(tmp_path, "gemma", True, "float32", 1)
    source = _gemma2_softcapped(gemma, tmp_path / "bge-gemma2", 1.5)
    out = _convert(source, tmp_path / "converted", "--preset", "bge-reranker-v2-gemma",
                   "--allow-softcapping")  # fmt: skip
    report = _streamed(source, out, "bge-reranker-v2-gemma")
    assert not report.passed
    assert "final_logit_softcapping" in report.reasons[0]
    allowed = _streamed(source, out, "bge-reranker-v2-gemma", allow_softcapping=True)
    assert allowed.passed, allowed.reasons
    assert allowed.verdict == "PASS (with allowances)"
    assert "final_logit_softcapping" in allowed.allowances[0]
    assert allowed.metrics["converted (layerwise)"].max_abs_logit > 1e-3  # the real difference


def test_consumer_plan_real_where_memory_allows_else_a_twin():
    from bench.synthetic import SHAPES

    tiny = {"hidden_size": 64, "vocab_size": 700, "num_hidden_layers": 2, "intermediate_size": 128,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16}  # fmt: skip
    assert consumer_plan(tiny).on == "real"

    qwen06 = SHAPES["0.6b"].config(None, 0)
    assert 2.3e9 < float32_load_bytes(qwen06) < 2.5e9  # 0.6B parameters (tied) in float32
    plan = consumer_plan(qwen06)
    assert plan.on == "twin"
    # 2 layers of the real width would still be 0.7 GB on disk: the hidden size shrinks too.
    assert plan.overrides["num_hidden_layers"] == 2 and plan.overrides["hidden_size"] == 128
    assert plan.describe(qwen06).startswith("twin (2 of 28 layers, hidden 128, vocab 151669")
    assert consumer_plan(qwen06, budget=4_000_000_000).on == "real"


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    from reranker_seqcls.check.layerwise import LayerwiseScorer
    from reranker_seqcls.errors import BadInput

    source = _model(tmp_path, "qwen3", True, "float32", 1)
    config = json.loads((source / "config.json").read_text())
    config["intermediate_size"] = 96  # the shards hold 128-wide MLPs
    scorer = LayerwiseScorer(config, [[1, 2, 3]], pad_id=0)
    with pytest.raises(BadInput, match=r"mlp.*has shape .* config.json gives .*does not match"):
        for shard in source_shards(source):
            scorer.feed(shard)


def test_cli_check_within_a_memory_budget_goes_layerwise_and_names_the_twin(tmp_path):
    """`check --check-memory` below the model's load size: the real weights are scored layer by
    layer and the consumers on the twin, through the real CLI; a negated head still fails
    with the full check's cause, and a bad size is one line, exit 2."""
    source = _model(tmp_path, "qwen3", True, "float32", 2)
    good = _convert(source, tmp_path / "good", "--preset", "qwen3-reranker")
    report_file = tmp_path / "report.json"
    ok = run_cli("check", source, good, "--preset", "qwen3-reranker", "--check-memory", "1MB",
                 "--report", report_file)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "converted (layerwise)" in ok.stdout
    assert "consumers proven on: twin (2 of" in ok.stdout
    assert "backbone hash: identical" in ok.stdout
    assert json.loads(report_file.read_text())["consumers_proven_on"].startswith("twin")

    negated = _negated(tmp_path, source)
    bad = run_cli("check", source, negated, "--preset", "qwen3-reranker", "--check-memory", "1MB")
    full = run_cli("check", source, negated, "--preset", "qwen3-reranker")
    assert bad.returncode == full.returncode == 1, (bad.stderr, full.stderr)
    assert "consumers proven on: twin" in bad.stdout
    assert bad.stderr.strip().splitlines()[-1] == full.stderr.strip().splitlines()[-1]
    assert "negation" in bad.stderr.strip().splitlines()[-1]

    wrong = run_cli("check", source, good, "--preset", "qwen3-reranker", "--check-memory", "lots")
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == (
        "error: --check-memory 'lots' is not a size: write it like 1.5GB or 800MB"
    )
