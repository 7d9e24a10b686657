"""What a commit of a converted checkpoint carries besides the checkpoint: the model card, the
commit message and its description. ``run`` (whole snapshot or streamed) and ``push`` write the
same ones, from the typed :class:`Provenance` (the source's license included, recorded by
``convert``) and :class:`ParityReport` (None: pushed with ``--allow-unchecked``)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.provenance import Provenance

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport

# What the card says in place of the parity table when no check passed for the files.
UNCHECKED_SECTION = (
    "**Not checked.** This upload was pushed with `reranker-seqcls push --allow-unchecked`: no "
    "parity check passed for these files, so nothing here shows that this checkpoint scores "
    "like the original reranker."
)


def write_model_card(
    out: Path, target: str, provenance: Provenance, report: ParityReport | None
) -> None:
    """The model card of ``out`` (its README.md): provenance, the parity table (or the plain
    statement that the upload was not checked) and the source's license."""
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.hub.card import render_card, write_card

    recorded = dict(provenance.license or {})
    license_ = recorded.pop("license", None)
    gap = report.tokenization_gap if report is not None else None
    card = render_card(
        target_repo=target,
        provenance=provenance.to_json(),
        parity_markdown=UNCHECKED_SECTION if report is None else report.markdown(),
        tokenization_gap=None if gap is None else asdict(gap),
        license_=license_,
        license_extra=recorded,
        template_file=TEMPLATE_FILE_NAME if (out / TEMPLATE_FILE_NAME).is_file() else None,
    )
    write_card(out, card)


def commit_message(provenance: Provenance) -> str:
    from reranker_seqcls import __version__

    return f"Convert {provenance.source.label} with reranker-seqcls {__version__}"


def commit_description(provenance: Provenance, report: ParityReport | None) -> str:
    source = provenance.source
    classifier = provenance.classifier
    picked = f"tokens {list(classifier.tokens)}, ids {list(classifier.token_ids)}"
    if report is None:
        parity = "not checked (pushed with --allow-unchecked)"
    else:
        parity = (
            f"{report.verdict}, max |Δ logit| {report.max_abs_diff:.3g}, "
            f"Spearman {report.spearman:.4f}"
        )
    return (
        f"Source: {source.repo_id or source.name} at commit {source.commit_sha or '(local)'}\n"
        f"Recipe: {provenance.recipe.get('name')} ({classifier.method}, {picked})\n"
        f"Parity: {parity}"
    )
