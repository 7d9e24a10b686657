"""``run``: download, convert, check and push one reranker, skipping a current target."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reranker_seqcls.commands.options import (
    ALLOW_PICKLE,
    SIZE,
    CheckOptions,
    HubOptions,
    RecipeOptions,
    check_options,
    hub_options,
    recipe_options,
)
from reranker_seqcls.console import log, say
from reranker_seqcls.interrupt import Interrupted


@click.command()
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
    type=SIZE,
    help="Refuse (exit 2, before any shard is fetched) a streamed run whose predicted disk "
    "peak is larger than SIZE (e.g. 10GB).",
)
@check_options
@ALLOW_PICKLE
@click.option(
    "--gguf",
    metavar="TYPES",
    help="Also write a GGUF per type (f16, q8_0, f32), check each with llama-server "
    "--reranking (a failed row fails the run) and push them to --gguf-target. Qwen3 "
    "architecture only; a streamed run writes one split per shard (kept until checked).",
)
@click.option("--gguf-target", help="Hub repo for the GGUFs (default: TARGET-GGUF).")
@click.option(
    "--result-json",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write what happened as JSON (also on failure).",
)
def run(result_json: Path | None, **kwargs: Any) -> int:
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
    from reranker_seqcls.redact import register_secret
    from reranker_seqcls.run.outcome import RunOptions, RunOutcome, RunParityFailed
    from reranker_seqcls.run.pipeline import run_pipeline

    register_secret(kwargs.get("token"))
    opts = RunOptions(
        hub=HubOptions.pop(kwargs),
        recipe=RecipeOptions.pop(kwargs),
        check=CheckOptions.pop(kwargs),
        **kwargs,
    )
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

            failed = RunOutcome("failed", opts.hub.target, opts.model)
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


def _write_result(path: Path, data: dict[str, Any]) -> None:
    import json

    from reranker_seqcls.redact import redact

    path.write_text(redact(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
