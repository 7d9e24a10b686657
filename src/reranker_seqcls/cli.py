"""The ``reranker-seqcls`` command line: the group and its entry point. Each command is a module
of :mod:`reranker_seqcls.commands`; imports inside them stay lazy so that ``--help`` does not
pay for numpy, tokenizers or torch."""

from __future__ import annotations

import sys

import click

from reranker_seqcls import __version__
from reranker_seqcls.commands.check import check
from reranker_seqcls.commands.convert import convert
from reranker_seqcls.commands.plan import plan
from reranker_seqcls.commands.presets import presets
from reranker_seqcls.commands.push import push
from reranker_seqcls.commands.run import run
from reranker_seqcls.console import run_command_line


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reranker-seqcls")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """Convert causal-LM rerankers into *ForSequenceClassification checkpoints that score
    identically in vLLM, sentence-transformers and transformers.

    \b
    The road: convert SOURCE OUT, check SOURCE OUT (records its verdict in
    OUT), push OUT TARGET (only with a passing verdict for OUT's current
    files); or run --model SOURCE --target TARGET, all four in one go.

    \b
    Exit codes: 0 ok (also "already current"), 1 parity failed, 2 bad input,
    3 Hub/network error, 4 internal error, 128+N stopped by signal N (143: SIGTERM).
    """


for command in (presets, convert, check, run, push, plan):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors on stderr, the exit codes of the design, no tracebacks."""
    run_command_line(cli, sys.argv[1:] if argv is None else argv)
