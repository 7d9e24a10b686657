"""Putting a file into OUTPUT as cheaply as the filesystem allows, never writing through a link."""

from __future__ import annotations

import errno
import fcntl
import os
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from reranker_seqcls.errors import BadInput

_COPY_CHUNK = 16 * 1024 * 1024
_FICLONE = 0x40049409  # ioctl request for a copy-on-write clone (btrfs, xfs, bcachefs)
_NO_REFLINK = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM)
_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


class Placement(StrEnum):
    """How a file of OUTPUT came to be (the value is what the conversion log says)."""

    REFLINKED = "reflinked"
    HARD_LINKED = "hard-linked"
    COPIED = "copied"
    REWRITTEN = "rewritten"  # a shard copied without the tensors it drops
    WRITTEN = "written"  # a file made from values in memory (score.safetensors)
    DROPPED_HEAD_ONLY = "dropped (held only lm_head)"
    DROPPED_EMPTY = "dropped (holds no tensors)"


def place_file(src: Path, dst: Path, *, force_copy: bool = False) -> Placement:
    """Put ``src`` at ``dst`` as cheaply as the filesystem allows; returns how.

    Order: reflink (copy-on-write clone), hard link, copy. A hard link shares the inode with the
    source, so nothing in this package ever writes to a placed file afterwards, and ``dst`` must
    not exist: every open here is exclusive (``"xb"``), so a name placed twice fails instead of
    writing through a hard link into the source (or a Hub cache blob).
    """
    src = src.resolve()  # Hub caches hold symlinks to blobs: place the blob itself
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "refusing to overwrite", str(dst))
    if force_copy:
        copy_new_file(src, dst)
        return Placement.COPIED
    if _reflink(src, dst):
        return Placement.REFLINKED
    try:
        os.link(src, dst)
        return Placement.HARD_LINKED
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise
        copy_new_file(src, dst)
        return Placement.COPIED


def copy_new_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst``, which must not exist yet (never writes through a link)."""
    with src.open("rb") as fin, dst.open("xb") as fout:
        copy_range(fin, fout, 0, os.fstat(fin.fileno()).st_size)


def copy_range(fin: BinaryIO, fout: BinaryIO, start: int, length: int) -> None:
    """Copy ``length`` bytes at ``start`` of ``fin`` to the end of ``fout``, in the kernel where
    it can (copy_file_range: no user-space buffer), else through a bounded buffer."""
    fout.flush()
    offset, remaining = start, length
    try:
        while remaining:
            done = os.copy_file_range(fin.fileno(), fout.fileno(), remaining, offset)
            if done == 0:
                raise BadInput(f"{fin.name} is truncated: re-download the checkpoint")
            offset += done
            remaining -= done
        fout.seek(0, os.SEEK_END)
        return
    except OSError as exc:  # old kernels, some filesystems: fall back to read/write
        if exc.errno not in _NO_COPY_FILE_RANGE:
            raise
    fin.seek(offset)
    fout.seek(0, os.SEEK_END)
    while remaining:
        chunk = fin.read(min(_COPY_CHUNK, remaining))
        if not chunk:
            raise BadInput(f"{fin.name} is truncated: re-download the checkpoint")
        fout.write(chunk)
        remaining -= len(chunk)


def _reflink(src: Path, dst: Path) -> bool:
    try:
        with src.open("rb") as fin, dst.open("xb") as fout:
            try:
                fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            except OSError:
                fout.close()
                dst.unlink()  # created by this call's exclusive open, never a pre-existing file
                raise
        return True
    except OSError as exc:
        if exc.errno not in _NO_REFLINK:
            raise
        return False
