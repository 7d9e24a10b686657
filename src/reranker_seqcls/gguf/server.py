"""The real ``llama-server --reranking`` on a loopback port, scoring pairs through ``/v1/rerank``.

The binary is ``$RERANKER_SEQCLS_LLAMA_SERVER``, else ``llama-server`` on ``PATH`` (the Docker
image has it there; ``make llama-server`` builds it into ``.cache/llama-build/bin``).

What llama-server needs that is not obvious:

* the whole prompt must fit one micro-batch (``-b``/``-ub``): pooled embeddings are not computed
  across micro-batches; the context, batch and micro-batch are sized from the longest prompt;
* one slot (``-np 1``) keeps the whole context for one prompt;
* ``/v1/rerank`` returns ``relevance_score`` per document ``index`` (``top_n`` defaults to all).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reranker_seqcls.errors import BadInput
from reranker_seqcls.local_server import free_port, stop

LLAMA_SERVER_ENV = "RERANKER_SEQCLS_LLAMA_SERVER"
START_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 600


class LlamaServerError(Exception):
    """llama-server could not start or score: its first useful log line."""


def locate_llama_server(explicit: str | Path | None = None) -> Path | None:
    """``explicit``, else ``$RERANKER_SEQCLS_LLAMA_SERVER``, else ``llama-server`` on PATH;
    exit 2 for a given path that is no executable, None when none is found."""
    given = explicit or os.environ.get(LLAMA_SERVER_ENV) or None
    if given:
        path = Path(given)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BadInput(
                f"{LLAMA_SERVER_ENV} {given} is not an executable file: give llama-server's path "
                "(`make llama-server` builds .cache/llama-build/bin/llama-server)"
            )
        return path
    found = shutil.which("llama-server")
    return Path(found) if found else None


def require_llama_server() -> Path:
    """The llama-server --gguf checks its files with; exit 2 (before anything is written)
    when there is none."""
    path = locate_llama_server()
    if path is None:
        raise BadInput(
            f"--gguf checks each GGUF with llama-server, and none was found: put llama-server on "
            f"PATH or set {LLAMA_SERVER_ENV} (`make llama-server` builds one)"
        )
    return path


@dataclass(frozen=True)
class RerankRequest:
    query: str
    documents: list[str]


def _first_error(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        lowered = line.lower()
        if "error" in lowered or "failed" in lowered or "exception" in lowered:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


class LlamaServer:
    """A running llama-server; use :func:`llama_server`."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.url, self.process, self.log_path = url, process, log_path

    def log_text(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def rerank(self, query: str, documents: list[str]) -> list[float]:
        """One score per document, in the documents' order."""
        body = json.dumps({"query": query, "documents": documents, "top_n": len(documents)}).encode(
            "utf-8"
        )
        request = urllib.request.Request(
            f"{self.url}/v1/rerank", body, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")[:300]
            raise LlamaServerError(f"/v1/rerank answered HTTP {exc.code}: {detail}") from exc
        except (OSError, ValueError) as exc:
            raise LlamaServerError(
                f"/v1/rerank failed ({exc}); llama-server: {_first_error(self.log_text())}"
            ) from exc
        scores = [float("nan")] * len(documents)
        for item in answer.get("results", []):
            scores[int(item["index"])] = float(item["relevance_score"])
        return scores


@contextmanager
def llama_server(
    binary: Path, gguf: Path, *, max_prompt_tokens: int, threads: int | None = None
) -> Iterator[LlamaServer]:
    """Start ``binary --reranking`` on ``gguf`` on a loopback port; stopped on exit."""
    port = free_port()
    batch = 256 * (1 + (max_prompt_tokens + 32) // 256)
    threads = threads or max(1, min(4, os.cpu_count() or 1))
    args = [
        str(binary), "-m", str(gguf), "--reranking", "--host", "127.0.0.1", "--port", str(port),
        "-c", str(batch), "-b", str(batch), "-ub", str(batch), "-np", "1",
        "-t", str(threads), "--no-warmup",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-llama-") as tmp:
        log_path = Path(tmp) / "llama-server.log"
        with log_path.open("wb") as log:
            try:
                process = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            except OSError as exc:
                raise LlamaServerError(f"{binary} could not be started ({exc})") from exc
            server = LlamaServer(f"http://127.0.0.1:{port}", process, log_path)
            try:
                _wait_ready(server)
                yield server
            finally:
                stop(process, timeout=20)


def _wait_ready(server: LlamaServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise LlamaServerError(
                f"llama-server exited with code {code}: {_first_error(server.log_text())}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise LlamaServerError(f"llama-server did not become ready within {START_TIMEOUT_S} s")
