"""Per-tensor digests of safetensors files, computed once per file.

The streamed check compares the backbone tensors of the source and converted shards by digest
(:mod:`.streamed`). A converted shard is often a hard link of its source shard (one inode: the
digests are looked up, not computed again) or a reflink (its own inode: hashed again). A streamed
run has already verified each fetched shard's whole-file sha256 against the Hub's LFS listing; a
shard whose output is a hard link of it is not read at all: each tensor's digest is that sha256
and the tensor's dtype, shape and byte range, which equals another digest only for the same
bytes of a file with the same sha256 (a per-tensor sha256 never has this form).
"""

from __future__ import annotations

import os
import threading

from reranker_seqcls.check.kept_rows import tensor_digests
from reranker_seqcls.safetensors_io.header import SafetensorsFile


class FileDigests:
    """The digests of each file met, by (device, inode, size, mtime): size and mtime too, as a
    streamed run deletes shards as it goes and a file written later (the rewritten head shard)
    may get a deleted shard's inode number. Thread-safe: the run's worker thread feeds the
    source shards, its upload thread the converted ones."""

    def __init__(self) -> None:
        self._by_file: dict[tuple[int, int, int, int], dict[str, str]] = {}
        self._lock = threading.Lock()
        self.read = 0  # files hashed tensor by tensor

    def of(
        self, header: SafetensorsFile, skip: set[str], file_sha256: str | None = None
    ) -> dict[str, str]:
        """``header``'s tensors (less ``skip``) and their digests; ``file_sha256``: the file's
        verified sha256, when known (then the file is not read)."""
        stat = os.stat(header.path)
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key not in self._by_file and file_sha256 is not None:
                self._by_file[key] = {
                    name: f"file {file_sha256} {info.dtype}{list(info.shape)} "
                    f"{info.start}+{info.nbytes}"
                    for name, info in header.tensors.items()
                }
            elif key not in self._by_file:
                self._by_file[key] = tensor_digests(header, set())
                self.read += 1
        return {k: v for k, v in self._by_file[key].items() if k not in skip}
