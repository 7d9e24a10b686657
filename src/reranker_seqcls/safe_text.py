"""Make text from a source or an input safe to print: one line, inert on a terminal and in a
GitHub Actions log.

A repo id, a shard name or an input value may hold a newline followed by ``::add-mask::…``
(the Actions runner executes any log line that starts with ``::``), an ESC sequence that rewrites
the terminal, or a Unicode line separator. :func:`one_line` escapes every such character, so
each message the tool prints is exactly one line that starts with the tool's own text. The CLI
passes every line it prints through it, and so does the image's entrypoint.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL (Unicode category Cc, which includes NEL U+0085), the line and
# paragraph separators, and the bidirectional controls that reorder what a reader sees.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# The runner's legacy command syntax ``##[name]…`` is recognised anywhere in a line.
_LEGACY_COMMAND = "##["


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``, ``\\u2028``…): one
    printable line that no terminal or workflow runner acts on."""
    return _CONTROL.sub(_escape, text).replace(_LEGACY_COMMAND, "#\\x23[")


def lines_kept(text: str) -> str:
    """Like :func:`one_line` but keeps ``\\n`` line breaks, for a multi-line value stored as data
    (a ``$GITHUB_OUTPUT`` heredoc, a Markdown table); each line is escaped on its own."""
    return "\n".join(one_line(line) for line in text.split("\n"))
