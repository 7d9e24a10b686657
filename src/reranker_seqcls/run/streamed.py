"""``run`` of a Hub source in one streamed pass: the model is never on disk whole.

1. List the source commit (sizes, LFS sha256); fetch the small files; read every shard's header
   by range requests into a sparse placeholder (:mod:`hub.stream_fetch`); plan the conversion
   from those alone (:func:`convert.plan.plan_conversion` reads headers only); choose the
   scorer (:mod:`.scorers`) and forecast the disk (:mod:`.disk`): ``--max-disk`` refuses here,
   before any shard moves.
2. For each shard in index order: fetch it (checked against the Hub's sha256 and the planned
   header); feed it to the scorer on the compute thread (:mod:`stream.overlap`); write its
   output shard (a hard link, whose verified sha256 spares it all hashing, or the rewrite
   without ``lm_head``; the head's shard also yields ``score.weight``); hash and pre-upload it
   on the upload thread (:mod:`hub.preupload`). The next shard comes meanwhile if it fits.
3. Write the small output files (:func:`convert.converter.finish_output`), take the scorer's
   report; on a pass, the card and one ``create_commit`` with the pre-uploaded shards, the small
   files and ``parent_commit`` (:func:`hub.preupload.commit_preuploaded`).

Everything lives in one temporary directory, removed at the end, also on an error or a stop
signal; a target created for the pre-uploads is deleted again on any failure.

Over 300 lines: one run's steps share its state (listing, plan, scorer, uploader, disk, the two
worker threads); what stands alone lives in ``stream/`` (forecast, progress, scorers, overlap)
and ``hub/``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.sizes import human_size
from reranker_seqcls.stream.overlap import Background, overlap_budget

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
    from reranker_seqcls.stream.progress import StreamProgress
    from reranker_seqcls.stream.scorers import StreamScorer


def run_streamed(
    opts: RunOptions,
    recipe: Recipe,
    commit_sha: str,
    head: str | None,
    outcome: RunOutcome,
    log: Log,
    *,
    check_memory: int,
    max_disk: int | None,
    make: type[_StreamedRun] | None = None,  # a subclass that adds to the run (gguf/streamed)
) -> RunOutcome | None:
    """The streamed run of a Hub source; None when the source has no safetensors weights
    (a pickle-only source takes the whole-snapshot path). A failed check raises
    :class:`.outcome.RunParityFailed` after the pre-uploads are abandoned."""
    from reranker_seqcls.hub import stream_fetch

    listing = stream_fetch.list_source(opts.model, commit_sha, opts.hub.token)
    if not listing.has_safetensors:
        return None
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-run-") as tmp:
        stream = (make or _StreamedRun)(opts, recipe, listing, Path(tmp), log)
        stream.prepare(check_memory=check_memory, max_disk=max_disk)
        stream.transfer(head)
        provenance, report = stream.finish(outcome)
        stream.publish(provenance, report, outcome)
    return outcome


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
        self.kept: list[Path] = []  # released source shards whose output is being written
        self.uploading = 0  # bytes of the shard in pre-upload
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
        from reranker_seqcls.stream.progress import StreamProgress

        hub = self.opts.hub
        self.uploader = Preuploader(
            hub.target, token=hub.token, private=hub.private, create_pr=hub.create_pr,
            head=head, dry_run=hub.dry_run, log=self.log,
        )  # fmt: skip
        layers = int(self.plan.config.get("num_hidden_layers") or 0)
        progress = StreamProgress(sum(self.sizes), sum(self.sizes), layers)
        compute: Background[list[Path]] = Background("layer compute")
        uploading: Background[None] = Background("pre-upload")
        try:
            for position, name in enumerate(self.order):
                self._one_shard(position, name, progress, layers, compute, uploading)
            self._collect(compute)
            self._await_upload(uploading, progress)
        except BaseException:
            self.uploader.abandon()
            compute.settle()  # not left inside torch at exit (SIGABRT); the upload may stay
            raise
        finally:
            progress.close()

    def _collect(self, compute: Background[list[Path]], keep: Path | None = None) -> None:
        """Wait for the scorer's last feed; delete the shards it released (``keep`` once its
        output shard is written)."""
        for done in compute.wait() or []:
            if done == keep:
                self.kept.append(done)
            else:
                done.unlink(missing_ok=True)
        self.disk.measure()

    def _one_shard(
        self,
        position: int,
        name: str,
        progress: StreamProgress,
        layers: int,
        compute: Background[list[Path]],
        uploading: Background[None],
    ) -> None:
        from reranker_seqcls.convert.write import score_weight, write_output_shard
        from reranker_seqcls.hub import stream_fetch
        from reranker_seqcls.safetensors_io.place import Placement
        from reranker_seqcls.stream.disk import disk_usage

        assert self.uploader is not None
        weights = self.plan.planned_weights
        shard = weights.shards[position]
        if disk_usage(self.work) + self.sizes[position] > self.budget:
            # no room to fetch ahead: the layers and the pre-upload first
            self._collect(compute)
            self._await_upload(uploading, progress)
        path = stream_fetch.fetch_shard(
            self.listing, name, self.source_dir, self.incoming, self.headers[name],
            self.opts.hub.token,
        )  # fmt: skip
        progress.add(bytes_in=self.sizes[position])
        self.disk.measure()
        self._collect(compute)  # the scorer takes shards in order
        rewrite = self.rewritten[position]  # a shard kept whole is linked before its feed
        placed = None if rewrite else write_output_shard(self.plan, shard, path, self.out)
        linked = self.listing.files[name].sha256 if placed is Placement.HARD_LINKED else None
        compute.start(lambda: self.scorer.feed_source(path, linked))
        if rewrite:
            # A rewrite adds a file: the shards this feed releases (one held for a layer
            # spanning into this shard) go first, as in the forecast, and an output in upload
            # (its blocks) when the rewrite would not fit beside it.
            self._collect(compute, keep=path)
            if disk_usage(self.work) + rewrite > self.budget:
                self._await_upload(uploading, progress)
        if name == weights.head_shard:
            self.score = score_weight(self.plan, path)
        placed = placed or write_output_shard(self.plan, shard, path, self.out)
        self.disk.measure()  # the rewrite beside its source, before the source goes
        for done in self.kept:
            done.unlink(missing_ok=True)
        self.kept.clear()
        done_layers = self.steps[position].layers_done
        self._await_upload(uploading, progress)
        dropped = placed in (Placement.DROPPED_EMPTY, Placement.DROPPED_HEAD_ONLY)
        if not dropped:
            output = self.out / shard.name
            if not self.opts.hub.dry_run:
                self.uploader.ensure_target()  # here: abandon() must know of a target it made
            self.uploading = output.stat().st_size  # before the thread may delete it
            uploading.start(lambda: self._upload(shard.name, output, linked))
        verb = "checked" if self.opts.hub.dry_run else "pre-upload started"
        self.log(
            f"shard {position + 1}/{len(self.order)} {name}: fetched, sha256 ok, {placed}"
            f"{'' if dropped else ', ' + verb}; layers {done_layers}/{layers}"
        )
        progress.add(layers=done_layers)

    def _upload(self, name: str, output: Path, sha256: str | None) -> None:
        """On the upload thread: digest the output shard for the backbone check, pre-upload it
        (``sha256``: known for a hard link), delete it unless the scorer keeps the outputs."""
        assert self.uploader is not None
        self.scorer.feed_converted(output)
        if self.uploader.upload(name, output, sha256) and not self.scorer.keeps_outputs:
            output.unlink()

    def _await_upload(self, uploading: Background[None], progress: StreamProgress) -> None:
        """Wait for the last shard's pre-upload."""
        uploading.wait()
        progress.add(bytes_out=self.uploading)
        self.uploading = 0
        self.disk.measure()

    # ------------------------------------------------------------------ 3. finish

    def finish(self, outcome: RunOutcome) -> tuple[Provenance, ParityReport]:
        from reranker_seqcls.check.record import write_verdict
        from reranker_seqcls.check.report import write_report
        from reranker_seqcls.convert.converter import finish_output
        from reranker_seqcls.errors import ParityFailed
        from reranker_seqcls.names import PARITY_REPORT_FILE, SCORE_SHARD_FILE
        from reranker_seqcls.provenance import SourceRef
        from reranker_seqcls.run.outcome import RunParityFailed

        assert self.uploader is not None
        try:
            ref = SourceRef(self.opts.model, self.opts.model, self.opts.revision,
                            self.listing.commit_sha)  # fmt: skip
            provenance = finish_output(self.plan, self.out, ref, score=self.score, log=self.log)
            self.scorer.feed_converted(self.out / SCORE_SHARD_FILE)
            self.twin_work.mkdir()
            report = self.scorer.finish(self.twin_work)
            self.disk.measure()
            outcome.parity = report
            if self.opts.hub.dry_run:
                write_report(report, self.out / PARITY_REPORT_FILE)
            else:  # bound to the bytes published: the shards' as uploaded, the small files'
                write_verdict(report, self.out, gone=self.uploader.uploaded_sha256())
            for row in report.table_rows():
                self.log(row)
            self.log(f"streamed run: peak disk {human_size(self.disk.peak)}")
            try:
                report.require_passed()
            except ParityFailed as exc:
                outcome.message = f"{exc}; nothing was pushed"
                raise RunParityFailed(outcome) from exc
        except BaseException:
            self.uploader.abandon()
            raise
        self.ref = ref
        return provenance, report

    def publish(self, provenance: Provenance, report: ParityReport, outcome: RunOutcome) -> None:
        from reranker_seqcls.hub.preupload import commit_preuploaded
        from reranker_seqcls.publish import card
        from reranker_seqcls.run.outcome import source_label

        assert self.uploader is not None
        try:
            card.write_model_card(self.out, self.opts.hub.target, provenance, report)
            pushed = commit_preuploaded(
                self.out,
                self.uploader,
                commit_message=card.commit_message(provenance),
                commit_description=card.commit_description(provenance, report),
                log=self.log,
            )
        except BaseException:
            self.uploader.abandon()
            raise
        label = source_label(self.opts.model, self.ref)
        outcome.record_push(pushed, label, dry_run=self.opts.hub.dry_run)
