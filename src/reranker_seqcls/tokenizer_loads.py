"""One load per distinct tokenizer per process, for transformers and for ``tokenizers`` alike.

The real Qwen ``tokenizer.json`` is 18.7 MB. transformers 5 parses it (three times, with Python's
``json``) in about 1.4-1.8 s a load, ``tokenizers.Tokenizer.from_file`` in about 0.5 s, and one
quick check used to make eleven such loads of the same vocabulary: the source, the twin's
byte-identical copy of it, the twin's conversion, the conversion plans' token lookups and the
scoring length (``bench/TOKENIZER_RESULTS.md``). Each load here is keyed by the bytes it reads,
so a copy shares its original's load and a file that changed is read again:

* :func:`auto_tokenizer` (``AutoTokenizer.from_pretrained``): the directory's tokenizer files
  (``names.TOKENIZER_PATTERNS``) and the config's ``model_type`` and ``tokenizer_class`` (what
  ``AutoTokenizer`` picks its class by);
* :func:`fast_tokenizer` (``Tokenizer.from_file``): the one ``tokenizer.json`` it reads. The
  converted directory's ``tokenizer.json`` is the source's, byte for byte, so a run parses the
  vocabulary once for the plan, the scoring length, the twin and the llama.cpp rows.

The loaded objects are shared by every caller: callers only encode and look up with them (no
``enable_truncation``, no padding, no attribute set), on one thread at a time. The last
:data:`KEEP` distinct ones of each kind are kept (a check needs two transformers tokenizers: the
source's, which the twin's copy shares, and the conversion's), so a process that checks many
models holds no more.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEEP = 2


class _Kept:
    """The last :data:`KEEP` loads by key, least recently used dropped first."""

    def __init__(self) -> None:
        self.loaded: dict[str, Any] = {}  # in order of last use

    def get(self, key: str, load: Callable[[], Any]) -> Any:
        value = self.loaded.pop(key, None)
        if value is None:
            value = load()  # an error propagates; nothing is kept
        self.loaded[key] = value
        while len(self.loaded) > KEEP:
            del self.loaded[next(iter(self.loaded))]
        return value


AUTO = _Kept()
FAST = _Kept()


def tokenizer_key(directory: Path) -> str:
    """The sha256 over the tokenizer files' names and sha256s and the config's class keys.
    The files are listed and resolved as every source file is (:class:`source.Source`: a
    symlink out of the directory is refused)."""
    from reranker_seqcls.names import CONFIG_FILE, TOKENIZER_PATTERNS
    from reranker_seqcls.source import Source, file_sha256

    files = Source(directory)
    digest = hashlib.sha256()
    for name in files.listing(TOKENIZER_PATTERNS):
        path = files.file(name)
        assert path is not None  # listed
        digest.update(f"{len(name)}:{name}:{file_sha256(path)}\n".encode())
    config = directory / CONFIG_FILE
    try:
        loaded = json.loads(config.read_text("utf-8")) if config.is_file() else {}
    except (OSError, ValueError):
        loaded = None  # transformers reports it on the load below
    if isinstance(loaded, dict):
        keys = {k: loaded.get(k) for k in ("model_type", "tokenizer_class")}
        digest.update(json.dumps(keys, sort_keys=True, default=str).encode())
    else:
        digest.update(repr(loaded).encode())
    return digest.hexdigest()


def auto_tokenizer(directory: str | Path) -> Any:
    """``AutoTokenizer.from_pretrained(directory)``, loaded once per distinct tokenizer."""
    from transformers import AutoTokenizer

    def load() -> Any:
        return AutoTokenizer.from_pretrained(str(directory))

    return AUTO.get(tokenizer_key(Path(directory)), load)


def fast_tokenizer(path: Path) -> Any:
    """``tokenizers.Tokenizer.from_file(path)``, loaded once per distinct file content; a file
    that does not parse raises what ``from_file`` raises, and is not kept. Nothing here bounds
    or resolves ``path``: a source's ``tokenizer.json`` comes through :class:`source.Source`
    and ``MAX_TOKENIZER_BYTES`` (``convert/tokens.py``); the scoring length and the llama.cpp
    rows read the converted directory's, as they did before this cache."""
    from tokenizers import Tokenizer

    from reranker_seqcls.source import file_sha256

    def load() -> Any:
        return Tokenizer.from_file(str(path))

    return FAST.get(file_sha256(path), load)
