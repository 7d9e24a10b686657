"""The layerwise pass's input batches, and the shared prompt prefix computed once.

The quick check's pairs (:mod:`.scope`) share most of their prompt: the family's system prompt,
the instruction and the query; only the document and the template's tail differ. On two cores
the real pass costs what its positions cost (every position goes through every weight), so
:func:`batch_inputs` may **pack** such prompts into one row: the shared prefix once, then each
prompt's own tail, with

- position ids that restart each tail where the prefix ends (the tail of prompt *j* sits at the
  positions it has in prompt *j* alone), and
- a 4D attention mask (additive: 0 where a position may attend, the dtype's minimum elsewhere)
  that lets each tail see the prefix and itself, causally, and nothing of the other tails;

so the hidden state at each tail's last position is the one prompt *j* gets alone (the same
math; float rounding of other matrix shapes). The 3 quick Qwen3 pairs share 99 tokens: 373
positions become 175. Both heads are scored on these hidden states, so packing cannot make a
broken head pass; the tests compare packed and separate hidden states for every family packing
serves.

Packing serves only the families whose positions are rotary and whose masks the model takes as
given (transformers returns a 4D mask as is): :data:`PACKABLE`, prompts within any sliding
window (the packed mask has none). Everything else gets the left-padded batches of the
full-model reference (:func:`.scoring.length_batches`): same batches, same padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.scoring import BATCH_SIZE, MAX_BATCH_TOKENS, left_pad, length_batches

if TYPE_CHECKING:
    import torch

# Rotary positions from position_ids, masks as given (tested in tests/test_quick_check.py).
PACKABLE = frozenset({"qwen2", "qwen3", "llama", "mistral", "gemma"})
# A prefix shorter than this saves too little to leave the reference's batching.
MIN_SHARED = 8


@dataclass
class Batch:
    """One forward batch: ``indices`` of the sequences it scores (in output order), the model's
    ``ids``, ``mask`` and ``positions``, and ``keep``: the columns whose hidden states are the
    sequences' last positions (``[-1]`` for left-padded rows, one column per tail when packed)."""

    indices: list[int]
    ids: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor
    keep: list[int]

    @property
    def packed(self) -> bool:
        return len(self.keep) > 1


def shared_prefix(sequences: list[list[int]]) -> int:
    """The length of the prefix every sequence shares, leaving each at least one own token."""
    shortest = min(len(s) for s in sequences)
    length = 0
    while length < shortest - 1 and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return length


def can_pack(config: dict[str, Any], sequences: list[list[int]], learned_positions: bool) -> bool:
    """Whether packing serves this model and these prompts (see the module docstring)."""
    if learned_positions or config.get("model_type") not in PACKABLE or len(sequences) < 2:
        return False
    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    if window and max(len(s) for s in sequences) > int(window):
        return False
    prefix = shared_prefix(sequences)
    packed = prefix + sum(len(s) - prefix for s in sequences)
    return prefix >= MIN_SHARED and packed <= MAX_BATCH_TOKENS


def batch_inputs(
    sequences: list[list[int]], pad_id: int, dtype: torch.dtype, *, pack: bool
) -> list[Batch]:
    """The batches of the layerwise pass: one packed row when ``pack``, else the reference's."""
    if pack:
        return [_packed(sequences, dtype)]
    batches = length_batches([len(s) for s in sequences], BATCH_SIZE)
    out = []
    for batch in batches:
        ids, mask, positions = left_pad([sequences[i] for i in batch], pad_id)
        out.append(Batch(batch, ids, mask, positions, [-1]))
    return out


def _packed(sequences: list[list[int]], dtype: torch.dtype) -> Batch:
    import torch

    prefix = shared_prefix(sequences)
    ids, positions, keep = list(sequences[0][:prefix]), list(range(prefix)), []
    starts = []
    for seq in sequences:
        starts.append(len(ids))
        ids += seq[prefix:]
        positions += range(prefix, len(seq))
        keep.append(len(ids) - 1)
    width = len(ids)
    allowed = torch.zeros((width, width), dtype=torch.bool)
    allowed[:prefix, :prefix] = torch.ones((prefix, prefix), dtype=torch.bool).tril()
    for start, end in zip(starts, [*starts[1:], width], strict=True):
        allowed[start:end, :prefix] = True
        allowed[start:end, start:end] = torch.ones((end - start,) * 2, dtype=torch.bool).tril()
    mask = torch.full((width, width), torch.finfo(dtype).min, dtype=dtype)
    mask[allowed] = 0.0
    return Batch(
        list(range(len(sequences))),
        torch.tensor([ids], dtype=torch.long),
        mask[None, None],
        torch.tensor([positions], dtype=torch.long),
        keep,
    )
