"""A directory of safetensors shards, addressed by tensor name (headers only, no torch)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import INDEX_FILE
from reranker_seqcls.safetensors_io.header import SafetensorsFile, TensorInfo
from reranker_seqcls.source import Source, safe_name, unique_names

HEAD_NAME = "lm_head.weight"


class Checkpoint:
    """A directory of safetensors shards, addressed by tensor name.

    Shard names come from the index (or the directory listing) and go through
    :class:`~reranker_seqcls.source.Source`: safe, unique, regular files inside the source.
    A tensor name held by two shards is refused.
    """

    def __init__(self, directory: Path | Source) -> None:
        source = directory if isinstance(directory, Source) else Source(directory)
        self.directory = source.directory
        self.shards: dict[str, SafetensorsFile] = {}
        names, weight_map = shard_names(source)
        for shard in names:
            path = source.file(shard, what=INDEX_FILE)
            if path is None:
                raise BadInput(
                    f"{INDEX_FILE} names {shard!r}, which is missing: re-download the checkpoint"
                )
            self.shards[shard] = SafetensorsFile(path, label=shard)
        self.location: dict[str, str] = {}
        for shard, st in self.shards.items():
            for name in st.tensors:
                other = self.location.setdefault(name, shard)
                if other != shard:
                    raise BadInput(
                        f"tensor {name!r} is in both {other!r} and {shard!r}: the checkpoint is "
                        "inconsistent, re-download it"
                    )
        for name, shard in weight_map.items():
            # A tied model's index may still list lm_head.weight that no shard holds (the tie
            # makes it the embedding); every other entry must be in the shard it names.
            stale_tied_head = name == HEAD_NAME and name not in self.location
            if self.location.get(name) != shard and not stale_tied_head:
                raise BadInput(
                    f"{INDEX_FILE} puts tensor {name!r} in {shard!r}, which does not hold it: "
                    "the index and the shards disagree, re-download the checkpoint"
                )

    def __contains__(self, name: str) -> bool:
        return name in self.location

    def tensor(self, name: str) -> TensorInfo:
        return self.shards[self.location[name]].tensors[name]

    def read_rows(self, name: str, rows: Iterable[int]) -> list[list[float]]:
        return self.shards[self.location[name]].read_rows(name, rows)

    def find(self, suffix: str) -> str | None:
        """The one tensor whose name ends with ``suffix`` (e.g. ``embed_tokens.weight``)."""
        hits = sorted(n for n in self.location if n == suffix or n.endswith("." + suffix))
        return hits[0] if len(hits) == 1 else None


def shard_names(source: Source) -> tuple[list[str], dict[str, str]]:
    """The shard names of a checkpoint — the index's weight_map values, else the top-level
    ``*.safetensors`` — and the weight map with normalized shard names (empty without index)."""
    index = source.read_json(INDEX_FILE)
    weight_map: dict[str, str] = {}
    if index is None:
        names = source.listing(["*.safetensors"])
        names = [n for n in names if "/" not in n]
    else:
        raw_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(raw_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw_map.items()
        ):
            raise BadInput(
                f"{INDEX_FILE} has no weight_map of tensor name → shard file name: "
                "re-download the checkpoint"
            )
        names = unique_names(raw_map.values(), what=INDEX_FILE)
        weight_map = {k: safe_name(v, what=INDEX_FILE) for k, v in raw_map.items()}
        not_safetensors = [n for n in names if not n.endswith(".safetensors")]
        if not_safetensors:
            raise BadInput(
                f"{INDEX_FILE} names {not_safetensors[0]!r}, which is not a .safetensors file: "
                "re-download the checkpoint"
            )
    if not names:
        raise BadInput(f"no .safetensors weights in {source.directory}")
    return names, weight_map
