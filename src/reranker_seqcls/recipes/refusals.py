"""Reranker families that cannot become a linear score head, and how each is recognised.

A conversion replaces the vocabulary projection with ``score.weight`` rows, so it is exact only
when the family's score is a linear function of the final token's logits of one forward pass.
The families below are not, or have nothing to convert; each is refused with a one-line reason.

Detection uses what the source says about itself: its repo or directory name (checked before
anything is downloaded) and its ``config.json`` (``architectures``, ``model_type``). Names are
matched case-insensitively; config markers are the published repos' remote-code classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reranker_seqcls.errors import BadInput


@dataclass(frozen=True)
class Refusal:
    family: str
    reason: str
    name_patterns: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()  # config.json architectures entries
    model_types: tuple[str, ...] = ()  # config.json model_type values

    def matches_name(self, source_name: str) -> bool:
        lowered = source_name.lower()
        return any(re.search(pattern, lowered) for pattern in self.name_patterns)

    def matches_config(self, config: dict[str, Any]) -> bool:
        architectures = [str(a) for a in config.get("architectures") or []]
        return bool(
            set(architectures) & set(self.architectures)
            or config.get("model_type") in self.model_types
        )

    def error(self, what: str) -> BadInput:
        return BadInput(f"{what} is {self.family}, which cannot be converted: {self.reason}")


def _qwen3_vl_reason() -> str:
    return (
        "the installed transformers has no Qwen3VLForSequenceClassification class, so no "
        "consumer could load a converted checkpoint; vLLM converts it at load time instead "
        "(serve the original with its score template)"
    )


REFUSALS: tuple[Refusal, ...] = (
    Refusal(
        "bge-reranker-v2-minicpm-layerwise",
        "its scores come from per-layer heads chosen by cutoff_layers in remote code "
        "(LayerWiseMiniCPMForCausalLM), not from the final-token logits of one lm_head",
        name_patterns=(r"minicpm[-_]?layerwise", r"layer[-_]?wise"),
        architectures=("LayerWiseMiniCPMForCausalLM",),
    ),
    Refusal(
        "bge-reranker-v2.5-gemma2-lightweight",
        "it compresses tokens and exits at intermediate layers in remote code "
        "(CostWiseGemmaForCausalLM), and Gemma 2 softcaps its logits with tanh: the score is not "
        "a linear function of one final-token logit vector",
        name_patterns=(r"gemma2[-_]?lightweight", r"bge[-_]?reranker[-_]?v2\.5"),
        architectures=("CostWiseGemmaForCausalLM",),
        model_types=("cost_wise_gemma",),
    ),
    Refusal(
        "a reasoning reranker (Rank1)",
        "it generates a reasoning trace (<think> ... </think>) before the true/false token, so "
        "the score is read after generation, not at the end of the prompt",
        name_patterns=(r"(^|[/_-])rank1([/_.-]|$)",),
    ),
    Refusal(
        "jina-reranker-v3",
        "it already has its own listwise ranking head (JinaForRanking, remote code) that scores "
        "all documents of one prompt together: there is no token logit to turn into a head",
        name_patterns=(r"jina[-_]?reranker[-_]?v3",),
        architectures=("JinaForRanking",),
    ),
)


def qwen3_vl_refusal() -> Refusal | None:
    """Qwen3-VL-Reranker is refused only while transformers lacks its seq-cls class."""
    from reranker_seqcls.convert.architectures import seq_cls_class

    if seq_cls_class("qwen3_vl") is not None:
        return None
    return Refusal(
        "Qwen3-VL-Reranker",
        _qwen3_vl_reason(),
        name_patterns=(r"qwen3[-_]?vl[-_]?reranker",),
        model_types=("qwen3_vl",),
    )


def _all() -> tuple[Refusal, ...]:
    vl = qwen3_vl_refusal()
    return (*REFUSALS, vl) if vl is not None else REFUSALS


def refuse_by_name(source_name: str) -> None:
    """Refuse a source whose repo id or directory name names a refused family."""
    for refusal in _all():
        if refusal.matches_name(source_name):
            raise refusal.error(f"{source_name!r}")


def refuse_by_config(config: dict[str, Any]) -> None:
    """Refuse a source whose config.json marks it as a refused family."""
    for refusal in _all():
        if refusal.matches_config(config):
            marker = config.get("architectures") or config.get("model_type")
            raise refusal.error(f"the source (config.json {marker})")
