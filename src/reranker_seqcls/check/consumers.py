"""The consumer half of the streamed check: the full check run on the structural twin
(:func:`consumer_check`), and :func:`combine`, which merges it with the real-weights verdict of
:class:`.streamed.StreamedCheck` into one report (twin rows, reasons and allowances labelled)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.check.long_inputs import FULL_TWIN, QUICK_TWIN
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.check.parity import check_parity
from reranker_seqcls.check.report import ParityReport
from reranker_seqcls.check.twin import (
    DEFAULT_CHECK_MEMORY,
    ConsumerPlan,
    build_twin,
    float32_load_bytes,
    twin_overrides,
)
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE

if TYPE_CHECKING:
    from reranker_seqcls.check.scope import RealPairs
    from reranker_seqcls.recipes.recipe import Recipe


def combine(
    real: ParityReport,
    consumers: ParityReport,
    proven_on: str,
    chosen: RealPairs | None = None,
    cut: list[Pair] | None = None,
) -> ParityReport:
    """One report: the real-weights verdict and the consumer check (run on ``proven_on``:
    "real" or the twin's description). Twin rows, reasons and allowances are labelled.
    ``chosen`` says which of the consumer check's pairs the real model scored (default: all,
    in the same order); each real row gets the twin's row of its pair. ``cut``: the given
    pairs the family's code would cut, left out of both halves (the full check's note)."""
    label = "" if proven_on == "real" else "twin: "
    on_twin = bool(label)
    report = ParityReport(
        passed=real.passed and consumers.passed,
        dtype=real.dtype,
        tolerance=real.tolerance,
        recipe=real.recipe,
        num_pairs=real.num_pairs,
        num_groups=real.num_groups,
        metrics={
            **real.metrics,
            **{(k.on_twin() if on_twin else k): v for k, v in consumers.metrics.items()},
        },
        reasons=real.reasons + [label + r for r in consumers.reasons],
        allowances=real.allowances + [label + a for a in consumers.allowances],
        notes=real.notes + [label + n for n in consumers.notes] + ([cut_note(cut)] if cut else []),
        tokenization_gap=consumers.tokenization_gap,
        consumers_proven_on=proven_on,
        backbone_hash=real.backbone_hash,
        long_inputs=consumers.long_inputs,
    )
    indices = list(range(len(real.scores))) if chosen is None else chosen.indices
    if real.real_pass is not None:
        report.real_pass = replace(
            real.real_pass,
            of_pairs=consumers.num_pairs,
            full=real.real_pass.pairs >= consumers.num_pairs,
        )
    if label and consumers.tolerance != real.tolerance:
        t = consumers.tolerance
        report.notes.append(f"twin rows are judged with the twin's tolerance ({t.logit:g} logit)")
    twin_scores = dict(enumerate(consumers.scores))
    # A real half that stopped before scoring (a label count the recipe does not give) has
    # no rows: its reason is the verdict, there is nothing to pair with the twin's rows.
    report.scores = [
        replace(row, twin=twin_scores.get(i)) if on_twin else row
        for i, row in zip(indices, real.scores, strict=bool(real.scores))
    ]
    return report


def cut_note(cut: list[Pair]) -> str:
    """The report's note on given pairs the family's code cuts (as :func:`.parity.check_parity`
    words it)."""
    return (
        f"long inputs: {len(cut)} given pair(s) exceed the family's scoring length "
        f"(groups {sorted({p.group or p.query[:40] for p in cut})}); the family cuts them, "
        "so they are left to the long-input section"
    )


def consumer_check(
    source: Path,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    work: Path,
    *,
    token_ids: list[int],
    check_memory: int = DEFAULT_CHECK_MEMORY,
    allow_softcapping: bool = False,
    vllm_python: str | Path | None = None,
    long_pairs: bool = False,
    log: Log,
) -> tuple[ParityReport, str]:
    """The full check on the twin of (``source``, ``converted``), built under ``work``; returns
    its report and the twin's description. Needs only the two directories' small files.
    ``long_pairs`` (the full check): the over-length pairs of a long-context family run on the
    twin too (about 15 s for an 8192-token family), else only where they are short."""
    config = json.loads((Path(source) / CONFIG_FILE).read_text())
    real_bytes = float32_load_bytes(config)
    plan = ConsumerPlan("twin", real_bytes, check_memory, twin_overrides(config, check_memory))
    described = plan.describe(config)
    log(f"parity: consumers proven on the {described}")
    twin_source, twin_converted = build_twin(source, converted, work, recipe, plan)
    report = check_parity(
        twin_source, twin_converted, recipe, pairs, token_ids=token_ids,
        allow_softcapping=allow_softcapping, vllm_python=vllm_python,
        long_budget=FULL_TWIN if long_pairs else QUICK_TWIN, log=log,
    )  # fmt: skip
    return report, described
