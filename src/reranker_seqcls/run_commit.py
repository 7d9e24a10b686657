"""What a run's commit carries besides the checkpoint: the model card, the commit message and
description (the whole-snapshot run and the streamed run write the same)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.provenance import Provenance, SourceRef
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport


def write_run_card(
    target: str,
    source_dir: Path,
    out: Path,
    recipe: Recipe,
    provenance: Provenance,
    report: ParityReport,
) -> None:
    """The model card of ``out``: provenance, parity table, the source's license."""
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.hub.card import render_card, source_license, write_card

    license_, license_extra = source_license(source_dir)
    card = render_card(
        target_repo=target,
        provenance=provenance.to_json(),
        parity_markdown=report.markdown(),
        tokenization_gap=report.to_json()["tokenization_gap"],
        license_=license_,
        license_extra=license_extra,
        template_file=TEMPLATE_FILE_NAME if recipe.template is not None else None,
    )
    write_card(out, card)


def source_label(model: str, ref: SourceRef) -> str:
    """``repo@commit12`` (a local source: its name)."""
    return f"{model}@{ref.commit_sha[:12]}" if ref.commit_sha else model


def commit_message(model: str, ref: SourceRef) -> str:
    from reranker_seqcls import __version__

    return f"Convert {source_label(model, ref)} with reranker-seqcls {__version__}"


def commit_description(ref: SourceRef, recipe: Recipe, report: ParityReport) -> str:
    return (
        f"Source: {ref.repo_id or ref.name} at commit {ref.commit_sha or '(local)'}\n"
        f"Recipe: {recipe.name} ({recipe.method}, {recipe.describe_classifier()})\n"
        f"Parity: {report.verdict}, max |Δ logit| {report.max_abs_diff:.3g}, "
        f"Spearman {report.spearman:.4f}"
    )
