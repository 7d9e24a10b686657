"""Stop signals unwind the CLI like an exception, so every cleanup runs.

A cancelled CI job sends SIGTERM, a closed terminal SIGHUP, Ctrl-C SIGINT. Python's default for
the first two ends the process at once, leaving a half-written ``.OUT.tmp-*`` directory or the
temporary directory of a ``run``. :func:`raise_on_stop_signals` makes each of the three raise
:class:`Interrupted` in the main thread instead; the ``except BaseException`` / ``finally`` /
``with`` cleanups on the way up remove what the command created, and the CLI exits with
128 + the signal number (143 for SIGTERM), as a shell reports a process killed by it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal arrived. A ``BaseException`` so that ``except Exception`` handlers (in this
    package and in libraries) do not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# The stop signals that arrived, the first one deciding: kept because the exception the
# handler raises can be lost (see :func:`raise_if_stopped`).
_arrived: list[int] = []


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    # Further stop signals are ignored from here on: the cleanup the exception triggers (a few
    # directory removals) must not be cut short by a second TERM or an impatient Ctrl-C.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    _arrived.append(signum)
    raise Interrupted(signum)


def raise_if_stopped() -> None:
    """Raise :class:`Interrupted` again for a stop signal whose exception was lost. The handler
    runs wherever the main thread is; when that is a ``__del__`` (a garbage collection inside a
    library: seen in ``regex``'s ``Group.__del__``) or another hook whose exceptions Python only
    prints ("Exception ignored in ..."), the exception goes nowhere, the further signals are
    already ignored, and the run would go on to publish. Called where a run decides what is
    published (before a commit) and between shards."""
    if _arrived:
        raise Interrupted(_arrived[0])


def raise_on_stop_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (call from the main thread).
    A signal the process was started ignoring (``nohup`` ignores SIGHUP) stays ignored."""
    _arrived.clear()
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _raise_interrupted)


def interruption_behind(exc: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` that ``exc`` wraps, if any. Python wraps an exception raised in
    some hooks (``__set_name__`` while a dataclass is built, an import in progress) in a
    ``RuntimeError`` whose cause is the original: a signal that lands there is still a stop."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def stop_signals_deferred(note: Callable[[str], None]) -> Iterator[None]:
    """Hold the stop signals while the block runs (a commit in flight: stopping the client
    cannot stop the Hub from applying it), then act on the first one truthfully: if the block
    raised, :class:`Interrupted` is raised (nothing was written is then true); if it completed,
    ``note`` says the signal came too late and the command finishes, reporting what it did.
    Only where the CLI's own handler is installed (the main thread of the CLI)."""
    pending: list[int] = []
    previous: dict[signal.Signals, object] = {}

    def record(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)

    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is _raise_interrupted:
                previous[sig] = signal.signal(sig, record)
    completed = False
    try:
        yield
        completed = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        if pending:
            name = signal.Signals(pending[0]).name
            if not completed:
                _raise_interrupted(pending[0], None)
            note(f"{name} arrived while the commit was in flight; the commit landed, so the run "
                 "finishes and reports it")  # fmt: skip
