"""The source's shapes proven from its shard headers before any model object exists: the
config's shape values and layer count against the tensors the headers hold, and the stages of a
model the layer-by-layer pass does not drive (from the headers alone)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.names import INDEX_FILE as INDEX_NAME
from reranker_seqcls.safetensors_io.header import SafetensorsFile, TensorInfo

if TYPE_CHECKING:
    from reranker_seqcls.check.release_schedule import Stages

_EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")


def prove_source(directory: Path, config: dict[str, Any]) -> dict[str, TensorInfo]:
    """The config's shape values and layer count against the shards' headers, before any
    model object exists (the streamed run's placeholders hold the headers); the headers'
    tensors by name."""
    from reranker_seqcls.convert.rules import check_layer_count, check_shape_values

    check_shape_values(config)
    tensors: dict[str, TensorInfo] = {}
    for shard in source_shards(directory):
        tensors.update(SafetensorsFile(shard).tensors)
    check_layer_count(config, tensors)
    return tensors


def header_stages(directory: Path, config: dict[str, Any]) -> Stages:
    """The stages of a model the layerwise pass does not drive, from its headers alone (the
    whole-model check's progress counts layers by them): the embedding, the layer stack the
    config's count matches, everything else last."""
    from reranker_seqcls.check.release_schedule import Stages
    from reranker_seqcls.convert.rules import config_layer_count, header_layer_stacks

    tensors = prove_source(directory, config)
    counted = config_layer_count(config)
    count = counted[1] if counted else 0
    stack = next(
        (p for p, i in header_layer_stacks(tensors).items() if set(range(count)) <= i), None
    )
    layers = tuple(
        frozenset(n for n in tensors if stack and n.startswith(f"{stack}.{i}."))
        for i in range(count if stack else 0)
    )
    staged = {n for layer in layers for n in layer}
    embedding = next((n for n in tensors if n.endswith(_EMBEDDINGS)), "")
    final = frozenset(n for n in tensors if n not in staged and n != embedding)
    return Stages(embedding, layers, final)


def source_shards(directory: Path) -> list[Path]:
    """The shard files of a local checkpoint directory, in index order."""
    from reranker_seqcls.safetensors_io.checkpoint import shard_names
    from reranker_seqcls.source import Source

    files = Source(directory)
    names, _ = shard_names(files)
    paths = [files.file(n, what=INDEX_NAME) for n in names]
    return [p for p in paths if p is not None]
