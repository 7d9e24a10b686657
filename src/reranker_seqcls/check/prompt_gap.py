"""How a consumer's one-string prompt relates to the family's piecewise prompt.

The families' own codes tokenize their prompt in pieces (:class:`prompts.OfficialPrompt`);
every template consumer (vLLM's score API, sentence-transformers, ``apply_chat_template``)
renders one string and tokenizes it whole. For one pair the two can relate in three ways:

- the same ids: exact;
- the same *text*, but a token of the one-string tokenization spans an official piece
  boundary (real Qwen BPE merges a query's final ``?`` with the ``"\\n"`` piece into ``?Ċ``):
  a *tokenization gap*, inherent to every one-string consumer, which the parity check measures
  and reports;
- a different text (a template bug), or ids that differ away from any piece boundary (the
  converted directory tokenizes differently): a failure, named with its character position.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from reranker_seqcls.recipes.prompt_pieces import OfficialPrompt

Kind = Literal["same", "merged", "text", "tokens"]
EXCERPT_CHARS = 24


@dataclass(frozen=True)
class PromptComparison:
    kind: Kind
    offset: int | None = None  # character offset of the first difference ("text", "tokens")
    family: str = ""  # sanitized excerpt of the family's text at the difference
    consumer: str = ""  # sanitized excerpt of the consumer's text there
    merges: tuple[str, ...] = field(default=())  # consumer tokens spanning a piece boundary


def excerpt(text: str, offset: int) -> str:
    """A short, printable excerpt of ``text`` around ``offset`` (untrusted content: control
    characters and newlines escaped, length bounded)."""
    start = max(0, offset - EXCERPT_CHARS // 2)
    piece = text[start : start + EXCERPT_CHARS]
    shown = repr(piece)[1:-1]
    return ("…" if start else "") + shown + ("…" if start + EXCERPT_CHARS < len(text) else "")


def _spans(tokenizer: Any, text: str, shift: int = 0) -> list[tuple[int, int, int]]:
    """``(start, end, id)`` of each token of ``text`` tokenized whole, offsets moved by
    ``shift``."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [
        (start + shift, end + shift, int(token))
        for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
    ]


def _official_spans(tokenizer: Any, official: OfficialPrompt) -> list[tuple[int, int, int]]:
    spans: list[tuple[int, int, int]] = []
    position = 0
    for piece in official.pieces:
        spans += _spans(tokenizer, piece, position)
        position += len(piece)
    return spans


def compare_prompt(
    tokenizer: Any, official: OfficialPrompt, text: str, ids: list[int]
) -> PromptComparison:
    """Compare a consumer's rendered ``text`` and its ``ids`` (``text`` tokenized whole by
    ``tokenizer``, the converted directory's) with the family's ``official`` prompt."""
    if ids == official.ids:
        return PromptComparison("same")
    expected = official.text
    if text != expected:
        offset = next(
            (i for i, (a, b) in enumerate(zip(expected, text, strict=False)) if a != b),
            min(len(expected), len(text)),
        )
        return PromptComparison(
            "text", offset, family=excerpt(expected, offset), consumer=excerpt(text, offset)
        )
    consumer = _spans(tokenizer, text)
    pieces = _official_spans(tokenizer, official)
    if [token for *_, token in pieces] != official.ids or [t for *_, t in consumer] != ids:
        # the converted directory's tokenizer is not the one the family's ids came from
        first = next(
            (i for i, (a, b) in enumerate(zip(official.ids, ids, strict=False)) if a != b), 0
        )
        offset = consumer[first][0] if first < len(consumer) else len(text)
        return PromptComparison(
            "tokens", offset, family=excerpt(expected, offset), consumer=excerpt(text, offset)
        )
    boundaries = official.boundaries
    known = set(pieces)
    merges: list[str] = []
    for run in _runs_of_new_tokens(consumer, known):
        crossing = [s for s in run if any(s[0] < b < s[1] for b in boundaries)]
        if not crossing:  # re-tokenized away from every piece boundary
            start = run[0][0]
            return PromptComparison(
                "tokens", start, family=excerpt(expected, start), consumer=excerpt(text, start)
            )
        merges += [text[start:end] for start, end, _ in crossing]
    return PromptComparison("merged", merges=tuple(merges))


def _runs_of_new_tokens(
    consumer: list[tuple[int, int, int]], known: set[tuple[int, int, int]]
) -> list[list[tuple[int, int, int]]]:
    """Maximal runs of consecutive consumer tokens that the piecewise tokenization lacks."""
    runs: list[list[tuple[int, int, int]]] = [[]]
    for span in consumer:
        if span in known:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(span)
    return [run for run in runs if run]
