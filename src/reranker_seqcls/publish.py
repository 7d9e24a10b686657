"""``push``: publish a converted directory as one commit, refusing a failed parity report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import PARITY_REPORT_FILE, PROVENANCE_FILE, README_FILE
from reranker_seqcls.pipeline import RunOutcome
from reranker_seqcls.provenance import Provenance, read_json_record


def push_converted(
    converted: Path,
    target: str,
    *,
    private: bool,
    create_pr: bool,
    dry_run: bool,
    token: str | None,
    log: Log,
) -> RunOutcome:
    """``push``: one commit of a converted directory, refusing a failed parity report."""
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.hub.repo_ids import require_repo_id
    from reranker_seqcls.hub.target import target_state

    require_repo_id(target, "target")
    provenance_path = converted / PROVENANCE_FILE
    if not provenance_path.is_file():
        raise BadInput(
            f"{converted} has no {PROVENANCE_FILE}: push a directory written by "
            "reranker-seqcls convert"
        )
    provenance = Provenance.read(provenance_path)
    report = _passed_report(converted, log)
    _card_unless_written(converted, target, provenance, report)
    state = target_state(target, token)
    label = provenance.source.label
    from reranker_seqcls import __version__

    pushed = push(
        converted,
        target,
        token=token,
        private=private,
        create_pr=create_pr,
        parent_commit=state.head,
        commit_message=f"Convert {label} with reranker-seqcls {__version__}",
        commit_description=f"Pushed with `reranker-seqcls push` from {converted.name}",
        dry_run=dry_run,
        log=log,
    )
    outcome = RunOutcome("failed", target, label, provenance.source.commit_sha)
    outcome.record_push(pushed, label, dry_run=dry_run)
    return outcome


def _passed_report(converted: Path, log: Log) -> dict[str, Any]:
    """The directory's parity report ({} when it has none, with a warning); a failed one is
    refused."""
    report_path = converted / PARITY_REPORT_FILE
    if not report_path.is_file():
        log(f"warning: {converted} has no {PARITY_REPORT_FILE}; run `reranker-seqcls check` first")
        return {}
    report = read_json_record(report_path)
    if not report.get("passed"):
        reasons = report.get("reasons")
        reason = reasons[0] if isinstance(reasons, list) and reasons else "see the report"
        raise BadInput(f"{converted} failed its parity check ({reason}): nothing was pushed")
    return report


def _card_unless_written(
    converted: Path, target: str, provenance: Provenance, report: dict[str, Any]
) -> None:
    """The model card, unless the directory holds one already (convert's short README is
    replaced)."""
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.hub.card import is_local_readme, render_card, write_card

    readme = converted / README_FILE
    if readme.is_file() and not is_local_readme(readme):
        return
    parity_md = gap = None
    if report:
        parsed = ParityReport.from_json(report, converted / PARITY_REPORT_FILE)
        parity_md = parsed.markdown()
        gap = parsed.to_json()["tokenization_gap"]
    card = render_card(
        target_repo=target,
        provenance=provenance.to_json(),
        parity_markdown=parity_md,
        tokenization_gap=gap,
        license_=None,
        license_extra={},
        template_file=TEMPLATE_FILE_NAME if (converted / TEMPLATE_FILE_NAME).is_file() else None,
    )
    write_card(converted, card)
