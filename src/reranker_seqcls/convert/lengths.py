"""The scoring length a converted checkpoint carries, so consumers cut where the family does.

The family's own code bounds the prompt it scores (:data:`reranker_seqcls.recipes.length_rules
.LENGTH_RULES`). ``max_seq_length`` in ``sentence_bert_config.json`` carries that bound to both
consumers that read files (measured, ``docs/long-inputs.md``):

* sentence-transformers (6.2) makes it the tokenizer's ``model_max_length``: a longer rendered
  prompt is right-truncated to it and the template's fixed tail (everything after the document)
  is written back over the last tokens (``restore_suffix``, on by default), so the cut falls on
  the document, as in Qwen3-Reranker's own code;
* vLLM (0.32) takes it as ``max_model_len`` (``get_sentence_transformer_tokenizer_config``):
  a longer prompt is refused with an error instead of being scored past the family's length.

Tokens are counted with the ``tokenizers`` library on the converted ``tokenizer.json`` (no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reranker_seqcls.names import TOKENIZER_FILE
from reranker_seqcls.recipes.length_rules import scoring_length
from reranker_seqcls.recipes.recipe import Recipe


def position_limit(config: dict[str, Any]) -> int | None:
    """The model's ``max_position_embeddings`` (a positive int), or None."""
    from reranker_seqcls.convert.rules import config_value

    value = config_value(config, "max_position_embeddings")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def checkpoint_scoring_length(
    recipe: Recipe, config: dict[str, Any], directory: Path
) -> int | None:
    """The scoring length to write for ``recipe``: the family's bound in tokens of the
    tokenizer in ``directory``, capped by the model's positions; None for a family without a
    token bound (zerank-2, custom recipes) or a directory without ``tokenizer.json``."""
    path = directory / TOKENIZER_FILE
    if not path.is_file():
        return None
    from reranker_seqcls.tokenizer_loads import fast_tokenizer

    tokenizer = fast_tokenizer(path)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return scoring_length(recipe.prompt_style, count, position_limit(config))
