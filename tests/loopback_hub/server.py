"""A loopback Hugging Face Hub server, faithful enough for the real ``huggingface_hub`` client.

The server speaks the HTTP API that ``huggingface_hub`` 2.4 uses (see
``shared/reference/hub-api.md``) on ``127.0.0.1`` with an ephemeral port and keeps all state in
memory, except LFS objects when it is given a ``blob_dir``: they are then content-addressed files
``blob_dir/<sha256>`` (see :class:`BlobStore`), uploaded, downloaded and seeded in chunks of at most
:data:`CHUNK_SIZE` bytes, so multi-GB models can be served without holding them in RAM. It never
opens a connection itself.

Model, dataset and space repos are supported. Every repo has refs (branches, tags and pull-request
refs ``refs/pr/N``) pointing at commits; every commit is an immutable snapshot of the whole file
tree identified by a 40-hex sha. Files are stored with LFS when they match
:attr:`LoopbackHubServer.lfs_patterns` (the Hub's default ``.gitattributes`` patterns:
``*.safetensors``, ``*.bin``, ...) or reach :attr:`LoopbackHubServer.lfs_threshold` bytes (10 MiB
like the Hub), so LFS uploads can be tested with tiny files.

Besides HTTP, tests drive the server from Python:

* state helpers: :meth:`~LoopbackHubServer.seed_repo`, :meth:`~LoopbackHubServer.commit_files`,
  :meth:`~LoopbackHubServer.head_sha`, :meth:`~LoopbackHubServer.list_files`,
  :meth:`~LoopbackHubServer.read_file`, :meth:`~LoopbackHubServer.list_commits`, ...
* introspection: :attr:`~LoopbackHubServer.requests`, :meth:`~LoopbackHubServer.request_count`,
  :meth:`~LoopbackHubServer.bytes_served`, :meth:`~LoopbackHubServer.stats_by_path`,
  :meth:`~LoopbackHubServer.downloaded_files`;
* fault injection: :meth:`~LoopbackHubServer.fail_nth` (an HTTP error status) and
  :meth:`~LoopbackHubServer.drop_nth` (the connection is closed, optionally mid-body).

Example::

    with LoopbackHubServer(tokens={"hf_token": "alice"}) as hub:
        sha = hub.seed_repo("alice/tiny", {"config.json": b"{}", "model.safetensors": b"..."})
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_token"}
        ...  # run the client in a subprocess with `env`
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import hashlib
import io
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, ClassVar, Literal
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

__all__ = [
    "DEFAULT_GITATTRIBUTES",
    "DEFAULT_LFS_PATTERNS",
    "BlobStore",
    "Fault",
    "HubCommit",
    "HubError",
    "HubFile",
    "LoopbackHubServer",
    "PathStats",
    "RequestRecord",
]

RepoType = Literal["model", "dataset", "space"]
FileContent = bytes | bytearray | memoryview | str | Path

#: Patterns of the Hub's default ``.gitattributes``: files matching one are stored with LFS.
DEFAULT_LFS_PATTERNS: tuple[str, ...] = (
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gguf",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
)

#: Content of the ``.gitattributes`` file of the initial commit of a repo created over HTTP.
DEFAULT_GITATTRIBUTES: bytes = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in DEFAULT_LFS_PATTERNS
).encode()

_LFS_THRESHOLD = 10 * 1024 * 1024
#: Largest piece of a file the server reads or writes at once when streaming.
CHUNK_SIZE = 4 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TEMP_PREFIX = ".tmp-"
_REPO_TYPES: dict[str, RepoType] = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX: dict[RepoType, str] = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_API_SUBPATHS = frozenset(
    {
        "revision",
        "tree",
        "paths-info",
        "refs",
        "commits",
        "commit",
        "preupload",
        "branch",
        "tag",
        "settings",
        "xet-write-token",
        "xet-read-token",
        "discussions",
        "resolve",
    }
)
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


# --------------------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------------------


def git_blob_oid(data: bytes) -> str:
    """Return the git object id (sha1 of ``blob <size>\\0<data>``) of a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """Return the git-lfs pointer file that git stores for an LFS object."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _iso(ts: float) -> str:
    """Format a POSIX timestamp the way the Hub does (``2024-01-31T12:00:00.000Z``)."""
    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


@dataclass(frozen=True)
class HubFile:
    """A file of a commit's tree: where its bytes are and the ids the Hub derives from them.

    The content is either held in memory (``content``) or, for an LFS object of a server with a
    ``blob_dir``, a content-addressed file of that store (``blob``), read lazily: use
    :meth:`open`, :meth:`read_range` or :meth:`iter_chunks` for large files; :attr:`data` reads
    the whole content.
    """

    path: str
    lfs: bool
    sha256: str
    oid: str
    """git blob id: of the content for a regular file, of the LFS pointer for an LFS file."""
    size: int
    """Size of the file content in bytes."""
    content: bytes | None = field(default=None, repr=False)
    blob: Path | None = None

    @classmethod
    def make(cls, path: str, data: bytes, *, lfs: bool) -> HubFile:
        """Build the entry for ``data`` stored at ``path``, as a regular or an LFS file."""
        sha = hashlib.sha256(data).hexdigest()
        oid = git_blob_oid(lfs_pointer(sha, len(data)) if lfs else data)
        return cls(path=path, lfs=lfs, sha256=sha, oid=oid, size=len(data), content=bytes(data))

    @classmethod
    def from_blob(cls, path: str, blob: Path, *, sha256: str, size: int) -> HubFile:
        """The LFS entry at ``path`` whose content is the stored object ``blob``."""
        oid = git_blob_oid(lfs_pointer(sha256, size))
        return cls(path=path, lfs=True, sha256=sha256, oid=oid, size=size, blob=blob)

    @property
    def data(self) -> bytes:
        """The whole content (read from the blob file when stored on disk)."""
        if self.content is not None:
            return self.content
        assert self.blob is not None
        return self.blob.read_bytes()

    def open(self) -> BinaryIO:
        """A binary file object over the content."""
        if self.content is not None:
            return io.BytesIO(self.content)
        assert self.blob is not None
        return self.blob.open("rb")

    def iter_chunks(
        self, start: int = 0, end: int | None = None, *, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes | memoryview]:
        """Yield the bytes ``[start, end)`` of the content in pieces of at most ``chunk_size``."""
        stop = self.size if end is None else min(end, self.size)
        if self.content is not None:
            view = memoryview(self.content)
            for pos in range(start, stop, chunk_size):
                yield view[pos : min(pos + chunk_size, stop)]
            return
        with self.open() as fh:
            fh.seek(start)
            pos = start
            while pos < stop:
                chunk = fh.read(min(chunk_size, stop - pos))
                if not chunk:
                    raise OSError(f"blob of {self.path} is shorter than {self.size} bytes")
                pos += len(chunk)
                yield chunk

    def read_range(self, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of the content."""
        return b"".join(self.iter_chunks(start, end))

    @property
    def etag(self) -> str:
        """The ETag the client caches the file under: sha256 for LFS, git blob id otherwise."""
        return self.sha256 if self.lfs else self.oid

    @property
    def pointer_size(self) -> int:
        """Size of the LFS pointer file."""
        return len(lfs_pointer(self.sha256, self.size))


class BlobStore:
    """Content-addressed files ``<root>/<sha256>``, each object stored once.

    Objects are written to a temporary name in ``root`` and renamed into place, so a stored name
    always holds complete, verified content. :meth:`put_file` hard-links its source when it can:
    the source must then not be modified in place afterwards.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        """Where the object ``sha256`` is (or would be) stored."""
        return self.root / sha256

    def objects(self) -> list[str]:
        """The sha256 of every stored object, sorted."""
        return sorted(p.name for p in self.root.iterdir() if _SHA256.fullmatch(p.name))

    def _temp(self) -> Path:
        return self.root / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"

    def receive(self, chunks: Iterable[bytes | memoryview]) -> tuple[str, int, Path]:
        """Write ``chunks`` to a temporary file, hashing them: ``(sha256, size, temp path)``.

        The caller verifies the result, then :meth:`install`\\ s or deletes the temporary file.
        """
        temp = self._temp()
        digest = hashlib.sha256()
        size = 0
        try:
            with temp.open("wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return digest.hexdigest(), size, temp

    def install(self, temp: Path, sha256: str) -> Path:
        """Rename ``temp`` into place as object ``sha256`` (dropped if already stored)."""
        dest = self.path(sha256)
        if dest.exists():
            temp.unlink(missing_ok=True)
        else:
            os.replace(temp, dest)
        return dest

    def put_bytes(self, data: bytes) -> tuple[str, Path]:
        """Store ``data``: ``(sha256, stored path)``."""
        view = memoryview(data)
        sha, _, temp = self.receive(
            view[pos : pos + CHUNK_SIZE] for pos in range(0, len(view), CHUNK_SIZE)
        )
        return sha, self.install(temp, sha)

    def put_file(self, source: Path) -> tuple[str, int, Path]:
        """Store the file ``source`` (hashed in chunks; hard-linked or copied in chunks).

        Returns ``(sha256, size, stored path)``.
        """
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as fh:
            while chunk := fh.read(CHUNK_SIZE):
                digest.update(chunk)
                size += len(chunk)
        sha = digest.hexdigest()
        dest = self.path(sha)
        if dest.exists():
            return sha, size, dest
        temp = self._temp()
        try:
            os.link(source, temp)
        except OSError:
            with source.open("rb") as src, temp.open("wb") as out:
                shutil.copyfileobj(src, out, CHUNK_SIZE)
        return sha, size, self.install(temp, sha)

    def clear(self) -> None:
        """Delete every stored object and leftover temporary file."""
        for p in self.root.iterdir():
            if _SHA256.fullmatch(p.name) or p.name.startswith(_TEMP_PREFIX):
                p.unlink(missing_ok=True)


@dataclass(frozen=True)
class HubCommit:
    """An immutable commit: a full snapshot of the repo's files plus metadata."""

    id: str
    parents: tuple[str, ...]
    title: str
    message: str
    author: str
    timestamp: float
    files: Mapping[str, HubFile] = field(repr=False)

    @property
    def date(self) -> str:
        """Commit date in the Hub's ISO format."""
        return _iso(self.timestamp)


@dataclass
class _Repo:
    repo_type: RepoType
    repo_id: str
    private: bool
    gated: Literal[False, "auto", "manual"]
    created: float
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    prs: dict[int, str] = field(default_factory=dict)
    commits: dict[str, HubCommit] = field(default_factory=dict)
    lfs_objects: dict[str, bytes | Path] = field(default_factory=dict)
    """Uploaded LFS objects by sha256: their bytes, or their file in the server's blob store."""
    granted: set[str] = field(default_factory=set)
    next_discussion: int = 1

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def web_path(self) -> str:
        return _URL_PREFIX[self.repo_type] + self.repo_id


@dataclass
class RequestRecord:
    """One request the server received, as recorded for introspection."""

    method: str
    path: str
    """Decoded URL path (no query string)."""
    query: str
    status: int
    bytes_in: int
    bytes_out: int
    """Bytes of response body actually written (0 for HEAD)."""
    user: str | None
    fault: str | None = None
    """``"status"`` or ``"drop"`` when an injected fault answered the request."""
    repo_file: tuple[str, str, str] | None = None
    """``(repo_id, revision, path)`` for ``/resolve/`` requests."""


@dataclass
class PathStats:
    """Aggregated traffic for one URL path."""

    requests: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    methods: dict[str, int] = field(default_factory=dict)


@dataclass
class Fault:
    """An injected failure, armed by :meth:`LoopbackHubServer.fail_nth` or ``drop_nth``.

    It counts the requests it matches; matching requests number ``n`` to ``n + times - 1`` (1-based)
    fail. ``times=None`` means every matching request from the ``n``-th on.
    """

    n: int
    times: int | None
    method: str | None
    path_contains: str | None
    status: int | None
    drop: bool
    during: Literal["request", "response"]
    after_bytes: int | None
    headers: dict[str, str]
    message: str
    seen: int = 0
    triggered: int = 0

    def matches(self, method: str, target: str) -> bool:
        """Whether a request counts for this fault."""
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_contains is None or self.path_contains in target

    def fires(self) -> bool:
        """Count one matching request; return whether it must fail."""
        self.seen += 1
        last = None if self.times is None else self.n + self.times - 1
        hit = self.seen >= self.n and (last is None or self.seen <= last)
        if hit:
            self.triggered += 1
        return hit


class HubError(Exception):
    """An API error answered with the Hub's error conventions (``X-Error-Code``, JSON body)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.body = dict(body) if body is not None else {"error": message}


@dataclass
class _Request:
    method: str
    path: str
    segments: list[str]
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    user: str | None
    can_write: bool

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except json.JSONDecodeError as err:
            raise HubError(400, f"Invalid JSON body: {err}") from err


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    repo_file: tuple[str, str, str] | None = None
    drop_after: int | None = None
    file: tuple[HubFile, int, int] | None = None
    """A file's bytes ``[start, stop)`` to send, streamed in chunks, instead of ``body``."""

    @property
    def length(self) -> int:
        """Length of the body."""
        if self.file is None:
            return len(self.body)
        _, start, stop = self.file
        return stop - start

    def chunks(self, limit: int | None = None) -> Iterator[bytes | memoryview]:
        """The body (its first ``limit`` bytes if given), in pieces of at most CHUNK_SIZE."""
        stop_at = self.length if limit is None else min(limit, self.length)
        if self.file is None:
            if stop_at:
                yield self.body[:stop_at]
            return
        f, start, _ = self.file
        yield from f.iter_chunks(start, start + stop_at)

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> _Response:
        return cls(status=status, body=json.dumps(payload).encode(), headers=dict(headers or {}))


# --------------------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------------------


class LoopbackHubServer:
    """An in-memory Hugging Face Hub on ``127.0.0.1``, for the real ``huggingface_hub`` client.

    Args:
        tokens: access tokens the server accepts, ``{token: username}``; they have write access.
        read_tokens: read-only tokens, ``{token: username}`` (write calls answer 403).
        orgs: organizations, ``{org: members}``; members may write to the org's repos.
        lfs_threshold: files of at least this many bytes are stored with LFS.
        lfs_patterns: ``.gitattributes``-style patterns of files stored with LFS.
        tree_page_size: entries per page of ``/tree`` listings (more are paged with ``Link``).
        commits_page_size: entries per page of ``/commits`` listings.
        host: interface to bind; only loopback addresses make sense.
        port: port to bind, 0 for an ephemeral one.
        blob_dir: when given, LFS object contents are stored there as files named by their
            sha256 instead of in memory (:meth:`reset` deletes them); uploads and downloads of
            LFS files then stream through it in chunks.

    Access rules, as on the Hub: a request with an unknown bearer token gets 401 "Invalid
    credentials in Authorization header" whatever it asks for; a private repo is visible to its
    namespace's user, its org's members and users granted access (401 ``RepoNotFound`` without a
    token, 404 ``RepoNotFound`` with someone else's); a gated repo's metadata and tree are public
    but its files need a granted user (401/403 ``GatedRepo``); writing needs a write token of the
    namespace's user or of a member of the org.
    """

    #: Returned in ``whoami-v2`` and commit authors when a change is made from Python.
    SYSTEM_USER: ClassVar[str] = "loopback-system"

    def __init__(
        self,
        *,
        tokens: Mapping[str, str] | None = None,
        read_tokens: Mapping[str, str] | None = None,
        orgs: Mapping[str, Iterable[str]] | None = None,
        lfs_threshold: int = _LFS_THRESHOLD,
        lfs_patterns: Iterable[str] = DEFAULT_LFS_PATTERNS,
        tree_page_size: int = 1000,
        commits_page_size: int = 50,
        host: str = "127.0.0.1",
        port: int = 0,
        blob_dir: Path | None = None,
    ) -> None:
        self.blobs: BlobStore | None = BlobStore(blob_dir) if blob_dir is not None else None
        self._initial_settings = (
            lfs_threshold,
            tuple(lfs_patterns),
            tree_page_size,
            commits_page_size,
        )
        self.lfs_threshold = lfs_threshold
        self.lfs_patterns: tuple[str, ...] = tuple(lfs_patterns)
        self.tree_page_size = tree_page_size
        self.commits_page_size = commits_page_size
        self._host = host
        self._port = port
        self._initial_tokens = {t: (u, True) for t, u in (tokens or {}).items()}
        self._initial_tokens.update({t: (u, False) for t, u in (read_tokens or {}).items()})
        self._initial_orgs = {o: set(m) for o, m in (orgs or {}).items()}
        self._lock = threading.RLock()
        self._tokens: dict[str, tuple[str, bool]] = {}
        self._orgs: dict[str, set[str]] = {}
        self._repos: dict[tuple[RepoType, str], _Repo] = {}
        self._pending_uploads: dict[str, tuple[tuple[RepoType, str], str, int]] = {}
        self._records: list[RequestRecord] = []
        # Responses being written: a client can read a response's last byte before its handler
        # records the request, so what reads the records first waits for those (_settled).
        self._writing = 0
        self._written = threading.Condition(self._lock)
        self._faults: list[Fault] = []
        self._served_instead: dict[tuple[str, str], bytes] = {}
        self._instead_after: dict[tuple[str, str], int] = {}  # whole GETs served as committed
        self._delays: list[tuple[str | None, str | None, float]] = []
        self.delayed: list[str] = []  # the requests held by delay(), as they arrive
        self._commit_counter = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> LoopbackHubServer:
        """Bind the socket and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((self._host, self._port), _Handler, hub=self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"loopback-hub:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and join the serving thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_all_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LoopbackHubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the server must be started)."""
        if self._httpd is None:
            raise RuntimeError("LoopbackHubServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as ``HF_ENDPOINT``, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    endpoint = url

    def reset(self) -> None:
        """Forget repos, requests and faults; restore the initial tokens, orgs and settings."""
        with self._lock:
            (
                self.lfs_threshold,
                self.lfs_patterns,
                self.tree_page_size,
                self.commits_page_size,
            ) = self._initial_settings
            self._tokens = dict(self._initial_tokens)
            self._orgs = {o: set(m) for o, m in self._initial_orgs.items()}
            self._repos.clear()
            self._pending_uploads.clear()
            if self.blobs is not None:
                self.blobs.clear()
            self._records.clear()
            self._faults.clear()
            self._served_instead.clear()
            self._instead_after.clear()
            self._delays.clear()
            self.delayed.clear()

    # ------------------------------------------------------------------------------- auth config

    def add_token(self, token: str, username: str, *, write: bool = True) -> None:
        """Accept ``token`` as ``username`` (until the next :meth:`reset`)."""
        with self._lock:
            self._tokens[token] = (username, write)

    def add_org(self, org: str, members: Iterable[str]) -> None:
        """Create (or extend) an organization whose members may write to its repos."""
        with self._lock:
            self._orgs.setdefault(org, set()).update(members)

    def grant_access(self, repo_id: str, username: str, *, repo_type: RepoType = "model") -> None:
        """Give ``username`` read access to a private repo or to a gated repo's files."""
        with self._lock:
            self._get_repo(repo_type, repo_id).granted.add(username)

    def set_private(
        self, repo_id: str, private: bool = True, *, repo_type: RepoType = "model"
    ) -> None:
        """Change a repo's visibility."""
        with self._lock:
            self._get_repo(repo_type, repo_id).private = private

    def set_gated(
        self,
        repo_id: str,
        gated: Literal[False, "auto", "manual"] = "auto",
        *,
        repo_type: RepoType = "model",
    ) -> None:
        """Gate a repo (``"auto"`` or ``"manual"``) or ungate it (``False``)."""
        with self._lock:
            self._get_repo(repo_type, repo_id).gated = gated

    # ------------------------------------------------------------------------------ repo helpers

    def create_repo(
        self,
        repo_id: str,
        *,
        repo_type: RepoType = "model",
        private: bool = False,
        gated: Literal[False, "auto", "manual"] = False,
        gitattributes: bool = False,
        exist_ok: bool = False,
    ) -> str:
        """Create a repo with its initial commit on ``main``; return that commit's sha.

        The initial commit holds the default ``.gitattributes`` when ``gitattributes`` is true (as
        repos created over HTTP do) and no file otherwise.
        """
        with self._lock:
            key = (repo_type, repo_id)
            if key in self._repos:
                if not exist_ok:
                    raise ValueError(f"{repo_type} repo {repo_id!r} already exists")
                return self._repos[key].branches["main"]
            repo = _Repo(repo_type, repo_id, private, gated, time.time())
            files = {
                ".gitattributes": HubFile.make(".gitattributes", DEFAULT_GITATTRIBUTES, lfs=False)
            }
            sha = self._new_commit(
                repo,
                parent=None,
                files=files if gitattributes else {},
                title="initial commit",
                message="",
                author=self.SYSTEM_USER,
            )
            repo.branches["main"] = sha
            self._repos[key] = repo
            return sha

    def seed_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileContent],
        *,
        private: bool = False,
        gated: Literal[False, "auto", "manual"] = False,
        message: str = "Seed repo",
        branch: str = "main",
        repo_type: RepoType = "model",
        author: str | None = None,
    ) -> str:
        """Create the repo if needed (no ``.gitattributes``) and commit ``files`` to ``branch``.

        Values are ``bytes``, a :class:`~pathlib.Path` to read, or ``str`` text (UTF-8). Files are
        stored as LFS per :attr:`lfs_patterns`/:attr:`lfs_threshold`; with a ``blob_dir``, an LFS
        ``Path`` is hashed and hard-linked (or copied) into the store in chunks, never read
        whole. ``private``/``gated`` apply
        when the repo is created. Returns the new commit's sha.
        """
        with self._lock:
            if (repo_type, repo_id) not in self._repos:
                self.create_repo(repo_id, repo_type=repo_type, private=private, gated=gated)
            repo = self._get_repo(repo_type, repo_id)
            if branch not in repo.branches:
                repo.branches[branch] = repo.branches["main"]
            return self.commit_files(
                repo_id, files, branch=branch, message=message, repo_type=repo_type, author=author
            )

    def commit_files(
        self,
        repo_id: str,
        add: Mapping[str, FileContent] | None = None,
        *,
        delete: Iterable[str] = (),
        branch: str = "main",
        message: str = "Update files",
        repo_type: RepoType = "model",
        author: str | None = None,
        lfs: bool | None = None,
    ) -> str:
        """Commit additions and deletions to an existing branch (or ``refs/pr/N``); return the sha.

        A path in ``delete`` ending with ``/`` deletes a folder. ``lfs`` forces the storage mode of
        the added files (default: classified by the server's LFS rules).
        """
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            kind, target = self._write_target(repo, branch)
            parent = repo.branches[target] if kind == "branch" else repo.prs[int(target)]
            tree = dict(repo.commits[parent].files)
            for path in delete:
                self._delete_path(tree, path.rstrip("/"), folder=path.endswith("/"))
            for path, content in (add or {}).items():
                entry = self._make_file(path, content, lfs)
                tree[path] = entry
                if entry.lfs:
                    repo.lfs_objects[entry.sha256] = (
                        entry.blob if entry.blob is not None else entry.data
                    )
            title, _, body = message.partition("\n")
            sha = self._new_commit(
                repo,
                parent=parent,
                files=tree,
                title=title,
                message=body.strip(),
                author=author or self.SYSTEM_USER,
            )
            self._move_ref(repo, kind, target, sha)
            return sha

    def create_branch(
        self, repo_id: str, branch: str, *, revision: str = "main", repo_type: RepoType = "model"
    ) -> str:
        """Create ``branch`` at ``revision``; return its sha."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            sha = self._resolve(repo, revision)
            repo.branches[branch] = sha
            return sha

    def create_tag(
        self, repo_id: str, tag: str, *, revision: str = "main", repo_type: RepoType = "model"
    ) -> str:
        """Create ``tag`` at ``revision``; return its sha."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            sha = self._resolve(repo, revision)
            repo.tags[tag] = sha
            return sha

    def merge_pr(self, repo_id: str, num: int, *, repo_type: RepoType = "model") -> str:
        """Fast-forward-merge ``refs/pr/{num}`` into ``main`` (a merge commit); return its sha."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            pr_head = repo.prs[num]
            head = repo.branches["main"]
            sha = self._new_commit(
                repo,
                parent=head,
                files=dict(repo.commits[pr_head].files),
                title=f"Merge refs/pr/{num}",
                message="",
                author=self.SYSTEM_USER,
                extra_parents=(pr_head,),
            )
            repo.branches["main"] = sha
            return sha

    def delete_repo(self, repo_id: str, *, repo_type: RepoType = "model") -> None:
        """Delete a repo."""
        with self._lock:
            self._repos.pop((repo_type, repo_id), None)

    # ---------------------------------------------------------------------------- state queries

    def repo_exists(self, repo_id: str, *, repo_type: RepoType = "model") -> bool:
        """Whether the repo exists."""
        with self._lock:
            return (repo_type, repo_id) in self._repos

    def is_private(self, repo_id: str, *, repo_type: RepoType = "model") -> bool:
        """Whether the repo is private."""
        with self._lock:
            return self._get_repo(repo_type, repo_id).private

    def head_sha(
        self, repo_id: str, revision: str = "main", *, repo_type: RepoType = "model"
    ) -> str:
        """The commit sha a branch, tag, ``refs/pr/N`` or sha prefix resolves to."""
        with self._lock:
            return self._resolve(self._get_repo(repo_type, repo_id), revision)

    def refs(self, repo_id: str, *, repo_type: RepoType = "model") -> dict[str, str]:
        """All refs of the repo, e.g. ``{"refs/heads/main": sha, "refs/pr/1": sha}``."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            out = {f"refs/heads/{b}": s for b, s in repo.branches.items()}
            out.update({f"refs/tags/{t}": s for t, s in repo.tags.items()})
            out.update({f"refs/pr/{n}": s for n, s in repo.prs.items()})
            return out

    def pull_requests(self, repo_id: str, *, repo_type: RepoType = "model") -> dict[int, str]:
        """Pull-request refs: ``{num: head sha}``."""
        with self._lock:
            return dict(self._get_repo(repo_type, repo_id).prs)

    def list_files(
        self, repo_id: str, revision: str = "main", *, repo_type: RepoType = "model"
    ) -> list[str]:
        """Sorted paths of the files at ``revision``."""
        with self._lock:
            return sorted(self._commit_at(repo_type, repo_id, revision).files)

    def get_file(
        self, repo_id: str, path: str, revision: str = "main", *, repo_type: RepoType = "model"
    ) -> HubFile:
        """The :class:`HubFile` at ``path`` (``KeyError`` if missing)."""
        with self._lock:
            return self._commit_at(repo_type, repo_id, revision).files[path]

    def read_file(
        self, repo_id: str, path: str, revision: str = "main", *, repo_type: RepoType = "model"
    ) -> bytes:
        """The bytes of ``path`` at ``revision`` (``KeyError`` if missing)."""
        return self.get_file(repo_id, path, revision, repo_type=repo_type).data

    def get_commit(
        self, repo_id: str, revision: str = "main", *, repo_type: RepoType = "model"
    ) -> HubCommit:
        """The :class:`HubCommit` ``revision`` resolves to."""
        with self._lock:
            return self._commit_at(repo_type, repo_id, revision)

    def list_commits(
        self, repo_id: str, revision: str = "main", *, repo_type: RepoType = "model"
    ) -> list[HubCommit]:
        """First-parent history of ``revision``, newest first (the initial commit last)."""
        with self._lock:
            repo = self._get_repo(repo_type, repo_id)
            return list(self._history(repo, self._resolve(repo, revision)))

    # ---------------------------------------------------------------------------- introspection

    @property
    def requests(self) -> list[RequestRecord]:
        """A copy of the requests received so far, oldest first."""
        return self._settled()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._records.clear()

    def _select(
        self, path_contains: str | None, method: str | None, status: int | None = None
    ) -> list[RequestRecord]:
        return [
            r
            for r in self._settled()
            if (path_contains is None or path_contains in r.path)
            and (method is None or r.method == method.upper())
            and (status is None or r.status == status)
        ]

    def request_count(
        self,
        *,
        path_contains: str | None = None,
        method: str | None = None,
        status: int | None = None,
    ) -> int:
        """Number of recorded requests whose decoded path contains ``path_contains``, etc."""
        return len(self._select(path_contains, method, status))

    def bytes_served(self, *, path_contains: str | None = None, method: str | None = None) -> int:
        """Response-body bytes written for the matching requests."""
        return sum(r.bytes_out for r in self._select(path_contains, method))

    def bytes_received(self, *, path_contains: str | None = None, method: str | None = None) -> int:
        """Request-body bytes received for the matching requests."""
        return sum(r.bytes_in for r in self._select(path_contains, method))

    def stats_by_path(self) -> dict[str, PathStats]:
        """Requests and bytes per decoded URL path."""
        out: dict[str, PathStats] = {}
        for rec in self.requests:
            stats = out.setdefault(rec.path, PathStats())
            stats.requests += 1
            stats.bytes_out += rec.bytes_out
            stats.bytes_in += rec.bytes_in
            stats.methods[rec.method] = stats.methods.get(rec.method, 0) + 1
        return out

    def downloaded_files(self, repo_id: str | None = None) -> dict[str, int]:
        """Bytes of file content served by ``GET .../resolve/...``, per repo file path.

        A file that was only HEAD-ed does not appear; so ``not any(p.endswith(".bin") for p in
        hub.downloaded_files())`` proves that no ``.bin`` file was downloaded.
        """
        out: dict[str, int] = {}
        for rec in self.requests:
            if rec.method != "GET" or rec.repo_file is None:
                continue
            if repo_id is not None and rec.repo_file[0] != repo_id:
                continue
            if rec.status in (200, 206) or rec.fault == "drop":
                out[rec.repo_file[2]] = out.get(rec.repo_file[2], 0) + rec.bytes_out
        return out

    # -------------------------------------------------------------------------- fault injection

    def fail_nth(
        self,
        n: int = 1,
        status: int = 500,
        *,
        path_contains: str | None = None,
        method: str | None = None,
        times: int | None = 1,
        drop: bool = False,
        headers: Mapping[str, str] | None = None,
        message: str = "Injected failure (loopback hub)",
    ) -> Fault:
        """Answer the ``n``-th matching request (1-based) with ``status`` instead of serving it.

        ``path_contains`` is matched against the decoded request path plus ``?query``, ``method``
        against the HTTP method. ``times`` consecutive matching requests fail (``None``: all from
        the ``n``-th on). With ``drop=True`` the connection is closed without a response instead,
        as :meth:`drop_nth` does. The request body is read (and discarded) before answering.
        """
        return self._add_fault(
            Fault(
                n=n,
                times=times,
                method=method,
                path_contains=path_contains,
                status=None if drop else status,
                drop=drop,
                during="request",
                after_bytes=None,
                headers=dict(headers or {}),
                message=message,
            )
        )

    def drop_nth(
        self,
        n: int = 1,
        *,
        path_contains: str | None = None,
        method: str | None = None,
        times: int | None = 1,
        during: Literal["request", "response"] = "request",
        after_bytes: int | None = None,
    ) -> Fault:
        """Close the connection on the ``n``-th matching request without completing it.

        ``during="request"``: the server reads ``after_bytes`` bytes of the request body (none by
        default; use it to cut an upload in the middle) and closes the connection without
        answering. Nothing of the request takes effect. ``during="response"``: the request is
        served (its effects happen!) but the connection is closed after the headers and
        ``after_bytes`` bytes of the body (default 0), e.g. to cut a download in the middle.
        """
        return self._add_fault(
            Fault(
                n=n,
                times=times,
                method=method,
                path_contains=path_contains,
                status=None,
                drop=True,
                during=during,
                after_bytes=after_bytes,
                headers={},
                message="",
            )
        )

    def serve_instead(
        self, repo_id: str, path: str, data: bytes, *, after_downloads: int = 0
    ) -> None:
        """Answer downloads of ``path`` in ``repo_id`` (every revision, ranges too) with
        ``data``, while listings keep the size and sha256 of the committed file: a hostile or
        corrupting Hub whose bytes are not the ones it lists (until the next :meth:`reset`).
        With ``after_downloads``, that many whole-file GETs (no Range header; and every request
        before the last of them) are answered with the committed bytes first: a file whose
        bytes change between two reads of one run."""
        with self._lock:
            self._served_instead[(repo_id, path)] = bytes(data)
            self._instead_after[(repo_id, path)] = after_downloads

    def delay(
        self, seconds: float, *, path_contains: str | None = None, method: str | None = None
    ) -> None:
        """Hold every matching request ``seconds`` after its body was read and before it takes
        effect and is answered (until the next :meth:`reset`): e.g. a commit in flight."""
        with self._lock:
            self._delays.append((path_contains, method, seconds))

    def _delay_for(self, method: str, target: str) -> float:
        with self._lock:
            pause = sum(
                seconds
                for contains, wanted, seconds in self._delays
                if (wanted is None or wanted.upper() == method)
                and (contains is None or contains in target)
            )
            if pause > 0:
                self.delayed.append(f"{method} {target}")
            return pause

    def clear_faults(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: Fault) -> Fault:
        if fault.n < 1:
            raise ValueError("n is 1-based")
        with self._lock:
            self._faults.append(fault)
        return fault

    def _match_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            fired: Fault | None = None
            for fault in self._faults:
                if fault.matches(method, target) and fault.fires() and fired is None:
                    fired = fault
            return fired

    # ------------------------------------------------------------------------------- internals

    def is_lfs(self, path: str, size: int) -> bool:
        """Whether a file is stored with LFS: by pattern or by size."""
        return size >= self.lfs_threshold or _match_patterns(path, self.lfs_patterns)

    def _make_file(self, path: str, content: FileContent, lfs: bool | None) -> HubFile:
        """The entry for ``content`` at ``path``: LFS objects go to the blob store if any."""
        blobs = self.blobs
        if blobs is not None and isinstance(content, Path):
            size = content.stat().st_size
            if self.is_lfs(path, size) if lfs is None else lfs:
                sha, size, blob = blobs.put_file(content)
                return HubFile.from_blob(path, blob, sha256=sha, size=size)
        data = _read_content(content)
        is_lfs = self.is_lfs(path, len(data)) if lfs is None else lfs
        if blobs is not None and is_lfs:
            sha, blob = blobs.put_bytes(data)
            return HubFile.from_blob(path, blob, sha256=sha, size=len(data))
        return HubFile.make(path, data, lfs=is_lfs)

    def _get_repo(self, repo_type: RepoType, repo_id: str) -> _Repo:
        try:
            return self._repos[(repo_type, repo_id)]
        except KeyError:
            raise KeyError(f"no {repo_type} repo {repo_id!r}") from None

    def _commit_at(self, repo_type: RepoType, repo_id: str, revision: str) -> HubCommit:
        repo = self._get_repo(repo_type, repo_id)
        return repo.commits[self._resolve(repo, revision)]

    def _new_commit(
        self,
        repo: _Repo,
        *,
        parent: str | None,
        files: Mapping[str, HubFile],
        title: str,
        message: str,
        author: str,
        extra_parents: tuple[str, ...] = (),
    ) -> str:
        self._commit_counter += 1
        seed = json.dumps(
            [
                repo.repo_id,
                parent,
                sorted((p, f.oid) for p, f in files.items()),
                title,
                message,
                self._commit_counter,
                secrets.token_hex(8),
            ]
        )
        sha = hashlib.sha1(seed.encode()).hexdigest()
        parents = ((parent,) if parent else ()) + extra_parents
        repo.commits[sha] = HubCommit(
            id=sha,
            parents=parents,
            title=title,
            message=message,
            author=author,
            timestamp=time.time(),
            files=MappingProxyType(dict(files)),
        )
        return sha

    def _history(self, repo: _Repo, sha: str) -> Iterator[HubCommit]:
        current: str | None = sha
        while current is not None:
            commit = repo.commits[current]
            yield commit
            current = commit.parents[0] if commit.parents else None

    def _resolve(self, repo: _Repo, rev: str) -> str:
        """Resolve a branch, tag, full ref, PR ref or (prefix of a) sha; raise RevisionNotFound."""
        name = rev
        if name.startswith("refs/heads/") and name[11:] in repo.branches:
            return repo.branches[name[11:]]
        if name.startswith("refs/tags/") and name[10:] in repo.tags:
            return repo.tags[name[10:]]
        m = re.fullmatch(r"refs/pr/(\d+)", name)
        if m and int(m.group(1)) in repo.prs:
            return repo.prs[int(m.group(1))]
        if name in repo.branches:
            return repo.branches[name]
        if name in repo.tags:
            return repo.tags[name]
        lowered = name.lower()
        if _HEX40.fullmatch(lowered) and lowered in repo.commits:
            return lowered
        if _HEX_PREFIX.fullmatch(lowered):
            found = [sha for sha in repo.commits if sha.startswith(lowered)]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")

    def _write_target(self, repo: _Repo, rev: str) -> tuple[Literal["branch", "pr"], str]:
        """Resolve a ref that can receive commits: a branch or a PR ref."""
        m = re.fullmatch(r"refs/pr/(\d+)", rev)
        if m and int(m.group(1)) in repo.prs:
            return "pr", m.group(1)
        name = rev[11:] if rev.startswith("refs/heads/") else rev
        if name in repo.branches:
            return "branch", name
        raise HubError(404, f"Invalid rev id: {rev}", code="RevisionNotFound")

    def _move_ref(self, repo: _Repo, kind: Literal["branch", "pr"], target: str, sha: str) -> None:
        if kind == "branch":
            repo.branches[target] = sha
        else:
            repo.prs[int(target)] = sha

    @staticmethod
    def _delete_path(tree: dict[str, HubFile], path: str, *, folder: bool) -> None:
        """Delete a file, or every file under a folder, from ``tree``; EntryNotFound if missing."""
        if not folder:
            if path not in tree:
                raise HubError(
                    404, f"A file with this name doesn't exist: {path}", code="EntryNotFound"
                )
            del tree[path]
            return
        prefix = f"{path}/" if path else ""
        inside = [p for p in tree if p.startswith(prefix)]
        if not inside:
            raise HubError(
                404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound"
            )
        for p in inside:
            del tree[p]

    # ---------------------------------------------------------------------------- HTTP dispatch

    def _authenticate(self, headers: Mapping[str, str]) -> tuple[str | None, bool, bool]:
        """Return ``(user, can_write, invalid)`` for a request's ``Authorization`` header."""
        auth = headers.get("authorization") or ""
        if not auth:
            return None, False, False
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, False, True
        with self._lock:
            entry = self._tokens.get(token.strip())
        if entry is None:
            return None, False, True
        return entry[0], entry[1], False

    def _begin_write(self) -> None:
        with self._lock:
            self._writing += 1

    def _record(self, rec: RequestRecord, *, wrote: bool = False) -> None:
        with self._lock:
            self._records.append(rec)
            if wrote:
                self._writing -= 1
                self._written.notify_all()

    def _settled(self) -> list[RequestRecord]:
        """The records, once every response being written has been recorded (at most 5 s)."""
        with self._lock:
            self._written.wait_for(lambda: self._writing == 0, timeout=5.0)
            return list(self._records)

    def _dispatch(self, req: _Request) -> _Response:
        with self._lock:
            try:
                return self._route(req)
            except HubError as err:
                return _error_response(err)

    def _streams_upload(self, method: str, path: str) -> bool:
        """Whether the request body is an LFS object to stream into the blob store."""
        return self.blobs is not None and method == "PUT" and path.startswith("/_lfs/upload/")

    def _receive_lfs(self, path: str, chunks: Iterable[bytes]) -> _Response:
        """Stream an LFS basic-transfer PUT into the blob store, outside the server lock."""
        blobs = self.blobs
        assert blobs is not None
        upload_id = path.rsplit("/", 1)[-1]
        try:
            with self._lock:
                if upload_id not in self._pending_uploads:
                    raise HubError(404, "Unknown or expired LFS upload URL")
                key, oid, size = self._pending_uploads[upload_id]
                if key not in self._repos:
                    raise HubError(404, "Repository not found", code="RepoNotFound")
            sha, got, temp = blobs.receive(chunks)
            if got != size or sha != oid:
                temp.unlink(missing_ok=True)
                raise HubError(
                    400,
                    f"Uploaded content does not match the object (oid {oid}, size {size}):"
                    f" got {got} bytes with sha256 {sha}",
                )
            blob = blobs.install(temp, sha)
            with self._lock:
                repo = self._repos.get(key)
                if repo is None:
                    raise HubError(404, "Repository not found", code="RepoNotFound")
                repo.lfs_objects[oid] = blob
        except HubError as err:
            return _error_response(err)
        return _Response(
            status=200, body=b"", content_type="text/plain", headers={"ETag": f'"{oid}"'}
        )

    def _route(self, req: _Request) -> _Response:
        seg = req.segments
        if not seg:
            return _Response.json({"loopback": "hub"})
        if seg[0] == "api":
            return self._route_api(req, seg[1:])
        if seg[0] == "_lfs":
            return self._route_lfs_transfer(req, seg[1:])
        repo_type: RepoType = "model"
        rest = seg
        if seg[0] in ("datasets", "spaces") and len(seg) > 2:
            repo_type = _REPO_TYPES[seg[0]]
            rest = seg[1:]
        # LFS batch: /{repo}.git/info/lfs/objects/batch
        for i, part in enumerate(rest[:2]):
            if part.endswith(".git") and rest[i + 1 : i + 5] == ["info", "lfs", "objects", "batch"]:
                repo_id = "/".join([*rest[:i], part[:-4]])
                return self._lfs_batch(req, repo_type, repo_id)
        # Resolve: /{repo}/resolve/{rev}/{path}
        for i in (1, 2):
            if len(rest) > i + 1 and rest[i] == "resolve":
                repo_id = "/".join(rest[:i])
                rev, remaining = _take_revision(rest[i + 1 :])
                return self._resolve_file(req, repo_type, repo_id, rev, "/".join(remaining))
        raise HubError(404, f"Not Found: {req.path}")

    def _route_api(self, req: _Request, seg: list[str]) -> _Response:
        head = seg[0] if seg else ""
        if head == "whoami-v2" and req.method == "GET":
            return self._whoami(req)
        if head == "validate-yaml" and req.method == "POST":
            return self._validate_yaml(req)
        if head == "repos" and len(seg) == 2:
            if seg[1] == "create" and req.method == "POST":
                return self._create_repo_api(req)
            if seg[1] == "delete" and req.method == "DELETE":
                return self._delete_repo_api(req)
        if head in _REPO_TYPES:
            repo_type = _REPO_TYPES[head]
            rest = seg[1:]
            if not rest:
                if req.method == "GET":
                    return self._list_repos(req, repo_type)
                raise HubError(405, "Method not allowed")
            if len(rest) >= 2 and rest[1] not in _API_SUBPATHS:
                repo_id, rest = f"{rest[0]}/{rest[1]}", rest[2:]
            else:
                repo_id, rest = rest[0], rest[1:]
            return self._route_repo_api(req, repo_type, repo_id, rest)
        raise HubError(404, f"Not Found: {req.path}")

    def _route_repo_api(
        self, req: _Request, repo_type: RepoType, repo_id: str, rest: list[str]
    ) -> _Response:
        sub = rest[0] if rest else None
        args = rest[1:]
        m = req.method
        if sub is None and m == "GET":
            return self._repo_info(req, repo_type, repo_id, None)
        if sub == "revision" and args and m == "GET":
            rev, _ = _take_revision(args)
            return self._repo_info(req, repo_type, repo_id, rev)
        if sub == "tree" and m == "GET":
            rev, remaining = _take_revision(args) if args else ("main", [])
            return self._tree(req, repo_type, repo_id, rev, "/".join(remaining).strip("/"))
        if sub == "paths-info" and args and m == "POST":
            rev, _ = _take_revision(args)
            return self._paths_info(req, repo_type, repo_id, rev)
        if sub == "refs" and m == "GET":
            return self._refs(req, repo_type, repo_id)
        if sub == "commits" and m == "GET":
            rev, _ = _take_revision(args) if args else ("main", [])
            return self._commits(req, repo_type, repo_id, rev)
        if sub == "preupload" and args and m == "POST":
            rev, _ = _take_revision(args)
            return self._preupload(req, repo_type, repo_id, rev)
        if sub == "commit" and args and m == "POST":
            rev, _ = _take_revision(args)
            return self._commit_api(req, repo_type, repo_id, rev)
        if sub == "branch" and args and m in ("POST", "DELETE"):
            return self._branch_api(req, repo_type, repo_id, "/".join(args))
        if sub == "tag" and args and m in ("POST", "DELETE"):
            return self._tag_api(req, repo_type, repo_id, "/".join(args))
        if sub == "settings" and m == "PUT":
            return self._settings_api(req, repo_type, repo_id)
        if sub in ("xet-write-token", "xet-read-token"):
            self._visible_repo(req, repo_type, repo_id)
            raise HubError(
                501,
                "The loopback hub does not implement Xet storage: run the client with "
                "HF_HUB_DISABLE_XET=1 (read when huggingface_hub is imported).",
            )
        raise HubError(404, f"Not Found: {req.path}")

    # ---------------------------------------------------------------------- access control

    def _can_read_private(self, repo: _Repo, user: str | None) -> bool:
        if user is None:
            return False
        return (
            user == repo.namespace
            or user in self._orgs.get(repo.namespace, ())
            or (user in repo.granted)
        )

    def _visible_repo(self, req: _Request, repo_type: RepoType, repo_id: str) -> _Repo:
        """Return the repo if the caller may see it; RepoNotFound otherwise (401 when anonymous)."""
        repo = self._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._can_read_private(repo, req.user)):
            status = 401 if req.user is None else 404
            raise HubError(status, "Repository not found", code="RepoNotFound")
        return repo

    def _check_gate(self, req: _Request, repo: _Repo) -> None:
        if not repo.gated or self._can_read_private(repo, req.user):
            return
        if req.user is None:
            raise HubError(
                401,
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                code="GatedRepo",
            )
        raise HubError(
            403,
            f"Access to model {repo.repo_id} is restricted and you are not in the authorized list.",
            code="GatedRepo",
        )

    def _require_auth(self, req: _Request) -> str:
        if req.user is None:
            raise HubError(401, "You must be authenticated to perform this action")
        return req.user

    def _check_write(self, req: _Request, namespace: str) -> str:
        user = self._require_auth(req)
        if not req.can_write:
            raise HubError(403, "This token has read-only access (loopback hub)")
        if user != namespace and user not in self._orgs.get(namespace, ()):
            raise HubError(403, f"You don't have the rights to write to the namespace {namespace}")
        return user

    def _writable_repo(self, req: _Request, repo_type: RepoType, repo_id: str) -> tuple[_Repo, str]:
        repo = self._visible_repo(req, repo_type, repo_id)
        return repo, self._check_write(req, repo.namespace)

    # ------------------------------------------------------------------------------ endpoints

    def _whoami(self, req: _Request) -> _Response:
        if req.user is None:
            raise HubError(401, _INVALID_CREDENTIALS)
        orgs = [
            {"type": "org", "name": org, "fullname": org, "roleInOrg": "write"}
            for org, members in sorted(self._orgs.items())
            if req.user in members
        ]
        return _Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(req.user.encode()).hexdigest()[:24],
                "name": req.user,
                "fullname": req.user,
                "email": f"{req.user}@loopback.invalid",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": "",
                "orgs": orgs,
                "auth": {
                    "type": "access_token",
                    "accessToken": {
                        "displayName": "loopback",
                        "role": "write" if req.can_write else "read",
                        "createdAt": _iso(0),
                    },
                },
            }
        )

    def _validate_yaml(self, req: _Request) -> _Response:
        payload = req.json()
        content = str(payload.get("content", ""))
        error = _check_card_yaml(content)
        if error is not None:
            return _Response.json({"errors": [{"message": error}], "warnings": []}, status=400)
        return _Response.json({"errors": [], "warnings": []})

    def _create_repo_api(self, req: _Request) -> _Response:
        payload = req.json()
        name = payload.get("name")
        if not isinstance(name, str) or not name:
            raise HubError(400, "Missing repo name")
        user = self._require_auth(req)
        namespace = payload.get("organization") or user
        repo_type: RepoType = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        repo_id = f"{namespace}/{name}"
        url = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        self._check_write(req, namespace)
        if (repo_type, repo_id) in self._repos:
            return _Response.json(
                {"error": f"You already created this {repo_type} repo", "url": url}, status=409
            )
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.create_repo(repo_id, repo_type=repo_type, private=private, gitattributes=True)
        return _Response.json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo_api(self, req: _Request) -> _Response:
        payload = req.json()
        user = self._require_auth(req)
        namespace = payload.get("organization") or user
        repo_type: RepoType = payload.get("type") or "model"
        repo_id = f"{namespace}/{payload.get('name')}"
        self._writable_repo(req, repo_type, repo_id)
        del self._repos[(repo_type, repo_id)]
        return _Response(status=200, body=b"", content_type="text/plain")

    def _settings_api(self, req: _Request, repo_type: RepoType, repo_id: str) -> _Response:
        repo, _ = self._writable_repo(req, repo_type, repo_id)
        payload = req.json()
        if "private" in payload:
            repo.private = bool(payload["private"])
        if payload.get("visibility") in ("private", "public"):
            repo.private = payload["visibility"] == "private"
        if "gated" in payload:
            repo.gated = payload["gated"] or False
        return _Response.json({})

    def _list_repos(self, req: _Request, repo_type: RepoType) -> _Response:
        author = req.param("author")
        search = req.param("search")
        limit = int(req.param("limit") or 0) or None
        items = []
        for (rtype, repo_id), repo in sorted(self._repos.items()):
            if rtype != repo_type or (repo.private and not self._can_read_private(repo, req.user)):
                continue
            if author is not None and repo.namespace != author:
                continue
            if search is not None and search.lower() not in repo_id.lower():
                continue
            sha = repo.branches["main"]
            items.append(
                {
                    "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                    "id": repo_id,
                    "private": repo.private,
                    "gated": repo.gated,
                    "sha": sha,
                    "lastModified": repo.commits[sha].date,
                    "createdAt": _iso(repo.created),
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                }
            )
        return _Response.json(items[:limit] if limit else items)

    def _repo_info(
        self, req: _Request, repo_type: RepoType, repo_id: str, revision: str | None
    ) -> _Response:
        repo = self._visible_repo(req, repo_type, repo_id)
        sha = self._resolve(repo, revision or "main")
        commit = repo.commits[sha]
        blobs = req.flag("blobs")
        siblings = []
        for path, f in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=f.size, blobId=f.oid)
                if f.lfs:
                    sibling["lfs"] = {
                        "size": f.size,
                        "sha256": f.sha256,
                        "pointerSize": f.pointer_size,
                    }
            siblings.append(sibling)
        card = _card_data(commit.files.get("README.md"))
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo.namespace,
            "sha": sha,
            "lastModified": commit.date,
            "createdAt": _iso(repo.created),
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(card.get("tags") or []) if isinstance(card.get("tags"), list) else [],
            "siblings": siblings,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if repo_type == "model":
            info["modelId"] = repo_id
            for key in ("library_name", "pipeline_tag"):
                if isinstance(card.get(key), str):
                    info[key] = card[key]
            config = commit.files.get("config.json")
            if config is not None:
                with contextlib.suppress(ValueError):
                    parsed = json.loads(config.data)
                    if isinstance(parsed, dict):
                        info["config"] = {
                            k: parsed[k] for k in ("architectures", "model_type") if k in parsed
                        }
        if repo_type == "space":
            info["sdk"] = card.get("sdk", "static")
        if card:
            info["cardData"] = card
        expand = req.query.get("expand") or req.query.get("expand[]")
        if expand:
            info = {k: v for k, v in info.items() if k in set(expand) or k in ("id", "_id")}
        return _Response.json(info)

    def _tree_entries(
        self, commit: HubCommit, base: str, *, recursive: bool
    ) -> list[dict[str, Any]]:
        prefix = base + "/" if base else ""
        dirs: dict[str, list[HubFile]] = {}
        files: list[HubFile] = []
        for path, f in commit.files.items():
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                if not recursive and depth > 1:
                    break
                dirs.setdefault(prefix + "/".join(parts[:depth]), []).append(f)
            if recursive or len(parts) == 1:
                files.append(f)
        entries: list[dict[str, Any]] = []
        for d, content in dirs.items():
            tree_oid = hashlib.sha1(
                "".join(sorted(f"{f.path}:{f.oid}\n" for f in content)).encode()
            ).hexdigest()
            entries.append({"type": "directory", "oid": tree_oid, "size": 0, "path": d})
        for f in files:
            entry: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            entries.append(entry)
        entries.sort(key=lambda e: (e["type"] != "directory", e["path"]))
        return entries

    def _last_commit(self, repo: _Repo, sha: str, path: str) -> dict[str, str]:
        """The most recent commit (first-parent) that changed ``path`` (file or folder)."""

        def snapshot(c: HubCommit) -> list[tuple[str, str]]:
            return sorted(
                (p, f.oid) for p, f in c.files.items() if p == path or p.startswith(path + "/")
            )

        history = list(self._history(repo, sha))
        found = history[-1]
        for newer, older in itertools.pairwise(history):
            if snapshot(newer) != snapshot(older):
                found = newer
                break
        return {"id": found.id, "title": found.title, "date": found.date}

    def _tree(
        self, req: _Request, repo_type: RepoType, repo_id: str, rev: str, base: str
    ) -> _Response:
        repo = self._visible_repo(req, repo_type, repo_id)
        sha = self._resolve(repo, rev)
        commit = repo.commits[sha]
        if base and not any(p.startswith(base + "/") for p in commit.files):
            raise HubError(
                404,
                f"Entry not found: {base}",
                code="EntryNotFound",
                headers={"X-Repo-Commit": sha},
            )
        entries = self._tree_entries(commit, base, recursive=req.flag("recursive"))
        expand = req.flag("expand")
        page_size = max(1, min(self.tree_page_size, 50) if expand else self.tree_page_size)
        start = _decode_cursor(req.param("cursor"))
        page = entries[start : start + page_size]
        if expand:
            for entry in page:
                entry["lastCommit"] = self._last_commit(repo, sha, entry["path"])
        headers = {}
        if start + page_size < len(entries):
            params = {k: v[-1] for k, v in req.query.items() if k != "cursor"}
            params["cursor"] = _encode_cursor(start + page_size)
            headers["Link"] = f'<{self.url}{quote(req.path)}?{urlencode(params)}>; rel="next"'
        return _Response.json(page, headers=headers)

    def _paths_info(self, req: _Request, repo_type: RepoType, repo_id: str, rev: str) -> _Response:
        repo = self._visible_repo(req, repo_type, repo_id)
        sha = self._resolve(repo, rev)
        commit = repo.commits[sha]
        ctype = req.headers.get("content-type", "")
        if "json" in ctype:
            payload = req.json()
            paths = payload.get("paths") or []
            expand = bool(payload.get("expand"))
        else:
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = (form.get("expand") or ["false"])[-1].lower() in ("1", "true")
        all_entries = {e["path"]: e for e in self._tree_entries(commit, "", recursive=True)}
        out = []
        for path in paths if isinstance(paths, list) else [paths]:
            entry = all_entries.get(str(path).strip("/"))
            if entry is not None:
                if expand:
                    entry["lastCommit"] = self._last_commit(repo, sha, entry["path"])
                out.append(entry)
        return _Response.json(out)

    def _refs(self, req: _Request, repo_type: RepoType, repo_id: str) -> _Response:
        repo = self._visible_repo(req, repo_type, repo_id)
        payload: dict[str, Any] = {
            "branches": [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                for b, s in sorted(repo.branches.items())
            ],
            "converts": [],
            "tags": [
                {"name": t, "ref": f"refs/tags/{t}", "targetCommit": s}
                for t, s in sorted(repo.tags.items())
            ],
        }
        if req.flag("include_prs"):
            payload["pullRequests"] = [
                {"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": s}
                for n, s in sorted(repo.prs.items())
            ]
        return _Response.json(payload)

    def _commits(self, req: _Request, repo_type: RepoType, repo_id: str, rev: str) -> _Response:
        repo = self._visible_repo(req, repo_type, repo_id)
        sha = self._resolve(repo, rev)
        items = [
            {
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "authors": [{"user": c.author, "avatar": ""}],
                "date": c.date,
                "parents": list(c.parents),
            }
            for c in self._history(repo, sha)
        ]
        page_num = int(req.param("p") or 0)
        size = max(1, self.commits_page_size)
        page = items[page_num * size : (page_num + 1) * size]
        headers = {}
        if (page_num + 1) * size < len(items):
            params = {k: v[-1] for k, v in req.query.items() if k != "p"}
            params["p"] = str(page_num + 1)
            headers["Link"] = f'<{self.url}{quote(req.path)}?{urlencode(params)}>; rel="next"'
        return _Response.json(page, headers={**headers, "X-Total-Count": str(len(items))})

    def _preupload(self, req: _Request, repo_type: RepoType, repo_id: str, rev: str) -> _Response:
        repo, _ = self._writable_repo(req, repo_type, repo_id)
        sha = self._resolve(repo, rev)
        commit = repo.commits[sha]
        payload = req.json()
        gitignore = payload.get("gitIgnore")
        if gitignore is None and ".gitignore" in commit.files:
            gitignore = commit.files[".gitignore"].data.decode(errors="replace")
        ignore_patterns = _gitignore_patterns(gitignore or "")
        out = []
        for item in payload.get("files") or []:
            path = str(item.get("path"))
            size = int(item.get("size") or 0)
            is_lfs = self.is_lfs(path, size)
            entry: dict[str, Any] = {
                "path": path,
                "uploadMode": "lfs" if is_lfs else "regular",
                "shouldIgnore": _match_patterns(path, ignore_patterns),
            }
            existing = commit.files.get(path)
            if existing is not None:
                entry["oid"] = existing.sha256 if existing.lfs else existing.oid
            out.append(entry)
        return _Response.json({"files": out, "commitOid": sha})

    def _lfs_batch(self, req: _Request, repo_type: RepoType, repo_id: str) -> _Response:
        repo, _ = self._writable_repo(req, repo_type, repo_id)
        payload = req.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the upload operation is supported by the loopback hub")
        transfers = payload.get("transfers") or ["basic"]
        if "basic" not in transfers:
            raise HubError(400, f"Unsupported transfers {transfers}: only 'basic' is available")
        objects = []
        for obj in payload.get("objects") or []:
            oid, size = str(obj.get("oid")), int(obj.get("size") or 0)
            out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            if oid not in repo.lfs_objects:
                upload_id = secrets.token_urlsafe(16)
                self._pending_uploads[upload_id] = ((repo_type, repo_id), oid, size)
                out["actions"] = {
                    "upload": {"href": f"{self.url}/_lfs/upload/{upload_id}", "expires_in": 86400},
                    "verify": {"href": f"{self.url}/_lfs/verify/{upload_id}", "expires_in": 86400},
                }
            objects.append(out)
        return _Response(
            status=200,
            body=json.dumps(
                {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
            ).encode(),
            content_type="application/vnd.git-lfs+json",
        )

    def _route_lfs_transfer(self, req: _Request, seg: list[str]) -> _Response:
        if len(seg) != 2 or seg[1] not in self._pending_uploads:
            raise HubError(404, "Unknown or expired LFS upload URL")
        key, oid, size = self._pending_uploads[seg[1]]
        repo = self._repos.get(key)
        if repo is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        if seg[0] == "upload" and req.method == "PUT":
            data = req.body
            if len(data) != size or hashlib.sha256(data).hexdigest() != oid:
                raise HubError(
                    400,
                    f"Uploaded content does not match the object (oid {oid}, size {size}):"
                    f" got {len(data)} bytes with sha256 {hashlib.sha256(data).hexdigest()}",
                )
            repo.lfs_objects[oid] = data
            return _Response(
                status=200, body=b"", content_type="text/plain", headers={"ETag": f'"{oid}"'}
            )
        if seg[0] == "verify" and req.method == "POST":
            payload = req.json()
            stored = repo.lfs_objects.get(str(payload.get("oid")))
            if stored is None or _object_size(stored) != int(payload.get("size") or -1):
                raise HubError(404, f"LFS object {payload.get('oid')} not found")
            return _Response.json({"success": True})
        raise HubError(405, "Method not allowed")

    def _commit_api(self, req: _Request, repo_type: RepoType, repo_id: str, rev: str) -> _Response:
        repo, user = self._writable_repo(req, repo_type, repo_id)
        header: dict[str, Any] = {}
        ops: list[tuple[str, dict[str, Any]]] = []
        for line in req.body.decode().splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise HubError(400, f"Invalid NDJSON line: {err}") from err
            key, value = item.get("key"), item.get("value") or {}
            if key == "header":
                header = value
            elif key in ("file", "lfsFile", "deletedFile", "deletedFolder"):
                ops.append((key, value))
            else:
                raise HubError(400, f"Unknown commit operation: {key!r}")
        summary = str(header.get("summary") or "").strip()
        if not summary:
            raise HubError(400, "The commit summary (header.summary) is required")
        create_pr = req.flag("create_pr")
        parent_commit = header.get("parentCommit")
        kind, target = self._write_target(repo, rev)
        if create_pr:
            if kind != "branch":
                raise HubError(400, "Pull requests can only be opened against a branch")
            base = self._resolve(repo, parent_commit) if parent_commit else repo.branches[target]
        else:
            base = repo.branches[target] if kind == "branch" else repo.prs[int(target)]
            if parent_commit and not base.startswith(str(parent_commit).lower()):
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
        tree = dict(repo.commits[base].files)
        for key, value in ops:
            path = str(value.get("path", "")).strip("/")
            if key == "deletedFile":
                self._delete_path(tree, path, folder=False)
            elif key == "deletedFolder":
                self._delete_path(tree, path, folder=True)
            elif key == "file":
                try:
                    data = base64.b64decode(value.get("content", ""), validate=True)
                except (binascii.Error, ValueError) as err:
                    raise HubError(400, f"Invalid base64 content for {path}") from err
                tree[path] = HubFile.make(path, data, lfs=False)
            else:  # lfsFile
                oid = str(value.get("oid"))
                stored = repo.lfs_objects.get(oid)
                if stored is None:
                    raise HubError(
                        422,
                        "Your push was rejected because an LFS pointer pointed to a file that "
                        f"does not exist: {path} (oid {oid})",
                    )
                stored_size = _object_size(stored)
                if "size" in value and int(value["size"]) != stored_size:
                    raise HubError(422, f"LFS object size mismatch for {path}")
                tree[path] = (
                    HubFile.make(path, stored, lfs=True)
                    if isinstance(stored, bytes)
                    else HubFile.from_blob(path, stored, sha256=oid, size=stored_size)
                )
        description = str(header.get("description") or "")
        sha = self._new_commit(
            repo, parent=base, files=tree, title=summary, message=description, author=user
        )
        prefix = f"{self.url}/{repo.web_path}"
        response: dict[str, Any] = {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{prefix}/commit/{sha}",
            "hookOutput": "",
        }
        if create_pr:
            num = repo.next_discussion
            repo.next_discussion += 1
            repo.prs[num] = sha
            response["pullRequestUrl"] = f"{prefix}/discussions/{num}"
        else:
            self._move_ref(repo, kind, target, sha)
        return _Response.json(response)

    def _branch_api(
        self, req: _Request, repo_type: RepoType, repo_id: str, branch: str
    ) -> _Response:
        repo, _ = self._writable_repo(req, repo_type, repo_id)
        if req.method == "DELETE":
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch")
            del repo.branches[branch]
            return _Response.json({})
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        payload = req.json()
        start = payload.get("startingPoint") or "main"
        repo.branches[branch] = self._resolve(repo, start)
        return _Response.json({})

    def _tag_api(self, req: _Request, repo_type: RepoType, repo_id: str, arg: str) -> _Response:
        repo, _ = self._writable_repo(req, repo_type, repo_id)
        if req.method == "DELETE":
            if arg not in repo.tags:
                raise HubError(404, f"Invalid rev id: {arg}", code="RevisionNotFound")
            del repo.tags[arg]
            return _Response.json({})
        payload = req.json()
        tag = str(payload.get("tag") or "")
        if not tag:
            raise HubError(400, "Missing tag name")
        if tag in repo.tags:
            raise HubError(409, f"Reference already exists: refs/tags/{tag}")
        repo.tags[tag] = self._resolve(repo, arg)
        return _Response.json({})

    def _resolve_file(
        self, req: _Request, repo_type: RepoType, repo_id: str, rev: str, path: str
    ) -> _Response:
        if req.method not in ("GET", "HEAD"):
            raise HubError(405, "Method not allowed")
        repo = self._visible_repo(req, repo_type, repo_id)
        sha = self._resolve(repo, rev)
        self._check_gate(req, repo)
        f = repo.commits[sha].files.get(path)
        if f is None:
            raise HubError(
                404,
                f"Entry not found: {path}",
                code="EntryNotFound",
                headers={"X-Repo-Commit": sha},
            )
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{f.oid}"' if f.lfs else f'"{f.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1])}",
        }
        if f.lfs:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        with self._lock:
            instead = self._served_instead.get((repo_id, path))
            if instead is not None and self._instead_after.get((repo_id, path), 0) > 0:
                if req.method == "GET" and not req.headers.get("range"):
                    self._instead_after[(repo_id, path)] -= 1
                instead = None
        if instead is not None:  # same listing, other bytes (serve_instead)
            f = replace(f, content=instead, blob=None, size=len(instead))
        status = 200
        start, stop = 0, f.size
        range_header = req.headers.get("range")
        if range_header and req.method == "GET":
            span = _parse_range(range_header, f.size)
            if span is None:
                raise HubError(
                    416,
                    "Requested range not satisfiable",
                    headers={"Content-Range": f"bytes */{f.size}", "X-Repo-Commit": sha},
                )
            start, end = span
            stop = end + 1
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        return _Response(
            status=status,
            file=(f, start, stop),
            headers=headers,
            content_type="application/octet-stream",
            repo_file=(repo_id, rev, path),
        )


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """Threading server that tracks its connections so :meth:`stop` can close idle keep-alives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        hub: LoopbackHubServer,
    ) -> None:
        self.hub = hub
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1.0"
    timeout = 60  # idle keep-alive connections are closed after this many seconds
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    # ---------------------------------------------------------------------------------- helpers

    def _content_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _is_chunked(self) -> bool:
        return "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()

    def _iter_body(self, record: RequestRecord) -> Iterator[bytes]:
        """The request body in pieces of at most CHUNK_SIZE; counts them in ``record.bytes_in``."""
        if self._is_chunked():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield from self._read_exactly(size, record)
                self.rfile.readline(65537)
        yield from self._read_exactly(self._content_length(), record)

    def _read_exactly(self, length: int, record: RequestRecord) -> Iterator[bytes]:
        left = length
        while left > 0:
            chunk = self.rfile.read(min(left, CHUNK_SIZE))
            if not chunk:
                return  # the client closed early: what arrived is the body
            left -= len(chunk)
            record.bytes_in += len(chunk)
            yield chunk

    def _read_some(self, limit: int) -> int:
        """Read up to ``limit`` raw body bytes without waiting for more than the client sent."""
        length = self._content_length()
        if length and not self._is_chunked():
            return len(self.rfile.read(min(limit, length)))
        got = 0
        self.connection.settimeout(0.5)
        with contextlib.suppress(OSError):
            while got < limit:
                chunk = self.rfile.read1(limit - got)
                if not chunk:
                    break
                got += len(chunk)
        return got

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        hub = self.server.hub
        method = self.command.upper()
        split = urlsplit(self.path)
        path = unquote(split.path)
        target = path + (f"?{unquote(split.query)}" if split.query else "")
        headers = {k.lower(): v for k, v in self.headers.items()}
        user, can_write, invalid = hub._authenticate(headers)
        record = RequestRecord(
            method=method,
            path=path,
            query=split.query,
            status=0,
            bytes_in=0,
            bytes_out=0,
            user=user,
        )
        fault = hub._match_fault(method, target)
        wrote = False
        try:
            if fault is not None and fault.drop and fault.during == "request":
                record.fault = "drop"
                if fault.after_bytes:
                    record.bytes_in = self._read_some(fault.after_bytes)
                self._drop()
                return
            stream = hub._streams_upload(method, path)
            chunks = self._iter_body(record)
            body = b"" if stream else b"".join(chunks)
            if (pause := hub._delay_for(method, target)) > 0:
                time.sleep(pause)  # the request is in flight: read, not yet answered
            if fault is not None and fault.status is not None:
                record.fault = "status"
                response = _Response.json(
                    {"error": fault.message},
                    status=fault.status,
                    headers={"X-Error-Message": fault.message, **fault.headers},
                )
            elif invalid and split.path.split("/")[1:2] != ["_lfs"]:
                response = _Response.json(
                    {"error": _INVALID_CREDENTIALS},
                    status=401,
                    headers={"X-Error-Message": _INVALID_CREDENTIALS},
                )
            elif stream:
                response = hub._receive_lfs(path, chunks)
            else:
                request = _Request(
                    method=method,
                    path=path,
                    segments=[unquote(s) for s in split.path.split("/") if s],
                    query=parse_qs(split.query, keep_blank_values=True),
                    headers=headers,
                    body=body,
                    user=user,
                    can_write=can_write,
                )
                response = hub._dispatch(request)
            for _ in chunks:
                pass  # the rest of a streamed body nobody consumed: keep the connection usable
            if fault is not None and fault.drop and fault.during == "response":
                record.fault = "drop"
                response.drop_after = fault.after_bytes or 0
            record.repo_file = response.repo_file
            record.status = response.status
            hub._begin_write()
            wrote = True
            record.bytes_out = self._write_response(response, headers)
        except (ConnectionError, OSError):
            self.close_connection = True
        finally:
            hub._record(record, wrote=wrote)

    def _write_response(self, response: _Response, request_headers: Mapping[str, str]) -> int:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(response.length))
        trace = request_headers.get("x-amzn-trace-id") or request_headers.get("x-request-id")
        if trace:
            self.send_header("X-Request-Id", trace)
        for key, value in response.headers.items():
            self.send_header(key, _header_value(value))
        if response.drop_after is not None:
            self.end_headers()
            sent = 0
            if self.command != "HEAD":
                sent = self._write_chunks(response.chunks(response.drop_after))
            self._drop()
            return sent
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return 0
        return self._write_chunks(response.chunks())

    def _write_chunks(self, chunks: Iterable[bytes | memoryview]) -> int:
        sent = 0
        for chunk in chunks:
            self.wfile.write(chunk)
            sent += len(chunk)
        return sent


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------


def _header_value(value: str) -> str:
    """Make a header value safe for ``http.server`` (latin-1, single line)."""
    flat = " ".join(str(value).splitlines())
    return flat.encode("latin-1", "replace").decode("latin-1")


def _error_response(err: HubError) -> _Response:
    headers = dict(err.headers)
    if err.code:
        headers["X-Error-Code"] = err.code
    headers.setdefault("X-Error-Message", err.message)
    return _Response.json(err.body, status=err.status, headers=headers)


def _object_size(stored: bytes | Path) -> int:
    """Size of an LFS object held in memory or in the blob store."""
    return len(stored) if isinstance(stored, bytes) else stored.stat().st_size


def _read_content(content: FileContent) -> bytes:
    if isinstance(content, Path):
        return content.read_bytes()
    if isinstance(content, str):
        return content.encode()
    return bytes(content)


def _take_revision(segments: list[str]) -> tuple[str, list[str]]:
    """Split a revision off decoded path segments (``refs/pr/1`` may arrive unencoded)."""
    if not segments:
        return "main", []
    if (
        segments[0] == "refs"
        and len(segments) >= 3
        and segments[1] in ("heads", "tags", "pr", "convert")
    ):
        return "/".join(segments[:3]), segments[3:]
    return segments[0], segments[1:]


def _match_patterns(path: str, patterns: Iterable[str]) -> bool:
    """``.gitattributes``/``.gitignore``-style matching: basename unless the pattern has a ``/``."""
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        pat = pattern.rstrip("/")
        if "/" in pat:
            if fnmatch.fnmatchcase(path, pat.lstrip("/")) or fnmatch.fnmatchcase(
                path, pat.lstrip("/").replace("**/", "")
            ):
                return True
        elif fnmatch.fnmatchcase(name, pat) or any(
            fnmatch.fnmatchcase(part, pat) for part in path.split("/")[:-1]
        ):
            return True
    return False


def _gitignore_patterns(content: str) -> list[str]:
    return [
        line.strip()
        for line in content.splitlines()
        if line.strip() and not line.strip().startswith(("#", "!"))
    ]


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse one ``bytes=`` range: inclusive ``(start, end)``, or None if unsatisfiable."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header, flags=re.IGNORECASE)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        length = int(m.group(2))
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["offset"])
    except (ValueError, KeyError, TypeError) as err:
        raise HubError(400, f"Invalid cursor: {cursor}") from err


def _front_matter(text: str) -> str | None:
    """The YAML block between the leading ``---`` lines of a model card, if any."""
    m = re.match(r"^\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, flags=re.DOTALL)
    if m is None:
        m = re.match(r"^\s*---[ \t]*\r?\n---[ \t]*(\r?\n|$)", text)
        return "" if m else None
    return m.group(1)


def _yaml_loader() -> Callable[[str], Any] | None:
    try:
        import yaml  # PyYAML is a dependency of transformers; optional here.
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return yaml.safe_load


def _check_card_yaml(content: str) -> str | None:
    """Return an error message if the model card's metadata block is invalid YAML."""
    block = _front_matter(content)
    load = _yaml_loader()
    if block is None or load is None:
        return None
    try:
        data = load(block)
    except Exception as err:
        return f"Invalid YAML in README.md metadata: {err}"
    if data is not None and not isinstance(data, dict):
        return "README.md metadata must be a YAML mapping"
    return None


def _card_data(readme: HubFile | None) -> dict[str, Any]:
    """Parse the model card metadata (needs PyYAML; empty without it)."""
    if readme is None:
        return {}
    block = _front_matter(readme.data.decode(errors="replace"))
    load = _yaml_loader()
    if not block or load is None:
        return {}
    try:
        data = load(block)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}
