"""The scoring methods, defined once: how a reranker's classifier-token logits become its score.

A method says how many classifier tokens it takes, how many labels the converted classifier has,
which score-head rows it makes of the tokens' head rows (the converter), which score logits it
makes of the tokens' logits (the parity check's reference), and the labels the converted config
names. Everything else (recipes, the CLI's ``--method`` choice, the fleet file, provenance, the
card) looks the method up here instead of comparing its name.

- ``from_2_way_softmax`` on ``[false, true]``: one label, ``W[true] - W[false]``.
  ``softmax([l_false, l_true])[true] = sigmoid(l_true - l_false) = sigmoid((W_t - W_f) h)``, so
  the served sigmoid of the one score logit is the family's softmax probability of the true token.
- ``no_post_processing``: one label per token, each the token's own head row (its logit).

A recipe's constant ``scale`` (e.g. zerank-2's ``l(Yes) / 5``) multiplies every score row and
logit after the method; it is applied here too, so the converter and the check agree by
construction. Nothing here imports torch: :meth:`ScoringMethod.score_logits` takes the torch
tensor it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

Method = Literal["from_2_way_softmax", "no_post_processing"]
FROM_2_WAY_SOFTMAX: Final = "from_2_way_softmax"
NO_POST_PROCESSING: Final = "no_post_processing"

T = TypeVar("T")


@dataclass(frozen=True)
class ScoringMethod:
    """One row of the method table."""

    name: Method
    # True: two tokens [false, true] make one score, l(true) - l(false); False: every token's
    # logit is a label of its own.
    two_way: bool

    @property
    def token_rule(self) -> str:
        """The number of tokens the method takes, in words (for error messages)."""
        return "exactly 2 tokens [false, true]" if self.two_way else "one or more tokens"

    def fits(self, token_count: int) -> bool:
        """Whether the method takes ``token_count`` classifier tokens (an empty list is refused
        where the tokens are read)."""
        return token_count == 2 if self.two_way else True

    def num_labels(self, token_count: int) -> int:
        """The converted classifier's number of labels for ``token_count`` tokens."""
        return 1 if self.two_way else token_count

    def labels(self, texts: Sequence[str]) -> list[str]:
        """The converted config's label names, from the tokens' texts."""
        return [f"{texts[1]}-vs-{texts[0]}"] if self.two_way else list(texts)

    def true_false(self, tokens: Sequence[T]) -> tuple[T, T] | None:
        """The (true, false) tokens of a two-way method's difference; None otherwise."""
        return (tokens[1], tokens[0]) if self.two_way else None

    def head_rows(self, rows: list[list[float]], scale: float = 1.0) -> list[list[float]]:
        """The score-head rows (float64 lists) made of the tokens' head rows, in token order.

        The difference of two float32-exact values is exact in double precision and the scale
        is one double multiplication, so rounding the result once to the storage dtype gives the
        correctly rounded ``scale * (W_t - W_f)``.
        """
        if self.two_way:
            rows = [[t - f for f, t in zip(rows[0], rows[1], strict=True)]]
        if scale != 1.0:
            rows = [[v * scale for v in row] for row in rows]
        return rows

    def score_logits(self, picked: Any, scale: float = 1.0) -> Any:
        """The family's score logit(s) from its tokens' logits (an ``[n, tokens]`` array)."""
        if self.two_way:
            picked = (picked[:, 1] - picked[:, 0]).unsqueeze(-1)
        if scale != 1.0:
            picked = picked * scale
        return picked


METHOD_TABLE: Final[dict[Method, ScoringMethod]] = {
    FROM_2_WAY_SOFTMAX: ScoringMethod(FROM_2_WAY_SOFTMAX, two_way=True),
    NO_POST_PROCESSING: ScoringMethod(NO_POST_PROCESSING, two_way=False),
}
METHODS: Final[tuple[Method, ...]] = tuple(METHOD_TABLE)


def known_method(name: object) -> ScoringMethod | None:
    """The table row of ``name``, or None for anything else (a recorded or user value)."""
    return next((row for method, row in METHOD_TABLE.items() if method == name), None)


def scoring_method(name: str) -> ScoringMethod:
    """The table row of ``name``, which the caller has checked is one of :data:`METHODS`."""
    row = known_method(name)
    if row is None:  # a bug: method names are checked where they are read
        raise ValueError(f"unknown scoring method {name!r}")
    return row


def two_way_methods() -> tuple[Method, ...]:
    """The methods that make one score of two tokens (for error messages)."""
    return tuple(m for m, row in METHOD_TABLE.items() if row.two_way)
