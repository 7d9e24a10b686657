"""Parse and validate the recipe options of the command line (``--tokens``, ``--token-ids``,
``--method``, ``--scale``, ``--template``)."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.methods import METHODS, Method, known_method, two_way_methods


def parse_tokens(tokens_json: str) -> tuple[str, ...]:
    """Parse ``--tokens`` (a JSON list of strings), refusing empty lists and duplicates."""
    try:
        value = json.loads(tokens_json)
    except (ValueError, RecursionError) as exc:
        raise BadInput(
            f"--tokens {tokens_json!r} is not a JSON list of strings: "
            'write it like \'["no", "yes"]\''
        ) from exc
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadInput(
            f"--tokens {tokens_json!r} is not a JSON list of strings: "
            'write it like \'["no", "yes"]\''
        )
    if not value:
        raise BadInput(
            '--tokens is an empty list: give the classifier tokens, e.g. \'["no", "yes"]\''
        )
    if any(t == "" for t in value):
        raise BadInput("--tokens contains an empty string: every classifier token must be text")
    dupes = sorted({t for t in value if value.count(t) > 1})
    if dupes:
        raise BadInput(f"--tokens lists {dupes[0]!r} twice: each classifier token must be distinct")
    return tuple(value)


def parse_token_ids(ids_json: str) -> tuple[int, ...]:
    """Parse ``--token-ids`` (a JSON list of distinct non-negative ints). Whether they are inside
    the vocabulary and the head is checked against the source (``TokenizerFiles.resolve_id``,
    ``convert._check_head_shape``)."""
    hint = "write it like '[0]' or '[2152, 9693]'"
    try:
        value = json.loads(ids_json)
    except json.JSONDecodeError as exc:
        raise BadInput(f"--token-ids {ids_json!r} is not a JSON list of integers: {hint}") from exc
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise BadInput(f"--token-ids {ids_json!r} is not a JSON list of integers: {hint}")
    if not value:
        raise BadInput(f"--token-ids is an empty list: give the classifier token ids, {hint}")
    negative = [i for i in value if i < 0]
    if negative:
        raise BadInput(f"--token-ids holds {negative[0]}: vocabulary ids are >= 0")
    dupes = sorted({i for i in value if value.count(i) > 1})
    if dupes:
        raise BadInput(
            f"--token-ids lists {dupes[0]} twice: each classifier token must be distinct"
        )
    return tuple(value)


def parse_scale(text: str | float) -> float:
    """Parse ``--scale``: a finite, non-zero number (e.g. ``0.2`` for a score of ``logit / 5``)."""
    try:
        value = float(text)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"--scale {text!r} is not a number: give e.g. 0.2 for logit / 5") from exc
    if not math.isfinite(value) or value == 0.0:
        raise BadInput(f"--scale {text!r} must be finite and non-zero: give e.g. 0.2 for logit / 5")
    return value


def check_token_count(tokens: tuple[str, ...] | tuple[int, ...], method: str) -> Method:
    """``method`` as a :data:`Method`, once it is known and fits the number of tokens."""
    row = known_method(method)
    if row is None:
        raise BadInput(f"unknown --method {method!r}: use one of {', '.join(METHODS)}")
    if not row.fits(len(tokens)):
        others = [m for m in METHODS if m not in two_way_methods()]
        raise BadInput(
            f"--method {row.name} needs {row.token_rule}, got {len(tokens)}: "
            f'give \'["no", "yes"]\'-style tokens or use --method {" or ".join(others)}'
        )
    return row.name


MAX_TEMPLATE_BYTES = 1024 * 1024  # chat templates are a few KB; /dev/zero never ends


def read_template(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise BadInput(f"--template {path} is not a regular file: give a Jinja file")
            raw = fh.read(MAX_TEMPLATE_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise BadInput(f"--template {path} does not exist: give the path of a Jinja file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--template {path} cannot be read ({exc.__class__.__name__})") from exc
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise BadInput(f"--template {path} is larger than 1 MiB: give a Jinja chat template")
    if not text.strip():
        raise BadInput(f"--template {path} is empty: give a Jinja chat template")
    return text
