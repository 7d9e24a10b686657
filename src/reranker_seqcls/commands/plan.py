"""``plan``: the GitHub Actions matrix of the fleet entries whose target is not current."""

from __future__ import annotations

from pathlib import Path

import click

from reranker_seqcls.commands.options import TOKEN
from reranker_seqcls.console import log


@click.command()
@click.argument("fleet_file", type=click.Path(path_type=Path))
@click.option("--all", "list_all", is_flag=True, help="Put current entries in the matrix too.")
@click.option(
    "--summary",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append the Markdown table of every entry to this file (e.g. $GITHUB_STEP_SUMMARY).",
)
@TOKEN
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
