"""Which recipe a conversion uses: from explicit options, a preset, the source's name and files,
or the provenance a previous conversion recorded."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.recipes.methods import METHODS
from reranker_seqcls.recipes.options import (
    check_token_count,
    parse_scale,
    parse_token_ids,
    parse_tokens,
    read_template,
)
from reranker_seqcls.recipes.presets import PRESETS, detect_preset, preset_names
from reranker_seqcls.recipes.recipe import Recipe


def resolve_recipe(
    *,
    source_name: str,
    preset: str | None = None,
    tokens_json: str | None = None,
    method: str | None = None,
    template_path: Path | None = None,
    token_ids_json: str | None = None,
    scale: str | float | None = None,
    source_dir: Path | None = None,
    log: Log | None = None,
) -> Recipe:
    """Pick the recipe from explicit options, or from the source's name and files.

    Explicit tokens and method that equal the preset detected from the source name keep that
    preset (with its template), so the reference script's flags give a complete checkpoint.
    Without any recipe option, a ``source_dir`` carrying sentence-transformers LogitScore files
    gives the recipe (``st_recipe``); when the name names a family too, both must agree.
    """
    template = read_template(template_path) if template_path is not None else None
    if tokens_json is not None and token_ids_json is not None:
        raise BadInput("give either --tokens or --token-ids, not both: drop one of them")
    custom = tokens_json is not None or token_ids_json is not None
    if preset is not None:
        if custom or method is not None or scale is not None:
            raise BadInput(
                "give either --preset or --tokens/--token-ids/--method/--scale, not both: "
                "drop one of them"
            )
        return _with_template(_named_preset(preset, source_name), template)
    if not custom and method is None:
        if scale is not None:
            raise BadInput(
                "--scale belongs to a custom recipe: add --tokens/--token-ids and --method"
            )
        return _with_template(_from_name_or_files(source_name, source_dir, log), template)
    if not custom or method is None:
        raise BadInput(
            "a custom recipe needs both --tokens and --method (or --token-ids and --method): "
            "add the missing one"
        )
    return _with_template(
        _custom(source_name, tokens_json, token_ids_json, method, scale), template
    )


def _named_preset(preset: str, source_name: str) -> Recipe:
    if preset not in PRESETS:
        raise BadInput(f"unknown preset {preset!r}: use one of {preset_names()}")
    from reranker_seqcls.recipes.refusals import refuse_by_name

    refuse_by_name(source_name)
    return PRESETS[preset]


def _from_name_or_files(source_name: str, source_dir: Path | None, log: Log | None) -> Recipe:
    """No recipe option: the source's sentence-transformers files, else its family name."""
    detected = detect_preset(source_name)
    if source_dir is not None:
        from reranker_seqcls.recipes.sentence_transformers import reconcile, st_recipe

        from_files = st_recipe(source_dir)
        if from_files is not None:
            chosen = reconcile(detected, from_files, source_dir, source_name)
            if log is not None:
                log(from_files.description if chosen is from_files else
                    f"recipe: the sentence-transformers files of {source_name} agree with "
                    f"preset {chosen.name} (ids {list(from_files.token_ids)}); their "
                    f"activation is {str(from_files.activation_fn).rsplit('.', 1)[-1]}, the "
                    f"converted checkpoint serves the preset's score, "
                    f"{chosen.score_formula}")  # fmt: skip
            return chosen
    if detected is None:
        raise BadInput(
            f"cannot tell the reranker family from {source_name!r}: pass --preset "
            f"({preset_names()}) or --tokens and --method"
        )
    return detected


def _custom(
    source_name: str,
    tokens_json: str | None,
    token_ids_json: str | None,
    method: str,
    scale: str | float | None,
) -> Recipe:
    """A recipe from --tokens/--token-ids, --method and --scale (the preset they spell, if any)."""
    tokens: tuple[str, ...] = parse_tokens(tokens_json) if tokens_json is not None else ()
    token_ids = parse_token_ids(token_ids_json) if token_ids_json is not None else ()
    checked = check_token_count(tokens or token_ids, method)
    factor = parse_scale(scale) if scale is not None else 1.0
    detected = detect_preset(source_name)
    if (
        detected is not None
        and detected.tokens == tokens
        and detected.token_ids == token_ids
        and detected.method == checked
        and detected.scale == factor
    ):
        return detected
    return Recipe(
        name="custom",
        tokens=tokens,
        method=checked,
        template=None,
        prepend_bos=False,
        prompt_style="template",
        token_ids=token_ids,
        scale=factor,
    )


def _with_template(recipe: Recipe, template: str | None) -> Recipe:
    if template is None:
        return recipe
    return replace(recipe, template=template, prompt_style="template")


def recipe_from_provenance(recorded: object, template_path: Path | None) -> Recipe | None:
    """The recipe a conversion recorded (the ``recipe`` of its provenance file, any JSON value),
    for checks and re-conversions; None when it is not a usable recipe."""
    if not isinstance(recorded, dict):
        return None
    name = recorded.get("name")
    if name in PRESETS and recorded.get("prompt_style") == name:
        return PRESETS[name]
    tokens = tuple(str(t) for t in recorded.get("tokens") or ())
    raw_ids = recorded.get("token_ids") or ()
    token_ids = tuple(i for i in raw_ids if isinstance(i, int) and not isinstance(i, bool))
    method = recorded.get("method")
    if (not tokens and not token_ids) or method not in METHODS or len(token_ids) != len(raw_ids):
        return None
    scale = recorded.get("scale", 1.0)
    if not isinstance(scale, int | float) or not math.isfinite(scale) or scale == 0:
        return None
    template = None
    if recorded.get("template_sha256") and template_path is not None and template_path.is_file():
        template = template_path.read_text("utf-8")
    base = PRESETS.get(str(name))
    activation = recorded.get("activation_fn")
    return Recipe(
        name=str(name),
        tokens=() if token_ids else tokens,
        method=method,
        template=template,
        prepend_bos=bool(recorded.get("prepend_bos")),
        prompt_style="sentence-transformers"
        if recorded.get("prompt_style") == "sentence-transformers"
        else "template",
        default_instruction=recorded.get("default_instruction")
        or (base.default_instruction if base else None),
        token_ids=token_ids,
        scale=float(scale),
        activation_fn=activation if isinstance(activation, str) else None,
        preset=base is not None,
    )
