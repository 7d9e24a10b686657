"""Over-length pairs: what each consumer of the converted checkpoint does with them.

Every other pair of the check fits the family's scoring length. Here two pairs do not: a short
query with a document at least twice the scoring length, and a query as long as the scoring
length with that document (for zerank-2, whose code cuts characters, twice its character cuts).
The original scores them as its own code cuts them (:data:`~reranker_seqcls.recipes.prompts
.LENGTH_RULES`); each consumer is measured against that score:

* **transformers, official ids** -- the converted classifier fed the original's cut ids. It must
  match (a failed check otherwise: the conversion itself is wrong).
* **sentence-transformers** -- ``CrossEncoder(converted)`` on the raw pair, with the files the
  checkpoint carries (``max_seq_length`` in ``sentence_bert_config.json``). If its prompt does
  not end with the template's fixed tail (everything the template puts after the document), the
  checkpoint's own files cut the template: the check fails and names the cause.
* **vLLM offline** -- ``LLM(converted).score`` with the saved template and the length vLLM reads
  from the checkpoint; then with the document cut on the client side (:func:`cut_document`, the
  card's recipe).

A consumer that matches within the check's tolerance "matches the official truncated score", one
that raises "refuses" (its first error line), any other "scores another text" (by how much).
Those two are findings for the card, not failures: only the checkpoint's own files can fail here.

The pairs are long by design, so they run only where that is cheap: when the longest of their
uncut prompts stays within :data:`TOKEN_BUDGET` tokens (the tiny test models, the twin of a
streamed run); otherwise the report says they were not measured, and why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.pairs import _LONG_IRRELEVANT, _LONG_RELEVANT, Pair
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.recipes.prompts import LENGTH_RULES, official_prompt, scoring_length
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.check.vllm import VllmPython

TOKEN_BUDGET = 6144  # uncut prompt tokens of the longest long pair: beyond it, not measured
LONG_QUERY = "How do vaccines work?"

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


def fitting_pairs(source: Path, recipe: Recipe, pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """``pairs`` split into those the family's code scores whole and those it cuts. A cut pair's
    consumer prompt cannot be the family's (the consumers cut elsewhere, or refuse): the main
    check judges the first, the over-length pairs of :func:`add_long_inputs` measure the cut."""
    if recipe.prompt_style not in LENGTH_RULES:
        return pairs, []
    from transformers import AutoTokenizer

    from reranker_seqcls.convert.lengths import position_limit

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    limit = position_limit(json.loads((source / CONFIG_FILE).read_text("utf-8")))
    fits: list[Pair] = []
    cut: list[Pair] = []
    for pair in pairs:
        prompt = official_prompt(
            tokenizer, recipe, pair.query, pair.document, pair.instruction, position_limit=limit
        )
        (cut if prompt.cut else fits).append(pair)
    return fits, cut


def _grow(text: str, count: Callable[[str], int], tokens: int) -> str:
    """Numbered sentences of ``text``, over and over, until the result counts at least
    ``tokens`` (checked every few sentences, so it overshoots by a few sentences at most)."""
    sentences = [f"{s.strip()}." for s in text.split(". ") if s.strip()]
    parts: list[str] = []
    while True:
        parts.append(f"({len(parts) + 1}) {sentences[len(parts) % len(sentences)]}")
        if len(parts) % 4 == 0 and count(" ".join(parts)) >= tokens:
            return " ".join(parts)


def _grow_chars(text: str, chars: int) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < chars:
        parts.append(f"({len(parts) + 1}) {text}")
    return " ".join(parts)


def long_pairs(recipe: Recipe, count: Callable[[str], int], length: int | None) -> list[Pair]:
    """A short query with a document of at least twice the scoring length, and a query of the
    scoring length with that document (zerank-2: twice its character cuts)."""
    rule = LENGTH_RULES[recipe.prompt_style]
    if rule.max_length is None:
        document = _grow_chars(_LONG_RELEVANT, 2 * (rule.document_chars or 0))
        query = _grow_chars(_LONG_IRRELEVANT, 2 * (rule.query_chars or 0))
    else:
        if length is None:
            raise ValueError("a family with a token rule has a scoring length")
        document = _grow(_LONG_RELEVANT, count, 2 * length)
        query = _grow(_LONG_IRRELEVANT, count, length)
    return [
        Pair(LONG_QUERY, document, group="long-document"),
        Pair(query, document, group="long-query-and-document"),
    ]


def cut_document(
    tokenizer: Any, query: str, document: str, instruction: str | None, length: int
) -> str:
    """The client-side recipe: the longest prefix of the document, at one of its token
    boundaries, whose rendered prompt fits ``length`` tokens.

    The prompt is rendered as vLLM renders it (``apply_chat_template``) and counted as vLLM
    counts it (with the tokenizer's special tokens). The first guess is ``length`` minus the
    prompt of an empty document; a few tokens more are tried because the document's first
    token can absorb the template's space before it. The kept text is cut at a token's end
    offset (no decode round trip).
    """
    from reranker_seqcls.recipes.render import render_scoring_prompt

    def size(text: str) -> int:
        rendered = render_scoring_prompt(None, query, text, instruction, tokenizer=tokenizer)
        return len(tokenizer(rendered)["input_ids"])

    if size(document) <= length:
        return document
    ends = [end for _, end in tokenizer(document, add_special_tokens=False,
                                        return_offsets_mapping=True)["offset_mapping"]]  # fmt: skip
    keep = min(len(ends), length - size("") + 8)
    while keep > 0 and size(document[: ends[keep - 1]]) > length:
        keep -= 1
    return document[: ends[keep - 1]] if keep > 0 else ""


def template_tail(tokenizer: Any, recipe: Recipe, limit: int | None) -> list[int]:
    """The ids the family's prompt always ends with, whatever the query and document: the
    longest common tail of its prompts for two different short pairs (the tail
    sentence-transformers restores after a cut)."""
    first = official_prompt(tokenizer, recipe, "0", "0", position_limit=limit).ids
    second = official_prompt(tokenizer, recipe, "1 2 3 4", "1 2 3 4", position_limit=limit).ids
    tail = 0
    while tail < min(len(first), len(second)) and first[-1 - tail] == second[-1 - tail]:
        tail += 1
    return first[len(first) - tail :]


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


def _judge(
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


@dataclass
class LongInputs:
    """The long-input section of the report (``long_inputs`` in its JSON)."""

    scoring_length: int | None
    rule: str
    source: str
    measured: bool
    # whether the client-side cut reproduces the original's cut: a family whose code cuts one
    # body between fixed prefix and suffix ids (Qwen3-Reranker)
    client_side_exact: bool = False
    why_not: str | None = None
    pairs: list[dict[str, Any]] = field(default_factory=list)
    consumers: list[ConsumerResult] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "scoring_length": self.scoring_length,
            "rule": self.rule,
            "source": self.source,
            "measured": self.measured,
            "client_side_exact": self.client_side_exact,
            "why_not": self.why_not,
            "pairs": self.pairs,
            "consumers": [c.to_json() for c in self.consumers],
        }


def add_long_inputs(
    report: ParityReport,
    source: Path,
    converted: Path,
    recipe: Recipe,
    token_ids: list[int],
    vllm: VllmPython | None,
    log: Callable[[str], None],
) -> None:
    """Score the long pairs on every consumer and record what each did (``report
    .long_inputs``); fail the report only for the checkpoint's own defects."""
    from transformers import AutoTokenizer

    from reranker_seqcls.convert.lengths import position_limit

    rule = LENGTH_RULES.get(recipe.prompt_style)
    if rule is None:
        report.notes.append(
            f"long inputs: recipe {recipe.name} has no family truncation rule; not measured"
        )
        return
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    limit = position_limit(json.loads((source / CONFIG_FILE).read_text("utf-8")))

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    length = scoring_length(recipe.prompt_style, count, limit)
    section = LongInputs(
        length, rule.rule, rule.source, measured=False,
        client_side_exact=recipe.prompt_style == "qwen3-reranker",
    )  # fmt: skip
    try:
        _measure(report, section, (source, converted), recipe, token_ids, (tokenizer, limit),
                 vllm, log)  # fmt: skip
    finally:
        report.long_inputs = section.to_json()


def _measure(
    report: ParityReport,
    section: LongInputs,
    directories: tuple[Path, Path],
    recipe: Recipe,
    token_ids: list[int],
    counting: tuple[Any, int | None],
    vllm: VllmPython | None,
    log: Callable[[str], None],
) -> None:
    """The long pairs on every consumer (``directories``: source and converted; ``counting``:
    the source tokenizer and the model's position limit)."""
    from reranker_seqcls.check.scoring import converted_scores, reference_scores

    source, converted = directories
    tokenizer, limit = counting

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    length = section.scoring_length
    _check_files(report, converted, length)
    if length is not None and 3 * length > TOKEN_BUDGET:
        section.why_not = (
            f"a pair twice the scoring length of {length} tokens is more than the check's "
            f"{TOKEN_BUDGET}-token budget (the long pairs run on small models only)"
        )
        return
    pairs = long_pairs(recipe, count, length)
    # the prompt's size before any cut (about: the pieces' boundaries may merge a token)
    frame = len(official_prompt(tokenizer, recipe, "", "", position_limit=limit).ids)
    uncut = [frame + count(p.query) + count(p.document) for p in pairs]
    if max(uncut) > TOKEN_BUDGET:
        section.why_not = (
            f"the long pairs' prompts ({max(uncut)} tokens) exceed the check's "
            f"{TOKEN_BUDGET}-token budget"
        )
        return
    log(f"parity: scoring {len(pairs)} over-length pairs (scoring length {length})")
    official, reference = reference_scores(source, recipe, pairs, token_ids, report.dtype)
    section.measured = True
    section.pairs = [
        {
            "group": p.group,
            "query_tokens": count(p.query),
            "document_tokens": count(p.document),
            "uncut_prompt_tokens": n,
            "official_prompt_tokens": len(o.ids),
            "reference": r,
        }
        for p, n, o, r in zip(pairs, uncut, official, reference, strict=True)
    ]
    ref_logit = [row[-1] for row in reference]
    ref_prob = [_sigmoid(x) for x in ref_logit]
    tolerance = report.tolerance

    classifier = converted_scores(converted, [o.ids for o in official], report.dtype)
    none: list[str | None] = [None] * len(pairs)
    rows = _judge(
        "transformers, the original's cut ids",
        pairs,
        [row[-1] for row in classifier.single],
        none,
        ref_logit,
        tolerance.logit,
        "logit",
    )
    section.consumers += rows
    if any(row.behaviour != MATCHES for row in rows) and not _softcap_allowed(report):
        report.fail(
            "the converted classifier does not reproduce the original on the over-length pairs' "
            f"cut ids ({'; '.join(r.detail for r in rows)}): the conversion itself is wrong"
        )
    if len(reference[0]) != 1:
        return  # several labels: sentence-transformers returns them all, vLLM refuses
    st_scores, st_ids, st_length = _sentence_transformers(converted, pairs, report.dtype)
    st_rows = _judge(
        "sentence-transformers", pairs, st_scores, none, ref_logit, tolerance.logit, "logit"
    )
    for row, ids, o in zip(st_rows, st_ids, official, strict=True):
        row.detail += f", cuts at {st_length} tokens, {_id_difference(tokenizer, ids, o.ids)}"
        section.consumers.append(row)
    tail = template_tail(tokenizer, recipe, limit)
    if not _restore_off(converted):  # else it failed already, with that cause (_check_files)
        for ids in st_ids:
            if (cause := template_cut_cause(converted, ids, tail)) is not None:
                report.fail(cause)
                break
    if vllm is not None and vllm.python is not None:
        section.consumers += _vllm_rows(
            vllm.python, converted, recipe, pairs, length, report.dtype, ref_prob, tolerance.prob,
            log,
        )  # fmt: skip
    elif vllm is not None:
        section.consumers.append(
            ConsumerResult("vLLM offline", "all", "not run", str(vllm.skipped))
        )


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


def _softcap_allowed(report: ParityReport) -> bool:
    """The main check allowed the converted classifier to differ (``--allow-softcapping``): the
    same difference on the long pairs is that allowance, not another defect."""
    return any("final_logit_softcapping" in allowance for allowance in report.allowances)


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
    max_length = int(model.max_length)
    del model
    gc.collect()
    return scores, ids, max_length


def client_side(tokenizer: Any, recipe: Recipe, pair: Pair, length: int | None) -> tuple[str, str]:
    """The card's recipe for a one-string consumer: the (query, document) to send so the
    prompt is cut where the family cuts -- its character cuts (zerank-2), else the document cut
    to the scoring length (:func:`cut_document`)."""
    rule = LENGTH_RULES[recipe.prompt_style]
    if rule.max_length is None or length is None:
        return pair.query[: rule.query_chars], pair.document[: rule.document_chars]
    return pair.query, cut_document(tokenizer, pair.query, pair.document, pair.instruction, length)


def _vllm_rows(
    python: str,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    length: int | None,
    dtype: str,
    reference: list[float],
    tolerance: float,
    log: Callable[[str], None],
) -> list[ConsumerResult]:
    """vLLM offline with the checkpoint's own length (``max_model_len`` unset), on the raw
    pairs and with the document cut on the client side."""
    from transformers import AutoTokenizer

    from reranker_seqcls.check.vllm import model_error, run_job
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME

    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    cut = [client_side(tokenizer, recipe, p, length) for p in pairs]
    template_path = converted / TEMPLATE_FILE_NAME
    sent = [(p.query, p.document) for p in pairs] + cut
    groups = [
        {"query": q, "documents": [d], "instruction": p.instruction}
        for (q, d), p in zip(sent, pairs + pairs, strict=True)
    ]
    job = {
        "models": [
            {
                "model": str(converted.resolve()),
                "dtype": dtype,
                "chat_template": template_path.read_text("utf-8")
                if template_path.is_file()
                else None,
                "max_model_len": None,  # what the checkpoint's files give
                "kv_cache_memory_bytes": 1 << 30,
                "errors_per_group": True,
                "groups": groups,
            }
        ]
    }
    log("parity: scoring the over-length pairs through vLLM (raw, and cut on the client side)")
    result, error, log_text = run_job(python, job)
    names = ("vLLM offline", "vLLM offline, cut on the client side")
    if result is None:
        return [ConsumerResult(n, p.group, REFUSES, str(error)) for n in names for p in pairs]
    model = result["models"][0]
    if "error" in model:
        why = model_error(model, log_text)
        return [ConsumerResult(n, p.group, REFUSES, why) for n in names for p in pairs]
    rows = []
    for k, name in enumerate(names):
        outputs = model["scores"][k * len(pairs) : (k + 1) * len(pairs)]
        scores: list[float | None] = [None if isinstance(o, dict) else float(o[0]) for o in outputs]
        errors = [str(o["error"]) if isinstance(o, dict) else None for o in outputs]
        rows += _judge(name, pairs, scores, errors, reference, tolerance, "probability")
    return rows


def long_inputs_markdown(data: dict[str, Any] | None) -> str | None:
    """The card's "Long inputs" section from the report's ``long_inputs`` (None: none)."""
    if not data:
        return None
    length = data.get("scoring_length")
    bound = f"{length} tokens" if length else "no token bound (character cuts)"
    lines = [
        "### Long inputs",
        "",
        f"- Scoring length: {bound}. The original: {data.get('rule')} ({data.get('source')}).",
    ]
    if not data.get("measured"):
        lines.append(f"- Over-length pairs were not measured in this check: {data.get('why_not')}.")
    else:
        sizes = "; ".join(
            f"{p.get('group')}: {p.get('query_tokens')}-token query, {p.get('document_tokens')}"
            f"-token document, cut by the original to {p.get('official_prompt_tokens')} prompt "
            "tokens"
            for p in data.get("pairs") or []
        )
        lines.append(f"- Measured on over-length pairs ({sizes}):")
        lines += [
            f"  - {c.get('consumer')}, {c.get('pair')}: {c.get('behaviour')} ({c.get('detail')})"
            for c in data.get("consumers") or []
        ]
    if not length:
        lines.append(
            "- The original cuts characters, which no consumer does by itself: cut on the client "
            "side before sending (vLLM refuses a prompt beyond the model's positions):"
        )
    else:
        lines.append(
            "- vLLM refuses a prompt longer than the scoring length. Cut the document on the "
            "client side before sending it; "
            + (
                "for this family that is the original's own cut, so vLLM then gives its score:"
                if data.get("client_side_exact")
                else "this keeps the prompt within the family's bound, but the original cuts "
                "differently (above), so scores of cut pairs are not the original's:"
            )
        )
    if length:
        lines += [
            "",
            "```python",
            "from transformers import AutoTokenizer",
            "",
            "tok = AutoTokenizer.from_pretrained(MODEL)  # reads chat_template.jinja",
            "",
            "def size(doc):  # the prompt's tokens, counted as vLLM counts them",
            '    messages = [{"role": "query", "content": query}, '
            '{"role": "document", "content": doc}]',
            '    return len(tok(tok.apply_chat_template(messages, tokenize=False))["input_ids"])',
            "",
            f"if size(document) > {length}:",
            "    ends = [e for _, e in tok(document, add_special_tokens=False, "
            'return_offsets_mapping=True)["offset_mapping"]]',
            f'    keep = min(len(ends), {length} - size("") + 8)',
            f"    while keep > 0 and size(document[: ends[keep - 1]]) > {length}:",
            "        keep -= 1",
            '    document = document[: ends[keep - 1]] if keep else ""',
            "```",
        ]
    else:  # the original's character cuts (zerank-2)
        lines += ["", "```python", "query, document = query[:2000], document[:10000]", "```"]
    return "\n".join(lines)
