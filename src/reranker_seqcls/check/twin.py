"""A structural twin of a (source, converted) pair, for the consumer half of a streamed check.

What the full-model check proves about consumers — the prompt ids sentence-transformers and
vLLM build from the converted directory's template, the pooling position (``pad_token_id``),
the activation, loading with no missing or unexpected weights — depends on the converted
directory's files and the model's *structure*, not on the size of its weights. When the real
model does not fit the check's memory budget, those proofs run on a twin: the source's config
with fewer layers (and, when the real vocabulary × hidden size alone would not fit, a smaller
hidden size), its tokenizer and every consumer file of the real converted directory, with random
float32 weights. The twin source is converted by the real converter with the same recipe, then
the real converted directory's files (config, template, sentence-transformers files, tokenizer)
replace the twin's, with only the twin's shape keys kept, so any defect in them carries over.

The rule (:func:`consumer_plan`): the real checkpoint when its float32 load size plus the
interpreter's own ~0.5 GB fits ``--check-memory`` (default 1.5 GB), else the twin.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import (
    CONFIG_FILE,
    LICENSE_PATTERNS,
    PROVENANCE_FILE,
    TOKENIZER_PATTERNS,
    WEIGHT_PATTERNS,
)
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.sizes import parse_size
from reranker_seqcls.source import Source

DEFAULT_CHECK_MEMORY = 1_500_000_000  # bytes: a standard runner's share for the check
# Peak RSS of a check on a tiny model (torch, transformers, sentence-transformers imported):
# 480-565 MB measured (docs/parity.md).
INTERPRETER_BYTES = 550_000_000
TWIN_LAYERS = 2
# The twin is written in float32 beside the streamed run's shards, whose disk goal leaves 0.5 GB
# beyond two shards: a twin over this many bytes gets the shrunk hidden size.
TWIN_DISK_BYTES = 400_000_000
# The shrunk shape: head_dim 64 (vLLM's CPU attention refuses smaller), two query heads.
SHRUNK_HIDDEN = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2,
                 "head_dim": 64}  # fmt: skip
# Config keys that follow the twin's shape (besides the overrides); all others come from the
# real converted config.json.
_SHAPE_KEYS = ("dtype", "torch_dtype", "layer_types", "max_window_layers")
_INIT_STD = 0.2  # random matrices: scores that differ clearly between pooled positions
# Files of the converted directory that the twin converted directory does not take over.
_NOT_CONSUMER_FILES = ("README.md", PROVENANCE_FILE, "parity_report.json")


# The spellings of the shape keys across architectures (GPT-2: n_embd, n_layer, n_head, n_inner;
# GPT-Neo: num_layers, num_heads), first match wins.
_SHAPE_NAMES = {
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
}


def _shape(config: dict[str, Any], key: str) -> int:
    for name in _SHAPE_NAMES[key]:
        if config.get(name):
            return int(config[name])
    return 0


def float32_load_bytes(config: dict[str, Any]) -> int:
    """Estimated bytes of the causal LM loaded in float32 (embedding, head when untied,
    attention and MLP matrices; norms are negligible)."""
    hidden = _shape(config, "hidden_size")
    vocab = int(config.get("vocab_size") or 0)
    layers = _shape(config, "num_hidden_layers")
    heads = _shape(config, "num_attention_heads") or 1
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or (hidden // max(heads, 1)))
    inter = _shape(config, "intermediate_size") or 4 * hidden
    tied = config.get("tie_word_embeddings", True) is not False
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    per_layer = attention + 3 * hidden * inter + 2 * hidden
    return 4 * (vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden)


@dataclass(frozen=True)
class ConsumerPlan:
    """Where the consumer proofs run: the real checkpoint, or a twin with ``overrides``."""

    on: str  # "real" | "twin"
    real_bytes: int  # the real model's float32 load estimate
    budget: int
    overrides: dict[str, Any] = field(default_factory=dict)

    def describe(self, config: dict[str, Any]) -> str:
        if self.on == "real":
            return "real"
        shaped = {**config, **self.overrides}
        return (
            f"twin ({shaped['num_hidden_layers']} of {_shape(config, 'num_hidden_layers')} "
            f"layers, hidden {_shape(shaped, 'hidden_size')}, vocab {shaped.get('vocab_size')}, "
            "float32, "
            f"random weights; the real model needs ~{_size(self.real_bytes)} in float32 "
            f"plus ~{_size(INTERPRETER_BYTES)} for the interpreter, over the "
            f"{_size(self.budget)} check budget)"
        )


# Loading a tokenizer.json (the tokenizers library's structures plus transformers' wrapper)
# takes about 28 times its size: 50 MB measured 1.4 GB. Real ones are 2-35 MB.
TOKENIZER_AMPLIFICATION = 28


def check_tokenizer_memory(nbytes: int, check_memory: int, name: str = "tokenizer.json") -> None:
    """Refuse a tokenizer whose load alone would exceed ``--check-memory`` (before it is
    fetched or loaded): a valid 200 MB tokenizer.json costs ~5.6 GB. The budget is never
    below the default (a lower --check-memory asks for the layerwise check, whose tokenizer is
    loaded all the same)."""
    budget = max(check_memory, DEFAULT_CHECK_MEMORY)
    need = TOKENIZER_AMPLIFICATION * nbytes
    if need > budget:
        raise BadInput(
            f"{name} is {_size(nbytes)}: loading it takes ~{_size(need)}, more than "
            f"--check-memory {_size(budget)}; raise --check-memory if it is genuine"
        )


def parse_memory(text: str) -> int:
    """``--check-memory``: a size such as ``1.5GB``, ``800MB`` or a number of bytes."""
    return parse_size(text, "--check-memory")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.0f} MB"


def consumer_plan(config: dict[str, Any], budget: int = DEFAULT_CHECK_MEMORY) -> ConsumerPlan:
    """The real checkpoint when it fits ``budget`` (float32 load + interpreter), else a twin
    (:func:`twin_overrides`)."""
    real = float32_load_bytes(config)
    if real + INTERPRETER_BYTES <= budget:
        return ConsumerPlan("real", real, budget)
    return ConsumerPlan("twin", real, budget, twin_overrides(config, budget))


def twin_overrides(config: dict[str, Any], budget: int = DEFAULT_CHECK_MEMORY) -> dict[str, Any]:
    """The twin's shape: :data:`TWIN_LAYERS` layers; and the shrunk hidden size when the twin
    would still not fit ``budget`` in memory or :data:`TWIN_DISK_BYTES` on disk (it is saved in
    float32 beside the run's shards)."""
    layers = min(TWIN_LAYERS, _shape(config, "num_hidden_layers") or TWIN_LAYERS)
    overrides: dict[str, Any] = {"num_hidden_layers": layers}
    size = float32_load_bytes({**config, **overrides})
    too_big = size + INTERPRETER_BYTES > budget or size > TWIN_DISK_BYTES
    if too_big and _shape(config, "hidden_size") > SHRUNK_HIDDEN["hidden_size"]:
        kv = int(config.get("num_key_value_heads") or 0)
        heads = _shape(config, "num_attention_heads")
        overrides |= SHRUNK_HIDDEN
        overrides["num_key_value_heads"] = 1 if kv and kv < heads else 2
    for key, names in _SHAPE_NAMES.items():  # GPT-2's n_layer too, not only num_hidden_layers
        if key in overrides:
            overrides |= {alias: overrides[key] for alias in names[1:] if alias in config}
    return overrides


def twin_config(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The source config with the twin's shape: per-layer lists cut to the twin's layers."""
    twin = {**config, **overrides, "dtype": "float32"}
    twin.pop("torch_dtype", None)
    layers = int(twin["num_hidden_layers"])
    for key in ("layer_types",):
        if isinstance(twin.get(key), list):
            twin[key] = twin[key][:layers]
    if isinstance(twin.get("max_window_layers"), int):
        twin["max_window_layers"] = min(int(twin["max_window_layers"]), layers)
    return twin


def build_twin(
    source: Path,
    converted: Path,
    work: Path,
    recipe: Recipe,
    plan: ConsumerPlan,
    *,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write the twin source and twin converted directories under ``work`` (which must be
    empty or absent); returns them. Reads only small files of ``source`` and ``converted``:
    their shards may already be gone."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from reranker_seqcls.convert.converter import convert

    files = Source(source)
    config = files.read_json(CONFIG_FILE)
    assert isinstance(config, dict)
    shaped = twin_config(config, plan.overrides)
    twin_source = work / "twin-source"
    twin_source.mkdir(parents=True)
    for name in files.listing((*TOKENIZER_PATTERNS, *LICENSE_PATTERNS)):
        path = files.file(name)
        assert path is not None
        (twin_source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, twin_source / name)
    settings = {k: v for k, v in shaped.items() if k not in ("model_type", "transformers_version")}
    hf_config = AutoConfig.for_model(str(config.get("model_type")), **settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, _INIT_STD)
    model.save_pretrained(str(twin_source))
    del model
    (twin_source / CONFIG_FILE).write_text(json.dumps(shaped, indent=2) + "\n")

    twin_converted = work / "twin-converted"
    # The real conversion exists already; whether its softcapping is acceptable is the check's
    # verdict (--allow-softcapping of the check), not the twin's conversion's.
    convert(twin_source, twin_converted, recipe, allow_softcapping=True, log=lambda _m: None)
    shape_keys = {*plan.overrides, *_SHAPE_KEYS}
    _take_consumer_files(Source(converted), twin_converted, shape_keys)
    return twin_source, twin_converted


def _take_consumer_files(converted: Source, twin: Path, shape_keys: set[str]) -> None:
    """Replace the twin converted directory's files by the real converted directory's (config
    with the twin's shape keys), so every consumer-facing defect of the real one is in the twin."""
    weights = WEIGHT_PATTERNS
    for name in converted.listing(["*", "*/*"]):
        if name in _NOT_CONSUMER_FILES or any(Path(name).match(p) for p in weights):
            continue
        path = converted.file(name)
        assert path is not None
        target = twin / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == CONFIG_FILE:
            real = json.loads(path.read_text("utf-8"))
            twin_own = json.loads(target.read_text("utf-8"))
            real |= {k: twin_own[k] for k in shape_keys if k in twin_own}
            target.write_text(json.dumps(real, indent=2) + "\n")
        else:
            target.unlink(missing_ok=True)
            shutil.copyfile(path, target)
