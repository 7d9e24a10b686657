"""The configuration files of OUTPUT: ``config.json`` for the seq-cls class, the tokenizer files
(byte for byte, minus remote-code pointers), the consumer files and the short README."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.convert.consumer_files import (
    IDENTITY,
    SIGMOID,
    TEMPLATE_FILE_NAME,
    consumer_files,
)
from reranker_seqcls.convert.lengths import checkpoint_scoring_length
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE, TOKENIZER_CONFIG_FILE
from reranker_seqcls.recipes.methods import scoring_method
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.safetensors_io.place import copy_new_file
from reranker_seqcls.source import Source

if TYPE_CHECKING:
    from reranker_seqcls.convert.plan import Plan
    from reranker_seqcls.provenance import Provenance

# Keys that make vLLM re-convert from lm_head at load time (which a converted checkpoint lacks),
# and the deprecated sep/pad switch vLLM reads before use_sep_token.
VLLM_RECONVERT_KEYS = (
    "method",
    "classifier_from_token",
    "is_original_qwen3_reranker",
    "use_pad_token",
)
# Pointers to code outside transformers: a converted checkpoint published under the user's name
# must load with stock classes, never with code from the source (or another repo it names).
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines", "trust_remote_code")


def output_config(plan: Plan) -> dict[str, Any]:
    """The source config made a ``*ForSequenceClassification`` config for the recipe's labels."""
    dropped = (*VLLM_RECONVERT_KEYS, *REMOTE_CODE_KEYS)
    config = {k: v for k, v in plan.config.items() if k not in dropped}
    recipe = plan.recipe
    labels = scoring_method(recipe.method).labels([t.text for t in plan.tokens])
    config["architectures"] = [plan.architecture]
    config["num_labels"] = len(labels)
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    config["pad_token_id"] = plan.pad_token_id
    config["use_sep_token"] = False
    if len(labels) == 1:
        config["sentence_transformers"] = {"activation_fn": recipe.activation_fn or SIGMOID}
    return config


def served_score(recipe: Recipe) -> str:
    """What consumers (vLLM, sentence-transformers) of the converted checkpoint return."""
    if recipe.num_labels != 1:
        return "the raw logits of the classifier tokens (Identity)"
    if recipe.activation_fn == IDENTITY:
        return "the raw score logit (Identity activation, as the source's CrossEncoder)"
    formula = recipe.score_formula
    if formula.startswith("sigmoid"):
        return f"sigmoid(score logit) = {formula}, the family's own score"
    if formula:
        return f"sigmoid(score logit); the family's own code returns {formula}"
    return "sigmoid(score logit)"


def write_config_files(plan: Plan, out: Path, log: Log) -> None:
    """``config.json``, the verbatim tokenizer and license files, the consumer files."""
    (out / CONFIG_FILE).write_text(json.dumps(output_config(plan), indent=2) + "\n")
    _copy_verbatim(plan.files, plan.verbatim, out, log)
    length = checkpoint_scoring_length(plan.recipe, plan.config, out)
    if length is not None:
        log(f"scoring length: {length} tokens (sentence_bert_config.json max_seq_length)")
    for name, content in consumer_files(plan.recipe, plan.recipe.num_labels, length).items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def write_local_readme(tmp: Path, output: Path, provenance: Provenance, recipe: Recipe) -> None:
    """A short README saying how to serve OUTPUT (vLLM needs the template passed explicitly);
    ``push`` replaces it with the full model card."""
    from reranker_seqcls.hub.card import render_local_readme, write_card

    template = TEMPLATE_FILE_NAME if recipe.template is not None else None
    write_card(tmp, render_local_readme(output, provenance.to_json(), template))


def _copy_verbatim(source: Source, names: tuple[str, ...], out: Path, log: Log) -> None:
    """Tokenizer and license files, byte for byte (listed and checked by :class:`Source` when
    planning: no file outside the source is ever copied); a tokenizer config loses its
    remote-code pointers."""
    for relative in names:
        path = source.file(relative)
        if path is None:
            raise BadInput(f"{relative!r} disappeared from the source during the conversion")
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative == TOKENIZER_CONFIG_FILE:
            tokenizer_config = source.read_json(relative)  # parsed once already by TokenizerFiles
            present = tokenizer_config if isinstance(tokenizer_config, dict) else {}
            remote = [k for k in REMOTE_CODE_KEYS if k in present]
            if remote:
                kept = {k: v for k, v in present.items() if k not in remote}
                target.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
                log(f"{relative}: dropped {', '.join(remote)} (remote code is never published)")
                continue
        copy_new_file(path, target)
