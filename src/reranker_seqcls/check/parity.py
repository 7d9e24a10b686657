"""The parity check: original causal LM vs converted classifier vs its consumers.

The same (query, document) pairs are scored by the original with the family's official prompt
ids and math, by the converted classifier on those ids (batched and one by one), by
sentence-transformers' ``CrossEncoder`` on the raw text and, when a Python with vLLM is found,
by vLLM (:mod:`reranker_seqcls.check.vllm`). The consumers only match when the template and
sentence-transformers files travel with the checkpoint. Pairs whose one-string consumer prompt
has the family's text but other tokens across its piece boundaries
(:mod:`reranker_seqcls.check.prompt_gap`) are also scored with those ids: the gap is reported
and allowed when the consumer reproduces them.

This module strings the stages together: :mod:`~reranker_seqcls.check.scoring` (torch),
:mod:`~reranker_seqcls.check.head` and :mod:`~reranker_seqcls.check.metrics` (what was
measured), :mod:`~reranker_seqcls.check.verdict` (the judgement) and
:mod:`~reranker_seqcls.check.report`.

Over 300 lines: :func:`check_parity` and the helpers that read its one :class:`_Scored` record
(the path table, the tokenization gap, the per-pair scores, the evidence) belong together; the
scorings, the head check, the judgement, the report and the long pairs already live apart.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.causes import template_mismatch
from reranker_seqcls.check.head import HeadCheck, head_check
from reranker_seqcls.check.judged import judged_report
from reranker_seqcls.check.metrics import (
    PathMetrics,
    Scores,
    ScoringPath,
    TokenizationGap,
    path_metrics,
)
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.check.report import PairScores, ParityReport
from reranker_seqcls.check.scoring import (
    ConsumerPrompts,
    ConvertedScores,
    consumer_prompts,
    consumer_scores,
    converted_scores,
    cross_encoder,
    reference_scores,
)
from reranker_seqcls.check.verdict import Evidence, compute_dtype
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.long_inputs import LongBudget
    from reranker_seqcls.check.prompt_gap import PromptComparison
    from reranker_seqcls.recipes.prompt_pieces import OfficialPrompt


@dataclass
class _Scored:
    """Every scoring of the checked pairs, before any judgement."""

    pairs: list[Pair]
    groups: list[str]  # the query group of each pair (top-1 agreement is per group)
    official: list[OfficialPrompt]  # the family's prompt of each pair
    reference: Scores
    rendered: ConsumerPrompts | None  # what sentence-transformers renders, when it renders
    comparisons: list[PromptComparison | None] | None  # its prompt against the family's
    merged: list[int]  # the pairs with a tokenization gap
    converted: ConvertedScores  # ``extra``: the merged pairs on the template's ids
    consumer: Scores  # sentence-transformers

    @property
    def prompts(self) -> list[list[int]]:
        return [o.ids for o in self.official]

    def merges(self, i: int) -> list[str]:
        """The merged-token texts of pair ``i``, one of :attr:`merged`."""
        comparison = self.comparisons[i] if self.comparisons is not None else None
        if comparison is None:
            raise AssertionError(f"pair {i} has no prompt comparison")
        return list(comparison.merges)


def check_parity(
    source: Path,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    *,
    token_ids: list[int],
    dtype: str | None = None,
    allow_softcapping: bool = False,
    vllm_python: str | Path | None = None,
    long_budget: LongBudget | None = None,
    log: Log,
) -> ParityReport:
    """Score ``pairs`` three ways (four with vLLM) and judge the converted checkpoint against
    the original; the over-length pairs within ``long_budget`` (default
    :data:`.long_inputs.SMALL`)."""
    from reranker_seqcls.check.long_inputs import SMALL, add_long_inputs
    from reranker_seqcls.check.long_pairs import fitting_pairs
    from reranker_seqcls.check.vllm import locate_vllm_python, run_offline, vllm_row_part

    source_config = json.loads((source / CONFIG_FILE).read_text())
    dtype = compute_dtype(dtype, source_config)
    vllm = locate_vllm_python(vllm_python)  # before any scoring: a bad path fails at once
    pairs, cut = fitting_pairs(source, recipe, pairs)
    if len(pairs) < 2:
        raise BadInput(
            f"{len(cut)} of the pairs are longer than the family's scoring length: give pairs "
            "that fit (the check measures over-length pairs by itself)"
        )
    scored = _score(source, converted, recipe, pairs, token_ids, dtype, log)
    notes: list[str] = []
    if cut:
        notes.append(
            f"long inputs: {len(cut)} given pair(s) exceed the family's scoring length "
            f"(groups {sorted({p.group or p.query[:40] for p in cut})}); the family cuts them, "
            "so they are left to the long-input section"
        )

    def check_head() -> HeadCheck:
        return head_check(source, converted, token_ids, recipe.method, source_config, recipe)

    def measure(report: ParityReport, head: HeadCheck) -> Evidence:
        # Several labels, or an Identity activation: CrossEncoder returns logits, not
        # probabilities.
        probs = len(scored.reference[0]) == 1 and not _serves_raw_logits(converted)
        report.metrics = _path_table(scored, probs=probs)
        report.tokenization_gap = _tokenization_gap(scored, probs=probs)
        report.scores = _pair_scores(scored)
        return _evidence(report, scored, head, recipe, source_config, probs, allow_softcapping)

    def after(report: ParityReport) -> None:
        # the vllm row's job runs with the over-length pairs' when they reach vLLM (one start)
        part = vllm_row_part(report, converted, pairs, scored.prompts, scored.reference, vllm, log)
        offline = [part] if part is not None else []
        budget = long_budget or SMALL
        add_long_inputs(report, source, converted, recipe, token_ids, vllm, log, budget, offline)
        if part is not None and not part.done and vllm.python is not None:
            run_offline(vllm.python, [part])

    return judged_report(
        recipe, dtype, scored.groups, reference=scored.reference,
        converted=scored.converted.batched, head=check_head, hidden=scored.converted.hidden,
        measure=measure, notes=notes, after=after,
    )  # fmt: skip


def _score(
    source: Path,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    token_ids: list[int],
    dtype: str,
    log: Log,
) -> _Scored:
    """Every scoring of ``pairs``, one model resident at a time."""
    from reranker_seqcls.check.prompt_gap import compare_prompt

    log(f"parity: scoring {len(pairs)} pairs with the original causal LM ({dtype})")
    official, reference = reference_scores(source, recipe, pairs, token_ids, dtype)
    prompts = [o.ids for o in official]
    log("parity: scoring through sentence-transformers CrossEncoder")
    model = cross_encoder(converted, dtype)
    rendered = consumer_prompts(converted, pairs, model.tokenizer)
    consumer = consumer_scores(model, pairs, [len(p) for p in prompts])
    del model
    gc.collect()
    comparisons = (
        None
        if rendered is None
        else [
            compare_prompt(rendered.tokenizer, o, text, ids) if text is not None else None
            for o, text, ids in zip(official, rendered.texts, rendered.ids, strict=True)
        ]
    )
    merged = [i for i, c in enumerate(comparisons or []) if c is not None and c.kind == "merged"]
    log("parity: scoring the converted classifier (batched and one by one)")
    extra = [rendered.ids[i] for i in merged] if rendered else None
    scored = converted_scores(converted, prompts, dtype, extra)
    groups = [p.group or p.query for p in pairs]
    return _Scored(
        pairs, groups, official, reference, rendered, comparisons, merged, scored, consumer
    )


def _path_table(scored: _Scored, *, probs: bool) -> dict[ScoringPath, PathMetrics]:
    groups, reference, converted = scored.groups, scored.reference, scored.converted
    return {
        ScoringPath.CONVERTED_BATCHED: path_metrics(
            groups, reference, converted.batched, probs=False
        ),
        ScoringPath.CONVERTED_SINGLE: path_metrics(
            groups, reference, converted.single, probs=False
        ),
        ScoringPath.SENTENCE_TRANSFORMERS: path_metrics(
            groups, reference, scored.consumer, probs=probs
        ),
    }


def _one_string_reference(scored: _Scored) -> Scores:
    """What any one-string consumer (sentence-transformers, vLLM) can give for each pair: the
    family's score, except on the merged pairs, where it is the converted model's score on the
    consumer's own ids. A consumer path is judged against this, not against the reference."""
    expected = list(scored.reference)
    for i, row in zip(scored.merged, scored.converted.extra, strict=True):
        expected[i] = row
    return expected


def _tokenization_gap(scored: _Scored, *, probs: bool) -> TokenizationGap | None:
    """How far the merged pairs' one-string ids move the converted model, and how closely
    sentence-transformers reproduces it on those ids."""
    merged = scored.merged
    if not merged:
        return None
    groups = [scored.groups[i] for i in merged]
    extra = scored.converted.extra
    on_merged = path_metrics(
        groups, [scored.converted.batched[i] for i in merged], extra, probs=False
    )
    exact = path_metrics(groups, extra, [scored.consumer[i] for i in merged], probs=probs)
    counts: dict[str, int] = {}
    for i in merged:
        for text in scored.merges(i):
            counts[text] = counts.get(text, 0) + 1
    return TokenizationGap(
        pairs=merged,
        num_pairs=len(scored.pairs),
        merges=counts,
        max_abs_logit=on_merged.max_abs_logit or 0.0,
        max_abs_prob=on_merged.max_abs_prob,
        consumer_max_abs_prob=exact.max_abs_prob,
    )


def _pair_scores(scored: _Scored) -> list[PairScores]:
    rows = [
        PairScores(
            group=scored.groups[i],
            query=pair.query[:80],
            document=pair.document[:80],
            instruction=pair.instruction,
            reference=scored.reference[i],
            converted_batched=scored.converted.batched[i],
            converted_single=scored.converted.single[i],
            sentence_transformers=scored.consumer[i],
        )
        for i, pair in enumerate(scored.pairs)
    ]
    for i, row in zip(scored.merged, scored.converted.extra, strict=True):
        rows[i].converted_template_ids = row
        rows[i].merged_tokens = scored.merges(i)
    return rows


def _evidence(
    report: ParityReport,
    scored: _Scored,
    head: HeadCheck,
    recipe: Recipe,
    source_config: dict[str, Any],
    probs: bool,
    allow_softcapping: bool,
) -> Evidence:
    """What :func:`judge` looks at; the structural reasons are found here (score.weight
    against the source head, the consumer's prompt against the family's)."""
    from reranker_seqcls.convert.rules import config_value

    rendered = scored.rendered
    in_place = rendered is not None and rendered.tokenizer.chat_template == recipe.template
    structural = [
        head.problem,
        template_mismatch(scored.comparisons, rendered, scored.official, in_place=in_place),
    ]
    return Evidence(
        tolerance=report.tolerance,
        dtype=report.dtype,
        metrics=report.metrics,
        consumer_exact=path_metrics(
            scored.groups, _one_string_reference(scored), scored.consumer, probs=probs
        ),
        gap=report.tokenization_gap,
        structural=[r for r in structural if r is not None],
        loading_problems=scored.converted.problems,
        pad_token_id=scored.converted.pad_token_id,
        prompts=scored.prompts,
        reference=scored.reference,
        batched=scored.converted.batched,
        single=scored.converted.single,
        softcap=config_value(source_config, "final_logit_softcapping"),
        allow_softcapping=allow_softcapping,
    )


def _serves_raw_logits(converted: Path) -> bool:
    """Whether the converted directory's sentence-transformers activation is Identity."""
    from reranker_seqcls.convert.consumer_files import IDENTITY
    from reranker_seqcls.names import ST_MODEL_CONFIG_FILE

    path = converted / ST_MODEL_CONFIG_FILE
    try:
        loaded = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except ValueError:
        return False
    return isinstance(loaded, dict) and loaded.get("activation_fn") == IDENTITY
