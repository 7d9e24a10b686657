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
Truncation of long inputs, which the original codes apply per piece, is not reproduced: parity is
checked on inputs that fit.

Custom recipes render their template the way consumers do (:mod:`render`).

Nothing here imports torch; transformers is imported lazily, only for rendering.
"""

from __future__ import annotations

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
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> OfficialPrompt:
    """zerank-2: the chat template's rendering of ``[system: query, user: document]`` with the
    generation prompt, tokenized as one string (Qwen adds no special tokens): one piece.

    An instruction makes the system turn ``<query>{q}</query>\n<instruction>{i}</instruction>``.
    The legacy code's ``.strip()`` and character cuts (2,000 / 10,000) are not applied, as in
    vLLM's ``zerank2.jinja``: parity is checked on inputs without surrounding whitespace.
    """
    system = query
    if instruction:
        system = f"<query>{query}</query>\n<instruction>{instruction}</instruction>"
    text = ZERANK_SYSTEM_START + system + ZERANK_USER_START + document + ZERANK_SUFFIX
    return OfficialPrompt(pieces=(text,), ids=_encode(tokenizer, text))


def ctxl_prompt(
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> OfficialPrompt:
    """ctxl-rerank-v2: one string, document before query, tokenized with the tokenizer's own
    special tokens (``tokenizer(prompt)``: none for Qwen, ``<s>`` first for Mistral; a special
    token the tokenizer adds becomes a piece of its own)."""
    query_part = f"{query} {instruction}" if instruction else query
    text = f"{CTXL_HEAD}\n<Document> {document}\n<Query> {query_part}{CTXL_END}"
    ids = list(tokenizer(text)["input_ids"])
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
) -> OfficialPrompt:
    """The prompt the family's original scoring code feeds the causal LM for one pair.

    ``instruction`` of ``None`` means the recipe's default (the family's own default when the
    recipe has none). The score is read from the logits at the last position.
    """
    if instruction is None:
        instruction = recipe.default_instruction
    style = recipe.prompt_style
    family = _FAMILY_PROMPTS.get(style)
    if family is not None:
        return family(tokenizer, query, document, instruction)
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


def _qwen3_prompt(tokenizer: Any, query: str, document: str, instr: str | None) -> OfficialPrompt:
    return _tokenized(tokenizer, qwen3_pieces(query, document, instr), None)


def _mxbai_prompt(tokenizer: Any, query: str, document: str, instr: str | None) -> OfficialPrompt:
    return _tokenized(tokenizer, mxbai_pieces(query, document, instr), None)


def _bge_prompt(tokenizer: Any, query: str, document: str, instr: str | None) -> OfficialPrompt:
    pieces = bge_gemma_pieces(query, document, instr)
    return _tokenized(tokenizer, pieces, _bos_id_if_distinct(tokenizer))


# A scoring prompt longer than any model's context is a broken (or hostile) template.
MAX_PROMPT_TOKENS = 1 << 17

FamilyPrompt = Callable[[Any, str, str, str | None], OfficialPrompt]
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
) -> list[int]:
    """The ids the family's original scoring code feeds the causal LM for one pair."""
    return official_prompt(tokenizer, recipe, query, document, instruction).ids
