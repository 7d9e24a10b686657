"""Which shards a layerwise pass keeps on disk, decided from the shard headers before any
shard is fetched: the streamed run's disk forecast (``--max-disk``) and its progress bar.

It mirrors :meth:`layerwise.LayerwiseScorer.feed`: the embedding is used as soon as it is
there, decoder layer ``i`` once every tensor of layers ``0..i`` is there, the final norm after
the last layer; a shard is released once none of its tensors is still needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stages:
    """A layerwise pass's tensor names per stage, in checkpoint spelling."""

    embedding: str
    layers: tuple[frozenset[str], ...]
    final: frozenset[str]

    def all_names(self) -> set[str]:
        return {self.embedding, *self.final, *(n for layer in self.layers for n in layer)}


@dataclass(frozen=True)
class FeedStep:
    """Feeding shard ``position``: the shards on disk meanwhile (those still held and this
    one), those still held afterwards, and the decoder layers run so far."""

    position: int
    on_disk: tuple[int, ...]
    held_after: tuple[int, ...]
    layers_done: int


def release_schedule(stages: Stages, shards: Iterable[Iterable[str]]) -> list[FeedStep]:
    """The :class:`FeedStep` of each shard, fed in the order given (each a list of the tensor
    names its header holds)."""
    wanted = stages.all_names()
    present: set[str] = set()
    embedded, next_layer, finished = False, 0, False
    pending: dict[int, set[str]] = {}
    steps = []
    for position, names in enumerate(shards):
        names = set(names) & wanted
        pending[position] = set(names)
        on_disk = tuple(sorted(pending))
        present |= names
        embedded = embedded or stages.embedding in present
        while embedded and next_layer < len(stages.layers) and stages.layers[next_layer] <= present:
            next_layer += 1
        if next_layer == len(stages.layers) and stages.final <= present:
            finished = True
        needed = _needed(stages, embedded, next_layer, finished)
        for held in list(pending):
            pending[held] &= needed
            if not pending[held]:
                del pending[held]
        steps.append(FeedStep(position, on_disk, tuple(sorted(pending)), next_layer))
    return steps


def _needed(stages: Stages, embedded: bool, next_layer: int, finished: bool) -> set[str]:
    if finished:
        return set()
    needed = set(stages.final)
    if not embedded:
        needed.add(stages.embedding)
    for layer in stages.layers[next_layer:]:
        needed |= layer
    return needed
