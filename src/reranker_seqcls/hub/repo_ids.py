"""What a Hub repo id is (the client's own rules, matched whole) and where a repo lives."""

from __future__ import annotations

import re

from reranker_seqcls.errors import BadInput

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", re.ASCII)


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` is a repo id the Hub client accepts: the client's own validator (at most
    96 characters a part, ASCII letters, digits, ``-_.``, no ``--``/``..``), and whole-string
    matching, so a trailing newline or a full-width character is no repo id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not _REPO_ID.fullmatch(text) or ".." in text or text.endswith("."):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def require_repo_id(text: str, role: str, *, or_directory: bool = False) -> None:
    """Refuse (exit 2, one line) a ``role`` ("target", "source") that is no Hub repo id; with
    ``or_directory`` the text was no local directory either."""
    if not looks_like_repo_id(text):
        what = "neither a directory nor a Hub repo id" if or_directory else "not a Hub repo id"
        fix = "give a checkpoint directory or owner/name" if or_directory else "give owner/name"
        raise BadInput(
            f"{role} {text!r} is {what} (ASCII letters, digits, '-', '_', '.'; at most 96 "
            f"characters a part): {fix}"
        )


def repo_url(repo_id: str) -> str:
    """The repo's page on the Hub ``HF_ENDPOINT`` names."""
    from huggingface_hub import constants

    return f"{constants.ENDPOINT.rstrip('/')}/{repo_id}"
