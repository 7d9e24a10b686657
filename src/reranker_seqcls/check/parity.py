"""The parity check: original causal LM vs converted classifier vs sentence-transformers.

Three scorings of the same (query, document) pairs, one model resident at a time:

- **reference** — the source loaded with ``AutoModelForCausalLM``, fed the family's official
  prompt ids (:func:`prompts.build_prompt_ids`), scored with the family's math at the last token;
- **converted** — the output loaded with ``AutoModelForSequenceClassification``, fed the same ids,
  batched with left padding and one by one;
- **consumer** — ``CrossEncoder(converted).predict(pairs)`` on the raw text, which only matches
  when the template and sentence-transformers files travel with the checkpoint.

The verdict compares logits and probabilities against tolerances that follow the compute dtype
and the score head's storage dtype, and rankings (Spearman, top-1 per query group). A failure
names its most likely cause. Pairs whose one-string consumer prompt has the family's text but
other tokens across its piece boundaries (:mod:`prompt_gap`) are also scored with those ids: the
gap is reported and allowed when the consumer reproduces them.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log
from reranker_seqcls.names import CONFIG_FILE, ST_MODULE_CONFIG_FILE
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    from reranker_seqcls.check.prompt_gap import PromptComparison
    from reranker_seqcls.recipes.prompts import OfficialPrompt

BATCH_SIZE = 8


@dataclass(frozen=True)
class Tolerance:
    logit: float  # max |Δ| of the score logit
    prob: float  # max |Δ| after the activation (sigmoid)
    spearman: float  # minimum rank correlation with the reference
    top1: float  # minimum fraction of query groups whose best document agrees
    # When set, a path whose values are within ``logit``/``prob`` passes the rank thresholds too:
    # any rank swap is then between pairs closer than twice the bound, which the score head's
    # storage rounding explains (set with a storage allowance only).
    ranks_follow_values: bool = False


# Bounds per compute dtype, set from measurements (docs/parity.md): float32 differences come only
# from summation order; bfloat16/float16 ones from rounding activations, so they are loose, and
# the dtype-independent structural checks (score.weight against the source rows, the consumer's
# prompt ids against the family's) carry the exactness there.
TOLERANCES: dict[str, Tolerance] = {
    "float32": Tolerance(logit=2e-3, prob=5e-4, spearman=0.999, top1=1.0),
    "bfloat16": Tolerance(logit=0.25, prob=0.1, spearman=0.98, top1=0.8),
    "float16": Tolerance(logit=0.1, prob=0.03, spearman=0.99, top1=0.9),
}


@dataclass
class PathMetrics:
    max_abs_logit: float | None
    max_abs_prob: float
    spearman: float
    top1: float  # fraction of groups


@dataclass
class ParityReport:
    passed: bool
    dtype: str
    tolerance: Tolerance
    recipe: str
    num_pairs: int
    num_groups: int
    metrics: dict[str, PathMetrics]
    reasons: list[str] = field(default_factory=list)
    allowances: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # how the tolerance was set, when not plain
    scores: list[dict[str, Any]] = field(default_factory=list)
    tokenization_gap: TokenizationGap | None = None
    # What any one-string consumer (sentence-transformers, vLLM) must give for each pair: the
    # family's score, or on a tokenization-gap pair the converted model's score on the
    # consumer's own ids. Judge a consumer path against this, not against the reference.
    one_string_reference: list[list[float]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str = "parity report") -> ParityReport:
        """The report :meth:`to_json` wrote (``parity_report.json``), for its Markdown; the
        per-pair scores are not read back. Exit 2 when ``data`` is no such report."""
        try:
            bounds = data["tolerance"]
            tolerance = Tolerance(
                logit=float(bounds["logit"]),
                prob=float(bounds["prob"]),
                spearman=float(bounds["spearman"]),
                top1=float(bounds["top1"]),
                ranks_follow_values=bool(bounds.get("ranks_follow_values", False)),
            )
            metrics = {
                str(name): PathMetrics(
                    max_abs_logit=(
                        None if m["max_abs_logit"] is None else float(m["max_abs_logit"])
                    ),
                    max_abs_prob=float(m["max_abs_prob"]),
                    spearman=float(m["spearman"]),
                    top1=float(m["top1"]),
                )
                for name, m in data["metrics"].items()
            }
            if not metrics:
                raise ValueError("no metrics")
            return cls(
                passed=data["passed"] is True,
                dtype=str(data["dtype"]),
                tolerance=tolerance,
                recipe=str(data["recipe"]),
                num_pairs=int(data["num_pairs"]),
                num_groups=int(data["num_groups"]),
                metrics=metrics,
                reasons=[str(r) for r in data.get("reasons") or []],
                allowances=[str(a) for a in data.get("allowances") or []],
                notes=[str(n) for n in data.get("notes") or []],
                tokenization_gap=_gap_from_json(data.get("tokenization_gap")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadInput(
                f"{path} is not a parity report written by reranker-seqcls ({exc!r}): run "
                "`reranker-seqcls check` again"
            ) from None

    @property
    def verdict(self) -> str:
        if not self.passed:
            return "FAIL"
        return "PASS (with allowances)" if self.allowances else "PASS"

    @property
    def max_abs_diff(self) -> float:
        values = [m.max_abs_logit for m in self.metrics.values() if m.max_abs_logit is not None]
        return max(values) if values else 0.0

    @property
    def spearman(self) -> float:
        return min(m.spearman for m in self.metrics.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "dtype": self.dtype,
            "tolerance": asdict(self.tolerance),
            "recipe": self.recipe,
            "num_pairs": self.num_pairs,
            "num_groups": self.num_groups,
            "max_abs_diff": self.max_abs_diff,
            "spearman": self.spearman,
            "metrics": {k: asdict(v) for k, v in self.metrics.items()},
            "reasons": self.reasons,
            "allowances": self.allowances,
            "notes": self.notes,
            "tokenization_gap": (
                None if self.tokenization_gap is None else asdict(self.tokenization_gap)
            ),
            "scores": self.scores,
        }

    def table(self) -> str:
        """A compact human table."""
        return "\n".join(self.table_rows())

    def table_rows(self) -> list[str]:
        """The rows of :meth:`table`, for a log that prints (and escapes) each on its own."""
        t = self.tolerance
        rows = [
            f"parity: {self.verdict}  ({self.dtype}, recipe {self.recipe}, "
            f"{self.num_pairs} pairs in {self.num_groups} groups)",
            f"  {'path':<24}{'max|Δlogit|':>12}{'max|Δprob|':>12}{'spearman':>10}{'top-1':>8}",
        ]
        for name, m in self.metrics.items():
            logit = "-" if m.max_abs_logit is None else f"{m.max_abs_logit:.2e}"
            rows.append(
                f"  {name:<24}{logit:>12}{m.max_abs_prob:>12.2e}{m.spearman:>10.4f}{m.top1:>8.0%}"
            )
        if (gap := self.tokenization_gap) is not None:
            name = f"one-string ids ({len(gap.pairs)})"
            rows.append(
                f"  {name:<24}{gap.max_abs_logit:>12.2e}{gap.max_abs_prob:>12.2e}{'-':>10}{'-':>8}"
            )
        rows.append(
            f"  {'tolerance':<24}{t.logit:>12.3g}{t.prob:>12.3g}{t.spearman:>10.3f}{t.top1:>8.0%}"
        )
        rows += [f"  note: {note}" for note in self.notes]
        rows += [f"  why: {reason}" for reason in self.reasons]
        rows += [f"  allowed: {allowance}" for allowance in self.allowances]
        return rows

    def markdown(self) -> str:
        return report_markdown_from_json(self.to_json())


def report_markdown_from_json(data: dict[str, Any]) -> str:
    """The report as Markdown (the model card's parity section), from its JSON form."""
    t = data["tolerance"]
    lines = [
        f"**{data['verdict']}** — {data['num_pairs']} (query, document) pairs in "
        f"{data['num_groups']} query groups, computed in `{data['dtype']}`.",
        "",
        "| compared with the original causal LM | max abs Δ logit | max abs Δ probability "
        "| Spearman | top-1 agreement |",
        "|---|---|---|---|---|",
    ]
    for name, m in data["metrics"].items():
        logit = "–" if m["max_abs_logit"] is None else f"{m['max_abs_logit']:.2e}"
        lines.append(
            f"| {name} | {logit} | {m['max_abs_prob']:.2e} | {m['spearman']:.4f} "
            f"| {m['top1']:.0%} |"
        )
    if gap := data.get("tokenization_gap"):
        lines.append(
            f"| converted model, one-string template ids instead of the family's "
            f"({len(gap['pairs'])} of {data['num_pairs']} pairs: tokenization gap) "
            f"| {gap['max_abs_logit']:.2e} | {gap['max_abs_prob']:.2e} | – | – |"
        )
    lines.append(
        f"| tolerance | {t['logit']:.3g} | {t['prob']:.3g} | ≥ {t['spearman']} "
        f"| ≥ {t['top1']:.0%} |"
    )
    lines += [f"\n- Note: {n}" for n in data.get("notes") or []]
    lines += [f"\n- Failed because: {r}" for r in data.get("reasons") or []]
    lines += [f"\n- Allowed: {a}" for a in data.get("allowances") or []]
    return "\n".join(lines)


def _gap_from_json(data: Any) -> TokenizationGap | None:
    """The ``tokenization_gap`` of a report's JSON form (validated: it may be hand-edited)."""
    if data is None:
        return None
    return TokenizationGap(
        pairs=[int(i) for i in data["pairs"]],
        num_pairs=int(data["num_pairs"]),
        merges={str(k): int(v) for k, v in data["merges"].items()},
        max_abs_logit=float(data["max_abs_logit"]),
        max_abs_prob=float(data["max_abs_prob"]),
        consumer_max_abs_prob=float(data["consumer_max_abs_prob"]),
    )


def write_report(report: ParityReport, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------- scoring


def checkpoint_dtype(config: dict[str, Any]) -> str:
    value = config.get("dtype") or config.get("torch_dtype") or "float32"
    value = str(value).removeprefix("torch.")
    return value if value in TOLERANCES else "float32"


def _torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


MAX_BATCH_TOKENS = 2048  # padded positions per batch: bounds activation memory


def _length_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Index batches of similar length, at most ``size`` items and ``MAX_BATCH_TOKENS`` padded
    positions each, so a long document neither pads many short ones nor inflates memory."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for index in order:
        current = batches[-1] if batches else None
        if (
            current is None
            or len(current) >= size
            or (len(current) + 1) * lengths[index] > MAX_BATCH_TOKENS
        ):
            batches.append([index])
        else:
            current.append(index)
    return batches


def left_pad(prompts: list[list[int]], pad_id: int):
    """Left-padded ids, attention mask and position ids (counting real tokens only, so padding
    does not shift positions)."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def reference_scores(
    source: Path, recipe: Recipe, pairs: list[Pair], token_ids: list[int], dtype: str
) -> tuple[list[OfficialPrompt], list[list[float]]]:
    """The family's prompts (pieces and ids) and its score logit(s) from the original causal
    LM."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reranker_seqcls.recipes.prompts import official_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    official = [
        official_prompt(tokenizer, recipe, p.query, p.document, p.instruction) for p in pairs
    ]
    prompts = [o.ids for o in official]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=_torch_dtype(dtype)).eval()
    scores: list[list[float]] = [[] for _ in prompts]
    with torch.inference_mode():
        for batch in _length_batches([len(p) for p in prompts], BATCH_SIZE):
            ids, mask, positions = left_pad([prompts[i] for i in batch], pad_id)
            # logits_to_keep=1: only the last position's vocabulary logits are materialised
            # (all positions would be batch x length x vocab: gigabytes for a long document).
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1
            ).logits
            picked = logits[:, -1, token_ids].float()
            if recipe.method == "from_2_way_softmax":
                # softmax over [false, true] taken at [true] == sigmoid(l_true - l_false)
                picked = (picked[:, 1] - picked[:, 0]).unsqueeze(-1)
            if recipe.scale != 1.0:  # the family's calibration, e.g. zerank-2's l(Yes) / 5
                picked = picked * recipe.scale
            for i, row in zip(batch, picked.tolist(), strict=True):
                scores[i] = row
    del model
    gc.collect()
    return official, scores


@dataclass
class ConvertedScores:
    batched: list[list[float]]  # left-padded batches
    single: list[list[float]]  # one prompt at a time
    config: dict[str, Any]
    problems: list[str]  # loading problems (missing/unexpected weights)
    extra: list[list[float]]  # the ``extra`` prompts, batched
    hidden: list[list[float]]  # the score head's input at the pooled token, one by one


def converted_scores(
    converted: Path, prompts: list[list[int]], dtype: str, extra: list[list[int]] | None = None
) -> ConvertedScores:
    """Classifier logits of ``prompts`` batched (left padding) and one by one, and of ``extra``
    prompts (batched); its config; loading problems; the pooled hidden states."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(converted), dtype=_torch_dtype(dtype), output_loading_info=True
    )
    model.eval()
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing weights {sorted(info['missing_keys'])[:3]} (freshly initialised)")
    if info.get("unexpected_keys"):
        problems.append(f"unexpected weights {sorted(info['unexpected_keys'])[:3]}")
    pad_id = model.config.pad_token_id

    def batched_logits(model: Any, group: list[list[int]]) -> list[list[float]]:
        rows: list[list[float]] = [[] for _ in group]
        for batch in _length_batches([len(p) for p in group], BATCH_SIZE):
            ids, mask, positions = left_pad(
                [group[i] for i in batch], pad_id if pad_id is not None else 0
            )
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            for i, row in zip(batch, out.float().tolist(), strict=True):
                rows[i] = row
        return rows

    hidden: list[list[float]] = []
    single: list[list[float]] = []
    with torch.inference_mode():
        batched = batched_logits(model, prompts)
        extra_rows = batched_logits(model, extra) if extra else []
        head = getattr(model, "score", None)
        hook = (  # one by one, the pooled token is the last: record the head's input there
            head.register_forward_hook(
                lambda _m, inputs, _o: hidden.append(inputs[0][0, -1].float().tolist())
            )
            if isinstance(head, torch.nn.Module)
            else None
        )
        for prompt in prompts:
            ids = torch.tensor([prompt], dtype=torch.long)
            single += model(input_ids=ids).logits.float().tolist()
    if hook is not None:
        hook.remove()
    config = model.config.to_dict()
    del model
    gc.collect()
    return ConvertedScores(batched, single, config, problems, extra_rows, hidden)


def consumer_scores(
    converted: Path, pairs: list[Pair], dtype: str, lengths: list[int] | None = None
) -> list[list[float]]:
    """``CrossEncoder(converted).predict`` on raw text, instruction passed as the prompt.

    ``lengths`` (the prompts' token counts) lets pairs be predicted in batches of similar
    length, as the other two scorings are; sentence-transformers would pad them all together.
    """
    try:
        from sentence_transformers import CrossEncoder
    except ImportError:
        raise BadInput(
            "the check needs sentence-transformers: pip install 'reranker-seqcls[check]'"
        ) from None
    model = CrossEncoder(str(converted), model_kwargs={"dtype": _torch_dtype(dtype)})
    results: list[list[float] | None] = [None] * len(pairs)
    by_instruction: dict[str | None, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_instruction.setdefault(pair.instruction, []).append(index)
    sizes = lengths or [len(p.query) + len(p.document) for p in pairs]
    for instruction, group in by_instruction.items():
        kwargs = {"prompt": instruction} if instruction is not None else {}
        for batch in _length_batches([sizes[i] for i in group], BATCH_SIZE):
            indices = [group[b] for b in batch]
            predicted = model.predict(
                [(pairs[i].query, pairs[i].document) for i in indices],
                batch_size=len(indices),
                show_progress_bar=False,
                convert_to_numpy=True,
                **kwargs,
            )
            for i, value in zip(indices, predicted, strict=True):
                results[i] = [float(v) for v in (value if getattr(value, "ndim", 0) else [value])]
    del model
    gc.collect()
    return [r if r is not None else [] for r in results]


@dataclass
class ConsumerPrompts:
    """What sentence-transformers renders for each pair from the converted directory."""

    tokenizer: Any  # the converted directory's tokenizer
    texts: list[str | None]  # None: the template cannot render that pair
    ids: list[list[int]]


def consumer_prompts(converted: Path, pairs: list[Pair]) -> ConsumerPrompts | None:
    """The text and ids sentence-transformers builds for each pair from the converted
    directory's files (its chat template and template variables); None when it scores raw text
    instead, i.e. the directory declares no ``message`` modality or has no chat template."""
    from transformers import AutoTokenizer

    from reranker_seqcls.recipes.render import render_scoring_prompt

    st_config = converted / ST_MODULE_CONFIG_FILE
    loaded = json.loads(st_config.read_text()) if st_config.is_file() else {}
    if "message" not in (loaded.get("modality_config") or {}):
        return None
    variables = (loaded.get("processing_kwargs") or {}).get("chat_template") or {}
    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    if not getattr(tokenizer, "chat_template", None):
        return None
    result = ConsumerPrompts(tokenizer, [], [])
    for pair in pairs:
        try:
            text = render_scoring_prompt(
                None, pair.query, pair.document, pair.instruction, tokenizer=tokenizer,
                structured=True, **variables,
            )  # fmt: skip
        except BadInput:
            result.texts.append(None)
            result.ids.append([])
            continue
        result.texts.append(text)
        result.ids.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return result


# Relative rounding of one value stored in each dtype (half an ulp).
_STORAGE_EPS = {"F32": 2.0**-24, "F64": 2.0**-53, "BF16": 2.0**-9, "F16": 2.0**-11}


@dataclass(frozen=True)
class HeadCheck:
    problem: str | None  # why score.weight is not the recipe's rows of the source head
    dtype: str = "F32"  # score.weight's storage dtype
    rounding: tuple[tuple[float, ...], ...] = ()  # stored - exact score.weight, per row

    def logit_shift(self, hidden: list[list[float]]) -> float:
        """How far the storage rounding alone moves a logit on these pooled hidden states:
        max over prompts and rows of |δW·h|. The exact score would be W·h; the stored head
        gives (W + δW)·h."""
        return max(
            (abs(sum(d * x for d, x in zip(row, h, strict=True))) for h in hidden
             for row in self.rounding),
            default=0.0,
        )  # fmt: skip


def head_check(
    source: Path,
    converted: Path,
    token_ids: list[int],
    method: str,
    config: dict[str, Any],
    recipe: Recipe | None = None,
) -> HeadCheck:
    """Compare the converted score.weight with the recipe's rows of the source head, times the
    recipe's scale and the source's own logit scaling, exactly (up to the storage dtype's
    rounding): independent of any compute-dtype noise. A mismatch is explained when it can be
    (swapped tokens, a missing or wrong scale, another token such as a different case). Also
    measures that rounding, which the numeric tolerance must allow for."""
    from reranker_seqcls.convert.head import SCORE_NAME, compute_score, head_tensor
    from reranker_seqcls.convert.rules import logit_factor
    from reranker_seqcls.errors import SeqClsError
    from reranker_seqcls.safetensors_io.checkpoint import Checkpoint

    try:
        src = Checkpoint(source)
        dst = Checkpoint(converted)
    except SeqClsError:
        return HeadCheck(None)  # a pickle-only source: the scores below still judge it
    if SCORE_NAME not in dst:
        return HeadCheck("the converted checkpoint has no score.weight: convert again")
    factor = logit_factor(config)
    scale = (recipe.scale if recipe is not None else 1.0) * factor
    head, _ = head_tensor(src, config, set(src.location))
    expected, _ = compute_score(src, head, token_ids, method, scale)
    info = dst.tensor(SCORE_NAME)
    shape = (len(expected), len(expected[0]))
    if tuple(info.shape) != shape:
        return HeadCheck(
            f"score.weight has shape {list(info.shape)}, the recipe gives {list(shape)}: "
            "convert again with the right --method/--tokens",
            info.dtype,
        )
    stored = dst.read_rows(SCORE_NAME, range(shape[0]))
    eps = 2 * _STORAGE_EPS.get(info.dtype, 2.0**-9)

    def close(candidate: list[list[float]]) -> bool:
        pairs = [(s, e) for srow, erow in zip(stored, candidate, strict=True)
                 for s, e in zip(srow, erow, strict=True)]  # fmt: skip
        bound = eps * (max(abs(e) for _, e in pairs) or 1.0)
        return max(abs(s - e) for s, e in pairs) <= bound

    if close(expected):
        rounding = tuple(
            tuple(s - e for s, e in zip(srow, erow, strict=True))
            for srow, erow in zip(stored, expected, strict=True)
        )
        return HeadCheck(None, info.dtype, rounding)
    if close([[-v for v in row] for row in expected]):
        return HeadCheck(
            "score.weight is the negation of W[true] - W[false]: the true/false classifier "
            "tokens are swapped; give --tokens as [false, true]",
            info.dtype,
        )
    how = f"--preset {recipe.name}" if recipe is not None and recipe.is_preset else "--scale"
    if scale != factor and close(compute_score(src, head, token_ids, method, factor)[0]):
        official = recipe.score_formula if recipe is not None else ""
        formula = f" (official score {official})" if official else ""
        return HeadCheck(
            f"score.weight lacks the recipe's scale {scale / factor:g}{formula}: the scale is "
            f"missing; convert again with {how}",
            info.dtype,
        )
    explained = _other_token(source, src, head, stored, token_ids, method, scale, close)
    if explained is not None:
        return HeadCheck(explained, info.dtype)
    ratio = _constant_ratio(stored, expected)
    if ratio is not None:
        return HeadCheck(
            f"score.weight is the recipe's head times {ratio:.4g}: the scale is wrong (the "
            f"recipe's is {scale:g}); convert again with {how}",
            info.dtype,
        )
    worst = max(abs(s - e) for srow, erow in zip(stored, expected, strict=True)
                for s, e in zip(srow, erow, strict=True))  # fmt: skip
    return HeadCheck(
        f"score.weight differs from the source head rows of the recipe's tokens (ids "
        f"{token_ids}) by up to {worst:.3g}: convert again "
        "with the right --preset or --tokens/--method",
        info.dtype,
    )


def _other_token(
    source: Path,
    src: Any,
    head: str,
    stored: list[list[float]],
    token_ids: list[int],
    method: str,
    scale: float,
    close: Callable[[list[list[float]]], bool],
) -> str | None:
    """Which other vocabulary entry the stored head belongs to, trying case and space variants
    of the recipe's tokens (with and without the scale)."""
    from reranker_seqcls.convert.head import compute_score
    from reranker_seqcls.convert.tokens import TokenizerFiles
    from reranker_seqcls.errors import SeqClsError

    try:
        vocab = TokenizerFiles(source)
    except SeqClsError:
        return None
    rows = src.tensor(head).shape[0]
    for position, token_id in enumerate(token_ids):
        piece = vocab.piece(token_id) or ""
        bare = piece.lstrip("Ġ▁ ")
        variants = {bare.lower(), bare.upper(), bare.capitalize(), bare.swapcase(), bare,
                    f"Ġ{bare}", f"▁{bare}", f" {bare}"} - {piece}  # fmt: skip
        for variant in sorted(variants):
            other = vocab.entry_id(variant)
            if other is None or other == token_id or other >= rows:
                continue
            ids = [*token_ids[:position], other, *token_ids[position + 1 :]]
            for factor in {scale, 1.0}:
                if close(compute_score(src, head, ids, method, factor)[0]):
                    case = (
                        ": the token's case differs"
                        if variant.lower() == piece.lower()
                        else ": a different token"
                    )
                    unscaled = "" if factor == scale else ", and the scale is missing too"
                    return (
                        f"score.weight holds the row of {variant!r} (id {other}) where the recipe "
                        f"scores {piece!r} (id {token_id}){case}{unscaled}; convert again with "
                        "the family's preset or the exact token"
                    )
    return None


def _constant_ratio(stored: list[list[float]], expected: list[list[float]]) -> float | None:
    """``k`` when ``stored`` is ``k * expected`` for one constant (to 1e-3 relative)."""
    pairs = [(s, e) for srow, erow in zip(stored, expected, strict=True)
             for s, e in zip(srow, erow, strict=True) if abs(e) > 1e-12]  # fmt: skip
    if not pairs:
        return None
    ratio = sum(s * e for s, e in pairs) / sum(e * e for _, e in pairs)
    if ratio == 0 or any(abs(s - ratio * e) > 1e-3 * abs(ratio * e) + 1e-6 for s, e in pairs):
        return None
    return ratio


# --------------------------------------------------------------------------- metrics


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = _ranks(a), _ranks(b)
    mean_a, mean_b = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(ra, rb, strict=True))
    var_a = sum((x - mean_a) ** 2 for x in ra)
    var_b = sum((y - mean_b) ** 2 for y in rb)
    if var_a == 0 or var_b == 0:
        return 1.0 if ra == rb else 0.0
    return cov / math.sqrt(var_a * var_b)


def _top1(groups: list[str], reference: list[float], other: list[float]) -> float:
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    multi = [idx for idx in members.values() if len(idx) > 1]
    if not multi:
        return 1.0
    agree = sum(
        max(idx, key=lambda i: reference[i]) == max(idx, key=lambda i: other[i]) for idx in multi
    )
    return agree / len(multi)


def _primary(rows: list[list[float]]) -> list[float]:
    """The ranking score: the only label, or the last one (the 'true' token by convention)."""
    return [row[-1] for row in rows]


def _path_metrics(
    groups: list[str], reference: list[list[float]], other: list[list[float]], *, probs: bool
) -> PathMetrics:
    ref_probs = [[_sigmoid(v) for v in row] for row in reference]
    if probs:  # `other` already went through the activation (sentence-transformers)
        other_probs, max_logit = other, None
    else:
        other_probs = [[_sigmoid(v) for v in row] for row in other]
        max_logit = max(
            abs(x - y)
            for r, o in zip(reference, other, strict=True)
            for x, y in zip(r, o, strict=True)
        )
    max_prob = max(
        abs(x - y)
        for r, o in zip(ref_probs, other_probs, strict=True)
        for x, y in zip(r, o, strict=True)
    )
    ref_primary, other_primary = _primary(reference), _primary(other)
    return PathMetrics(
        max_abs_logit=max_logit,
        max_abs_prob=max_prob,
        spearman=spearman(ref_primary, other_primary),
        top1=_top1(groups, ref_primary, other_primary),
    )


def _within(m: PathMetrics, t: Tolerance, *, ranks_only: bool = False) -> bool:
    ranks_ok = m.spearman >= t.spearman and m.top1 >= t.top1
    if ranks_only:
        return ranks_ok
    logit_ok = m.max_abs_logit is None or m.max_abs_logit <= t.logit
    values_ok = logit_ok and m.max_abs_prob <= t.prob
    return values_ok and (ranks_ok or t.ranks_follow_values)


# --------------------------------------------------------------------------- the check


@dataclass
class TokenizationGap:
    """Pairs whose one-string prompt has the family's text but tokenizes differently, because
    the tokenizer merges across an official piece boundary (see :mod:`prompt_gap`)."""

    pairs: list[int]  # indices into the checked pairs
    num_pairs: int  # how many pairs were checked
    merges: dict[str, int]  # text of each boundary-spanning token -> how often it occurs
    max_abs_logit: float  # converted model, template's ids vs the family's ids
    max_abs_prob: float
    consumer_max_abs_prob: float  # sentence-transformers vs the converted model on its ids

    def summary(self) -> str:
        merges = ", ".join(
            f"{json.dumps(text, ensure_ascii=False)} x{count}"
            for text, count in sorted(self.merges.items(), key=lambda kv: -kv[1])[:6]
        )
        return (
            f"{len(self.pairs)} of {self.num_pairs} pairs render the family's exact text but "
            f"tokenize differently as one string (tokens across the family's piece "
            f"boundaries: {merges}); "
            f"fed those ids instead of the family's, the converted model moves by up to "
            f"{self.max_abs_logit:.3g} logit / {self.max_abs_prob:.3g} probability"
        )


def check_parity(
    source: Path,
    converted: Path,
    recipe: Recipe,
    pairs: list[Pair],
    *,
    token_ids: list[int],
    dtype: str | None = None,
    allow_softcapping: bool = False,
    vllm_python: str | Path | None = None,
    log: Log,
) -> ParityReport:
    """Score ``pairs`` three ways (four with vLLM, see :mod:`vllm_consumer`) and judge the
    converted checkpoint against the original."""
    from reranker_seqcls.check.prompt_gap import compare_prompt

    source_config = json.loads((source / CONFIG_FILE).read_text())
    dtype = dtype or checkpoint_dtype(source_config)
    if dtype not in TOLERANCES:
        raise BadInput(f"--dtype {dtype} is not supported: use one of {', '.join(TOLERANCES)}")
    tolerance = TOLERANCES[dtype]
    groups = [p.group or p.query for p in pairs]
    from reranker_seqcls.check.vllm import add_vllm_row, locate_vllm_python

    vllm = locate_vllm_python(vllm_python)  # before any scoring: a bad path fails at once

    log(f"parity: scoring {len(pairs)} pairs with the original causal LM ({dtype})")
    official, reference = reference_scores(source, recipe, pairs, token_ids, dtype)
    prompts = [o.ids for o in official]
    rendered = consumer_prompts(converted, pairs)
    comparisons = (
        None
        if rendered is None
        else [
            compare_prompt(rendered.tokenizer, o, text, ids) if text is not None else None
            for o, text, ids in zip(official, rendered.texts, rendered.ids, strict=True)
        ]
    )
    merged = [i for i, c in enumerate(comparisons or []) if c is not None and c.kind == "merged"]
    log("parity: scoring the converted classifier (batched and one by one)")
    scored = converted_scores(
        converted, prompts, dtype, [rendered.ids[i] for i in merged] if rendered else None
    )
    batched, single = scored.batched, scored.single
    log("parity: scoring through sentence-transformers CrossEncoder")
    consumer = consumer_scores(converted, pairs, dtype, [len(p) for p in prompts])

    num_labels = len(reference[0])
    if any(len(row) != num_labels for row in batched):
        report = ParityReport(
            False, dtype, tolerance, recipe.name, len(pairs), len(set(groups)), {}
        )
        report.reasons.append(
            f"the converted model has {len(batched[0])} label(s), the recipe gives {num_labels}: "
            "convert again with the right --method/--tokens"
        )
        return report

    # Several labels, or an Identity activation: CrossEncoder returns logits, not probabilities.
    probs = num_labels == 1 and not _serves_raw_logits(converted)
    metrics = {
        "converted (batched)": _path_metrics(groups, reference, batched, probs=False),
        "converted (one by one)": _path_metrics(groups, reference, single, probs=False),
        "sentence-transformers": _path_metrics(groups, reference, consumer, probs=probs),
    }
    # What a one-string consumer can reproduce: the family's score, except on the merged pairs,
    # where it is the converted model's score on the consumer's own ids.
    template_scores = list(reference)
    for i, row in zip(merged, scored.extra, strict=True):
        template_scores[i] = row
    gap = None
    if merged:
        on_merged = _path_metrics(
            [groups[i] for i in merged], [batched[i] for i in merged], scored.extra, probs=False
        )
        exact = _path_metrics(
            [groups[i] for i in merged], scored.extra, [consumer[i] for i in merged], probs=probs
        )
        counts: dict[str, int] = {}
        for i in merged:
            for text in _merges(comparisons, i):
                counts[text] = counts.get(text, 0) + 1
        gap = TokenizationGap(
            pairs=merged,
            num_pairs=len(pairs),
            merges=counts,
            max_abs_logit=on_merged.max_abs_logit or 0.0,
            max_abs_prob=on_merged.max_abs_prob,
            consumer_max_abs_prob=exact.max_abs_prob,
        )

    head = head_check(source, converted, token_ids, recipe.method, source_config, recipe)
    report = ParityReport(
        passed=True,
        dtype=dtype,
        tolerance=_with_storage(tolerance, head.logit_shift(scored.hidden)),
        recipe=recipe.name,
        num_pairs=len(pairs),
        num_groups=len(set(groups)),
        metrics=metrics,
    )
    report.tokenization_gap = gap
    report.one_string_reference = template_scores
    if report.tolerance != tolerance:
        bound = report.tolerance.logit - tolerance.logit
        report.notes.append(
            f"the tolerance includes {bound:.2g} logit ({bound / 4:.2g} probability) for "
            f"score.weight stored in {head.dtype}: the most its rounding δW alone moves a "
            f"logit on these pairs (max |δW·h| over the pooled hidden states h); rank swaps "
            f"between pairs closer than the bound are accepted"
        )
    report.scores = [
        {
            "group": groups[i],
            "query": pairs[i].query[:80],
            "document": pairs[i].document[:80],
            "instruction": pairs[i].instruction,
            "reference": reference[i],
            "converted_batched": batched[i],
            "converted_single": single[i],
            "sentence_transformers": consumer[i],
        }
        for i in range(len(pairs))
    ]
    for i, row in zip(merged, scored.extra, strict=True):
        report.scores[i]["converted_template_ids"] = row
        report.scores[i]["merged_tokens"] = list(_merges(comparisons, i))
    in_place = rendered is not None and rendered.tokenizer.chat_template == recipe.template
    structural = [
        head.problem,
        _template_mismatch(comparisons, rendered, official, in_place=in_place),
    ]
    report.reasons += [r for r in structural if r is not None]
    consumer_exact = _path_metrics(groups, template_scores, consumer, probs=probs)
    _judge(report, source_config, scored, prompts, reference, consumer_exact, allow_softcapping)
    add_vllm_row(report, converted, pairs, prompts, reference, vllm, log)
    return report


def _merges(comparisons: list[PromptComparison | None] | None, i: int) -> list[str]:
    """The merged-token texts of pair ``i``, which the caller knows was sorted as merged."""
    comparison = comparisons[i] if comparisons is not None else None
    if comparison is None:
        raise AssertionError(f"pair {i} has no prompt comparison")
    return list(comparison.merges)


def _serves_raw_logits(converted: Path) -> bool:
    """Whether the converted directory's sentence-transformers activation is Identity."""
    from reranker_seqcls.convert.consumer_files import IDENTITY, ST_MODEL_CONFIG_FILE

    path = converted / ST_MODEL_CONFIG_FILE
    try:
        loaded = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except ValueError:
        return False
    return isinstance(loaded, dict) and loaded.get("activation_fn") == IDENTITY


def _with_storage(tolerance: Tolerance, bound: float) -> Tolerance:
    """The compute dtype's tolerance plus ``bound``, what the score head's storage rounding alone
    moves a logit by (a bf16-stored head computed in float32 moves it by ~1e-2, not ~1e-6)."""
    if bound < 0.05 * tolerance.logit:  # float32 storage: negligible next to summation order
        return tolerance
    return replace(
        tolerance,
        logit=tolerance.logit + bound,
        prob=tolerance.prob + bound / 4,
        ranks_follow_values=True,
    )


def _judge(
    report: ParityReport,
    source_config: dict[str, Any],
    scored: ConvertedScores,
    prompts: list[list[int]],
    reference: list[list[float]],
    consumer_exact: PathMetrics,
    allow_softcapping: bool,
) -> None:
    """Add the numeric verdict to the structural reasons already in ``report.reasons``.

    ``consumer_exact`` compares sentence-transformers with what a one-string consumer can give:
    the family's score, or on pairs with a tokenization gap the converted model's score on the
    consumer's own ids.
    """
    t = report.tolerance
    reasons = report.reasons
    structural_failure = bool(reasons)
    reasons += [f"the converted checkpoint loads with {p}: convert again" for p in scored.problems]

    conv_ok = all(
        _within(report.metrics[name], t)
        for name in ("converted (batched)", "converted (one by one)")
    )
    from reranker_seqcls.convert.rules import config_value

    softcap = config_value(source_config, "final_logit_softcapping")
    if not conv_ok and not structural_failure:
        cause = _converted_cause(scored.config, prompts, reference, scored.batched,
                                 scored.single, t.logit)  # fmt: skip
        if softcap is not None and cause is None:
            worst = report.metrics["converted (one by one)"]
            message = (
                f"the source applies final_logit_softcapping={softcap} (tanh), which a linear "
                f"score head cannot reproduce: max |Δ logit| {worst.max_abs_logit:.3g}"
            )
            ranks_ok = all(
                _within(report.metrics[n], t, ranks_only=True)
                for n in ("converted (batched)", "converted (one by one)")
            )
            if allow_softcapping and ranks_ok:
                report.allowances.append(
                    message + "; rankings agree and --allow-softcapping is set"
                )
            elif allow_softcapping:
                reasons.append(message + ", and the rankings differ too")
            else:
                reasons.append(message + "; pass --allow-softcapping to accept matching rankings")
        else:
            worst = max(
                (report.metrics[n] for n in ("converted (batched)", "converted (one by one)")),
                key=lambda m: m.max_abs_logit or 0.0,
            )
            reasons.append(
                cause
                or f"converted scores differ from the original by up to {worst.max_abs_logit:.3g} "
                f"(tolerance {t.logit:g} for {report.dtype}): the score head does not match the "
                "recipe; convert again with the right --preset or --tokens/--method"
            )

    consumer_ok = _within(consumer_exact, t) or (
        bool(report.allowances) and _within(consumer_exact, t, ranks_only=True)
    )
    gap = report.tokenization_gap
    if not consumer_ok and conv_ok and not structural_failure:
        reasons.append(
            f"sentence-transformers scores differ (max |Δ prob| {consumer_exact.max_abs_prob:.3g}, "
            f"tolerance {t.prob:g}) although its prompt has the family's text: check the "
            "activation in config_sentence_transformers.json"
        )
    elif gap is not None and consumer_ok and not structural_failure:
        report.allowances.append(
            gap.summary()
            + f". Inherent to every consumer that tokenizes one rendered string (vLLM, "
            f"sentence-transformers, apply_chat_template), not to the conversion: sentence-"
            f"transformers reproduces the converted model on its own ids within "
            f"{gap.consumer_max_abs_prob:.2g} probability (bound: the {report.dtype} tolerance "
            f"{t.prob:g})"
        )
    report.passed = not reasons


def _converted_cause(
    config: dict[str, Any],
    prompts: list[list[int]],
    reference: list[list[float]],
    batched: list[list[float]],
    single: list[list[float]],
    tolerance: float,
) -> str | None:
    pad_id = config.get("pad_token_id")
    ending_in_pad = [p for p in prompts if p and p[-1] == pad_id]
    if ending_in_pad:
        return (
            f"pad_token_id {pad_id} in config.json is the last token of {len(ending_in_pad)} "
            "prompt(s), so the classifier pools an earlier token: set pad_token_id to the "
            "tokenizer's pad token"
        )
    ref = _primary(reference)
    one = _primary(single)
    loose = 1e-2 + 0.02 * max(map(abs, ref))
    if max(abs(r + s) for r, s in zip(ref, one, strict=True)) <= loose:
        return (
            "converted scores are the negation of the original's: the true/false classifier "
            "tokens are swapped; give --tokens as [false, true]"
        )
    ratio = _constant_ratio([one], [ref])
    if ratio is not None and abs(ratio - 1.0) > 0.05:
        return (
            f"converted scores are the original's times {ratio:.4g}: the score scale is missing or "
            "wrong; convert again with the family's preset or the right --scale"
        )
    single_error = max(abs(r - s) for r, s in zip(ref, one, strict=True))
    batched_error = max(abs(r - b) for r, b in zip(ref, _primary(batched), strict=True))
    # Padding is to blame only when batching is what breaks: one by one close, batched not.
    if single_error <= max(tolerance, loose) and batched_error > max(tolerance, 2 * single_error):
        return (
            f"scores match one by one but not batched with left padding: pad_token_id {pad_id} "
            "in config.json is wrong (the classifier pools the rightmost non-pad token)"
        )
    return None


def _template_mismatch(
    comparisons: list[PromptComparison | None] | None,
    rendered: ConsumerPrompts | None,
    official: list[OfficialPrompt],
    *,
    in_place: bool,
) -> str | None:
    """Why the prompt sentence-transformers builds is not the family's, if it is not.

    A tokenization gap (same text, merged across a piece boundary) is not a mismatch. The advice
    never asks to restore a template that is already in place."""
    if comparisons is None or rendered is None:
        return (
            "sentence-transformers finds no chat template in the converted directory, so it "
            "scores raw text: convert with a preset or --template"
        )
    fix = (
        "the recipe's own template renders it, so this is a bug in the recipe: report it"
        if in_place
        else "convert again to restore the recipe's template"
    )
    saved = "the recipe's template" if in_place else "the chat template saved with the checkpoint"
    for comparison, ids, prompt in zip(comparisons, rendered.ids, official, strict=True):
        if comparison is None:
            return f"{saved} cannot render a query/document pair: {fix}"
        if comparison.kind in ("same", "merged"):
            continue
        reference_ids = prompt.ids
        if reference_ids and reference_ids[1:] == ids:
            return (
                "the prompt sentence-transformers builds lacks the BOS token the family starts "
                f"with (id {reference_ids[0]}): the template or sentence_bert_config.json drops it"
            )
        if comparison.kind == "text":
            return (
                f"{saved} renders a different prompt than the family's: the text differs at "
                f"character {comparison.offset} of {len(prompt.text)} (family: "
                f"'{comparison.family}', template: '{comparison.consumer}'): {fix}"
            )
        return (
            "the converted directory's tokenizer splits the family's prompt text differently "
            f"from the source's, away from any piece boundary, at character {comparison.offset} "
            f"('{comparison.consumer}'): copy the source's tokenizer files into it"
        )
    return None
