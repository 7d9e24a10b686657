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


# --------------------------------------------------------------------------- Markdown and HTML
# A model card and a job summary are Markdown that GitHub and the Hub render (HTML included).
# Text a source or a target wrote (a vocabulary piece, a repo id in provenance, an error message
# quoting a shard name) must stay text: no heading, link, image, HTML tag or table cell break.

# The ASCII punctuation that starts inline Markdown or HTML in the middle of a line; an escaped
# one is literal (CommonMark): no emphasis, code, link, image, autolink (``https\://``), HTML
# tag or entity, table pipe. The text is one line and never starts a block, so ``#``, ``-``,
# ``+`` and digits stay as they are; ``www.`` (GitHub's bare autolink) gets its dot escaped.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!|~:])")


def md_text(text: str) -> str:
    """``text`` as inert inline Markdown: one line (controls escaped as :func:`one_line`
    does), the inline-markup punctuation backslash-escaped, ``<``, ``>`` and ``&`` as
    entities."""
    escaped = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = _MD_SPECIAL.sub(r"\\\1", escaped)
    return re.sub(r"(?i)(www)\.", r"\1\\.", escaped)


def md_code(text: str) -> str:
    """``text`` as one inline code span: literal whatever it holds (a fence longer than any
    backtick run inside, padded when it starts or ends with a backtick), controls escaped."""
    body = one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    if body.startswith("`") or body.endswith("`") or not body.strip():
        body = f" {body} "
    return f"{fence}{body}{fence}".replace("|", "\\|")


# A link destination keeps the URL characters that cannot end it or start markup: letters,
# digits and RFC 3986's unreserved and reserved characters except the brackets and parentheses
# (``(``/``)`` can close the destination, ``[``/``]`` are IPv6 hosts the Hub never returns).
_URL_KEPT = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#@!$'*+,;="
)
_HTTP_URL = re.compile(r"(?i)https?://[A-Za-z0-9]")


def md_url(url: str) -> str | None:
    """``url`` as one Markdown link destination, or ``None`` when it is no absolute http(s) URL
    (``javascript:``, a relative path, a host starting with punctuation).

    The URL a Hub returns (a repo's, a pull request's) is untrusted like any other Hub text:
    a space, ``)``, ``<``, ``|`` or a line break would end the link and start markup of its own,
    or break the table cell it stands in. Each character outside :data:`_URL_KEPT` is
    percent-encoded (UTF-8), an existing ``%XX`` escape is kept, and ``&`` becomes ``&amp;``
    (an entity, decoded back to ``&`` by the renderer, so no ``&#41;`` can spell a character)."""
    if not _HTTP_URL.match(url):
        return None
    out: list[str] = []
    for at, char in enumerate(url):
        escape = char == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", url[at + 1 : at + 3])
        if char in _URL_KEPT or escape:
            out.append(char)
        elif char == "&":
            out.append("&amp;")
        else:
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8", "replace")))
    return "".join(out)


def md_link(label: str, url: str, *, code: bool = False) -> str:
    """A Markdown link to ``url`` (:func:`md_url`) whose text is ``label``, inert (as a code span
    with ``code``); just that text when ``url`` is no http(s) URL."""
    text = md_code(label) if code else md_text(label)
    target = md_url(url)
    return f"[{text}]({target})" if target else text
