"""vLLM served, the fourth consumer of the over-length pairs: ``vllm serve`` on the converted
directory as the card starts it, then ``POST /score`` and ``POST /rerank``.

Served vLLM is not offline vLLM with a socket in front: the server validates a request before
the engine sees it (an over-length prompt is an HTTP 400, not an exception), reads the template
from ``--chat-template`` instead of a ``score()`` argument, and ``/rerank`` is a request shape of
its own. So the check starts one server (one start per check, about a minute on a small CPU;
started before the offline run, so the two start-ups overlap), sends each long pair raw and cut
on the client side, and judges ``/score`` against the
original's truncated score; ``/rerank`` of the same text is reported beside it (its score, or
its refusal).

The server is the launcher's ``serve`` mode (:mod:`.vllm_launch`), on 127.0.0.1 and a free
port, ``--enforce-eager`` (no torch.compile: the same math, start-up in seconds), without
``--max-model-len``: its length is what the checkpoint's files give, as for the card's command.
A server that cannot start is a result for every row (its first error line), never a crash.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_seqcls.check.long_consumers import REFUSES, ConsumerResult, judge_rows
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.local_server import free_port, stop

SCORE = "vLLM served /score"
SCORE_CUT = "vLLM served /score, cut on the client side"
START_TIMEOUT_S = 900  # a cold start on two busy cores is minutes, not tens of minutes
REQUEST_TIMEOUT_S = 300
# 127.0.0.1 directly, whatever proxy the environment names
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Server:
    """A ``vllm serve`` process being started (:func:`served`)."""

    process: subprocess.Popen[bytes] | None
    url: str
    log: Path
    failed: str = ""  # why it could not be started at all

    def ready(self) -> tuple[str | None, str]:
        """Wait until it answers ``/health``: (its URL, ""), or (None, why not)."""
        from reranker_seqcls.check.vllm import first_error_line

        if self.process is None:
            return None, self.failed
        started = time.monotonic()
        while (code := self.process.poll()) is None:
            try:
                with _LOCAL.open(f"{self.url}/health", timeout=5):
                    return self.url, ""
            except OSError:
                if time.monotonic() - started > START_TIMEOUT_S:
                    return None, f"vllm serve did not answer within {START_TIMEOUT_S} s"
                time.sleep(1)
        why = first_error_line(self.log.read_text("utf-8", errors="replace")) or "no error message"
        return None, f"vllm serve exited with code {code}: {why}"


@contextmanager
def served(python: str, converted: Path, dtype: str) -> Iterator[Server]:
    """``vllm serve CONVERTED``, started at once (its start-up overlaps whatever the block does
    before :meth:`Server.ready`) and stopped when the block ends."""
    from reranker_seqcls.check.vllm import KV_CACHE_BYTES, LAUNCHER
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.torch_cache import environment_for_subprocess

    env = environment_for_subprocess()
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    port = free_port()
    argv = [python, str(LAUNCHER), "serve", str(converted.resolve()), "--runner", "pooling",
            "--dtype", dtype, "--host", "127.0.0.1", "--port", str(port),
            "--enforce-eager"]  # fmt: skip
    if (template := converted / TEMPLATE_FILE_NAME).is_file():
        argv += ["--chat-template", str(template.resolve())]
    if not env.get("VLLM_CPU_KVCACHE_SPACE"):
        argv += ["--kv-cache-memory-bytes", str(KV_CACHE_BYTES)]
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-serve-") as tmp:
        server = Server(None, f"http://127.0.0.1:{port}", Path(tmp) / "serve.log")
        with server.log.open("wb") as log:
            try:
                server.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
                )
            except OSError as exc:
                server.failed = f"{python} could not be started ({exc.strerror or exc})"
        try:
            yield server
        finally:
            if server.process is not None:
                stop(server.process, timeout=30)


def _ask(url: str, body: dict[str, Any]) -> tuple[float | None, str | None]:
    """POST ``body`` to ``/score`` or ``/rerank``: (its one score, None) or (None, the refusal:
    HTTP status and the first line of vLLM's message)."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with _LOCAL.open(request, timeout=REQUEST_TIMEOUT_S) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", errors="replace")
        try:
            message = str(json.loads(text)["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = text
        lines = message.strip().splitlines() or [""]
        return None, f"HTTP {exc.code}: {lines[0][:300]}"
    except OSError as exc:
        return None, f"no answer ({exc})"
    if "data" in answer:  # /score
        return float(answer["data"][0]["score"]), None
    return float(answer["results"][0]["relevance_score"]), None  # /rerank


def served_rows(
    server: Server,
    converted: Path,
    pairs: list[Pair],
    cut: list[tuple[str, str]],
    reference: list[float],
    tolerance: float,
    log: Callable[[str], None],
) -> list[ConsumerResult]:
    """The served rows (``server`` started by :func:`served`): each pair raw and as ``cut`` on
    the client side, ``/score`` judged against ``reference`` (probabilities), ``/rerank`` of
    the same text in the detail."""
    model = str(converted.resolve())
    names = (SCORE, SCORE_CUT)
    log("parity: scoring the over-length pairs through vllm serve (/score and /rerank)")
    url, why = server.ready()
    if url is None:
        return [ConsumerResult(n, p.group, REFUSES, why) for n in names for p in pairs]
    asked = []  # per (raw or cut, pair): /score's answer, /rerank's answer
    for texts in ([(p.query, p.document) for p in pairs], cut):
        for pair, (query, document) in zip(pairs, texts, strict=True):
            extra = {"instruction": pair.instruction} if pair.instruction is not None else {}
            body = {"model": model, "documents": [document], **extra}
            asked.append((
                _ask(f"{url}/score", {**body, "queries": query}),
                _ask(f"{url}/rerank", {**body, "query": query}),
            ))  # fmt: skip
    rows: list[ConsumerResult] = []
    for k, name in enumerate(names):
        part = asked[k * len(pairs) : (k + 1) * len(pairs)]
        scores = [score for (score, _), _ in part]
        errors = [error for (_, error), _ in part]
        judged = judge_rows(name, pairs, scores, errors, reference, tolerance, "probability")
        for row, error, (_, (ranked, refused)) in zip(judged, errors, part, strict=True):
            if refused is not None:
                words = "the same refusal" if refused == error else refused
            else:
                words = _rerank_words(ranked, row.score)
            row.detail += f"; /rerank: {words}"
        rows += judged
    return rows


def _rerank_words(ranked: float | None, scored: float | None) -> str:
    if ranked is None:
        return "no score"
    if scored is None:
        return f"scores {ranked:.6g} where /score refuses"
    diff = abs(ranked - scored)
    return "the same score" if diff <= 1e-6 else f"|Δ| {diff:.2e} from /score"
