"""Type- and character-checks of one fleet entry's values; each problem is one line naming the
entry and the key."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.methods import METHODS
from reranker_seqcls.recipes.options import MAX_TEMPLATE_BYTES
from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.schedule.fleet_yaml import shown

MAX_TOKENS = 64
MAX_TOKEN_CHARS = 64
# Hub repo ids (owner/name, at most 96 characters a part) and git revisions, whole-string.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
REVISION = re.compile(r"[A-Za-z0-9][\w./+-]{0,199}")


def check_values(values: dict[str, Any], here: str, base: Path) -> None:
    """Type-check the recipe options of ``values`` (so a bad default is reported as one)."""
    choice_value(values, "preset", here, tuple(PRESETS))
    choice_value(values, "method", here, METHODS)
    tokens_value(values, here)
    template_value(values, here, base)
    flag_value(values, "private", here)
    flag_value(values, "create_pr", here)


def refuse_unknown(mapping: dict[Any, Any], allowed: tuple[str, ...], here: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use {', '.join(allowed)}"
            raise BadInput(f"{here}: unknown key {shown(key)}: {hint}")


def repo_id_value(raw: dict[str, Any], key: str, here: str) -> str:
    value = raw.get(key)
    if value is None:
        raise BadInput(f"{here}: {key}: missing: give the Hub repo id (owner/name)")
    if not isinstance(value, str) or not REPO_ID.fullmatch(value) or ".." in value:
        raise BadInput(f"{here}: {key}: {shown(value)} is not a Hub repo id: give owner/name")
    return value


def optional_text(
    values: dict[str, Any], key: str, here: str, pattern: re.Pattern[str], what: str
) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        quote = " (quote it)" if isinstance(value, int | float) else ""
        raise BadInput(f"{here}: {key}: {shown(value)} is not {what}{quote}")
    return value


def choice_value(
    values: dict[str, Any], key: str, here: str, choices: tuple[str, ...]
) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if value not in choices:
        raise BadInput(f"{here}: {key}: {shown(value)} is not one of {', '.join(choices)}")
    return str(value)


def tokens_value(values: dict[str, Any], here: str) -> tuple[str, ...] | None:
    value = values.get("tokens")
    if value is None:
        return None
    if not isinstance(value, list) or not value or len(value) > MAX_TOKENS:
        raise BadInput(
            f'{here}: tokens: must be a list of 1 to {MAX_TOKENS} strings, like ["no", "yes"]'
        )
    for token in value:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise BadInput(
                f"{here}: tokens: {shown(token)} is not a token: each is a non-empty string "
                f"of at most {MAX_TOKEN_CHARS} characters"
            )
    if len(set(value)) != len(value):
        raise BadInput(f"{here}: tokens: a token is listed twice: each must be distinct")
    return tuple(value)


def template_value(values: dict[str, Any], here: str, base: Path) -> str | None:
    value = values.get("template")
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > 500
        or not value.isprintable()
        or os.path.isabs(value)
    ):
        raise BadInput(
            f"{here}: template: {shown(value)} is not a relative file path: give the Jinja "
            "file's path relative to the fleet file"
        )
    path = base / value
    root = repository_root(base)
    if not path.resolve().is_relative_to(root):
        raise BadInput(
            f"{here}: template: {shown(value)} leads outside the fleet file's repository "
            f"({root}): keep the template inside it"
        )
    if not path.is_file():
        raise BadInput(f"{here}: template: {shown(value)} is not a file next to the fleet file")
    if path.stat().st_size > MAX_TEMPLATE_BYTES:
        raise BadInput(
            f"{here}: template: {shown(value)} is larger than {MAX_TEMPLATE_BYTES} bytes"
        )
    return value


def repository_root(base: Path) -> Path:
    """The git work tree holding the fleet file's directory ``base`` (the nearest parent with
    ``.git``), else ``base`` itself: a fleet ``template:`` must stay inside it, or the convert
    job would push any file the runner can read (``../outside-secret.jinja``) as a template."""
    start = base.resolve()
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return start


def flag_value(values: dict[str, Any], key: str, here: str) -> bool:
    value = values.get(key, False)
    if not isinstance(value, bool):
        raise BadInput(f"{here}: {key}: must be true or false, not {shown(value)}")
    return value


def relative_to_cwd(path: Path) -> str:
    """A template's path as ``run`` and the Action's convert step, started in the same working
    directory as ``plan``, open it."""
    return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()
