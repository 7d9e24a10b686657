"""Compute beside transfer: a shard's layers run on a worker thread while the next shard is
fetched and the current one converted and pre-uploaded.

The layer compute (torch) and the hashing (hashlib) release the GIL, so the two really run at
once. The worker only reads: it never writes a file, so a run stopped by a signal can remove its
directory while the worker is still busy (it is a daemon thread, gone with the process).
Fetching ahead obeys the disk budget of :func:`overlap_budget`: the next shard is fetched before
the current one's layers are done only when it fits beside what is on disk, so the run stays at
two shards (the one scored, the one arriving) plus its small files: inside the streamed run's
goal of two of the largest shards plus 0.5 GB.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def overlap_budget(sizes: list[int], small: int, max_disk: int | None) -> int:
    """The disk a streamed run may fill by fetching ahead: two of the largest shards and the
    ``small`` files, never above ``--max-disk``. A run that holds more at other moments (a
    layer spanning two shards keeps the first; a rewritten head shard) fetches in turn there,
    as its forecast assumes."""
    two = 2 * max(sizes, default=0) + small
    return two if max_disk is None else min(two, max_disk)


class Background(Generic[T]):
    """One job at a time on a daemon thread; :meth:`wait` gives its result or raises its
    exception in the caller's thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._result: T | None = None
        self._error: BaseException | None = None

    @property
    def pending(self) -> bool:
        """A job was started and its result not yet taken."""
        return self._thread is not None

    def start(self, job: Callable[[], T]) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: the previous job's result was not taken")

        def run() -> None:
            try:
                self._result = job()
            except BaseException as exc:  # handed to the caller by wait()
                self._error = exc

        self._result, self._error = None, None
        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()

    def settle(self) -> None:
        """Let a running job end and drop its outcome: a run that fails must not leave the
        layer compute inside torch at exit (the C++ runtime aborts the process: SIGABRT, not
        the run's exit code). A pre-upload (HTTP, hashing) may be left to die with the
        process: waiting for it would hold a stopped run for a whole shard's upload."""
        if self._thread is not None:
            self._thread.join()
            self._thread, self._result, self._error = None, None, None

    def wait(self) -> T | None:
        """The job's result (None when no job is pending)."""
        if self._thread is None:
            return None
        self._thread.join()
        self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        result, self._result = self._result, None
        return result
