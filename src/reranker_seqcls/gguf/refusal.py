"""Which rerankers can become a GGUF that llama.cpp scores: those of the ``qwen3`` architecture.

llama.cpp creates the classifier head (``cls_out``) only for the ``qwen3``, ``qwen3vl`` and BERT
architectures (``src/models/*.cpp``). A ``qwen2`` (mxbai-rerank-v2), ``gemma``
(bge-reranker-v2-gemma) or ``llama``/``mistral`` (ctxl-rerank-v2-6b) GGUF loads no head, so
``--pooling rank`` has nothing to score with: such families are refused before anything is
written.
"""

from __future__ import annotations

from typing import Any

from reranker_seqcls.errors import BadInput

SUPPORTED_MODEL_TYPES = ("qwen3",)
# Presets whose every member is of an architecture llama.cpp gives no head: refused by name,
# before anything is downloaded.
_REFUSED_PRESETS = {"mxbai-rerank-v2": "qwen2", "bge-reranker-v2-gemma": "gemma"}


def _refusal(what: str, model_type: str) -> BadInput:
    return BadInput(
        f"--gguf: {what} is a {model_type} model, and llama.cpp loads a classifier head "
        f"(cls_out) only for the qwen3 architecture among causal LMs, so no GGUF of it can score "
        f"like the original in llama-server: drop --gguf"
    )


def refuse_gguf_by_recipe(recipe_name: str) -> None:
    """Refuse a preset family that is never of a supported architecture."""
    if recipe_name in _REFUSED_PRESETS:
        raise _refusal(recipe_name, _REFUSED_PRESETS[recipe_name])


def refuse_gguf_by_config(config: dict[str, Any], name: str) -> None:
    """Refuse a source whose ``model_type`` llama.cpp gives no classifier head."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise _refusal(name, str(model_type) if isinstance(model_type, str) else "unknown")
