"""``push``: publish a converted directory as one commit, only with a passing parity verdict
for its current files (:mod:`reranker_seqcls.check.record`), unless ``--allow-unchecked``; and
the publication it shares with ``run``'s two transports (:func:`publish_checkpoint`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import PROVENANCE_FILE, README_FILE
from reranker_seqcls.provenance import Provenance
from reranker_seqcls.run.outcome import RunOutcome

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.commands.options import HubOptions
    from reranker_seqcls.gguf.publish import CheckedGguf
    from reranker_seqcls.hub.push import PushResult


def push_converted(
    converted: Path,
    hub: HubOptions,
    *,
    allow_unchecked: bool,
    log: Log,
    gguf_dir: Path | None = None,
    gguf_target: str | None = None,
) -> RunOutcome:
    """``push``: one commit of a converted directory to ``hub.target``. Everything is refused
    before the Hub is asked anything: a directory ``convert`` did not write, a failed verdict,
    and (unless ``allow_unchecked``) a directory without a passing verdict for its current
    files."""
    from reranker_seqcls.check.record import recorded_verdict
    from reranker_seqcls.hub.repo_ids import require_repo_id
    from reranker_seqcls.hub.target import target_state

    target = hub.target
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
    ggufs = _ggufs_to_push(converted, target, gguf_dir, gguf_target, verdict.report)
    state = target_state(target, hub.token)
    label = provenance.source.label
    outcome = RunOutcome("failed", target, label, provenance.source.commit_sha)
    publish_checkpoint(
        converted, target, provenance, verdict.report, outcome, label=label,
        dry_run=hub.dry_run, card=_writes_card(converted),
        commit=folder_commit(converted, hub, state.head, log),
    )  # fmt: skip
    if ggufs is not None:
        from reranker_seqcls.gguf.publish import push_checked_ggufs
        from reranker_seqcls.publish.card import commit_message

        repo, files = ggufs
        assert verdict.report is not None
        done = push_checked_ggufs(
            files, replace(hub, target=repo), seqcls_repo=target, provenance=provenance,
            provenance_file=provenance_path, report=verdict.report,
            commit_message=commit_message(provenance), log=log,
        )  # fmt: skip
        outcome.record_gguf_push(done, repo, dry_run=hub.dry_run)
    return outcome


def publish_checkpoint(
    out: Path,
    target: str,
    provenance: Provenance,
    report: ParityReport | None,
    outcome: RunOutcome,
    *,
    label: str,
    dry_run: bool,
    commit: Callable[[str, str], PushResult],
    card: bool = True,
) -> None:
    """The publication ``run`` (either transport) and ``push`` share: the model card written
    into ``out`` (``card`` False: ``push`` of a directory holding a card of its own), then
    ``commit(message, description)``, the one commit, recorded in ``outcome``."""
    from reranker_seqcls.publish.card import commit_description, commit_message, write_model_card

    if card:
        write_model_card(out, target, provenance, report)
    pushed = commit(commit_message(provenance), commit_description(provenance, report))
    outcome.record_push(pushed, label, dry_run=dry_run)


def folder_commit(
    out: Path, hub: HubOptions, parent_commit: str | None, log: Log
) -> Callable[[str, str], PushResult]:
    """The ``commit`` of :func:`publish_checkpoint` for a directory uploaded whole (``push``,
    and ``run``'s whole-snapshot transport): one commit of ``out`` to ``hub.target`` on
    ``parent_commit``."""
    from reranker_seqcls.hub.push import push

    def commit(message: str, description: str) -> PushResult:
        return push(
            out, hub.target, token=hub.token, private=hub.private, create_pr=hub.create_pr,
            parent_commit=parent_commit, commit_message=message, commit_description=description,
            dry_run=hub.dry_run, log=log,
        )  # fmt: skip

    return commit


def _ggufs_to_push(
    converted: Path,
    target: str,
    gguf_dir: Path | None,
    gguf_target: str | None,
    report: ParityReport | None,
) -> tuple[str, list[CheckedGguf]] | None:
    """The GGUF target and the checked GGUFs of ``gguf_dir`` (default ``CONVERTED-GGUF`` when
    it exists); exit 2, before anything is pushed, for one without a passing llama.cpp row for
    its bytes."""
    from reranker_seqcls.gguf.produce import GGUF_DIR_SUFFIX, default_gguf_dir
    from reranker_seqcls.gguf.publish import checked_ggufs
    from reranker_seqcls.hub.repo_ids import require_repo_id

    directory = gguf_dir
    if directory is None and default_gguf_dir(converted).is_dir():
        directory = default_gguf_dir(converted)
    if directory is None:
        if gguf_target is not None:
            raise BadInput(f"--gguf-target: {default_gguf_dir(converted)} does not exist: give "
                           "--gguf-dir")  # fmt: skip
        return None
    if report is None:
        raise BadInput(
            f"the GGUFs of {directory} are pushed only with a passing parity verdict for "
            f"{converted}: run `reranker-seqcls check SOURCE {converted} --gguf-file FILE`; "
            "nothing was pushed"
        )
    files = checked_ggufs(converted, directory)
    repo = gguf_target or target + GGUF_DIR_SUFFIX
    require_repo_id(repo, "GGUF target")
    if repo == target:
        raise BadInput("--gguf-target must differ from TARGET: the GGUFs are a repo of their own")
    return repo, files


def _writes_card(converted: Path) -> bool:
    """Whether ``push`` writes the model card ``run`` writes: unless the directory holds a card
    of its own (convert's short README is replaced)."""
    from reranker_seqcls.hub.card import is_local_readme

    readme = converted / README_FILE
    return not readme.is_file() or is_local_readme(readme)
