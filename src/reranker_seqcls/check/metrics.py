"""How far one scoring path is from the reference: value differences and ranking agreement.

Pure Python on lists of per-pair score rows (one float per label); nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum

Scores = list[list[float]]  # one row per pair, one value per label


class ScoringPath(StrEnum):
    """A way the checked pairs are scored and compared with the original; the value is the
    label the report's table and JSON use."""

    CONVERTED_BATCHED = "converted (batched)"
    CONVERTED_SINGLE = "converted (one by one)"
    SENTENCE_TRANSFORMERS = "sentence-transformers"
    VLLM = "vllm"
    # The streamed check: both heads on one layer-by-layer pass over the real weights, and the
    # consumer paths run on a structural twin (fewer layers) where the real model does not fit.
    LAYERWISE = "converted (layerwise)"
    TWIN_CONVERTED_BATCHED = "twin: converted (batched)"
    TWIN_CONVERTED_SINGLE = "twin: converted (one by one)"
    TWIN_SENTENCE_TRANSFORMERS = "twin: sentence-transformers"
    TWIN_VLLM = "twin: vllm"
    # llama-server --reranking on a GGUF of the converted checkpoint, one row per GGUF type
    # (:mod:`reranker_seqcls.gguf.row`).
    LLAMA_F32 = "llama.cpp f32"
    LLAMA_F16 = "llama.cpp f16"
    LLAMA_Q8_0 = "llama.cpp q8_0"

    def on_twin(self) -> ScoringPath:
        """This path as run on the structural twin."""
        return ScoringPath(f"twin: {self.value}")


CONVERTED_PATHS = (ScoringPath.CONVERTED_BATCHED, ScoringPath.CONVERTED_SINGLE)


@dataclass
class PathMetrics:
    max_abs_logit: float | None  # None: the path gives probabilities only (a consumer)
    max_abs_prob: float
    spearman: float
    top1: float  # fraction of query groups whose best document agrees


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def primary(rows: Scores) -> list[float]:
    """The ranking score: the only label, or the last one (the 'true' token by convention)."""
    return [row[-1] for row in rows]


def max_abs_difference(a: Scores, b: Scores) -> float:
    return max(abs(x - y) for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))


def _ranks(values: list[float]) -> list[float]:
    """Ranks from 0, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    mean_a, mean_b = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    if var_a == 0 or var_b == 0:
        return 1.0 if ra == rb else 0.0
    return cov / math.sqrt(var_a * var_b)


def top1_agreement(groups: list[str], reference: list[float], other: list[float]) -> float:
    """The fraction of groups (of two or more pairs) whose best-scored pair is the same."""
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    multi = [idx for idx in members.values() if len(idx) > 1]
    if not multi:
        return 1.0
    agree = sum(
        max(idx, key=lambda i: reference[i]) == max(idx, key=lambda i: other[i]) for idx in multi
    )
    return agree / len(multi)


def path_metrics(
    groups: list[str], reference: Scores, other: Scores, *, probs: bool
) -> PathMetrics:
    """``other`` against ``reference`` (logits). ``probs``: ``other`` already went through the
    activation (a consumer such as sentence-transformers), so only probabilities compare."""
    ref_probs = [[sigmoid(v) for v in row] for row in reference]
    if probs:
        other_probs, max_logit = other, None
    else:
        other_probs = [[sigmoid(v) for v in row] for row in other]
        max_logit = max_abs_difference(reference, other)
    ref_primary, other_primary = primary(reference), primary(other)
    return PathMetrics(
        max_abs_logit=max_logit,
        max_abs_prob=max_abs_difference(ref_probs, other_probs),
        spearman=spearman(ref_primary, other_primary),
        top1=top1_agreement(groups, ref_primary, other_primary),
    )


def constant_ratio(measured: Scores, expected: Scores) -> float | None:
    """``k`` when ``measured`` is ``k * expected`` for one constant (to 1e-3 relative)."""
    pairs = [(s, e) for srow, erow in zip(measured, expected, strict=True)
             for s, e in zip(srow, erow, strict=True) if abs(e) > 1e-12]  # fmt: skip
    if not pairs:
        return None
    ratio = sum(s * e for s, e in pairs) / sum(e * e for _, e in pairs)
    if ratio == 0 or any(abs(s - ratio * e) > 1e-3 * abs(ratio * e) + 1e-6 for s, e in pairs):
        return None
    return ratio


@dataclass
class TokenizationGap:
    """Pairs whose one-string prompt has the family's text but tokenizes differently, because
    the tokenizer merges across an official piece boundary (see :mod:`prompt_gap`)."""

    pairs: list[int]  # indices into the checked pairs
    num_pairs: int  # how many pairs were checked
    merges: dict[str, int]  # text of each boundary-spanning token -> how often it occurs
    max_abs_logit: float  # converted model, template's ids vs the family's ids
    max_abs_prob: float
    consumer_max_abs_prob: float  # sentence-transformers vs the converted model on its ids

    def summary(self) -> str:
        merges = ", ".join(
            f"{json.dumps(text, ensure_ascii=False)} x{count}"
            for text, count in sorted(self.merges.items(), key=lambda kv: -kv[1])[:6]
        )
        return (
            f"{len(self.pairs)} of {self.num_pairs} pairs render the family's exact text but "
            f"tokenize differently as one string (tokens across the family's piece "
            f"boundaries: {merges}); "
            f"fed those ids instead of the family's, the converted model moves by up to "
            f"{self.max_abs_logit:.3g} logit / {self.max_abs_prob:.3g} probability"
        )
