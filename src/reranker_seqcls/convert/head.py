"""The classifier head: which source tensor's rows become score.weight, the checks that the
recipe's token ids fit it, and the score weight computed from those rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reranker_seqcls.convert.tokens import ResolvedToken
from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.methods import scoring_method
from reranker_seqcls.safetensors_io.checkpoint import HEAD_NAME, Checkpoint
from reranker_seqcls.safetensors_io.header import SafetensorsFile

SCORE_NAME = "score.weight"
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


def head_tensor(ckpt: Checkpoint, config: dict[str, Any], names: set[str]) -> tuple[str, bool]:
    """The tensor whose rows become score.weight, and whether it is an untied lm_head."""
    if HEAD_NAME in names:
        return HEAD_NAME, True
    for suffix in EMBEDDING_SUFFIXES:
        embedding = ckpt.find(suffix)
        if embedding is not None:
            break
    else:
        raise BadInput(
            "the checkpoint has neither lm_head.weight nor input embeddings: it is incomplete"
        )
    if config.get("tie_word_embeddings") is False:
        raise BadInput(
            "config.json says tie_word_embeddings=false but the checkpoint has no lm_head.weight: "
            "the checkpoint is incomplete, re-download it"
        )
    return embedding, False


def check_head_shape(ckpt: Checkpoint, head_name: str, tokens: Sequence[ResolvedToken]) -> None:
    info = ckpt.tensor(head_name)
    if len(info.shape) != 2:
        raise BadInput(f"{head_name} has shape {list(info.shape)}, expected [vocab, hidden]")
    too_big = [t for t in tokens if t.id >= info.shape[0]]
    if too_big:
        raise BadInput(
            f"classifier token {too_big[0].describe()} is outside {head_name} "
            f"({info.shape[0]} rows): the tokenizer does not match the weights"
        )


def check_pad_id(ckpt: Checkpoint, head_name: str, pad_token_id: int) -> None:
    """The classifier pools at the last non-pad token: the pad id must be a real embedding row."""
    embedding = next((e for s in EMBEDDING_SUFFIXES if (e := ckpt.find(s))), None)
    info = ckpt.tensor(embedding or head_name)
    if len(info.shape) == 2 and not 0 <= pad_token_id < info.shape[0]:
        raise BadInput(
            f"the pad token id {pad_token_id} is outside {info.name} ({info.shape[0]} rows): "
            "the tokenizer does not match the weights"
        )


def compute_score(
    ckpt: Checkpoint | SafetensorsFile,
    head_name: str,
    token_ids: list[int],
    method: str,
    scale: float = 1.0,
) -> tuple[list[list[float]], str]:
    """The score weight rows (float64, :meth:`ScoringMethod.head_rows` of the tokens' head rows)
    and the dtype to store them in (the head's own). :func:`encode_floats` then rounds each value
    once to the storage dtype, so the head is the correctly rounded ``scale * (W_t - W_f)``.
    """
    dtype = ckpt.tensor(head_name).dtype
    rows = ckpt.read_rows(head_name, token_ids)
    return scoring_method(method).head_rows(rows, scale), dtype
