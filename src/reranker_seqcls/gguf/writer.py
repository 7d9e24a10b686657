"""Write a GGUF of a converted Qwen3 seq-cls checkpoint that ``llama-server --reranking`` scores
like the original.

What llama.cpp needs, and where it comes from (llama.cpp's source, see ``docs/design.md``):

* ``general.architecture = qwen3`` and its hyperparameters, the backbone tensors under llama.cpp's
  names (``gguf.get_tensor_name_map``), no ``output`` matrix (a classifier does not need one);
* ``qwen3.pooling_type = RANK``: the last token's hidden state goes through ``cls_out``;
* ``cls_out``: llama.cpp applies a **softmax** over ``cls_out``'s outputs for ``qwen3`` and
  returns element 0. The converted checkpoint serves ``sigmoid(w · h)`` (``w`` = ``score.weight``,
  the family's tokens, method and scale folded in), and ``softmax([w · h, 0])[0] =
  sigmoid(w · h)``: the head is written as the two rows ``[w, 0]`` in float32, whatever the type,
  with the labels ``qwen3.classifier.output_labels`` (their count is the row count llama.cpp
  reads). A one-row head would score 1.0 for every pair;
* the scoring prompt as the chat template named ``rerank``: the checkpoint's scoring template
  rendered with the literal placeholders ``{query}`` and ``{document}`` (llama-server replaces
  them, no Jinja) and no instruction, so the family's default instruction is written in;
* the vocabulary (``gpt2`` BPE, pre-tokenizer ``qwen2``), merges, token types (added special
  tokens are control tokens, other added tokens user-defined: both are matched whole when
  llama-server parses the prompt with special tokens) and the special token ids.

Tensors are read one at a time from the shards and written as they are converted: memory stays
at one tensor, whatever the model's size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.gguf.refusal import refuse_gguf_by_config
from reranker_seqcls.gguf.types import GgufType
from reranker_seqcls.names import (
    CHAT_TEMPLATE_FILE,
    CONFIG_FILE,
    INDEX_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
)

if TYPE_CHECKING:
    import numpy as np

    from reranker_seqcls.recipes.recipe import Recipe

SCORE_TENSOR = "score.weight"
# llama.cpp calls the head cls_out; its GGUF name is gguf.TENSOR_NAMES[MODEL_TENSOR.CLS_OUT].
CLS_OUT = "cls.output.weight"
LABELS = ("relevant", "irrelevant")  # softmax([s, 0]): p(relevant) = sigmoid(s)
QUERY, DOCUMENT = "{query}", "{document}"
CHUNK_ELEMENTS = 16 * 1024 * 1024  # values converted at a time (64 MB in float32)
# Quantized blocks hold 32 values along a row: a row of another length stays f16.
BLOCK = 32


@dataclass(frozen=True)
class WrittenGguf:
    path: Path
    gguf_type: str
    bytes: int
    seconds: float
    rerank_template: str


@dataclass(frozen=True)
class _Plan:
    source_name: str  # the checkpoint's tensor name
    name: str  # llama.cpp's
    shape: tuple[int, ...]
    ggml_type: str


def gguf_file_name(stem: str, gguf_type: GgufType) -> str:
    return f"{stem}-{gguf_type.name}.gguf"


def rerank_template(converted: Path, recipe: Recipe) -> str:
    """The ``rerank`` chat template: the checkpoint's scoring prompt with ``{query}`` and
    ``{document}`` left in, the family's default instruction written in."""
    from reranker_seqcls.recipes.render import render_scoring_prompt

    path = converted / CHAT_TEMPLATE_FILE
    template = path.read_text("utf-8") if path.is_file() else recipe.template
    specials = _special_strings(converted)
    rendered = render_scoring_prompt(template, QUERY, DOCUMENT, None, special_tokens=specials)
    for placeholder in (QUERY, DOCUMENT):
        if rendered.count(placeholder) != 1:
            raise BadInput(
                f"--gguf: the scoring template puts {placeholder} {rendered.count(placeholder)} "
                "times into its prompt; llama-server substitutes the query and document as "
                "literal text once each: use a template that writes them unchanged"
            )
    bos = specials.get("bos_token")
    if recipe.prepend_bos and bos and not rendered.startswith(bos):
        rendered = bos + rendered  # llama-server adds no BOS to a rerank template's prompt
    return rendered


def write_gguf(
    converted: Path,
    out: Path,
    gguf_type: GgufType,
    recipe: Recipe,
    *,
    name: str,
    head_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> WrittenGguf:
    """Write ``out`` (atomically: a temporary name, then renamed) from the converted checkpoint.

    ``head_rows`` replaces the ``cls_out`` rows built from ``score.weight`` (tests use it to
    write deliberately wrong heads the check must name)."""
    import gguf
    import numpy as np

    start = time.monotonic()
    config = _read_json(converted / CONFIG_FILE)
    refuse_gguf_by_config(config, name)
    hp = _hyperparameters(config)
    template = rerank_template(converted, recipe)
    tokens, toktypes, merges, special_ids = _vocabulary(converted, hp["vocab_size"])
    shards = _weight_files(converted)
    rows = _head_rows(_read_tensor(shards, SCORE_TENSOR), hp["embedding_length"])
    if head_rows is not None:
        rows = np.ascontiguousarray(head_rows(rows), dtype=np.float32)
    # llama.cpp reads the head's row count from the number of labels
    labels = [*LABELS, *(f"label_{i}" for i in range(len(LABELS), rows.shape[0]))]
    plans = list(_plan(shards, hp["block_count"], gguf_type))

    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(tmp, "qwen3")
    try:
        writer.add_name(name)
        writer.add_file_type(_file_type(gguf, gguf_type))
        writer.add_context_length(hp["context_length"])
        writer.add_embedding_length(hp["embedding_length"])
        writer.add_block_count(hp["block_count"])
        writer.add_feed_forward_length(hp["feed_forward_length"])
        writer.add_head_count(hp["head_count"])
        writer.add_head_count_kv(hp["head_count_kv"])
        writer.add_key_length(hp["head_dim"])
        writer.add_value_length(hp["head_dim"])
        writer.add_rope_freq_base(hp["rope_theta"])
        writer.add_layer_norm_rms_eps(hp["rms_norm_eps"])
        writer.add_pooling_type(gguf.PoolingType.RANK)
        writer.add_classifier_output_labels(labels[: rows.shape[0]])
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("qwen2")
        writer.add_token_list(tokens)
        writer.add_token_types(toktypes)
        writer.add_token_merges(merges)
        for kind, token_id in special_ids.items():
            getattr(writer, f"add_{kind}_token_id")(token_id)
        writer.add_add_bos_token(False)
        writer.add_chat_template([{"name": "rerank", "template": template}])

        for plan in plans:
            _add_tensor_info(writer, gguf, np, plan.name, plan.shape, plan.ggml_type)
        _add_tensor_info(writer, gguf, np, CLS_OUT, tuple(rows.shape), "F32")

        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for plan, blocks in _chunks(shards, plans):
            ptype = getattr(gguf.GGMLQuantizationType, plan.ggml_type)
            _write_blocks(writer, blocks, ptype)
            log(f"gguf: {plan.name} {list(plan.shape)} {plan.ggml_type}")
        writer.write_tensor_data(rows)
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return WrittenGguf(out, gguf_type.name, out.stat().st_size, time.monotonic() - start, template)


def _add_tensor_info(
    writer: Any, gguf: Any, np: Any, name: str, shape: tuple[int, ...], ggml_type: str
) -> None:
    ptype = getattr(gguf.GGMLQuantizationType, ggml_type)
    block, type_size = gguf.GGML_QUANT_SIZES[ptype]
    nbytes = int(np.prod(shape)) // block * type_size
    if ggml_type in ("F32", "F16"):
        dtype = np.float32 if ggml_type == "F32" else np.float16
        writer.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
    else:
        byte_shape = gguf.quant_shape_to_byte_shape(shape, ptype)
        writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=ptype)


def _file_type(gguf: Any, gguf_type: GgufType) -> int:
    return int(
        {
            "F32": gguf.LlamaFileType.ALL_F32,
            "F16": gguf.LlamaFileType.MOSTLY_F16,
            "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[gguf_type.ggml_type]
    )


def _head_rows(head: np.ndarray, hidden: int) -> np.ndarray:
    """``[w, 0]`` from the one-row ``score.weight`` ``w``."""
    import numpy as np

    if head.ndim != 2 or head.shape[1] != hidden:
        raise BadInput(f"--gguf: score.weight has shape {list(head.shape)}, expected [1, {hidden}]")
    if head.shape[0] != 1:
        raise BadInput(
            f"--gguf: the converted checkpoint has {head.shape[0]} labels; llama-server returns "
            "one score per document: convert with a one-label recipe (from_2_way_softmax, or "
            "one token) for --gguf"
        )
    return np.ascontiguousarray(
        np.stack([head[0], np.zeros(hidden, dtype=np.float32)]), dtype=np.float32
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(
            f"--gguf: cannot read {path.name} of the converted checkpoint ({exc})"
        ) from exc
    if not isinstance(loaded, dict):
        raise BadInput(f"--gguf: {path.name} of the converted checkpoint is not a JSON object")
    return loaded


def _hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    def need(key: str, kind: type = int) -> Any:
        value = config.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BadInput(f"--gguf: config.json has no valid {key}: the checkpoint is incomplete")
        return value

    rope = config.get("rope_theta")
    if rope is None and isinstance(config.get("rope_parameters"), dict):
        rope = config["rope_parameters"].get("rope_theta")
    heads = need("num_attention_heads")
    return {
        "vocab_size": need("vocab_size"),
        "context_length": need("max_position_embeddings"),
        "embedding_length": need("hidden_size"),
        "block_count": need("num_hidden_layers"),
        "feed_forward_length": need("intermediate_size"),
        "head_count": heads,
        "head_count_kv": config.get("num_key_value_heads") or heads,
        "head_dim": config.get("head_dim") or need("hidden_size") // heads,
        "rope_theta": float(rope if isinstance(rope, int | float) else 1_000_000.0),
        "rms_norm_eps": float(config.get("rms_norm_eps") or 1e-6),
    }


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _special_strings(converted: Path) -> dict[str, str]:
    config = _read_json(converted / TOKENIZER_CONFIG_FILE)
    out = {}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        text = _token_text(config.get(key))
        if text:
            out[key] = text
    return out


def _vocabulary(
    converted: Path, vocab_size: int
) -> tuple[list[str], list[int], list[str], dict[str, int]]:
    """Tokens in id order (padded to the embedding's rows), their types, the merges, and the
    special token ids, read from ``tokenizer.json``/``tokenizer_config.json``."""
    import gguf

    data = _read_json(converted / TOKENIZER_FILE)
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise BadInput("--gguf: tokenizer.json is not a BPE tokenizer: the Qwen vocabulary is")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    types: dict[int, int] = {}
    for added in data.get("added_tokens", []):
        token_id, text = added["id"], added["content"]
        by_id[token_id] = text
        special = added.get("special") or (text.startswith("<|") and text.endswith("|>"))
        types[token_id] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    if max(by_id) >= vocab_size:
        raise BadInput(
            f"--gguf: the tokenizer has id {max(by_id)}, beyond the model's vocab_size {vocab_size}"
        )
    tokens, toktypes = [], []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            toktypes.append(types.get(i, int(gguf.TokenType.NORMAL)))
        else:
            tokens.append(f"[PAD{i}]")
            toktypes.append(int(gguf.TokenType.UNUSED))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    ids = {text: i for i, text in by_id.items()}
    special_ids = {}
    for kind, text in _special_strings(converted).items():
        if text in ids:
            special_ids[kind.removesuffix("_token")] = ids[text]
    return tokens, toktypes, merges, special_ids


def _weight_files(converted: Path) -> list[Path]:
    index = converted / INDEX_FILE
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise BadInput(f"--gguf: {INDEX_FILE} has no weight_map")
        names = sorted(set(weight_map.values()))
    else:
        names = sorted(p.name for p in converted.glob("*.safetensors"))
    files = [converted / n for n in names]
    if not files or not all(f.is_file() for f in files):
        raise BadInput("--gguf: the converted checkpoint's safetensors shards are missing")
    return files


def _shapes(shards: list[Path]) -> Iterator[tuple[Path, str, tuple[int, ...]]]:
    from safetensors import safe_open

    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open is no Mapping
                yield shard, key, tuple(f.get_slice(key).get_shape())


def _plan(shards: list[Path], blocks: int, gguf_type: GgufType) -> Iterator[_Plan]:
    import gguf

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, blocks)
    seen_score = False
    for _, key, shape in _shapes(shards):
        if key == SCORE_TENSOR:
            seen_score = True
            continue
        if key == "lm_head.weight":  # an untied source's LM head: the classifier has none
            continue
        name = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise BadInput(
                f"--gguf: tensor {key} has no llama.cpp qwen3 name: the checkpoint is not a "
                "plain Qwen3 model"
            )
        ggml_type = "F32"
        if len(shape) == 2:
            ggml_type = gguf_type.ggml_type
            if ggml_type not in ("F32", "F16") and shape[-1] % BLOCK:
                ggml_type = "F16"
        yield _Plan(key, name, shape, ggml_type)
    if not seen_score:
        raise BadInput("--gguf: the converted checkpoint has no score.weight: convert it first")


def _read_tensor(shards: list[Path], key: str) -> np.ndarray:
    from safetensors import safe_open

    for shard in shards:
        with safe_open(shard, framework="pt") as f:
            if key in f.keys():  # noqa: SIM118
                array: np.ndarray = f.get_tensor(key).float().numpy()
                return array
    raise BadInput(f"--gguf: the converted checkpoint has no {key}")


def _chunks(shards: list[Path], plans: list[_Plan]) -> Iterator[tuple[_Plan, Iterator[np.ndarray]]]:
    """Each planned tensor as float32 row blocks of at most :data:`CHUNK_ELEMENTS` values, in
    plan order: one block resident at a time (the 8B's embedding is 2.5 GB in float32)."""
    from safetensors import safe_open

    by_shard: dict[str, Path] = {key: shard for shard, key, _ in _shapes(shards)}
    with ExitStack() as stack:
        opened: dict[Path, Any] = {}
        for plan in plans:
            shard = by_shard[plan.source_name]
            if shard not in opened:
                opened.clear()  # plans follow shard order: one shard open at a time
                opened[shard] = stack.enter_context(safe_open(shard, framework="pt"))
            yield plan, _row_blocks(opened[shard].get_slice(plan.source_name), plan.shape)


def _row_blocks(tensor_slice: Any, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    if len(shape) < 2:
        yield tensor_slice[:].float().numpy()
        return
    rows = max(1, CHUNK_ELEMENTS // max(1, shape[-1]))
    for start in range(0, shape[0], rows):
        yield tensor_slice[start : start + rows].float().numpy()


def _write_blocks(writer: Any, blocks: Iterator[np.ndarray], ggml_type: Any) -> None:
    """``GGUFWriter.write_tensor_data`` for a tensor that arrives in row blocks: the same
    padding and bookkeeping (gguf 0.19.0), each block quantized and written as it comes."""
    import gguf

    file_id = next(i for i, tensors in enumerate(writer.tensors) if len(tensors) > 0)
    fout = writer.fout[file_id]
    name = next(iter(writer.tensors[file_id]))
    info = writer.tensors[file_id].pop(name)
    writer.write_padding(fout, fout.tell())
    written = 0
    for block in blocks:
        data = gguf.quants.quantize(block, ggml_type)
        data.tofile(fout)
        written += data.nbytes
    if written != info.nbytes:
        raise AssertionError(f"{name}: wrote {written} bytes, planned {info.nbytes}")
    writer.write_padding(fout, written)
    writer.state = gguf.gguf_writer.WriterState.WEIGHTS
