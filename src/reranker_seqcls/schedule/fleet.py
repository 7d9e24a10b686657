"""The fleet file: the rerankers an organisation keeps converted, one entry per target.

```yaml
defaults:            # optional, applies to every entry that does not set the key
  private: false
rerankers:           # or the list alone, at the top level
  - model: Qwen/Qwen3-Reranker-0.6B
    target: my-org/Qwen3-Reranker-0.6B-seq-cls
    preset: qwen3-reranker
  - model: my-org/custom-reranker
    revision: v2               # optional branch, tag or commit (default: main)
    target: my-org/custom-reranker-seq-cls
    tokens: ["no", "yes"]
    method: from_2_way_softmax
    template: templates/custom.jinja   # relative to this file
```

The file is user input and may be hostile (it can reach a workflow log): it is size-capped,
parsed with PyYAML's safe loader, and every value is type- and character-checked before use.
A problem is one :class:`BadInput` line naming the entry and the key.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.recipe import (
    METHODS,
    PRESETS,
    Recipe,
    detect_preset,
    preset_names,
    resolve_recipe,
)

MAX_FILE_BYTES = 1 << 20
MAX_TEMPLATE_BYTES = 1 << 20
# A GitHub Actions matrix runs at most 256 jobs.
MAX_ENTRIES = 256
MAX_TOKENS = 64
MAX_TOKEN_CHARS = 64

RECIPE_KEYS = ("preset", "tokens", "method", "template", "private", "create_pr")
ENTRY_KEYS = ("model", "revision", "target", *RECIPE_KEYS)
TOP_KEYS = ("defaults", "rerankers")

# Hub repo ids (owner/name, at most 96 characters a part) and git revisions, whole-string.
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][\w./+-]{0,199}")


@dataclass(frozen=True)
class FleetEntry:
    """One reranker to keep converted: the options of one ``reranker-seqcls run``."""

    index: int  # 1-based position in the file
    model: str
    target: str
    revision: str | None
    preset: str | None
    tokens: tuple[str, ...] | None
    method: str | None
    template: str | None  # path relative to the working directory, as run and the Action take it
    private: bool
    create_pr: bool
    recipe: Recipe

    @property
    def label(self) -> str:
        return f"entry {self.index} ({self.target})"

    @property
    def tokens_json(self) -> str | None:
        return json.dumps(list(self.tokens), ensure_ascii=False) if self.tokens else None

    def run_options(self) -> dict[str, str | bool]:
        """The entry as Action inputs / ``run`` options: every key present, ``""`` when unset."""
        return {
            "model": self.model,
            "revision": self.revision or "",
            "target_repo": self.target,
            "preset": self.preset or "",
            "tokens": self.tokens_json or "",
            "method": self.method or "",
            "template": self.template or "",
            "private": self.private,
            "create_pr": self.create_pr,
        }


@dataclass(frozen=True)
class Fleet:
    path: Path
    entries: tuple[FleetEntry, ...]


def load_fleet(path: Path) -> Fleet:
    """Read and validate a fleet file; :class:`BadInput` names the first problem."""
    where = _printable(str(path))
    document = _load_yaml(path, where)
    if isinstance(document, dict):
        _refuse_unknown(document, TOP_KEYS, where)
        if "rerankers" not in document:
            raise BadInput(f"{where}: no `rerankers:` list: list the rerankers to keep converted")
        defaults = document.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise BadInput(f"{where}: defaults: must be a mapping of {', '.join(RECIPE_KEYS)}")
        _refuse_unknown(defaults, RECIPE_KEYS, f"{where}: defaults")
        _check_values(defaults, f"{where}: defaults", path.parent)
        entries = document["rerankers"]
    elif isinstance(document, list):
        defaults, entries = {}, document
    elif document is None:
        raise BadInput(f"{where} is empty: list the rerankers under `rerankers:`")
    else:
        raise BadInput(f"{where}: must hold a `rerankers:` list, not {_kind(document)}")
    if not isinstance(entries, list) or not entries:
        raise BadInput(f"{where}: rerankers: must be a non-empty list of entries")
    if len(entries) > MAX_ENTRIES:
        raise BadInput(
            f"{where}: {len(entries)} entries, more than the {MAX_ENTRIES} jobs a GitHub Actions "
            "matrix runs: split the fleet into several files"
        )
    base = path.parent
    parsed = [
        _entry(index, raw, defaults, base, where) for index, raw in enumerate(entries, start=1)
    ]
    seen: dict[str, FleetEntry] = {}
    for entry in parsed:
        key = entry.target.casefold()
        if key in seen:
            raise BadInput(
                f"{where}: {entry.label}: target: {entry.target} is also the target of entry "
                f"{seen[key].index}: give each entry its own target repo"
            )
        seen[key] = entry
    return Fleet(path, tuple(parsed))


# --------------------------------------------------------------------------------- parsing


def _load_yaml(path: Path, where: str) -> Any:
    import yaml

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(
                f"{where} is {size} bytes: a fleet file is at most {MAX_FILE_BYTES} bytes"
            )
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BadInput(f"{where} does not exist: give the path of the fleet file") from None
    except IsADirectoryError:
        raise BadInput(f"{where} is a directory: give the path of the fleet file") from None
    except UnicodeDecodeError:
        raise BadInput(f"{where} is not UTF-8 text: save the fleet file as UTF-8") from None
    except OSError as exc:
        why = exc.strerror or exc.__class__.__name__
        raise BadInput(f"{where} cannot be read ({why}): check the path and permissions") from None
    try:
        return yaml.load(text, Loader=_strict_loader())  # a SafeLoader: plain data only
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        problem = _printable(exc.problem or exc.context or "syntax error", 120)
        raise BadInput(f"{where} is not valid YAML: {problem}{line}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{where} is not valid YAML: {_printable(str(exc), 120)}") from None
    except RecursionError:
        raise BadInput(f"{where} nests too deeply: a fleet file is a list of entries") from None


@functools.cache
def _strict_loader() -> type:
    """PyYAML's safe loader (the C one when built), refusing a key given twice in one mapping
    (PyYAML silently keeps the last). Built on first use: importing this module imports no yaml."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):  # type: ignore[misc, valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys: set[str] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str):
                    if key in keys:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {_shown(key)} given twice", key_node.start_mark
                        )
                    keys.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _entry(index: int, raw: object, defaults: dict[str, Any], base: Path, where: str) -> FleetEntry:
    here = f"{where}: entry {index}"
    if not isinstance(raw, dict):
        raise BadInput(f"{here}: must be a mapping with model and target, not {_kind(raw)}")
    if isinstance(raw.get("target"), str) and _REPO_ID.fullmatch(raw["target"]):
        here = f"{here} ({raw['target']})"  # name the entry by its target where it has one
    _refuse_unknown(raw, ENTRY_KEYS, here)
    target = _repo_id(raw, "target", here)
    model = _repo_id(raw, "model", here)
    if model.casefold() == target.casefold():
        raise BadInput(f"{here}: target: is the model itself: give a separate repo to push to")
    values = {**defaults, **raw}
    revision = _optional_text(values, "revision", here, _REVISION, "a branch, tag or commit")
    preset = _choice(values, "preset", here, tuple(PRESETS))
    method = _choice(values, "method", here, METHODS)
    tokens = _tokens(values, here)
    template = _template(values, here, base)
    private = _flag(values, "private", here)
    create_pr = _flag(values, "create_pr", here)

    if preset is not None and (tokens is not None or method is not None):
        raise BadInput(f"{here}: preset: give either preset or tokens and method, not both")
    if (tokens is None) != (method is None):
        missing = "method" if method is None else "tokens"
        raise BadInput(f"{here}: {missing}: a custom recipe needs both tokens and method")
    if method == "from_2_way_softmax" and tokens is not None and len(tokens) != 2:
        raise BadInput(
            f"{here}: tokens: from_2_way_softmax needs exactly 2 tokens [false, true], "
            f"got {len(tokens)}"
        )
    if preset is None and tokens is None and detect_preset(model) is None:
        raise BadInput(
            f"{here}: preset: the family cannot be told from the model name: add preset "
            f"({preset_names()}) or tokens and method"
        )
    try:
        recipe = resolve_recipe(
            source_name=model,
            preset=preset,
            tokens_json=json.dumps(list(tokens)) if tokens is not None else None,
            method=method,
            template_path=(base / template) if template is not None else None,
        )
    except BadInput as exc:
        raise BadInput(f"{here}: {exc}") from None
    return FleetEntry(
        index=index,
        model=model,
        target=target,
        revision=revision,
        preset=preset,
        tokens=tokens,
        method=method,
        template=_relative_to_cwd(base / template) if template is not None else None,
        private=private,
        create_pr=create_pr,
        recipe=recipe,
    )


def _check_values(values: dict[str, Any], here: str, base: Path) -> None:
    """Type-check the recipe options of ``values`` (so a bad default is reported as one)."""
    _choice(values, "preset", here, tuple(PRESETS))
    _choice(values, "method", here, METHODS)
    _tokens(values, here)
    _template(values, here, base)
    _flag(values, "private", here)
    _flag(values, "create_pr", here)


def _refuse_unknown(mapping: dict[Any, Any], allowed: tuple[str, ...], here: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else f"use {', '.join(allowed)}"
            raise BadInput(f"{here}: unknown key {_shown(key)}: {hint}")


def _repo_id(raw: dict[str, Any], key: str, here: str) -> str:
    value = raw.get(key)
    if value is None:
        raise BadInput(f"{here}: {key}: missing: give the Hub repo id (owner/name)")
    if not isinstance(value, str) or not _REPO_ID.fullmatch(value) or ".." in value:
        raise BadInput(f"{here}: {key}: {_shown(value)} is not a Hub repo id: give owner/name")
    return value


def _optional_text(
    values: dict[str, Any], key: str, here: str, pattern: re.Pattern[str], what: str
) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        quote = " (quote it)" if isinstance(value, int | float) else ""
        raise BadInput(f"{here}: {key}: {_shown(value)} is not {what}{quote}")
    return value


def _choice(values: dict[str, Any], key: str, here: str, choices: tuple[str, ...]) -> str | None:
    value = values.get(key)
    if value is None:
        return None
    if value not in choices:
        raise BadInput(f"{here}: {key}: {_shown(value)} is not one of {', '.join(choices)}")
    return str(value)


def _tokens(values: dict[str, Any], here: str) -> tuple[str, ...] | None:
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
                f"{here}: tokens: {_shown(token)} is not a token: each is a non-empty string "
                f"of at most {MAX_TOKEN_CHARS} characters"
            )
    if len(set(value)) != len(value):
        raise BadInput(f"{here}: tokens: a token is listed twice: each must be distinct")
    return tuple(value)


def _template(values: dict[str, Any], here: str, base: Path) -> str | None:
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
            f"{here}: template: {_shown(value)} is not a relative file path: give the Jinja "
            "file's path relative to the fleet file"
        )
    path = base / value
    if not path.is_file():
        raise BadInput(f"{here}: template: {_shown(value)} is not a file next to the fleet file")
    if path.stat().st_size > MAX_TEMPLATE_BYTES:
        raise BadInput(
            f"{here}: template: {_shown(value)} is larger than {MAX_TEMPLATE_BYTES} bytes"
        )
    return value


def _flag(values: dict[str, Any], key: str, here: str) -> bool:
    value = values.get(key, False)
    if not isinstance(value, bool):
        raise BadInput(f"{here}: {key}: must be true or false, not {_shown(value)}")
    return value


def _relative_to_cwd(path: Path) -> str:
    """A template's path as ``run`` and the Action's convert step, started in the same working
    directory as ``plan``, open it."""
    return Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix()


# --------------------------------------------------------------------------------- messages


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _shown(value: object) -> str:
    """A value from the file as short, printable, one-line text for an error message."""
    if isinstance(value, str):
        return repr(_printable(value, 60))
    if isinstance(value, bool | int | float):
        return repr(value)
    return _kind(value)


def _printable(text: str, limit: int = 200) -> str:
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
