"""One builder of a judged :class:`~.report.ParityReport`, for both checks that judge scores:
the full check (:func:`.parity.check_parity`, every path on the real model) and the streamed
check's real-weights half (:meth:`.streamed.StreamedCheck.report`, the layerwise path).

Both go through the same steps in the same order, so a report means the same whichever check
made it: the report of the checked pairs (not passed yet) with the dtype's plain tolerance; a
converted model whose label count is not the recipe's fails there (nothing else is measured);
the tolerance widened by how far the head's storage rounding alone moves a logit (a note says
so); the caller's measurements and :class:`~.verdict.Evidence`; :func:`~.verdict.judge`'s
reasons and allowances, which decide ``passed``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reranker_seqcls.check.head import HeadCheck
from reranker_seqcls.check.metrics import Scores
from reranker_seqcls.check.report import ParityReport
from reranker_seqcls.check.verdict import TOLERANCES, Evidence, judge, storage_note, with_storage
from reranker_seqcls.recipes.recipe import Recipe


def judged_report(
    recipe: Recipe,
    dtype: str,
    groups: list[str],
    *,
    reference: Scores,
    converted: Scores,
    head: Callable[[], HeadCheck],
    hidden: list[list[float]],
    measure: Callable[[ParityReport, HeadCheck], Evidence],
    notes: Sequence[str] = (),
    mismatch_reason: str | None = None,
    after: Callable[[ParityReport], None] | None = None,
) -> ParityReport:
    """The judged report of the pairs in ``groups`` (each pair's query group).

    ``reference`` and ``converted`` are the score rows whose label counts must agree (on a
    mismatch the report fails with ``mismatch_reason``, else a reason naming both counts);
    ``head`` is the structural head check (called only when they agree), whose storage
    rounding on the pooled ``hidden`` states widens the tolerance; ``measure`` (given the
    report and the head check) fills the report's metrics and scores and returns the evidence
    to judge; ``after`` adds what is judged on its own once the verdict is in (vLLM's row, the
    long inputs)."""
    plain = TOLERANCES[dtype]
    report = ParityReport(False, dtype, plain, recipe.name, len(groups), len(set(groups)), {})
    report.notes.extend(notes)
    labels = len(reference[0])
    if any(len(row) != labels for row in converted):
        report.fail(
            mismatch_reason
            or f"the converted model has {len(converted[0])} label(s), the recipe gives "
            f"{labels}: convert again with the right --method/--tokens"
        )
        return report
    checked = head()
    report.tolerance = with_storage(plain, checked.logit_shift(hidden))
    if (note := storage_note(plain, report.tolerance, checked.dtype)) is not None:
        report.notes.append(note)
    verdict = judge(measure(report, checked))
    report.reasons, report.allowances = verdict.reasons, verdict.allowances
    report.passed = not verdict.reasons
    if after is not None:
        after(report)
    return report
