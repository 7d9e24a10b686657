"""The float codec: raw little-endian tensor bytes ↔ Python floats, without numpy or torch."""

from __future__ import annotations

import math
import struct
import sys
from array import array

from reranker_seqcls.errors import BadInput

ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
# The float dtypes as torch names them (``getattr(torch, name)``), for the readers that convert.
TORCH_DTYPE_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


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


def _f32_from_bits(bits: array[int]) -> list[float]:
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
    elif dtype == "F32":
        out = array("f", doubles)  # round-to-nearest-even from double
    elif dtype == "BF16":
        return _bf16_bytes(doubles)
    else:
        raise BadInput(f"cannot store the score in {dtype}")
    if sys.byteorder != "little":  # pragma: no cover
        out.byteswap()
    return out.tobytes()


def _bf16_bytes(doubles: list[float]) -> bytes:
    """Doubles → bfloat16, rounded once: through float32 with round-to-odd, then to nearest."""
    rounded32 = array("f", doubles)  # round-to-nearest-even from double
    bits = array("I", rounded32.tobytes())
    for i, (exact, rounded) in enumerate(zip(doubles, rounded32, strict=True)):
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
