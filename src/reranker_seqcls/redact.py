"""Keep Hub tokens out of everything printed or written.

Exception messages from HTTP clients can embed URLs and headers; every line the CLI prints and
every message it stores passes through :func:`redact`.
"""

from __future__ import annotations

import os
import re

_TOKEN_PATTERNS = (
    re.compile(r"hf_[A-Za-z0-9]{8,}"),
    re.compile(r"(?i)(authorization:?\s*(?:bearer|basic)?\s*)[^\s'\",}]+"),
    re.compile(r"(?i)(token=)[^\s&'\"]+"),
)
_extra_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret given some other way (e.g. ``--token``) so it is redacted too."""
    if secret and len(secret) >= 4:
        _extra_secrets.add(secret)


def redact(text: str) -> str:
    secrets = set(_extra_secrets)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            secrets.add(value)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _TOKEN_PATTERNS[0].sub("***", text)
    for pattern in _TOKEN_PATTERNS[1:]:
        text = pattern.sub(lambda m: m.group(1) + "***", text)
    return text
