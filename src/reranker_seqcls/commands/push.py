"""``push``: a checked converted directory to the Hub in one commit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reranker_seqcls.commands.options import HubOptions, hub_options
from reranker_seqcls.console import log, say


@click.command()
@click.argument("converted", type=click.Path(path_type=Path, file_okay=False))
@click.argument("target")
@hub_options
@click.option(
    "--allow-unchecked",
    is_flag=True,
    help="Push a directory without a passing parity verdict for its current files; the card "
    "then says plainly that the upload was not checked.",
)
@click.option(
    "--gguf-dir", type=click.Path(path_type=Path, file_okay=False),
    help="The GGUFs to push to --gguf-target (default: CONVERTED-GGUF when it exists). Each "
    "needs a passing llama.cpp row for its exact bytes in CONVERTED's verdict (check "
    "--gguf-file); one without is refused and nothing is pushed.",
)  # fmt: skip
@click.option("--gguf-target", help="Hub repo for the GGUFs (default: TARGET-GGUF).")
def push(
    converted: Path,
    allow_unchecked: bool,
    gguf_dir: Path | None,
    gguf_target: str | None,
    **kwargs: Any,
) -> int:
    """Push the converted checkpoint CONVERTED to the Hub repo TARGET in one commit.

    Pushes only a directory whose files passed `reranker-seqcls check` (the verdict check
    records in CONVERTED, bound to the sha256 of its files): a failed, missing or stale verdict
    is refused (exit 2) before the Hub is asked anything, unless --allow-unchecked. Writes the
    model card `run` writes (parity table, the source's license) when the directory has none.
    GGUFs (CONVERTED-GGUF, or --gguf-dir) go after it to --gguf-target in one commit with their
    card, each only with a passing llama.cpp row for its bytes (check --gguf-file).
    """
    from reranker_seqcls.publish.push import push_converted
    from reranker_seqcls.redact import register_secret

    hub = HubOptions.pop(kwargs)
    register_secret(hub.token)
    outcome = push_converted(
        converted, hub, allow_unchecked=allow_unchecked, log=log, gguf_dir=gguf_dir,
        gguf_target=gguf_target,
    )  # fmt: skip
    say(outcome.message)
    return 0
