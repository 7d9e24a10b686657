"""Everything the command line prints: one sanitized line per message (tokens redacted, control
characters escaped), and the mapping of an exception to its one-line error and exit code."""

from __future__ import annotations

import signal
import traceback
from typing import TextIO

import click

from reranker_seqcls.interrupt import Interrupted

EXIT_INTERNAL = 4


def say(message: str, *, err: bool = False) -> None:
    """Print one message as one line: tokens redacted, control characters escaped (a newline in
    a repo id or a shard name cannot start a line of its own, e.g. a workflow command)."""
    from reranker_seqcls.redact import redact
    from reranker_seqcls.safe_text import one_line

    click.echo(one_line(redact(message)), err=err)


def log(message: str) -> None:
    say(message, err=True)


def report_interrupted(exc: Interrupted) -> int:
    by = "" if exc.signum == signal.SIGINT else f" by {exc.signal_name}"
    log(f"error: interrupted{by}; nothing was written")
    return exc.exit_code


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Python warnings as one sanitized line each, like every other line the CLI prints."""
    log(f"warning: {category.__name__}: {message}")


def report_error(exc: Exception, debug: bool) -> int:
    from reranker_seqcls.errors import SeqClsError

    if debug:
        traceback.print_exc()
    if isinstance(exc, SeqClsError):
        log(f"error: {exc}")
        return exc.exit_code
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        log(f"error: {exc.strerror or exc}{where}: check the path, permissions and free space")
        return 2
    log(f"error: internal error {exc.__class__.__name__}: {exc} (rerun with --debug and report it)")
    return EXIT_INTERNAL
