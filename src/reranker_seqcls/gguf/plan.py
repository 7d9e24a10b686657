"""``convert --gguf``: the refusals that come before anything is written, then the files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.gguf.produce import check_gguf_dir, default_gguf_dir, write_ggufs
from reranker_seqcls.gguf.refusal import refuse_gguf_by_config, refuse_gguf_by_recipe
from reranker_seqcls.gguf.types import GgufType, parse_gguf_types
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe


@dataclass(frozen=True)
class GgufPlan:
    types: list[GgufType]
    directory: Path | None

    def refuse_recipe(self, recipe: Recipe) -> None:
        if self.types:
            refuse_gguf_by_recipe(recipe.name)

    def refuse_source(self, recipe: Recipe, source_dir: Path, name: str) -> None:
        """Refuse a family or an architecture llama.cpp gives no head (exit 2)."""
        if not self.types:
            return
        refuse_gguf_by_recipe(recipe.name)
        try:
            config = json.loads((source_dir / CONFIG_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            config = {}
        refuse_gguf_by_config(config if isinstance(config, dict) else {}, name)

    def write(self, converted: Path, recipe: Recipe, name: str, log: Log) -> None:
        if not self.types or self.directory is None:
            return
        stem = name.rstrip("/").split("/")[-1]
        written = write_ggufs(converted, self.directory, self.types, recipe, stem=stem, log=log)
        log(f"wrote {self.directory} ({', '.join(w.path.name for w in written)})")


def plan_gguf(value: str | None, directory: Path | None, output: Path, *, force: bool) -> GgufPlan:
    """Parse ``--gguf``/``--gguf-dir`` and check the directory, before any download."""
    types = parse_gguf_types(value)
    if not types:
        return GgufPlan([], None)
    target = directory or default_gguf_dir(output)
    check_gguf_dir(target, force=force)
    return GgufPlan(types, target)
