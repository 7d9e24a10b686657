"""Safetensors checkpoints read and written lazily, without torch.

The safetensors format is an 8-byte little-endian header length, a JSON header mapping tensor
names to ``{dtype, shape, data_offsets}`` (offsets relative to the end of the header), then the raw
bytes. That is simple enough to read single rows of a tensor with a seek, and to rewrite a shard
without one of its tensors by writing a new header and copying byte ranges — so memory never
grows with the shard size, and torch is never imported.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.source import Source, safe_name, unique_names

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_COPY_CHUNK = 16 * 1024 * 1024
# Header sizes beyond this are refused: a corrupt length would otherwise allocate gigabytes.
_MAX_HEADER = 100 * 1024 * 1024

ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute file offset of the first byte
    end: int  # absolute file offset one past the last byte

    @property
    def nbytes(self) -> int:
        return self.end - self.start


class SafetensorsFile:
    """The header of one ``.safetensors`` file, parsed; tensor data stays on disk."""

    def __init__(self, path: Path, *, label: str | None = None) -> None:
        self.path = path
        label = label or path.name
        try:
            with path.open("rb") as fh:
                raw_len = fh.read(8)
                if len(raw_len) != 8:
                    raise ValueError("file shorter than 8 bytes")
                (header_len,) = struct.unpack("<Q", raw_len)
                if header_len > _MAX_HEADER:
                    raise ValueError(f"header length {header_len} is implausible")
                raw_header = fh.read(header_len)
            _validate_with_library(path)
            header = json.loads(raw_header, object_pairs_hook=_refuse_duplicate_keys)
        except (OSError, ValueError, RecursionError) as exc:
            raise BadInput(
                f"{label!r} is not a readable safetensors file ({_first_line(exc)}): "
                "re-download the checkpoint"
            ) from None
        data_start = 8 + header_len
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.tensors: dict[str, TensorInfo] = {}
        for name, info in header.items():
            begin, stop = info["data_offsets"]
            self.tensors[name] = TensorInfo(
                name, info["dtype"], tuple(info["shape"]), data_start + begin, data_start + stop
            )

    def read_rows(self, name: str, rows: Iterable[int]) -> list[list[float]]:
        """Rows of a 2-D float tensor (values exactly as stored), reading only those rows."""
        info = self.tensors[name]
        if len(info.shape) != 2:
            raise BadInput(f"{name} in {self.path.name} has shape {list(info.shape)}, expected 2-D")
        n_rows, width = info.shape
        if info.dtype not in FLOAT_DTYPES:
            raise BadInput(
                f"{name} is stored as {info.dtype}; only float32/float16/bfloat16 heads are "
                "supported: convert a non-quantized checkpoint"
            )
        row_bytes = width * ITEMSIZE[info.dtype]
        out = []
        with self.path.open("rb") as fh:
            for row in rows:
                if not 0 <= row < n_rows:
                    raise BadInput(
                        f"token id {row} is outside {name} ({n_rows} rows): the tokenizer does not "
                        "match the weights"
                    )
                fh.seek(info.start + row * row_bytes)
                out.append(decode_floats(fh.read(row_bytes), info.dtype))
        return out


def _validate_with_library(path: Path) -> None:
    """Let the safetensors library's own reader check the file; raises ValueError if it refuses.

    It refuses (verified against safetensors 0.8): a header that is not a JSON object, unknown
    dtypes, a ``__metadata__`` that is not a string→string map, offsets that are negative, not
    contiguous from 0, overlapping or past the end, trailing bytes, dtype × shape that does not
    match the byte length, and shapes that overflow. It maps the file instead of reading it
    (a 4 GB shard opens in milliseconds) and never imports torch; opening imports numpy once.
    Duplicate tensor names it accepts silently: :func:`_refuse_duplicate_keys` catches those.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except SafetensorError as exc:
        raise ValueError(str(exc).removeprefix("Error while deserializing header: ")) from None


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"tensor name {key!r} appears twice in the header")
        result[key] = value
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:160]


FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


def decode_floats(raw: bytes, dtype: str) -> list[float]:
    """Raw little-endian bytes of a float tensor → Python floats (exact: every float32, float16
    and bfloat16 value is a double). Pure Python: a row is a few thousand values, and importing
    numpy would cost more than decoding them."""
    if dtype == "BF16":
        halves = array("H", raw)
        if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
            halves.byteswap()
        return _f32_from_bits(array("I", (h << 16 for h in halves)))
    if dtype == "F16":
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))
    values = array("f" if dtype == "F32" else "d", raw)
    if sys.byteorder != "little":  # pragma: no cover
        values.byteswap()
    return list(values)


def _f32_from_bits(bits: array) -> list[float]:
    return list(array("f", bits.tobytes()))


def encode_floats(values: list[list[float]], dtype: str) -> bytes:
    """Rows of floats (doubles) → raw little-endian bytes in ``dtype``, each value rounded once
    to the storage dtype with round-to-nearest-even.

    For values that are float32-exact (a difference of two stored rows) this equals torch's
    ``tensor.float().to(dtype)``. A scaled head is not float32-exact; rounding it through
    float32 first could round twice, so bfloat16 goes through float32 with round-to-odd, which
    makes the second rounding the correct single one (float32 has more than two extra bits).
    """
    doubles = [v for row in values for v in row]
    if dtype == "F64":
        out = array("d", doubles)
    elif dtype == "F16":
        return struct.pack(f"<{len(doubles)}e", *doubles)  # CPython rounds doubles once
    elif dtype in ("F32", "BF16"):
        out = array("f", doubles)  # round-to-nearest-even from double
        if dtype == "BF16":
            bits = array("I", out.tobytes())
            for i, (exact, rounded) in enumerate(zip(doubles, out, strict=True)):
                if rounded != exact and math.isfinite(rounded):
                    # round to odd: the float32 truncation toward zero, with its last bit set
                    magnitude = bits[i] & 0x7FFFFFFF
                    if abs(rounded) > abs(exact):
                        magnitude -= 1
                    bits[i] = (bits[i] & 0x80000000) | magnitude | 1
            if sys.byteorder != "little":  # pragma: no cover
                bits.byteswap()
            rounded_bits = (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits)
            halves = array("H", rounded_bits)
            if sys.byteorder != "little":  # pragma: no cover
                halves.byteswap()
            return halves.tobytes()
    else:
        raise BadInput(f"cannot store the score in {dtype}")
    if sys.byteorder != "little":  # pragma: no cover
        out.byteswap()
    return out.tobytes()


class Checkpoint:
    """A directory of safetensors shards, addressed by tensor name.

    Shard names come from the index (or the directory listing) and go through
    :class:`~reranker_seqcls.source.Source`: safe, unique, regular files inside the source.
    A tensor name held by two shards is refused.
    """

    def __init__(self, directory: Path | Source) -> None:
        source = directory if isinstance(directory, Source) else Source(directory)
        self.directory = source.directory
        self.shards: dict[str, SafetensorsFile] = {}
        names, weight_map = shard_names(source)
        for shard in names:
            path = source.file(shard, what=INDEX_NAME)
            if path is None:
                raise BadInput(
                    f"{INDEX_NAME} names {shard!r}, which is missing: re-download the checkpoint"
                )
            self.shards[shard] = SafetensorsFile(path, label=shard)
        self.location: dict[str, str] = {}
        for shard, st in self.shards.items():
            for name in st.tensors:
                other = self.location.setdefault(name, shard)
                if other != shard:
                    raise BadInput(
                        f"tensor {name!r} is in both {other!r} and {shard!r}: the checkpoint is "
                        "inconsistent, re-download it"
                    )
        for name, shard in weight_map.items():
            # A tied model's index may still list lm_head.weight that no shard holds (the tie
            # makes it the embedding); every other entry must be in the shard it names.
            stale_tied_head = name == "lm_head.weight" and name not in self.location
            if self.location.get(name) != shard and not stale_tied_head:
                raise BadInput(
                    f"{INDEX_NAME} puts tensor {name!r} in {shard!r}, which does not hold it: "
                    "the index and the shards disagree, re-download the checkpoint"
                )

    def __contains__(self, name: str) -> bool:
        return name in self.location

    def tensor(self, name: str) -> TensorInfo:
        return self.shards[self.location[name]].tensors[name]

    def read_rows(self, name: str, rows: Iterable[int]) -> list[list[float]]:
        return self.shards[self.location[name]].read_rows(name, rows)

    def find(self, suffix: str) -> str | None:
        """The one tensor whose name ends with ``suffix`` (e.g. ``embed_tokens.weight``)."""
        hits = sorted(n for n in self.location if n == suffix or n.endswith("." + suffix))
        return hits[0] if len(hits) == 1 else None


def shard_names(source: Source) -> tuple[list[str], dict[str, str]]:
    """The shard names of a checkpoint — the index's weight_map values, else the top-level
    ``*.safetensors`` — and the weight map with normalized shard names (empty without index)."""
    index = source.read_json(INDEX_NAME)
    weight_map: dict[str, str] = {}
    if index is None:
        names = source.listing(["*.safetensors"])
        names = [n for n in names if "/" not in n]
    else:
        raw_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(raw_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_map.items()
        ):
            raise BadInput(
                f"{INDEX_NAME} has no weight_map of tensor name → shard file name: "
                "re-download the checkpoint"
            )
        names = unique_names(raw_map.values(), what=INDEX_NAME)
        weight_map = {k: safe_name(v, what=INDEX_NAME) for k, v in raw_map.items()}
        not_safetensors = [n for n in names if not n.endswith(".safetensors")]
        if not_safetensors:
            raise BadInput(
                f"{INDEX_NAME} names {not_safetensors[0]!r}, which is not a .safetensors file: "
                "re-download the checkpoint"
            )
    if not names:
        raise BadInput(f"no .safetensors weights in {source.directory}")
    return names, weight_map


_PAGE = 4096


def _header_bytes(
    entries: list[tuple[str, str, tuple[int, ...], int]],
    metadata: dict,
    *,
    data_start_mod: int | None = None,
) -> bytes:
    """Serialize a safetensors header for tensors laid out back to back in ``entries`` order.

    With ``data_start_mod``, spaces pad the header so the data starts at that offset modulo the
    page size: byte ranges copied from a source file then keep their alignment, which lets the
    kernel copy whole pages (measured: 0.45 s instead of 0.65 s for 1.5 GB).
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)  # the reference writer pads the header to 8 bytes
    if data_start_mod is not None and data_start_mod % 8 == 0:
        raw += b" " * ((data_start_mod - 8 - len(raw)) % _PAGE)
    return struct.pack("<Q", len(raw)) + raw


def write_shard_without(src: SafetensorsFile, dst: Path, drop: set[str]) -> list[str]:
    """Write ``src`` minus the tensors in ``drop`` to ``dst``, copying byte ranges.

    Tensors keep their original order; each run of adjacent kept tensors is one kernel copy, and
    the header is padded so the copied bytes keep their page alignment. Returns the names of the
    tensors written.
    """
    kept = sorted((t for t in src.tensors.values() if t.name not in drop), key=lambda t: t.start)
    entries = [(t.name, t.dtype, t.shape, t.nbytes) for t in kept]
    runs: list[list[int]] = []  # [start, length] of contiguous source ranges
    for tensor in kept:
        if runs and runs[-1][0] + runs[-1][1] == tensor.start:
            runs[-1][1] += tensor.nbytes
        else:
            runs.append([tensor.start, tensor.nbytes])
    align = kept[0].start % _PAGE if kept else None
    with src.path.open("rb") as fin, dst.open("xb") as fout:
        fout.write(_header_bytes(entries, src.metadata, data_start_mod=align))
        for start, length in runs:
            _copy_range(fin, fout, start, length)
    return [t.name for t in kept]


def write_shard(dst: Path, tensors: list[tuple[str, str, tuple[int, ...], bytes]]) -> None:
    """Write a small shard from in-memory tensors ``(name, dtype, shape, raw bytes)``."""
    entries = [(name, dtype, shape, len(raw)) for name, dtype, shape, raw in tensors]
    with dst.open("xb") as fout:
        fout.write(_header_bytes(entries, {"format": "pt"}))
        for *_, raw in tensors:
            fout.write(raw)


def _copy_range(fin, fout, start: int, length: int) -> None:
    """Copy ``length`` bytes at ``start`` of ``fin`` to the end of ``fout``, in the kernel where
    it can (copy_file_range: no user-space buffer), else through a bounded buffer."""
    fout.flush()
    offset, remaining = start, length
    try:
        while remaining:
            done = os.copy_file_range(fin.fileno(), fout.fileno(), remaining, offset)
            if done == 0:
                raise BadInput(f"{fin.name} is truncated: re-download the checkpoint")
            offset += done
            remaining -= done
        fout.seek(0, os.SEEK_END)
        return
    except OSError as exc:  # old kernels, some filesystems: fall back to read/write
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    fin.seek(offset)
    fout.seek(0, os.SEEK_END)
    while remaining:
        chunk = fin.read(min(_COPY_CHUNK, remaining))
        if not chunk:
            raise BadInput(f"{fin.name} is truncated: re-download the checkpoint")
        fout.write(chunk)
        remaining -= len(chunk)


def write_index(dst: Path, weight_map: dict[str, str], total_size: int) -> None:
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    dst.write_text(json.dumps(index, indent=2) + "\n")


_FICLONE = 0x40049409  # ioctl request for a copy-on-write clone (btrfs, xfs, bcachefs)


def place_file(src: Path, dst: Path, *, force_copy: bool = False) -> str:
    """Put ``src`` at ``dst`` as cheaply as the filesystem allows; returns how.

    Order: reflink (copy-on-write clone), hard link, copy. A hard link shares the inode with the
    source, so nothing in this package ever writes to a placed file afterwards, and ``dst`` must
    not exist: every open here is exclusive (``"xb"``), so a name placed twice fails instead of
    writing through a hard link into the source (or a Hub cache blob).
    """
    src = src.resolve()  # Hub caches hold symlinks to blobs: place the blob itself
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "refusing to overwrite", str(dst))
    if force_copy:
        copy_new_file(src, dst)
        return "copied"
    if _reflink(src, dst):
        return "reflinked"
    try:
        os.link(src, dst)
        return "hard-linked"
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        copy_new_file(src, dst)
        return "copied"


def copy_new_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, which must not exist yet (never writes through a link)."""
    with src.open("rb") as fin, dst.open("xb") as fout:
        _copy_range(fin, fout, 0, os.fstat(fin.fileno()).st_size)


_NO_REFLINK = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM)


def _reflink(src: Path, dst: Path) -> bool:
    try:
        with src.open("rb") as fin, dst.open("xb") as fout:
            try:
                fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            except OSError:
                fout.close()
                dst.unlink()  # created by this call's exclusive open, never a pre-existing file
                raise
        return True
    except OSError as exc:
        if exc.errno not in _NO_REFLINK:
            raise
        return False
