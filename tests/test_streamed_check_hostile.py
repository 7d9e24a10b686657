"""Hostile shards through the layer-by-layer parity check (`check --check-memory` below the
model's float32 load): each refusal is one `error:` line on stderr naming the tensor or shard
and the fix, exit 2, no traceback.

What `convert` refuses first (a token id past the embedding rows or the config's vocab_size,
a shard whose header claims more bytes than the file holds) is pinned in
tests/test_hostile_sources.py; here the source and converted directories are altered after a
good conversion, so that `check` is what sees them. Weights that do not match the config's
shapes are tested in tests/test_streamed_check.py
(test_weights_that_do_not_match_the_config_are_refused).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reranker_seqcls.check.kept_rows import RowStore, tensor_digests
from reranker_seqcls.check.streamed import StreamedCheck, source_shards
from reranker_seqcls.check.weight_reads import read_rows, read_tensor
from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes.presets import PRESETS
from reranker_seqcls.safetensors_io.checkpoint import SafetensorsFile
from reranker_seqcls.steps import load_check_pairs, resolve_token_ids
from tests.conftest import run_cli
from tests.hostile import INDEX, copy_source, edit_json, rewrite_tensor, shard_holding

QWEN = ("--preset", "qwen3-reranker")
LAYERWISE = ("--check-memory", "1KB")  # far below the tiny model's load: the layerwise path
Q_PROJ = "model.layers.0.self_attn.q_proj.weight"
EMBEDDING = "model.embed_tokens.weight"
FIRST, SECOND = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


def _convert(source: Path, out: Path, *args: str) -> Path:
    result = run_cli("convert", source, out, *QWEN, *args)
    assert result.returncode == 0, result.stderr
    return out


def _check(source: Path, converted: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("check", source, converted, *QWEN, *LAYERWISE)


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> str:
    """Exit 2, one `error:` line (the last one on stderr) holding ``fragment``, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: "), result.stderr
    assert [line for line in lines if line.startswith("error")] == [lines[-1]], result.stderr
    assert "internal error" not in lines[-1]
    assert fragment in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture
def tied(tiny_model, tmp_path) -> Path:
    """A copy of the tied two-shard model: embedding and layer 0's attention in the first
    shard, the rest of layer 0 and layer 1 in the second."""
    return copy_source(tiny_model("qwen3", tied=True, num_shards=2), tmp_path / "tied")


# --------------------------------------------------------------------------- 1: dtypes


@pytest.mark.parametrize("dtype", ["I32", "I64", "BOOL"])
def test_non_float_backbone_tensor_is_refused_by_name(tmp_path, tied, dtype):
    """A layer weight stored as integers or booleans (right shape): convert only links the
    shard, so source and converted both hold it; the layerwise reader refuses it by name."""
    rewrite_tensor(shard_holding(tied, "layers.0.self_attn.q_proj.weight"), Q_PROJ, dtype=dtype)
    out = _convert(tied, tmp_path / "converted")
    shard = shard_holding(out, "layers.0.self_attn.q_proj.weight")
    assert SafetensorsFile(shard).tensors[Q_PROJ].dtype == dtype  # the converted holds it too
    one_line_error(
        _check(tied, out),
        f"error: {Q_PROJ} is stored as {dtype}; the check reads float tensors only: "
        "convert a non-quantized checkpoint",
    )


# --------------------------------------------------------------------------- 2: rows


def test_classifier_token_beyond_a_truncated_lm_head_is_refused(tmp_path, tiny_model):
    """An untied source whose lm_head is cut below the classifier tokens' ids. Convert refuses
    that source; cut after converting (the source only: convert rewrote the head shard), the
    layerwise check must refuse it too (it crashed with a KeyError: the rows it keeps skip
    ids past the tensor's end, and the head scoring then asked for them), and so must the
    full check."""
    source = copy_source(tiny_model("qwen3", tied=False, num_shards=2), tmp_path / "untied")
    ids = resolve_token_ids(source, PRESETS["qwen3-reranker"])
    rows = min(ids)
    hostile = copy_source(source, tmp_path / "hostile")
    rewrite_tensor(shard_holding(hostile, "lm_head.weight"), "lm_head.weight", rows=rows)
    refused = run_cli("convert", hostile, tmp_path / "refused", *QWEN)
    one_line_error(refused, f"-> id {rows}, exact vocabulary entry is outside lm_head.weight")

    out = _convert(source, tmp_path / "converted")
    assert "lm_head.weight" not in json.loads((out / INDEX).read_text())["weight_map"]
    head = shard_holding(source, "lm_head.weight")
    rewrite_tensor(head, "lm_head.weight", rows=rows, in_place=False)
    one_line_error(
        _check(source, out),
        f"error: token id {rows} is outside lm_head.weight ({rows} rows): the tokenizer does "
        "not match the weights",
    )
    # The full check (the model fits the default budget) loads it with transformers, which
    # raised a RuntimeError pointing at a report it did not print (exit 4).
    one_line_error(
        run_cli("check", source, out, *QWEN),
        f"error: lm_head.weight in {source.name} has shape [{rows}, 64], config.json gives "
        "[705, 64]: the checkpoint does not match its config, re-download it",
    )


def test_truncated_embedding_is_refused_against_the_config(tmp_path, tied):
    """A tied embedding cut to 100 rows in place (the converted shard is a hard link, so both
    change): the config still says 705, and the layerwise reader names the mismatch."""
    out = _convert(tied, tmp_path / "converted")
    shard = shard_holding(tied, "embed_tokens.weight")
    assert (out / shard.name).samefile(shard)
    rewrite_tensor(shard, EMBEDDING, rows=100)
    one_line_error(
        _check(tied, out),
        f"error: {EMBEDDING} has shape [100, 64], config.json gives [705, 64]: the checkpoint "
        "does not match its config, re-download it",
    )


def test_prompt_tokens_beyond_a_truncated_embedding_are_refused(tmp_path, tied):
    """The same cut embedding with both configs' vocab_size lowered to match: the shapes
    agree, but the prompts' token ids (and the classifier's) lie past the last row."""
    out = _convert(tied, tmp_path / "converted")
    rewrite_tensor(shard_holding(tied, "embed_tokens.weight"), EMBEDDING, rows=100)
    edit_json(tied / "config.json", vocab_size=100)
    edit_json(out / "config.json", vocab_size=100)
    one_line_error(
        _check(tied, out),
        f"is outside {EMBEDDING} (100 rows): the tokenizer does not match the weights",
    )


def test_out_of_range_kept_rows_are_bad_input_in_range_missing_rows_a_bug(tied):
    shard = SafetensorsFile(shard_holding(tied, "embed_tokens.weight"))
    store = RowStore()
    store.keep(shard, EMBEDDING, [3, 704, 705, 9000])  # rows past the end are skipped
    assert store.read_rows(EMBEDDING, [704, 3]) == shard.read_rows(EMBEDDING, [704, 3])
    with pytest.raises(BadInput, match=rf"token id 705 is outside {EMBEDDING} \(705 rows\)"):
        store.read_rows(EMBEDDING, [3, 705])
    with pytest.raises(BadInput, match=r"token id -1 is outside"):
        store.read_rows(EMBEDDING, [-1])
    with pytest.raises(KeyError, match="row 5 of"):  # in range but not kept: a bug, not input
        store.read_rows(EMBEDDING, [5])


# --------------------------------------------------------------------------- 3: truncation


@pytest.mark.parametrize("side", ["source", "converted"])
def test_shard_shorter_than_its_header_is_refused_at_open(tmp_path, tied, side):
    """A shard cut short by 100 bytes: the header claims data the file does not hold. Cut in
    the source (in place: the converted's hard link too) or in the converted copy only."""
    out = _convert(tied, tmp_path / "converted", *(("--copy",) if side == "converted" else ()))
    path = (tied if side == "source" else out) / SECOND
    os.truncate(path, path.stat().st_size - 100)
    one_line_error(
        _check(tied, out),
        f"error: {SECOND!r} is not a readable safetensors file (",
    ).endswith("): re-download the checkpoint")


def test_shard_truncated_after_its_header_was_read_is_refused(tmp_path, tied):
    """Layer 0 spans both shards: after the first is fed, the layerwise pass has read its
    header and the embedding rows and still holds it for layer 0. Cut it then: feeding the
    second shard runs layer 0, whose read of the first shard must be refused by name."""
    recipe = PRESETS["qwen3-reranker"]
    check = StreamedCheck(
        tied, tmp_path / "converted-unused", recipe, load_check_pairs(recipe, None),
        token_ids=resolve_token_ids(tied, recipe),
    )  # fmt: skip
    first, second = source_shards(tied)
    assert first.name == FIRST
    assert check.feed_source(first) == []  # still needed by layer 0
    layer0 = SafetensorsFile(first).tensors[Q_PROJ]
    os.truncate(first, layer0.start - 1)
    with pytest.raises(
        BadInput, match=rf"^{FIRST} is truncated at model\.layers\.0\..*: re-download"
    ):
        check.feed_source(second)


def _read_rows(header: SafetensorsFile) -> object:
    import torch

    return read_rows(header.path, header.tensors[EMBEDDING], [0, 600], torch.float32)


def _read_tensor(header: SafetensorsFile) -> object:
    import torch

    return read_tensor(header.path, header.tensors[Q_PROJ], torch.float32)


READS: dict[str, Callable[[SafetensorsFile], object]] = {
    "hashing (tensor_digests)": lambda header: tensor_digests(header, set()),
    "kept head rows (RowStore.keep)": lambda h: RowStore().keep(h, EMBEDDING, [0, 600]),
    "embedding rows (read_rows)": _read_rows,
    "layer weight (read_tensor)": _read_tensor,
}


@pytest.mark.parametrize("read", sorted(READS))
def test_every_read_of_a_shard_cut_after_its_header_names_it(tied, read):
    """Each way the streamed check reads tensor bytes, on a shard cut after its header was
    parsed (in the embedding's row 100): a short read is refused, never decoded or crashed on
    (embedding rows crashed in torch.frombuffer; kept head rows came back empty)."""
    path = tied / FIRST
    header = SafetensorsFile(path)
    embedding = header.tensors[EMBEDDING]
    os.truncate(path, embedding.start + 100 * (embedding.nbytes // embedding.shape[0]) + 10)
    with pytest.raises(BadInput, match=rf"^{FIRST} is truncated.*: re-download the checkpoint$"):
        READS[read](header)
