"""Everything the command line prints: one sanitized line per message (tokens redacted, control
characters escaped), and the mapping of an exception to its one-line error and exit code."""

from __future__ import annotations

import os
import signal
import sys
import traceback
import warnings
from typing import TextIO

import click

from reranker_seqcls.interrupt import Interrupted, interruption_behind, raise_on_stop_signals
from reranker_seqcls.torch_cache import use_own_cache_dir

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


def run_command_line(group: click.Group, args: list[str]) -> None:
    """Run the click ``group`` on ``args`` and exit: one-line errors on stderr, the exit codes
    of the design, no tracebacks (unless ``--debug``)."""
    debug = "--debug" in args
    if not sys.stderr.isatty():  # plain line logs, no progress bars, in CI and pipes
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    use_own_cache_dir()  # torch would leave $TMPDIR/torchinductor_$USER behind
    raise_on_stop_signals()
    warnings.showwarning = show_warning  # library warnings can quote a source's text
    try:
        code = group.main(args=args, prog_name="reranker-seqcls", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except Interrupted as exc:
        code = report_interrupted(exc)
    except click.exceptions.Abort:  # click's wrapping of KeyboardInterrupt (and EOF)
        log("error: interrupted; nothing was written")
        code = 130
    except click.ClickException as exc:
        log(f"error: {exc.format_message()} (see reranker-seqcls --help)")
        code = exc.exit_code
    except KeyboardInterrupt:
        log("error: interrupted; nothing was written")
        code = 130
    except Exception as exc:
        stopped = interruption_behind(exc)  # a signal that landed inside a wrapping hook
        code = report_error(exc, debug) if stopped is None else report_interrupted(stopped)
    sys.exit(code if isinstance(code, int) else 0)
