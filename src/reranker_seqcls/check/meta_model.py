"""Shapes before any weight: the source's base model built from its config entirely on the meta
device (no byte of parameters or buffers), the buffers it would build real weighed, and whether
the layer-by-layer pass can drive its architecture. Used by the layerwise scorer and, before
``from_pretrained``, by the whole-model check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reranker_seqcls.errors import BadInput

# Buffers (rotary frequencies, causal masks) are built real from config.json; a position-sized
# mask per layer is positions² bytes. Real models need a few MB (GPT-Neo 2.7B: 128 MiB).
MAX_BUFFER_BYTES = 256 * 2**20


class LayerwiseUnsupported(BadInput):
    """The layer-by-layer pass cannot drive this architecture (the whole model may be checked
    instead)."""


def meta_model(config: dict[str, Any], dtype: str = "float32") -> tuple[Any, Any]:
    """(transformers config, base model) built from ``config`` entirely on the meta device:
    shapes only, no byte of parameters or buffers allocated."""
    import torch
    from huggingface_hub.errors import StrictDataclassError
    from transformers import AutoConfig, AutoModel
    from transformers.initialization import no_init_weights

    settings = {k: v for k, v in config.items() if k not in ("model_type",)}
    settings.pop("transformers_version", None)
    # transformers' config classes validate as strict dataclasses (StrictDataclassError);
    # others raise the builtins below, from the config or from the model's constructor.
    refused = (ValueError, TypeError, KeyError, AttributeError, IndexError, StrictDataclassError)
    try:
        hf_config = AutoConfig.for_model(str(config.get("model_type")), **settings)
        hf_config.use_cache = False
        with torch.device("meta"), no_init_weights():
            probe = AutoModel.from_config(hf_config, dtype=getattr(torch, dtype))
    except refused as exc:
        why = " ".join(str(exc).split())  # strict-dataclass errors span lines
        why = why if len(why) <= 300 else why[:297] + "..."
        raise BadInput(
            f"transformers cannot build the model of config.json ({exc.__class__.__name__}: "
            f"{why}): fix the source config"
        ) from exc
    return hf_config, probe


def prove_buffers(config: dict[str, Any]) -> None:
    """Refuse a config whose model would build buffers the check cannot hold (before any
    model is built for real: by the layerwise pass or by ``from_pretrained``)."""
    prove_buffers_of(meta_model(config)[1])


def prove_buffers_of(probe: Any) -> None:
    buffers = [(n, b) for n, b in probe.named_buffers()]
    total = sum(b.numel() * b.element_size() for _, b in buffers)
    if total > MAX_BUFFER_BYTES:
        name, largest = max(buffers, key=lambda nb: nb[1].numel() * nb[1].element_size())
        raise BadInput(
            f"config.json makes {type(probe).__name__} build {total / 1e6:.0f} MB of buffers "
            f"(largest {name} {list(largest.shape)}, e.g. from max_position_embeddings), more "
            f"than the check holds ({MAX_BUFFER_BYTES / 1e6:.0f} MB): fix the source config"
        )


@dataclass(frozen=True)
class Skeleton:
    """Where a base model the layerwise pass drives keeps its parts: the decoder layers (a
    ``ModuleList``), the final norm, and a learned position table added to the embedding
    before the first layer (GPT-2's ``wpe``; None where positions are rotary)."""

    layers: str
    norm: str
    positions: str | None = None

    def owns(self, name: str) -> bool:
        """Whether parameter ``name`` (base-model spelling) belongs to these parts."""
        parts = (self.layers, self.norm, *((self.positions,) if self.positions else ()))
        return name.startswith(tuple(f"{part}." for part in parts))


# Llama-like models (Qwen, Gemma, Mistral...), then GPT-2.
SKELETONS = (Skeleton("layers", "norm"), Skeleton("h", "ln_f", "wpe"))


def prove_drivable(probe: Any, hf_config: Any) -> Skeleton:
    """The :class:`Skeleton` of ``probe``; an architecture the layerwise pass cannot drive is
    refused (:class:`LayerwiseUnsupported`)."""
    import torch

    count = getattr(hf_config, "num_hidden_layers", None)
    names = [n for n, _ in probe.named_parameters()]
    embedding = probe.get_input_embeddings()
    embedding_names = {n for n, p in probe.named_parameters() if p is embedding.weight}
    strays: list[str] = []
    for skeleton in SKELETONS:
        layers = getattr(probe, skeleton.layers, None)
        if not isinstance(layers, torch.nn.ModuleList) or len(layers) != count:
            continue
        if not isinstance(getattr(probe, skeleton.norm, None), torch.nn.Module):
            continue
        positions = getattr(probe, skeleton.positions, None) if skeleton.positions else None
        if skeleton.positions and not isinstance(positions, torch.nn.Embedding):
            continue
        strays = [n for n in names if n not in embedding_names and not skeleton.owns(n)]
        if not strays:
            return skeleton
    what = f"parameter {strays[0]}" if strays else "no decoder layer list and final norm"
    raise LayerwiseUnsupported(
        f"the layer-by-layer check cannot run {type(probe).__name__} ({what}; it drives base "
        "models made of an embedding, a learned position table at most, decoder layers and a "
        "final norm, as Llama-like models and GPT-2): raise --check-memory so the whole model "
        "is checked"
    )
