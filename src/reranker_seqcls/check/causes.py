"""What a failing path most likely means, as the one-line reason the user reads.

:func:`converted_cause` explains converted scores that differ from the original (a pad token
that ends the prompts, swapped tokens, a scale, left padding); :func:`template_mismatch` explains
a consumer prompt that is not the family's. The score head's own causes are in
:mod:`reranker_seqcls.check.head`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reranker_seqcls.check.metrics import Scores, constant_ratio, primary

if TYPE_CHECKING:
    from reranker_seqcls.check.prompt_gap import PromptComparison
    from reranker_seqcls.check.scoring import ConsumerPrompts
    from reranker_seqcls.recipes.prompt_pieces import OfficialPrompt


def converted_cause(
    pad_id: int | None,
    prompts: list[list[int]],
    reference: Scores,
    batched: Scores,
    single: Scores,
    tolerance: float,
) -> str | None:
    """Why the converted classifier (``pad_id`` its config's ``pad_token_id``) scores
    ``prompts`` unlike ``reference``, when the scores tell; None when they do not."""
    ending_in_pad = [p for p in prompts if p and p[-1] == pad_id]
    if ending_in_pad:
        return (
            f"pad_token_id {pad_id} in config.json is the last token of {len(ending_in_pad)} "
            "prompt(s), so the classifier pools an earlier token: set pad_token_id to the "
            "tokenizer's pad token"
        )
    ref = primary(reference)
    one = primary(single)
    loose = 1e-2 + 0.02 * max(map(abs, ref))
    if max(abs(r + s) for r, s in zip(ref, one, strict=True)) <= loose:
        return (
            "converted scores are the negation of the original's: the true/false classifier "
            "tokens are swapped; give --tokens as [false, true]"
        )
    ratio = constant_ratio([one], [ref])
    if ratio is not None and abs(ratio - 1.0) > 0.05:
        return (
            f"converted scores are the original's times {ratio:.4g}: the score scale is missing or "
            "wrong; convert again with the family's preset or the right --scale"
        )
    single_error = max(abs(r - s) for r, s in zip(ref, one, strict=True))
    batched_error = max(abs(r - b) for r, b in zip(ref, primary(batched), strict=True))
    # Padding is to blame only when batching is what breaks: one by one close, batched not.
    if single_error <= max(tolerance, loose) and batched_error > max(tolerance, 2 * single_error):
        return (
            f"scores match one by one but not batched with left padding: pad_token_id {pad_id} "
            "in config.json is wrong (the classifier pools the rightmost non-pad token)"
        )
    return None


def template_mismatch(
    comparisons: list[PromptComparison | None] | None,
    rendered: ConsumerPrompts | None,
    official: list[OfficialPrompt],
    *,
    in_place: bool,
) -> str | None:
    """Why the prompt sentence-transformers builds is not the family's, if it is not.

    A tokenization gap (same text, merged across a piece boundary) is not a mismatch. The advice
    never asks to restore a template that is already in place."""
    if comparisons is None or rendered is None:
        return (
            "sentence-transformers finds no chat template in the converted directory, so it "
            "scores raw text: convert with a preset or --template"
        )
    fix = (
        "the recipe's own template renders it, so this is a bug in the recipe: report it"
        if in_place
        else "convert again to restore the recipe's template"
    )
    saved = "the recipe's template" if in_place else "the chat template saved with the checkpoint"
    for comparison, ids, prompt in zip(comparisons, rendered.ids, official, strict=True):
        if comparison is None:
            return f"{saved} cannot render a query/document pair: {fix}"
        if comparison.kind in ("same", "merged"):
            continue
        reference_ids = prompt.ids
        if reference_ids and reference_ids[1:] == ids:
            return (
                "the prompt sentence-transformers builds lacks the BOS token the family starts "
                f"with (id {reference_ids[0]}): the template or sentence_bert_config.json drops it"
            )
        if comparison.kind == "text":
            return (
                f"{saved} renders a different prompt than the family's: the text differs at "
                f"character {comparison.offset} of {len(prompt.text)} (family: "
                f"'{comparison.family}', template: '{comparison.consumer}'): {fix}"
            )
        return (
            "the converted directory's tokenizer splits the family's prompt text differently "
            f"from the source's, away from any piece boundary, at character {comparison.offset} "
            f"('{comparison.consumer}'): copy the source's tokenizer files into it"
        )
    return None
