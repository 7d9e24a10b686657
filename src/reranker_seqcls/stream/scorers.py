"""The parity check of a streamed run, fed the shards as they arrive.

Two scorers, chosen by :func:`make_scorer`:

- :class:`LayerwiseScorer`: the streamed check (:class:`check.streamed.StreamedCheck`): both
  heads scored on one layer-by-layer pass, the backbone verified identical by hash, each source
  shard released once its layers ran; the consumers (transformers, sentence-transformers, vLLM)
  proven on a structural twin built from the small files. Disk about two shards, memory about
  one decoder layer in float32.
- :class:`KeepAllScorer`: for a model whose float32 load fits ``--check-memory`` and whose
  shards fit ``--max-disk``: every shard stays until the end, then the full check runs on the
  real pair (consumers proven on the real checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reranker_seqcls.check.release_schedule import FeedStep, Stages, release_schedule
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log

if TYPE_CHECKING:
    from reranker_seqcls.check.pairs import Pair
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.check.scope import RealPairs
    from reranker_seqcls.check.streamed import StreamedCheck
    from reranker_seqcls.recipes.recipe import Recipe


class StreamScorer(Protocol):
    """What the streamed run feeds: each source shard once fetched, each converted shard
    before its upload, then ``finish`` once the converted small files are written."""

    keeps_outputs: bool  # whether output shards must stay on disk until finish
    twin_disk: int  # the most the consumer check adds on disk at the end

    def schedule(self, shards: Sequence[Sequence[str]]) -> list[FeedStep]:
        """The shards on disk at each step (the disk forecast) and the layers run."""
        ...

    def feed_source(self, shard: Path, linked_sha256: str | None = None) -> list[Path]:
        """Take a source shard; the source shard files no longer needed (they may go).
        ``linked_sha256``: the shard's verified sha256, given when its output shard is already
        a hard link of it (the backbone check need not read it again)."""
        ...

    def feed_converted(self, shard: Path) -> None:
        """Read a converted shard (it may go once this returns, unless ``keeps_outputs``)."""
        ...

    def finish(self, work: Path) -> ParityReport:
        """The report; ``work`` is an empty directory for the consumer check's files."""
        ...


class LayerwiseScorer:
    def __init__(
        self,
        check: StreamedCheck,
        pairs: list[Pair],
        chosen: RealPairs,
        *,
        cut: list[Pair],
        full: bool,
        check_memory: int,
        vllm_python: str | Path | None,
        log: Log,
    ) -> None:
        from reranker_seqcls.check.twin import float32_load_bytes, twin_overrides

        self.check, self.check_memory = check, check_memory
        self.pairs, self.chosen = pairs, chosen  # every pair (the twin's), the real model's
        self.cut = cut  # the pairs the family's code would cut: a note in the report
        self.full = full
        self.vllm_python, self.log = vllm_python, log
        self.keeps_outputs = False
        # The twin is saved in float32 twice (its source and its conversion).
        twin = {**check.config, **twin_overrides(check.config, check_memory)}
        self.twin_disk = 2 * float32_load_bytes(twin)

    @property
    def stages(self) -> Stages:
        return self.check.scorer.stages

    def schedule(self, shards: Sequence[Sequence[str]]) -> list[FeedStep]:
        return release_schedule(self.stages, shards)

    def feed_source(self, shard: Path, linked_sha256: str | None = None) -> list[Path]:
        return self.check.feed_source(shard, linked_sha256)

    def feed_converted(self, shard: Path) -> None:
        self.check.feed_converted(shard)

    def finish(self, work: Path) -> ParityReport:
        from reranker_seqcls.check.consumers import combine, consumer_check

        real = self.check.report()
        consumers, described = consumer_check(
            self.check.source, self.check.converted, self.check.recipe, self.pairs, work,
            token_ids=self.check.token_ids, check_memory=self.check_memory,
            allow_softcapping=self.check.allow_softcapping, vllm_python=self.vllm_python,
            long_pairs=self.full, log=self.log,
        )  # fmt: skip
        return combine(real, consumers, described, self.chosen, self.cut)


class KeepAllScorer:
    def __init__(
        self,
        source: Path,
        converted: Path,
        recipe: Recipe,
        pairs: list[Pair],
        stages: Stages,
        *,
        token_ids: list[int],
        dtype: str | None,
        allow_softcapping: bool,
        vllm_python: str | Path | None,
        check_memory: int,
        full: bool,
        log: Log,
    ) -> None:
        self.source, self.converted, self.recipe, self.pairs = source, converted, recipe, pairs
        self.full = full
        self.stages, self.token_ids, self.dtype = stages, token_ids, dtype
        self.allow_softcapping, self.vllm_python = allow_softcapping, vllm_python
        self.check_memory, self.log = check_memory, log
        self.keeps_outputs = True
        self.twin_disk = 0

    def schedule(self, shards: Sequence[Sequence[str]]) -> list[FeedStep]:
        """Every shard stays; the layers counted are those whose tensors have all arrived."""
        return [
            FeedStep(s.position, tuple(range(s.position + 1)), tuple(range(s.position + 1)),
                     s.layers_done)
            for s in release_schedule(self.stages, shards)
        ]  # fmt: skip

    def feed_source(self, shard: Path, linked_sha256: str | None = None) -> list[Path]:
        return []

    def feed_converted(self, shard: Path) -> None:
        """Nothing: the full check reads the converted checkpoint at the end."""

    def finish(self, work: Path) -> ParityReport:
        from reranker_seqcls.check.streamed import streamed_check

        return streamed_check(
            self.source, self.converted, self.recipe, self.pairs, token_ids=self.token_ids,
            dtype=self.dtype, allow_softcapping=self.allow_softcapping,
            vllm_python=self.vllm_python, check_memory=self.check_memory, full=self.full,
            log=self.log,
        )  # fmt: skip


def make_scorer(
    *,
    source: Path,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    config: dict[str, object],
    token_ids: list[int],
    dtype: str | None,
    allow_softcapping: bool,
    vllm_python: str | Path | None,
    check_memory: int,
    full: bool,
    whole_model_disk: int,
    max_disk: int | None,
    log: Log,
) -> StreamScorer:
    """The keep-all scorer when the whole check runs on the real model
    (:func:`check.scope.whole_on_real`) and its ``whole_model_disk`` fits ``max_disk``; else
    the layerwise one (a few short pairs on the real weights, every pair when ``full``; every
    pair on the twin). ``source`` and ``converted`` hold the small files (the converted ones
    by ``finish``)."""
    from reranker_seqcls.check.long_pairs import fitting_pairs, require_fitting
    from reranker_seqcls.check.meta_model import LayerwiseUnsupported
    from reranker_seqcls.check.scope import real_pairs, whole_on_real
    from reranker_seqcls.check.source_proof import header_stages
    from reranker_seqcls.check.streamed import StreamedCheck

    keep_all = whole_on_real(dict(config), check_memory, full=full)
    fits_disk = max_disk is None or whole_model_disk <= max_disk
    fitting, cut = fitting_pairs(source, recipe, pairs)  # the cut ones: the long-input rows
    require_fitting(fitting, cut)  # before any shard moves
    chosen = real_pairs(fitting, full=full)
    try:
        check = StreamedCheck(
            source, converted, recipe, chosen.of(fitting), token_ids=token_ids,
            dtype=dtype or "float32", allow_softcapping=allow_softcapping,
            pack=not chosen.full, log=log,
        )  # fmt: skip
        stages = check.scorer.stages
    except LayerwiseUnsupported as exc:
        # The whole-model check proves any architecture transformers loads (at any cost when
        # the model fits); else refuse now, before any shard is fetched or a target created.
        if not keep_all and not whole_on_real(dict(config), check_memory, full=True):
            raise
        keep_all = full = True
        if not fits_disk:
            raise BadInput(f"{exc}, and give --max-disk room for the whole model") from exc
        stages = header_stages(source, dict(config))
    if keep_all:
        if fits_disk:
            return KeepAllScorer(
                source, converted, recipe, pairs, stages, token_ids=token_ids,
                dtype=dtype, allow_softcapping=allow_softcapping, vllm_python=vllm_python,
                check_memory=check_memory, full=full, log=log,
            )  # fmt: skip
        log("parity: the whole model would not fit --max-disk: it is checked layer by layer")
    log(f"parity: the real model scores {len(chosen.indices)} of {len(fitting)} pairs, layerwise")
    return LayerwiseScorer(
        check, fitting, chosen, cut=cut, full=full, check_memory=check_memory,
        vllm_python=vllm_python, log=log,
    )  # fmt: skip
