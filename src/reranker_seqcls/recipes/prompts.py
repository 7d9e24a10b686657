"""The families' original prompt construction: the parity reference.

``official_prompt`` reproduces, token for token, how each family's own scoring code builds the
ids it feeds the causal LM (official model-card code for Qwen3-Reranker, the ``mxbai-rerank``
library for mxbai-rerank-v2, FlagEmbedding's ``FlagLLMReranker`` for bge-reranker-v2-gemma), and
keeps the text *pieces* those codes tokenize one by one before concatenating the ids
(:class:`OfficialPrompt`): their join is the text a one-string consumer must render, their
boundaries are where its tokenization may differ. The scoring templates in ``templates/`` render
that text as one string. Qwen3's boundaries are special tokens, so it always gives the same ids.
mxbai's and bge's pieces are joined by a ``"\\n"`` piece, and a real vocabulary merges it with
whatever punctuation or whitespace ends the query or document before it (Qwen's ``"?Ċ"``,
``".Ċ"``, ``"ĠĊ"``; Gemma's ``"\\n\\n"``): consumers (vLLM, sentence-transformers) can only
tokenize one string, so such inputs score slightly differently there than in the original code
(:mod:`prompt_gap` tells that apart from a template bug).
Over-length pairs are cut the way each family's own code cuts them (:data:`LENGTH_RULES`,
``docs/long-inputs.md`` gives the sources): ``position_limit`` (the model's
``max_position_embeddings``) caps the family's ``max_length`` where it is smaller, as on the tiny
test models. A pair that fits is never touched.

Custom recipes render their template the way consumers do (:mod:`render`).

This module dispatches by prompt style (:func:`official_prompt`) and renders custom templates;
the fixed strings and pieces are in :mod:`prompt_pieces`, each family's builder (with its cut) in
:mod:`family_prompts`, the over-length rules in :mod:`length_rules`. The names callers use from
here are re-exported.

Nothing here imports torch; transformers is imported lazily, only for rendering.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.family_prompts import FAMILY_PROMPTS
from reranker_seqcls.recipes.length_rules import LENGTH_RULES, scoring_length
from reranker_seqcls.recipes.presets import QWEN3_DEFAULT_INSTRUCTION
from reranker_seqcls.recipes.prompt_pieces import (
    BGE_DEFAULT_PROMPT,
    CTXL_END,
    CTXL_HEAD,
    MXBAI_PREFIX,
    MXBAI_SUFFIX,
    MXBAI_TASK_PROMPT,
    QWEN3_PREFIX,
    QWEN3_SUFFIX,
    OfficialPrompt,
    _encode,
    _tokenized,
)
from reranker_seqcls.recipes.render import render_scoring_prompt

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe

__all__ = [  # the names callers (the check, tests) use from here; their homes are above
    "BGE_DEFAULT_PROMPT",
    "CTXL_END",
    "CTXL_HEAD",
    "LENGTH_RULES",
    "MAX_PROMPT_TOKENS",
    "MXBAI_PREFIX",
    "MXBAI_SUFFIX",
    "MXBAI_TASK_PROMPT",
    "PROMPT_STYLES",
    "QWEN3_DEFAULT_INSTRUCTION",
    "QWEN3_PREFIX",
    "QWEN3_SUFFIX",
    "TEMPLATE_STYLES",
    "OfficialPrompt",
    "build_prompt_ids",
    "official_prompt",
    "scoring_length",
    "template_prompt",
]


def template_prompt(
    tokenizer: Any,
    template: str,
    query: str,
    document: str,
    instruction: str | None = None,
    *,
    prepend_bos: bool = False,
    structured: bool = False,
) -> OfficialPrompt:
    """A custom template: render as a consumer would, tokenize without special tokens (one
    piece). With ``prepend_bos`` the ids start with exactly one BOS, whether or not the template
    wrote it. ``structured`` renders ``{"type": "text"}`` content items, as
    sentence-transformers does."""
    text = render_scoring_prompt(
        template, query, document, instruction, tokenizer=tokenizer, structured=structured
    )
    ids = _encode(tokenizer, text)
    if len(ids) > MAX_PROMPT_TOKENS:
        raise BadInput(
            f"the prompt template rendered {len(ids)} tokens for one pair, over the "
            f"{MAX_PROMPT_TOKENS}-token bound of a scoring prompt: fix the template"
        )
    bos = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos is not None and (not ids or ids[0] != bos):
        return _tokenized(tokenizer, [text], int(bos))
    return OfficialPrompt(pieces=(text,), ids=ids)


def official_prompt(
    tokenizer: Any,
    recipe: Recipe,
    query: str,
    document: str,
    instruction: str | None = None,
    *,
    position_limit: int | None = None,
) -> OfficialPrompt:
    """The prompt the family's original scoring code feeds the causal LM for one pair, cut as
    that code cuts an over-length pair (:data:`LENGTH_RULES`; ``position_limit`` caps the
    family's ``max_length``).

    ``instruction`` of ``None`` means the recipe's default (the family's own default when the
    recipe has none). The score is read from the logits at the last position.
    """
    if instruction is None:
        instruction = recipe.default_instruction
    style = recipe.prompt_style
    family = FAMILY_PROMPTS.get(style)
    if family is not None:
        return family(tokenizer, query, document, instruction, position_limit)
    if style in TEMPLATE_STYLES:
        if recipe.template is None:
            raise BadInput(
                f"recipe {recipe.name!r} has no prompt template: give one with --template FILE"
            )
        return template_prompt(
            tokenizer,
            recipe.template,
            query,
            document,
            instruction,
            prepend_bos=recipe.prepend_bos,
            # a recipe read from sentence-transformers files: its CrossEncoder's own rendering
            structured=style == "sentence-transformers",
        )
    raise BadInput(f"unknown prompt style {style!r}: use one of {', '.join(PROMPT_STYLES)}")


# A scoring prompt longer than any model's context is a broken (or hostile) template.
MAX_PROMPT_TOKENS = 1 << 17

# Recipes without a family prompt render their template: custom ones as vLLM does, ones read
# from sentence-transformers files as their CrossEncoder does.
TEMPLATE_STYLES = ("template", "sentence-transformers")
PROMPT_STYLES: tuple[str, ...] = (*FAMILY_PROMPTS, *TEMPLATE_STYLES)


def build_prompt_ids(
    tokenizer: Any,
    recipe: Recipe,
    query: str,
    document: str,
    instruction: str | None = None,
    *,
    position_limit: int | None = None,
) -> list[int]:
    """The ids the family's original scoring code feeds the causal LM for one pair."""
    return official_prompt(
        tokenizer, recipe, query, document, instruction, position_limit=position_limit
    ).ids
