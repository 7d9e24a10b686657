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

Nothing here imports torch; transformers is imported lazily, only for rendering.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.presets import QWEN3_DEFAULT_INSTRUCTION
from reranker_seqcls.recipes.render import render_scoring_prompt

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe

# --- Qwen3-Reranker (model card code) -------------------------------------------------------
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

# --- mxbai-rerank-v2 (mxbai_rerank/mxbai_rerank_v2.py) ---------------------------------------
MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n<|im_start|>user\n"
)
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_SEP = "\n"
MXBAI_TASK_PROMPT = (
    "You are a search relevance expert who evaluates how well documents match search queries. "
    "For each query-document pair, carefully analyze the semantic relationship between them, then "
    "provide your binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)

# --- bge-reranker-v2-gemma (FlagEmbedding decoder_only/base.py) ------------------------------
BGE_SEP = "\n"
BGE_DEFAULT_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)

# --- zerank-2 (zeroentropy modeling_zeranker.py; vLLM examples/pooling/score/template/zerank2)
ZERANK_SYSTEM_START = "<|im_start|>system\n"
ZERANK_USER_START = "<|im_end|>\n<|im_start|>user\n"
ZERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"

# --- ctxl-rerank-v2 (ContextualAI model card code) --------------------------------------------
CTXL_HEAD = "Check whether a given document contains information helpful to answer the query."
CTXL_END = " ??"


def _encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added, as every family's code does."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _bos_id_if_distinct(tokenizer: Any) -> int | None:
    """FlagEmbedding's rule: prepend BOS when the tokenizer has one and it is not the pad token."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None or bos == getattr(tokenizer, "pad_token_id", None):
        return None
    return int(bos)


@dataclass(frozen=True)
class OfficialPrompt:
    """One pair's prompt as the family's code builds it: the text pieces it tokenizes one by one
    and the concatenated ids. ``"".join(pieces)`` is the text a one-string consumer must render;
    the piece boundaries are where a one-string tokenization may merge tokens across."""

    pieces: tuple[str, ...]
    ids: list[int]
    cut: bool = False  # the family's over-length rule shortened this pair

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def boundaries(self) -> list[int]:
        """Character offsets in :attr:`text` where one piece ends and the next begins."""
        offsets, position = [], 0
        for piece in self.pieces[:-1]:
            position += len(piece)
            offsets.append(position)
        return offsets


def qwen3_pieces(query: str, document: str, instruction: str | None = None) -> list[str]:
    """Qwen3-Reranker (model card code): prefix, body and suffix, tokenized separately."""
    if instruction is None:
        instruction = QWEN3_DEFAULT_INSTRUCTION
    body = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    return [QWEN3_PREFIX, body, QWEN3_SUFFIX]


def mxbai_pieces(query: str, document: str, instruction: str | None = None) -> list[str]:
    """mxbai-rerank-v2: ``prefix + query + sep + document + sep + task + suffix``.

    As in the library, the instruction (when truthy) is joined to the query text before
    tokenizing: ``"instruction: {i}\\nquery: {q}"`` is one piece.
    """
    query_prompt = f"query: {query}"
    if instruction:
        query_prompt = f"instruction: {instruction}{MXBAI_SEP}{query_prompt}"
    return [MXBAI_PREFIX, query_prompt, MXBAI_SEP, f"document: {document}", MXBAI_SEP,
            MXBAI_TASK_PROMPT, MXBAI_SUFFIX]  # fmt: skip


def bge_gemma_pieces(query: str, document: str, instruction: str | None = None) -> list[str]:
    """bge-reranker-v2-gemma: ``"A: q" + "\\n" + "B: p" + "\\n" + prompt`` (after the BOS).

    ``instruction`` replaces the final prompt sentence, as FlagEmbedding's ``prompt=`` does.
    """
    prompt = BGE_DEFAULT_PROMPT if instruction is None else instruction
    return [f"A: {query}", BGE_SEP, f"B: {document}", BGE_SEP, prompt]


def _tokenized(tokenizer: Any, pieces: list[str], bos: int | None) -> OfficialPrompt:
    """Each piece tokenized on its own, ids concatenated; ``bos`` (its token text becomes the
    first piece) is prepended as an id, as the families' codes do."""
    ids = [] if bos is None else [bos]
    for piece in pieces:
        ids += _encode(tokenizer, piece)
    lead = () if bos is None else (str(tokenizer.convert_ids_to_tokens(bos)),)
    return OfficialPrompt(pieces=(*lead, *pieces), ids=ids)


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
    any token is counted; it has no token limit, so ``limit`` is unused). Its ``.strip()`` is not,
    as in vLLM's ``zerank2.jinja``: parity is checked on inputs without surrounding whitespace.
    """
    del limit
    rule = LENGTH_RULES["zerank-2"]
    cut = len(query) > (rule.query_chars or 0) or len(document) > (rule.document_chars or 0)
    query, document = query[: rule.query_chars], document[: rule.document_chars]
    system = query
    if instruction:
        system = f"<query>{query}</query>\n<instruction>{instruction}</instruction>"
    text = ZERANK_SYSTEM_START + system + ZERANK_USER_START + document + ZERANK_SUFFIX
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
    family = _FAMILY_PROMPTS.get(style)
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


def _kept(tokenizer: Any, ids: list[int]) -> str:
    """The text of the ids a truncation kept (a piece of :class:`OfficialPrompt`)."""
    return str(tokenizer.decode(ids))


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


# A scoring prompt longer than any model's context is a broken (or hostile) template.
MAX_PROMPT_TOKENS = 1 << 17

FamilyPrompt = Callable[[Any, str, str, str | None, int | None], OfficialPrompt]
# Each preset's own prompt construction, by the preset's prompt style (its name).
_FAMILY_PROMPTS: dict[str, FamilyPrompt] = {
    "qwen3-reranker": _qwen3_prompt,
    "mxbai-rerank-v2": _mxbai_prompt,
    "bge-reranker-v2-gemma": _bge_prompt,
    "zerank-2": zerank2_prompt,
    "ctxl-rerank-v2": ctxl_prompt,
}
# Recipes without a family prompt render their template: custom ones as vLLM does, ones read
# from sentence-transformers files as their CrossEncoder does.
TEMPLATE_STYLES = ("template", "sentence-transformers")
PROMPT_STYLES: tuple[str, ...] = (*_FAMILY_PROMPTS, *TEMPLATE_STYLES)


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


# --- Over-length pairs: each family's own rule ------------------------------------------------


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


def _counter(tokenizer: Any) -> Callable[[str], int]:
    return lambda text: len(_encode(tokenizer, text))


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
