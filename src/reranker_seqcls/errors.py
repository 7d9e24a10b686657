"""Exceptions that map to the CLI's exit codes (see README "Exit codes").

Each carries a one-line message that names the problem and the fix; the CLI prints it
without a traceback.
"""

from __future__ import annotations


class SeqClsError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 2


class BadInput(SeqClsError):
    """Bad input or usage (exit 2)."""

    exit_code = 2


class ParityFailed(SeqClsError):
    """The converted model does not score like the original (exit 1)."""

    exit_code = 1


class HubError(SeqClsError):
    """The Hub or the network failed after retries (exit 3)."""

    exit_code = 3
