"""Validation of a source's config: the rules a causal-LM reranker must meet to be converted.

Each rule raises :class:`BadInput` with one line naming the problem and the fix.

Over 300 lines: every rule a source's config must pass before anything is converted, each a
short function, kept together so that they read as one list of what a source must meet.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from reranker_seqcls.convert.architectures import (
    causal_lm_class,
    known_model_type,
    seq_cls_class,
)
from reranker_seqcls.convert.tokens import ResolvedToken
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import CONFIG_FILE
from reranker_seqcls.source import Source, read_json_object

LOGIT_SCALE_KEYS = ("logit_scale", "logits_scaling")
# Causal LMs that scale their logits after lm_head, by a config constant: (key, how), as the
# installed transformers' modeling code does it (verified by tests/test_families.py against
# ``models/<type>/modeling_<type>.py``; e.g. cohere: ``logits = logits * self.logit_scale``,
# granite: ``logits = logits / self.config.logits_scaling``). A scale is linear, so it is folded
# into score.weight. In transformers 5.24 none of these types has a *ForSequenceClassification
# class, so check_architecture refuses them before this matters; the fold is ready for when
# one does.
SCALED_LOGITS: dict[str, tuple[str, Literal["multiply", "divide"]]] = {
    "cohere": ("logit_scale", "multiply"),
    "cohere2": ("logit_scale", "multiply"),
    "cohere2_moe": ("logit_scale", "multiply"),
    "granite": ("logits_scaling", "divide"),
    "granite_swa": ("logits_scaling", "divide"),
    "granitemoe": ("logits_scaling", "divide"),
    "granitemoe_swa": ("logits_scaling", "divide"),
    "granitemoeshared": ("logits_scaling", "divide"),
    "granitemoehybrid": ("logits_scaling", "divide"),
    "hyperclovax": ("logits_scaling", "multiply"),
}


def check_architecture(config: dict[str, Any], *, allow_softcapping: bool = False) -> str:
    """Validate a source config; return the ``*ForSequenceClassification`` class name."""
    check_config_types(config)
    check_shape_values(config)
    from reranker_seqcls.recipes.refusals import refuse_by_config

    refuse_by_config(config)
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if not isinstance(model_type, str) or not model_type:
        raise BadInput("config.json has no model_type: the source is not a transformers checkpoint")
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise BadInput(
            f"the source is already a sequence classifier ({architectures[0]}): "
            "convert the causal-LM reranker it came from"
        )
    if not known_model_type(model_type):
        hint = (
            " and needs trust_remote_code, which is never enabled" if "auto_map" in config else ""
        )
        raise BadInput(
            f"model type {model_type!r} is unknown to the installed transformers{hint}: "
            "upgrade transformers or convert a model it supports"
        )
    causal = causal_lm_class(model_type)
    if not architectures or not all(
        str(a).endswith("ForCausalLM") or a == causal for a in architectures
    ):
        raise BadInput(
            f"config.json architectures {architectures or '(none)'} is not a causal LM: "
            "the source must be a *ForCausalLM reranker"
        )
    target = seq_cls_class(model_type)
    if target is None:
        raise BadInput(
            f"transformers has no sequence-classification class for model type {model_type!r}: "
            "this architecture cannot be served as a classifier"
        )
    softcap = config_value(config, "final_logit_softcapping")
    if softcap is not None and not allow_softcapping:
        raise BadInput(
            f"config sets final_logit_softcapping={softcap}: a linear score head cannot apply the "
            "tanh cap, so scores change; pass --allow-softcapping to convert anyway (the parity "
            "check reports the difference)"
        )
    logit_factor(config)  # validates the scaling keys
    return target


def logit_factor(config: dict[str, Any]) -> float:
    """The constant the source causal LM multiplies its logits by after ``lm_head``.

    Folded into the head for the model types whose transformers code applies it
    (``SCALED_LOGITS``). A scaling key on any other model type is refused: transformers ignores
    it there, so the source's own code (if it applies it) and transformers disagree.
    """
    model_type = str(config.get("model_type"))
    applied = SCALED_LOGITS.get(model_type)
    for key in LOGIT_SCALE_KEYS:
        value = config_value(config, key)
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value == 0
        ):
            raise BadInput(f"config sets {key}={value!r}: expected a finite non-zero number")
        if applied is not None and applied[0] == key:
            return float(value) if applied[1] == "multiply" else 1.0 / float(value)
        if float(value) != 1.0:
            raise BadInput(
                f"config sets {key}={value}, which transformers' {model_type} model does not "
                "apply: the source's own code may scale its logits, and a conversion cannot tell; "
                "remove the key if the model does not use it"
            )
    return 1.0


# The config keys the tool reads, and the JSON types each may have (null always allowed).
_NUMBER = (int, float)
CONFIG_TYPES: dict[str, tuple[type, ...]] = {
    "model_type": (str,),
    "architectures": (list,),
    "text_config": (dict,),
    "final_logit_softcapping": _NUMBER,
    "logit_scale": _NUMBER,
    "logits_scaling": _NUMBER,
    "tie_word_embeddings": (bool,),
    "vocab_size": (int,),
}


def check_config_types(config: dict[str, Any]) -> None:
    """Refuse a config whose keys the tool uses have the wrong JSON type, naming the key."""
    scopes = [("", config)]
    if isinstance(config.get("text_config"), dict):
        scopes.append(("text_config.", config["text_config"]))
    for prefix, scope in scopes:
        for key, types in CONFIG_TYPES.items():
            value = scope.get(key)
            wrong_bool = isinstance(value, bool) and bool not in types
            if value is not None and (
                wrong_bool or not isinstance(value, types) or not _representable(value)
            ):
                expected = " or ".join(dict.fromkeys(_JSON_TYPE_NAMES[t] for t in types))
                raise BadInput(
                    f"config.json {prefix}{key} is {_describe(value)}, expected {expected}: "
                    "fix the source config"
                )
    architectures = config.get("architectures") or []
    if not all(isinstance(a, str) for a in architectures):
        raise BadInput(
            "config.json architectures holds a non-string entry, expected class names: "
            "fix the source config"
        )
    vocab_size = config_value(config, "vocab_size")
    if vocab_size is not None and vocab_size <= 0:
        raise BadInput(f"config.json vocab_size is {vocab_size}: fix the source config")


def _representable(value: Any) -> bool:
    """JSON integers are unbounded; one too large for a float cannot be a scale or a size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() <= 64
    return True


_JSON_TYPE_NAMES = {
    str: "a string",
    list: "a list",
    dict: "an object",
    int: "a number",
    float: "a number",
    bool: "true/false",
}


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_vocab_size(
    config: dict[str, Any], tokens: Sequence[ResolvedToken], pad_token_id: int
) -> None:
    vocab_size = config_value(config, "vocab_size")
    if vocab_size is None:
        return
    named = [(f"classifier token {t.describe()}", t.id) for t in tokens]
    for what, token_id in [*named, (f"the pad token id {pad_token_id}", pad_token_id)]:
        if token_id >= vocab_size:
            raise BadInput(
                f"{what} is not below the config's vocab_size {vocab_size}: the tokenizer does "
                "not match the model"
            )


def config_value(config: dict[str, Any], key: str) -> Any:
    """A config key, or the same key of a multimodal config's ``text_config``."""
    if config.get(key) is not None:
        return config[key]
    text_config = config.get("text_config")
    return text_config.get(key) if isinstance(text_config, dict) else None


def read_config(source: Source) -> dict[str, Any]:
    config = read_json_object(source, CONFIG_FILE)
    if config is None:
        raise BadInput(
            f"{source.directory} has no config.json: the source must be a transformers checkpoint"
        )
    return config


# Shape keys the check's model (transformers' own class, built from config.json) sizes itself
# by: each must be a whole number in range, or the model object is a memory and CPU bomb before
# any weight is read. The widest real models are far below these bounds (hidden 16,384,
# intermediate 53,248, 128 layers); the shards' headers then prove the actual shapes.
SHAPE_BOUNDS: dict[str, int] = {
    "hidden_size": 2**20, "n_embd": 2**20, "d_model": 2**20,
    "intermediate_size": 2**22, "n_inner": 2**22, "ffn_dim": 2**22,
    "num_attention_heads": 2**14, "n_head": 2**14, "num_key_value_heads": 2**14,
    "head_dim": 2**16,
    "num_hidden_layers": 2**14, "n_layer": 2**14, "num_layers": 2**14, "n_layers": 2**14,
    "max_position_embeddings": 2**31, "n_positions": 2**31,
}  # fmt: skip
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
# transformers' rope initializations (modeling_rope_utils.ROPE_INIT_FUNCTIONS) and "default".
ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3", "proportional", "mrope")


def _text_scopes(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    scopes = [("", config)]
    if isinstance(config.get("text_config"), dict):
        scopes.append(("text_config.", config["text_config"]))
    return scopes


def check_shape_values(config: dict[str, Any]) -> None:
    """Refuse shape keys that are not whole numbers in range, and an unknown rope type."""
    for prefix, scope in _text_scopes(config):
        for key, bound in SHAPE_BOUNDS.items():
            value = scope.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
                raise BadInput(
                    f"config.json {prefix}{key} is {_describe(value)}, expected a whole number "
                    f"from 1 to {bound}: fix the source config"
                )
        for key in ("rope_scaling", "rope_parameters"):
            rope = scope.get(key)
            if rope is None:
                continue
            if not isinstance(rope, dict):
                raise BadInput(
                    f"config.json {prefix}{key} is {_describe(rope)}, expected an object: "
                    "fix the source config"
                )
            kind = rope.get("rope_type", rope.get("type"))
            if kind is not None and kind not in ROPE_TYPES:
                raise BadInput(
                    f"config.json {prefix}{key} has rope type {_describe(kind)}, expected one of "
                    f"{', '.join(ROPE_TYPES)}: fix the source config"
                )


def config_layer_count(config: dict[str, Any]) -> tuple[str, int] | None:
    """(key, value) of the config's decoder layer count (a multimodal config's text_config
    first), or None when it names none."""
    for prefix, scope in reversed(_text_scopes(config)):
        for key in LAYER_KEYS:
            value = scope.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return prefix + key, value
    return None


_LAYER_INDEX = re.compile(r"^(.*?(?:^|\.)(?:layers|h|blocks|block|layer))\.(\d{1,9})\.")


def header_layer_stacks(tensor_names: Iterable[str]) -> dict[str, set[int]]:
    """The numbered layer stacks the headers hold: prefix (``model.layers``) → indices."""
    stacks: dict[str, set[int]] = {}
    for name in tensor_names:
        match = _LAYER_INDEX.match(name)
        if match:
            stacks.setdefault(match.group(1), set()).add(int(match.group(2)))
    return stacks


def check_layer_count(config: dict[str, Any], tensor_names: Iterable[str]) -> None:
    """The config's layer count must be a stack of layers 0..n-1 the shards' headers hold (more
    is allowed): transformers builds the model from the config, so a count the weights do not
    back would build (and check) layers that do not exist."""
    counted = config_layer_count(config)
    if counted is None:
        return
    key, count = counted
    stacks = header_layer_stacks(tensor_names)
    # At least 0..n-1: a checkpoint may hold more (DeepSeek-V3's extra MTP layer 61 of 61).
    if any(set(range(count)) <= indices for indices in stacks.values()):
        return
    held = (
        "; ".join(f"{prefix}.{min(i)}-{max(i)} ({len(i)})" for prefix, i in sorted(stacks.items()))
        or "none"
    )
    raise BadInput(
        f"config.json {key} is {count}, but the shards hold layer stacks {held}: the config "
        "does not match the weights, re-download the checkpoint"
    )
