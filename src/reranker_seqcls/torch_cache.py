"""torch's compile cache kept out of the user's temporary directory.

Importing ``torch._dynamo`` (sentence-transformers does, through transformers) creates
``$TMPDIR/torchinductor_$USER``; nothing here compiles, yet a run would leave that directory
behind. The CLI points ``TORCHINDUCTOR_CACHE_DIR`` at a directory of its own, removed when the
process exits (also after a stop signal, which the CLI turns into a normal exit). A cache
directory the user chose is left alone; subprocesses that compile (vLLM) get the user's setting
back (:func:`environment_for_subprocess`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
_own: str | None = None


def use_own_cache_dir() -> None:
    global _own
    if VARIABLE in os.environ or _own is not None:
        return
    _own = tempfile.mkdtemp(prefix="reranker-seqcls-torch-")
    os.environ[VARIABLE] = _own
    atexit.register(shutil.rmtree, _own, True)


def environment_for_subprocess() -> dict[str, str]:
    """``os.environ`` as the user set it: without the cache directory this process made."""
    env = dict(os.environ)
    if _own is not None and env.get(VARIABLE) == _own:
        del env[VARIABLE]
    return env
