"""A learned position table (GPT-2's ``wpe``) in the layer-by-layer pass.

The model's own forward adds ``wpe(position_ids)`` to the token embedding before its first
layer. In the dry pass (:class:`.layerwise.LayerwiseScorer`) the table is not there yet (it
arrives with the first layer's stage), so the pass adds zeros and records the position ids the
model used; right before the first layer runs, the rows those ids use are read (never the whole
table) and added to each batch's hidden states: the same sum the model makes, in one step later.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reranker_seqcls.check.weight_reads import WeightLedger, read_rows
from reranker_seqcls.errors import BadInput
from reranker_seqcls.safetensors_io.header import TensorInfo


class LearnedPositions:
    """The table ``module`` (an ``nn.Embedding`` on the meta device), checkpoint name
    ``name``."""

    def __init__(self, name: str, module: Any) -> None:
        self.name = name
        self.module = module
        self.position_ids: list[Any] = []  # per batch, as the dry pass met them

    @contextmanager
    def zeros(self, dtype: Any) -> Iterator[None]:
        """While the dry pass runs: the table answers zeros and records the ids."""
        import torch

        width = self.module.weight.shape[-1]

        def forward(position_ids: Any) -> Any:
            self.position_ids.append(position_ids)
            return torch.zeros((*position_ids.shape, width), dtype=dtype)

        self.module.forward = forward
        try:
            yield
        finally:
            del self.module.forward

    def add(
        self, hidden: list[Any], where: tuple[Path, TensorInfo], dtype: Any, ledger: WeightLedger
    ) -> None:
        """``hidden[b] += table[position_ids[b]]`` for every batch, from the rows used."""
        import torch

        path, info = where
        used = max(int(ids.max()) for ids in self.position_ids) + 1
        if used > info.shape[0]:
            raise BadInput(
                f"the check's longest prompt has {used} tokens, more than the {info.shape[0]} "
                f"positions of {self.name}: give --pairs with shorter texts"
            )
        rows = read_rows(path, info, list(range(used)), dtype)
        nbytes = rows.numel() * rows.element_size()
        ledger.add(nbytes)
        ledger.read += used * (info.nbytes // max(info.shape[0], 1))
        for batch, ids in enumerate(self.position_ids):
            hidden[batch] = hidden[batch] + torch.nn.functional.embedding(ids, rows)
        ledger.remove(nbytes)
        self.position_ids = []
