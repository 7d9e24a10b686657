"""How each family's own code cuts an over-length pair (:data:`LENGTH_RULES`, sources in
``docs/long-inputs.md``), and the token counts that follow from it: the family's ``max_length``
capped by the model's positions (:func:`content_cap`) and the scoring length
(:func:`scoring_length`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reranker_seqcls.recipes.prompt_pieces import (
    BGE_DEFAULT_PROMPT,
    BGE_SEP,
    MXBAI_PREFIX,
    MXBAI_SEP,
    MXBAI_SUFFIX,
    MXBAI_TASK_PROMPT,
)


@dataclass(frozen=True)
class LengthRule:
    """How a family's own code cuts an over-length pair (sources: ``docs/long-inputs.md``)."""

    max_length: int | None  # the code's ``max_length`` in tokens; None: it counts no tokens
    rule: str  # the rule, in words (the card and the docs show it)
    source: str
    query_chars: int | None = None  # character cuts made before tokenizing
    document_chars: int | None = None


LENGTH_RULES: dict[str, LengthRule] = {
    "qwen3-reranker": LengthRule(
        8192,
        "the instruction/query/document body is right-truncated to 8192 tokens minus the fixed "
        "prefix and suffix, then those are added: the document's tail is cut, never the template",
        "Qwen3-Reranker model card code (process_inputs, max_length = 8192)",
    ),
    "mxbai-rerank-v2": LengthRule(
        8192,
        "the query piece is cut to 3/4 of 8192 tokens, query + separator + document to 8192 "
        "(the document's tail goes), and the fixed system, task prompt and suffix come on top",
        "mxbai-rerank library, MxbaiRerankV2.prepare_inputs (max_length = 8192)",
    ),
    "bge-reranker-v2-gemma": LengthRule(
        512,
        '"A: query" is cut to 384 tokens and "B: passage" to 512, then the passage again so '
        "that BOS + query + separator + passage fit 512 + separator + prompt; the separator and "
        "the prompt are always added",
        "FlagEmbedding FlagLLMReranker.compute_score (max_length = 512, query_max_length = 3/4)",
    ),
    "zerank-2": LengthRule(
        None,
        "the query is cut to 2,000 and the document to 10,000 characters; no token limit",
        "zeroentropy modeling_zeranker.py (query[:2_000], document[:10_000])",
        query_chars=2000,
        document_chars=10000,
    ),
    "ctxl-rerank-v2": LengthRule(
        8192,
        "the whole prompt is right-truncated to 8192 tokens: past it the query and the final "
        '" ??" anchor are cut, and the score is read on a document token',
        "ContextualAI paper code (tokenizer(..., truncation=True, max_length=8192))",
    ),
}


def _fixed_tokens(style: str, count: Callable[[str], int], bge_prompt: str | None) -> int:
    """Tokens the family's code adds outside its ``max_length``."""
    if style == "mxbai-rerank-v2":
        return (
            count(MXBAI_PREFIX) + count(MXBAI_TASK_PROMPT) + count(MXBAI_SUFFIX) + count(MXBAI_SEP)
        )
    if style == "bge-reranker-v2-gemma":
        return 2 * (count(BGE_SEP) + count(bge_prompt or BGE_DEFAULT_PROMPT))
    return 0


def content_cap(
    style: str,
    count: Callable[[str], int],
    position_limit: int | None,
    bge_prompt: str | None = None,
) -> int | None:
    """The family's ``max_length`` (its own meaning: the whole prompt for Qwen3 and ctxl, the
    query and document part for mxbai and bge), lowered so that the longest prompt the code can
    build fits ``position_limit``; None for a family with no token limit."""
    rule = LENGTH_RULES.get(style)
    if rule is None or rule.max_length is None:
        return None
    if position_limit is None:
        return rule.max_length
    return max(min(rule.max_length, position_limit - _fixed_tokens(style, count, bge_prompt)), 1)


def scoring_length(
    style: str, count: Callable[[str], int], position_limit: int | None
) -> int | None:
    """The most tokens the family's code feeds the model for one pair (with its default
    prompt); None when it counts no tokens (zerank-2's cuts are in characters)."""
    cap = content_cap(style, count, position_limit)
    if cap is None:
        return None
    return cap + _fixed_tokens(style, count, None)
