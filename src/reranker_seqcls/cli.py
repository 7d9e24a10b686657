"""The ``reranker-seqcls`` command line: parse, call, report. Imports stay lazy so that
``--help`` does not pay for numpy, tokenizers or torch."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from . import __version__

EXIT_INTERNAL = 4


def _log(message: str) -> None:
    from .redact import redact

    click.echo(redact(message), err=True)


def _stack(func, options):
    """Apply click options so they list in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def _recipe_options(func):
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
    ]
    return _stack(func, options)


def _conversion_options(func):
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
    return _stack(func, options)


def _check_options(func):
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
    ]  # fmt: skip
    return _stack(func, options)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reranker-seqcls")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """Convert causal-LM rerankers into *ForSequenceClassification checkpoints that score
    identically in vLLM, sentence-transformers and transformers.

    \b
    Exit codes: 0 ok (also "already current"), 1 parity failed, 2 bad input,
    3 Hub/network error, 4 internal error.
    """


@cli.command()
def presets() -> None:
    """List the known reranker families."""
    from .recipes import PRESETS

    for preset in PRESETS.values():
        tokens = ", ".join(repr(t) for t in preset.tokens)
        click.echo(f"{preset.name:<24} tokens [{tokens}]  {preset.method:<20} {preset.description}")


@cli.command()
@click.argument("source", required=False)
@click.argument("output", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--revision", help="Branch, tag or commit of a Hub SOURCE.")
@_recipe_options
@_conversion_options
@click.option(
    "--model_name", "model_name", hidden=True, help="Reference-script spelling of SOURCE."
)
@click.option("--path", "path_", hidden=True, type=click.Path(path_type=Path), help="= OUTPUT.")
@click.option(
    "--classifier_from_tokens", hidden=True, help="Reference-script spelling of --tokens."
)
@click.option("--device", hidden=True, help="Accepted for the reference script; unused.")
def convert(
    source: str | None,
    output: Path | None,
    revision: str | None,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
    force: bool,
    force_copy: bool,
    allow_pickle: bool,
    allow_softcapping: bool,
    model_name: str | None,
    path_: Path | None,
    classifier_from_tokens: str | None,
    device: str | None,
) -> None:
    """Convert the causal-LM reranker SOURCE (a directory or Hub repo id) into OUTPUT.

    Also accepts the reference script's flags: --model_name SRC --classifier_from_tokens JSON
    --method M --path OUT.
    """
    from .convert import convert as run_convert
    from .errors import BadInput
    from .recipes import resolve_recipe
    from .run import locate_source

    source = _one_of(source, model_name, "SOURCE", "--model_name")
    output = _one_of(output, path_, "OUTPUT", "--path")
    tokens = _one_of(tokens, classifier_from_tokens, "--tokens", "--classifier_from_tokens", True)
    if source is None or output is None:
        raise BadInput("convert needs SOURCE and OUTPUT: reranker-seqcls convert SOURCE OUTPUT")
    source_name = Path(source).resolve().name if Path(source).is_dir() else source
    recipe = resolve_recipe(
        source_name=source_name,
        preset=preset,
        tokens_json=tokens,
        method=method,
        template_path=template,
    )
    source_dir, source_ref = locate_source(source, revision, None, _log)
    run_convert(
        source_dir,
        output,
        recipe,
        source_ref=source_ref,
        force=force,
        copy=force_copy,
        allow_pickle=allow_pickle,
        allow_softcapping=allow_softcapping,
        log=_log,
    )


@cli.command()
@click.argument("source")
@click.argument("converted", type=click.Path(path_type=Path, file_okay=False))
@click.option("--revision", help="Branch, tag or commit of a Hub SOURCE.")
@_recipe_options
@_check_options
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the full report as JSON.",
)
def check(
    source: str,
    converted: Path,
    revision: str | None,
    preset: str | None,
    tokens: str | None,
    method: str | None,
    template: Path | None,
    pairs_file: Path | None,
    report_file: Path | None,
    dtype: str | None,
    allow_softcapping: bool,
    vllm_python: Path | None,
) -> int:
    """Prove that CONVERTED scores like the original reranker SOURCE.

    Scores a set of (query, document) pairs with the original causal LM (the family's official
    prompt and math), the converted classifier (batched and one by one), sentence-transformers'
    CrossEncoder on raw text and, when vLLM can be used, vLLM's pooling runner (LLM.score with
    the saved chat template). Exit code 1 when parity fails.
    """
    from .errors import BadInput
    from .parity import check_parity, write_report
    from .run import check_recipe, load_check_pairs, locate_source, resolve_token_ids

    if not (converted / "config.json").is_file():
        raise BadInput(f"{converted} has no config.json: give a converted checkpoint directory")
    source_dir, _ = locate_source(source, revision, None, _log)
    recipe = check_recipe(source_dir, converted, preset, tokens, method, template)
    report = check_parity(
        source_dir,
        converted,
        recipe,
        load_check_pairs(recipe, pairs_file),
        token_ids=resolve_token_ids(source_dir, recipe),
        dtype=dtype,
        allow_softcapping=allow_softcapping,
        vllm_python=vllm_python,
        log=_log,
    )
    click.echo(report.table())
    if report_file is not None:
        write_report(report, report_file)
    if not report.passed:
        _log(f"error: parity failed: {report.reasons[0]}")
        return 1
    return 0


def _hub_options(func):
    options = [
        click.option("--private", is_flag=True, help="Create the target repo as private."),
        click.option("--create-pr", is_flag=True, help="Open a pull request instead."),
        click.option("--dry-run", is_flag=True, help="Do everything but push; list what would be."),
        click.option(
            "--token", envvar="HF_TOKEN", show_envvar=True,
            help="Hub token (prefer the HF_TOKEN environment variable).",
        ),
    ]  # fmt: skip
    return _stack(func, options)


@cli.command()
@click.option("--model", required=True, help="Source reranker: Hub repo id or local directory.")
@click.option("--target", required=True, help="Target Hub repo id (owner/name).")
@click.option("--revision", help="Branch, tag or commit of the source (default: main).")
@_recipe_options
@_hub_options
@click.option("--force", is_flag=True, help="Convert and push even if the target is current.")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the converted checkpoint here (default: a temporary directory).",
)
@_check_options
@click.option("--allow-pickle", is_flag=True, help="Accept a .bin-only source.")
@click.option(
    "--result-json",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write what happened as JSON (also on failure).",
)
def run(result_json: Path | None, **kwargs) -> int:
    """Download SOURCE, convert it, prove parity, and push to TARGET in one commit.

    Idempotent: when the target already holds this source commit converted with the same recipe
    and tool version, nothing is downloaded or pushed ("already current", exit 0).
    """
    from .redact import register_secret
    from .run import RunOptions, RunOutcome, run_pipeline

    register_secret(kwargs.get("token"))
    opts = RunOptions(**kwargs)
    try:
        outcome = run_pipeline(opts, _log)
    except Exception as exc:
        if result_json is not None:
            from .errors import SeqClsError
            from .redact import redact

            failed = RunOutcome("failed", opts.target, opts.model)
            if isinstance(exc, SeqClsError):
                failed.message = redact(str(exc))
            else:
                failed.message = f"{exc.__class__.__name__}: {redact(str(exc))}"
            _write_result(result_json, failed.to_json())
        raise
    if result_json is not None:
        _write_result(result_json, outcome.to_json())
    click.echo(outcome.message)
    if outcome.status == "failed":
        _log(f"error: {outcome.message}")
        return 1
    return 0


@cli.command()
@click.argument("converted", type=click.Path(path_type=Path, file_okay=False))
@click.argument("target")
@_hub_options
def push(converted: Path, target: str, **kwargs) -> int:
    """Push the converted checkpoint CONVERTED to the Hub repo TARGET in one commit.

    Refuses a checkpoint whose recorded parity check failed. Adds a model card when the
    directory has none.
    """
    from .redact import register_secret
    from .run import push_converted

    register_secret(kwargs.get("token"))
    outcome = push_converted(converted, target, log=_log, **kwargs)
    click.echo(outcome.message)
    return 0


def _write_result(path: Path, data: dict) -> None:
    import json

    from .redact import redact

    path.write_text(redact(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def _one_of(a, b, name_a: str, name_b: str, optional: bool = False):
    from .errors import BadInput

    if a is not None and b is not None and a != b:
        raise BadInput(f"give {name_a} or {name_b}, not both")
    return a if a is not None else b


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors on stderr, the exit codes of the design, no tracebacks."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if not sys.stderr.isatty():  # plain line logs, no progress bars, in CI and pipes
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        code = cli.main(args=args, prog_name="reranker-seqcls", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:  # click's wrapping of KeyboardInterrupt
        _log("error: interrupted; nothing was written")
        code = 130
    except click.ClickException as exc:
        _log(f"error: {exc.format_message()} (see reranker-seqcls --help)")
        code = exc.exit_code
    except KeyboardInterrupt:
        _log("error: interrupted; nothing was written")
        code = 130
    except Exception as exc:
        code = _report(exc, debug)
    sys.exit(code if isinstance(code, int) else 0)


def _report(exc: Exception, debug: bool) -> int:
    from .errors import SeqClsError

    if debug:
        traceback.print_exc()
    if isinstance(exc, SeqClsError):
        _log(f"error: {exc}")
        return exc.exit_code
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        _log(f"error: {exc.strerror or exc}{where}: check the path, permissions and free space")
        return 2
    _log(
        f"error: internal error {exc.__class__.__name__}: {exc} (rerun with --debug and report it)"
    )
    return EXIT_INTERNAL
