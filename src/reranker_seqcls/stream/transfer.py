"""The streamed run's shard loop (the ``transfer`` step of :mod:`reranker_seqcls.run.streamed`).

For each shard in index order: fetch it (checked against the Hub's sha256 and the planned
header); feed it to the scorer on the compute thread (:mod:`.overlap`); write its output shard
(a hard link, whose verified sha256 spares it all hashing, or the rewrite without ``lm_head``;
the head's shard also yields ``score.weight``); hand it to the run's ``upload`` on the upload
thread (digest, pre-upload, delete). The next shard is fetched meanwhile when it fits the
fetch-ahead ``budget``; otherwise the layers and the pre-upload are awaited first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.interrupt import raise_if_stopped
from reranker_seqcls.log import Log
from reranker_seqcls.stream.overlap import Background

if TYPE_CHECKING:
    from reranker_seqcls.check.release_schedule import FeedStep
    from reranker_seqcls.convert.plan import Plan
    from reranker_seqcls.hub.preupload import Preuploader
    from reranker_seqcls.hub.stream_fetch import SourceListing
    from reranker_seqcls.safetensors_io.shards import TensorBytes
    from reranker_seqcls.stream.disk import DiskPeak
    from reranker_seqcls.stream.progress import StreamProgress
    from reranker_seqcls.stream.scorers import StreamScorer

# On the upload thread: (output shard name, its path, its sha256 when known: a hard link).
Upload = Callable[[str, Path, "str | None"], None]


class ShardTransfer:
    """One pass over the shards (see the module docstring); :meth:`run` returns the head's
    ``score.weight``."""

    def __init__(
        self,
        *,
        plan: Plan,
        listing: SourceListing,
        order: list[str],
        sizes: list[int],
        rewritten: list[int],
        steps: list[FeedStep],
        headers: dict[str, bytes],
        source_dir: Path,
        incoming: Path,
        out: Path,
        work: Path,
        budget: int,
        disk: DiskPeak,
        scorer: StreamScorer,
        uploader: Preuploader,
        upload: Upload,
        token: str | None,
        dry_run: bool,
        log: Log,
    ) -> None:
        self.plan, self.listing, self.order, self.sizes = plan, listing, order, sizes
        self.rewritten, self.steps, self.headers = rewritten, steps, headers
        self.source_dir, self.incoming, self.out, self.work = source_dir, incoming, out, work
        self.budget, self.disk, self.scorer, self.uploader = budget, disk, scorer, uploader
        self.upload, self.token, self.dry_run, self.log = upload, token, dry_run, log
        self.kept: list[Path] = []  # released source shards whose output is being written
        self.uploading = 0  # bytes of the shard in pre-upload
        self.score: TensorBytes | None = None

    def run(self) -> TensorBytes | None:
        """Every shard; on any failure the pre-uploads are abandoned (a target made for them
        is deleted) and the layer compute is waited for (a worker left inside torch at exit
        aborts the process); an upload is not."""
        from reranker_seqcls.stream.progress import StreamProgress

        layers = int(self.plan.config.get("num_hidden_layers") or 0)
        progress = StreamProgress(sum(self.sizes), sum(self.sizes), layers)
        compute: Background[list[Path]] = Background("layer compute")
        uploading: Background[None] = Background("pre-upload")
        try:
            for position, name in enumerate(self.order):
                raise_if_stopped()  # a stop whose exception was lost stops at the next shard
                self._one_shard(position, name, progress, layers, compute, uploading)
            self._collect(compute)
            self._await_upload(uploading, progress)
        except BaseException:
            self.uploader.abandon()
            compute.settle()  # not left inside torch at exit (SIGABRT); the upload may stay
            raise
        finally:
            progress.close()
        return self.score

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

        weights = self.plan.planned_weights
        shard = weights.shards[position]
        if disk_usage(self.work) + self.sizes[position] > self.budget:
            # no room to fetch ahead: the layers and the pre-upload first
            self._collect(compute)
            self._await_upload(uploading, progress)
        path = stream_fetch.fetch_shard(
            self.listing, name, self.source_dir, self.incoming, self.headers[name], self.token
        )
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
            if not self.dry_run:
                self.uploader.ensure_target()  # here: abandon() must know of a target it made
            self.uploading = output.stat().st_size  # before the thread may delete it
            uploading.start(lambda: self.upload(shard.name, output, linked))
        verb = "checked" if self.dry_run else "pre-upload started"
        self.log(
            f"shard {position + 1}/{len(self.order)} {name}: fetched, sha256 ok, {placed}"
            f"{'' if dropped else ', ' + verb}; layers {done_layers}/{layers}"
        )
        progress.add(layers=done_layers)

    def _await_upload(self, uploading: Background[None], progress: StreamProgress) -> None:
        """Wait for the last shard's pre-upload."""
        uploading.wait()
        progress.add(bytes_out=self.uploading)
        self.uploading = 0
        self.disk.measure()
