"""Each family's prompt as its own scoring code builds it, an over-length pair cut as that code
cuts it (:data:`~.length_rules.LENGTH_RULES`; ``limit``, the model's positions, caps the
family's ``max_length``). :data:`FAMILY_PROMPTS` maps a preset's prompt style to its builder."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from reranker_seqcls.recipes.length_rules import LENGTH_RULES, content_cap
from reranker_seqcls.recipes.prompt_pieces import (
    CTXL_END,
    CTXL_HEAD,
    ZERANK_SUFFIX,
    ZERANK_SYSTEM_START,
    ZERANK_USER_START,
    OfficialPrompt,
    _bos_id_if_distinct,
    _counter,
    _encode,
    _kept,
    _tokenized,
    bge_gemma_pieces,
    mxbai_pieces,
    qwen3_pieces,
)


def zerank2_prompt(
    tokenizer: Any,
    query: str,
    document: str,
    instruction: str | None = None,
    limit: int | None = None,
) -> OfficialPrompt:
    """zerank-2: the chat template's rendering of ``[system: query, user: document]`` with the
    generation prompt, tokenized as one string (Qwen adds no special tokens): one piece.

    An instruction makes the system turn ``<query>{q}</query>\n<instruction>{i}</instruction>``.
    The legacy code's character cuts are applied (``query[:2000]``, ``document[:10000]``, before
    any token is counted; it has no token limit, so ``limit`` is unused), then its ``.strip()``
    of each turn's content (``f"\n{query}\n".strip()``, the same for the document: after the
    cut, so a cut that ends in whitespace loses it too). The shipped template strips the same
    way (Jinja's ``trim`` is ``str.strip()``), so consumers render this text; vLLM's own
    ``zerank2.jinja`` does not strip.
    """
    del limit
    rule = LENGTH_RULES["zerank-2"]
    cut = len(query) > (rule.query_chars or 0) or len(document) > (rule.document_chars or 0)
    query, document = query[: rule.query_chars], document[: rule.document_chars]
    system = query
    if instruction:  # the recommended format: its whole system turn is what is stripped
        system = f"<query>{query}</query>\n<instruction>{instruction}</instruction>"
    text = (
        ZERANK_SYSTEM_START + system.strip() + ZERANK_USER_START + document.strip() + ZERANK_SUFFIX
    )
    return OfficialPrompt(pieces=(text,), ids=_encode(tokenizer, text), cut=cut)


def ctxl_prompt(
    tokenizer: Any,
    query: str,
    document: str,
    instruction: str | None = None,
    limit: int | None = None,
) -> OfficialPrompt:
    """ctxl-rerank-v2: one string, document before query, tokenized with the tokenizer's own
    special tokens (``tokenizer(prompt)``: none for Qwen, ``<s>`` first for Mistral; a special
    token the tokenizer adds becomes a piece of its own). An over-length prompt is cut from the
    right as a whole (``truncation=True, max_length=8192``): the query and the ``" ??"`` anchor
    go first."""
    query_part = f"{query} {instruction}" if instruction else query
    text = f"{CTXL_HEAD}\n<Document> {document}\n<Query> {query_part}{CTXL_END}"
    ids = list(tokenizer(text)["input_ids"])
    length = content_cap("ctxl-rerank-v2", _counter(tokenizer), limit)
    if length is not None and len(ids) > length:
        return OfficialPrompt(pieces=(_kept(tokenizer, ids[:length]),), ids=ids[:length], cut=True)
    plain = _encode(tokenizer, text)
    if ids == plain:
        return OfficialPrompt(pieces=(text,), ids=ids)
    lead = ids[: len(ids) - len(plain)] if ids[len(ids) - len(plain) :] == plain else []
    if not lead:  # a post-processor that adds more than a prefix: keep its ids, one piece
        return OfficialPrompt(pieces=(text,), ids=ids)
    return OfficialPrompt(
        pieces=(*(str(t) for t in tokenizer.convert_ids_to_tokens(lead)), text), ids=ids
    )


def _qwen3_prompt(
    tokenizer: Any, query: str, document: str, instr: str | None, limit: int | None = None
) -> OfficialPrompt:
    """Model card ``process_inputs``: the body is tokenized with ``truncation='longest_first'``
    and ``max_length = max_length - len(prefix) - len(suffix)`` (one sequence: its tail is
    cut), then the prefix and suffix ids are added."""
    pieces = qwen3_pieces(query, document, instr)
    prompt = _tokenized(tokenizer, pieces, None)
    length = content_cap("qwen3-reranker", _counter(tokenizer), limit)
    if length is None or len(prompt.ids) <= length:
        return prompt
    prefix, body, suffix = (_encode(tokenizer, piece) for piece in pieces)
    body = body[: max(length - len(prefix) - len(suffix), 0)]
    return OfficialPrompt(
        pieces=(pieces[0], _kept(tokenizer, body), pieces[2]),
        ids=prefix + body + suffix,
        cut=True,
    )


def _mxbai_prompt(
    tokenizer: Any, query: str, document: str, instr: str | None, limit: int | None = None
) -> OfficialPrompt:
    """``MxbaiRerankV2.prepare_inputs``: the query piece to ``max_length * 3 // 4`` tokens, the
    document piece to ``min(model_max_length - query - fixed, max_length)``, query + sep +
    document to ``max_length`` (``only_second``); the fixed prefix, sep, task prompt and suffix
    come on top."""
    pieces = mxbai_pieces(query, document, instr)
    prompt = _tokenized(tokenizer, pieces, None)
    length = content_cap("mxbai-rerank-v2", _counter(tokenizer), limit)
    if length is None:
        return prompt
    prefix, q, sep, doc, sep2, task, suffix = (_encode(tokenizer, piece) for piece in pieces)
    fixed = len(prefix) + len(task) + len(suffix) + len(sep)
    position_cap = limit if limit is not None else sys.maxsize
    q = q[: length * 3 // 4]
    doc = doc[: max(min(position_cap - len(q) - fixed, length), 0)]
    second = (sep + doc)[: max(length - len(q), 0)]
    if len(q) + len(second) + fixed == len(prompt.ids):
        return prompt
    content = _kept(tokenizer, q + second)
    return OfficialPrompt(
        pieces=(pieces[0], content, pieces[4], pieces[5], pieces[6]),
        ids=prefix + q + second + sep2 + task + suffix,
        cut=True,
    )


def _bge_prompt(
    tokenizer: Any, query: str, document: str, instr: str | None, limit: int | None = None
) -> OfficialPrompt:
    """``FlagLLMReranker.compute_score_single_gpu``: ``"A: q"`` to ``max_length * 3 // 4``
    tokens, ``"B: p"`` to ``max_length``; ``[bos] + query`` and ``sep + passage`` cut
    (``only_second``) to ``max_length + len(sep) + len(prompt)``; then sep and prompt."""
    pieces = bge_gemma_pieces(query, document, instr)
    bos = _bos_id_if_distinct(tokenizer)
    prompt = _tokenized(tokenizer, pieces, bos)
    length = content_cap("bge-reranker-v2-gemma", _counter(tokenizer), limit, pieces[4])
    if length is None:
        return prompt
    q, sep, p, sep2, task = (_encode(tokenizer, piece) for piece in pieces)
    first = ([] if bos is None else [bos]) + q[: length * 3 // 4]
    second = sep + p[:length]
    second = second[: max(length + len(sep) + len(task) - len(first), 0)]
    ids = first + second + sep2 + task
    if ids == prompt.ids:
        return prompt
    lead = prompt.pieces[:1] if bos is not None else ()
    return OfficialPrompt(
        pieces=(*lead, _kept(tokenizer, first[len(lead) :] + second), pieces[3], pieces[4]),
        ids=ids,
        cut=True,
    )


FamilyPrompt = Callable[[Any, str, str, str | None, int | None], OfficialPrompt]
# Each preset's own prompt construction, by the preset's prompt style (its name).
FAMILY_PROMPTS: dict[str, FamilyPrompt] = {
    "qwen3-reranker": _qwen3_prompt,
    "mxbai-rerank-v2": _mxbai_prompt,
    "bge-reranker-v2-gemma": _bge_prompt,
    "zerank-2": zerank2_prompt,
    "ctxl-rerank-v2": ctxl_prompt,
}
