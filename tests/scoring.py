"""Test helpers: score token-id prompts with a causal LM and with a converted classifier."""

from __future__ import annotations

from pathlib import Path

import torch

from reranker_seqcls.check.parity import left_pad


@torch.no_grad()
def causal_last_logits(
    model_dir: Path, prompts: list[list[int]], token_ids: list[int], pad_id: int, *, batched: bool
) -> torch.Tensor:
    """Logits of ``token_ids`` at the last prompt token, float32, shape [n_prompts, n_tokens]."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    rows = []
    batches = [prompts] if batched else [[p] for p in prompts]
    for batch in batches:
        ids, mask, positions = left_pad(batch, pad_id)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        rows.append(logits[:, -1, token_ids].float())
    return torch.cat(rows)


@torch.no_grad()
def seqcls_logits(model_dir: Path, prompts: list[list[int]], *, batched: bool) -> torch.Tensor:
    """Logits of the converted classifier, float32, shape [n_prompts, num_labels]; asserts that
    it loads with no missing and no unexpected weights."""
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_dir, dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    model.eval()
    pad_id = model.config.pad_token_id
    rows = []
    batches = [prompts] if batched else [[p] for p in prompts]
    for batch in batches:
        ids, mask, positions = left_pad(batch, pad_id)
        rows.append(model(input_ids=ids, attention_mask=mask, position_ids=positions).logits)
    return torch.cat(rows).float()
