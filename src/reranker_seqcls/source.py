"""The trust boundary: where a source checkpoint directory becomes something the tool may read.

Everything in a source is untrusted: it may be a Hub repo someone else controls or the workspace
of a pull request. Every file the conversion opens goes through :class:`Source`, which allows
only

- names that are safe relative paths (no absolute path, no ``..``, no control characters, no
  backslash), normalized (``./x`` and ``x`` are the same name) and unique after normalization;
- regular files (no FIFOs or devices, which would block or never end);
- files inside the source directory, where the whole path is resolved first: a symlink whose
  target leaves the tree is refused (a NOTICE linking to ``/proc/self/environ`` would publish
  the environment). The one exception is a Hub snapshot (``<cache>/models--o--n/snapshots/<sha>``),
  whose files are symlinks into ``<cache>/models--o--n/blobs/``: those, and only those, resolve.

What this module returns are the resolved real paths, so later opens do not follow links again.
Nothing here writes; callers write only into their own new temporary directory, with files that
must not exist yet (see :func:`reranker_seqcls.safetensors_io.place.place_file`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import unicodedata
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput

# JSON files of a checkpoint (config, index, tokenizer config) are small; a bound keeps a
# hostile multi-GB "config.json" from being read into memory.
MAX_JSON_BYTES = 64 * 1024 * 1024
# Control characters (C0, DEL, C1: a terminal acts on them), format characters (bidi overrides,
# zero-width marks: the name shown is not the name used) and line/paragraph separators.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp"}


def safe_name(name: object, *, what: str) -> str:
    """``name`` as a normalized relative POSIX path, or :class:`BadInput` naming ``what``."""
    if not isinstance(name, str) or not name:
        raise BadInput(
            f"{what} names {name!r}, which is not a file name: re-download the checkpoint"
        )
    if any(unicodedata.category(c) in _UNPRINTABLE for c in name) or "\\" in name:
        raise BadInput(
            f"{what} names {name!r}, which holds control characters or a backslash: "
            "the checkpoint is not usable"
        )
    if name.startswith("/"):
        raise BadInput(
            f"{what} names {name!r}, an absolute path: a checkpoint may only name its own files"
        )
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise BadInput(
            f"{what} names {name!r}, which leaves the checkpoint directory: a checkpoint may only "
            "name its own files"
        )
    return "/".join(parts)


def unique_names(names: Iterable[object], *, what: str) -> list[str]:
    """The distinct normalized names, refusing two spellings of one file (``x`` and ``./x``)."""
    spelled: dict[str, object] = {}
    for raw in names:
        name = safe_name(raw, what=what)
        first = spelled.setdefault(name, raw)
        if first != raw:
            raise BadInput(
                f"{what} names the same file as {first!r} and {raw!r}: re-download the checkpoint"
            )
    return sorted(spelled)


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def hub_blobs_dir(real_root: Path) -> Path | None:
    """The ``blobs/`` directory of a Hub cache snapshot, or None for any other directory."""
    if real_root.parent.name != "snapshots":
        return None
    blobs = real_root.parent.parent / "blobs"
    return blobs if blobs.is_dir() and not blobs.is_symlink() else None


class Source:
    """A source checkpoint directory, and the only way to name a file inside it."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise BadInput(
                f"source {directory} is not a directory: give a checkpoint directory or repo id"
            )
        self.real_root = self.directory.resolve()
        self.blobs = hub_blobs_dir(self.real_root)
        self._names: list[str] | None = None

    @property
    def tree(self) -> Path:
        """Everything a run must never write into: the source, or a snapshot's whole repo cache."""
        return self.blobs.parent if self.blobs is not None else self.real_root

    def file(self, name: str, *, what: str = "the checkpoint") -> Path | None:
        """The real path of the regular file ``name``, None when absent; refuses escapes."""
        relative = safe_name(name, what=what)
        candidate = self.directory / relative
        if not os.path.lexists(candidate):
            return None
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # a dangling or looping link
            raise BadInput(
                f"{relative!r} in the source is a broken symlink: re-download the checkpoint"
            ) from exc
        allowed = _inside(real, self.real_root) or (
            self.blobs is not None and _inside(real, self.blobs)
        )
        if not allowed:
            raise BadInput(
                f"{relative!r} in the source is a symlink to a file outside it: copy the real "
                "file into the checkpoint directory"
            )
        try:
            mode = os.stat(real).st_mode
        except OSError as exc:
            raise BadInput(f"{relative!r} in the source cannot be read ({exc.strerror})") from exc
        if not stat.S_ISREG(mode):
            if stat.S_ISDIR(mode):
                return None
            raise BadInput(
                f"{relative!r} in the source is not a regular file: remove it from the checkpoint"
            )
        return real

    def has(self, name: str) -> bool:
        return self.file(name) is not None

    def listing(self, patterns: Iterable[str]) -> list[str]:
        """Safe relative names of the files matching ``patterns``, in sorted order.

        Hidden files and directories are skipped and symlinked directories are not descended
        into; every listed file is checked with :meth:`file`.
        """
        patterns = tuple(patterns)
        return [
            name
            for name in self._walk()
            if any(fnmatch(name, pat) for pat in patterns) and self.file(name)
        ]

    def _walk(self) -> list[str]:
        """Every non-hidden entry that is not a directory, walked once per source."""
        if self._names is None:
            names: list[str] = []
            for dirpath, dirnames, filenames in os.walk(self.directory, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                base = Path(dirpath).relative_to(self.directory).as_posix()
                names += [
                    f if base == "." else f"{base}/{f}" for f in filenames if not f.startswith(".")
                ]
            self._names = sorted(names)
        return self._names

    def read_json(self, name: str, *, what: str | None = None) -> Any:
        """The parsed JSON file ``name`` (None when absent), bounded in size and nesting."""
        path = self.file(name)
        return None if path is None else read_json_file(path, what or name)


def read_json_file(path: Path, what: str) -> Any:
    """Parse a JSON file that came from a source: bounded size, one-line errors on bad content."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise BadInput(
            f"{what} cannot be read ({exc.strerror}): re-download the checkpoint"
        ) from exc
    if len(raw) > MAX_JSON_BYTES:
        raise BadInput(f"{what} is larger than {MAX_JSON_BYTES >> 20} MiB: it is not a config file")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what} is not valid JSON: re-download the checkpoint") from exc
    except RecursionError as exc:
        raise BadInput(f"{what} is nested too deeply: re-download the checkpoint") from exc


def read_json_object(source: Source, name: str) -> dict[str, Any] | None:
    """Like :meth:`Source.read_json`, but the value must be a JSON object."""
    value = source.read_json(name)
    if value is not None and not isinstance(value, dict):
        raise BadInput(f"{name} is not a JSON object: re-download the checkpoint")
    return value


def check_no_overlap(source: Source, output: Path) -> None:
    """SOURCE and OUTPUT (and, for a Hub snapshot, its repo cache) must not contain each other:
    replacing OUTPUT would delete the source, and writing into the source would change it."""
    real_output = output.resolve()
    for protected in {source.real_root, source.tree}:
        if _inside(real_output, protected):
            raise BadInput(f"output {output} is inside the source: choose another directory")
        if _inside(protected, real_output):
            raise BadInput(
                f"output {output} contains the source {source.directory}: choose another directory"
            )


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
