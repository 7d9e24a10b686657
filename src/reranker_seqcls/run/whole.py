"""The whole-snapshot transport of the run's skeleton (:mod:`.transport`): the source on disk
whole (a local source, a pickle-only Hub source, ``--output-dir``, or a seq-cls target already
current whose GGUF target is not).

1. ``prepare``: the source located (a Hub source downloaded at the resolved commit,
   :func:`steps.locate_source`); with ``--gguf``, a family llama.cpp gives no head is refused.
2. ``transfer``: ``convert`` into the output directory (``--output-dir``, kept, or a temporary
   one).
3. ``finish``: the check (:func:`check.streamed.streamed_check`), the GGUFs written and their
   llama.cpp rows added, the report judged by the skeleton's tail (:func:`.transport.conclude`).
4. ``publish``: the card and one commit of the output directory on the target's head
   (:func:`publish.push.publish_checkpoint`), unless the seq-cls target is current; then the
   GGUFs to their own target.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from reranker_seqcls.log import Log

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.convert.converter import ConversionResult
    from reranker_seqcls.gguf.run import GgufRun
    from reranker_seqcls.provenance import Provenance
    from reranker_seqcls.recipes.recipe import Recipe
    from reranker_seqcls.run.outcome import RunOptions, RunOutcome
    from reranker_seqcls.steps import SourceSpec


class WholeSnapshot:
    """One whole-snapshot run (see the module docstring). ``seqcls_current``: the seq-cls
    target holds this conversion already; only the GGUFs are pushed."""

    def __init__(
        self,
        opts: RunOptions,
        recipe: Recipe,
        spec: SourceSpec,
        log: Log,
        *,
        gguf: GgufRun | None,
        seqcls_current: bool,
    ) -> None:
        self.opts, self.recipe, self.spec, self.log = opts, recipe, spec, log
        self.gguf, self.seqcls_current = gguf, seqcls_current
        self._output = ExitStack()  # the output directory, once transfer entered it
        self.head: str | None = None

    def __enter__(self) -> WholeSnapshot:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._output.__exit__(kind, error, traceback)

    # ------------------------------------------------------------------ 1. locate

    def prepare(self, *, check_memory: int, max_disk: int | None) -> None:
        from reranker_seqcls.steps import locate_source

        self.check_memory = check_memory
        self.source_dir, self.ref = locate_source(self.spec, self.opts.hub.token, self.log)
        if self.gguf is not None:
            self.gguf.refuse_source(self.source_dir, self.opts.model)

    # ------------------------------------------------------------------ 2. convert

    def transfer(self, head: str | None) -> None:
        from reranker_seqcls.convert.converter import convert
        from reranker_seqcls.steps import output_dir

        self.head = head
        self.out: Path = self._output.enter_context(output_dir(self.opts.output_dir))
        self.result: ConversionResult = convert(
            self.source_dir,
            self.out,
            self.recipe,
            source_ref=self.ref,
            force=True,
            allow_pickle=self.opts.allow_pickle,
            allow_softcapping=self.opts.check.allow_softcapping,
            log=self.log,
        )

    # ------------------------------------------------------------------ 3. check

    def finish(self, outcome: RunOutcome) -> tuple[Provenance, ParityReport]:
        from reranker_seqcls.check.streamed import streamed_check
        from reranker_seqcls.gguf.run import gguf_stem
        from reranker_seqcls.run.transport import conclude
        from reranker_seqcls.steps import load_check_pairs

        opts, recipe = self.opts, self.recipe
        outcome.output_dir = self.out
        pairs = load_check_pairs(recipe, opts.check.pairs_file)
        report = streamed_check(
            self.source_dir,
            self.out,
            recipe,
            pairs,
            token_ids=[t.id for t in self.result.plan.tokens],
            dtype=opts.check.dtype,
            allow_softcapping=opts.check.allow_softcapping,
            vllm_python=opts.check.vllm_python,
            check_memory=self.check_memory,
            full=opts.check.full_check,
            log=self.log,
        )
        if self.gguf is not None:  # a failed llama.cpp row fails the run: nothing is pushed
            self.gguf.write_and_check(self.out, recipe, report, pairs, gguf_stem(self.ref),
                                      self.log)  # fmt: skip
        conclude(report, self.out, outcome, self.log)
        return self.result.provenance, report

    # ------------------------------------------------------------------ 4. publish

    def publish(self, provenance: Provenance, report: ParityReport, outcome: RunOutcome) -> None:
        from reranker_seqcls.publish.card import commit_message
        from reranker_seqcls.publish.push import folder_commit, publish_checkpoint
        from reranker_seqcls.run.outcome import source_label

        hub = self.opts.hub
        if not self.seqcls_current:
            publish_checkpoint(
                self.out, hub.target, provenance, report, outcome,
                label=source_label(self.opts.model, self.ref), dry_run=hub.dry_run,
                commit=folder_commit(self.out, hub, self.head, self.log),
            )  # fmt: skip
        # the output directory is done with (a temporary one removed) before the GGUF commit
        self._output.close()
        if self.seqcls_current:
            outcome.status = "dry_run" if hub.dry_run else "pushed"
            outcome.commit_sha = self.head
            outcome.message = f"{hub.target} is current: not pushed again"
        if self.gguf is not None:  # after the seq-cls checkpoint, to its own target
            pushed = self.gguf.push(
                hub, source=self.opts.model, recipe=self.recipe, report=report,
                commit_message=commit_message(provenance), log=self.log,
            )  # fmt: skip
            outcome.record_gguf_push(pushed, self.gguf.target, dry_run=hub.dry_run)
