"""The GGUF types ``--gguf`` offers and their parity tolerances.

The tolerances were measured (``bench/GGUF_RESULTS.md``, ``tests/test_gguf.py``) on the built-in
pairs with tiny random Qwen3 rerankers on the real Qwen vocabulary, served by llama-server:

* ``f32``/``f16``: llama.cpp computes in float32 from the stored weights; the only differences
  to the original are the weight rounding (f16: 11-bit mantissa) and the order of float32 sums.
  Judged like the converted checkpoint itself: a tight bound on |Δ probability| and the same
  ranking.
* ``q8_0``: every weight matrix rounded to 8 bits per 32-value block (the head stays float32).
  Scores move by up to a few 1e-3 and near-ties may swap: judged on ranking agreement (Spearman
  and top-1 per query group) plus a bounded |Δ probability| that still catches a wrong head or
  prompt (those move scores by tenths).
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
