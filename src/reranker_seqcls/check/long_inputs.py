"""Over-length pairs: what each consumer of the converted checkpoint does with them.

Every other pair of the check fits the family's scoring length. Here two pairs do not: a short
query with a document at least twice the scoring length, and a query as long as the scoring
length with that document (for zerank-2, whose code cuts characters, twice its character cuts).
The original scores them as its own code cuts them (:data:`~reranker_seqcls.recipes.length_rules
.LENGTH_RULES`); each consumer is measured against that score:

* **transformers, official ids** -- the converted classifier fed the original's cut ids. It must
  match (a failed check otherwise: the conversion itself is wrong).
* **sentence-transformers** -- ``CrossEncoder(converted)`` on the raw pair, with the files the
  checkpoint carries (``max_seq_length`` in ``sentence_bert_config.json``). If its prompt does
  not end with the template's fixed tail (everything the template puts after the document), the
  checkpoint's own files cut the template: the check fails and names the cause.
* **vLLM offline** -- ``LLM(converted).score`` with the saved template and the length vLLM reads
  from the checkpoint; then with the document cut on the client side
  (:func:`.long_pairs.cut_document`, the card's recipe).
* **vLLM served** -- ``vllm serve CONVERTED`` as the card starts it, ``POST /score`` (and
  ``/rerank`` beside it) with the same raw and cut pairs (:mod:`.long_served`).

A consumer that matches within the check's tolerance "matches the official truncated score", one
that raises "refuses" (its first error line), any other "scores another text" (by how much).
Those two are findings for the card, not failures: only the checkpoint's own files can fail here.

The pairs are long by design, so they run only where that is cheap: when the longest of their
uncut prompts stays within :data:`TOKEN_BUDGET` tokens (the tiny test models, the twin of a
streamed run); otherwise the report says they were not measured, why, and what would measure
them (:class:`LongBudget`).

This module runs the measurement and holds its report section; the pairs and the client-side
cut are in :mod:`.long_pairs`, each consumer's scoring in :mod:`.long_consumers` and
:mod:`.long_served`, the card's section in :mod:`.long_inputs_card`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.long_consumers import (
    MATCHES,
    ConsumerResult,
    _check_files,
    _id_difference,
    _restore_off,
    _sentence_transformers,
    _sigmoid,
    client_cuts,
    judge_rows,
    template_cut_cause,
    vllm_part,
)
from reranker_seqcls.check.long_pairs import long_pairs, template_tail
from reranker_seqcls.check.long_served import served, served_rows
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.recipes.length_rules import LENGTH_RULES, scoring_length
from reranker_seqcls.recipes.prompts import official_prompt
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.check.vllm import OfflinePart, VllmPython

TOKEN_BUDGET = 6144  # uncut prompt tokens of the longest long pair: beyond it, not measured
# The structural twin (2 layers, hidden at most 128 for every real size) scores even a
# 24k-token prompt in about a second: the long pairs of an 8192-token family run there.
TWIN_TOKEN_BUDGET = 32768


@dataclass(frozen=True)
class LongBudget:
    """How many uncut prompt tokens the longest long pair may take, and, when it takes more,
    what would measure it (said in the report's ``why_not``)."""

    tokens: int = TOKEN_BUDGET
    beyond: str | None = None


# a whole check on the model itself: long pairs only where a small model's scoring length lets
# them fit; beyond, the layer-by-layer check's twin takes them
SMALL = LongBudget(
    TOKEN_BUDGET,
    "--full-check with a --check-memory under the model's float32 size measures them on the "
    "structural twin",
)
# the quick check on a twin: the twin could take the pairs, the quick check leaves them out
QUICK_TWIN = LongBudget(TOKEN_BUDGET, "--full-check measures them on the twin")
FULL_TWIN = LongBudget(TWIN_TOKEN_BUDGET)


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
    budget: LongBudget = SMALL,
    offline: list[OfflinePart] | None = None,
) -> None:
    """Score the long pairs on every consumer and record what each did (``report
    .long_inputs``); fail the report only for the checkpoint's own defects. Pairs whose
    uncut prompts exceed ``budget.tokens`` are not measured (the report says why, and
    ``budget.beyond``). ``offline``: other parts of the check's vLLM job (the ``vllm`` row),
    run in the same process as these pairs' when they reach vLLM (each then ``done``)."""
    from reranker_seqcls.convert.lengths import position_limit
    from reranker_seqcls.tokenizer_loads import auto_tokenizer

    rule = LENGTH_RULES.get(recipe.prompt_style)
    if rule is None:
        report.notes.append(
            f"long inputs: recipe {recipe.name} has no family truncation rule; not measured"
        )
        return
    tokenizer = auto_tokenizer(str(source))
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
                 vllm, log, budget.tokens, offline or [])  # fmt: skip
    finally:
        if section.why_not is not None and budget.beyond is not None:
            section.why_not = f"{section.why_not}; {budget.beyond}"
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
    budget: int = TOKEN_BUDGET,
    offline: list[OfflinePart] | None = None,
) -> None:
    """The long pairs on every consumer (``directories``: source and converted; ``counting``:
    the source tokenizer and the model's position limit; ``offline``: see
    :func:`add_long_inputs`)."""
    from reranker_seqcls.check.scoring import converted_scores, reference_scores
    from reranker_seqcls.check.vllm import run_offline

    source, converted = directories
    tokenizer, limit = counting

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    length = section.scoring_length
    _check_files(report, converted, length)
    if length is not None and 3 * length > budget:
        section.why_not = (
            f"a pair twice the scoring length of {length} tokens is more than the check's "
            f"{budget}-token budget"
        )
        return
    pairs = long_pairs(recipe, count, length)
    # the prompt's size before any cut (about: the pieces' boundaries may merge a token)
    frame = len(official_prompt(tokenizer, recipe, "", "", position_limit=limit).ids)
    uncut = [frame + count(p.query) + count(p.document) for p in pairs]
    if max(uncut) > budget:
        section.why_not = (
            f"the long pairs' prompts ({max(uncut)} tokens) exceed the check's "
            f"{budget}-token budget"
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
    rows = judge_rows(
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
    st_rows = judge_rows(
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
        cut = client_cuts(converted, recipe, pairs, length)
        judged = (ref_prob, tolerance.prob, log)
        # the server starts first: its start-up overlaps the offline job's, which scores the
        # check's pairs (``offline``) and these in one process
        with served(vllm.python, converted, report.dtype) as server:
            part, rows = vllm_part(converted, pairs, cut, report.dtype, ref_prob, tolerance.prob)
            log("parity: scoring the over-length pairs through vLLM (raw, and cut on the client "
                "side)")  # fmt: skip
            run_offline(vllm.python, [*(offline or []), part])
            section.consumers += rows + served_rows(server, converted, pairs, cut, *judged)
    elif vllm is not None:
        section.consumers += [
            ConsumerResult(name, "all", "not run", str(vllm.skipped))
            for name in ("vLLM offline", "vLLM served")
        ]


def _softcap_allowed(report: ParityReport) -> bool:
    """The main check allowed the converted classifier to differ (``--allow-softcapping``): the
    same difference on the long pairs is that allowance, not another defect."""
    return any("final_logit_softcapping" in allowance for allowance in report.allowances)
