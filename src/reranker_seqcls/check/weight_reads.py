"""How the layerwise scorer holds weights: single tensors and rows read from a shard's byte range
with plain file reads (no mmap, so no mapped pages count as the check's memory), a ledger of the
bytes held, and glibc's ``malloc_trim`` to give freed chunks back."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput
from reranker_seqcls.safetensors_io.floats import TORCH_DTYPE_NAMES
from reranker_seqcls.safetensors_io.header import TensorInfo

if TYPE_CHECKING:
    import torch


def _glibc_trim() -> Callable[[], object]:
    """``malloc_trim(0)`` of glibc, else a no-op. Weights and activations of a few MB each are
    allocated and freed for every module and batch; glibc keeps such freed chunks in its heaps
    instead of returning them, and RSS then grows layer after layer (measured on the 0.6B shape:
    +0.1 GB per three layers, 1.7 GB at the end, with 1 MB of live tensors)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


return_freed_memory = _glibc_trim()


@dataclass
class WeightLedger:
    """Bytes of weights held in memory (compute dtype), for the tests and the report."""

    held: int = 0  # right now
    peak: int = 0  # most at any time
    read: int = 0  # bytes read from shard files in total
    embedding_rows: int = 0  # rows of the input embedding materialized

    def add(self, nbytes: int) -> None:
        self.held += nbytes
        self.peak = max(self.peak, self.held)

    def remove(self, nbytes: int) -> None:
        self.held -= nbytes


class WeightArena:
    """Two buffers reused for every leaf module's weights: the bytes of a tensor as stored, and
    the tensor in the compute dtype (a stack: a leaf's weights are taken on top of those of a
    leaf that is still running, and given back when it ends).

    Why: a fresh buffer per tensor (a zero-filled ``bytearray``, then a new float32 tensor of
    twice its size) costs page faults and zeroing for every byte of the model, every pass: on
    the 8B shape 10.9 million page faults and 31 of the quick pass's 89 CPU seconds, beside
    47 in the matmuls. Reused, the pages are touched once; a read is a copy from the page cache
    and one bf16 -> float32 conversion (exact, so the weights and scores are bit-identical).
    The buffers grow to the largest leaf (on the 8B one MLP matrix: 0.2 GB float32 plus 0.1 GB
    as stored), which is what one leaf held at its peak before; :meth:`free` drops them."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._out: torch.Tensor | None = None
        self._top = 0  # elements of ``_out`` in use

    def mark(self) -> int:
        return self._top

    def release(self, mark: int) -> None:
        self._top = mark

    def free(self) -> None:
        self._raw, self._out, self._top = bytearray(), None, 0

    def take(self, numel: int, dtype: torch.dtype) -> torch.Tensor | None:
        """``numel`` elements on top of the stack, or None where they do not fit while weights
        below are live (a leaf inside a leaf: that one reads into a fresh tensor)."""
        import torch

        end = self._top + numel
        if self._out is None or self._out.dtype != dtype or self._out.numel() < end:
            if self._top:
                return None
            self._out = torch.empty(numel, dtype=dtype)
        view = self._out[self._top : end]
        self._top = end
        return view

    def raw(self, nbytes: int) -> bytearray:
        """A buffer of at least ``nbytes`` for the bytes as stored (used within one read)."""
        if len(self._raw) < nbytes:
            self._raw = bytearray(nbytes)
        return self._raw


def read_tensor(
    path: Path, info: TensorInfo, dtype: torch.dtype, arena: WeightArena | None = None
) -> torch.Tensor:
    """One tensor from a shard, by a plain read of its byte range, converted to ``dtype``; into
    ``arena``'s buffers where given (the caller gives it back with :meth:`WeightArena.release`)."""
    import torch

    source_dtype = TORCH_DTYPE_NAMES.get(info.dtype)
    if source_dtype is None:
        raise BadInput(
            f"{info.name} is stored as {info.dtype}; the check reads float tensors only: "
            "convert a non-quantized checkpoint"
        )
    stored = getattr(torch, source_dtype)
    buffer = arena.raw(info.nbytes) if arena is not None else bytearray(info.nbytes)
    view = memoryview(buffer)[: info.nbytes]
    with path.open("rb") as fh:
        fh.seek(info.start)
        if fh.readinto(view) != info.nbytes:
            raise BadInput(f"{path.name} is truncated at {info.name}: re-download the checkpoint")
    out = arena.take(math.prod(info.shape), dtype) if arena is not None else None
    if not info.nbytes:
        return torch.empty(info.shape, dtype=dtype) if out is None else out.view(info.shape)
    raw = torch.frombuffer(view, dtype=stored).reshape(info.shape)
    if out is None:
        return raw.to(dtype, copy=True)
    out = out.view(info.shape)
    out.copy_(raw)
    return out


def read_rows(path: Path, info: TensorInfo, rows: list[int], dtype: torch.dtype) -> torch.Tensor:
    """Rows ``rows`` of a 2-D tensor, each read on its own (never the whole tensor)."""
    import torch

    source_dtype = TORCH_DTYPE_NAMES.get(info.dtype)
    if source_dtype is None or len(info.shape) != 2:
        raise BadInput(f"{info.name} is not a 2-D float tensor: convert a non-quantized checkpoint")
    n_rows, width = info.shape
    row_bytes = info.nbytes // n_rows if n_rows else 0
    out = torch.empty((len(rows), width), dtype=dtype)
    with path.open("rb") as fh:
        for i, row in enumerate(rows):
            if not 0 <= row < n_rows:
                raise BadInput(
                    f"token id {row} is outside {info.name} ({n_rows} rows): the tokenizer does "
                    "not match the weights"
                )
            fh.seek(info.start + row * row_bytes)
            raw = bytearray(fh.read(row_bytes))
            if len(raw) != row_bytes:
                raise BadInput(
                    f"{path.name} is truncated at {info.name}: re-download the checkpoint"
                )
            out[i] = torch.frombuffer(raw, dtype=getattr(torch, source_dtype)).to(dtype)
    return out


def check_shape(info: TensorInfo, expected: tuple[int, ...]) -> None:
    if tuple(info.shape) != expected:
        raise BadInput(
            f"{info.name} has shape {list(info.shape)}, config.json gives {list(expected)}: the "
            "checkpoint does not match its config, re-download it"
        )


# Learned absolute position tables (GPT-2, GPT-Neo, OPT, ...): a prompt longer than the table
# is an IndexError inside the model (exit 4 before); OPT's table holds 2 offset rows.
_POSITION_TABLES = {"wpe.weight": 0, "position_embeddings.weight": 0, "embed_positions.weight": 2}


def check_prompt_positions(directory: Path, lengths: list[int]) -> None:
    """Refuse prompts longer than the source's learned position table, naming the fix."""
    from reranker_seqcls.safetensors_io.checkpoint import shard_names
    from reranker_seqcls.safetensors_io.header import SafetensorsFile
    from reranker_seqcls.source import Source

    files = Source(directory)
    names, _ = shard_names(files)
    longest = max(lengths, default=0)
    for name in names:
        path = files.file(name)
        if path is None:
            continue
        for tensor, info in SafetensorsFile(path).tensors.items():
            offset = next((o for s, o in _POSITION_TABLES.items() if tensor.endswith(s)), None)
            if offset is None or not info.shape:
                continue
            positions = info.shape[0] - offset
            if longest > positions:
                raise BadInput(
                    f"the check's longest prompt has {longest} tokens, more than the "
                    f"{positions} positions of {tensor}: give --pairs with shorter texts"
                )
