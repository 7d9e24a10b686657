"""``run --gguf`` on the streamed road (:mod:`reranker_seqcls.run.streamed`): split GGUFs
written from each converted shard while it is on disk (one pass), or from the source shards
streamed again after the check (a second pass, where one pass misses the disk goal); the model
is never on disk whole.

For each type the GGUF is split as llama.cpp's ``gguf-split --no-tensor-first-split`` writes
one: split 1 holds every key (hyperparameters, vocabulary, ``rerank`` template, split keys) and
the two-row ``cls_out`` head, written at the end from the converted checkpoint's small files and
``score.safetensors``; splits 2..N hold the backbone tensors of one converted shard each, in
shard order, written right after that shard's output and pre-uploaded to the GGUF target at
once (:class:`hub.preupload.Preuploader`, as the seq-cls shards are). The tensor table of every
split is known before any bulk byte moves: it is planned from the shard headers (the sparse
placeholders), so the split count and the tensor count are written into the first files.

The llama.cpp rows need every split on disk (llama-server loads the first and finds the others
by name), so the splits stay until the rows are measured. Two shapes, chosen once at prepare time
from the headers (:func:`.streamed_run.choose_pass`, one logged line with both forecasts):

* **one pass** (this module's :meth:`GgufStream.shard_written`): each shard's splits are written
  while its converted output is on disk; the forecast adds them from then on, and all of them
  beside the twin at the end;
* **a second pass** (:meth:`GgufStream._second_pass`, :mod:`.second_pass`), only where one pass
  misses the streamed run's goal (2 x the largest shard + 0.5 GB) or ``--max-disk`` and the
  second pass fits: pass 1 is the streamed seq-cls run without splits; after its check passed
  and the twin's files are gone, each source shard is streamed again from the Hub, never saved
  (:func:`hub.stream_read.stream_verified`: its sha256 and header proven as a fetch's), and
  written into its splits by the same writer, byte for byte the one pass's splits. Its disk is
  the splits, the keys splits and the small files. Where neither fits, the smaller is taken
  (``--max-disk`` refuses it before any shard moves).

The rows are measured after the seq-cls check, on the pairs its report scored on the real
model (every pair for a small model; the quick check's short pairs otherwise). Nothing is
committed to either target until the seq-cls check and every llama.cpp row passed; a failure
(a row, or second-pass bytes that are not the commit's: exit 3) removes a GGUF target the run
created, as it does the seq-cls one.

When the scorer keeps every output shard to the end (a small model checked whole on the real
weights), nothing is split: one file per type is written at the end from the converted
directory, as the whole-snapshot road writes it.

:mod:`.streamed_run` adds this to the streamed run's steps.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.gguf.produce import write_ggufs
from reranker_seqcls.gguf.writer import (
    Split,
    WrittenGguf,
    data_split_plans,
    split_file_name,
    write_data_split,
    write_gguf,
)
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE, PROVENANCE_FILE, TOKENIZER_FILE
from reranker_seqcls.sizes import human_size

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.gguf.run import GgufRun
    from reranker_seqcls.hub.preupload import Preuploader
    from reranker_seqcls.hub.stream_fetch import SourceListing
    from reranker_seqcls.provenance import Provenance
    from reranker_seqcls.recipes.recipe import Recipe
    from reranker_seqcls.run.outcome import RunOptions, RunOutcome


@dataclass(frozen=True)
class SecondPassSource:
    """What the second pass streams: the run's listing, planned headers and placeholders."""

    listing: SourceListing
    headers: dict[str, bytes]
    token: str | None
    measure: Callable[[], None]  # the run's disk measurement


# The first split's keys beyond the vocabulary (hyperparameters, template, labels): a bound.
_KEYS_BYTES = 1 << 20
# Per id of the model's vocabulary, beyond tokenizer.json: each token's string length (8 bytes)
# and type (4) in the GGUF, and the placeholder written for an id the tokenizer lacks (a padded
# vocabulary: 3.5 MB for 151,669 ids): a bound.
_PER_TOKEN_BYTES = 32


@dataclass
class GgufStream:
    """One streamed run's GGUFs: planned from the shard headers, a split per shard written and
    pre-uploaded as the shards pass, the first split and the llama.cpp rows at the end."""

    run: GgufRun
    opts: RunOptions
    work: Path  # inside the run directory: its disk measurement counts the splits
    log: Log
    stem: str
    blocks: int = 0
    shards: dict[str, int] = field(default_factory=dict)  # shard name -> split number (from 2)
    count: int = 0  # splits per type
    tensors: dict[str, int] = field(default_factory=dict)  # type -> tensors in all splits
    planned: int | None = None  # bytes of all splits
    shard_bytes: dict[str, int] = field(default_factory=dict)  # source shard -> its splits'
    whole: bool = False  # the scorer keeps every output shard: one file per type at the end
    two_pass: bool = False  # the data splits are written by the second pass, after the check
    source: SecondPassSource | None = None  # what the second pass reads (set by the run)
    _uploader: Preuploader | None = None

    @property
    def files(self) -> Path:
        return self.work / "files"

    def planned_bytes(self, source_dir: Path, order: list[str]) -> int:
        """The disk all splits take, to add to the run's forecast. The first call refuses an
        architecture llama.cpp gives no head and plans the splits from the shard headers
        (placeholders in ``source_dir``)."""
        if self.planned is None:
            self.planned = self._plan(source_dir, order)
        return self.planned

    def _plan(self, source_dir: Path, order: list[str]) -> int:
        from reranker_seqcls.gguf.metadata import _read_json

        self.run.refuse_source(source_dir, self.opts.model)
        config = _read_json(source_dir / CONFIG_FILE)
        self.blocks = int(config.get("num_hidden_layers") or 0)
        self.files.mkdir(parents=True)
        total = 0
        vocabulary = (source_dir / TOKENIZER_FILE).stat().st_size + _PER_TOKEN_BYTES * int(
            config.get("vocab_size") or 0
        )
        planned: dict[str, int] = {}
        for gguf_type in self.run.types:
            count = 1  # the head
            for name in order:
                plans = data_split_plans(source_dir / name, self.blocks, gguf_type)
                if plans:
                    planned.setdefault(name, len(planned) + 2)
                    count += len(plans)
                    size = sum(_nbytes(p.shape, p.ggml_type) for p in plans)
                    self.shard_bytes[name] = self.shard_bytes.get(name, 0) + size
                    total += size
            self.tensors[gguf_type.name] = count
            total += vocabulary + _KEYS_BYTES
        self.shards, self.count = planned, len(planned) + 1
        self.log(
            f"gguf: {', '.join(t.name for t in self.run.types)}: {human_size(total)} kept on "
            f"disk until llama-server scores them ({self.count} splits per type, one per shard "
            "and the keys, unless the shards stay for the check: then one file per type)"
        )
        return total

    def shard_written(self, name: str, output: Path) -> None:
        """The splits of one converted shard, from ``output`` while it is on disk; each is
        pre-uploaded to the GGUF target at once."""
        number = self.shards.get(name)
        if number is None or self.whole or self.two_pass:
            return  # no backbone tensor in this shard (only lm_head), or written later
        uploader = self.uploader()
        for gguf_type in self.run.types:
            path = self.files / split_file_name(self.stem, gguf_type, number, self.count)
            split = Split(number, self.count, self.tensors[gguf_type.name])
            size = write_data_split(output, path, gguf_type, blocks=self.blocks, split=split)
            uploader.upload(path.name, path)  # kept: llama-server needs every split
            self.log(f"gguf: {path.name} written ({human_size(size)}), pre-upload done")

    def check(self, converted: Path, recipe: Recipe, report: ParityReport) -> None:
        """Write each type's first split (keys and head) and add its llama.cpp row to
        ``report``: before the run's verdict is written and judged."""
        from reranker_seqcls.gguf.row import add_llama_rows
        from reranker_seqcls.steps import load_check_pairs

        pairs = load_check_pairs(recipe, self.opts.check.pairs_file)
        if self.two_pass:
            if not report.passed:
                return  # the seq-cls check failed: the run fails on it, no second pass
            self._second_pass()
        if self.whole:  # every output shard is on disk: the whole road's files
            self.run.written = write_ggufs(converted, self.files, self.run.types, recipe,
                                           stem=self.stem, log=self.log)  # fmt: skip
        else:
            self.run.written = self._first_splits(converted, recipe)
        shutil.copyfile(converted / PROVENANCE_FILE, self.files / PROVENANCE_FILE)
        self.run.rows = add_llama_rows(
            report, [w.path for w in self.run.written], converted, pairs,
            recipe.default_instruction, self.run.binary, self.log,
        )  # fmt: skip

    def _second_pass(self) -> None:
        """Every data split, from the source shards streamed again from the Hub (never
        saved), each pre-uploaded at once and kept for llama-server."""
        from reranker_seqcls.gguf.second_pass import write_streamed_splits
        from reranker_seqcls.hub.stream_read import stream_verified

        assert self.source is not None
        src = self.source
        uploader = self.uploader()
        self.log(f"gguf: second pass: {len(self.shards)} source shard(s) streamed again")
        for name, number in self.shards.items():
            outs = [
                (self.files / split_file_name(self.stem, t, number, self.count), t,
                 Split(number, self.count, self.tensors[t.name]))
                for t in self.run.types
            ]  # fmt: skip
            # pass 1's placeholder became the shard and went: the planned header again, sparse
            placeholder = self.work / name
            with placeholder.open("wb") as fh:
                fh.write(src.headers[name])
                fh.truncate(src.listing.files[name].size)
            stream = stream_verified(src.listing, name, src.token, src.headers[name])
            try:
                write_streamed_splits(stream, placeholder, self.blocks, outs)
            finally:
                placeholder.unlink()
            src.measure()
            for path, _, _ in outs:
                uploader.upload(path.name, path)  # kept: llama-server needs every split
                self.log(f"gguf: {path.name} written from the stream "
                         f"({human_size(path.stat().st_size)}), pre-upload done")  # fmt: skip

    def _first_splits(self, converted: Path, recipe: Recipe) -> list[WrittenGguf]:
        written = []
        for gguf_type in self.run.types:
            first = self.files / split_file_name(self.stem, gguf_type, 1, self.count)
            split = Split(1, self.count, self.tensors[gguf_type.name])
            w = write_gguf(converted, first, gguf_type, recipe, name=self.stem, split=split)
            total = sum(
                (self.files / split_file_name(self.stem, gguf_type, n, self.count)).stat().st_size
                for n in range(1, self.count + 1)
            )
            written.append(WrittenGguf(first, gguf_type.name, total, w.seconds, w.rerank_template))
        return written

    def publish(
        self,
        recipe: Recipe,
        report: ParityReport,
        provenance: Provenance,
        outcome: RunOutcome,
    ) -> None:
        """One commit to the GGUF target: the pre-uploaded splits, the first splits, the
        provenance record and the card (after the seq-cls commit, as the whole road does)."""
        from reranker_seqcls.gguf.card import gguf_card
        from reranker_seqcls.hub.preupload import commit_preuploaded
        from reranker_seqcls.names import README_FILE
        from reranker_seqcls.publish.card import commit_message

        hub = self.opts.hub
        card = gguf_card(
            gguf_repo=self.run.target, seqcls_repo=hub.target, source=self.opts.model,
            recipe=recipe, written=self.run.written, rows=self.run.rows, report=report,
        )  # fmt: skip
        (self.files / README_FILE).write_text(card, "utf-8")
        types = ", ".join(t.name for t in self.run.types)
        pushed = commit_preuploaded(
            self.files, self.uploader(),
            commit_message=f"{commit_message(provenance)} (GGUF: {types})",
            commit_description=report.markdown(), log=self.log,
        )  # fmt: skip
        outcome.record_gguf_push(pushed, self.run.target, dry_run=hub.dry_run)

    def abandon(self) -> None:
        """The run failed before its commits: remove a GGUF target this run created."""
        if self._uploader is not None:
            self._uploader.abandon()

    def uploader(self) -> Preuploader:
        """The GGUF target's pre-uploads (its head read at the first call)."""
        if self._uploader is None:
            from reranker_seqcls.hub.preupload import Preuploader
            from reranker_seqcls.hub.target import target_state

            hub = self.opts.hub
            head = target_state(self.run.target, hub.token).head
            self._uploader = Preuploader(
                self.run.target, token=hub.token, private=hub.private, create_pr=hub.create_pr,
                head=head, dry_run=hub.dry_run, log=self.log,
            )  # fmt: skip
        return self._uploader


def _nbytes(shape: tuple[int, ...], ggml_type: str) -> int:
    values = 1
    for n in shape:
        values *= n
    per_block = {"F32": (1, 4), "F16": (1, 2), "Q8_0": (32, 34)}[ggml_type]
    return values // per_block[0] * per_block[1]
