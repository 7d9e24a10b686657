"""Helpers for the hostile-source tests: tree snapshots, safetensors surgery, fake Hub caches."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
from pathlib import Path
from typing import Any

INDEX = "model.safetensors.index.json"


def tree_state(root: Path, *, skip: Path | None = None) -> dict[str, tuple]:
    """Everything observable about a tree without following links: type, mode, target, bytes.

    ``skip`` (e.g. OUTPUT) is left out. Contents are hashed, which catches a file truncated in
    place through a hard link; a hash is reused only while the inode, size, mtime and ctime are
    unchanged (any write changes ctime), so static files are read once per session.
    """
    state: dict[str, tuple] = {}
    skipped = os.fspath(skip) if skip is not None else None
    prefix = len(os.fspath(root)) + 1
    stack = [os.fspath(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if skipped is not None and entry.path == skipped:
                    continue
                info = entry.stat(follow_symlinks=False)
                relative = entry.path[prefix:]
                if stat.S_ISLNK(info.st_mode):
                    state[relative] = ("link", os.readlink(entry.path))
                elif stat.S_ISREG(info.st_mode):
                    state[relative] = (
                        "file",
                        stat.S_IMODE(info.st_mode),
                        _digest(entry.path, info),
                    )
                elif stat.S_ISDIR(info.st_mode):
                    state[relative] = ("dir", stat.S_IMODE(info.st_mode))
                    stack.append(entry.path)
                else:
                    state[relative] = ("other", stat.S_IFMT(info.st_mode))
    return state


_DIGESTS: dict[tuple, str] = {}


def _digest(path: str, info: os.stat_result) -> str:
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as fh:
            _DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _DIGESTS[key]


def read_header(path: Path) -> tuple[dict[str, Any], bytes]:
    """A safetensors file's header (as parsed JSON) and its data bytes."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def write_raw(path: Path, header: bytes, data: bytes, *, length: int | None = None) -> None:
    """A safetensors file from raw header bytes (valid or not) and data."""
    size = len(header) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + header + data)


def write_header(path: Path, header: Any, data: bytes) -> None:
    write_raw(path, json.dumps(header).encode(), data)


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def copy_source(model: Path, dest: Path) -> Path:
    shutil.copytree(model, dest, symlinks=True)
    return dest


def shard_holding(source: Path, suffix: str) -> Path:
    """The shard of ``source`` that holds the tensor whose name ends with ``suffix``."""
    index = json.loads((source / INDEX).read_text())["weight_map"]
    (name,) = [n for n in index if n.endswith(suffix)]
    return source / index[name]


def fake_hub_snapshot(files: Path, cache: Path, repo: str, sha: str = "a" * 40) -> Path:
    """Lay ``files`` out as huggingface_hub does: content in ``blobs/<sha256>``, and
    ``snapshots/<sha>/<name>`` relative symlinks to the blobs. Returns the snapshot directory."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    blobs = repo_dir / "blobs"
    snapshot = repo_dir / "snapshots" / sha
    blobs.mkdir(parents=True, exist_ok=True)
    for path in sorted(files.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(files)
        content = path.read_bytes()
        blob = blobs / hashlib.sha256(content).hexdigest()
        if not blob.exists():
            blob.write_bytes(content)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def rewrite_tensor(
    path: Path,
    name: str,
    *,
    dtype: str | None = None,
    rows: int | None = None,
    in_place: bool = True,
) -> None:
    """Rewrite one tensor of a valid safetensors file: stored as ``dtype`` (zero bytes of that
    dtype's size, same shape) and/or cut to its first ``rows`` rows; the other tensors are
    relaid after it so the header stays valid. ``in_place`` writes through the inode (hard
    links see it too); otherwise the file is replaced, and its links keep the old bytes."""
    from reranker_seqcls.safetensors_io.floats import ITEMSIZE

    header, data = read_header(path)
    out: dict[str, Any] = {}
    if "__metadata__" in header:
        out["__metadata__"] = header.pop("__metadata__")
    laid = b""
    for tensor, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        chunk = data[begin:end]
        if tensor == name:
            if rows is not None:
                row_bytes = len(chunk) // info["shape"][0]
                info = {**info, "shape": [rows, *info["shape"][1:]]}
                chunk = chunk[: rows * row_bytes]
            if dtype is not None:
                count = len(chunk) // ITEMSIZE[info["dtype"]]
                info = {**info, "dtype": dtype}
                chunk = bytes(count * ITEMSIZE[dtype])
        out[tensor] = {**info, "data_offsets": [len(laid), len(laid) + len(chunk)]}
        laid += chunk
    if not in_place:
        path.unlink()
    write_header(path, out, laid)
