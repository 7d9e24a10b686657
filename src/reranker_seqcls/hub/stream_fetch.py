"""Fetch a Hub source one shard at a time, at a pinned commit, into a directory the run owns.

The streamed run (:mod:`reranker_seqcls.run.streamed`) needs, in this order:

1. the listing of the commit with every file's size and, for LFS files, the sha256 the Hub
   recorded (:func:`list_source`);
2. the small files (config, tokenizer, index, template, license) downloaded whole
   (:func:`fetch_small_files`);
3. every shard's safetensors header, read with HTTP Range requests (as huggingface_hub's
   ``get_safetensors_metadata`` does), written as a *header placeholder*: the header bytes in a
   sparse file of the shard's full size (:func:`place_headers`). The conversion plans from these
   (it reads headers only), with no bulk bytes moved and no disk used beyond the headers;
4. each shard, when its turn comes, downloaded whole with ``hf_hub_download`` at the commit
   into the run's directory (never the whole-snapshot cache in ``HF_HOME``), checked against
   the Hub's sha256 and against the header the plan was made from, and renamed onto its
   placeholder (:func:`fetch_shard`).

Every failure is a one-line error: a Hub or network failure after retries, or a shard whose
bytes are not the ones the Hub lists, is a :class:`HubError` (exit 3); a name the source may not
use is a :class:`BadInput` (exit 2).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from reranker_seqcls.errors import BadInput, HubError
from reranker_seqcls.hub.errors import hub_errors
from reranker_seqcls.names import download_patterns
from reranker_seqcls.safetensors_io.header import MAX_HEADER, header_length
from reranker_seqcls.source import safe_name

Log = Callable[[str], None]
# As huggingface_hub's get_safetensors_metadata: one request holds most headers whole.
_FIRST_RANGE = 100_000
_HASH_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    sha256: str | None  # the LFS object id; None for a file stored in git
    blob_id: str | None = None  # the git blob id (of the content for a file stored in git)


@dataclass(frozen=True)
class SourceListing:
    repo_id: str
    commit_sha: str
    files: dict[str, RemoteFile]  # the files a conversion reads (download_patterns)

    @property
    def has_safetensors(self) -> bool:
        return any(name.endswith(".safetensors") for name in self.files)

    @property
    def small_files(self) -> list[str]:
        """Everything but weight files: downloaded first, whole."""
        return sorted(n for n in self.files if not n.endswith((".safetensors", ".bin")))


def list_source(repo_id: str, commit_sha: str, token: str | None) -> SourceListing:
    """The files of ``repo_id`` at ``commit_sha`` a conversion reads, with sizes and sha256."""
    from huggingface_hub.hf_api import ModelInfo

    from reranker_seqcls.hub.reads import _retried

    with hub_errors(f"source {repo_id}@{commit_sha[:12]}"):
        # HfApi.model_info(files_metadata=True), retried as the run's other reads are
        path = f"/api/models/{repo_id}/revision/{commit_sha}?blobs=true"
        info = ModelInfo(**_retried("GET", path, token).json())
    entries = list(info.siblings or [])
    has_safetensors = any(e.rfilename.endswith(".safetensors") for e in entries)
    patterns = [*download_patterns(include_pickle=not has_safetensors), "README.md"]
    files: dict[str, RemoteFile] = {}
    for entry in entries:
        if not any(fnmatch(entry.rfilename, p) for p in patterns):
            continue
        name = safe_name(entry.rfilename, what=f"the listing of {repo_id}")
        lfs = entry.lfs
        size = entry.size if entry.size is not None else (lfs.size if lfs else None)
        if size is None or size < 0:
            raise HubError(f"source {repo_id}: the Hub lists no size for {name}; try again later")
        sha256 = lfs.sha256 if lfs is not None else None
        files[name] = RemoteFile(name, int(size), sha256, getattr(entry, "blob_id", None))
    return SourceListing(repo_id, commit_sha, files)


def fetch_small_files(
    listing: SourceListing,
    directory: Path,
    token: str | None,
    log: Log,
    *,
    max_disk: int | None = None,
) -> None:
    """Download every small file of ``listing`` into ``directory``, each checked against the
    listing (size, and the LFS sha256 or git blob id) as shards are: a file whose bytes are not
    the commit's is refused (exit 3) and never read. The run holds them twice (the source's and
    the output's copies): over ``max_disk`` that is refused before the first byte is fetched."""
    from reranker_seqcls.sizes import human_size

    names = listing.small_files
    total = sum(listing.files[n].size for n in names)
    if max_disk is not None and 2 * total > max_disk:
        largest = max(names, key=lambda n: listing.files[n].size)
        raise BadInput(
            f"the small files of {listing.repo_id} ({len(names)}, {human_size(total)}; largest "
            f"{largest} {human_size(listing.files[largest].size)}) need {human_size(2 * total)} "
            f"of disk, more than --max-disk {human_size(max_disk)}: raise --max-disk; nothing "
            "was fetched"
        )
    log(f"fetching {len(names)} small file(s) of {listing.repo_id}@{listing.commit_sha[:12]}")
    for name in names:
        download_verified(listing, name, token, local_dir=directory)


def shard_names_to_stream(listing: SourceListing, source_dir: Path) -> list[str]:
    """The shards the checkpoint consists of: the index's names, else the top-level
    ``*.safetensors`` (as :func:`reranker_seqcls.checkpoint.shard_names` reads them); names
    that are not in the listing are left for the plan to report as missing."""
    from reranker_seqcls.names import INDEX_FILE as INDEX_NAME
    from reranker_seqcls.source import Source, read_json_object

    index = read_json_object(Source(source_dir), INDEX_NAME)
    if index is not None and isinstance(index.get("weight_map"), dict):
        named = {v for v in index["weight_map"].values() if isinstance(v, str)}
        names = {safe_name(v, what=INDEX_NAME) for v in named}
    else:
        names = {n for n in listing.files if n.endswith(".safetensors") and "/" not in n}
    return sorted(n for n in names if n in listing.files)


def place_headers(
    listing: SourceListing, names: list[str], directory: Path, token: str | None, log: Log
) -> dict[str, bytes]:
    """Write a header placeholder for each shard in ``names`` (see the module docstring);
    returns each shard's header bytes (length prefix included), which the shard must match."""
    headers = {}
    for name in names:
        remote = listing.files[name]
        prefix = read_header(listing, name, token)
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as fh:
            fh.write(prefix)
            fh.truncate(remote.size)  # sparse: only the header occupies disk
        headers[name] = prefix
    total = sum(len(h) for h in headers.values())
    log(f"read the headers of {len(names)} shard(s) ({total / 1e6:.2f} MB) by range requests")
    return headers


def read_header(listing: SourceListing, name: str, token: str | None) -> bytes:
    """The first ``8 + header length`` bytes of a shard, by HTTP Range requests."""
    remote = listing.files[name]
    if remote.size < 8:
        raise BadInput(f"{name!r} is shorter than 8 bytes: it is no safetensors file")
    first = _range(listing, name, 0, min(_FIRST_RANGE, remote.size) - 1, token)
    if len(first) < 8:
        raise BadInput(f"{name!r} is shorter than 8 bytes: it is no safetensors file")
    length = header_length(first)
    if length > MAX_HEADER or 8 + length > remote.size:
        raise BadInput(
            f"{name!r} declares a {length}-byte header in a {remote.size}-byte file: it is no "
            "readable safetensors file, re-upload the checkpoint"
        )
    if 8 + length <= len(first):
        return first[: 8 + length]
    return first + _range(listing, name, len(first), 8 + length - 1, token)


def _range(listing: SourceListing, name: str, start: int, end: int, token: str | None) -> bytes:
    """Bytes ``start..end`` (inclusive) of a file at the listing's commit, by a Range request
    (:func:`.reads.read_file_bytes`: at most that many bytes are read, even from a server that
    ignores the Range header)."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    from reranker_seqcls.hub.reads import read_file_bytes

    url = hf_hub_url(listing.repo_id, name, revision=listing.commit_sha)
    headers = {**build_hf_headers(token=token), "range": f"bytes={start}-{end}"}
    with hub_errors(f"source {listing.repo_id}@{listing.commit_sha[:12]}: {name}"):
        return read_file_bytes(url, headers, limit=end - start + 1, start=start)


def fetch_shard(
    listing: SourceListing,
    name: str,
    source_dir: Path,
    incoming: Path,
    header: bytes,
    token: str | None,
) -> Path:
    """Download one shard into ``incoming``, check it, and rename it onto its placeholder in
    ``source_dir``; the shard's path. A shard whose sha256 is not the Hub's, or whose header is
    not the one the plan was made from, is removed and refused (exit 3): nothing built on it
    is pushed."""
    path = download_verified(listing, name, token, local_dir=incoming, header=header)
    target = source_dir / name
    try:
        os.replace(path, target)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return target


def verify_download(listing: SourceListing, remote: RemoteFile, path: Path, header: bytes) -> None:
    """``path`` holds ``remote``'s bytes: its listed size and LFS sha256 (or git blob id), and
    ``header`` at its start; else a :class:`HubError` (exit 3)."""
    where = f"source {listing.repo_id}@{listing.commit_sha[:12]}: {remote.name}"
    size = path.stat().st_size
    if size != remote.size:
        raise HubError(
            f"{where} arrived with {size} bytes, but the Hub lists {remote.size}: the transfer "
            "was corrupted, nothing was pushed; try again"
        )
    # An LFS file is checked by its sha256, a file stored in git by its blob id.
    in_git = remote.sha256 is None
    digest = hashlib.sha1(b"blob %d\0" % size) if in_git else hashlib.sha256()
    with path.open("rb") as fh:
        start = fh.read(len(header))
        digest.update(start)
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    expected = remote.blob_id if in_git else remote.sha256
    if expected and digest.hexdigest() != expected:
        kind = "git blob id" if in_git else "sha256"
        raise HubError(
            f"{where} has {kind} {digest.hexdigest()[:12]}…, but the Hub lists "
            f"{expected[:12]}…: the bytes are not the commit's, nothing was pushed; "
            "try again, and report it to the repo's owner if it persists"
        )
    if start != header:
        raise HubError(
            f"{where} has another header than its range request answered: the Hub served two "
            "versions of one file, nothing was pushed; try again"
        )


def download_verified(
    listing: SourceListing,
    name: str,
    token: str | None,
    *,
    local_dir: Path | None = None,
    header: bytes = b"",
) -> Path:
    """The one fetch of a whole source file, for both roads: ``hf_hub_download`` at the
    listing's commit (the client's retries and resume), then :func:`verify_download`. A file
    that fails the check (or whose check is interrupted) is removed, link and blob, before the
    error goes on: never read, fetched anew by a retry. ``local_dir``: the streamed road's own
    directory (never ``HF_HOME``); None: the whole-snapshot road's ``HF_HOME`` cache, which
    transformers and a rerun reuse. Partial reads (a shard's header, a target's record) are
    bounded reads into memory instead (:func:`.reads.read_file_bytes`)."""
    from huggingface_hub import hf_hub_download

    if local_dir is not None:
        local_dir.mkdir(parents=True, exist_ok=True)
    with hub_errors(f"source {listing.repo_id}@{listing.commit_sha[:12]}: {name}"):
        at = listing.commit_sha
        path = Path(
            hf_hub_download(listing.repo_id, name, revision=at, local_dir=local_dir, token=token)
        )
    if local_dir is not None:
        shutil.rmtree(local_dir / ".cache", ignore_errors=True)
    try:
        verify_download(listing, listing.files[name], path, header)
    except BaseException:
        blob = path.resolve()  # a cached file is a link to its blob
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise
    return path
