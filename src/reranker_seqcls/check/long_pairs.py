"""The over-length pairs of the long-input check and the client-side cut the card recommends.

:func:`fitting_pairs` sets apart the pairs the family's code would cut (the main check judges only
those it scores whole); :func:`long_pairs` builds the two over-length pairs (a short query with a
document at least twice the scoring length, and a query of the scoring length with it);
:func:`cut_document` and :func:`client_side` are the card's recipe for a one-string consumer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reranker_seqcls.check.pairs import _LONG_IRRELEVANT, _LONG_RELEVANT, Pair
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.recipes.length_rules import LENGTH_RULES
from reranker_seqcls.recipes.prompts import official_prompt
from reranker_seqcls.recipes.recipe import Recipe

LONG_QUERY = "How do vaccines work?"


def fitting_pairs(source: Path, recipe: Recipe, pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """``pairs`` split into those the family's code scores whole and those it cuts. A cut pair's
    consumer prompt cannot be the family's (the consumers cut elsewhere, or refuse): the main
    check judges the first, the over-length pairs of :func:`.long_inputs.add_long_inputs` measure
    the cut."""
    if recipe.prompt_style not in LENGTH_RULES:
        return pairs, []
    from reranker_seqcls.convert.lengths import position_limit
    from reranker_seqcls.tokenizer_loads import auto_tokenizer

    tokenizer = auto_tokenizer(str(source))
    limit = position_limit(json.loads((source / CONFIG_FILE).read_text("utf-8")))
    fits: list[Pair] = []
    cut: list[Pair] = []
    for pair in pairs:
        prompt = official_prompt(
            tokenizer, recipe, pair.query, pair.document, pair.instruction, position_limit=limit
        )
        (cut if prompt.cut else fits).append(pair)
    return fits, cut


def require_fitting(fits: list[Pair], cut: list[Pair]) -> None:
    """Refuse a check left with fewer than two pairs that fit: before any scoring, and in a
    layerwise pass before any shard moves."""
    if len(fits) < 2:
        raise BadInput(
            f"{len(cut)} of the pairs are longer than the family's scoring length: give pairs "
            "that fit (the check measures over-length pairs by itself)"
        )


def _grow(text: str, count: Callable[[str], int], tokens: int) -> str:
    """Numbered sentences of ``text``, over and over, until the result counts at least
    ``tokens`` (checked every few sentences, so it overshoots by a few sentences at most)."""
    sentences = [f"{s.strip()}." for s in text.split(". ") if s.strip()]
    parts: list[str] = []
    while True:
        parts.append(f"({len(parts) + 1}) {sentences[len(parts) % len(sentences)]}")
        if len(parts) % 4 == 0 and count(" ".join(parts)) >= tokens:
            return " ".join(parts)


def _grow_chars(text: str, chars: int) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(f"({len(parts) + 1}) {text}")
    return " ".join(parts)


def long_pairs(recipe: Recipe, count: Callable[[str], int], length: int | None) -> list[Pair]:
    """A short query with a document of at least twice the scoring length, and a query of the
    scoring length with that document (zerank-2: twice its character cuts)."""
    rule = LENGTH_RULES[recipe.prompt_style]
    if rule.max_length is None:
        document = _grow_chars(_LONG_RELEVANT, 2 * (rule.document_chars or 0))
        query = _grow_chars(_LONG_IRRELEVANT, 2 * (rule.query_chars or 0))
    else:
        if length is None:
            raise ValueError("a family with a token rule has a scoring length")
        document = _grow(_LONG_RELEVANT, count, 2 * length)
        query = _grow(_LONG_IRRELEVANT, count, length)
    return [
        Pair(LONG_QUERY, document, group="long-document"),
        Pair(query, document, group="long-query-and-document"),
    ]


def cut_document(
    tokenizer: Any, query: str, document: str, instruction: str | None, length: int
) -> str:
    """The client-side recipe: the longest prefix of the document, at one of its token
    boundaries, whose rendered prompt fits ``length`` tokens.

    The prompt is rendered as vLLM renders it (``apply_chat_template``) and counted as vLLM
    counts it (with the tokenizer's special tokens). The first guess is ``length`` minus the
    prompt of an empty document; a few tokens more are tried because the document's first
    token can absorb the template's space before it. The kept text is cut at a token's end
    offset (no decode round trip).
    """
    from reranker_seqcls.recipes.render import render_scoring_prompt

    def size(text: str) -> int:
        rendered = render_scoring_prompt(None, query, text, instruction, tokenizer=tokenizer)
        return len(tokenizer(rendered)["input_ids"])

    if size(document) <= length:
        return document
    ends = [end for _, end in tokenizer(document, add_special_tokens=False,
                                        return_offsets_mapping=True)["offset_mapping"]]  # fmt: skip
    keep = min(len(ends), length - size("") + 8)
    while keep > 0 and size(document[: ends[keep - 1]]) > length:
        keep -= 1
    return document[: ends[keep - 1]] if keep > 0 else ""


def template_tail(tokenizer: Any, recipe: Recipe, limit: int | None) -> list[int]:
    """The ids the family's prompt always ends with, whatever the query and document: the
    longest common tail of its prompts for two different short pairs (the tail
    sentence-transformers restores after a cut)."""
    first = official_prompt(tokenizer, recipe, "0", "0", position_limit=limit).ids
    second = official_prompt(tokenizer, recipe, "1 2 3 4", "1 2 3 4", position_limit=limit).ids
    tail = 0
    while tail < min(len(first), len(second)) and first[-1 - tail] == second[-1 - tail]:
        tail += 1
    return first[len(first) - tail :]


def client_side(tokenizer: Any, recipe: Recipe, pair: Pair, length: int | None) -> tuple[str, str]:
    """The card's recipe for a one-string consumer: the (query, document) to send so the
    prompt is cut where the family cuts -- its character cuts (zerank-2), else the document cut
    to the scoring length (:func:`cut_document`)."""
    rule = LENGTH_RULES[recipe.prompt_style]
    if rule.max_length is None or length is None:
        return pair.query[: rule.query_chars], pair.document[: rule.document_chars]
    return pair.query, cut_document(tokenizer, pair.query, pair.document, pair.instruction, length)
