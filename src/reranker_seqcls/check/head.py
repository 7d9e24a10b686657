"""The structural half of the check: is the converted ``score.weight`` the recipe's rows of the
source head, exactly (up to its storage dtype's rounding)?

Independent of any compute-dtype noise, so it carries the exactness where bfloat16 scores are
loose. A mismatch is explained when it can be: swapped tokens, a missing or wrong scale,
another token (a different case or spacing). The rounding it measures widens the numeric
tolerance (:func:`reranker_seqcls.check.verdict.with_storage`). Reads safetensors rows and the
tokenizer files without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.metrics import Scores, constant_ratio
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.safetensors_io.checkpoint import Checkpoint

# Relative rounding of one value stored in each dtype (half an ulp).
_STORAGE_EPS = {"F32": 2.0**-24, "F64": 2.0**-53, "BF16": 2.0**-9, "F16": 2.0**-11}
Matches = Callable[[Scores], bool]  # whether candidate rows equal the stored ones


@dataclass(frozen=True)
class HeadCheck:
    problem: str | None  # why score.weight is not the recipe's rows of the source head
    dtype: str = "F32"  # score.weight's storage dtype
    rounding: tuple[tuple[float, ...], ...] = ()  # stored - exact score.weight, per row

    def logit_shift(self, hidden: list[list[float]]) -> float:
        """How far the storage rounding alone moves a logit on these pooled hidden states:
        max over prompts and rows of |δW·h|. The exact score would be W·h; the stored head
        gives (W + δW)·h."""
        return max(
            (abs(sum(d * x for d, x in zip(row, h, strict=True))) for h in hidden
             for row in self.rounding),
            default=0.0,
        )  # fmt: skip


@dataclass(frozen=True)
class _HeadComparison:
    """The converted score.weight beside the source head it should be made of."""

    source: Path
    src: Checkpoint  # the source's safetensors
    head: str  # the source tensor whose rows the recipe takes
    token_ids: list[int]
    method: str
    scale: float  # the recipe's scale times the source's own logit factor
    factor: float  # the source's own logit factor alone
    stored: Scores  # the converted score.weight
    dtype: str  # its storage dtype

    def expected(self, token_ids: list[int] | None = None, scale: float | None = None) -> Scores:
        from reranker_seqcls.convert.head import compute_score

        ids = self.token_ids if token_ids is None else token_ids
        rows, _ = compute_score(
            self.src, self.head, ids, self.method, self.scale if scale is None else scale
        )
        return rows

    def matches(self, candidate: Scores) -> bool:
        """``candidate`` equals the stored rows up to twice the storage rounding."""
        eps = 2 * _STORAGE_EPS.get(self.dtype, 2.0**-9)
        pairs = [(s, e) for srow, erow in zip(self.stored, candidate, strict=True)
                 for s, e in zip(srow, erow, strict=True)]  # fmt: skip
        bound = eps * (max(abs(e) for _, e in pairs) or 1.0)
        return max(abs(s - e) for s, e in pairs) <= bound


def head_check(
    source: Path,
    converted: Path,
    token_ids: list[int],
    method: str,
    config: dict[str, Any],
    recipe: Recipe | None = None,
    *,
    checkpoints: tuple[Any, Any] | None = None,
) -> HeadCheck:
    """Compare the converted score.weight with the recipe's rows of the source head, times the
    recipe's scale and the source's own logit scaling; measure its storage rounding.

    ``checkpoints`` replaces the (source, converted) checkpoints read from the directories by
    objects with the same reading methods (the streamed check's rows kept from shards gone)."""
    from reranker_seqcls.convert.head import SCORE_NAME, compute_score, head_tensor
    from reranker_seqcls.convert.rules import logit_factor
    from reranker_seqcls.errors import SeqClsError
    from reranker_seqcls.safetensors_io.checkpoint import Checkpoint

    try:
        src, dst = checkpoints or (Checkpoint(source), Checkpoint(converted))
    except SeqClsError:
        return HeadCheck(None)  # a pickle-only source: the scores still judge it
    if SCORE_NAME not in dst:
        return HeadCheck("the converted checkpoint has no score.weight: convert again")
    factor = logit_factor(config)
    scale = (recipe.scale if recipe is not None else 1.0) * factor
    head, _ = head_tensor(src, config, set(src.location))
    expected, _ = compute_score(src, head, token_ids, method, scale)
    info = dst.tensor(SCORE_NAME)
    shape = (len(expected), len(expected[0]))
    if tuple(info.shape) != shape:
        return HeadCheck(
            f"score.weight has shape {list(info.shape)}, the recipe gives {list(shape)}: "
            "convert again with the right --method/--tokens",
            info.dtype,
        )
    stored = dst.read_rows(SCORE_NAME, range(shape[0]))
    compared = _HeadComparison(
        source, src, head, token_ids, method, scale, factor, stored, info.dtype
    )
    if compared.matches(expected):
        rounding = tuple(
            tuple(s - e for s, e in zip(srow, erow, strict=True))
            for srow, erow in zip(stored, expected, strict=True)
        )
        return HeadCheck(None, info.dtype, rounding)
    return HeadCheck(_mismatch(compared, expected, recipe), info.dtype)


def _mismatch(compared: _HeadComparison, expected: Scores, recipe: Recipe | None) -> str:
    """Why the stored head is not ``expected``: the first explanation that fits."""
    if compared.matches([[-v for v in row] for row in expected]):
        return (
            "score.weight is the negation of W[true] - W[false]: the true/false classifier "
            "tokens are swapped; give --tokens as [false, true]"
        )
    how = f"--preset {recipe.name}" if recipe is not None and recipe.is_preset else "--scale"
    scale, factor = compared.scale, compared.factor
    if scale != factor and compared.matches(compared.expected(scale=factor)):
        official = recipe.score_formula if recipe is not None else ""
        formula = f" (official score {official})" if official else ""
        return (
            f"score.weight lacks the recipe's scale {scale / factor:g}{formula}: the scale is "
            f"missing; convert again with {how}"
        )
    explained = _other_token(compared)
    if explained is not None:
        return explained
    ratio = constant_ratio(compared.stored, expected)
    if ratio is not None:
        return (
            f"score.weight is the recipe's head times {ratio:.4g}: the scale is wrong (the "
            f"recipe's is {scale:g}); convert again with {how}"
        )
    worst = max(abs(s - e) for srow, erow in zip(compared.stored, expected, strict=True)
                for s, e in zip(srow, erow, strict=True))  # fmt: skip
    return (
        f"score.weight differs from the source head rows of the recipe's tokens (ids "
        f"{compared.token_ids}) by up to {worst:.3g}: convert again "
        "with the right --preset or --tokens/--method"
    )


def _other_token(compared: _HeadComparison) -> str | None:
    """Which other vocabulary entry the stored head belongs to, trying case and space variants
    of the recipe's tokens (with and without the scale)."""
    from reranker_seqcls.convert.tokens import TokenizerFiles
    from reranker_seqcls.errors import SeqClsError

    try:
        vocab = TokenizerFiles(compared.source)
    except SeqClsError:
        return None
    rows = compared.src.tensor(compared.head).shape[0]
    token_ids = compared.token_ids
    for position, token_id, piece, variant, other in _token_variants(vocab, token_ids):
        if other >= rows:
            continue
        ids = [*token_ids[:position], other, *token_ids[position + 1 :]]
        for factor in {compared.scale, 1.0}:
            if compared.matches(compared.expected(ids, factor)):
                case = (
                    ": the token's case differs"
                    if variant.lower() == piece.lower()
                    else ": a different token"
                )
                unscaled = "" if factor == compared.scale else ", and the scale is missing too"
                return (
                    f"score.weight holds the row of {variant!r} (id {other}) where the recipe "
                    f"scores {piece!r} (id {token_id}){case}{unscaled}; convert again with "
                    "the family's preset or the exact token"
                )
    return None


def _token_variants(vocab: Any, token_ids: list[int]) -> Iterator[tuple[int, int, str, str, int]]:
    """(position, token id, its piece, variant, variant's id) for the case and space variants
    of the recipe's tokens that are vocabulary entries of their own."""
    for position, token_id in enumerate(token_ids):
        piece = vocab.piece(token_id) or ""
        bare = piece.lstrip("Ġ▁ ")
        variants = {bare.lower(), bare.upper(), bare.capitalize(), bare.swapcase(), bare,
                    f"Ġ{bare}", f"▁{bare}", f" {bare}"} - {piece}  # fmt: skip
        for variant in sorted(variants):
            other = vocab.entry_id(variant)
            if other is not None and other != token_id:
                yield position, token_id, piece, variant, other


def head_rows_needed(source: Path, token_ids: list[int]) -> list[int]:
    """The head rows :func:`head_check` may read: the recipe's tokens and their variants."""
    from reranker_seqcls.convert.tokens import TokenizerFiles
    from reranker_seqcls.errors import SeqClsError

    try:
        vocab = TokenizerFiles(source)
    except SeqClsError:
        return sorted(set(token_ids))
    return sorted({*token_ids, *(v[-1] for v in _token_variants(vocab, token_ids))})
