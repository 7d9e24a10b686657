"""OUTPUT appears whole or not at all: written in a temporary directory beside it, renamed into
place at the end, removed (with any parents it created) on an error or a signal."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.source import Source, check_no_overlap


def check_output(source: Source, output: Path, force: bool) -> None:
    """OUTPUT may be created (or, with ``force``, replaced) without touching the source."""
    if not output.name:
        raise BadInput(f"output {output} has no name to create: give a directory path")
    check_no_overlap(source, output)
    if output.is_symlink():
        raise BadInput(f"output {output} is a symlink: give the real directory path")
    if output.exists() and not output.is_dir():
        raise BadInput(f"output {output} exists and is a file: give a directory path")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise BadInput(f"output {output} is not empty: pass --force to replace it")


@contextlib.contextmanager
def atomic_directory(output: Path) -> Iterator[Path]:
    """A new empty directory to fill; renamed onto ``output`` when the block ends normally."""
    created = _make_parents(output.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; OUTPUT gets a normal directory mode
    try:
        yield tmp
        _move_into_place(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for directory in reversed(created):
            _rmdir_quiet(directory)
        raise


def _make_parents(parent: Path) -> list[Path]:
    missing = []
    for directory in [parent, *parent.parents]:
        if directory.exists():
            break
        missing.append(directory)
    parent.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _rmdir_quiet(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()


def _move_into_place(tmp: Path, output: Path) -> None:
    """Rename the finished directory onto OUTPUT; an old OUTPUT is removed only afterwards."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(old)
    try:
        tmp.rename(output)
    except BaseException:
        if old is not None:
            old.rename(output)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
