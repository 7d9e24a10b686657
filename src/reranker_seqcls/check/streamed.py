"""The parity check without holding the model: one layerwise pass and a structural twin.

The full check (:func:`parity.check_parity`) loads the source and the converted model in turn:
memory about the model's size. The converted backbone is byte-identical to the source's (only
``lm_head`` becomes ``score``), so reference and converted scores can come from the same hidden
states. :class:`StreamedCheck` therefore

1. hashes every backbone tensor of the source shards and of the converted shards as they pass
   (sha256 of dtype, shape and bytes, per tensor): equal hashes are what makes one pass valid for
   both models;
2. computes the final hidden states of the family's prompts layer by layer
   (:class:`layerwise.LayerwiseScorer`), releasing each shard once used;
3. keeps the head rows :func:`parity.head_check` needs (the recipe's tokens and their case and
   space variants, from ``lm_head`` or the tied embedding) and the converted ``score.weight``;
4. scores both heads on the same hidden states: the reference with the family's math
   (:func:`parity.recipe_scores`, the source's logit scaling and final-logit softcapping), the
   converted with ``score.weight``, and judges them with the full check's own verdict code.

What the full check proves about consumers (prompt ids, pooling position, activation, loading
with no missing keys; transformers, sentence-transformers and vLLM) is proven by running the
unchanged :func:`parity.check_parity` on the real pair when it fits the memory budget, otherwise
on a structural twin (:mod:`.twin`). :func:`.consumers.combine` merges the two halves into
one :class:`parity.ParityReport`; :func:`streamed_check` does all of it for local directories.

Over 300 lines: :class:`StreamedCheck` (hashing, feeding, both heads, the verdict) and its entry
point share their state; the consumer half already lives in :mod:`.consumers`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from reranker_seqcls.check.consumers import combine, consumer_check
from reranker_seqcls.check.file_digests import FileDigests
from reranker_seqcls.check.head import HeadCheck, head_check, head_rows_needed
from reranker_seqcls.check.judged import judged_report
from reranker_seqcls.check.kept_rows import RowStore
from reranker_seqcls.check.long_pairs import fitting_pairs, require_fitting
from reranker_seqcls.check.metrics import CONVERTED_PATHS, ScoringPath, path_metrics
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.check.parity import check_parity
from reranker_seqcls.check.report import PairScores, ParityReport
from reranker_seqcls.check.scope import RealPass, real_pairs, whole_on_real
from reranker_seqcls.check.scoring import recipe_scores
from reranker_seqcls.check.source_proof import prove_source as prove_source
from reranker_seqcls.check.source_proof import source_shards as source_shards
from reranker_seqcls.check.twin import DEFAULT_CHECK_MEMORY
from reranker_seqcls.check.verdict import TOLERANCES, Evidence, checkpoint_dtype
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.safetensors_io.header import SafetensorsFile

if TYPE_CHECKING:
    from reranker_seqcls.check.layerwise import LayerwiseScorer

_HEAD = "lm_head.weight"
_SCORE = "score.weight"
_EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


class StreamedCheck:
    """The real-weights half of a streamed check, driven shard by shard.

    ``source`` and ``converted`` are directories that hold at least the small files (config,
    tokenizer, the converted directory's template and sentence-transformers files); their shards
    come through :meth:`feed_source` and :meth:`feed_converted`, in any order. ``feed_source``
    returns the source shard files no longer needed (delete them if you like); converted shards
    are only read while fed.
    """

    def __init__(
        self,
        source: Path,
        converted: Path,
        recipe: Recipe,
        pairs: list[Pair],
        *,
        token_ids: list[int],
        dtype: str = "float32",
        allow_softcapping: bool = False,
        pack: bool = False,
        log: Log = lambda _m: None,
    ) -> None:
        from reranker_seqcls.check.layerwise import LayerwiseScorer
        from reranker_seqcls.convert.lengths import position_limit
        from reranker_seqcls.recipes.prompts import official_prompt
        from reranker_seqcls.tokenizer_loads import auto_tokenizer

        if dtype not in TOLERANCES:
            raise BadInput(f"--dtype {dtype} is not supported: use one of {', '.join(TOLERANCES)}")
        self.source, self.converted = Path(source), Path(converted)
        self.recipe, self.pairs, self.token_ids = recipe, pairs, token_ids
        self.dtype, self.allow_softcapping, self.log = dtype, allow_softcapping, log
        self.config = json.loads((self.source / CONFIG_FILE).read_text())
        tokenizer = auto_tokenizer(str(self.source))
        limit = position_limit(self.config)
        self.official = [
            official_prompt(
                tokenizer, recipe, p.query, p.document, p.instruction, position_limit=limit
            )
            for p in pairs
        ]
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        headers = prove_source(self.source, self.config)
        self.scorer: LayerwiseScorer = LayerwiseScorer(
            self.config, [o.ids for o in self.official], pad_id=pad_id, dtype=dtype, pack=pack,
            log=log,
        )  # fmt: skip
        self.scorer.prove_shapes(headers)
        self._head_rows = head_rows_needed(self.source, token_ids)
        self.source_rows, self.converted_rows = RowStore(), RowStore()
        self.source_digests: dict[str, str] = {}
        self.converted_digests: dict[str, str] = {}
        self.digests = FileDigests()  # per tensor, once per file

    def feed_source(self, shard: Path, linked_sha256: str | None = None) -> list[Path]:
        """Take a source shard; ``linked_sha256`` is its verified sha256 when its output is
        already a hard link of it (:mod:`.file_digests`: then it is not hashed again)."""
        header = SafetensorsFile(Path(shard))
        for name in header.tensors:
            self.source_rows.location[name] = header.path.name
            if name == _HEAD or name.endswith(_EMBEDDINGS):
                self.source_rows.keep(header, name, self._head_rows)
        self.source_digests |= self.digests.of(header, {_HEAD}, linked_sha256)
        return self.scorer.feed(header.path)

    def feed_converted(self, shard: Path) -> None:
        header = SafetensorsFile(Path(shard))
        for name, info in header.tensors.items():
            self.converted_rows.location[name] = header.path.name
            if name == _SCORE:
                self.converted_rows.keep(header, name, list(range(info.shape[0])))
        self.converted_digests |= self.digests.of(header, {_SCORE})

    def backbone_problem(self) -> str | None:
        src, dst = self.source_digests, self.converted_digests
        if src.keys() != dst.keys():
            name = sorted(src.keys() ^ dst.keys())[0]
            side = "source" if name in src else "converted checkpoint"
            return (
                f"the converted backbone does not have the source's tensors ({name!r} is only in "
                f"the {side}): convert again"
            )
        differ = sorted(n for n in src if src[n] != dst[n])
        if differ:
            return (
                f"the converted backbone differs from the source's in {len(differ)} tensor(s), "
                f"e.g. {differ[0]!r}: the layerwise scores would not hold for it; convert again"
            )
        return None

    def _head_scores(self, hidden: Any) -> tuple[list[list[float]], list[list[float]]]:
        """Reference and converted score logits on the same final hidden states: the source
        head's rows (its logit scaling and final-logit softcapping included) and score.weight."""
        import torch

        from reranker_seqcls.convert.head import head_tensor
        from reranker_seqcls.convert.rules import logit_factor

        rows_as_checkpoint = cast(Any, self.source_rows)  # reads like a Checkpoint
        head, _ = head_tensor(rows_as_checkpoint, self.config, set(self.source_rows.location))
        rows = torch.tensor(self.source_rows.read_rows(head, self.token_ids), dtype=hidden.dtype)
        logits = (hidden @ rows.T) * logit_factor(self.config)
        softcap = self.config.get("final_logit_softcapping")
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        reference = recipe_scores(logits.float(), self.recipe).tolist()
        if _SCORE not in self.converted_rows:
            return reference, [[0.0] * len(reference[0]) for _ in reference]
        score_rows = self.converted_rows.read_rows(
            _SCORE, range(self.converted_rows.tensor(_SCORE).shape[0])
        )
        score = torch.tensor(score_rows, dtype=hidden.dtype)
        return reference, (hidden @ score.T).float().tolist()

    def report(self) -> ParityReport:
        """The verdict on the real weights: reference and converted heads on the same hidden
        states, the structural head check, the backbone hashes; built by
        :func:`.judged.judged_report`, as the full check's report is."""
        hidden = self.scorer.final_hidden()
        groups = [p.group or p.query for p in self.pairs]
        reference, converted = self._head_scores(hidden)
        converted_config = json.loads((self.converted / CONFIG_FILE).read_text())
        check = head_check(
            self.source, self.converted, self.token_ids, self.recipe.method, self.config,
            self.recipe, checkpoints=(self.source_rows, self.converted_rows),
        )  # fmt: skip

        def measure(report: ParityReport, head: HeadCheck) -> Evidence:
            metrics = path_metrics(groups, reference, converted, probs=False)
            report.metrics = {ScoringPath.LAYERWISE: metrics}
            backbone = self.backbone_problem()
            report.backbone_hash = "identical" if backbone is None else "differs"
            tokens = sum(len(o.ids) for o in self.official)
            report.real_pass = RealPass(len(self.pairs), len(set(groups)), tokens,
                                        len(self.pairs), full=True)  # fmt: skip
            report.scores = [
                PairScores(
                    group=groups[i], query=p.query[:80], document=p.document[:80],
                    instruction=p.instruction, reference=reference[i], converted_batched=None,
                    converted_single=None, sentence_transformers=None,
                    converted_layerwise=converted[i],
                )
                for i, p in enumerate(self.pairs)
            ]  # fmt: skip
            # The full check's verdict code, fed the one layerwise path as both converted paths
            # and as the consumer path (the consumers are judged on the twin).
            return Evidence(
                tolerance=report.tolerance, dtype=self.dtype,
                metrics=dict.fromkeys(CONVERTED_PATHS, metrics), consumer_exact=metrics,
                gap=None, structural=[r for r in (head.problem, backbone) if r is not None],
                loading_problems=[], pad_token_id=converted_config.get("pad_token_id"),
                prompts=[o.ids for o in self.official], reference=reference,
                batched=converted, single=converted,
                softcap=self.config.get("final_logit_softcapping"),
                allow_softcapping=self.allow_softcapping,
            )  # fmt: skip

        return judged_report(
            self.recipe, self.dtype, groups, reference=reference, converted=converted,
            head=lambda: check, hidden=hidden.float().tolist(), measure=measure,
            mismatch_reason=check.problem,
        )  # fmt: skip


def streamed_check(
    source: Path,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    *,
    token_ids: list[int],
    dtype: str | None = None,
    allow_softcapping: bool = False,
    vllm_python: str | Path | None = None,
    check_memory: int = DEFAULT_CHECK_MEMORY,
    full: bool = False,
    log: Log,
) -> ParityReport:
    """The check of two complete local directories within ``check_memory`` bytes: the whole
    check on the real model when :func:`.scope.whole_on_real` says so, else the layerwise pass
    over their shards (a few short pairs, every pair when ``full``) plus the consumer check of
    every pair on a twin."""
    from reranker_seqcls.check.meta_model import LayerwiseUnsupported, prove_buffers
    from reranker_seqcls.check.twin import check_tokenizer_memory
    from reranker_seqcls.names import TOKENIZER_FILE

    source, converted = Path(source), Path(converted)
    config = json.loads((source / CONFIG_FILE).read_text())
    if (source / TOKENIZER_FILE).is_file():
        check_tokenizer_memory((source / TOKENIZER_FILE).stat().st_size, check_memory)
    prove_source(source, config)

    def whole() -> ParityReport:
        prove_buffers(config)  # from_pretrained builds them real
        # No log line of its own: the full check logs as it always did (and validates its
        # options, e.g. --vllm-python, before printing anything); the report says "real".
        report = check_parity(
            source, converted, recipe, pairs, token_ids=token_ids, dtype=dtype,
            allow_softcapping=allow_softcapping, vllm_python=vllm_python, log=log,
        )  # fmt: skip
        report.consumers_proven_on = "real"
        return report

    if whole_on_real(config, check_memory, full=full):
        return whole()
    compute = dtype or "float32"
    if compute not in TOLERANCES:
        raise BadInput(f"--dtype {compute} is not supported: use one of {', '.join(TOLERANCES)}")
    # the pairs the family's code would cut are left out of both halves, as the full check does
    # (its over-length pairs run in the twin's check), so their rows stay aligned
    pairs, cut = fitting_pairs(source, recipe, pairs)
    require_fitting(pairs, cut)  # before the pass over the shards, not after it
    chosen = real_pairs(pairs, full=full)
    log(
        f"parity: layerwise pass over {source.name} in {compute} "
        f"(source dtype {checkpoint_dtype(config)}), {len(chosen.indices)} of {len(pairs)} pairs"
    )
    try:
        check = StreamedCheck(
            source, converted, recipe, chosen.of(pairs), token_ids=token_ids, dtype=compute,
            allow_softcapping=allow_softcapping, pack=not chosen.full, log=log,
        )  # fmt: skip
    except LayerwiseUnsupported:
        if not whole_on_real(config, check_memory, full=True):
            raise  # it names the architecture and what to do
        return whole()  # any architecture transformers loads, when the model fits
    for shard in source_shards(source):
        check.feed_source(shard)
    for shard in source_shards(converted):
        check.feed_converted(shard)
    real = check.report()
    if not real.passed and not real.scores:
        # Stopped before scoring (a head of another shape than the recipe's): the twin, built
        # from the same files, would refuse that head in its own words (exit 2); the real half's
        # reason is the verdict.
        return real
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-twin-") as work:
        consumers, described = consumer_check(
            source, converted, recipe, pairs, Path(work), token_ids=token_ids,
            check_memory=check_memory, allow_softcapping=allow_softcapping,
            vllm_python=vllm_python, long_pairs=full, log=log,
        )  # fmt: skip
    return combine(real, consumers, described, chosen, cut)
