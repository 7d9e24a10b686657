"""How much of the parity check runs on the real weights: the quick check and the full one.

One decision, made here for ``check``, the whole-snapshot ``run`` and the streamed ``run``.

The **quick check** (the default) scores a few short pairs on the real model and every pair on
the structural twin (:mod:`.twin`). What the 27-pair real-model pass proved beyond that is
proven elsewhere, at no cost:

- the backbone is byte-identical to the source's (sha256 per tensor, :mod:`.streamed`), so the
  reference and the converted head see the same hidden states;
- the head is proven structurally (``score.weight`` against the source head's rows,
  :mod:`.head`) and numerically on the real hidden states of the quick pairs, whose real
  magnitude bounds what the head's rounding can move (the storage tolerance);
- everything that depends on text, not on the weights (prompt ids, template renders, BOS, pad id
  and pooling, CJK, emoji, empty and whitespace documents, over-length pairs, loading,
  sentence-transformers, vLLM) is proven on the twin over every pair.

The **full check** (``--full-check``) scores every pair on the real model as well: a layerwise
pass whose cost grows with the pairs' tokens (27 pairs: about 8 minutes on an 8B on two cores).

A model whose whole check costs seconds (its backbone under :data:`CHEAP_BACKBONE_PARAMS`
parameters) and fits ``--check-memory`` gets the whole check on the real model either way: the
twin would cost as much and prove less.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.check.twin import consumer_plan, float32_load_bytes

# The built-in group the quick check scores on the real model: plain short English, a relevant,
# an unrelated and a terse document, so rank and top-1 mean something (the tokenization-sensitive
# groups run on the twin). Each Qwen3 prompt is ~130 tokens, most of them the template: on two
# cores the real pass costs ~0.02 s per position on the 0.6B and ~0.08 s on the 8B (measured in
# bench/RUN_RESULTS.md), so three pairs, not the 27 (6,487 padded tokens); their shared 99-token
# prefix is computed once (:mod:`.packing`): 175 positions for the three.
QUICK_GROUPS = ("capital-en",)
QUICK_PER_GROUP = 3
QUICK_PAIRS = len(QUICK_GROUPS) * QUICK_PER_GROUP
# Backbone parameters (embeddings excluded: a lookup costs nothing) under which the whole check
# on the real model costs a few seconds: the tiny models of tests and demos.
CHEAP_BACKBONE_PARAMS = 20_000_000


def backbone_params(config: dict[str, Any]) -> int:
    """Parameters a forward pass multiplies (the embedding and head excluded)."""
    return float32_load_bytes({**config, "vocab_size": 0}) // 4


def whole_on_real(config: dict[str, Any], check_memory: int, *, full: bool) -> bool:
    """Whether the whole check (every pair, every consumer) runs on the real model: it must fit
    ``check_memory``, and be cheap unless ``full`` asks for it at any cost."""
    if consumer_plan(config, check_memory).on != "real":
        return False
    return full or backbone_params(config) <= CHEAP_BACKBONE_PARAMS


@dataclass(frozen=True)
class RealPairs:
    """The pairs the real model scores in a layerwise pass: ``indices`` into all the pairs."""

    indices: list[int]
    full: bool

    def of(self, pairs: list[Pair]) -> list[Pair]:
        return [pairs[i] for i in self.indices]


def real_pairs(pairs: list[Pair], *, full: bool) -> RealPairs:
    """Every pair when ``full``; else the quick pairs: the built-in :data:`QUICK_GROUPS` when
    the pairs are the built-in set, else the :data:`QUICK_PAIRS` shortest of the given pairs
    (by characters), in their order."""
    if full or len(pairs) <= QUICK_PAIRS:
        return RealPairs(list(range(len(pairs))), full=True)
    chosen: list[int] = []
    for group in QUICK_GROUPS:
        chosen += [i for i, p in enumerate(pairs) if p.group == group][:QUICK_PER_GROUP]
    if len(chosen) < QUICK_PAIRS:
        by_length = sorted(
            range(len(pairs)),
            key=lambda i: len(pairs[i].query) + len(pairs[i].document)
            + len(pairs[i].instruction or ""),
        )  # fmt: skip
        chosen = by_length[:QUICK_PAIRS]
    return RealPairs(sorted(chosen), full=False)


@dataclass(frozen=True)
class RealPass:
    """What the real model scored in a layerwise pass (:mod:`.scope`): ``pairs`` of
    ``of_pairs`` (the rest on the twin only), in ``groups`` query groups, ``tokens`` prompt
    tokens in all; ``full`` when every pair was (``--full-check``, or too few to choose from)."""

    pairs: int
    groups: int
    tokens: int
    of_pairs: int
    full: bool

    def describe(self) -> str:
        which = (
            "every pair"
            if self.full
            else f"{self.pairs} short pairs of {self.of_pairs} (quick check; --full-check "
            "scores every pair)"
        )
        return (
            f"real model scored {which}: {self.pairs} pairs in {_groups(self.groups)}, "
            f"{self.tokens} tokens; the twin scored all {self.of_pairs}"
        )


def real_pass_markdown(real: RealPass) -> str:
    """The card's sentence on what ran where (the numbers are ints: no escaping needed)."""
    if real.full:
        return (
            f"Real model: all {real.pairs} pairs ({_groups(real.groups)}, {real.tokens} "
            "prompt tokens) scored layer by layer on the real weights."
        )
    return (
        f"Real model: {real.pairs} short pairs of the {real.of_pairs} ({_groups(real.groups)}, "
        f"{real.tokens} prompt tokens) scored layer by layer on the real weights: the "
        f"`converted (layerwise)` row. All {real.of_pairs} pairs, the tokenization-sensitive "
        "ones (CJK, "
        "emoji, empty and whitespace documents) included, ran through every consumer on the "
        "structural twin: the `twin:` rows. The backbone is the source's byte for byte, so "
        "the head is all that differs on the real model. `--full-check` scores every pair on "
        "the real model."
    )


def real_pass_from_json(data: Any) -> RealPass | None:
    if data is None:
        return None
    return RealPass(
        pairs=int(data["pairs"]),
        groups=int(data["groups"]),
        tokens=int(data["tokens"]),
        of_pairs=int(data["of_pairs"]),
        full=data["full"] is True,
    )


def _groups(count: int) -> str:
    return f"{count} query group{'' if count == 1 else 's'}"
