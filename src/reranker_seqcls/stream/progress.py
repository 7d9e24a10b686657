"""One progress bar for the whole streamed pass (bytes in, layers, bytes out) on a terminal;
the per-shard log lines say the same in logs and pipes."""

from __future__ import annotations

import os
import sys
from typing import Any


class StreamProgress:
    def __init__(self, bytes_in: int, bytes_out: int, layers: int) -> None:
        self.totals = (bytes_in, layers, bytes_out)
        self.done = [0, 0, 0]
        self.bar: Any = None
        if sys.stderr.isatty() and not os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"):
            from huggingface_hub.utils import disable_progress_bars
            from tqdm import tqdm

            disable_progress_bars()  # this bar replaces the client's per-file ones
            self.bar = tqdm(
                total=bytes_in + bytes_out, unit="B", unit_scale=True, desc="run", leave=False
            )
            self._postfix()

    def add(self, *, bytes_in: int = 0, layers: int | None = None, bytes_out: int = 0) -> None:
        self.done[0] += bytes_in
        if layers is not None:
            self.done[1] = max(self.done[1], layers)
        self.done[2] += bytes_out
        if self.bar is not None:
            self.bar.update(bytes_in + bytes_out)
            self._postfix()

    def _postfix(self) -> None:
        (total_in, layers, total_out), (done_in, done_layers, done_out) = self.totals, self.done
        self.bar.set_postfix_str(
            f"in {done_in / 1e9:.2f}/{total_in / 1e9:.2f} GB, layers {done_layers}/{layers}, "
            f"out {done_out / 1e9:.2f}/{total_out / 1e9:.2f} GB"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
