"""``run`` of a Hub source in one streamed pass, the model never on disk whole: the streamed
transport of the run's skeleton (:mod:`.transport`), step by step.

1. ``prepare``: list the source commit (sizes, LFS sha256; done by :mod:`.pipeline`, which
   chose this transport for a source with safetensors); fetch the small files; read every
   shard's header by range requests into a sparse placeholder (:mod:`hub.stream_fetch`); plan
   the conversion from those alone (:func:`convert.plan.plan_conversion` reads headers only);
   choose the scorer (:mod:`stream.scorers`) and forecast the disk (:mod:`stream.disk`):
   ``--max-disk`` refuses here, before any shard moves.
2. ``transfer``: the shard loop (:mod:`stream.transfer`): fetch, feed, write, pre-upload
   (:meth:`_StreamedRun._upload`, on the upload thread), delete, shard by shard.
3. ``finish``: the small output files (:func:`convert.converter.finish_output`), the scorer's
   report, judged by the skeleton's tail (:func:`.transport.conclude`).
4. ``publish``: the card and one ``create_commit`` with the pre-uploaded shards, the small
   files and ``parent_commit`` (:func:`hub.preupload.commit_preuploaded`).

Everything lives in one temporary directory (:func:`open_streamed`), removed at the end, also
on an error or a stop signal; a target created for the pre-uploads is deleted again on any
failure. The GGUF road (``gguf/streamed_run.py``) subclasses :class:`_StreamedRun`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.sizes import human_size
from reranker_seqcls.stream.overlap import overlap_budget

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.convert.plan import Plan
    from reranker_seqcls.hub.preupload import Preuploader
    from reranker_seqcls.hub.stream_fetch import SourceListing
    from reranker_seqcls.provenance import Provenance
    from reranker_seqcls.recipes.recipe import Recipe
    from reranker_seqcls.run.outcome import RunOptions, RunOutcome
    from reranker_seqcls.safetensors_io.shards import TensorBytes
    from reranker_seqcls.stream.disk import DiskForecast
    from reranker_seqcls.stream.scorers import StreamScorer


@contextmanager
def open_streamed(
    opts: RunOptions,
    recipe: Recipe,
    listing: SourceListing,
    log: Log,
    make: type[_StreamedRun] | None = None,  # a subclass that adds to the run (gguf/streamed)
) -> Iterator[_StreamedRun]:
    """The streamed transport of a Hub source with safetensors weights (``listing``), in its
    temporary directory."""
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-run-") as tmp:
        yield (make or _StreamedRun)(opts, recipe, listing, Path(tmp), log)


class _StreamedRun:
    """One streamed run's state, step by step (see the module docstring)."""

    def __init__(
        self, opts: RunOptions, recipe: Recipe, listing: SourceListing, work: Path, log: Log
    ) -> None:
        from reranker_seqcls.stream.disk import DiskPeak

        self.opts, self.recipe, self.listing, self.log = opts, recipe, listing, log
        self.work = work
        self.source_dir, self.out = work / "source", work / "converted"
        self.incoming, self.twin_work = work / "incoming", work / "twin"
        for directory in (self.source_dir, self.out, self.incoming):
            directory.mkdir()
        self.disk = DiskPeak(work)
        self.budget = 0  # the disk a fetch ahead may fill (set by prepare)
        self.score: TensorBytes | None = None
        self.uploader: Preuploader | None = None

    # ------------------------------------------------------------------ 1. plan

    def prepare(self, *, check_memory: int, max_disk: int | None) -> None:
        from reranker_seqcls.check.twin import check_tokenizer_memory
        from reranker_seqcls.convert.converter import log_plan
        from reranker_seqcls.convert.plan import ShardAction, plan_conversion
        from reranker_seqcls.hub import stream_fetch
        from reranker_seqcls.names import TOKENIZER_FILE
        from reranker_seqcls.steps import load_check_pairs
        from reranker_seqcls.stream.scorers import make_scorer

        opts, listing, log = self.opts, self.listing, self.log
        if (tokenizer := listing.files.get(TOKENIZER_FILE)) is not None:
            check_tokenizer_memory(tokenizer.size, check_memory)  # before it is fetched
        token = opts.hub.token
        stream_fetch.fetch_small_files(listing, self.source_dir, token, log, max_disk=max_disk)
        names = stream_fetch.shard_names_to_stream(listing, self.source_dir)
        self.headers = stream_fetch.place_headers(listing, names, self.source_dir, token, log)
        self.plan: Plan = plan_conversion(
            self.source_dir, self.recipe, allow_softcapping=opts.check.allow_softcapping
        )
        log_plan(self.plan, log)
        weights = self.plan.planned_weights
        self.order = [s.source_name for s in weights.shards]
        self.sizes = [listing.files[n].size for n in self.order]
        # A rewritten shard is its kept tensors and a header no longer than the source's.
        self.rewritten = [
            shard.kept_bytes + len(self.headers[shard.source_name])
            if shard.action is ShardAction.REWRITE
            else 0
            for shard in weights.shards
        ]
        self.scorer: StreamScorer = make_scorer(
            source=self.source_dir,
            converted=self.out,
            recipe=self.recipe,
            pairs=load_check_pairs(self.recipe, opts.check.pairs_file),
            config=self.plan.config,
            token_ids=[t.id for t in self.plan.tokens],
            dtype=opts.check.dtype,
            allow_softcapping=opts.check.allow_softcapping,
            vllm_python=opts.check.vllm_python,
            check_memory=check_memory,
            full=opts.check.full_check,
            whole_model_disk=self._forecast(keep_all=True).total,
            max_disk=max_disk,
            log=log,
        )
        tensors = [list(weights.checkpoint.shards[n].tensors) for n in self.order]
        self.steps = self.scorer.schedule(tensors)
        forecast = self._forecast(keep_all=self.scorer.keeps_outputs)
        need = forecast.total
        self.budget = overlap_budget(self.sizes, 2 * forecast.small, max_disk)
        log(
            f"streamed run: {len(self.order)} shard(s), {human_size(sum(self.sizes))}, largest "
            f"{human_size(max(self.sizes))}; disk needed at most {human_size(need)} one shard "
            f"at a time, {human_size(max(need, self.budget))} fetching the next while one is scored"
        )
        if max_disk is not None and need > max_disk:
            raise BadInput(
                f"this run needs up to {human_size(need)} of disk, more than --max-disk "
                f"{human_size(max_disk)}: free disk space or raise --max-disk; no shard was fetched"
            )
        self.disk.measure()

    def _forecast(self, *, keep_all: bool) -> DiskForecast:
        from reranker_seqcls.stream.disk import forecast, keep_all_steps

        small = [self.listing.files[n].size for n in self.listing.small_files]
        return forecast(
            small=sum(small), small_files=len(small), sizes=self.sizes, rewritten=self.rewritten,
            steps=keep_all_steps(len(self.order)) if keep_all else self.steps,
            keeps_outputs=keep_all, twin=0 if keep_all else self.scorer.twin_disk,
        )  # fmt: skip

    # ------------------------------------------------------------------ 2. the shards

    def transfer(self, head: str | None) -> None:
        from reranker_seqcls.hub.preupload import Preuploader
        from reranker_seqcls.stream.transfer import ShardTransfer

        hub = self.opts.hub
        self.uploader = Preuploader(
            hub.target, token=hub.token, private=hub.private, create_pr=hub.create_pr,
            head=head, dry_run=hub.dry_run, log=self.log,
        )  # fmt: skip
        self.score = ShardTransfer(
            plan=self.plan, listing=self.listing, order=self.order, sizes=self.sizes,
            rewritten=self.rewritten, steps=self.steps, headers=self.headers,
            source_dir=self.source_dir, incoming=self.incoming, out=self.out, work=self.work,
            budget=self.budget, disk=self.disk, scorer=self.scorer, uploader=self.uploader,
            upload=self._upload, token=hub.token, dry_run=hub.dry_run, log=self.log,
        ).run()  # fmt: skip

    def _upload(self, name: str, output: Path, sha256: str | None) -> None:
        """On the upload thread: digest the output shard for the backbone check, pre-upload it
        (``sha256``: known for a hard link), delete it unless the scorer keeps the outputs."""
        assert self.uploader is not None
        self.scorer.feed_converted(output)
        if self.uploader.upload(name, output, sha256) and not self.scorer.keeps_outputs:
            output.unlink()

    # ------------------------------------------------------------------ 3. finish

    def finish(self, outcome: RunOutcome) -> tuple[Provenance, ParityReport]:
        from reranker_seqcls.convert.converter import finish_output
        from reranker_seqcls.names import SCORE_SHARD_FILE
        from reranker_seqcls.provenance import SourceRef
        from reranker_seqcls.run.transport import conclude

        assert self.uploader is not None
        try:
            ref = SourceRef(self.opts.model, self.opts.model, self.opts.revision,
                            self.listing.commit_sha)  # fmt: skip
            provenance = finish_output(self.plan, self.out, ref, score=self.score, log=self.log)
            self.scorer.feed_converted(self.out / SCORE_SHARD_FILE)
            self.twin_work.mkdir()
            report = self.scorer.finish(self.twin_work)
            self.disk.measure()
            # bound to the bytes published: the shards' as uploaded, the small files'; a dry
            # run's shards went nowhere: its plain report
            dry_run = self.opts.hub.dry_run
            conclude(
                report, self.out, outcome, self.log, bound=not dry_run,
                gone=None if dry_run else self.uploader.uploaded_sha256(),
                notes=[f"streamed run: peak disk {human_size(self.disk.peak)}"],
            )  # fmt: skip
        except BaseException:
            self.uploader.abandon()
            raise
        self.ref = ref
        return provenance, report

    def publish(self, provenance: Provenance, report: ParityReport, outcome: RunOutcome) -> None:
        from reranker_seqcls.hub.preupload import commit_preuploaded
        from reranker_seqcls.publish.push import publish_checkpoint
        from reranker_seqcls.run.outcome import source_label

        uploader = self.uploader
        assert uploader is not None
        try:
            publish_checkpoint(
                self.out, self.opts.hub.target, provenance, report, outcome,
                label=source_label(self.opts.model, self.ref), dry_run=self.opts.hub.dry_run,
                commit=lambda message, description: commit_preuploaded(
                    self.out, uploader, commit_message=message,
                    commit_description=description, log=self.log,
                ),
            )  # fmt: skip
        except BaseException:
            uploader.abandon()
            raise
