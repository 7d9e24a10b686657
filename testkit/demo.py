"""``make demo``: build a tiny Qwen3-style reranker locally, convert it, show before/after scores.

Needs no network: the model is random and tiny, built with the same factory the tests use.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

DEMO_PAIRS = (0, 1, 4, 6)  # of the check's built-in pairs: relevant and not, three languages


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    root = Path(args[0] if args else "demo-output")
    source = root / "Qwen3-Reranker-tiny"
    output = root / "Qwen3-Reranker-tiny-seq-cls"

    from reranker_seqcls.check.pairs import BUILTIN_PAIRS
    from reranker_seqcls.check.scoring import consumer_scores, cross_encoder, reference_scores
    from reranker_seqcls.convert.converter import convert
    from reranker_seqcls.recipes.presets import PRESETS
    from testkit.tiny import build_model

    if source.exists():
        shutil.rmtree(source)
    print(f"1. building a tiny random Qwen3 reranker in {source}")
    build_model("qwen3", source, tied=True)

    print(f"2. reranker-seqcls convert {source} {output}")
    recipe = PRESETS["qwen3-reranker"]
    result = convert(source, output, recipe, force=True, log=lambda m: print(f"   {m}"))

    print("3. scores: original causal LM (official prompt, softmax over no/yes) vs the converted")
    print("   checkpoint through sentence-transformers CrossEncoder(dir).predict on raw text\n")
    pairs = [BUILTIN_PAIRS[i] for i in DEMO_PAIRS]
    token_ids = [t.id for t in result.plan.tokens]
    _, reference = reference_scores(source, recipe, pairs, token_ids, "float32")
    converted = consumer_scores(cross_encoder(output, "float32"), pairs)
    print(f"   {'query':<32} {'document':<36} {'original':>9} {'converted':>9}")
    worst = 0.0
    for pair, ref, conv in zip(pairs, reference, converted, strict=True):
        before = 1 / (1 + math.exp(-ref[0]))
        worst = max(worst, abs(before - conv[0]))
        print(f"   {pair.query[:32]:<32} {pair.document[:36]:<36} {before:>9.6f} {conv[0]:>9.6f}")
    print(f"\n   max |difference| = {worst:.2e}; converted checkpoint: {output}")
    print("   (random weights: the scores mean nothing, only their equality does)")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
