"""``run --gguf`` on the streamed road: the streamed run (:mod:`reranker_seqcls.run.streamed`,
which knows nothing of GGUFs) with :class:`.streamed.GgufStream` added to four of its steps:
the disk forecast, the upload of each output shard (its splits first), the scorer's report (the
llama.cpp rows, before the run judges it) and the publication (the GGUF target's commit, after
the seq-cls one). A failure removes a GGUF target the run created.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.gguf.streamed import GgufStream
from reranker_seqcls.log import Log
from reranker_seqcls.run.streamed import _StreamedRun, open_streamed
from reranker_seqcls.sizes import human_size

if TYPE_CHECKING:
    from reranker_seqcls.check.release_schedule import FeedStep
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.gguf.run import GgufRun
    from reranker_seqcls.hub.stream_fetch import SourceListing
    from reranker_seqcls.provenance import Provenance
    from reranker_seqcls.recipes.recipe import Recipe
    from reranker_seqcls.run.outcome import RunOptions, RunOutcome
    from reranker_seqcls.stream.disk import DiskForecast
    from reranker_seqcls.stream.scorers import StreamScorer


@contextmanager
def open_streamed_gguf(
    opts: RunOptions, recipe: Recipe, listing: SourceListing, log: Log, *, gguf: GgufRun, stem: str
) -> Iterator[_StreamedRun]:
    """The streamed transport (:func:`run.streamed.open_streamed`) with the split GGUFs of
    ``gguf`` (files named after ``stem``, the source's name, as on the whole road); a failure
    removes a GGUF target the run created."""
    with open_streamed(opts, recipe, listing, log, make=_GgufStreamedRun) as run:
        assert isinstance(run, _GgufStreamedRun)
        run.gguf = GgufStream(gguf, opts, run.work / "gguf", log, stem)
        try:
            yield run
        except BaseException:
            run.gguf.abandon()
            raise


class _GgufStreamedRun(_StreamedRun):
    """The streamed run with its GGUF splits (see the module docstring)."""

    gguf: GgufStream

    def _forecast(self, *, keep_all: bool) -> DiskForecast:
        """The run's forecast with the GGUF files, which stay until llama-server scored them.
        A scorer that keeps every shard: the files are written at the end, beside them all.
        Else the shape is chosen here (:func:`choose_pass`): one pass replays the release
        schedule with the splits of the shards fed so far on disk (shard k's split is written
        while its output is there) and all of them at the end beside the twin; the second
        pass holds only the splits, the keys splits and the small files once pass 1's files
        and the twin are gone."""
        forecast = super()._forecast(keep_all=keep_all)
        total = self.gguf.planned_bytes(self.source_dir, self.order)
        if keep_all or not self.steps:
            return replace(forecast, transfer=forecast.transfer + total, twin=forecast.twin + total)
        splits = [self.gguf.shard_bytes.get(name, 0) for name in self.order]
        slack = forecast.transfer - _replay(
            self.steps, self.sizes, self.rewritten, [0] * len(splits)
        )
        transfer = _replay(self.steps, self.sizes, self.rewritten, splits) + slack
        one = replace(forecast, transfer=transfer, twin=forecast.twin + total)
        two = replace(forecast, twin=max(forecast.twin, total))
        self.gguf.two_pass = choose_pass(
            one.total, two.total, goal=2 * max(self.sizes) + GOAL_SLACK,
            max_disk=self.max_disk, log=self.log,
        )  # fmt: skip
        return two if self.gguf.two_pass else one

    def prepare(self, *, check_memory: int, max_disk: int | None) -> None:
        from reranker_seqcls.gguf.streamed import SecondPassSource

        self.steps: list[FeedStep] = []  # the scorer's schedule, once it is made
        self.max_disk = max_disk
        super().prepare(check_memory=check_memory, max_disk=max_disk)
        self.gguf.whole = self.scorer.keeps_outputs
        if not self.gguf.two_pass:
            # a split is written on the upload thread while the next shard may be fetched: the
            # fetch ahead leaves room for the largest
            self.budget -= max(self.gguf.shard_bytes.values(), default=0)
        self.gguf.source = SecondPassSource(
            self.listing, self.headers, self.opts.hub.token, self.disk.measure
        )
        self.scorer = _WithLlamaRows(self.scorer, self.gguf, self.out, self.recipe)

    def transfer(self, head: str | None) -> None:
        if not self.opts.hub.dry_run:  # here, on the main thread: abandon() knows of it
            self.gguf.uploader().ensure_target()
        super().transfer(head)

    def _upload(self, name: str, output: Path, sha256: str | None) -> None:
        """On the upload thread: the output shard's splits first, then its own upload."""
        shards = self.plan.planned_weights.shards
        self.gguf.shard_written(next(s.source_name for s in shards if s.name == name), output)
        super()._upload(name, output, sha256)

    def publish(self, provenance: Provenance, report: ParityReport, outcome: RunOutcome) -> None:
        super().publish(provenance, report, outcome)
        self.gguf.publish(self.recipe, report, provenance, outcome)


class _WithLlamaRows:
    """The run's scorer, whose report gains the llama.cpp rows before the run judges it."""

    def __init__(
        self, inner: StreamScorer, gguf: GgufStream, converted: Path, recipe: Recipe
    ) -> None:
        self.inner, self.gguf, self.converted, self.recipe = inner, gguf, converted, recipe
        self.keeps_outputs = inner.keeps_outputs
        self.twin_disk = inner.twin_disk

    def schedule(self, shards: Sequence[Sequence[str]]) -> list[FeedStep]:
        steps: list[FeedStep] = self.inner.schedule(shards)
        return steps

    def feed_source(self, shard: Path, linked_sha256: str | None = None) -> list[Path]:
        done: list[Path] = self.inner.feed_source(shard, linked_sha256)
        return done

    def feed_converted(self, shard: Path) -> None:
        self.inner.feed_converted(shard)

    def finish(self, work: Path) -> ParityReport:
        report: ParityReport = self.inner.finish(work)
        if self.gguf.two_pass:  # the twin's files go before the second pass fills the disk
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
        self.gguf.check(self.converted, self.recipe, report)
        return report


# The streamed run's disk goal: two of the largest shards and this much (stream/overlap.py).
GOAL_SLACK = 500_000_000


def choose_pass(one: int, two: int, *, goal: int, max_disk: int | None, log: Log) -> bool:
    """Whether the GGUF splits are written by a second pass: only when one pass (``one``
    bytes of disk at most) misses the goal or ``--max-disk`` and the second pass (``two``)
    meets both; when neither does, the smaller (``--max-disk`` refuses it next). One line
    says which and why."""
    limit = goal if max_disk is None else min(goal, max_disk)
    what = "the goal" if max_disk is None or goal <= max_disk else "--max-disk"
    if one <= limit:
        chosen, why = False, f"one pass fits {what} {human_size(limit)}"
    elif two <= limit:
        chosen, why = True, f"one pass misses {what} {human_size(limit)}, the second fits"
    else:
        chosen = two < one
        why = f"neither fits {what} {human_size(limit)}: the smaller"
    log(
        f"gguf: one pass needs {human_size(one)} of disk, a second pass {human_size(two)}: "
        f"{'second pass' if chosen else 'one pass'} ({why})"
    )
    return chosen


def _replay(
    steps: Sequence[FeedStep], sizes: Sequence[int], rewritten: Sequence[int], splits: list[int]
) -> int:
    """:func:`stream.disk.forecast`'s peak for a scorer that lets its outputs go, with
    ``splits[k]`` added from the moment shard ``k``'s output is written."""
    peak = 0
    for step in steps:
        k = step.position
        during_feed = sum(sizes[i] for i in step.on_disk) + sum(splits[:k])
        after = sum(sizes[i] for i in {*step.held_after, k}) + rewritten[k] + sum(splits[: k + 1])
        peak = max(peak, during_feed, after)
    return peak
