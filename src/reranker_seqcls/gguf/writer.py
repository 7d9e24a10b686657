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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.gguf.metadata import _hyperparameters, _read_json, _vocabulary, rerank_template
from reranker_seqcls.gguf.refusal import refuse_gguf_by_config
from reranker_seqcls.gguf.tensors import (
    SCORE_TENSOR,
    TensorData,
    _add_tensor_info,
    _chunks,
    _head_rows,
    _Plan,
    _plan,
    _read_tensor,
    _weight_files,
)
from reranker_seqcls.gguf.types import GgufType
from reranker_seqcls.names import CONFIG_FILE, SCORE_SHARD_FILE

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


def split_file_name(stem: str, gguf_type: GgufType, number: int, count: int) -> str:
    """``STEM-TYPE-0000i-of-0000N.gguf`` (``number`` from 1): the names llama.cpp derives the
    other splits' paths from, given the first (``llama_split_path``)."""
    return f"{stem}-{gguf_type.name}-{number:05d}-of-{count:05d}.gguf"


@dataclass(frozen=True)
class Split:
    """Which split of how many a file is, and the tensors of all splits together: llama.cpp
    reads ``split.count`` and ``split.tensors.count`` from the first split, ``split.no`` from
    each (0-based), and finds every tensor by name in whichever split holds it."""

    number: int  # from 1
    count: int
    tensors: int

    def add_keys(self, writer: Any) -> None:
        import gguf

        keys = gguf.Keys.Split
        writer.add_uint16(keys.LLM_KV_SPLIT_NO, self.number - 1)
        writer.add_uint16(keys.LLM_KV_SPLIT_COUNT, self.count)
        writer.add_int32(keys.LLM_KV_SPLIT_TENSORS_COUNT, self.tensors)


def write_gguf(
    converted: Path,
    out: Path,
    gguf_type: GgufType,
    recipe: Recipe,
    *,
    name: str,
    head_rows: Callable[[np.ndarray], np.ndarray] | None = None,
    log: Callable[[str], None] = lambda _: None,
    split: Split | None = None,
) -> WrittenGguf:
    """Write ``out`` (atomically: a temporary name, then renamed) from the converted checkpoint.

    With ``split``, ``out`` is the first split of a split GGUF: every key and ``cls_out`` but no
    backbone tensor (those are in the other splits, :func:`write_data_split`, written from each
    shard while it is on disk), as ``gguf-split --no-tensor-first-split`` writes it; the
    converted directory then needs only its small files and ``score.safetensors``.

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
    rows = _head_rows(_score_tensor(converted), hp["embedding_length"])
    if head_rows is not None:
        rows = np.ascontiguousarray(head_rows(rows), dtype=np.float32)
    # llama.cpp reads the head's row count from the number of labels
    labels = [*LABELS, *(f"label_{i}" for i in range(len(LABELS), rows.shape[0]))]
    shards = [] if split is not None else _weight_files(converted)
    plans = [] if split is not None else list(_plan(shards, hp["block_count"], gguf_type))

    def add_keys(writer: Any) -> None:
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
        if split is not None:
            split.add_keys(writer)

    _write_file(out, add_keys, shards, plans, rows, log)
    return WrittenGguf(out, gguf_type.name, out.stat().st_size, time.monotonic() - start, template)


def data_split_plans(shard: Path, blocks: int, gguf_type: GgufType) -> list[_Plan]:
    """The GGUF tensors one (converted or source) shard holds: none for a shard of only
    ``lm_head``/``score.weight``. Reads the header only (a placeholder will do)."""
    return list(_plan([shard], blocks, gguf_type, require_score=False))


def write_data_split(
    shard: Path,
    out: Path,
    gguf_type: GgufType,
    *,
    blocks: int,
    split: Split,
    log: Callable[[str], None] = lambda _: None,
) -> int:
    """Write ``out`` (atomically), a split holding the backbone tensors of one shard and only
    the split keys (llama.cpp reads every other key from the first split); its bytes."""
    plans = data_split_plans(shard, blocks, gguf_type)
    _write_file(out, split.add_keys, [shard], plans, None, log)
    return out.stat().st_size


def _write_file(
    out: Path,
    add_keys: Callable[[Any], None],
    shards: list[Path],
    plans: list[_Plan],
    rows: np.ndarray | None,
    log: Callable[[str], None],
) -> None:
    """One GGUF file: the keys, then the planned tensors from ``shards`` block by block, then
    ``cls_out`` (``rows``, when given); written under a temporary name and renamed."""
    with open_gguf(out, add_keys, plans, rows) as data:
        for plan, blocks in _chunks(shards, plans):
            data.begin(plan.name)
            for block in blocks:
                data.block(block)
            data.done()
            log(f"gguf: {plan.name} {list(plan.shape)} {plan.ggml_type}")


@contextmanager
def open_gguf(
    out: Path, add_keys: Callable[[Any], None], plans: list[_Plan], rows: np.ndarray | None
) -> Iterator[TensorData]:
    """The one GGUF writer both passes feed: the keys and the tensor table of ``plans`` (and
    ``cls_out`` when ``rows`` are given, written here last) written under a temporary name;
    the caller writes each planned tensor's blocks into the :class:`TensorData` given, in any
    order; renamed onto ``out`` when the block ends without an error, removed otherwise."""
    import gguf
    import numpy as np

    tmp = out.with_name(out.name + ".partial")
    writer = gguf.GGUFWriter(tmp, "qwen3")
    try:
        add_keys(writer)
        table = [
            (p.name, p.ggml_type, _add_tensor_info(writer, gguf, np, p.name, p.shape, p.ggml_type))
            for p in plans
        ]
        if rows is not None:
            shape = tuple(rows.shape)
            table.append(
                (CLS_OUT, "F32", _add_tensor_info(writer, gguf, np, CLS_OUT, shape, "F32"))
            )
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        data = TensorData(writer, table)
        yield data
        if rows is not None:
            data.begin(CLS_OUT)
            data.raw(np.ascontiguousarray(rows, dtype=np.float32))
            data.done()
        data.close()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise


def _score_tensor(converted: Path) -> np.ndarray:
    """``score.weight``: from ``score.safetensors`` when it is there (a streamed run's shards
    are gone by then), else from whichever shard holds it."""
    score_shard = converted / SCORE_SHARD_FILE
    return _read_tensor([score_shard] if score_shard.is_file() else _weight_files(converted),
                        SCORE_TENSOR)  # fmt: skip


def _file_type(gguf: Any, gguf_type: GgufType) -> int:
    return int(
        {
            "F32": gguf.LlamaFileType.ALL_F32,
            "F16": gguf.LlamaFileType.MOSTLY_F16,
            "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[gguf_type.ggml_type]
    )
