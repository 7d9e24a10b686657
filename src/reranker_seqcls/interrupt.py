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


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    # Further stop signals are ignored from here on: the cleanup the exception triggers (a few
    # directory removals) must not be cut short by a second TERM or an impatient Ctrl-C.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


def raise_on_stop_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (call from the main thread).
    A signal the process was started ignoring (``nohup`` ignores SIGHUP) stays ignored."""
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
