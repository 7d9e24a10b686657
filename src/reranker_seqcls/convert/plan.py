"""What a conversion will do, decided from the source's config, tokenizer and shard headers
before the first byte of OUTPUT is written (no tensor data is read: see :mod:`.head` for the
rows that are, when writing).

The one exception is a pickle-only source: its tensor layout is known only once torch has read
it, so :func:`plan_conversion` plans everything else and :func:`plan_staged_weights` plans its
weights right after they are staged as safetensors, before any output shard is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from reranker_seqcls.convert.head import (
    SCORE_NAME,
    check_head_shape,
    check_pad_id,
    head_tensor,
)
from reranker_seqcls.convert.rules import (
    check_architecture,
    check_layer_count,
    check_vocab_size,
    logit_factor,
    read_config,
)
from reranker_seqcls.convert.tokens import (
    ResolvedToken,
    TokenizerFiles,
    resolve_pad_id,
    resolve_tokens,
)
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import (
    CONFIG_FILE,
    INDEX_FILE,
    LICENSE_PATTERNS,
    PICKLE_INDEX_FILE,
    PROVENANCE_FILE,
    SCORE_SHARD_FILE,
    SINGLE_WEIGHTS_FILE,
    SINGLE_WEIGHTS_RENAMED,
    TOKENIZER_PATTERNS,
)
from reranker_seqcls.recipes.methods import scoring_method
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.safetensors_io.checkpoint import HEAD_NAME, Checkpoint
from reranker_seqcls.safetensors_io.floats import ITEMSIZE
from reranker_seqcls.source import Source, read_json_object, unique_names


class ShardAction(Enum):
    """What becomes of one source shard in OUTPUT."""

    PLACE = "place"  # reflinked, hard-linked or copied as is
    REWRITE = "rewrite"  # copied without lm_head.weight
    DROP_HEAD_ONLY = "drop: held only lm_head"
    DROP_EMPTY = "drop: holds no tensors"


@dataclass(frozen=True)
class OutputShard:
    source_name: str  # the shard's name in the source checkpoint
    name: str  # its name in OUTPUT
    action: ShardAction
    kept: tuple[str, ...]  # the tensors it holds in OUTPUT
    kept_bytes: int


@dataclass(frozen=True)
class WeightsPlan:
    """The safetensors side: which tensor becomes the score, what each shard becomes."""

    checkpoint: Checkpoint
    head_name: str  # the tensor whose rows become score.weight
    untied_head: bool  # lm_head.weight exists and is dropped
    dtype: str  # the head's storage dtype, score.weight's too
    score_shape: tuple[int, int]
    shards: tuple[OutputShard, ...]

    @property
    def head_shard(self) -> str:
        """The source shard holding the rows score.weight is read from."""
        return self.checkpoint.location[self.head_name]

    @property
    def score_bytes(self) -> int:
        return self.score_shape[0] * self.score_shape[1] * ITEMSIZE[self.dtype]

    def weight_map(self) -> dict[str, str]:
        """The output index: tensor name → output shard name."""
        mapping = {name: shard.name for shard in self.shards for name in shard.kept}
        mapping[SCORE_NAME] = SCORE_SHARD_FILE
        return mapping

    def total_size(self) -> int:
        return sum(shard.kept_bytes for shard in self.shards) + self.score_bytes


@dataclass(frozen=True)
class Plan:
    """Everything a conversion will do, decided and validated before anything is written."""

    source: Path
    files: Source  # the trusted view of ``source``
    recipe: Recipe
    config: dict[str, Any]  # the source's config.json
    architecture: str
    tokens: tuple[ResolvedToken, ...]
    pad_token_id: int
    verbatim: tuple[str, ...]  # tokenizer and license files to copy
    logit_factor: float  # the source config's logit_scale / 1/logits_scaling
    # score.weight = rows x scale: the recipe's scale times the source's own logit scaling.
    scale: float
    pickle_files: tuple[Path, ...]  # non-empty: weights to stage as safetensors first
    weights: WeightsPlan | None  # None only while pickle weights wait to be staged

    @property
    def planned_weights(self) -> WeightsPlan:
        if self.weights is None:
            raise RuntimeError("the pickle weights are not staged yet: plan_staged_weights first")
        return self.weights

    @property
    def head_name(self) -> str:
        return self.planned_weights.head_name


def plan_conversion(
    source: Path, recipe: Recipe, *, allow_pickle: bool = False, allow_softcapping: bool = False
) -> Plan:
    """Validate ``source`` for ``recipe`` and decide every step (reads no tensor data)."""
    files = Source(source)
    config = read_config(files)
    architecture = check_architecture(config, allow_softcapping=allow_softcapping)
    tokenizer = TokenizerFiles(files)
    tokens = tuple(resolve_tokens(tokenizer, recipe.classifier))
    pad_token_id = resolve_pad_id(tokenizer)
    check_vocab_size(config, tokens, pad_token_id)
    factor = logit_factor(config)
    checkpoint: Checkpoint | None = None
    pickle_files: tuple[Path, ...] = ()
    if files.has(INDEX_FILE) or files.listing(["*.safetensors"]):
        checkpoint = Checkpoint(files)
        _check_output_names(checkpoint)
    else:
        pickle_files = tuple(_pickle_files(files))
        if not pickle_files:
            raise BadInput(f"no weights in {source}: expected *.safetensors files")
        if not allow_pickle:
            raise BadInput(
                f"{source} has only pickle weights ({pickle_files[0].name}), which can run "
                "code when loaded: pass --allow-pickle to load them with torch weights_only=True"
            )
    if (checkpoint is not None and SCORE_NAME in checkpoint) or os.path.lexists(
        source / SCORE_SHARD_FILE
    ):
        raise BadInput(f"the source already has {SCORE_SHARD_FILE}: convert the original causal LM")
    plan = Plan(
        source=source,
        files=files,
        recipe=recipe,
        config=config,
        architecture=architecture,
        tokens=tokens,
        pad_token_id=pad_token_id,
        verbatim=tuple(files.listing((*TOKENIZER_PATTERNS, *LICENSE_PATTERNS))),
        logit_factor=factor,
        scale=recipe.scale * factor,
        pickle_files=pickle_files,
        weights=None,
    )
    return plan if checkpoint is None else plan_staged_weights(plan, checkpoint)


def plan_staged_weights(plan: Plan, checkpoint: Checkpoint) -> Plan:
    """``plan`` with the weights of ``checkpoint`` planned: the head located and checked
    against the token ids, and what each shard becomes."""
    check_layer_count(plan.config, checkpoint.location)
    head_name, untied = head_tensor(checkpoint, plan.config, set(checkpoint.location))
    check_head_shape(checkpoint, head_name, plan.tokens)
    check_pad_id(checkpoint, head_name, plan.pad_token_id)
    head = checkpoint.tensor(head_name)
    labels = scoring_method(plan.recipe.method).num_labels(len(plan.tokens))
    head_shard = checkpoint.location[HEAD_NAME] if untied else None
    shards = tuple(_plan_shard(checkpoint, name, head_shard) for name in checkpoint.shards)
    weights = WeightsPlan(
        checkpoint=checkpoint,
        head_name=head_name,
        untied_head=untied,
        dtype=head.dtype,
        score_shape=(labels, head.shape[1]),
        shards=shards,
    )
    return replace(plan, weights=weights)


def _plan_shard(checkpoint: Checkpoint, source_name: str, head_shard: str | None) -> OutputShard:
    tensors = checkpoint.shards[source_name].tensors
    name = output_shard_name(source_name)
    if source_name == head_shard:
        by_offset = sorted(tensors.values(), key=lambda t: t.start)
        kept = tuple(t.name for t in by_offset if t.name != HEAD_NAME)
        action = ShardAction.REWRITE if kept else ShardAction.DROP_HEAD_ONLY
    elif not tensors:  # a valid but empty shard: the index could not name it
        kept, action = (), ShardAction.DROP_EMPTY
    else:
        kept, action = tuple(tensors), ShardAction.PLACE
    return OutputShard(source_name, name, action, kept, sum(tensors[n].nbytes for n in kept))


def output_shard_name(source_name: str) -> str:
    return SINGLE_WEIGHTS_RENAMED if source_name == SINGLE_WEIGHTS_FILE else source_name


def _check_output_names(ckpt: Checkpoint) -> None:
    """The names the shards get in OUTPUT are distinct and never one of the files written."""
    reserved = {SCORE_SHARD_FILE, INDEX_FILE, CONFIG_FILE, PROVENANCE_FILE}
    seen: set[str] = set()
    for source_name in ckpt.shards:
        name = output_shard_name(source_name)
        if name in reserved:
            raise BadInput(
                f"the source has a shard named {name!r}, a file the conversion writes: "
                "convert the original causal LM"
            )
        if name in seen:
            raise BadInput(
                f"the source has both {SINGLE_WEIGHTS_FILE} and {name!r}: remove the stray file "
                "or add a model.safetensors.index.json"
            )
        seen.add(name)


def _pickle_files(source: Source) -> list[Path]:
    index = read_json_object(source, PICKLE_INDEX_FILE)
    if index is None:
        names = [n for n in source.listing(["*.bin"]) if "/" not in n]
    else:
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise BadInput(f"{PICKLE_INDEX_FILE} is not a valid index: re-download the checkpoint")
        names = unique_names(weight_map.values(), what=PICKLE_INDEX_FILE)
    files = []
    for name in names:
        path = source.file(name, what=PICKLE_INDEX_FILE)
        if path is None:
            raise BadInput(f"{PICKLE_INDEX_FILE} names {name!r}, which is missing: re-download it")
        files.append(path)
    return files
