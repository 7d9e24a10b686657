"""GitHub Actions plumbing shared by the image's ``entrypoint`` and the plan action's
``plan/plan_step.py``: reading ``INPUT_*`` variables, the token's mask, workflow commands,
``::stop-commands::`` windows, ``$GITHUB_OUTPUT`` and the step summary file.

Standard library only (with :mod:`reranker_seqcls.safe_text`, which is too): the plan step runs
in a venv that holds the package without torch, the entrypoint before it starts the CLI, and a
failed import of a dependency there would lose the step's outputs and its error annotation.
``tests/test_gh_actions.py`` holds the module to that.

Every value a script prints through :func:`command` or :func:`print_untrusted` is sanitized
(:func:`reranker_seqcls.safe_text.one_line`), so no input, repo id or Hub message can start a line
of its own and act as a workflow command.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence

from reranker_seqcls.safe_text import lines_kept, one_line

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})
TOKEN_INPUT = "hf_token"
TOKEN_ENV_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


class InputError(Exception):
    """An Action input is missing or malformed (exit code 2, like the CLI's bad input)."""


# --- inputs ------------------------------------------------------------------------------------


def input_keys(name: str) -> tuple[str, str]:
    """The variables the runner may pass input ``name`` as: ``INPUT_<NAME>`` (spaces as ``_``,
    upper-cased) and the hyphenated spelling (``INPUT_CREATE-PR``), which a workflow's own
    ``env:`` or an older runner gives."""
    key = name.replace(" ", "_").upper()
    return f"INPUT_{key}", f"INPUT_{key.replace('_', '-')}"


def read_input(env: Mapping[str, str], name: str) -> str:
    """An Action input, either spelling; surrounding whitespace dropped, an unset one ``""``."""
    for candidate in input_keys(name):
        value = env.get(candidate)
        if value is not None and value.strip():
            return value.strip()
    return ""


def read_bool(env: Mapping[str, str], name: str) -> bool:
    value = read_input(env, name).lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise InputError(f"input {name!r} must be true or false, not {read_input(env, name)!r}")


def read_token(env: Mapping[str, str]) -> str:
    """The Hub token: the ``hf_token`` input, else ``HF_TOKEN`` (or the older name) from the
    step's environment."""
    token = read_input(env, TOKEN_INPUT)
    if not token:
        for name in TOKEN_ENV_NAMES:
            token = env.get(name, "").strip()
            if token:
                break
    return token


def child_environment(env: Mapping[str, str], token: str) -> dict[str, str]:
    """The CLI's environment: the token as ``HF_TOKEN`` only, no ``INPUT_*`` copy of it (either
    spelling, any case)."""
    token_keys = set(input_keys(TOKEN_INPUT))
    child = {key: value for key, value in env.items() if key.upper() not in token_keys}
    if token:
        child["HF_TOKEN"] = token
    return child


# --- workflow commands -------------------------------------------------------------------------


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str = "", **properties: str) -> None:
    """Print a workflow command. Line breaks in the message are escaped the runner's way (an
    annotation may span lines); every other control character is escaped by the sanitizer."""
    props = ",".join(
        f"{key}={escape_property(one_line(value))}" for key, value in properties.items()
    )
    head = f"{name} {props}" if props else name
    print(f"::{head}::{escape_data(lines_kept(message))}", flush=True)


def mask(secret: str) -> None:
    """``::add-mask::`` for a secret (each line of it): the runner hides it from then on. The
    secret is passed as is (only the runner's escapes): the runner must see its exact text."""
    for line in secret.splitlines():
        if line.strip():
            print(f"::add-mask::{escape_data(line.strip())}", flush=True)


def make_scrubber(token: str) -> Callable[[str], str]:
    """Replaces the token (and each line of it) with ``***`` in text a script writes."""
    secrets = sorted({s for s in (token, *token.splitlines()) if s.strip()}, key=len, reverse=True)

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return scrub


@contextlib.contextmanager
def stop_commands() -> Iterator[None]:
    """A ``::stop-commands::`` window with a fresh token: nothing printed inside (a child's
    output, a repo name, a model card line) acts as a workflow command. Both streams are flushed
    before the window closes, so nothing written inside lands after it."""
    token = uuid.uuid4().hex
    print(f"::stop-commands::{token}", flush=True)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        print(f"::{token}::", flush=True)


def print_untrusted(lines: Sequence[str]) -> None:
    """Print lines holding untrusted text: each sanitized to one line, all of them inside a
    :func:`stop_commands` window."""
    with stop_commands():
        for line in lines:
            print(one_line(line), flush=True)


# --- outputs and summary -----------------------------------------------------------------------


def format_outputs(outputs: Mapping[str, str]) -> str:
    """``$GITHUB_OUTPUT`` lines: ``name=value``, or a heredoc with a fresh delimiter for a value
    with a line break (so no value can end early or add outputs of its own)."""
    lines = []
    for name, value in outputs.items():
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    return "".join(lines)


def append_file(env: Mapping[str, str], name: str, text: str) -> None:
    """Append to the file the runner names in ``env[name]`` (``GITHUB_OUTPUT``,
    ``GITHUB_STEP_SUMMARY``); nothing when it names none (outside a workflow)."""
    path = env.get(name)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def write_outputs(env: Mapping[str, str], outputs: Mapping[str, str]) -> None:
    """The step's outputs, appended to ``$GITHUB_OUTPUT`` (:func:`format_outputs`)."""
    append_file(env, "GITHUB_OUTPUT", format_outputs(outputs))
