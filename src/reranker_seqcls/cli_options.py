"""Option groups shared by several commands (click decorators)."""

from __future__ import annotations

from pathlib import Path

import click


def stack(func, options):
    """Apply click options so they list in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def recipe_options(func):
    """--preset / custom recipe options shared by convert, check and run."""
    options = [
        click.option("--preset", help="Reranker family (see `reranker-seqcls presets`)."),
        click.option("--tokens", help='Custom classifier tokens as JSON, e.g. \'["no","yes"]\'.'),
        click.option(
            "--method",
            type=click.Choice(["from_2_way_softmax", "no_post_processing"]),
            help="How the classifier tokens' logits become the score.",
        ),
        click.option(
            "--template",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Scoring chat template (Jinja, roles query/document) for a custom recipe.",
        ),
        click.option(
            "--token-ids", "token_ids",
            help="Custom classifier tokens by vocabulary id as JSON, e.g. '[0]' (instead of "
            "--tokens).",
        ),
        click.option(
            "--scale",
            help="Constant the score logit is multiplied by, folded into the head (e.g. 0.2 for "
            "logit / 5).",
        ),
    ]  # fmt: skip
    return stack(func, options)


def conversion_options(func):
    options = [
        click.option("--force", is_flag=True, help="Replace a non-empty OUTPUT."),
        click.option(
            "--copy", "force_copy", is_flag=True,
            help="Write real copies of unchanged shards instead of reflinks/hard links.",
        ),
        click.option(
            "--allow-pickle", is_flag=True,
            help="Accept a .bin-only checkpoint (loaded with torch weights_only=True).",
        ),
        click.option(
            "--allow-softcapping", is_flag=True,
            help="Convert despite final_logit_softcapping (scores differ; check reports it).",
        ),
    ]  # fmt: skip
    return stack(func, options)


def check_options(func):
    """Parity-check options shared by check and run."""
    options = [
        click.option(
            "--pairs", "pairs_file", type=click.Path(path_type=Path, dir_okay=False),
            help="JSONL of query/document[/instruction] pairs instead of the built-in set.",
        ),
        click.option(
            "--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
            help="Parity-check compute dtype (default: the checkpoint's).",
        ),
        click.option(
            "--allow-softcapping", is_flag=True,
            help="Accept a softcapped source when rankings agree (differences are reported).",
        ),
        click.option(
            "--vllm-python", type=click.Path(path_type=Path, dir_okay=False),
            help="Python of an environment with vLLM: adds a vllm row to the check (default: "
            "$RERANKER_SEQCLS_VLLM_PYTHON, else this Python if it imports vllm, else skipped).",
        ),
        click.option(
            "--check-memory", default="1.5GB", show_default=True,
            help="Memory the check may use. A model whose float32 load does not fit is scored "
            "layer by layer from its shards (one module's weights at a time) and its consumers "
            "are proven on a structural twin (same config, tokenizer, template, fewer layers).",
        ),
    ]  # fmt: skip
    return stack(func, options)


def hub_options(func):
    options = [
        click.option("--private", is_flag=True, help="Create the target repo as private."),
        click.option("--create-pr", is_flag=True, help="Open a pull request instead."),
        click.option("--dry-run", is_flag=True, help="Do everything but push; list what would be."),
        click.option(
            "--token", envvar="HF_TOKEN", show_envvar=True,
            help="Hub token (prefer the HF_TOKEN environment variable).",
        ),
    ]  # fmt: skip
    return stack(func, options)
