"""What the GGUF's metadata is read from: the converted checkpoint's ``config.json`` (the
hyperparameters), ``tokenizer.json``/``tokenizer_config.json`` (the vocabulary, merges, token
types and special ids) and its scoring template (the ``rerank`` chat template). Each missing or
malformed input is a one-line :class:`BadInput` naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE

if TYPE_CHECKING:
    from reranker_seqcls.recipes.recipe import Recipe

QUERY, DOCUMENT = "{query}", "{document}"


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


def template_strips(converted: Path) -> bool:
    """Whether the checkpoint's scoring template strips the query and the document of
    surrounding whitespace (zerank-2's, as zeroentropy's own code does). llama-server
    substitutes them literally into the ``rerank`` template, so its client must strip them."""
    from reranker_seqcls.recipes.render import render_scoring_prompt

    path = converted / CHAT_TEMPLATE_FILE
    if not path.is_file():
        return False
    template, specials = path.read_text("utf-8"), _special_strings(converted)
    padded = render_scoring_prompt(
        template, f" \n{QUERY}\n ", f" \n{DOCUMENT}\n ", None, special_tokens=specials
    )
    return padded == render_scoring_prompt(template, QUERY, DOCUMENT, None, special_tokens=specials)


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
