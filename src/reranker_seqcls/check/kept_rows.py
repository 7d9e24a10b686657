"""What the streamed check keeps of shards that are gone: the head rows the structural check
reads (:class:`RowStore`), and a digest of every backbone tensor (:func:`tensor_digests`)."""

from __future__ import annotations

import hashlib
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.safetensors_io.header import SafetensorsFile, TensorInfo

_HASH_CHUNK = 16 * 1024 * 1024


class RowStore:
    """Rows of some 2-D tensors, kept while their shards were present, read the way
    :class:`checkpoint.Checkpoint` reads them (what :func:`parity.head_check` calls)."""

    def __init__(self) -> None:
        self.location: dict[str, str] = {}  # every tensor name seen → its shard's name
        self._info: dict[str, TensorInfo] = {}
        self._rows: dict[str, dict[int, list[float]]] = {}

    def keep(self, header: SafetensorsFile, name: str, rows: list[int]) -> None:
        info = header.tensors[name]
        rows = [r for r in rows if len(info.shape) == 2 and 0 <= r < info.shape[0]]
        self._info[name] = info
        self._rows[name] = dict(zip(rows, header.read_rows(name, rows), strict=True))

    def __contains__(self, name: str) -> bool:
        return name in self.location

    def tensor(self, name: str) -> TensorInfo:
        return self._info[name]

    def read_rows(self, name: str, rows: Any) -> list[list[float]]:
        kept = self._rows[name]
        missing = [r for r in rows if r not in kept]
        if missing:
            n_rows = self._info[name].shape[0]
            if not 0 <= missing[0] < n_rows:  # keep() skipped it: the tensor has no such row
                raise BadInput(
                    f"token id {missing[0]} is outside {name} ({n_rows} rows): the tokenizer "
                    "does not match the weights"
                )
            # a bug: head_rows_needed must list every row head_check reads
            raise KeyError(f"row {missing[0]} of {name} was not kept")
        return [kept[r] for r in rows]

    def find(self, suffix: str) -> str | None:
        hits = sorted(n for n in self.location if n == suffix or n.endswith("." + suffix))
        return hits[0] if len(hits) == 1 else None


def tensor_digests(header: SafetensorsFile, skip: set[str]) -> dict[str, str]:
    """sha256 of each tensor's dtype, shape and bytes (plain reads in 16 MB chunks)."""
    digests: dict[str, str] = {}
    with header.path.open("rb") as fh:
        for name, info in sorted(header.tensors.items(), key=lambda kv: kv[1].start):
            if name in skip:
                continue
            digest = hashlib.sha256(f"{info.dtype}{list(info.shape)}".encode())
            fh.seek(info.start)
            remaining = info.nbytes
            while remaining:
                chunk = fh.read(min(_HASH_CHUNK, remaining))
                if not chunk:
                    raise BadInput(f"{header.path.name} is truncated: re-download the checkpoint")
                digest.update(chunk)
                remaining -= len(chunk)
            digests[name] = digest.hexdigest()
    return digests
