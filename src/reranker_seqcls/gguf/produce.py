"""``--gguf TYPES``: the GGUF files written beside a converted checkpoint, one per type."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_seqcls.errors import BadInput
from reranker_seqcls.gguf.types import GgufType
from reranker_seqcls.gguf.writer import WrittenGguf, gguf_file_name, write_gguf

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe

GGUF_DIR_SUFFIX = "-GGUF"  # the Hub's convention for a model's GGUF repository


def default_gguf_dir(output: Path) -> Path:
    """``OUTPUT-GGUF`` beside ``OUTPUT``: the GGUFs are a repository of their own, not files of
    the seq-cls checkpoint (which is pushed as it is)."""
    return output.with_name(output.name + GGUF_DIR_SUFFIX)


def check_gguf_dir(path: Path, *, force: bool) -> None:
    """Exit 2, before anything is written, for a GGUF directory that is a file or a non-empty
    directory (without ``--force``)."""
    if path.exists() and not path.is_dir():
        raise BadInput(f"--gguf: {path} exists and is not a directory: give another --gguf-dir")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise BadInput(f"--gguf: {path} is not empty: give --force to replace it")


def write_ggufs(
    converted: Path,
    directory: Path,
    types: list[GgufType],
    recipe: Recipe,
    *,
    stem: str,
    log: Callable[[str], None],
) -> list[WrittenGguf]:
    """One GGUF per type into ``directory`` (replaced as a whole: written beside it, then
    moved into place)."""
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    written = []
    try:
        for gguf_type in types:
            log(f"gguf: writing {gguf_file_name(stem, gguf_type)}")
            w = write_gguf(
                converted, staging / gguf_file_name(stem, gguf_type), gguf_type, recipe, name=stem
            )
            log(f"gguf: wrote {w.path.name} ({w.bytes / 1e6:.1f} MB in {w.seconds:.1f} s)")
            written.append(w)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [
        WrittenGguf(directory / w.path.name, w.gguf_type, w.bytes, w.seconds, w.rerank_template)
        for w in written
    ]
