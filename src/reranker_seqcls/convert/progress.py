"""The byte progress bar of a conversion: on a terminal only (the per-shard log lines say the
same in logs and pipes)."""

from __future__ import annotations

import os
import sys
from typing import Protocol


class ByteProgress(Protocol):
    def update(self, n: int) -> object: ...
    def close(self) -> None: ...


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int) -> ByteProgress:
    if not sys.stderr.isatty() or os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"):
        return _NoBar()
    from tqdm import tqdm

    bar: ByteProgress = tqdm(total=total, unit="B", unit_scale=True, desc="convert", leave=False)
    return bar
