"""``check``: prove that a converted checkpoint scores like its source, and record the verdict
in the converted directory (what ``push`` requires)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reranker_seqcls.commands.options import (
    CheckOptions,
    RecipeOptions,
    check_options,
    recipe_options,
)
from reranker_seqcls.console import log, say


@click.command()
@click.argument("source")
@click.argument("converted", type=click.Path(path_type=Path, file_okay=False))
@click.option("--revision", help="Branch, tag or commit of a Hub SOURCE.")
@recipe_options
@check_options
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the full report as JSON here. The verdict is always recorded in "
    "CONVERTED/parity_report.json, bound to the files checked: push requires it.",
)
@click.option(
    "--gguf-file", "gguf_files", multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A GGUF of CONVERTED (repeatable): adds a llama.cpp row, scored by llama-server "
    "--reranking through /v1/rerank ($RERANKER_SEQCLS_LLAMA_SERVER, else llama-server on PATH).",
)  # fmt: skip
def check(
    source: str,
    converted: Path,
    revision: str | None,
    report_file: Path | None,
    gguf_files: tuple[Path, ...],
    **kwargs: Any,
) -> int:
    """Prove that CONVERTED scores like the original reranker SOURCE.

    Scores a set of (query, document) pairs with the original causal LM (the family's official
    prompt and math), the converted classifier (batched and one by one), sentence-transformers'
    CrossEncoder on raw text and, when vLLM can be used, vLLM's pooling runner (LLM.score with
    the saved chat template). Exit code 1 when parity fails. The verdict is recorded in
    CONVERTED/parity_report.json with the sha256 of the files checked, whatever --report says.
    """
    from reranker_seqcls.check.record import write_verdict
    from reranker_seqcls.check.streamed import streamed_check
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.gguf.check import prepare_gguf_check
    from reranker_seqcls.gguf.row import add_llama_rows
    from reranker_seqcls.names import CONFIG_FILE
    from reranker_seqcls.steps import (
        check_recipe,
        find_source,
        load_check_pairs,
        locate_source,
        resolve_token_ids,
    )

    options, checking = RecipeOptions.pop(kwargs), CheckOptions.pop(kwargs)
    if not (converted / CONFIG_FILE).is_file():
        raise BadInput(f"{converted} has no config.json: give a converted checkpoint directory")
    llama = prepare_gguf_check(gguf_files)  # the files and llama-server, before any scoring
    spec = find_source(source, revision, None)
    source_dir, _ = locate_source(spec, None, log)
    recipe = check_recipe(
        spec.name, converted, options.preset, options.tokens, options.method,
        options.template, token_ids=options.token_ids, scale=options.scale, source_dir=source_dir,
    )  # fmt: skip
    token_ids = resolve_token_ids(source_dir, recipe)
    pairs = load_check_pairs(recipe, checking.pairs_file)
    report = streamed_check(
        source_dir,
        converted,
        recipe,
        pairs,
        token_ids=token_ids,
        dtype=checking.dtype,
        allow_softcapping=checking.allow_softcapping,
        vllm_python=checking.vllm_python,
        check_memory=checking.check_memory,
        full=checking.full_check,
        log=log,
    )
    rows = []
    if llama is not None:
        rows = add_llama_rows(report, list(gguf_files), converted, pairs,
                              recipe.default_instruction, llama, log)  # fmt: skip
    for row in report.table_rows():
        say(row)
    ggufs = [(r.path, r.gguf_type, r.passed) for r in rows]  # bound for push, like the files
    write_verdict(report, converted, also=report_file, ggufs=ggufs)
    report.require_passed()  # ParityFailed: exit 1, its first reason on stderr
    return 0
