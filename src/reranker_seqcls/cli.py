"""The ``reranker-seqcls`` command line: parse, call, report. Imports stay lazy so that
``--help`` does not pay for numpy, tokenizers or torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from reranker_seqcls import __version__
from reranker_seqcls.cli_options import (
    check_options,
    conversion_options,
    hub_options,
    recipe_options,
)
from reranker_seqcls.console import log, run_command_line, say
from reranker_seqcls.interrupt import Interrupted


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reranker-seqcls")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """Convert causal-LM rerankers into *ForSequenceClassification checkpoints that score
    identically in vLLM, sentence-transformers and transformers.

    \b
    Exit codes: 0 ok (also "already current"), 1 parity failed, 2 bad input,
    3 Hub/network error, 4 internal error, 128+N stopped by signal N (143: SIGTERM).
    """


@cli.command()
def presets() -> None:
    """List the known reranker families, and the families that are refused."""
    from reranker_seqcls.convert.output_config import served_score
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.recipes.refusals import REFUSALS, qwen3_vl_refusal

    for preset in PRESETS.values():
        click.echo(f"{preset.name}: {preset.description}")
        click.echo(f"  classifier  {preset.describe_classifier()}, method {preset.method}, "
                   f"scale {preset.scale:g}")  # fmt: skip
        click.echo(f"  score       {preset.score_formula}")
        click.echo(f"  served      {served_score(preset)}")
        click.echo(f"  BOS         {preset.bos_rule}")
        patterns = " or ".join(preset.name_patterns)
        click.echo(f"  detected    repo/directory names matching {patterns}; or "
                   "sentence-transformers LogitScore files that agree")  # fmt: skip
        click.echo(f"  facts       {preset.facts_source} (docs/families.md)")
    click.echo("refused (cannot become a linear score head):")
    vl = qwen3_vl_refusal()
    for refusal in (*REFUSALS, *([vl] if vl is not None else [])):
        markers = [*refusal.name_patterns, *refusal.architectures, *refusal.model_types]
        click.echo(f"  {refusal.family}: {refusal.reason} [detected by {', '.join(markers)}]")


@cli.command()
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
# Over 60 lines: click passes each of the ~20 options as a parameter (the reference script's
# spellings included); the body is short.
def convert(
    source: str | None,
    output: Path | None,
    revision: str | None,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
    token_ids: str | None,
    scale: str | None,
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
) -> None:
    """Convert the causal-LM reranker SOURCE (a directory or Hub repo id) into OUTPUT.

    Also accepts the reference script's flags: --model_name SRC --classifier_from_tokens JSON
    --method M --path OUT.
    """
    from reranker_seqcls.convert.converter import convert as run_convert
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.gguf.plan import plan_gguf
    from reranker_seqcls.recipes.resolve import resolve_recipe
    from reranker_seqcls.steps import locate_source, source_commit, source_name

    source = _one_of(source, model_name, "SOURCE", "--model_name")
    output = _one_of(output, path_, "OUTPUT", "--path")
    tokens = _one_of(tokens, classifier_from_tokens, "--tokens", "--classifier_from_tokens")
    if source is None or output is None:
        raise BadInput("convert needs SOURCE and OUTPUT: reranker-seqcls convert SOURCE OUTPUT")
    gguf = plan_gguf(gguf_types, gguf_dir, output, force=force)  # before any download
    commit_sha = source_commit(source, revision, None)  # a missing repo says so, first
    name = source_name(source)
    recipe_options: dict[str, Any] = dict(
        source_name=name, preset=preset, tokens_json=tokens, method=method,
        template_path=template, token_ids_json=token_ids, scale=scale,
    )  # fmt: skip
    explicit = any(v is not None for v in (preset, tokens, method, token_ids, scale))
    if explicit:  # options are validated before anything is downloaded
        recipe = resolve_recipe(**recipe_options)
        gguf.refuse_recipe(recipe)
    else:
        from reranker_seqcls.recipes.refusals import refuse_by_name

        refuse_by_name(name)
    source_dir, source_ref = locate_source(source, revision, None, log, commit_sha)
    if not explicit:  # the name, or the source's own sentence-transformers files
        recipe = resolve_recipe(**recipe_options, source_dir=source_dir, log=log)
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


@cli.command()
@click.argument("source")
@click.argument("converted", type=click.Path(path_type=Path, file_okay=False))
@click.option("--revision", help="Branch, tag or commit of a Hub SOURCE.")
@recipe_options
@check_options
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the full report as JSON.",
)
@click.option(
    "--gguf-file", "gguf_files", multiple=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A GGUF of CONVERTED (repeatable): adds a llama.cpp row, scored by llama-server "
    "--reranking through /v1/rerank ($RERANKER_SEQCLS_LLAMA_SERVER, else llama-server on PATH).",
)  # fmt: skip
# Over 60 lines: click passes each option as a parameter; the body is short.
def check(
    source: str,
    converted: Path,
    revision: str | None,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
    token_ids: str | None,
    scale: str | None,
    pairs_file: Path | None,
    report_file: Path | None,
    dtype: str | None,
    allow_softcapping: bool,
    vllm_python: Path | None,
    check_memory: str,
    gguf_files: tuple[Path, ...],
) -> int:
    """Prove that CONVERTED scores like the original reranker SOURCE.

    Scores a set of (query, document) pairs with the original causal LM (the family's official
    prompt and math), the converted classifier (batched and one by one), sentence-transformers'
    CrossEncoder on raw text and, when vLLM can be used, vLLM's pooling runner (LLM.score with
    the saved chat template). Exit code 1 when parity fails.
    """
    from reranker_seqcls.check.report import write_report
    from reranker_seqcls.check.streamed import streamed_check
    from reranker_seqcls.check.twin import parse_memory
    from reranker_seqcls.errors import BadInput
    from reranker_seqcls.gguf.check import prepare_gguf_check
    from reranker_seqcls.gguf.row import add_llama_rows
    from reranker_seqcls.names import CONFIG_FILE
    from reranker_seqcls.steps import (
        check_recipe,
        load_check_pairs,
        locate_source,
        resolve_token_ids,
        source_name,
    )

    if not (converted / CONFIG_FILE).is_file():
        raise BadInput(f"{converted} has no config.json: give a converted checkpoint directory")
    memory = parse_memory(check_memory)  # before any download
    llama = prepare_gguf_check(gguf_files)  # the files and llama-server, before any scoring
    source_dir, _ = locate_source(source, revision, None, log)
    recipe = check_recipe(
        source_name(source), converted, preset, tokens, method, template,
        token_ids=token_ids, scale=scale, source_dir=source_dir,
    )  # fmt: skip
    pairs = load_check_pairs(recipe, pairs_file)
    report = streamed_check(
        source_dir,
        converted,
        recipe,
        pairs,
        token_ids=resolve_token_ids(source_dir, recipe),
        dtype=dtype,
        allow_softcapping=allow_softcapping,
        vllm_python=vllm_python,
        check_memory=memory,
        log=log,
    )
    if llama is not None:
        add_llama_rows(report, list(gguf_files), converted, pairs, recipe.default_instruction,
                       llama, log)  # fmt: skip
    for row in report.table_rows():
        say(row)
    if report_file is not None:
        write_report(report, report_file)
    report.require_passed()  # ParityFailed: exit 1, its first reason on stderr
    return 0


@cli.command()
@click.option("--model", required=True, help="Source reranker: Hub repo id or local directory.")
@click.option("--target", required=True, help="Target Hub repo id (owner/name).")
@click.option("--revision", help="Branch, tag or commit of the source (default: main).")
@recipe_options
@hub_options
@click.option("--force", is_flag=True, help="Convert and push even if the target is current.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the converted checkpoint here (default: a temporary directory). With a Hub "
    "SOURCE this downloads the whole snapshot instead of streaming it.",
)
@click.option(
    "--max-disk",
    metavar="SIZE",
    help="Refuse (exit 2, before any shard is fetched) a streamed run whose predicted disk "
    "peak is larger than SIZE (e.g. 10GB).",
)
@check_options
@click.option("--allow-pickle", is_flag=True, help="Accept a .bin-only source.")
@click.option(
    "--gguf",
    metavar="TYPES",
    help="Also write a GGUF per type (f16, q8_0, f32), check each with llama-server "
    "--reranking (a failed row fails the run) and push them to --gguf-target. Qwen3 "
    "architecture only; takes the whole-snapshot road.",
)
@click.option("--gguf-target", help="Hub repo for the GGUFs (default: TARGET-GGUF).")
@click.option(
    "--result-json",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write what happened as JSON (also on failure).",
)
def run(result_json: Path | None, **kwargs) -> int:
    """Download SOURCE, convert it, prove parity, and push to TARGET in one commit.

    Idempotent: when the target already holds this source commit converted with the same recipe
    and tool version, nothing is downloaded or pushed ("already current", exit 0).

    \b
    A Hub SOURCE with safetensors weights is streamed: one shard at a time is
    fetched (checked against the Hub's sha256), fed to the parity check,
    converted, pre-uploaded to TARGET and deleted; one commit at the end.
    What a run needs, for a model of S bytes whose largest shard has L bytes:
      disk    about 2 x L + 0.5 GB (the shard in flight, the one before it
              until its last layer ran, the rewritten head shard, the small
              files and the check's twin); a model whose float32 load fits
              --check-memory is checked whole: about S + 0.5 GB
      memory  about 1.5 GB (--check-memory) whatever S: the check runs one
              decoder layer at a time in float32
    A local SOURCE, a pickle-only source or --output-dir download the whole
    snapshot: disk about 2 x S.
    """
    from reranker_seqcls.pipeline import RunOptions, RunOutcome, RunParityFailed, run_pipeline
    from reranker_seqcls.redact import register_secret

    register_secret(kwargs.get("token"))
    opts = RunOptions(**kwargs)
    try:
        outcome = run_pipeline(opts, log)
    except RunParityFailed as exc:  # the run's own record: status "failed", with its parity
        if result_json is not None:
            _write_result(result_json, exc.outcome.to_json())
        say(exc.outcome.message)
        raise
    except (Exception, Interrupted) as exc:
        if result_json is not None:
            from reranker_seqcls.errors import SeqClsError
            from reranker_seqcls.redact import redact

            failed = RunOutcome("failed", opts.target, opts.model)
            if isinstance(exc, Interrupted):
                failed.message = f"interrupted by {exc.signal_name} before the run finished"
            elif isinstance(exc, SeqClsError):
                failed.message = redact(str(exc))
            else:
                failed.message = f"{exc.__class__.__name__}: {redact(str(exc))}"
            _write_result(result_json, failed.to_json())
        raise
    if result_json is not None:
        _write_result(result_json, outcome.to_json())
    say(outcome.message)
    return 0


@cli.command()
@click.argument("converted", type=click.Path(path_type=Path, file_okay=False))
@click.argument("target")
@hub_options
def push(converted: Path, target: str, **kwargs) -> int:
    """Push the converted checkpoint CONVERTED to the Hub repo TARGET in one commit.

    Refuses a checkpoint whose recorded parity check failed. Adds a model card when the
    directory has none.
    """
    from reranker_seqcls.publish import push_converted
    from reranker_seqcls.redact import register_secret

    register_secret(kwargs.get("token"))
    outcome = push_converted(converted, target, log=log, **kwargs)
    say(outcome.message)
    return 0


@cli.command()
@click.argument("fleet_file", type=click.Path(path_type=Path))
@click.option("--all", "list_all", is_flag=True, help="Put current entries in the matrix too.")
@click.option(
    "--summary",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append the Markdown table of every entry to this file (e.g. $GITHUB_STEP_SUMMARY).",
)
@click.option(
    "--token", envvar="HF_TOKEN", show_envvar=True,
    help="Hub token (prefer the HF_TOKEN environment variable).",
)  # fmt: skip
def plan(fleet_file: Path, list_all: bool, summary: Path | None, token: str | None) -> int:
    """Print a JSON matrix of the FLEET_FILE entries whose target is not current.

    FLEET_FILE is YAML: a `rerankers:` list of entries, each with model, target, optional
    revision and the recipe options of `run` (see the README).

    Reads Hub metadata only (upstream commit, the target's recorded provenance): no weights, no
    torch. Stdout is {"include": [...]} for a GitHub Actions strategy.matrix, one item per
    entry that needs a run, with its reason; stderr gets a table of every entry. An entry whose
    lookup fails is reported and left out; the exit code is then that of `run` for the failure.
    """
    import json

    from reranker_seqcls.redact import redact, register_secret
    from reranker_seqcls.schedule.fleet import load_fleet
    from reranker_seqcls.schedule.plan import exit_code, matrix, plan_fleet, summary_markdown

    register_secret(token)
    fleet = load_fleet(fleet_file)

    from huggingface_hub import constants

    plans = plan_fleet(fleet, token)
    table = redact(summary_markdown(plans, constants.ENDPOINT.rstrip("/")))
    if summary is not None:
        with summary.open("a", encoding="utf-8") as handle:
            handle.write(table)
    click.echo(table, err=True, nl=False)
    for failed in (p for p in plans if p.status == "error"):
        log(f"error: {failed.entry.label}: {failed.error}")
    click.echo(redact(json.dumps(matrix(plans, include_current=list_all), ensure_ascii=False)))
    return exit_code(plans)


def _write_result(path: Path, data: dict) -> None:
    import json

    from reranker_seqcls.redact import redact

    path.write_text(redact(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def _one_of(a, b, name_a: str, name_b: str):
    from reranker_seqcls.errors import BadInput

    if a is not None and b is not None and a != b:
        raise BadInput(f"give {name_a} or {name_b}, not both")
    return a if a is not None else b


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors on stderr, the exit codes of the design, no tracebacks."""
    run_command_line(cli, sys.argv[1:] if argv is None else argv)
