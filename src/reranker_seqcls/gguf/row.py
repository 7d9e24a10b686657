"""The ``llama.cpp`` rows of the parity check: each GGUF served by the real ``llama-server
--reranking``, the check's pairs POSTed to ``/v1/rerank``, judged against the original with the
tolerance of its type (:mod:`.types`).

llama-server returns a probability (element 0 of the softmax over ``cls_out``), compared with
``sigmoid`` of the original's score logit. Pairs with an instruction other than the family's
default are not sent: the GGUF's ``rerank`` template has the default instruction written in, and
``/v1/rerank`` takes none. A scoring template that strips the query and the document (zerank-2's)
has them sent stripped: llama-server substitutes them literally.

A failed row names its cause where it can be told:

* the file itself (:func:`inspect_gguf`): a ``cls_out`` of one row on ``qwen3`` (llama.cpp's
  softmax makes every score 1.0), a head that is not ``[score.weight, 0]`` (negated: the tokens
  are swapped; rows swapped), no ``rerank`` template (llama-server then scores a BERT-style
  ``query [EOS] [SEP] document``), no rank pooling;
* the scores: one constant for every pair, or ``1 - p`` (the opposite label).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.metrics import PathMetrics, ScoringPath, path_metrics, sigmoid
from reranker_seqcls.gguf.metadata import DOCUMENT, QUERY, template_strips
from reranker_seqcls.gguf.reader import GgufHeader, read_header
from reranker_seqcls.gguf.server import LlamaServerError, llama_server
from reranker_seqcls.gguf.types import GGUF_TYPES, GgufType
from reranker_seqcls.gguf.writer import CLS_OUT

if TYPE_CHECKING:
    from reranker_seqcls.check.pairs import Pair
    from reranker_seqcls.check.report import ParityReport

PATHS = {
    "f32": ScoringPath.LLAMA_F32,
    "f16": ScoringPath.LLAMA_F16,
    "q8_0": ScoringPath.LLAMA_Q8_0,
}
_FILE_TYPES = {0: "f32", 1: "f16", 7: "q8_0"}  # general.file_type (llama.cpp's LlamaFileType)


@dataclass
class LlamaRow:
    gguf_type: str
    path: Path
    passed: bool
    metrics: PathMetrics | None
    scored_pairs: int
    seconds: float  # llama-server's start and scoring
    reason: str | None = None


def gguf_type_of(path: Path, header: GgufHeader | None = None) -> GgufType:
    """The type a GGUF was written as (``general.file_type``); exit 2 for another."""
    from reranker_seqcls.errors import BadInput

    file_type = (header or read_header(path)).fields.get("general.file_type")
    name = _FILE_TYPES.get(file_type) if isinstance(file_type, int) else None
    if name is None:
        raise BadInput(
            f"{path.name}: GGUF file type {file_type!r} is not one --gguf writes "
            f"({', '.join(GGUF_TYPES)}): give a GGUF written by reranker-seqcls"
        )
    return GGUF_TYPES[name]


def inspect_gguf(header: GgufHeader, converted: Path) -> list[str]:
    """What in the file makes llama-server score unlike the converted checkpoint (empty: the
    head, pooling and template are as :mod:`.writer` writes them)."""
    import gguf
    import numpy as np

    from reranker_seqcls.gguf.writer import _score_tensor

    fields = header.fields
    arch = fields.get("general.architecture")
    problems = []
    if fields.get(f"{arch}.pooling_type") != int(gguf.PoolingType.RANK):
        problems.append(f"{arch}.pooling_type is not rank: llama-server --reranking refuses it")
    template = fields.get("tokenizer.chat_template.rerank")
    if not isinstance(template, str):
        problems.append(
            "the GGUF has no rerank chat template: llama-server then scores "
            "'query [EOS] [SEP] document', not the family's prompt"
        )
    elif QUERY not in template or DOCUMENT not in template:
        problems.append("the GGUF's rerank template lacks {query} or {document}")
    if CLS_OUT not in header.tensors:
        problems.append("the GGUF has no cls_out: llama.cpp's rank pooling has no head to apply")
        return problems
    rows = header.tensor(CLS_OUT)
    if arch in ("qwen3", "qwen3vl") and rows.shape[0] == 1:
        problems.append(
            "cls_out has one row on a qwen3 GGUF: llama.cpp applies a softmax over cls_out's "
            "outputs for qwen3, so every pair scores 1.0; write the two rows [score, 0] "
            "(softmax gives sigmoid(score))"
        )
        return problems
    head = _score_tensor(converted)[0]
    scale = max(float(np.abs(head).max()), 1e-12)

    def near(a: Any, b: Any) -> bool:
        return float(np.abs(np.asarray(a) - np.asarray(b)).max()) <= 1e-3 * scale

    zero = np.zeros_like(head)
    if near(rows[0], head) and all(near(r, zero) for r in rows[1:]):
        return problems
    if near(rows[0], -head) or (len(rows) == 2 and near(rows[0] - rows[1], -head)):
        problems.append(
            "cls_out scores the opposite label (row 0 minus row 1 is -score.weight): the "
            "classifier tokens are swapped, so llama-server returns 1 - p"
        )
    elif len(rows) == 2 and near(rows[0] - rows[1], head):
        pass  # [a + w, a]: the same softmax, a different but equivalent head
    else:
        problems.append(
            "cls_out is not the converted checkpoint's head ([score.weight, 0]): the GGUF was "
            "not written from this checkpoint, or with other classifier tokens"
        )
    return problems


def score_gguf(
    binary: Path, path: Path, pairs: list[Pair], template: str, max_prompt_tokens: int
) -> tuple[list[float], float]:
    """llama-server's score of each pair (grouped by query, one request each), and the seconds
    its start and scoring took."""
    start = time.monotonic()
    scores = [math.nan] * len(pairs)
    groups: dict[str, list[int]] = {}
    for i, pair in enumerate(pairs):
        groups.setdefault(pair.query, []).append(i)
    with llama_server(binary, path, max_prompt_tokens=max_prompt_tokens) as server:
        for query, indices in groups.items():
            got = server.rerank(query, [pairs[i].document for i in indices])
            for i, score in zip(indices, got, strict=True):
                scores[i] = score
    return scores, time.monotonic() - start


def add_llama_rows(
    report: ParityReport,
    ggufs: list[Path],
    converted: Path,
    pairs: list[Pair],
    default_instruction: str | None,
    binary: Path,
    log: Callable[[str], None],
) -> list[LlamaRow]:
    """Add one ``llama.cpp TYPE`` row per GGUF to ``report`` and judge it; a failed row fails
    the report with its cause."""
    from reranker_seqcls.names import TOKENIZER_FILE
    from reranker_seqcls.tokenizer_loads import fast_tokenizer

    scored = _scored_pairs(report, pairs)
    if len(scored) < len(pairs):
        report.notes.append(
            f"llama.cpp: the {len(scored)} pairs the real model scored (quick check) of "
            f"{len(pairs)}: the rows compare llama-server with the real model's scores"
        )
    pairs = scored
    kept = [
        i
        for i, p in enumerate(pairs)
        if p.instruction is None or p.instruction == default_instruction
    ]
    if len(kept) < len(pairs):
        report.notes.append(
            f"llama.cpp: {len(pairs) - len(kept)} pairs with their own instruction not sent: "
            "the GGUF's rerank template has the default instruction written in"
        )
    tokenizer = fast_tokenizer(converted / TOKENIZER_FILE)
    if template_strips(converted):  # what the checkpoint's template scores, sent literally
        pairs = [replace(p, query=p.query.strip(), document=p.document.strip()) for p in pairs]
    rows = []
    for path in ggufs:
        header = read_header(path)  # once per file: the vocabulary is skipped, not parsed
        gguf_type = gguf_type_of(path, header)
        template = header.fields.get("tokenizer.chat_template.rerank")
        template = template if isinstance(template, str) else ""
        lengths = [
            len(tokenizer.encode(_prompt(template, pairs[i]), add_special_tokens=False).ids)
            for i in kept
        ]
        row = _judge_one(report, gguf_type, header, converted, pairs, kept, binary, template,
                         max(lengths, default=16), log)  # fmt: skip
        rows.append(row)
    return rows


def _scored_pairs(report: ParityReport, pairs: list[Pair]) -> list[Pair]:
    """The pairs of ``report.scores``, in its order: every pair, or after a quick check
    (:mod:`reranker_seqcls.check.scope`) the few the real model scored (the report keeps the
    first 80 characters of each text)."""
    if len(report.scores) == len(pairs):
        return pairs
    by_text = {(p.query[:80], p.document[:80], p.instruction): p for p in pairs}
    found = [by_text.get((s.query, s.document, s.instruction)) for s in report.scores]
    if any(p is None for p in found):
        raise AssertionError("the report's score rows do not match the check's pairs")
    return [p for p in found if p is not None]


def _prompt(template: str, pair: Pair) -> str:
    return template.replace(QUERY, pair.query).replace(DOCUMENT, pair.document)


def _judge_one(
    report: ParityReport,
    gguf_type: GgufType,
    header: GgufHeader,
    converted: Path,
    pairs: list[Pair],
    kept: list[int],
    binary: Path,
    template: str,
    max_tokens: int,
    log: Callable[[str], None],
) -> LlamaRow:
    label = f"llama.cpp {gguf_type.name}"
    path = header.path
    log(f"parity: scoring {len(kept)} pairs through llama-server /v1/rerank ({path.name})")
    problems = inspect_gguf(header, converted)
    try:
        scores, seconds = score_gguf(binary, path, [pairs[i] for i in kept], template, max_tokens)
    except LlamaServerError as exc:
        failure = f"{label}: llama-server could not score {path.name}: {exc}"
        if problems:
            failure += f" ({problems[0]})"
        report.fail(failure)
        return LlamaRow(gguf_type.name, path, False, None, len(kept), 0.0, failure)
    for i, score in zip(kept, scores, strict=True):
        row = report.scores[i]
        row.llama = {**(row.llama or {}), gguf_type.name: score}
    groups = [report.scores[i].group for i in kept]
    reference = [[report.scores[i].reference[-1]] for i in kept]
    metrics = path_metrics(groups, reference, [[s] for s in scores], probs=True)
    report.metrics[PATHS[gguf_type.name]] = metrics
    t = gguf_type.tolerance
    reason: str | None = None
    within = (
        metrics.max_abs_prob <= t.max_abs_prob
        and metrics.spearman >= t.min_spearman
        and metrics.top1 >= t.min_top1
    )
    if problems or not within:
        cause = problems[0] if problems else _score_cause(reference, scores)
        reason = (
            f"{label}: llama-server's scores differ from the original by up to "
            f"{metrics.max_abs_prob:.3g} (probability; tolerance {t.max_abs_prob:g}), Spearman "
            f"{metrics.spearman:.3f}, top-1 {metrics.top1:.0%}: {cause}"
        )
        report.fail(reason)
    report.notes.append(
        f"{label}: {path.name} served by llama-server --reranking, /v1/rerank; tolerance "
        f"|Δprob| <= {t.max_abs_prob:g}, Spearman >= {t.min_spearman}, top-1 >= {t.min_top1:.0%}"
    )
    log(
        f"parity: {label}: max|Δprob| {metrics.max_abs_prob:.2e}, Spearman "
        f"{metrics.spearman:.4f}, top-1 {metrics.top1:.0%} ({seconds:.1f} s)"
    )
    return LlamaRow(gguf_type.name, path, reason is None, metrics, len(kept), seconds, reason)


def _score_cause(reference: list[list[float]], scores: list[float]) -> str:
    probs = [sigmoid(row[-1]) for row in reference]
    if max(scores) - min(scores) < 1e-6 < max(probs) - min(probs):
        return (
            f"every pair scores {scores[0]:.4g}: the GGUF's head does not depend on the pair "
            "(a one-row cls_out on qwen3 always gives 1.0)"
        )
    if (
        max(abs(s - (1 - p)) for s, p in zip(scores, probs, strict=True))
        < max(abs(s - p) for s, p in zip(scores, probs, strict=True)) / 4
    ):
        return "the scores are 1 - p: the GGUF's head scores the opposite label (tokens swapped)"
    return (
        "the GGUF's prompt or weights differ from the checkpoint's (compare its rerank template "
        "with chat_template.jinja; a quantized type may need a looser tolerance)"
    )
