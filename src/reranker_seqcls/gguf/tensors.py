"""The GGUF's tensors: planned from the converted shards' headers (llama.cpp's names and
types), read one tensor at a time in row blocks, quantized and written as they come, and the
two-row ``cls_out`` head built from ``score.weight``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.gguf.metadata import _read_json
from reranker_seqcls.gguf.types import GgufType
from reranker_seqcls.names import INDEX_FILE
from reranker_seqcls.recipes.methods import two_way_methods

if TYPE_CHECKING:
    import numpy as np

SCORE_TENSOR = "score.weight"
CHUNK_ELEMENTS = 16 * 1024 * 1024  # values converted at a time (64 MB in float32)
# Quantized blocks hold 32 values along a row: a row of another length stays f16.
BLOCK = 32


@dataclass(frozen=True)
class _Plan:
    source_name: str  # the checkpoint's tensor name
    name: str  # llama.cpp's
    shape: tuple[int, ...]
    ggml_type: str


def _add_tensor_info(
    writer: Any, gguf: Any, np: Any, name: str, shape: tuple[int, ...], ggml_type: str
) -> int:
    """One tensor table entry; the tensor's bytes in the file."""
    ptype = getattr(gguf.GGMLQuantizationType, ggml_type)
    block, type_size = gguf.GGML_QUANT_SIZES[ptype]
    nbytes: int = int(np.prod(shape)) // block * type_size
    if ggml_type in ("F32", "F16"):
        dtype = np.float32 if ggml_type == "F32" else np.float16
        writer.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
    else:
        byte_shape = gguf.quant_shape_to_byte_shape(shape, ptype)
        writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=ptype)
    return nbytes


def _head_rows(head: np.ndarray, hidden: int) -> np.ndarray:
    """``[w, 0]`` from the one-row ``score.weight`` ``w``."""
    import numpy as np

    if head.ndim != 2 or head.shape[1] != hidden:
        raise BadInput(f"--gguf: score.weight has shape {list(head.shape)}, expected [1, {hidden}]")
    if head.shape[0] != 1:
        raise BadInput(
            f"--gguf: the converted checkpoint has {head.shape[0]} labels; llama-server returns "
            f"one score per document: convert with a one-label recipe "
            f"({', '.join(two_way_methods())}, or one token) for --gguf"
        )
    return np.ascontiguousarray(
        np.stack([head[0], np.zeros(hidden, dtype=np.float32)]), dtype=np.float32
    )


def _weight_files(converted: Path) -> list[Path]:
    index = converted / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise BadInput(f"--gguf: {INDEX_FILE} has no weight_map")
        names = sorted(set(weight_map.values()))
    else:
        names = sorted(p.name for p in converted.glob("*.safetensors"))
    files = [converted / n for n in names]
    if not files or not all(f.is_file() for f in files):
        raise BadInput("--gguf: the converted checkpoint's safetensors shards are missing")
    return files


def _shapes(shards: list[Path]) -> Iterator[tuple[Path, str, tuple[int, ...]]]:
    from safetensors import safe_open

    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is no Mapping
                yield shard, key, tuple(f.get_slice(key).get_shape())


def _plan(
    shards: list[Path], blocks: int, gguf_type: GgufType, *, require_score: bool = True
) -> Iterator[_Plan]:
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, blocks)
    seen_score = False
    for _, key, shape in _shapes(shards):
        if key == SCORE_TENSOR:
            seen_score = True
            continue
        if key == "lm_head.weight":  # an untied source's LM head: the classifier has none
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise BadInput(
                f"--gguf: tensor {key} has no llama.cpp qwen3 name: the checkpoint is not a "
                "plain Qwen3 model"
            )
        ggml_type = "F32"
        if len(shape) == 2:
            ggml_type = gguf_type.ggml_type
            if ggml_type not in ("F32", "F16") and shape[-1] % BLOCK:
                ggml_type = "F16"
        yield _Plan(key, name, shape, ggml_type)
    if require_score and not seen_score:
        raise BadInput("--gguf: the converted checkpoint has no score.weight: convert it first")


def _read_tensor(shards: list[Path], key: str) -> np.ndarray:
    from safetensors import safe_open

    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            if key in f.keys():  # noqa: SIM118
                array: np.ndarray = f.get_tensor(key).float().numpy()
                return array
    raise BadInput(f"--gguf: the converted checkpoint has no {key}")


def _chunks(shards: list[Path], plans: list[_Plan]) -> Iterator[tuple[_Plan, Iterator[np.ndarray]]]:
    """Each planned tensor as float32 row blocks of at most :data:`CHUNK_ELEMENTS` values, in
    plan order: one block resident at a time (the 8B's embedding is 2.5 GB in float32)."""
    from safetensors import safe_open

    by_shard: dict[str, Path] = {key: shard for shard, key, _ in _shapes(shards)}
    with ExitStack() as stack:
        opened: dict[Path, Any] = {}
        for plan in plans:
            shard = by_shard[plan.source_name]
            if shard not in opened:
                opened.clear()  # plans follow shard order: one shard open at a time
                opened[shard] = stack.enter_context(safe_open(shard, framework="pt"))
            yield plan, _row_blocks(opened[shard].get_slice(plan.source_name), plan.shape)


def rows_per_block(shape: tuple[int, ...]) -> int:
    """Rows of a 2-D tensor converted at a time (a 1-D tensor goes whole): both passes cut the
    same blocks, though a block's quantization depends only on its rows."""
    return max(1, CHUNK_ELEMENTS // max(1, shape[-1]))


def _row_blocks(tensor_slice: Any, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    if len(shape) < 2:
        yield tensor_slice[:].float().numpy()
        return
    rows = rows_per_block(shape)
    for start in range(0, shape[0], rows):
        yield tensor_slice[start : start + rows].float().numpy()


class TensorData:
    """The data section of one GGUF file whose header and tensor table are written: each
    planned tensor placed at the offset its table entry gives, quantized block by block as its
    float32 row blocks come, in whatever order the tensors come (a converted shard's plan
    order, or a source shard's file order in the second pass: the same bytes either way).
    Padding is zeros, as ``GGUFWriter.write_tensor_data`` writes it (gguf 0.19.0)."""

    def __init__(self, writer: Any, tensors: list[tuple[str, str, int]]) -> None:
        """``tensors``: (name, GGML type, bytes) in table order, as ``_add_tensor_info`` got
        them."""
        import gguf

        self.writer = writer
        self.fout = writer.fout[0]
        align = writer.data_alignment
        offset = gguf.GGUFWriter.ggml_pad(self.fout.tell(), align)
        self.at: dict[str, tuple[int, int, Any]] = {}
        for name, ggml_type, nbytes in tensors:
            self.at[name] = (offset, nbytes, getattr(gguf.GGMLQuantizationType, ggml_type))
            offset += gguf.GGUFWriter.ggml_pad(nbytes, align)
        self.end = offset
        self._open: tuple[str, int] | None = None  # the tensor being written, bytes so far

    def begin(self, name: str) -> None:
        self.fout.seek(self.at[name][0])
        self._open = (name, 0)

    def block(self, block: np.ndarray) -> None:
        """The next float32 row block of the tensor begun, quantized to its type."""
        import gguf

        assert self._open is not None
        name, written = self._open
        data = gguf.quants.quantize(block, self.at[name][2])
        data.tofile(self.fout)
        self._open = (name, written + data.nbytes)

    def raw(self, array: np.ndarray) -> None:
        """A whole tensor already in its type (the float32 head)."""
        assert self._open is not None
        array.tofile(self.fout)
        self._open = (self._open[0], self._open[1] + array.nbytes)

    def done(self) -> None:
        assert self._open is not None
        name, written = self._open
        if written != self.at[name][1]:
            raise AssertionError(f"{name}: wrote {written} bytes, planned {self.at[name][1]}")
        self._open = None

    def close(self) -> None:
        """The file ends at the last tensor's padding (zeros where nothing was written)."""
        import gguf

        self.fout.truncate(self.end)
        self.writer.state = gguf.gguf_writer.WriterState.WEIGHTS
