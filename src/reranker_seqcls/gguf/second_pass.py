"""The second pass of a streamed ``run --gguf`` (:mod:`.streamed`): one source shard's data
splits, written from its bytes as they come from the Hub, never saving the shard.

The source shard's planned header (its placeholder in the run's source directory) gives every
tensor's offsets; the stream (:func:`hub.stream_read.stream_verified`) is read in file order:
the bytes between tensors and of tensors the GGUF does not hold (``lm_head``) only pass through
the sha256, each kept tensor is cut in the row blocks the one-pass design reads from the
converted shard (:func:`.tensors.rows_per_block`), converted to float32 by torch as the
converted shard's reader does, and fed to each type's split through the same writer
(:func:`.writer.open_gguf`), which places every tensor at its table offset: the split's bytes
are the one-pass split's, whatever order the source file holds its tensors in. Memory stays at
one row block (64 MB in float32) and the stream's buffer; the 8B's 1.24 GB ``embed_tokens`` is
never whole.

A split is renamed into place only when the stream ended with the listing's size and sha256;
any error removes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput, HubError
from reranker_seqcls.gguf.tensors import rows_per_block
from reranker_seqcls.gguf.writer import Split, data_split_plans, open_gguf
from reranker_seqcls.safetensors_io.floats import TORCH_DTYPE_NAMES

if TYPE_CHECKING:
    import numpy as np
    import torch

    from reranker_seqcls.gguf.types import GgufType


def write_streamed_splits(
    stream: Iterable[bytes],
    placeholder: Path,
    blocks: int,
    outs: list[tuple[Path, GgufType, Split]],
) -> None:
    """One split per ``(path, type, split)`` in ``outs``, from the bytes of the source shard
    whose header ``placeholder`` holds, read once from ``stream`` to its end."""
    import torch

    from reranker_seqcls.safetensors_io.header import SafetensorsFile

    layout = sorted(SafetensorsFile(placeholder).tensors.values(), key=lambda t: t.start)
    plans = [{p.source_name: p for p in data_split_plans(placeholder, blocks, t)}
             for _, t, _ in outs]  # fmt: skip
    reader = _Bytes(iter(stream))
    with ExitStack() as stack:
        files = [
            stack.enter_context(open_gguf(path, split.add_keys, list(p.values()), None))
            for (path, _, split), p in zip(outs, plans, strict=True)
        ]
        for info in layout:
            reader.skip_to(info.start)
            if info.name not in plans[0]:
                continue  # not in the GGUF (lm_head): its bytes pass through the sha256
            dtype_name = TORCH_DTYPE_NAMES.get(info.dtype)
            if dtype_name is None:
                raise BadInput(
                    f"--gguf: {info.name} is stored as {info.dtype}; only float tensors can be "
                    "written to a GGUF: convert a non-quantized checkpoint"
                )
            for data, p in zip(files, plans, strict=True):
                data.begin(p[info.name].name)
            for block in _row_blocks(reader, info.shape, getattr(torch, dtype_name)):
                for data in files:
                    data.block(block)
            for data in files:
                data.done()
        reader.drain()  # to the end: the sha256 is checked there, before any split is renamed


def _row_blocks(reader: _Bytes, shape: tuple[int, ...], dtype: torch.dtype) -> Iterator[np.ndarray]:
    """The tensor at the reader's position as float32 blocks of whole rows: the blocks the
    one-pass reader (:func:`.tensors._row_blocks`) cuts, converted by the same torch cast."""
    itemsize = dtype.itemsize
    if len(shape) < 2:
        count = shape[0] if shape else 1
        yield _floats(reader.read(count * itemsize), dtype, shape)
        return
    row_values = 1
    for n in shape[1:]:
        row_values *= n
    step = rows_per_block(shape)
    for start in range(0, shape[0], step):
        rows = min(step, shape[0] - start)
        yield _floats(reader.read(rows * row_values * itemsize), dtype, (rows, *shape[1:]))


def _floats(raw: bytearray, dtype: torch.dtype, shape: tuple[int, ...]) -> np.ndarray:
    import torch

    tensor = torch.frombuffer(raw, dtype=dtype).reshape(shape)
    array: np.ndarray = tensor.float().numpy()
    return array


class _Bytes:
    """A byte stream read by exact lengths, in order; what is skipped still passes through
    (the stream hashes every byte)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer, self.position = chunks, bytearray(), 0

    def read(self, n: int) -> bytearray:
        while len(self.buffer) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                raise HubError(
                    f"the source shard ended {n - len(self.buffer)} bytes before its header's "
                    "last tensor: the transfer was corrupted, nothing was pushed; try again"
                )
            self.buffer += chunk
        out = self.buffer[:n]
        del self.buffer[:n]
        self.position += n
        return out

    def skip_to(self, offset: int) -> None:
        while self.position < offset:
            self.read(min(offset - self.position, 1 << 24))

    def drain(self) -> None:
        self.position += len(self.buffer)
        self.buffer.clear()
        for chunk in self.chunks:
            self.position += len(chunk)
