"""What the check reads of a GGUF: its scalar and string fields, its tensor table, and one
small tensor (``cls_out``), read from the header without materialising the vocabulary.

``gguf.GGUFReader`` (the llama.cpp project's reader) builds a numpy view per element of every
array field: on the Qwen vocabulary (151k tokens, 151k merges) that is about 10 s of CPU per
file, whatever the model's size, and the check used to pay it several times per file. This
reader walks the same format (GGUF v2/v3, little-endian) and skips the arrays it does not keep
(one length read per string), so a header costs well under a second. The file is untrusted: a
truncated or malformed header is one :class:`~reranker_seqcls.errors.BadInput` line.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput

if TYPE_CHECKING:
    import numpy as np

_MAGIC = b"GGUF"
_STRING, _ARRAY = 8, 9
# value type -> struct format (GGUF's GGUFValueType numbering)
_SCALARS = {
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
    7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}  # fmt: skip
_MAX_STRING = 64 * 1024 * 1024  # a chat template is kilobytes; a key or name far less
_MAX_ITEMS = 1 << 32
_KEPT_ARRAY_ITEMS = 1024  # longer arrays (the vocabulary) are skipped, their length kept


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # GGUF's order: ne0 (the row length) first
    ggml_type: int
    offset: int  # from the start of the data section


@dataclass(frozen=True)
class GgufHeader:
    path: Path
    fields: dict[str, Any]  # scalars, strings and short arrays; a skipped array is its length
    tensors: dict[str, TensorInfo]
    data_start: int

    def tensor(self, name: str) -> np.ndarray:
        """A tensor dequantized to float32, rows of ``shape[0]`` values (a small one: it is
        read whole)."""
        import gguf
        import numpy as np

        info = self.tensors[name]
        try:
            qtype = gguf.GGMLQuantizationType(info.ggml_type)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError) as exc:
            raise BadInput(f"{self.path.name}: tensor {name} has type {info.ggml_type}") from exc
        count = 1
        for n in info.shape:
            count *= n
        row = info.shape[0] if info.shape else 1
        if count == 0 or count % block or row % block:
            raise BadInput(f"{self.path.name}: tensor {name} does not fill whole blocks")
        nbytes = count // block * type_size
        start = self.data_start + info.offset
        if start + nbytes > self.path.stat().st_size:
            raise BadInput(f"{self.path.name}: tensor {name} runs past the end of the file")
        with self.path.open("rb") as handle:
            handle.seek(start)
            raw = handle.read(nbytes)
        if len(raw) != nbytes:
            raise BadInput(f"{self.path.name}: tensor {name} runs past the end of the file")
        data = np.frombuffer(raw, dtype=np.uint8).reshape(-1, row // block * type_size)
        try:
            values = gguf.quants.dequantize(data, qtype)
        except NotImplementedError as exc:
            raise BadInput(f"{self.path.name}: tensor {name} has type {qtype.name}") from exc
        return np.asarray(values, dtype=np.float32).reshape(-1, row)


def read_header(path: Path) -> GgufHeader:
    """The fields and tensor table of the GGUF at ``path``; exit 2 for one that is not."""
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return _Parser(path, m).header()
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise BadInput(f"{path.name} is not a readable GGUF file ({exc})") from exc


class _Parser:
    def __init__(self, path: Path, data: mmap.mmap) -> None:
        self.path, self.data, self.pos = path, data, 0

    def _unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError("the header is truncated")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def _string(self) -> str:
        length = self._unpack("<Q")
        if length > _MAX_STRING or self.pos + length > len(self.data):
            raise ValueError(f"a string of {length} bytes")
        text = bytes(self.data[self.pos : self.pos + length]).decode("utf-8")
        self.pos += length
        return text

    def _skip_strings(self, count: int) -> None:
        if self.pos + 8 * count > len(self.data):  # each string has its 8-byte length at least
            raise ValueError(f"an array of {count} strings")
        for _ in range(count):
            length = self._unpack("<Q")
            if self.pos + length > len(self.data):
                raise ValueError("the header is truncated")
            self.pos += length

    def _value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self._string()
        if vtype == _ARRAY:
            itype, count = self._unpack("<I"), self._unpack("<Q")
            if count > _MAX_ITEMS or itype == _ARRAY:
                raise ValueError(f"an array of {count} items of type {itype}")
            if count > _KEPT_ARRAY_ITEMS:
                if itype == _STRING:
                    self._skip_strings(count)
                elif itype in _SCALARS:
                    self.pos += count * struct.calcsize(_SCALARS[itype])
                    if self.pos > len(self.data):
                        raise ValueError("the header is truncated")
                else:
                    raise ValueError(f"value type {itype}")
                return count
            return [self._value(itype) for _ in range(count)]
        if vtype not in _SCALARS:
            raise ValueError(f"value type {vtype}")
        return self._unpack(_SCALARS[vtype])

    def header(self) -> GgufHeader:
        if bytes(self.data[:4]) != _MAGIC:
            raise ValueError("no GGUF magic")
        self.pos = 4
        version = self._unpack("<I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version}")
        n_tensors, n_fields = self._unpack("<Q"), self._unpack("<Q")
        if n_tensors > 1 << 20 or n_fields > 1 << 20:
            raise ValueError(f"{n_tensors} tensors and {n_fields} fields")
        fields: dict[str, Any] = {}
        for _ in range(n_fields):
            key = self._string()
            fields[key] = self._value(self._unpack("<I"))
        tensors = {}
        for _ in range(n_tensors):
            name = self._string()
            dims = self._unpack("<I")
            if dims > 4:
                raise ValueError(f"tensor {name[:60]!r} has {dims} dimensions")
            shape = tuple(self._unpack("<Q") for _ in range(dims))
            tensors[name] = TensorInfo(name, shape, self._unpack("<I"), self._unpack("<Q"))
        alignment = fields.get("general.alignment", 32)
        if not isinstance(alignment, int) or alignment <= 0:
            raise ValueError(f"general.alignment {alignment!r}")
        start = -(-self.pos // alignment) * alignment
        return GgufHeader(self.path, fields, tensors, start)
