"""``push``: publish a converted directory as one commit, only with a passing parity verdict
for its current files (:mod:`reranker_seqcls.check.record`), unless ``--allow-unchecked``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import PROVENANCE_FILE, README_FILE
from reranker_seqcls.provenance import Provenance
from reranker_seqcls.run.outcome import RunOutcome

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport


def push_converted(
    converted: Path,
    target: str,
    *,
    private: bool,
    create_pr: bool,
    dry_run: bool,
    token: str | None,
    allow_unchecked: bool,
    log: Log,
) -> RunOutcome:
    """``push``: one commit of a converted directory. Everything is refused before the Hub is
    asked anything: a directory ``convert`` did not write, a failed verdict, and (unless
    ``allow_unchecked``) a directory without a passing verdict for its current files."""
    from reranker_seqcls.check.record import recorded_verdict
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.hub.repo_ids import require_repo_id
    from reranker_seqcls.hub.target import target_state
    from reranker_seqcls.publish.card import commit_description, commit_message

    require_repo_id(target, "target")
    provenance_path = converted / PROVENANCE_FILE
    if not provenance_path.is_file():
        raise BadInput(
            f"{converted} has no {PROVENANCE_FILE}: push a directory written by "
            "reranker-seqcls convert"
        )
    provenance = Provenance.read(provenance_path)
    verdict = recorded_verdict(converted)
    if verdict.unchecked is not None:
        if not allow_unchecked:
            raise BadInput(
                f"{verdict.unchecked}: run `reranker-seqcls check SOURCE {converted}` first "
                "(or push --allow-unchecked to publish it marked as not checked); nothing was "
                "pushed"
            )
        log(f"warning: {verdict.unchecked}; pushing it as not checked (--allow-unchecked)")
    _card_unless_written(converted, target, provenance, verdict.report)
    state = target_state(target, token)
    pushed = push(
        converted,
        target,
        token=token,
        private=private,
        create_pr=create_pr,
        parent_commit=state.head,
        commit_message=commit_message(provenance),
        commit_description=commit_description(provenance, verdict.report),
        dry_run=dry_run,
        log=log,
    )
    label = provenance.source.label
    outcome = RunOutcome("failed", target, label, provenance.source.commit_sha)
    outcome.record_push(pushed, label, dry_run=dry_run)
    return outcome


def _card_unless_written(
    converted: Path, target: str, provenance: Provenance, report: ParityReport | None
) -> None:
    """The model card ``run`` writes, unless the directory holds a card of its own (convert's
    short README is replaced)."""
    from reranker_seqcls.hub.card import is_local_readme
    from reranker_seqcls.publish.card import write_model_card

    readme = converted / README_FILE
    if readme.is_file() and not is_local_readme(readme):
        return
    write_model_card(converted, target, provenance, report)
