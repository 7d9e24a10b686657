"""``run``: where the source is and which transport takes it, decided once; the whole-snapshot
transport (download → convert → check → card → one commit) lives here, the streamed one in
:mod:`.streamed`. A target that is already current is skipped before anything is fetched."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import ParityFailed
from reranker_seqcls.gguf.run import GgufRun, prepare_gguf_run
from reranker_seqcls.log import Log
from reranker_seqcls.provenance import Provenance, SourceRef
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.run.outcome import RunOptions, RunOutcome, RunParityFailed, source_label
from reranker_seqcls.steps import (
    SourceSpec,
    find_source,
    load_check_pairs,
    locate_source,
    output_dir,
)

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.hub.push import PushResult
    from reranker_seqcls.hub.target import TargetState


def run_pipeline(opts: RunOptions, log: Log) -> RunOutcome:
    """download → convert → check → card → push, skipping when the target is already current."""
    from reranker_seqcls.hub.repo_ids import require_repo_id

    require_repo_id(opts.hub.target, "target")
    memory, max_disk = opts.check.check_memory, opts.max_disk  # parsed with the command line
    spec = find_source(opts.model, opts.revision, opts.hub.token)
    recipe = _run_recipe(opts, spec, log)
    gguf = prepare_gguf_run(opts.gguf, opts.gguf_target, opts.hub.target, recipe)
    try:
        return _run(opts, recipe, spec, memory, max_disk, gguf, log)
    finally:
        if gguf is not None:
            gguf.cleanup()


def _run(
    opts: RunOptions,
    recipe: Recipe,
    spec: SourceSpec,
    memory: int,
    max_disk: int | None,
    gguf: GgufRun | None,
    log: Log,
) -> RunOutcome:
    """The run after its recipe: skip a current target, else one of the two transports."""
    from reranker_seqcls.hub.target import target_state
    from reranker_seqcls.schedule.staleness import expected_identity

    outcome = RunOutcome("failed", opts.hub.target, opts.model)
    seqcls_current = False
    state = target_state(opts.hub.target, opts.hub.token)
    log(
        f"target {opts.hub.target}: "
        + (f"head {state.head[:12]}" if state.head else "does not exist yet")
    )
    sha = spec.ref.commit_sha
    if spec.local is not None:
        source_dir, ref = locate_source(spec, opts.hub.token, log)
    else:
        assert sha is not None
        outcome.source_sha = sha
        if _is_current(opts, sha, recipe, state, outcome, log):
            if gguf is None or gguf.is_current(
                expected_identity(opts.model, sha, recipe), _stem(spec.ref), opts.hub.token, log
            ):
                return outcome
            # the seq-cls target is current, its GGUF target is not: convert for the GGUFs,
            # push only them
            seqcls_current, outcome.status = True, "failed"
        # nothing to keep: stream the source shard by shard (GGUFs as splits, gguf/streamed)
        if opts.output_dir is None and not seqcls_current:
            from reranker_seqcls.gguf.streamed_run import run_streamed_gguf

            streamed = run_streamed_gguf(opts, recipe, sha, state.head, outcome, log, gguf=gguf,
                                         stem=_stem(spec.ref), check_memory=memory,
                                         max_disk=max_disk)  # fmt: skip
            if streamed is not None:
                return streamed
        source_dir, ref = locate_source(spec, opts.hub.token, log)
    if gguf is not None:
        gguf.refuse_source(source_dir, opts.model)
    with output_dir(opts.output_dir) as out:
        provenance, report = _convert_and_check(
            opts, source_dir, out, recipe, ref, outcome, memory, log, gguf
        )
        if not seqcls_current:
            pushed = _card_and_push(opts, out, provenance, report, state, log)
            outcome.record_push(pushed, source_label(opts.model, ref), dry_run=opts.hub.dry_run)
    if seqcls_current:
        outcome.status = "dry_run" if opts.hub.dry_run else "pushed"
        outcome.commit_sha = state.head
        outcome.message = f"{opts.hub.target} is current: not pushed again"
    if gguf is not None:
        _push_gguf(opts, gguf, recipe, report, provenance, outcome, log)
    return outcome


def _push_gguf(
    opts: RunOptions,
    gguf: GgufRun,
    recipe: Recipe,
    report: ParityReport,
    provenance: Provenance,
    outcome: RunOutcome,
    log: Log,
) -> None:
    """The GGUFs, after the seq-cls checkpoint, to their own target in one commit."""
    from reranker_seqcls.publish.card import commit_message

    hub = opts.hub
    pushed = gguf.push(
        seqcls_repo=hub.target, source=opts.model, recipe=recipe, report=report,
        token=hub.token, private=hub.private, create_pr=hub.create_pr, dry_run=hub.dry_run,
        commit_message=commit_message(provenance), log=log,
    )  # fmt: skip
    outcome.gguf_target_repo = gguf.target
    outcome.gguf_commit_sha = pushed.commit_sha
    verb = "would commit" if opts.hub.dry_run else "pushed"
    outcome.message += f"; GGUF: {verb} {len(pushed.added)} file(s) to {gguf.target}"
    if pushed.pr_url:
        outcome.message += f" ({pushed.pr_url})"


def _stem(ref: SourceRef) -> str:
    """The GGUF files' name stem: the source's name."""
    return ref.name.rstrip("/").split("/")[-1]


def _run_recipe(opts: RunOptions, spec: SourceSpec, log: Log) -> Recipe:
    """The recipe as ``convert`` resolves it: the options, else the source's name, else its
    sentence-transformers files (for a Hub source whose name tells no family, its small files
    are fetched first: no weights)."""
    import tempfile
    from functools import partial

    from reranker_seqcls.recipes.presets import detect_preset

    name = spec.name
    resolve = partial(opts.recipe.resolve, name, log=log)
    if spec.local is not None:
        return resolve(source_dir=spec.local)
    sha = spec.ref.commit_sha
    assert sha is not None  # find_source's Hub repo
    if opts.recipe.explicit or detect_preset(name) is not None:
        return resolve()
    from reranker_seqcls.hub import stream_fetch
    from reranker_seqcls.recipes.sentence_transformers import MODULES_FILE

    listing = stream_fetch.list_source(opts.model, sha, opts.hub.token)
    if MODULES_FILE not in listing.files:
        return resolve()  # says the family cannot be told from the name
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-recipe-") as tmp:
        stream_fetch.fetch_small_files(listing, Path(tmp), opts.hub.token, log)
        return resolve(source_dir=Path(tmp))


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
        f"already current: {opts.hub.target} holds {opts.model}@{sha[:12]} converted "
        f"with the same recipe by reranker-seqcls {__version__}"
    )
    log(outcome.message)
    return True


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
    from reranker_seqcls.check.record import write_verdict
    from reranker_seqcls.check.streamed import streamed_check
    from reranker_seqcls.convert.converter import convert

    result = convert(
        source_dir,
        out,
        recipe,
        source_ref=ref,
        force=True,
        allow_pickle=opts.allow_pickle,
        allow_softcapping=opts.check.allow_softcapping,
        log=log,
    )
    outcome.output_dir = out
    pairs = load_check_pairs(recipe, opts.check.pairs_file)
    report = streamed_check(
        source_dir,
        out,
        recipe,
        pairs,
        token_ids=[t.id for t in result.plan.tokens],
        dtype=opts.check.dtype,
        allow_softcapping=opts.check.allow_softcapping,
        vllm_python=opts.check.vllm_python,
        check_memory=check_memory,
        full=opts.check.full_check,
        log=log,
    )
    if gguf is not None:  # a failed llama.cpp row fails the run: nothing is pushed
        gguf.write_and_check(out, recipe, report, pairs, _stem(ref), log)
    outcome.parity = report
    write_verdict(report, out)
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
    out: Path,
    provenance: Provenance,
    report: ParityReport,
    state: TargetState,
    log: Log,
) -> PushResult:
    """The model card, then one commit of ``out`` on the target's head."""
    from reranker_seqcls.hub.push import push
    from reranker_seqcls.publish.card import commit_description, commit_message, write_model_card

    write_model_card(out, opts.hub.target, provenance, report)
    return push(
        out,
        opts.hub.target,
        token=opts.hub.token,
        private=opts.hub.private,
        create_pr=opts.hub.create_pr,
        parent_commit=state.head,
        commit_message=commit_message(provenance),
        commit_description=commit_description(provenance, report),
        dry_run=opts.hub.dry_run,
        log=log,
    )
