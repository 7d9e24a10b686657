"""What the CLI calls for the llama.cpp rows: the checks that must pass before any scoring."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reranker_seqcls.gguf.row import gguf_type_of
from reranker_seqcls.gguf.server import require_llama_server


def prepare_gguf_check(files: Sequence[Path]) -> Path | None:
    """llama-server's path when GGUF files are to be checked (None when none are); exit 2 for
    a file that is no GGUF of a type --gguf writes, or when there is no llama-server."""
    if not files:
        return None
    for path in files:
        gguf_type_of(path)
    return require_llama_server()
