"""The reference conversion the benchmark compares against.

A re-implementation of the steps of vLLM's ``examples/pooling/score/convert_model_to_seq_cls.py``
(same flags, same calls, same order), so that its time and memory can be measured on a local
checkpoint:

1. ``AutoTokenizer.from_pretrained(model_name)``;
2. ``AutoModelForCausalLM.from_pretrained(model_name, device_map=device)``;
3. ``AutoModelForSequenceClassification.from_pretrained(model_name, num_labels=...,
   ignore_mismatched_sizes=True, device_map=device)`` — a second full copy of the backbone;
4. ``from_2_way_softmax``: ``score.weight = lm_head[true] - lm_head[false]`` computed in float32
   and copied into the score layer (bias zeroed if any); ``no_post_processing``: the rows as-is;
5. ``config.use_sep_token = use_sep_token``; ``config.sep_token_id = tokenizer.sep_token_id``;
6. ``seq_cls_model.save_pretrained(path)`` and ``tokenizer.save_pretrained(path)``.

Like the original it passes no ``dtype``: with transformers 5 that means ``dtype="auto"``, so a
bfloat16 checkpoint loads (and is saved) in bfloat16. ``device_map`` is passed only when it is not
the default ``cpu`` because transformers then requires ``accelerate`` (not a dependency of this
project); on CPU both spellings load the same weights in the same place.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
import transformers


def from_2_way_softmax(
    causal_lm: Any, seq_cls_model: Any, tokenizer: Any, tokens: list[str], device: str
) -> None:
    """score = lm_head[true] - lm_head[false], in float32 (tokens are [false, true])."""
    assert len(tokens) == 2, "from_2_way_softmax needs exactly two tokens: [false, true]"
    lm_head_weights = causal_lm.lm_head.weight
    false_id = tokenizer.convert_tokens_to_ids(tokens[0])
    true_id = tokenizer.convert_tokens_to_ids(tokens[1])
    score_weight = lm_head_weights[true_id].to(device).to(torch.float32) - lm_head_weights[
        false_id
    ].to(device).to(torch.float32)
    with torch.no_grad():
        seq_cls_model.score.weight.copy_(score_weight.unsqueeze(0))
        if seq_cls_model.score.bias is not None:
            seq_cls_model.score.bias.zero_()


def no_post_processing(
    causal_lm: Any, seq_cls_model: Any, tokenizer: Any, tokens: list[str], device: str
) -> None:
    """score = the classifier tokens' rows of lm_head, one label per token."""
    lm_head_weights = causal_lm.lm_head.weight
    token_ids = [tokenizer.convert_tokens_to_ids(t) for t in tokens]
    score_weight = lm_head_weights[token_ids].to(device)
    with torch.no_grad():
        seq_cls_model.score.weight.copy_(score_weight)
        if seq_cls_model.score.bias is not None:
            seq_cls_model.score.bias.zero_()


METHODS = {f.__name__: f for f in (from_2_way_softmax, no_post_processing)}


def converting(
    model_name: str,
    classifier_from_tokens: list[str],
    path: str,
    method: str,
    use_sep_token: bool = False,
    device: str = "cpu",
) -> None:
    assert method in METHODS, f"unknown method: {method}"
    if method == "from_2_way_softmax":
        assert len(classifier_from_tokens) == 2
        num_labels = 1
    else:
        num_labels = len(classifier_from_tokens)
    placement: dict[str, Any] = {} if device == "cpu" else {"device_map": device}

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_name)
    causal_lm = transformers.AutoModelForCausalLM.from_pretrained(model_name, **placement)
    seq_cls_model = transformers.AutoModelForSequenceClassification.from_pretrained(
        model_name, num_labels=num_labels, ignore_mismatched_sizes=True, **placement
    )
    METHODS[method](causal_lm, seq_cls_model, tokenizer, classifier_from_tokens, device)

    seq_cls_model.config.use_sep_token = use_sep_token
    seq_cls_model.config.sep_token_id = tokenizer.sep_token_id

    seq_cls_model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Converting *ForCausalLM models to *ForSequenceClassification models "
        "(re-implementation of vLLM's example script, for benchmarking)."
    )
    parser.add_argument("--model_name", required=True, help="local checkpoint directory")
    parser.add_argument("--classifier_from_tokens", default='["Yes"]')
    parser.add_argument("--method", default="no_post_processing")
    parser.add_argument("--use-sep-token", action="store_true")
    parser.add_argument("--path", required=True, help="output directory")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    converting(
        model_name=args.model_name,
        classifier_from_tokens=json.loads(args.classifier_from_tokens),
        path=args.path,
        method=args.method,
        use_sep_token=args.use_sep_token,
        device=args.device,
    )


if __name__ == "__main__":
    main()
