"""Sizes the user writes (``--check-memory``, ``--max-disk``) and sizes the tool prints."""

from __future__ import annotations

import re
from fractions import Fraction

from reranker_seqcls.errors import BadInput

# No disk or memory is larger (a 400-digit size overflowed float() and was an internal error).
MAX_SIZE = 2**60

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]{1,30}(?:\.[0-9]{1,30})?)\s*([A-Za-z]*)\s*")


def parse_size(text: str, option: str) -> int:
    """``1.5GB``, ``800MB``, ``512MiB`` or a number of bytes; a bad one is a one-line error
    naming ``option``."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise BadInput(f"{option} {shown!r} is not a size: write it like 1.5GB or 800MB")
    size = int(Fraction(match.group(1)) * _UNITS[unit])
    if size > MAX_SIZE:
        raise BadInput(
            f"{option} {match.group(1)}{unit} is larger than any disk or memory: write "
            "it like 1.5GB or 800MB"
        )
    return size


def human_size(nbytes: int | float) -> str:
    """``12.34 GB``, ``83.1 MB``, ``512 kB``."""
    if nbytes >= 1e8:
        return f"{nbytes / 1e9:.2f} GB"
    if nbytes >= 1e6:
        return f"{nbytes / 1e6:.1f} MB"
    return f"{nbytes / 1e3:.0f} kB"
