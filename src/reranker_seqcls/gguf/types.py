"""The GGUF types ``--gguf`` offers and their parity tolerances.

Measured (``tests/test_gguf.py``, README "llama.cpp") on the built-in pairs with tiny random Qwen3
rerankers (hidden 64, two layers) on the real Qwen vocabulary, served by llama-server with its
defaults (flash attention, f16 KV cache), max |Δ probability| against the original:

* ``f32``: 3.8e-4 (qwen3-reranker). With ``-fa off`` and an f32 KV cache it is 1e-6: what is left
  is llama.cpp's attention path, not the GGUF. Tolerance 1e-3.
* ``f16``: 1.6e-3 to 6.0e-3 over the four families (weights rounded to 11 bits; a 64-wide random
  model averages little of it away), Spearman 1.0, top-1 100%. Tolerance 1e-2 with Spearman
  >= 0.99 and top-1 100%: tight against what a wrong head or prompt does (tenths, or a constant).
* ``q8_0``: 2.2e-2 to 5.6e-2, Spearman >= 0.993, top-1 >= 89% (near-ties swap). Judged on
  ranking (Spearman >= 0.95, top-1 >= 75%) plus |Δp| <= 0.1, which still catches a wrong head
  (1.0 everywhere, or 1 - p) or prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

from reranker_seqcls.errors import BadInput


@dataclass(frozen=True)
class GgufTolerance:
    max_abs_prob: float  # largest |Δ probability| against the original
    min_spearman: float  # ranking agreement over all pairs
    min_top1: float  # fraction of query groups whose best document agrees


@dataclass(frozen=True)
class GgufType:
    name: str  # as given to --gguf and written in file names
    ggml_type: str  # gguf.GGMLQuantizationType member name
    tolerance: GgufTolerance


GGUF_TYPES: dict[str, GgufType] = {
    "f32": GgufType("f32", "F32", GgufTolerance(1e-3, 0.999, 1.0)),
    "f16": GgufType("f16", "F16", GgufTolerance(1e-2, 0.99, 1.0)),
    "q8_0": GgufType("q8_0", "Q8_0", GgufTolerance(1e-1, 0.95, 0.75)),
}


def parse_gguf_types(value: str | None) -> list[GgufType]:
    """``"f16,q8_0"`` → the types in the order given (duplicates dropped); exit 2 on an unknown
    one, before anything is downloaded."""
    if value is None:
        return []
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    if not names:
        raise BadInput(f"--gguf takes types separated by commas, e.g. f16,q8_0 (of {_known()})")
    unknown = [n for n in names if n not in GGUF_TYPES]
    if unknown:
        raise BadInput(f"--gguf: unknown type {unknown[0]!r}: give one or more of {_known()}")
    return [GGUF_TYPES[n] for n in dict.fromkeys(names)]


def _known() -> str:
    return ", ".join(GGUF_TYPES)
