"""One transformers tokenizer load per distinct tokenizer per process.

transformers 5 parses the real Qwen ``tokenizer.json`` (18.7 MB) in about 1.4 s, and a quick
check used to load the same tokenizer seven times (the source twice, the twin's copy of it three
times, the twin's conversion twice): 14 of the 26 s of a local check of the 0.6B shape on the
real vocabulary (``bench/TOKENIZER_RESULTS.md``). :func:`auto_tokenizer` keys each load by the
bytes of the directory's tokenizer files (``names.TOKENIZER_PATTERNS``) and the config's
``model_type`` and ``tokenizer_class`` (what ``AutoTokenizer`` picks its class by), so the
twin's byte-identical copy shares its original's load and a file that changed is read again.

The loaded object is shared by every caller: the check only encodes with it (templates,
``tokenizer(text)``), never sets an attribute on it, and tokenizes on one thread at a time. The
last :data:`KEEP` distinct ones are kept (a check needs two: the source's, which the twin's copy
shares, and the conversion's), so a process that checks many models holds no more.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

KEEP = 2
_LOADED: dict[str, Any] = {}  # in order of last use


def tokenizer_key(directory: Path) -> str:
    """The sha256 over the tokenizer files' names and sha256s and the config's class keys.
    The files are listed and resolved as every source file is (:class:`source.Source`: a
    symlink out of the directory is refused)."""
    from reranker_seqcls.check.record import file_sha256
    from reranker_seqcls.names import CONFIG_FILE, TOKENIZER_PATTERNS
    from reranker_seqcls.source import Source

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

    key = tokenizer_key(Path(directory))
    tokenizer = _LOADED.pop(key, None)
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    _LOADED[key] = tokenizer
    while len(_LOADED) > KEEP:
        del _LOADED[next(iter(_LOADED))]
    return tokenizer
