"""The layerwise pass's reused weight buffers (`check/weight_reads.WeightArena`): a read into the
arena gives the same float32 values as a fresh read, a leaf's weights are not overwritten by a
leaf running inside it, and a read that fails leaves the arena as it was. Real safetensors files
in bf16 and float32; a few milliseconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from reranker_seqcls.check.weight_reads import WeightArena, read_tensor
from reranker_seqcls.errors import BadInput
from reranker_seqcls.safetensors_io.header import SafetensorsFile


@pytest.fixture
def shard(tmp_path: Path) -> SafetensorsFile:
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "a": torch.randn(64, 32, generator=gen).to(torch.bfloat16),
        "b": torch.randn(16, 8, generator=gen).to(torch.float16),
        "c": torch.randn(128, 32, generator=gen),  # float32 as stored
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, path)
    return SafetensorsFile(path)


def _read(shard: SafetensorsFile, name: str, arena: WeightArena | None = None) -> torch.Tensor:
    return read_tensor(shard.path, shard.tensors[name], torch.float32, arena)


def test_arena_reads_equal_fresh_reads_and_nest(shard: SafetensorsFile) -> None:
    arena = WeightArena()
    a = _read(shard, "a", arena)
    assert torch.equal(a, _read(shard, "a"))  # bf16 -> float32 is exact: bit-identical
    outer = arena.mark()
    b = _read(shard, "b", arena)  # a leaf inside a leaf: on top of the stack
    assert torch.equal(b, _read(shard, "b"))
    assert torch.equal(a, _read(shard, "a"))  # not overwritten by the inner read
    c = _read(shard, "c", arena)  # does not fit beside live weights: a fresh tensor
    assert torch.equal(c, _read(shard, "c"))
    assert c.untyped_storage().data_ptr() != a.untyped_storage().data_ptr()
    arena.release(outer)
    arena.release(0)
    c_again = _read(shard, "c", arena)  # nothing live: the buffer grows to hold it
    assert torch.equal(c_again, c)
    assert arena.mark() == c.numel()
    arena.release(0)
    a_again = _read(shard, "a", arena)  # reuses the grown buffer
    assert a_again.untyped_storage().data_ptr() == c_again.untyped_storage().data_ptr()
    assert torch.equal(a_again, a)


def test_a_failed_read_leaves_the_arena_as_it_was(shard: SafetensorsFile) -> None:
    arena = WeightArena()
    _read(shard, "a", arena)
    top = arena.mark()
    os.truncate(shard.path, shard.tensors["c"].start + 10)
    with pytest.raises(BadInput, match=r"is truncated at c: re-download the checkpoint$"):
        _read(shard, "c", arena)
    assert arena.mark() == top
