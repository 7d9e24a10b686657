"""The streamed run's disk: what it will need at most (judged against ``--max-disk`` before
any shard moves) and what it used (measured after every step)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.check.release_schedule import FeedStep

# Per file on disk: the allocation granularity rounds each file (and sparse placeholder) up.
_BLOCK = 4096


def disk_usage(*roots: Path, skip_dir: str | None = None) -> int:
    """Bytes the files under ``roots`` occupy (allocated blocks; a file hard-linked in several
    places once), leaving out directories named ``skip_dir``. Files removed meanwhile are not
    counted: the bench and the tests poll this while a run deletes shards."""
    seen: set[tuple[int, int]] = set()
    total = 0
    walks = (os.walk(root) for root in roots)
    for dirpath, dirs, files in (entry for walk in walks for entry in walk):
        if skip_dir is not None and skip_dir in dirs:
            dirs.remove(skip_dir)
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:  # removed meanwhile
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


@dataclass
class DiskPeak:
    """The run directory's disk use: the largest of the measurements taken."""

    root: Path
    peak: int = 0

    def measure(self) -> None:
        self.peak = max(self.peak, disk_usage(self.root))


@dataclass(frozen=True)
class DiskForecast:
    """The most the run directory holds at once, from the shard sizes and the scorer's
    release schedule: the small files twice (source and output), the header placeholders,
    the source shards on disk while one is fed, the output shard written beside its source
    (a hard link costs nothing; only a rewritten shard or, for a scorer that keeps the whole
    output, every rewritten one), and afterwards the structural twin the consumer check saves."""

    small: int
    transfer: int  # the peak over the shards
    twin: int

    @property
    def total(self) -> int:
        return 2 * self.small + max(self.transfer, self.twin)


def keep_all_steps(shards: int) -> list[FeedStep]:
    """The schedule of a scorer that keeps every shard until the end."""
    return [FeedStep(k, tuple(range(k + 1)), tuple(range(k + 1)), 0) for k in range(shards)]


def forecast(
    *,
    small: int,
    small_files: int,
    sizes: Sequence[int],
    rewritten: Sequence[int],
    steps: Sequence[FeedStep],
    keeps_outputs: bool,
    twin: int,
) -> DiskForecast:
    """``sizes[i]``: source shard ``i``'s bytes; ``rewritten[i]``: the bytes its output shard
    adds (0 for a hard link or a dropped shard); ``steps``: the scorer's schedule."""
    slack = _BLOCK * (2 * small_files + len(sizes) + 8)  # every file's partial last block
    peak = 0
    for step in steps:
        k = step.position
        outputs = sum(rewritten[: k + 1]) if keeps_outputs else rewritten[k]
        during_feed = sum(sizes[i] for i in step.on_disk)
        after = sum(sizes[i] for i in {*step.held_after, k}) + outputs
        kept_before = sum(rewritten[:k]) if keeps_outputs else 0
        peak = max(peak, during_feed + kept_before, after)
    return DiskForecast(small, peak + slack, twin)
