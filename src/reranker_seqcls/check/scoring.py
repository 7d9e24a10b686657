"""The scorings of the parity check, one model resident at a time.

- **reference**: the source loaded with ``AutoModelForCausalLM``, fed the family's official
  prompt ids (:func:`reranker_seqcls.recipes.prompts.official_prompt`), scored with the family's
  math at the last token;
- **converted**: the output loaded with ``AutoModelForSequenceClassification``, fed the same
  ids, batched with left padding and one by one;
- **consumer**: ``CrossEncoder(converted).predict(pairs)`` on the raw text, and the prompt text
  and ids sentence-transformers renders for each pair from the converted directory.

The only module of :mod:`reranker_seqcls.check` that imports torch (and transformers, which
imports it), and only inside functions, so importing the package (and ``convert``) stays
torch-free.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.check.metrics import Scores
from reranker_seqcls.check.pairs import Pair
from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.methods import scoring_method
from reranker_seqcls.recipes.recipe import Recipe

if TYPE_CHECKING:
    import torch

    from reranker_seqcls.recipes.prompt_pieces import OfficialPrompt

BATCH_SIZE = 8
MAX_BATCH_TOKENS = 2048  # padded positions per batch: bounds activation memory


def length_batches(lengths: list[int], size: int = BATCH_SIZE) -> list[list[int]]:
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


def left_pad(
    prompts: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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


def torch_dtype(name: str) -> torch.dtype:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def refuse_mismatched(info: dict[str, Any], directory: Path) -> None:
    """A checkpoint tensor whose shape is not the one its config gives (transformers, told to
    ignore mismatched sizes, lists them instead of raising a multi-line error)."""
    mismatched = sorted(info.get("mismatched_keys") or (), key=lambda m: str(m[0]))
    if mismatched:
        name, stored, expected = mismatched[0]
        raise BadInput(
            f"{name} in {directory.name} has shape {list(stored)}, config.json gives "
            f"{list(expected)}: the checkpoint does not match its config, re-download it"
        )


def reference_scores(
    source: Path, recipe: Recipe, pairs: list[Pair], token_ids: list[int], dtype: str
) -> tuple[list[OfficialPrompt], Scores]:
    """The family's prompts (pieces and ids) and its score logit(s) from the original causal
    LM."""
    import torch
    from transformers import AutoModelForCausalLM

    from reranker_seqcls.check.weight_reads import check_prompt_positions
    from reranker_seqcls.convert.lengths import position_limit
    from reranker_seqcls.recipes.prompts import official_prompt
    from reranker_seqcls.tokenizer_loads import auto_tokenizer

    tokenizer = auto_tokenizer(str(source))
    limit = position_limit(json.loads((source / "config.json").read_text()))
    official = [
        official_prompt(tokenizer, recipe, p.query, p.document, p.instruction, position_limit=limit)
        for p in pairs
    ]
    prompts = [o.ids for o in official]
    check_prompt_positions(source, [len(p) for p in prompts])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores: Scores = [[] for _ in prompts]
    loaded: Any = AutoModelForCausalLM.from_pretrained(
        str(source), dtype=torch_dtype(dtype), output_loading_info=True,
        ignore_mismatched_sizes=True,  # refused below, by name, as one line
    )  # fmt: skip
    model, info = loaded
    refuse_mismatched(info, source)
    model.eval()
    with torch.inference_mode():
        for batch in length_batches([len(p) for p in prompts]):
            ids, mask, positions = left_pad([prompts[i] for i in batch], pad_id)
            # logits_to_keep=1: only the last position's vocabulary logits are materialised
            # (all positions would be batch x length x vocab: gigabytes for a long document).
            logits = model(
                input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1
            ).logits
            picked = recipe_scores(logits[:, -1, token_ids].float(), recipe)
            for i, row in zip(batch, picked.tolist(), strict=True):
                scores[i] = row
    del model  # freed before the next model loads
    gc.collect()
    return official, scores


def recipe_scores(picked: Any, recipe: Recipe) -> Any:
    """The family's score logit(s) from the logits of its tokens (``[n, len(token_ids)]``): its
    method's, times its scale (the family's calibration, e.g. zerank-2's ``l(Yes) / 5``)."""
    return scoring_method(recipe.method).score_logits(picked, recipe.scale)


@dataclass
class ConvertedScores:
    batched: Scores  # left-padded batches
    single: Scores  # one prompt at a time
    pad_token_id: int | None  # the converted config's, which the classifier pools by
    problems: list[str]  # loading problems (missing/unexpected weights)
    extra: Scores  # the ``extra`` prompts, batched
    hidden: list[list[float]]  # the score head's input at the pooled token, one by one


def _batched_logits(model: Any, prompts: list[list[int]], pad_id: int) -> Scores:
    rows: Scores = [[] for _ in prompts]
    for batch in length_batches([len(p) for p in prompts]):
        ids, mask, positions = left_pad([prompts[i] for i in batch], pad_id)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        for i, row in zip(batch, out.float().tolist(), strict=True):
            rows[i] = row
    return rows


def _single_logits(model: Any, prompts: list[list[int]]) -> tuple[Scores, list[list[float]]]:
    """Logits one prompt at a time, and the score head's input at the pooled token (the last,
    without padding)."""
    import torch

    hidden: list[list[float]] = []
    head = getattr(model, "score", None)
    hook = (
        head.register_forward_hook(
            lambda _m, inputs, _o: hidden.append(inputs[0][0, -1].float().tolist())
        )
        if isinstance(head, torch.nn.Module)
        else None
    )
    try:
        single = [
            model(input_ids=torch.tensor([p], dtype=torch.long)).logits.float().tolist()[0]
            for p in prompts
        ]
    finally:
        if hook is not None:
            hook.remove()
    return single, hidden


def converted_scores(
    converted: Path, prompts: list[list[int]], dtype: str, extra: list[list[int]] | None = None
) -> ConvertedScores:
    """Classifier logits of ``prompts`` batched (left padding) and one by one, and of ``extra``
    prompts (batched); its pad token id; loading problems; the pooled hidden states."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(converted), dtype=torch_dtype(dtype), output_loading_info=True,
        ignore_mismatched_sizes=True,  # refused below, by name, as one line
    )  # fmt: skip
    refuse_mismatched(info, converted)
    model.eval()
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing weights {sorted(info['missing_keys'])[:3]} (freshly initialised)")
    if info.get("unexpected_keys"):
        problems.append(f"unexpected weights {sorted(info['unexpected_keys'])[:3]}")
    pad_id = model.config.pad_token_id
    fill = pad_id if pad_id is not None else 0
    with torch.inference_mode():
        batched = _batched_logits(model, prompts, fill)
        extra_rows = _batched_logits(model, extra, fill) if extra else []
        single, hidden = _single_logits(model, prompts)
    del model
    gc.collect()
    return ConvertedScores(batched, single, pad_id, problems, extra_rows, hidden)


def cross_encoder(converted: Path, dtype: str) -> Any:
    """``CrossEncoder(converted)``, as a user loads it: its tokenizer is the one
    :func:`consumer_prompts` renders with, and its ``predict`` is :func:`consumer_scores`."""
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:
        raise BadInput(
            "the check needs sentence-transformers: pip install 'reranker-seqcls[check]'"
        ) from exc
    return CrossEncoder(str(converted), model_kwargs={"dtype": torch_dtype(dtype)})


def consumer_scores(model: Any, pairs: list[Pair], lengths: list[int] | None = None) -> Scores:
    """``CrossEncoder(converted).predict`` (``model``, :func:`cross_encoder`) on raw text,
    instruction passed as the prompt.

    ``lengths`` (the prompts' token counts) lets pairs be predicted in batches of similar
    length, as the other two scorings are; sentence-transformers would pad them all together.
    """
    results: list[list[float]] = [[] for _ in pairs]
    by_instruction: dict[str | None, list[int]] = {}
    for index, pair in enumerate(pairs):
        by_instruction.setdefault(pair.instruction, []).append(index)
    sizes = lengths or [len(p.query) + len(p.document) for p in pairs]
    for instruction, group in by_instruction.items():
        kwargs = {"prompt": instruction} if instruction is not None else {}
        for batch in length_batches([sizes[i] for i in group]):
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
    return results


@dataclass
class ConsumerPrompts:
    """What sentence-transformers renders for each pair from the converted directory."""

    tokenizer: Any  # the converted directory's tokenizer
    texts: list[str | None]  # None: the template cannot render that pair
    ids: list[list[int]]


def consumer_prompts(converted: Path, pairs: list[Pair], tokenizer: Any) -> ConsumerPrompts | None:
    """The text and ids sentence-transformers builds for each pair from the converted
    directory's files (its chat template and template variables), with ``tokenizer``: the one
    ``CrossEncoder(converted)`` loaded (:func:`cross_encoder`; one load of the converted
    tokenizer, not two). None when it scores raw text instead, i.e. the directory declares no
    ``message`` modality or has no chat template."""
    from reranker_seqcls.names import ST_MODULE_CONFIG_FILE
    from reranker_seqcls.recipes.render import render_scoring_prompt

    st_config = converted / ST_MODULE_CONFIG_FILE
    loaded = json.loads(st_config.read_text()) if st_config.is_file() else {}
    if "message" not in (loaded.get("modality_config") or {}):
        return None
    variables = (loaded.get("processing_kwargs") or {}).get("chat_template") or {}
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
