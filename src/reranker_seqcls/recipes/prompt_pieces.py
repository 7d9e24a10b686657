"""Each family's prompt pieces: the fixed strings of its own scoring code and the pieces it
tokenizes one by one (:class:`OfficialPrompt` holds them with the concatenated ids).

The prompts themselves, cut as each family cuts an over-length pair, are built in
:mod:`.family_prompts`; :mod:`.prompts` dispatches by prompt style.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reranker_seqcls.recipes.presets import QWEN3_DEFAULT_INSTRUCTION

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


def _kept(tokenizer: Any, ids: list[int]) -> str:
    """The text of the ids a truncation kept (a piece of :class:`OfficialPrompt`)."""
    return str(tokenizer.decode(ids))


def _counter(tokenizer: Any) -> Callable[[str], int]:
    return lambda text: len(_encode(tokenizer, text))
