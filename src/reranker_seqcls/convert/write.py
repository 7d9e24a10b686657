"""Writing the weights of OUTPUT as a :class:`~.plan.Plan` decided, one output file at a time.

The caller drives the order (:func:`~.converter.convert` loops over the planned shards; a
streamed pipeline can write output shard k as soon as source shard k is present), so each
function takes the planned piece and the path of the source file it reads.
"""

from __future__ import annotations

from pathlib import Path

from reranker_seqcls.convert.head import SCORE_NAME, compute_score
from reranker_seqcls.convert.plan import OutputShard, Plan, ShardAction
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import INDEX_FILE, SCORE_SHARD_FILE
from reranker_seqcls.safetensors_io.checkpoint import HEAD_NAME
from reranker_seqcls.safetensors_io.floats import encode_floats
from reranker_seqcls.safetensors_io.header import SafetensorsFile
from reranker_seqcls.safetensors_io.place import Placement, place_file
from reranker_seqcls.safetensors_io.shards import (
    TensorBytes,
    write_index,
    write_shard,
    write_shard_without,
)


def write_output_shard(
    plan: Plan, shard: OutputShard, source_path: Path, out_dir: Path, *, copy: bool = False
) -> Placement:
    """Put one planned shard into ``out_dir``: placed as is, rewritten without lm_head.weight,
    or dropped. ``source_path`` is the source shard's file; one other than the planned file
    (a streamed download) must hold the header that was planned."""
    if shard.action is ShardAction.DROP_HEAD_ONLY:
        return Placement.DROPPED_HEAD_ONLY
    if shard.action is ShardAction.DROP_EMPTY:
        return Placement.DROPPED_EMPTY
    target = out_dir / shard.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if shard.action is ShardAction.REWRITE:
        header = plan.planned_weights.checkpoint.shards[shard.source_name]
        if header.path != source_path:
            header = _same_header(header, SafetensorsFile(source_path, label=shard.source_name))
        write_shard_without(header, target, {HEAD_NAME})
        return Placement.REWRITTEN
    return place_file(source_path, target, force_copy=copy)


def _same_header(planned: SafetensorsFile, found: SafetensorsFile) -> SafetensorsFile:
    if found.tensors != planned.tensors or found.metadata != planned.metadata:
        raise BadInput(
            f"{found.path.name} differs from the header the conversion was planned from: "
            "fetch the checkpoint again"
        )
    return found


def score_weight(plan: Plan, head_shard_path: Path | None = None) -> TensorBytes:
    """score.weight: the recipe's rows of the head, combined and scaled (the only tensor data
    the conversion decodes). Read from the planned head shard, or from ``head_shard_path``
    (a streamed download, which must hold the planned header) while that file is present."""
    weights = plan.planned_weights
    header = weights.checkpoint.shards[weights.head_shard]
    if head_shard_path is not None and head_shard_path != header.path:
        header = _same_header(header, SafetensorsFile(head_shard_path, label=weights.head_shard))
    rows, dtype = compute_score(
        header, weights.head_name, [t.id for t in plan.tokens], plan.recipe.method, plan.scale
    )
    return TensorBytes(SCORE_NAME, dtype, weights.score_shape, encode_floats(rows, dtype))


def write_score_shard(plan: Plan, out_dir: Path, score: TensorBytes | None = None) -> Placement:
    """``score.safetensors``, holding ``score`` (default: :func:`score_weight` of ``plan``)."""
    write_shard(out_dir / SCORE_SHARD_FILE, [score or score_weight(plan)])
    return Placement.WRITTEN


def write_output_index(plan: Plan, out_dir: Path) -> None:
    weights = plan.planned_weights
    write_index(out_dir / INDEX_FILE, weights.weight_map(), weights.total_size())


def stage_pickle_weights(plan: Plan, out_dir: Path, log: Log) -> tuple[Plan, Path]:
    """A pickle-only source's weights read (torch, ``weights_only=True``) into safetensors
    shards in ``out_dir/.staging``; returns the plan completed for them, and the staging
    directory (removed by the caller once the output shards are written)."""
    from reranker_seqcls.convert.plan import plan_staged_weights
    from reranker_seqcls.safetensors_io.checkpoint import Checkpoint
    from reranker_seqcls.safetensors_io.pickle_weights import stage_pickle_weights as stage

    staging = out_dir / ".staging"
    staging.mkdir()
    stage(list(plan.pickle_files), staging, log=log)
    return plan_staged_weights(plan, Checkpoint(staging)), staging
