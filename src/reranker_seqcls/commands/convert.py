"""``convert``: a causal-LM reranker into a *ForSequenceClassification checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import click

from reranker_seqcls.commands.options import RecipeOptions, conversion_options, recipe_options
from reranker_seqcls.console import log

T = TypeVar("T")


@click.command()
@click.argument("source", required=False)
@click.argument("output", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--revision", help="Branch, tag or commit of a Hub SOURCE.")
@recipe_options
@conversion_options
@click.option(
    "--model_name", "model_name", hidden=True, help="Reference-script spelling of SOURCE."
)
@click.option("--path", "path_", hidden=True, type=click.Path(path_type=Path), help="= OUTPUT.")
@click.option(
    "--classifier_from_tokens", hidden=True, help="Reference-script spelling of --tokens."
)
@click.option("--device", hidden=True, help="Accepted for the reference script; unused.")
@click.option(
    "--gguf",
    "gguf_types",
    metavar="TYPES",
    help="Also write a GGUF per type (f16, q8_0, f32; e.g. f16,q8_0) that llama-server "
    "--reranking scores like the original (qwen3-architecture rerankers only).",
)
@click.option(
    "--gguf-dir", type=click.Path(path_type=Path, file_okay=False),
    help="Where --gguf writes its files (default: OUTPUT-GGUF beside OUTPUT).",
)  # fmt: skip
def convert(
    source: str | None,
    output: Path | None,
    revision: str | None,
    force: bool,
    force_copy: bool,
    allow_pickle: bool,
    allow_softcapping: bool,
    model_name: str | None,
    path_: Path | None,
    classifier_from_tokens: str | None,
    device: str | None,
    gguf_types: str | None,
    gguf_dir: Path | None,
    **recipe_kwargs: Any,
) -> None:
    """Convert the causal-LM reranker SOURCE (a directory or Hub repo id) into OUTPUT.

    Also accepts the reference script's flags: --model_name SRC --classifier_from_tokens JSON
    --method M --path OUT.
    """
    from dataclasses import replace

    from reranker_seqcls.convert.converter import convert as run_convert
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.gguf.plan import plan_gguf
    from reranker_seqcls.steps import find_source, locate_source

    options = RecipeOptions.pop(recipe_kwargs)
    source = _one_of(source, model_name, "SOURCE", "--model_name")
    output = _one_of(output, path_, "OUTPUT", "--path")
    tokens = _one_of(options.tokens, classifier_from_tokens, "--tokens", "--classifier_from_tokens")
    options = replace(options, tokens=tokens)
    if source is None or output is None:
        raise BadInput("convert needs SOURCE and OUTPUT: reranker-seqcls convert SOURCE OUTPUT")
    gguf = plan_gguf(gguf_types, gguf_dir, output, force=force)  # before any download
    spec = find_source(source, revision, None)  # a missing repo says so, first
    name = spec.name
    if options.explicit:  # options are validated before anything is downloaded
        recipe = options.resolve(name)
        gguf.refuse_recipe(recipe)
    else:
        from reranker_seqcls.recipes.refusals import refuse_by_name

        refuse_by_name(name)
    source_dir, source_ref = locate_source(spec, None, log)
    if not options.explicit:  # the name, or the source's own sentence-transformers files
        recipe = options.resolve(name, source_dir, log)
    gguf.refuse_source(recipe, source_dir, name)  # before OUTPUT is written
    run_convert(
        source_dir,
        output,
        recipe,
        source_ref=source_ref,
        force=force,
        copy=force_copy,
        allow_pickle=allow_pickle,
        allow_softcapping=allow_softcapping,
        log=log,
    )
    gguf.write(output, recipe, name, log)


def _one_of(a: T | None, b: T | None, name_a: str, name_b: str) -> T | None:
    from reranker_seqcls.errors import BadInput

    if a is not None and b is not None and a != b:
        raise BadInput(f"give {name_a} or {name_b}, not both")
    return a if a is not None else b
