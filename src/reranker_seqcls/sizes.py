"""Sizes the user writes (``--check-memory``, ``--max-disk``) and sizes the tool prints."""

from __future__ import annotations

import re

from reranker_seqcls.errors import BadInput

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
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*")


def parse_size(text: str, option: str) -> int:
    """``1.5GB``, ``800MB``, ``512MiB`` or a number of bytes; a bad one is a one-line error
    naming ``option``."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise BadInput(f"{option} {text!r} is not a size: write it like 1.5GB or 800MB")
    return int(float(match.group(1)) * _UNITS[unit])


def human_size(nbytes: int | float) -> str:
    """``12.34 GB``, ``83.1 MB``, ``512 kB``."""
    if nbytes >= 1e8:
        return f"{nbytes / 1e9:.2f} GB"
    if nbytes >= 1e6:
        return f"{nbytes / 1e6:.1f} MB"
    return f"{nbytes / 1e3:.0f} kB"
