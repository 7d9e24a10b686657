"""``run``: where the source is and which transport takes it, decided once, then the skeleton's
four steps driven once (:func:`.transport.drive`): the whole snapshot (:mod:`.whole`) or the
streamed run (:mod:`.streamed`). A target that is already current is skipped before anything is
fetched."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.gguf.run import GgufRun, gguf_stem, prepare_gguf_run
from reranker_seqcls.log import Log
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.run.outcome import RunOptions, RunOutcome
from reranker_seqcls.run.streamed import open_streamed
from reranker_seqcls.run.transport import Transport, drive
from reranker_seqcls.run.whole import WholeSnapshot
from reranker_seqcls.steps import SourceSpec, find_source

if TYPE_CHECKING:
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
    """The run after its recipe: skip a current target, else the skeleton's four steps on the
    transport chosen here."""
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
    if spec.local is None:
        assert sha is not None
        outcome.source_sha = sha
        if _is_current(opts, sha, recipe, state, outcome, log):
            expected, stem = expected_identity(opts.model, sha, recipe), gguf_stem(spec.ref)
            if gguf is None or gguf.is_current(expected, stem, opts.hub.token, log):
                return outcome
            # the seq-cls target is current, its GGUF target is not: convert for the GGUFs,
            # push only them
            seqcls_current, outcome.status = True, "failed"
    transport = _transport(opts, recipe, spec, gguf, log, seqcls_current=seqcls_current)
    return drive(transport, outcome, state.head, check_memory=memory, max_disk=max_disk)


def _transport(
    opts: RunOptions,
    recipe: Recipe,
    spec: SourceSpec,
    gguf: GgufRun | None,
    log: Log,
    *,
    seqcls_current: bool,
) -> AbstractContextManager[Transport]:
    """Streamed: a Hub source with safetensors weights, nothing to keep (no ``--output-dir``)
    and a seq-cls checkpoint to push (GGUFs as splits, :mod:`reranker_seqcls.gguf.streamed`).
    Else the whole snapshot."""
    if spec.local is None and opts.output_dir is None and not seqcls_current:
        from reranker_seqcls.hub import stream_fetch

        assert spec.ref.commit_sha is not None
        listing = stream_fetch.list_source(opts.model, spec.ref.commit_sha, opts.hub.token)
        if listing.has_safetensors:  # else pickle only: the whole snapshot, read by torch
            if gguf is None:
                return open_streamed(opts, recipe, listing, log)
            from reranker_seqcls.gguf.streamed_run import open_streamed_gguf

            return open_streamed_gguf(opts, recipe, listing, log, gguf=gguf,
                                      stem=gguf_stem(spec.ref))  # fmt: skip
    return WholeSnapshot(opts, recipe, spec, log, gguf=gguf, seqcls_current=seqcls_current)


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
