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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.methods import METHODS, scoring_method
from reranker_seqcls.recipes.presets import PRESETS, detect_preset, preset_names
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.recipes.resolve import resolve_recipe
from reranker_seqcls.schedule.fleet_values import (
    REPO_ID,
    REVISION,
    check_values,
    choice_value,
    flag_value,
    optional_text,
    refuse_unknown,
    relative_to_cwd,
    repo_id_value,
    template_value,
    tokens_value,
)
from reranker_seqcls.schedule.fleet_yaml import kind_of, load_yaml, printable

# A GitHub Actions matrix runs at most 256 jobs.
MAX_ENTRIES = 256

RECIPE_KEYS = ("preset", "tokens", "method", "template", "private", "create_pr")
ENTRY_KEYS = ("model", "revision", "target", *RECIPE_KEYS)
TOP_KEYS = ("defaults", "rerankers")


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
    where = printable(str(path))
    document = load_yaml(path, where)
    if isinstance(document, dict):
        refuse_unknown(document, TOP_KEYS, where)
        if "rerankers" not in document:
            raise BadInput(f"{where}: no `rerankers:` list: list the rerankers to keep converted")
        defaults = document.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise BadInput(f"{where}: defaults: must be a mapping of {', '.join(RECIPE_KEYS)}")
        refuse_unknown(defaults, RECIPE_KEYS, f"{where}: defaults")
        check_values(defaults, f"{where}: defaults", path.parent)
        entries = document["rerankers"]
    elif isinstance(document, list):
        defaults, entries = {}, document
    elif document is None:
        raise BadInput(f"{where} is empty: list the rerankers under `rerankers:`")
    else:
        raise BadInput(f"{where}: must hold a `rerankers:` list, not {kind_of(document)}")
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


def _entry(index: int, raw: object, defaults: dict[str, Any], base: Path, where: str) -> FleetEntry:
    here = f"{where}: entry {index}"
    if not isinstance(raw, dict):
        raise BadInput(f"{here}: must be a mapping with model and target, not {kind_of(raw)}")
    if isinstance(raw.get("target"), str) and REPO_ID.fullmatch(raw["target"]):
        here = f"{here} ({raw['target']})"  # name the entry by its target where it has one
    refuse_unknown(raw, ENTRY_KEYS, here)
    target = repo_id_value(raw, "target", here)
    model = repo_id_value(raw, "model", here)
    if model.casefold() == target.casefold():
        raise BadInput(f"{here}: target: is the model itself: give a separate repo to push to")
    values = {**defaults, **raw}
    revision = optional_text(values, "revision", here, REVISION, "a branch, tag or commit")
    preset = choice_value(values, "preset", here, tuple(PRESETS))
    method = choice_value(values, "method", here, METHODS)
    tokens = tokens_value(values, here)
    template = template_value(values, here, base)
    private = flag_value(values, "private", here)
    create_pr = flag_value(values, "create_pr", here)

    if preset is not None and (tokens is not None or method is not None):
        raise BadInput(f"{here}: preset: give either preset or tokens and method, not both")
    if (tokens is None) != (method is None):
        missing = "method" if method is None else "tokens"
        raise BadInput(f"{here}: {missing}: a custom recipe needs both tokens and method")
    rule = scoring_method(method) if method is not None else None
    if rule is not None and tokens is not None and not rule.fits(len(tokens)):
        raise BadInput(f"{here}: tokens: {method} needs {rule.token_rule}, got {len(tokens)}")
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
        raise BadInput(f"{here}: {exc}") from exc
    return FleetEntry(
        index=index,
        model=model,
        target=target,
        revision=revision,
        preset=preset,
        tokens=tokens,
        method=method,
        template=relative_to_cwd(base / template) if template is not None else None,
        private=private,
        create_pr=create_pr,
        recipe=recipe,
    )


# --------------------------------------------------------------------------------- messages
