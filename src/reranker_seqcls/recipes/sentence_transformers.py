"""Recipes read from a source's sentence-transformers v6 CrossEncoder "LogitScore" files.

sentence-transformers 6 saves a causal-LM cross-encoder as a ``Transformer`` module (task
``text-generation``) followed by a ``LogitScore`` module whose ``config.json`` names the true and
false token ids; the score is ``l[true] - l[false]`` at the last position (``l[true]`` when
false is null), then the activation of ``config_sentence_transformers.json``. Pairs are rendered
as ``query``/``document`` messages through the saved ``chat_template.jinja`` with
``processing_kwargs["chat_template"]`` as template variables. That is a complete recipe, so such
a source converts with no recipe flag.

The reading follows vLLM's ``get_sentence_transformers_cross_encoder_config`` as its tests pin it
(docs/families.md): ids must be non-negative ints, ``module_input_name`` ``causal_logits``, the
message format ``structured``, a chat template must exist, and ``text.max_length``,
``continue_final_message`` and a string ``add_generation_prompt`` are refused. True only →
the one-token method on ``[true]``; true and false → the two-way method on ``[false, true]``
(:mod:`.methods`). The source's activation is kept, so the converted checkpoint serves what the
source's own CrossEncoder returns (Identity → raw logit).

Only the JSON files are read; nothing here imports torch or sentence-transformers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import (
    CHAT_TEMPLATE_FILE,
    CONFIG_FILE,
    ST_MODEL_CONFIG_FILE,
    ST_MODULE_CONFIG_FILE,
    ST_MODULES_FILE,
    TOKENIZER_CONFIG_FILE,
)
from reranker_seqcls.recipes.methods import FROM_2_WAY_SOFTMAX, NO_POST_PROCESSING, Method
from reranker_seqcls.recipes.options import MAX_TEMPLATE_BYTES
from reranker_seqcls.recipes.recipe import Recipe

MODULES_FILE = ST_MODULES_FILE
MODULE_CONFIG_FILE = ST_MODULE_CONFIG_FILE
MODEL_CONFIG_FILE = ST_MODEL_CONFIG_FILE
TEMPLATE_FILE = CHAT_TEMPLATE_FILE
TRANSFORMER_TYPE = "sentence_transformers.base.modules.transformer.Transformer"
LOGIT_SCORE_TYPE = "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"
ACTIVATIONS = ("torch.nn.modules.activation.Sigmoid", "torch.nn.modules.linear.Identity")
ST_RECIPE_NAME = "sentence-transformers"


def _load(source: Path, name: str, *, required: bool = True) -> Any:
    """A JSON file of the source, read through the trust boundary (:class:`~.source.Source`:
    no link out of the source, bounded size and nesting); ``{}`` for an absent optional file."""
    from reranker_seqcls.source import Source, read_json_file

    path = Source(source).file(name)
    if path is None:
        if not required:
            return {}
        raise BadInput(
            f"the sentence-transformers files name {name!r}, which is missing: re-download the "
            "checkpoint"
        )
    return read_json_file(path, name)


def _has(source: Path, name: str) -> bool:
    from reranker_seqcls.source import Source

    return Source(source).has(name)


def _logit_score_module(source: Path) -> str | None:
    """The LogitScore module's folder, or None when the source is not a LogitScore model."""
    if not _has(source, MODULES_FILE):
        return None
    modules = _load(source, MODULES_FILE)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise BadInput(f"{MODULES_FILE} is not a list of modules: re-download the checkpoint")
    types = [str(m.get("type", "")) for m in modules]
    if LOGIT_SCORE_TYPE not in types:
        return None
    if len(modules) != 2 or types[0] != TRANSFORMER_TYPE or modules[0].get("path") not in ("", "."):
        raise BadInput(
            f"{MODULES_FILE} lists {types}: only a Transformer followed by a LogitScore is a "
            "linear score; convert with --preset or --tokens/--method instead"
        )
    folder = modules[1].get("path")
    if not isinstance(folder, str) or not folder or ".." in Path(folder).parts or folder[0] == "/":
        raise BadInput(f"{MODULES_FILE} gives the LogitScore module an invalid path {folder!r}")
    return folder


def _token_id(value: Any, key: str, vocab_size: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise BadInput(f"LogitScore {key} {shown} is not a non-negative integer token id")
    if value >= 2**31:  # with no vocab_size to compare, still no vocabulary is that large
        raise BadInput(f"LogitScore {key} {value} is outside any vocabulary (ids below 2^31)")
    if vocab_size is not None and value >= vocab_size:
        raise BadInput(f"LogitScore {key} {value} is outside the vocabulary ({vocab_size} ids)")
    return value


def _template_prefix(processing: Any) -> str:
    """``processing_kwargs`` as fixed template variables (``{% set %}`` lines)."""
    if processing is None:
        return ""
    if not isinstance(processing, dict):
        raise BadInput(f"{MODULE_CONFIG_FILE} processing_kwargs is not an object")
    unknown = sorted(set(processing) - {"chat_template", "text"})
    if unknown:
        raise BadInput(
            f"{MODULE_CONFIG_FILE} processing_kwargs has {unknown[0]!r}: LogitScore supports only "
            "chat_template variables"
        )
    text = processing.get("text") or {}
    if not isinstance(text, dict) or text:
        raise BadInput(
            f"{MODULE_CONFIG_FILE} processing_kwargs.text {text!r}: LogitScore supports no text "
            "options (max_length would truncate the prompt)"
        )
    variables = processing.get("chat_template") or {}
    if not isinstance(variables, dict):
        raise BadInput(f"{MODULE_CONFIG_FILE} processing_kwargs.chat_template is not an object")
    lines = []
    for key, value in sorted(variables.items()):
        if key == "continue_final_message":
            raise BadInput(
                "processing_kwargs.chat_template.continue_final_message: LogitScore supports only "
                "prompts that end where the score is read; remove it"
            )
        if not isinstance(value, bool) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise BadInput(
                f"processing_kwargs.chat_template.{key} = {value!r}: LogitScore supports only "
                'boolean template variables (write true, not "true")'
            )
        lines.append(f"{{%- set {key} = {'true' if value else 'false'} -%}}")
    return "".join(f"{line}\n" for line in lines)


def _chat_template(source: Path) -> str:
    from reranker_seqcls.source import Source

    path = Source(source).file(TEMPLATE_FILE)
    if path is not None:
        with path.open("rb") as fh:  # bounded: a template is text, never megabytes
            raw = fh.read(MAX_TEMPLATE_BYTES + 1)
        if len(raw) > MAX_TEMPLATE_BYTES:
            raise BadInput(f"{TEMPLATE_FILE} is larger than 1 MiB: it is not a chat template")
        text = raw.decode("utf-8", errors="replace")
    else:
        loaded = _load(source, TOKENIZER_CONFIG_FILE, required=False)
        found = loaded.get("chat_template") if isinstance(loaded, dict) else None
        text = found if isinstance(found, str) else ""
    if not isinstance(text, str) or not text.strip():
        raise BadInput(
            "the sentence-transformers files score messages but the source has no chat template "
            f"({TEMPLATE_FILE}): add the scoring template or convert with --template"
        )
    return text


def _score_token_ids(source: Path, folder: str) -> tuple[int, int | None]:
    """The LogitScore module's true (and false) token ids, checked against the vocabulary."""
    module = _load(source, f"{folder}/{CONFIG_FILE}")
    if not isinstance(module, dict):
        raise BadInput(f"{folder}/config.json is not a JSON object: re-download the checkpoint")
    if module.get("module_input_name", "causal_logits") != "causal_logits":
        raise BadInput(
            f"LogitScore module_input_name {module.get('module_input_name')!r}: only "
            "causal_logits (the causal LM's logits) can become a score head"
        )
    config = _load(source, CONFIG_FILE, required=False)
    vocab_size = config.get("vocab_size") if isinstance(config, dict) else None
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool):
        vocab_size = None
    true_id = _token_id(module.get("true_token_id"), "true_token_id", vocab_size)
    false_raw = module.get("false_token_id")
    false_id = None if false_raw is None else _token_id(false_raw, "false_token_id", vocab_size)
    return true_id, false_id


def _message_template_prefix(source: Path) -> str:
    """The fixed template variables of the structured message modality (as a Jinja prefix)."""
    settings = _load(source, MODULE_CONFIG_FILE, required=False)
    if not isinstance(settings, dict):
        raise BadInput(f"{MODULE_CONFIG_FILE} is not a JSON object: re-download the checkpoint")
    task = settings.get("transformer_task")
    if task != "text-generation":
        raise BadInput(
            f"{MODULE_CONFIG_FILE} transformer_task {task!r}: a LogitScore model reads the "
            "logits of a text-generation transformer"
        )
    modality = settings.get("modality_config") or {}
    if not isinstance(modality, dict):
        raise BadInput(
            f"{MODULE_CONFIG_FILE} modality_config is not a JSON object: re-download the checkpoint"
        )
    message = modality.get("message")
    if not isinstance(message, dict):
        raise BadInput(
            f"{MODULE_CONFIG_FILE} declares no message modality, so pairs would be scored as raw "
            "text without a prompt: convert with --preset or --template"
        )
    if message.get("format") != "structured":
        raise BadInput(
            f"{MODULE_CONFIG_FILE} message format {message.get('format')!r}: only 'structured' "
            "LogitScore models are read (as vLLM does); save the model with format structured"
        )
    return _template_prefix(settings.get("processing_kwargs"))


def _activation(source: Path) -> str:
    model_config = _load(source, MODEL_CONFIG_FILE, required=False)
    activation = model_config.get("activation_fn") if isinstance(model_config, dict) else None
    activation = activation or ACTIVATIONS[0]  # sentence-transformers' default for one score
    if activation not in ACTIVATIONS:
        raise BadInput(
            f"{MODEL_CONFIG_FILE} activation_fn {activation!r}: only Sigmoid or Identity can be "
            "served by every consumer of a converted checkpoint"
        )
    return str(activation)


def st_recipe(source: Path) -> Recipe | None:
    """The recipe a source's LogitScore files describe; None when it has none."""
    folder = _logit_score_module(source)
    if folder is None:
        return None
    true_id, false_id = _score_token_ids(source, folder)
    prefix = _message_template_prefix(source)
    template = prefix + _chat_template(source)
    activation = _activation(source)

    two_way = false_id is not None
    if two_way and false_id == true_id:
        raise BadInput(f"LogitScore true and false token ids are both {true_id}: give distinct ids")
    ids = (false_id, true_id) if two_way else (true_id,)
    method: Method = FROM_2_WAY_SOFTMAX if two_way else NO_POST_PROCESSING
    served = "raw score logit" if activation.endswith("Identity") else "sigmoid(score logit)"
    formula = f"l(id {true_id}) - l(id {false_id})" if two_way else f"l(id {true_id})"
    fixed = ", ".join(line.split()[2] for line in prefix.splitlines()) or "none"
    return Recipe(
        name=ST_RECIPE_NAME,
        tokens=(),
        method=method,
        template=template,
        prepend_bos=False,
        prompt_style=ST_RECIPE_NAME,
        description=(
            f"recipe from the source's sentence-transformers files: LogitScore ids {list(ids)} "
            f"({method}), scale 1, {TEMPLATE_FILE} (fixed variables: {fixed}), activation "
            f"{activation.rsplit('.', 1)[-1]}: the converted checkpoint serves {served} like "
            "the source's CrossEncoder"
        ),
        token_ids=ids,  # type: ignore[arg-type]
        activation_fn=activation,
        bos_rule="as the saved chat template writes it (rendered, tokenized without specials)",
        score_formula=formula,
        facts_source=f"the source's {MODULES_FILE}, {folder}/config.json, {MODULE_CONFIG_FILE}",
    )


def reconcile(
    detected: Recipe | None, from_files: Recipe, source: Path, source_name: str
) -> Recipe:
    """The name's preset when the files agree with it (its official template and scale win),
    the files' recipe when the name names no family; a disagreement is refused."""
    if detected is None:
        return from_files
    from reranker_seqcls.convert.tokens import TokenizerFiles, resolve_tokens

    preset_ids = tuple(t.id for t in resolve_tokens(TokenizerFiles(source), detected.classifier))
    if preset_ids == from_files.token_ids and detected.method == from_files.method:
        return detected
    raise BadInput(
        f"the sentence-transformers files of {source_name} score ids {list(from_files.token_ids)} "
        f"({from_files.method}) but its name says {detected.name} (ids {list(preset_ids)}, "
        f"{detected.method}): pass --preset {detected.name} or --token-ids/--method to choose"
    )
