"""``run``: the full download → convert → check → push of one reranker, skipping a target that
is already current; its options and its outcome (the result JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import ParityFailed
from reranker_seqcls.gguf.run import GgufRun, prepare_gguf_run
from reranker_seqcls.log import Log
from reranker_seqcls.names import PARITY_REPORT_FILE
from reranker_seqcls.provenance import Provenance, SourceRef
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.recipes.resolve import resolve_recipe
from reranker_seqcls.run_commit import source_label
from reranker_seqcls.steps import (
    load_check_pairs,
    locate_source,
    output_dir,
    source_commit,
    source_name,
)

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.hub.push import PushResult
    from reranker_seqcls.hub.target import TargetState


@dataclass
class RunOutcome:
    """What a run did; the CLI prints it and writes it as ``--result-json``."""

    status: str  # "pushed" | "skipped" | "dry_run" | "failed"
    target_repo: str
    source_repo: str
    source_sha: str | None = None
    commit_sha: str | None = None
    pr_url: str | None = None
    parity: ParityReport | None = None
    message: str = ""
    output_dir: Path | None = None
    gguf_target_repo: str | None = None  # run --gguf: the second target and its commit
    gguf_commit_sha: str | None = None

    def record_push(self, pushed: PushResult, label: str, *, dry_run: bool) -> None:
        self.commit_sha = pushed.commit_sha
        self.pr_url = pushed.pr_url
        sha = (pushed.commit_sha or "")[:12]
        if dry_run:
            self.status = "dry_run"
            self.message = (
                f"dry run: would commit {len(pushed.added)} file(s) to {self.target_repo}"
            )
        elif not pushed.committed:  # the target holds this conversion: the push's aim is met
            self.status = "pushed"
            self.message = (
                f"{self.target_repo} already holds {label} (commit {sha}): no commit was made"
            )
        else:
            self.status = "pushed"
            self.message = f"pushed {label} to {self.target_repo} (commit {sha})"

    def to_json(self) -> dict[str, Any]:
        from reranker_seqcls.hub.repo_ids import repo_url

        parity = None
        if self.parity is not None:
            parity = {
                "passed": self.parity.passed,
                "verdict": self.parity.verdict,
                "max_abs_diff": self.parity.max_abs_diff,
                "spearman": self.parity.spearman,
                "tokenization_gap": self.parity.to_json()["tokenization_gap"],
                "table_markdown": self.parity.markdown(),
            }
        return {
            "status": self.status,
            "skipped": self.status == "skipped",
            "target_repo": self.target_repo,
            "target_url": repo_url(self.target_repo),
            "commit_sha": self.commit_sha,
            "pr_url": self.pr_url,
            "source_repo": self.source_repo,
            "source_sha": self.source_sha,
            "parity": parity,
            "message": self.message,
            **(
                {"gguf_target_repo": self.gguf_target_repo, "gguf_commit_sha": self.gguf_commit_sha}
                if self.gguf_target_repo
                else {}
            ),
        }


class RunParityFailed(ParityFailed):
    """``run`` stopped by its parity check: nothing was pushed. ``outcome`` is what
    ``--result-json`` records (status "failed", with the parity summary)."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class RunOptions:
    model: str
    target: str
    revision: str | None = None
    preset: str | None = None
    tokens: str | None = None
    method: str | None = None
    template: Path | None = None
    private: bool = False
    create_pr: bool = False
    dry_run: bool = False
    force: bool = False
    output_dir: Path | None = None
    token: str | None = None
    allow_pickle: bool = False
    allow_softcapping: bool = False
    pairs_file: Path | None = None
    dtype: str | None = None
    token_ids: str | None = None
    scale: str | None = None
    vllm_python: Path | None = None
    check_memory: str = "1.5GB"
    max_disk: str | None = None  # --max-disk: the most a streamed run may use
    gguf: str | None = None  # --gguf TYPES (gguf/run.py)
    gguf_target: str | None = None


def run_pipeline(opts: RunOptions, log: Log) -> RunOutcome:
    """download → convert → check → card → push, skipping when the target is already current."""
    from reranker_seqcls.check.twin import parse_memory
    from reranker_seqcls.hub.repo_ids import require_repo_id
    from reranker_seqcls.sizes import parse_size

    require_repo_id(opts.target, "target")
    memory = parse_memory(opts.check_memory)  # bad sizes fail before anything is downloaded
    max_disk = None if opts.max_disk is None else parse_size(opts.max_disk, "--max-disk")
    local = Path(opts.model).is_dir()
    sha = source_commit(opts.model, opts.revision, opts.token)
    recipe = resolve_recipe(
        source_name=source_name(opts.model),
        preset=opts.preset,
        tokens_json=opts.tokens,
        method=opts.method,
        template_path=opts.template,
        token_ids_json=opts.token_ids,
        scale=opts.scale,
        source_dir=Path(opts.model) if local else None,
        log=log,
    )
    gguf = prepare_gguf_run(opts.gguf, opts.gguf_target, opts.target, recipe)
    try:
        return _run(opts, recipe, sha, local, memory, max_disk, gguf, log)
    finally:
        if gguf is not None:
            gguf.cleanup()


def _run(
    opts: RunOptions,
    recipe: Recipe,
    sha: str | None,
    local: bool,
    memory: int,
    max_disk: int | None,
    gguf: GgufRun | None,
    log: Log,
) -> RunOutcome:
    from reranker_seqcls.hub.target import target_state

    outcome = RunOutcome("failed", opts.target, opts.model)
    state = target_state(opts.target, opts.token)
    log(
        f"target {opts.target}: "
        + (f"head {state.head[:12]}" if state.head else "does not exist yet")
    )
    if local:
        source_dir, ref = locate_source(opts.model, opts.revision, opts.token, log)
    else:
        assert sha is not None
        outcome.source_sha = sha
        if _is_current(opts, sha, recipe, state, outcome, log):
            return outcome
        # nothing to keep: stream the source shard by shard (GGUFs take the whole snapshot)
        if opts.output_dir is None and gguf is None:
            from reranker_seqcls.stream.run import run_streamed

            streamed = run_streamed(opts, recipe, sha, state.head, outcome, log,
                                    check_memory=memory, max_disk=max_disk)  # fmt: skip
            if streamed is not None:
                return streamed
        source_dir, ref = _fetch(opts, sha, log)
    if gguf is not None:
        gguf.refuse_source(source_dir, opts.model)
    with output_dir(opts.output_dir) as out:
        provenance, report = _convert_and_check(
            opts, source_dir, out, recipe, ref, outcome, memory, log, gguf
        )
        pushed = _card_and_push(opts, source_dir, out, recipe, ref, provenance, report, state, log)
    outcome.record_push(pushed, source_label(opts.model, ref), dry_run=opts.dry_run)
    if gguf is not None:
        _push_gguf(opts, gguf, recipe, report, ref, outcome, log)
    return outcome


def _push_gguf(
    opts: RunOptions,
    gguf: GgufRun,
    recipe: Recipe,
    report: ParityReport,
    ref: SourceRef,
    outcome: RunOutcome,
    log: Log,
) -> None:
    """The GGUFs, after the seq-cls checkpoint, to their own target in one commit."""
    from reranker_seqcls.run_commit import commit_message

    pushed = gguf.push(
        seqcls_repo=opts.target, source=opts.model, recipe=recipe, report=report,
        token=opts.token, private=opts.private, create_pr=opts.create_pr, dry_run=opts.dry_run,
        commit_message=commit_message(opts.model, ref), log=log,
    )  # fmt: skip
    outcome.gguf_target_repo = gguf.target
    outcome.gguf_commit_sha = pushed.commit_sha
    verb = "would commit" if opts.dry_run else "pushed"
    outcome.message += f"; GGUF: {verb} {len(pushed.added)} file(s) to {gguf.target}"
    if pushed.pr_url:
        outcome.message += f" ({pushed.pr_url})"


def _is_current(
    opts: RunOptions, sha: str, recipe: Recipe, state: TargetState, outcome: RunOutcome, log: Log
) -> bool:
    """Whether the run stops here: the target holds this source, recipe and tool version
    (``outcome`` then says so); ``--force`` converts anyway."""
    from reranker_seqcls import __version__
    from reranker_seqcls.schedule.staleness import expected_identity, why_stale

    stale = why_stale(state, expected_identity(opts.model, sha, recipe))
    if stale:
        log(f"converting: {'; '.join(stale)}")
        return False
    if opts.force:
        log("target is current, converting anyway (--force)")
        return False
    outcome.status = "skipped"
    outcome.message = (
        f"already current: {opts.target} holds {opts.model}@{sha[:12]} converted "
        f"with the same recipe by reranker-seqcls {__version__}"
    )
    log(outcome.message)
    return True


def _fetch(opts: RunOptions, sha: str, log: Log) -> tuple[Path, SourceRef]:
    from reranker_seqcls.hub.fetch import fetch

    fetched = fetch(opts.model, opts.revision, token=opts.token, log=log, commit_sha=sha)
    return fetched.path, SourceRef(opts.model, opts.model, opts.revision, sha)


def _convert_and_check(
    opts: RunOptions,
    source_dir: Path,
    out: Path,
    recipe: Recipe,
    ref: SourceRef,
    outcome: RunOutcome,
    check_memory: int,
    log: Log,
    gguf: GgufRun | None = None,
) -> tuple[Provenance, ParityReport]:
    """Convert into ``out`` and check it; a failed check raises :class:`RunParityFailed`."""
    from reranker_seqcls.check.report import write_report
    from reranker_seqcls.check.streamed import streamed_check
    from reranker_seqcls.convert.converter import convert

    result = convert(
        source_dir,
        out,
        recipe,
        source_ref=ref,
        force=True,
        allow_pickle=opts.allow_pickle,
        allow_softcapping=opts.allow_softcapping,
        log=log,
    )
    outcome.output_dir = out
    pairs = load_check_pairs(recipe, opts.pairs_file)
    report = streamed_check(
        source_dir,
        out,
        recipe,
        pairs,
        token_ids=[t.id for t in result.plan.tokens],
        dtype=opts.dtype,
        allow_softcapping=opts.allow_softcapping,
        vllm_python=opts.vllm_python,
        check_memory=check_memory,
        log=log,
    )
    if gguf is not None:  # a failed llama.cpp row fails the run: nothing is pushed
        stem = source_name(opts.model).rstrip("/").split("/")[-1]
        gguf.write_and_check(out, recipe, report, pairs, stem, log)
    outcome.parity = report
    write_report(report, out / PARITY_REPORT_FILE)
    for row in report.table_rows():
        log(row)
    try:
        report.require_passed()
    except ParityFailed as exc:
        outcome.message = f"{exc}; nothing was pushed"
        raise RunParityFailed(outcome) from exc
    return result.provenance, report


def _card_and_push(
    opts: RunOptions,
    source_dir: Path,
    out: Path,
    recipe: Recipe,
    ref: SourceRef,
    provenance: Provenance,
    report: ParityReport,
    state: TargetState,
    log: Log,
) -> PushResult:
    """The model card, then one commit of ``out`` on the target's head."""
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.run_commit import commit_description, commit_message, write_run_card

    write_run_card(opts.target, source_dir, out, recipe, provenance, report)
    return push(
        out,
        opts.target,
        token=opts.token,
        private=opts.private,
        create_pr=opts.create_pr,
        parent_commit=state.head,
        commit_message=commit_message(opts.model, ref),
        commit_description=commit_description(ref, recipe, report),
        dry_run=opts.dry_run,
        log=log,
    )
