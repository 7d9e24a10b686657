"""Files written beside a converted checkpoint so every consumer applies the prompt itself.

The converter copies the source's tokenizer files byte for byte and adds these files:

``chat_template.jinja`` (``TEMPLATE_FILE_NAME``) -- the scoring chat template: messages of roles
    ``query`` and ``document`` (optionally ``system``/``instruction`` for the instruction).
    * transformers (5.x) reads it beside the tokenizer files *in preference to* the
      ``chat_template`` entry of ``tokenizer_config.json`` (``PreTrainedTokenizerBase
      .from_pretrained``: "If independent chat template file(s) exist, they take priority over
      template entries in the tokenizer config"). Published rerankers carry their base model's
      generic chat template in ``tokenizer_config.json``; this file overrides it without
      rewriting the tokenizer files.
    * sentence-transformers (v6) uses ``tokenizer.chat_template`` to render (query, document)
      pairs as messages (its "message" modality), so ``CrossEncoder(dir).predict([(q, d)])``
      scores the family prompt with no prompt code on the user's side.
    * vLLM applies a score template only when given one (``--chat-template`` /
      ``chat_template=``); this is the file to pass.

``modules.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json`` -- the
    sentence-transformers v6 model files, byte-compatible with what ``CrossEncoder.save_pretrained``
    of sentence-transformers 6.2.0 writes for a ``*ForSequenceClassification`` directory:
    * ``modules.json`` makes sentence-transformers read the other two files at all (without it,
      ``CrossEncoder`` builds default modules and ignores them). One module: the ``Transformer`` at
      the repo root.
    * ``sentence_bert_config.json``: task ``sequence-classification``, output ``scores``, and the
      modalities. With a template, ``message`` is listed, so text pairs are turned into
      ``query``/``document`` messages and rendered through the template; without one only
      ``text`` is listed, which pins plain pair tokenization (otherwise the base model's generic
      chat template would silently be applied to pairs). For a family whose prompt starts with
      BOS, ``processing_kwargs.chat_template`` passes ``add_bos_token: true`` to the template,
      because sentence-transformers (via ``apply_chat_template(tokenize=True)``) tokenizes the
      rendered prompt without special tokens, while vLLM tokenizes it with them; the preset
      templates write ``bos_token`` only when asked, so both end with exactly one BOS.
    * ``config_sentence_transformers.json``: ``model_type: CrossEncoder`` and the activation
      (``Sigmoid`` for one label, ``Identity`` for several), so ``predict`` returns
      ``sigmoid(score logit)`` for one label -- the served score, like vLLM's.

This module does not import torch or transformers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from reranker_seqcls.names import (
    CHAT_TEMPLATE_FILE,
    ST_MODEL_CONFIG_FILE,
    ST_MODULE_CONFIG_FILE,
    ST_MODULES_FILE,
)
from reranker_seqcls.recipes.render import ADD_BOS_VARIABLE

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe

TEMPLATE_FILE_NAME = CHAT_TEMPLATE_FILE  # the name the rest of the tool imports from here

# The sentence-transformers release whose file format these files reproduce (recorded as the
# creating version, which sentence-transformers compares against its own on load).
ST_FORMAT_VERSION = "6.2.0"
ST_TRANSFORMER_MODULE = "sentence_transformers.base.modules.transformer.Transformer"
SIGMOID = "torch.nn.modules.activation.Sigmoid"
IDENTITY = "torch.nn.modules.linear.Identity"


def activation_fn(num_labels: int) -> str:
    """sentence-transformers' default activation for a cross-encoder with ``num_labels``."""
    if num_labels < 1:
        raise ValueError(f"num_labels must be at least 1, got {num_labels}")
    return SIGMOID if num_labels == 1 else IDENTITY


def template_variables(recipe: Recipe) -> dict[str, Any]:
    """Template variables a renderer that tokenizes WITHOUT special tokens must pass.

    That is sentence-transformers and ``tokenizer.apply_chat_template(..., tokenize=True)``; a
    renderer that tokenizes the rendered text with special tokens (vLLM's score API) passes none.
    """
    return {ADD_BOS_VARIABLE: True} if recipe.prepend_bos else {}


def _json_bytes(value: Any, *, indent: int, sort_keys: bool = False) -> bytes:
    # Same serialisation as sentence-transformers' json.dump calls (no trailing newline).
    return json.dumps(value, indent=indent, sort_keys=sort_keys).encode("utf-8")


def _modules_json() -> bytes:
    modules = [{"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER_MODULE}]
    return _json_bytes(modules, indent=2)


def _sentence_bert_config(recipe: Recipe, max_seq_length: int | None = None) -> bytes:
    text_modality = {"method": "forward", "method_output_name": "logits"}
    modality_config: dict[str, Any] = {"text": dict(text_modality)}
    config: dict[str, Any] = {"transformer_task": "sequence-classification"}
    if recipe.template is not None:
        # The preset templates read both content shapes; "structured" is what sentence-transformers
        # infers for them anyway (they mention ``.type``), pinned here so it never depends on that
        # heuristic.
        modality_config["message"] = {**text_modality, "format": "structured"}
    config["modality_config"] = modality_config
    config["module_output_name"] = "scores"
    if max_seq_length is not None:
        # the family's scoring length: sentence-transformers cuts there (keeping the template's
        # tail), vLLM refuses longer prompts (convert/lengths.py)
        config["max_seq_length"] = max_seq_length
    variables = template_variables(recipe) if recipe.template is not None else {}
    if variables:
        config["processing_kwargs"] = {"chat_template": variables}
    return _json_bytes(config, indent=4)


def _config_sentence_transformers(num_labels: int, activation: str | None = None) -> bytes:
    config = {
        "__version__": {"sentence_transformers": ST_FORMAT_VERSION},
        "activation_fn": activation or activation_fn(num_labels),
        "default_prompt_name": None,
        "model_type": "CrossEncoder",
        "prompts": {},
    }
    return _json_bytes(config, indent=2, sort_keys=True)


def consumer_files(
    recipe: Recipe, num_labels: int, max_seq_length: int | None = None
) -> dict[str, bytes]:
    """The extra files (name -> content) to write into the converted checkpoint's directory.

    With ``recipe.template`` of ``None`` (a custom recipe without ``--template``) no template file
    is written: no consumer can then build the prompt by itself, and the sentence-transformers
    files only fix the activation and keep pairs out of the base model's generic chat template.
    ``max_seq_length`` (the family's scoring length, :mod:`~reranker_seqcls.convert.lengths`)
    goes into ``sentence_bert_config.json``.
    """
    files: dict[str, bytes] = {}
    if recipe.template is not None:
        files[TEMPLATE_FILE_NAME] = recipe.template.encode("utf-8")
    files[ST_MODULES_FILE] = _modules_json()
    files[ST_MODULE_CONFIG_FILE] = _sentence_bert_config(recipe, max_seq_length)
    # A recipe read from a source's own sentence-transformers files keeps that source's
    # activation (e.g. Identity), so the converted checkpoint serves what the source served.
    activation = recipe.activation_fn if num_labels == 1 else None
    files[ST_MODEL_CONFIG_FILE] = _config_sentence_transformers(num_labels, activation)
    return files
