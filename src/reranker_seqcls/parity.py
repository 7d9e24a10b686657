"""The parity check: original causal LM vs converted classifier vs sentence-transformers.

Three scorings of the same (query, document) pairs, one model resident at a time:

- **reference** — the source loaded with ``AutoModelForCausalLM``, fed the family's official
  prompt ids (:func:`prompts.build_prompt_ids`), scored with the family's math at the last token;
- **converted** — the output loaded with ``AutoModelForSequenceClassification``, fed the same ids,
  batched with left padding and one by one;
- **consumer** — ``CrossEncoder(converted).predict(pairs)`` on the raw text, which only matches
  when the template and sentence-transformers files travel with the checkpoint.

The verdict compares logits and probabilities against dtype-dependent tolerances and rankings
(Spearman, top-1 per query group). A failure names its most likely cause.
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BadInput
from .pairs import Pair
from .recipes import Recipe

Log = Callable[[str], None]
BATCH_SIZE = 8


@dataclass(frozen=True)
class Tolerance:
    logit: float  # max |Δ| of the score logit
    prob: float  # max |Δ| after the activation (sigmoid)
    spearman: float  # minimum rank correlation with the reference
    top1: float  # minimum fraction of query groups whose best document agrees


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
    scores: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. a consumer path that was skipped

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str = "parity report") -> ParityReport:
        """The report :meth:`to_json` wrote (``parity_report.json``), for its Markdown; the
        per-pair scores are not read back. Exit 2 when ``data`` is no such report."""
        try:
            tolerance = Tolerance(**{k: float(v) for k, v in data["tolerance"].items()})
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
        rows.append(
            f"  {'tolerance':<24}{t.logit:>12.0e}{t.prob:>12.0e}{t.spearman:>10.3f}{t.top1:>8.0%}"
        )
        rows += [f"  why: {reason}" for reason in self.reasons]
        rows += [f"  allowed: {allowance}" for allowance in self.allowances]
        rows += [f"  note: {note}" for note in self.notes]
        return rows

    def markdown(self) -> str:
        t = self.tolerance
        lines = [
            f"**{self.verdict}** — {self.num_pairs} (query, document) pairs in {self.num_groups} "
            f"query groups, computed in `{self.dtype}`.",
            "",
            "| compared with the original causal LM | max abs Δ logit | max abs Δ probability "
            "| Spearman | top-1 agreement |",
            "|---|---|---|---|---|",
        ]
        for name, m in self.metrics.items():
            logit = "–" if m.max_abs_logit is None else f"{m.max_abs_logit:.2e}"
            lines.append(
                f"| {name} | {logit} | {m.max_abs_prob:.2e} | {m.spearman:.4f} | {m.top1:.0%} |"
            )
        lines.append(
            f"| tolerance | {t.logit:.0e} | {t.prob:.0e} | ≥ {t.spearman} | ≥ {t.top1:.0%} |"
        )
        lines += [f"\n- Failed because: {r}" for r in self.reasons]
        lines += [f"\n- Allowed: {a}" for a in self.allowances]
        lines += [f"\n- Note: {n}" for n in self.notes]
        return "\n".join(lines)


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
) -> tuple[list[list[int]], list[list[float]]]:
    """Prompt ids and the family's score logit(s) from the original causal LM."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .prompts import build_prompt_ids

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    prompts = [
        build_prompt_ids(tokenizer, recipe, p.query, p.document, p.instruction) for p in pairs
    ]
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
    return prompts, scores


def converted_scores(
    converted: Path, prompts: list[list[int]], dtype: str
) -> tuple[list[list[float]], list[list[float]], dict[str, Any], list[str]]:
    """Classifier logits batched (left padding) and one by one; its config; loading problems."""
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
    batched: list[list[float]] = [[] for _ in prompts]
    single: list[list[float]] = []
    with torch.inference_mode():
        for batch in _length_batches([len(p) for p in prompts], BATCH_SIZE):
            ids, mask, positions = left_pad(
                [prompts[i] for i in batch], pad_id if pad_id is not None else 0
            )
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
            for i, row in zip(batch, out.float().tolist(), strict=True):
                batched[i] = row
        for prompt in prompts:
            ids = torch.tensor([prompt], dtype=torch.long)
            single += model(input_ids=ids).logits.float().tolist()
    config = model.config.to_dict()
    del model
    gc.collect()
    return batched, single, config, problems


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


def consumer_prompt_ids(converted: Path, pairs: list[Pair]) -> list[list[int]] | None:
    """The ids sentence-transformers builds for each pair from the converted directory's files
    (its chat template and template variables); None when it scores raw text instead, i.e. the
    directory declares no ``message`` modality or has no chat template."""
    from transformers import AutoTokenizer

    from .prompts import scoring_messages

    st_config = converted / "sentence_bert_config.json"
    loaded = json.loads(st_config.read_text()) if st_config.is_file() else {}
    if "message" not in (loaded.get("modality_config") or {}):
        return None
    variables = (loaded.get("processing_kwargs") or {}).get("chat_template") or {}
    tokenizer = AutoTokenizer.from_pretrained(str(converted))
    if not getattr(tokenizer, "chat_template", None):
        return None
    ids = []
    for pair in pairs:
        messages = scoring_messages(pair.query, pair.document, pair.instruction, structured=True)
        try:
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, **variables)
        except Exception:  # jinja raises many types; any of them means "cannot render a pair"
            ids.append([])
            continue
        ids.append(list(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
    return ids


# Relative rounding of one value stored in each dtype (half an ulp).
_STORAGE_EPS = {"F32": 2.0**-24, "F64": 2.0**-53, "BF16": 2.0**-9, "F16": 2.0**-11}


def head_mismatch(
    source: Path,
    converted: Path,
    token_ids: list[int],
    method: str,
    config: dict[str, Any],
    recipe: Recipe | None = None,
) -> str | None:
    """Compare the converted score.weight with the recipe's rows of the source head, times the
    recipe's scale and the source's own logit scaling, exactly (up to the storage dtype's
    rounding): independent of any compute-dtype noise. A mismatch is explained when it can be
    (swapped tokens, a missing or wrong scale, another token such as a different case)."""
    from .checkpoint import Checkpoint
    from .convert import SCORE_NAME, compute_score, head_tensor, logit_factor
    from .errors import SeqClsError

    try:
        src = Checkpoint(source)
        dst = Checkpoint(converted)
    except SeqClsError:
        return None  # a pickle-only source: the scores below still judge the conversion
    if SCORE_NAME not in dst:
        return "the converted checkpoint has no score.weight: convert again"
    factor = logit_factor(config)
    scale = (recipe.scale if recipe is not None else 1.0) * factor
    head, _ = head_tensor(src, config, set(src.location))
    expected, _ = compute_score(src, head, token_ids, method, scale)
    info = dst.tensor(SCORE_NAME)
    shape = (len(expected), len(expected[0]))
    if tuple(info.shape) != shape:
        return (
            f"score.weight has shape {list(info.shape)}, the recipe gives {list(shape)}: "
            "convert again with the right --method/--tokens"
        )
    stored = dst.read_rows(SCORE_NAME, range(shape[0]))
    eps = 2 * _STORAGE_EPS.get(info.dtype, 2.0**-9)

    def close(candidate: list[list[float]]) -> bool:
        pairs = [(s, e) for srow, erow in zip(stored, candidate, strict=True)
                 for s, e in zip(srow, erow, strict=True)]  # fmt: skip
        bound = eps * (max(abs(e) for _, e in pairs) or 1.0)
        return max(abs(s - e) for s, e in pairs) <= bound

    if close(expected):
        return None
    if close([[-v for v in row] for row in expected]):
        return (
            "score.weight is the negation of W[true] - W[false]: the true/false classifier "
            "tokens are swapped; give --tokens as [false, true]"
        )
    how = f"--preset {recipe.name}" if recipe is not None and recipe.is_preset else "--scale"
    if scale != factor and close(compute_score(src, head, token_ids, method, factor)[0]):
        official = recipe.score_formula if recipe is not None else ""
        formula = f" (official score {official})" if official else ""
        return (
            f"score.weight lacks the recipe's scale {scale / factor:g}{formula}: the scale is "
            f"missing; convert again with {how}"
        )
    explained = _other_token(source, src, head, stored, token_ids, method, scale, close)
    if explained is not None:
        return explained
    ratio = _constant_ratio(stored, expected)
    if ratio is not None:
        return (
            f"score.weight is the recipe's head times {ratio:.4g}: the scale is wrong (the "
            f"recipe's is {scale:g}); convert again with {how}"
        )
    worst = max(abs(s - e) for srow, erow in zip(stored, expected, strict=True)
                for s, e in zip(srow, erow, strict=True))  # fmt: skip
    return (
        f"score.weight differs from the source head rows of the recipe's tokens (ids "
        f"{token_ids}) by up to {worst:.3g}: convert again "
        "with the right --preset or --tokens/--method"
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
    from .convert import compute_score
    from .errors import SeqClsError
    from .tokens import TokenizerFiles

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
    return logit_ok and m.max_abs_prob <= t.prob and ranks_ok


# --------------------------------------------------------------------------- the check


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
    source_config = json.loads((source / "config.json").read_text())
    dtype = dtype or checkpoint_dtype(source_config)
    if dtype not in TOLERANCES:
        raise BadInput(f"--dtype {dtype} is not supported: use one of {', '.join(TOLERANCES)}")
    tolerance = TOLERANCES[dtype]
    groups = [p.group or p.query for p in pairs]
    from .vllm_consumer import add_vllm_row, locate_vllm_python

    vllm = locate_vllm_python(vllm_python)  # before any scoring: a bad path fails at once

    log(f"parity: scoring {len(pairs)} pairs with the original causal LM ({dtype})")
    prompts, reference = reference_scores(source, recipe, pairs, token_ids, dtype)
    log("parity: scoring the converted classifier (batched and one by one)")
    batched, single, config, load_problems = converted_scores(converted, prompts, dtype)
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

    metrics = {
        "converted (batched)": _path_metrics(groups, reference, batched, probs=False),
        "converted (one by one)": _path_metrics(groups, reference, single, probs=False),
    }
    if num_labels == 1 and not _serves_raw_logits(converted):
        metrics["sentence-transformers"] = _path_metrics(groups, reference, consumer, probs=True)
    else:  # several labels, or an Identity activation: CrossEncoder returns logits
        metrics["sentence-transformers"] = _path_metrics(groups, reference, consumer, probs=False)

    report = ParityReport(
        passed=True,
        dtype=dtype,
        tolerance=tolerance,
        recipe=recipe.name,
        num_pairs=len(pairs),
        num_groups=len(set(groups)),
        metrics=metrics,
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
    structural = [
        head_mismatch(source, converted, token_ids, recipe.method, source_config, recipe),
        _template_mismatch(consumer_prompt_ids(converted, pairs), prompts),
    ]
    report.reasons += [r for r in structural if r is not None]
    _judge(report, source_config, config, prompts, reference, batched, single, load_problems,
           allow_softcapping)  # fmt: skip
    add_vllm_row(report, converted, pairs, prompts, reference, vllm, log)
    return report


def _serves_raw_logits(converted: Path) -> bool:
    """Whether the converted directory's sentence-transformers activation is Identity."""
    from .consumer_files import IDENTITY, ST_MODEL_CONFIG_FILE

    path = converted / ST_MODEL_CONFIG_FILE
    try:
        loaded = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    except ValueError:
        return False
    return isinstance(loaded, dict) and loaded.get("activation_fn") == IDENTITY


def _judge(
    report: ParityReport,
    source_config: dict[str, Any],
    config: dict[str, Any],
    prompts: list[list[int]],
    reference: list[list[float]],
    batched: list[list[float]],
    single: list[list[float]],
    load_problems: list[str],
    allow_softcapping: bool,
) -> None:
    """Add the numeric verdict to the structural reasons already in ``report.reasons``."""
    t = report.tolerance
    reasons = report.reasons
    structural_failure = bool(reasons)
    reasons += [f"the converted checkpoint loads with {p}: convert again" for p in load_problems]

    conv_ok = all(
        _within(report.metrics[name], t)
        for name in ("converted (batched)", "converted (one by one)")
    )
    from .convert import config_value

    softcap = config_value(source_config, "final_logit_softcapping")
    if not conv_ok and not structural_failure:
        cause = _converted_cause(config, prompts, reference, batched, single)
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

    consumer = report.metrics["sentence-transformers"]
    consumer_ok = _within(consumer, t) or (
        bool(report.allowances) and _within(consumer, t, ranks_only=True)
    )
    if not consumer_ok and conv_ok and not structural_failure:
        reasons.append(
            f"sentence-transformers scores differ (max |Δ prob| {consumer.max_abs_prob:.3g}, "
            f"tolerance {t.prob:g}) although its prompt ids match: check the activation in "
            "config_sentence_transformers.json"
        )
    report.passed = not reasons


def _converted_cause(
    config: dict[str, Any],
    prompts: list[list[int]],
    reference: list[list[float]],
    batched: list[list[float]],
    single: list[list[float]],
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
    if max(abs(r + s) for r, s in zip(ref, one, strict=True)) <= 1e-2 + 0.02 * max(map(abs, ref)):
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
    single_ok = max(abs(r - s) for r, s in zip(ref, one, strict=True)) <= 1e-2 + 0.02 * max(
        map(abs, ref)
    )
    if single_ok:
        return (
            f"scores match one by one but not batched with left padding: pad_token_id {pad_id} "
            "in config.json is wrong (the classifier pools the rightmost non-pad token)"
        )
    return None


def _template_mismatch(consumer: list[list[int]] | None, prompts: list[list[int]]) -> str | None:
    """Why the prompt sentence-transformers builds differs from the family's, if it does."""
    if consumer is None:
        return (
            "sentence-transformers finds no chat template in the converted directory, so it "
            "scores raw text: convert with a preset or --template"
        )
    for consumer_ids, reference_ids in zip(consumer, prompts, strict=True):
        if consumer_ids == reference_ids:
            continue
        if not consumer_ids:
            return (
                "the chat template saved with the checkpoint cannot render a query/document "
                "pair: restore the preset's template"
            )
        if reference_ids and reference_ids[1:] == consumer_ids:
            return (
                "the prompt sentence-transformers builds lacks the BOS token the family starts "
                f"with (id {reference_ids[0]}): the template or sentence_bert_config.json drops it"
            )
        position = next(
            (
                i
                for i, (a, b) in enumerate(zip(reference_ids, consumer_ids, strict=False))
                if a != b
            ),
            min(len(reference_ids), len(consumer_ids)),
        )
        return (
            "the chat template saved with the checkpoint renders a different prompt than the "
            f"family's (first difference at token {position} of {len(reference_ids)}): "
            "restore the preset's template"
        )
    return None
