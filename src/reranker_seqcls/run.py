"""The steps the commands share: choosing the recipe and pairs of a check, and the full
download → convert → check → push run."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import BadInput
from .files import PROVENANCE_FILE
from .pairs import Pair, builtin_pairs, load_pairs
from .recipes import Recipe, recipe_from_provenance, resolve_recipe


def check_recipe(
    source: Path,
    converted: Path,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
) -> Recipe:
    """The recipe the original is scored with: explicit options, else the one the conversion
    recorded, else the family detected from the source's name."""
    if preset or tokens or method or template:
        return resolve_recipe(
            source_name=source.resolve().name,
            preset=preset,
            tokens_json=tokens,
            method=method,
            template_path=template,
        )
    provenance_path = converted / PROVENANCE_FILE
    if provenance_path.is_file():
        from .consumer_files import TEMPLATE_FILE_NAME

        recorded = recipe_from_provenance(
            json.loads(provenance_path.read_text()), converted / TEMPLATE_FILE_NAME
        )
        if recorded is not None:
            return recorded
    return resolve_recipe(source_name=source.resolve().name)


def load_check_pairs(recipe: Recipe, pairs_file: Path | None) -> list[Pair]:
    if pairs_file is not None:
        return load_pairs(pairs_file)
    takes_instruction = recipe.prompt_style in ("qwen3-reranker", "mxbai-rerank-v2", "template")
    return builtin_pairs(takes_instruction=takes_instruction)


def resolve_token_ids(source: Path, recipe: Recipe) -> list[int]:
    from .tokens import TokenizerFiles, resolve_tokens

    if not (source / "config.json").is_file():
        raise BadInput(f"{source} has no config.json: give the original checkpoint")
    return [t.id for t in resolve_tokens(TokenizerFiles(source), recipe.tokens)]
