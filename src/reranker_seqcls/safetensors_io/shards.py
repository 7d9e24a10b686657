"""Writing safetensors shards: a source shard minus some tensors (byte ranges copied, never
decoded), a small shard from values in memory, and the index that names them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.safetensors_io.header import (
    PAGE_SIZE,
    SafetensorsFile,
    TensorEntry,
    header_bytes,
)
from reranker_seqcls.safetensors_io.place import copy_range


@dataclass(frozen=True)
class TensorBytes:
    """A tensor held in memory, ready to be written: its header entry and its raw bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    raw: bytes

    def entry(self) -> TensorEntry:
        return TensorEntry(self.name, self.dtype, self.shape, len(self.raw))


@dataclass
class _Run:
    """A contiguous byte range of the source file."""

    start: int
    length: int


def write_shard_without(src: SafetensorsFile, dst: Path, drop: set[str]) -> list[str]:
    """Write ``src`` minus the tensors in ``drop`` to ``dst``, copying byte ranges.

    Tensors keep their original order; each run of adjacent kept tensors is one kernel copy, and
    the header is padded so the copied bytes keep their page alignment. Returns the names of the
    tensors written.
    """
    kept = sorted((t for t in src.tensors.values() if t.name not in drop), key=lambda t: t.start)
    runs: list[_Run] = []
    for tensor in kept:
        if runs and runs[-1].start + runs[-1].length == tensor.start:
            runs[-1].length += tensor.nbytes
        else:
            runs.append(_Run(tensor.start, tensor.nbytes))
    align = kept[0].start % PAGE_SIZE if kept else None
    with src.path.open("rb") as fin, dst.open("xb") as fout:
        fout.write(header_bytes([t.entry() for t in kept], src.metadata, data_start_mod=align))
        for run in runs:
            copy_range(fin, fout, run.start, run.length)
    return [t.name for t in kept]


def write_shard(dst: Path, tensors: Sequence[TensorBytes]) -> None:
    """Write a small shard from tensors held in memory."""
    with dst.open("xb") as fout:
        fout.write(header_bytes([t.entry() for t in tensors], {"format": "pt"}))
        for tensor in tensors:
            fout.write(tensor.raw)


def write_index(dst: Path, weight_map: dict[str, str], total_size: int) -> None:
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    dst.write_text(json.dumps(index, indent=2) + "\n")
