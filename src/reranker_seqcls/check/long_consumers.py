"""What each consumer of the converted checkpoint does with the over-length pairs.

Each consumer's scores are judged against the original's (:func:`judge_rows`): "matches the
official truncated score", "refuses" or "scores another text". The converted
sentence-transformers files are read for what makes a cut drop the template's end
(:func:`template_cut_cause`, :func:`_check_files`); :func:`_sentence_transformers` and
:func:`vllm_part` run ``CrossEncoder`` and vLLM offline on the pairs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.long_pairs import client_side
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.check.vllm import OfflinePart

MATCHES = "matches the official truncated score"
REFUSES = "refuses"
OTHER = "scores another text"


@dataclass
class ConsumerResult:
    """What one consumer did with one long pair."""

    consumer: str
    pair: str  # the pair's group: "long-document" or "long-query-and-document"
    behaviour: str  # MATCHES, REFUSES, OTHER, or "not run"
    detail: str  # the error line, the difference, or why it did not run
    score: float | None = None  # in the consumer's unit (logit, or vLLM's probability)

    def to_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "pair": self.pair,
            "behaviour": self.behaviour,
            "detail": self.detail,
            "score": self.score,
        }


def _st_config(converted: Path) -> dict[str, Any]:
    from reranker_seqcls.names import ST_MODULE_CONFIG_FILE

    path = converted / ST_MODULE_CONFIG_FILE
    try:
        loaded = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _restore_off(converted: Path) -> bool:
    chat = (_st_config(converted).get("processing_kwargs") or {}).get("chat_template") or {}
    return chat.get("restore_suffix") is False


def template_cut_cause(converted: Path, st_ids: list[int], tail: list[int]) -> str | None:
    """Why sentence-transformers' prompt of a long pair lacks the template's tail, or None."""
    if not tail or st_ids[-len(tail) :] == tail:
        return None
    config = _st_config(converted)
    chat = (config.get("processing_kwargs") or {}).get("chat_template") or {}
    length = config.get("max_seq_length")
    why = (
        "processing_kwargs.chat_template.restore_suffix is false in sentence_bert_config.json, "
        f"so its right-truncation at {length or len(st_ids)} tokens drops the template's end"
        if chat.get("restore_suffix") is False
        else f"its prompt is right-truncated at {len(st_ids)} tokens without the template's end"
    )
    return (
        f"sentence-transformers cuts the scoring template on a long pair: {why}; the score is "
        f"read after the document instead of after the template's last {len(tail)} tokens. "
        "Convert again (the converter writes max_seq_length and keeps restore_suffix on)"
    )


def _check_files(report: ParityReport, converted: Path, length: int | None) -> None:
    """What the converted sentence-transformers files say about long pairs, measured or not:
    ``restore_suffix: false`` lets a cut drop the template's end (a failure); a
    ``max_seq_length`` other than the scoring length moves the cut (a note)."""
    if _restore_off(converted):
        report.fail(
            "sentence-transformers cuts the scoring template on a long pair: "
            "processing_kwargs.chat_template.restore_suffix is false in sentence_bert_config.json, "
            "so its right-truncation drops the template's end and the score is read on a "
            "document token; convert again (the converter keeps restore_suffix on)"
        )
    written = _st_config(converted).get("max_seq_length")
    if length is not None and written != length:
        report.notes.append(
            f"long inputs: sentence_bert_config.json max_seq_length is {written}, the family's "
            f"scoring length is {length}: sentence-transformers cuts elsewhere than the original"
        )


def judge_rows(
    consumer: str,
    pairs: list[Pair],
    scores: list[float | None],
    errors: list[str | None],
    reference: list[float],
    tolerance: float,
    unit: str,
) -> list[ConsumerResult]:
    """One row per pair: refused (its error), matching within ``tolerance``, or not."""
    rows = []
    for pair, score, error, ref in zip(pairs, scores, errors, reference, strict=True):
        if error or score is None:
            rows.append(ConsumerResult(consumer, pair.group, REFUSES, error or "no score"))
            continue
        diff = abs(score - ref)
        behaviour, shown = (MATCHES, f"{diff:.2e}") if diff <= tolerance else (OTHER, f"{diff:.3g}")
        rows.append(ConsumerResult(consumer, pair.group, behaviour, f"|Δ {unit}| {shown}", score))
    return rows


def _id_difference(tokenizer: Any, ids: list[int], reference: list[int]) -> str:
    """Where a consumer's ids first leave the original's, in words."""
    if ids == reference:
        return "the original's ids"
    at = next(
        (i for i, (a, b) in enumerate(zip(ids, reference, strict=False)) if a != b),
        min(len(ids), len(reference)),
    )
    mine = tokenizer.convert_ids_to_tokens(ids[at : at + 2])
    theirs = tokenizer.convert_ids_to_tokens(reference[at : at + 2])
    return f"{len(ids)} ids, leaving the original's {len(reference)} at {at}: {mine} for {theirs}"


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _sentence_transformers(
    converted: Path, pairs: list[Pair], dtype: str
) -> tuple[list[float | None], list[list[int]], int]:
    """``CrossEncoder(converted)`` on the raw long pairs: its score logits (Identity
    activation, so a saturated sigmoid hides nothing), the ids it fed the model, and the length
    it cuts at."""
    import gc

    import torch
    from sentence_transformers import CrossEncoder

    from reranker_seqcls.check.scoring import torch_dtype

    model = CrossEncoder(str(converted), model_kwargs={"dtype": torch_dtype(dtype)})
    scores: list[float | None] = []
    ids: list[list[int]] = []
    for pair in pairs:
        kwargs = {"prompt": pair.instruction} if pair.instruction is not None else {}
        value = model.predict(
            [(pair.query, pair.document)],
            activation_fn=torch.nn.Identity(),
            show_progress_bar=False,
            convert_to_numpy=True,
            **kwargs,
        )[0]
        scores.append(float(value))
        features = model.preprocess([(pair.query, pair.document)], **kwargs)
        row, mask = features["input_ids"][0].tolist(), features["attention_mask"][0].tolist()
        ids.append([int(t) for t, m in zip(row, mask, strict=True) if m])
    max_length = int(model.max_seq_length)
    del model
    gc.collect()
    return scores, ids, max_length


def client_cuts(
    converted: Path, recipe: Recipe, pairs: list[Pair], length: int | None
) -> list[tuple[str, str]]:
    """The (query, document) the card's recipe sends for each pair, with the converted
    tokenizer (what a user of the checkpoint has)."""
    from reranker_seqcls.tokenizer_loads import auto_tokenizer

    tokenizer = auto_tokenizer(str(converted))
    return [client_side(tokenizer, recipe, p, length) for p in pairs]


def vllm_part(
    converted: Path,
    pairs: list[Pair],
    cut: list[tuple[str, str]],
    dtype: str,
    reference: list[float],
    tolerance: float,
) -> tuple[OfflinePart, list[ConsumerResult]]:
    """vLLM offline with the checkpoint's own length (``max_model_len`` unset), on the raw
    pairs and as ``cut`` on the client side (:func:`client_cuts`): the part of the check's
    offline job (:func:`.vllm.run_offline`), and the rows it fills when it has run."""
    from reranker_seqcls.check.vllm import OfflinePart, model_error
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME

    template_path = converted / TEMPLATE_FILE_NAME
    sent = [(p.query, p.document) for p in pairs] + cut
    groups = [
        {"query": q, "documents": [d], "instruction": p.instruction}
        for (q, d), p in zip(sent, pairs + pairs, strict=True)
    ]
    spec = {
        "model": str(converted.resolve()),
        "dtype": dtype,
        "chat_template": template_path.read_text("utf-8") if template_path.is_file() else None,
        "max_model_len": None,  # what the checkpoint's files give
        "kv_cache_memory_bytes": 1 << 30,
        "errors_per_group": True,
        "groups": groups,
    }
    names = ("vLLM offline", "vLLM offline, cut on the client side")
    rows: list[ConsumerResult] = []

    def finish(
        model: dict[str, Any] | None, error: str | None, log_text: str, _version: str | None
    ) -> None:
        if model is None or "error" in model:
            why = str(error) if model is None else model_error(model, log_text)
            rows.extend(ConsumerResult(n, p.group, REFUSES, why) for n in names for p in pairs)
            return
        for k, name in enumerate(names):
            outputs = model["scores"][k * len(pairs) : (k + 1) * len(pairs)]
            scores = [None if isinstance(o, dict) else float(o[0]) for o in outputs]
            errors = [str(o["error"]) if isinstance(o, dict) else None for o in outputs]
            unit = "probability"
            rows.extend(judge_rows(name, pairs, scores, errors, reference, tolerance, unit))

    return OfflinePart(spec, finish), rows
