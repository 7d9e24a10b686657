"""Falcon, an architecture ``convert`` accepts and the layer-by-layer pass cannot drive (its
base model's layers are ``h`` with no learned position table, its norm ``ln_f``): as
``docs/design.md`` says, ``check`` runs the whole check on the real model where it fits
``--check-memory`` (a verdict, the consumers proven on the real model), and refuses in one line
naming the fix where it does not, before any scoring. A tiny Falcon on the tiny Qwen
vocabulary, through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_cli

QWEN = ("--preset", "qwen3-reranker")


def _tiny_falcon(tokenizer_from: Path, out: Path) -> Path:
    """A 2-layer Falcon causal LM (tied head, rotary, multi-query) saved as safetensors with the
    tiny Qwen checkpoint's tokenizer files beside it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    vocab = json.loads((tokenizer_from / "config.json").read_text())["vocab_size"]
    config = AutoConfig.for_model(
        "falcon", vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        bos_token_id=None, eos_token_id=None, max_position_embeddings=2048,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(out, safe_serialization=True)
    for path in tokenizer_from.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(path, out / path.name)
    return out


def test_falcon_is_checked_whole_where_it_fits_and_refused_in_one_line_where_not(
    tiny_model, tmp_path: Path
) -> None:
    source = _tiny_falcon(tiny_model("qwen3", tied=False), tmp_path / "falcon")
    out = tmp_path / "converted"
    converted = run_cli("convert", source, out, *QWEN)
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["architectures"] == [
        "FalconForSequenceClassification"
    ]

    refused = run_cli("check", source, out, *QWEN, "--check-memory", "1KB")
    assert refused.returncode == 2, refused.stderr[-3000:]
    lines = refused.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error")] == [lines[-1]], refused.stderr
    assert lines[-1].startswith("error: the layer-by-layer check cannot run FalconModel")
    assert "raise --check-memory so the whole model is checked" in lines[-1]
    assert "Traceback" not in refused.stderr and "scoring" not in refused.stderr

    checked = run_cli("check", source, out, *QWEN, "--report", tmp_path / "report.json")
    assert checked.returncode == 0, checked.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True and report["consumers_proven_on"] == "real"
    assert {"converted (batched)", "sentence-transformers"} <= set(report["metrics"]), report
    assert "converted (layerwise)" not in checked.stdout + checked.stderr
