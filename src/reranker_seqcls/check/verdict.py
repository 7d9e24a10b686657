"""The judgement: tolerances per compute dtype (widened by the score head's storage rounding),
whether each path is within them, and the reasons and allowances of the verdict.

A failure names its most likely cause (:mod:`reranker_seqcls.check.causes`); a difference the
conversion cannot remove (a softcapped source with ``--allow-softcapping``, a tokenization gap
that every one-string consumer shares) is an allowance, stated with its numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reranker_seqcls.check.causes import converted_cause
from reranker_seqcls.check.metrics import (
    CONVERTED_PATHS,
    PathMetrics,
    Scores,
    ScoringPath,
    TokenizationGap,
)
from reranker_seqcls.errors import BadInput


@dataclass(frozen=True)
class Tolerance:
    logit: float  # max |Δ| of the score logit
    prob: float  # max |Δ| after the activation (sigmoid)
    spearman: float  # minimum rank correlation with the reference
    top1: float  # minimum fraction of query groups whose best document agrees
    # When set, a path whose values are within ``logit``/``prob`` passes the rank thresholds too:
    # any rank swap is then between pairs closer than twice the bound, which the score head's
    # storage rounding explains (set with a storage allowance only).
    ranks_follow_values: bool = False


# Bounds per compute dtype, set from measurements (docs/parity.md): float32 differences come only
# from summation order; bfloat16/float16 ones from rounding activations, so they are loose, and
# the dtype-independent structural checks (score.weight against the source rows, the consumer's
# prompt ids against the family's) carry the exactness there.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(logit=2e-3, prob=5e-4, spearman=0.999, top1=1.0),
    "bfloat16": Tolerance(logit=0.25, prob=0.1, spearman=0.98, top1=0.8),
    "float16": Tolerance(logit=0.1, prob=0.03, spearman=0.99, top1=0.9),
}


def checkpoint_dtype(config: dict[str, Any]) -> str:
    """The dtype a checkpoint's config declares, when it is one the check computes in."""
    value = config.get("dtype") or config.get("torch_dtype") or "float32"
    value = str(value).removeprefix("torch.")
    return value if value in TOLERANCES else "float32"


def compute_dtype(requested: str | None, source_config: dict[str, Any]) -> str:
    """``--dtype``, else the source's own; exit 2 for one without tolerances."""
    dtype = requested or checkpoint_dtype(source_config)
    if dtype not in TOLERANCES:
        raise BadInput(f"--dtype {dtype} is not supported: use one of {', '.join(TOLERANCES)}")
    return dtype


def with_storage(tolerance: Tolerance, bound: float) -> Tolerance:
    """The compute dtype's tolerance plus ``bound``, what the score head's storage rounding alone
    moves a logit by (a bf16-stored head computed in float32 moves it by ~1e-2, not ~1e-6)."""
    if bound < 0.05 * tolerance.logit:  # float32 storage: negligible next to summation order
        return tolerance
    return replace(
        tolerance,
        logit=tolerance.logit + bound,
        prob=tolerance.prob + bound / 4,
        ranks_follow_values=True,
    )


def storage_note(plain: Tolerance, widened: Tolerance, head_dtype: str) -> str | None:
    """The report's note on a tolerance :func:`with_storage` widened (None: it did not)."""
    if widened == plain:
        return None
    bound = widened.logit - plain.logit
    return (
        f"the tolerance includes {bound:.2g} logit ({bound / 4:.2g} probability) for "
        f"score.weight stored in {head_dtype}: the most its rounding δW alone moves a "
        f"logit on these pairs (max |δW·h| over the pooled hidden states h); rank swaps "
        f"between pairs closer than the bound are accepted"
    )


def within(m: PathMetrics, t: Tolerance, *, ranks_only: bool = False) -> bool:
    ranks_ok = m.spearman >= t.spearman and m.top1 >= t.top1
    if ranks_only:
        return ranks_ok
    logit_ok = m.max_abs_logit is None or m.max_abs_logit <= t.logit
    values_ok = logit_ok and m.max_abs_prob <= t.prob
    return values_ok and (ranks_ok or t.ranks_follow_values)


@dataclass(frozen=True)
class Evidence:
    """What the numeric judgement looks at."""

    tolerance: Tolerance  # already widened for the head's storage
    dtype: str
    metrics: Mapping[ScoringPath, PathMetrics]
    # sentence-transformers against what a one-string consumer can give: the family's score, or
    # on pairs with a tokenization gap the converted model's score on the consumer's own ids
    consumer_exact: PathMetrics
    gap: TokenizationGap | None
    structural: list[str]  # reasons already found without the scores (head, template)
    loading_problems: list[str]  # missing/unexpected weights of the converted checkpoint
    pad_token_id: int | None  # the converted config's
    prompts: list[list[int]]  # the family's prompt ids
    reference: Scores
    batched: Scores
    single: Scores
    softcap: object  # the source's final_logit_softcapping (None: it has none)
    allow_softcapping: bool


@dataclass
class Judgement:
    reasons: list[str] = field(default_factory=list)  # why it fails; empty: it passes
    allowances: list[str] = field(default_factory=list)  # what it passes despite, and why


def judge(e: Evidence) -> Judgement:
    """The structural reasons, plus the numeric verdict on the converted and consumer paths,
    which blames a path only when no structural reason explains its scores already."""
    verdict = Judgement(reasons=list(e.structural))
    verdict.reasons += [f"the converted checkpoint loads with {p}: convert again"
                        for p in e.loading_problems]  # fmt: skip
    if e.structural:
        return verdict
    converted_ok = all(within(e.metrics[path], e.tolerance) for path in CONVERTED_PATHS)
    if not converted_ok:
        _judge_converted(e, verdict)
    consumer_ok = within(e.consumer_exact, e.tolerance) or (
        # values may differ where an allowance (softcapping) accepts it: the ranks must agree
        bool(verdict.allowances) and within(e.consumer_exact, e.tolerance, ranks_only=True)
    )
    if converted_ok and not consumer_ok:
        verdict.reasons.append(
            f"sentence-transformers scores differ (max |Δ prob| {e.consumer_exact.max_abs_prob:.3g}"
            f", tolerance {e.tolerance.prob:g}) although its prompt has the family's text: check "
            "the activation in config_sentence_transformers.json"
        )
    elif consumer_ok and e.gap is not None:
        verdict.allowances.append(_gap_allowance(e, e.gap))
    return verdict


def _judge_converted(e: Evidence, verdict: Judgement) -> None:
    cause = converted_cause(e.pad_token_id, e.prompts, e.reference, e.batched, e.single,
                            e.tolerance.logit)  # fmt: skip
    if e.softcap is not None and cause is None:
        _judge_softcapping(e, e.softcap, verdict)
        return
    worst = max((e.metrics[path] for path in CONVERTED_PATHS),
                key=lambda m: m.max_abs_logit or 0.0)  # fmt: skip
    verdict.reasons.append(
        cause
        or f"converted scores differ from the original by up to {worst.max_abs_logit:.3g} "
        f"(tolerance {e.tolerance.logit:g} for {e.dtype}): the score head does not match the "
        "recipe; convert again with the right --preset or --tokens/--method"
    )


def _judge_softcapping(e: Evidence, softcap: object, verdict: Judgement) -> None:
    """A tanh-softcapped source: no linear head reproduces its values, only its rankings."""
    worst = e.metrics[ScoringPath.CONVERTED_SINGLE]
    message = (
        f"the source applies final_logit_softcapping={softcap} (tanh), which a linear "
        f"score head cannot reproduce: max |Δ logit| {worst.max_abs_logit:.3g}"
    )
    ranks_ok = all(
        within(e.metrics[path], e.tolerance, ranks_only=True) for path in CONVERTED_PATHS
    )
    if e.allow_softcapping and ranks_ok:
        verdict.allowances.append(message + "; rankings agree and --allow-softcapping is set")
    elif e.allow_softcapping:
        verdict.reasons.append(message + ", and the rankings differ too")
    else:
        verdict.reasons.append(message + "; pass --allow-softcapping to accept matching rankings")


def _gap_allowance(e: Evidence, gap: TokenizationGap) -> str:
    return (
        gap.summary() + f". Inherent to every consumer that tokenizes one rendered string (vLLM, "
        f"sentence-transformers, apply_chat_template), not to the conversion: sentence-"
        f"transformers reproduces the converted model on its own ids within "
        f"{gap.consumer_max_abs_prob:.2g} probability (bound: the {e.dtype} tolerance "
        f"{e.tolerance.prob:g})"
    )
