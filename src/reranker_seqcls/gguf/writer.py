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

This module writes the file; the metadata's inputs are read in :mod:`.metadata`, the tensors
planned, read and written in :mod:`.tensors`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.gguf.metadata import _hyperparameters, _read_json, _vocabulary, rerank_template
from reranker_seqcls.gguf.refusal import refuse_gguf_by_config
from reranker_seqcls.gguf.tensors import (
    SCORE_TENSOR,
    _add_tensor_info,
    _chunks,
    _head_rows,
    _plan,
    _read_tensor,
    _weight_files,
    _write_blocks,
)
from reranker_seqcls.gguf.types import GgufType
from reranker_seqcls.names import CONFIG_FILE

if TYPE_CHECKING:
    import numpy as np

    from reranker_seqcls.recipes.recipe import Recipe

# llama.cpp calls the head cls_out; its GGUF name is gguf.TENSOR_NAMES[MODEL_TENSOR.CLS_OUT].
CLS_OUT = "cls.output.weight"
LABELS = ("relevant", "irrelevant")  # softmax([s, 0]): p(relevant) = sigmoid(s)


@dataclass(frozen=True)
class WrittenGguf:
    path: Path
    gguf_type: str
    bytes: int
    seconds: float
    rerank_template: str


def gguf_file_name(stem: str, gguf_type: GgufType) -> str:
    return f"{stem}-{gguf_type.name}.gguf"


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


def _file_type(gguf: Any, gguf_type: GgufType) -> int:
    return int(
        {
            "F32": gguf.LlamaFileType.ALL_F32,
            "F16": gguf.LlamaFileType.MOSTLY_F16,
            "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[gguf_type.ggml_type]
    )
