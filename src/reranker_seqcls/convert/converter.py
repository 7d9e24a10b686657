"""The streaming conversion: causal-LM reranker directory → seq-cls checkpoint directory.

No model is ever instantiated and torch is not imported (except to read a pickle checkpoint the
user explicitly allowed). Only the classifier rows of the head are read; shards that do not hold
``lm_head.weight`` are placed by reflink/hard link/copy; the shard that does is rewritten by
copying byte ranges; ``score.weight`` goes into a small shard of its own.

Everything is validated before the first byte is written, output goes to a temporary directory
beside OUTPUT and is renamed into place at the end, so an error or Ctrl-C leaves no half-written
OUTPUT.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reranker_seqcls import __version__
from reranker_seqcls.convert.architectures import (
    causal_lm_class,
    known_model_type,
    seq_cls_class,
)
from reranker_seqcls.convert.tokens import (
    ResolvedToken,
    TokenizerFiles,
    resolve_pad_id,
    resolve_tokens,
)
from reranker_seqcls.errors import BadInput
from reranker_seqcls.names import (
    CONFIG_FILE,
    LICENSE_PATTERNS,
    PROVENANCE_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_PATTERNS,
)
from reranker_seqcls.recipes.recipe import Recipe
from reranker_seqcls.safetensors_io.checkpoint import (
    INDEX_NAME,
    SINGLE_NAME,
    Checkpoint,
    copy_new_file,
    encode_floats,
    place_file,
    write_index,
    write_shard,
    write_shard_without,
)
from reranker_seqcls.source import Source, check_no_overlap, read_json_object, unique_names

IDENTITY = "torch.nn.modules.linear.Identity"

HEAD_NAME = "lm_head.weight"
SCORE_NAME = "score.weight"
SCORE_SHARD = "score.safetensors"
# transformers loads a lone model.safetensors and ignores the index beside it, so a single-file
# source is placed under a sharded name once score.safetensors joins it.
SINGLE_FILE_RENAMED = "model-00001-of-00001.safetensors"
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")
# Keys that make vLLM re-convert from lm_head at load time (which a converted checkpoint lacks),
# and the deprecated sep/pad switch vLLM reads before use_sep_token.
VLLM_RECONVERT_KEYS = (
    "method",
    "classifier_from_token",
    "is_original_qwen3_reranker",
    "use_pad_token",
)
# Pointers to code outside transformers: a converted checkpoint published under the user's name
# must load with stock classes, never with code from the source (or another repo it names).
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines", "trust_remote_code")
LOGIT_SCALE_KEYS = ("logit_scale", "logits_scaling")
# Causal LMs that scale their logits after lm_head, by a config constant: (key, how), as the
# installed transformers' modeling code does it (verified by tests/test_families.py against
# ``models/<type>/modeling_<type>.py``; e.g. cohere: ``logits = logits * self.logit_scale``,
# granite: ``logits = logits / self.config.logits_scaling``). A scale is linear, so it is folded
# into score.weight. In transformers 5.24 none of these types has a *ForSequenceClassification
# class, so check_architecture refuses them before this matters; the fold is ready for when
# one does.
SCALED_LOGITS: dict[str, tuple[str, str]] = {
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
SIGMOID = "torch.nn.modules.activation.Sigmoid"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SourceRef:
    """Where the source came from, recorded in the provenance file."""

    name: str  # repo id or directory name; also used to detect the preset
    repo_id: str | None = None
    revision: str | None = None
    commit_sha: str | None = None

    @classmethod
    def local(cls, path: Path) -> SourceRef:
        return cls(name=path.resolve().name)

    def to_json(self) -> dict[str, str | None]:
        return {
            "name": self.name,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit_sha": self.commit_sha,
        }


@dataclass
class Plan:
    """Everything a conversion will do, decided and validated before anything is written."""

    source: Path
    recipe: Recipe
    config: dict[str, Any]
    architecture: str
    tokens: list[ResolvedToken]
    pad_token_id: int
    head_name: str  # the tensor whose rows become score.weight
    untied_head: bool  # lm_head.weight exists and must be dropped
    pickle_files: list[Path] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    files: Source | None = None  # the trusted view of ``source``
    verbatim: list[str] = field(default_factory=list)  # tokenizer and license files to copy
    # score.weight = rows x scale: the recipe's scale times the source's own logit scaling.
    scale: float = 1.0
    logit_factor: float = 1.0  # the source config's logit_scale / 1/logits_scaling


@dataclass
class ConversionResult:
    output: Path
    plan: Plan
    dtype: str
    placed: dict[str, str]  # output file name → "rewritten" | "hard-linked" | "copied" | ...
    provenance: dict[str, Any]


def convert(
    source: Path,
    output: Path,
    recipe: Recipe,
    *,
    source_ref: SourceRef | None = None,
    force: bool = False,
    copy: bool = False,
    allow_pickle: bool = False,
    allow_softcapping: bool = False,
    log: Log = _stderr,
) -> ConversionResult:
    """Convert ``source`` into ``output``; see the module docstring for the guarantees."""
    source = Path(source)
    output = Path(os.path.abspath(output))  # "." and "dir/.." get a real name to rename onto
    _check_output(Source(source), output, force)
    plan = plan_conversion(
        source, recipe, allow_pickle=allow_pickle, allow_softcapping=allow_softcapping
    )
    log(f"recipe: {recipe.name} ({recipe.method}, {recipe.describe_classifier()})")
    for token in plan.tokens:
        log(f"classifier token {token.describe()}")
    if plan.logit_factor != 1.0:
        log(f"source scales its logits by {plan.logit_factor:g} after the head: folded in")
    if plan.scale != 1.0:
        log(f"score.weight = head rows x {plan.scale:g} (computed in float64, rounded once)")
    log(f"served score (vLLM, sentence-transformers): {served_score(plan)}")
    ref = source_ref or SourceRef.local(source)

    created = _make_parents(output.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; OUTPUT gets a normal directory mode
    try:
        dtype, placed = _write(plan, tmp, copy=copy, log=log)
        provenance = build_provenance(plan, ref, dtype)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
        _write_readme(tmp, output, provenance, recipe)
        _move_into_place(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for directory in reversed(created):
            _rmdir_quiet(directory)
        raise
    rewritten = sorted(n for n, how in placed.items() if how == "rewritten")
    log(
        f"wrote {output} ({plan.architecture}, {recipe.num_labels} label(s), {dtype}); "
        f"rewritten shards: {', '.join(rewritten) or 'none'}"
    )
    return ConversionResult(output, plan, dtype, placed, provenance)


# --------------------------------------------------------------------------- validation


def plan_conversion(
    source: Path, recipe: Recipe, *, allow_pickle: bool = False, allow_softcapping: bool = False
) -> Plan:
    files = Source(source)
    config = _read_config(files)
    architecture = check_architecture(config, allow_softcapping=allow_softcapping)
    tokenizer = TokenizerFiles(files)
    tokens = resolve_tokens(tokenizer, recipe.classifier)
    pad_token_id = resolve_pad_id(tokenizer)
    _check_vocab_size(config, tokens, pad_token_id)

    plan = Plan(source, recipe, config, architecture, tokens, pad_token_id, "", False)
    plan.files = files
    plan.verbatim = files.listing((*TOKENIZER_PATTERNS, *LICENSE_PATTERNS))
    plan.logit_factor = logit_factor(config)
    plan.scale = recipe.scale * plan.logit_factor
    if files.has(INDEX_NAME) or files.listing(["*.safetensors"]):
        plan.checkpoint = Checkpoint(files)
        _check_output_names(plan.checkpoint)
        names: set[str] = set(plan.checkpoint.location)
    else:
        plan.pickle_files = _pickle_files(files)
        if not plan.pickle_files:
            raise BadInput(f"no weights in {source}: expected *.safetensors files")
        if not allow_pickle:
            raise BadInput(
                f"{source} has only pickle weights ({plan.pickle_files[0].name}), which can run "
                "code when loaded: pass --allow-pickle to load them with torch weights_only=True"
            )
        names = set()  # resolved after the pickle files are read into safetensors
    if SCORE_NAME in names or os.path.lexists(source / SCORE_SHARD):
        raise BadInput(f"the source already has {SCORE_SHARD}: convert the original causal LM")
    if plan.checkpoint is not None:
        _locate_head(plan)
    return plan


def _locate_head(plan: Plan) -> None:
    """Fill in the head tensor of ``plan.checkpoint`` and check the token ids fit it."""
    assert plan.checkpoint is not None
    names = set(plan.checkpoint.location)
    plan.head_name, plan.untied_head = head_tensor(plan.checkpoint, plan.config, names)
    _check_head_shape(plan.checkpoint, plan.head_name, plan.tokens)
    _check_pad_id(plan.checkpoint, plan.head_name, plan.pad_token_id)


def check_architecture(config: dict[str, Any], *, allow_softcapping: bool = False) -> str:
    """Validate a source config; return the ``*ForSequenceClassification`` class name."""
    check_config_types(config)
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
    import math

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


def served_score(plan: Plan | Recipe) -> str:
    """What consumers (vLLM, sentence-transformers) of the converted checkpoint return."""
    recipe = plan.recipe if isinstance(plan, Plan) else plan
    if recipe.num_labels != 1:
        return "the raw logits of the classifier tokens (Identity)"
    if recipe.activation_fn == IDENTITY:
        return "the raw score logit (Identity activation, as the source's CrossEncoder)"
    formula = recipe.score_formula
    if formula.startswith("sigmoid"):
        return f"sigmoid(score logit) = {formula}, the family's own score"
    if formula:
        return f"sigmoid(score logit); the family's own code returns {formula}"
    return "sigmoid(score logit)"


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


def _check_vocab_size(
    config: dict[str, Any], tokens: list[ResolvedToken], pad_token_id: int
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


def _read_config(source: Source) -> dict[str, Any]:
    config = read_json_object(source, CONFIG_FILE)
    if config is None:
        raise BadInput(
            f"{source.directory} has no config.json: the source must be a transformers checkpoint"
        )
    return config


def head_tensor(ckpt: Checkpoint, config: dict[str, Any], names: set[str]) -> tuple[str, bool]:
    """The tensor whose rows become score.weight, and whether it is an untied lm_head."""
    if HEAD_NAME in names:
        return HEAD_NAME, True
    for suffix in EMBEDDING_SUFFIXES:
        embedding = ckpt.find(suffix)
        if embedding is not None:
            break
    else:
        raise BadInput(
            "the checkpoint has neither lm_head.weight nor input embeddings: it is incomplete"
        )
    if config.get("tie_word_embeddings") is False:
        raise BadInput(
            "config.json says tie_word_embeddings=false but the checkpoint has no lm_head.weight: "
            "the checkpoint is incomplete, re-download it"
        )
    return embedding, False


def _check_head_shape(ckpt: Checkpoint, head_name: str, tokens: list[ResolvedToken]) -> None:
    info = ckpt.tensor(head_name)
    if len(info.shape) != 2:
        raise BadInput(f"{head_name} has shape {list(info.shape)}, expected [vocab, hidden]")
    too_big = [t for t in tokens if t.id >= info.shape[0]]
    if too_big:
        raise BadInput(
            f"classifier token {too_big[0].describe()} is outside {head_name} "
            f"({info.shape[0]} rows): the tokenizer does not match the weights"
        )


def _check_pad_id(ckpt: Checkpoint, head_name: str, pad_token_id: int) -> None:
    """The classifier pools at the last non-pad token: the pad id must be a real embedding row."""
    embedding = next((e for s in EMBEDDING_SUFFIXES if (e := ckpt.find(s))), None)
    info = ckpt.tensor(embedding or head_name)
    if len(info.shape) == 2 and not 0 <= pad_token_id < info.shape[0]:
        raise BadInput(
            f"the pad token id {pad_token_id} is outside {info.name} ({info.shape[0]} rows): "
            "the tokenizer does not match the weights"
        )


def _check_output_names(ckpt: Checkpoint) -> None:
    """The names the shards get in OUTPUT are distinct and never one of the files written."""
    reserved = {SCORE_SHARD, INDEX_NAME, CONFIG_FILE, PROVENANCE_FILE}
    seen: set[str] = set()
    for source_name in ckpt.shards:
        name = SINGLE_FILE_RENAMED if source_name == SINGLE_NAME else source_name
        if name in reserved:
            raise BadInput(
                f"the source has a shard named {name!r}, a file the conversion writes: "
                "convert the original causal LM"
            )
        if name in seen:
            raise BadInput(
                f"the source has both {SINGLE_NAME} and {name!r}: remove the stray file or add "
                "a model.safetensors.index.json"
            )
        seen.add(name)


PICKLE_INDEX = "pytorch_model.bin.index.json"


def _pickle_files(source: Source) -> list[Path]:
    index = read_json_object(source, PICKLE_INDEX)
    if index is None:
        names = [n for n in source.listing(["*.bin"]) if "/" not in n]
    else:
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise BadInput(f"{PICKLE_INDEX} is not a valid index: re-download the checkpoint")
        names = unique_names(weight_map.values(), what=PICKLE_INDEX)
    files = []
    for name in names:
        path = source.file(name, what=PICKLE_INDEX)
        if path is None:
            raise BadInput(f"{PICKLE_INDEX} names {name!r}, which is missing: re-download it")
        files.append(path)
    return files


# --------------------------------------------------------------------------- output


def _check_output(source: Source, output: Path, force: bool) -> None:
    if not output.name:
        raise BadInput(f"output {output} has no name to create: give a directory path")
    check_no_overlap(source, output)
    if output.is_symlink():
        raise BadInput(f"output {output} is a symlink: give the real directory path")
    if output.exists() and not output.is_dir():
        raise BadInput(f"output {output} exists and is a file: give a directory path")
    if output.is_dir() and any(output.iterdir()) and not force:
        raise BadInput(f"output {output} is not empty: pass --force to replace it")


def _make_parents(parent: Path) -> list[Path]:
    missing = []
    for directory in [parent, *parent.parents]:
        if directory.exists():
            break
        missing.append(directory)
    parent.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _rmdir_quiet(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()


def _move_into_place(tmp: Path, output: Path) -> None:
    """Rename the finished directory onto OUTPUT; an old OUTPUT is removed only afterwards."""
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(old)
    try:
        tmp.rename(output)
    except BaseException:
        if old is not None:
            old.rename(output)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(plan: Plan, out: Path, *, copy: bool, log: Log) -> tuple[str, dict[str, str]]:
    if plan.checkpoint is None:
        from reranker_seqcls.safetensors_io.pickle_weights import stage_pickle_weights

        staging = out / ".staging"
        staging.mkdir()
        stage_pickle_weights(plan.pickle_files, staging, log=log)
        plan.checkpoint = Checkpoint(staging)
        _locate_head(plan)
        copy = False  # the staged files are ours: linking them is a move
    else:
        staging = None

    ckpt = plan.checkpoint
    score, dtype = compute_score(
        ckpt, plan.head_name, [t.id for t in plan.tokens], plan.recipe.method, plan.scale
    )
    placed: dict[str, str] = {}
    weight_map: dict[str, str] = {}
    total = 0
    head_shard = ckpt.location[plan.head_name] if plan.untied_head else None
    progress = _progress_bar(sum(s.path.stat().st_size for s in ckpt.shards.values()))
    for source_name, shard in ckpt.shards.items():
        progress.update(shard.path.stat().st_size)
        shard_name = SINGLE_FILE_RENAMED if source_name == SINGLE_NAME else source_name
        target = out / shard_name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source_name == head_shard:
            kept = write_shard_without(shard, target, {HEAD_NAME})
            if not kept:
                target.unlink()
                placed[shard_name] = "dropped (held only lm_head)"
                continue
            placed[shard_name] = "rewritten"
        elif not shard.tensors:  # a valid but empty shard: the index could not name it
            placed[shard_name] = "dropped (holds no tensors)"
            log(f"{shard_name}: {placed[shard_name]}")
            continue
        else:
            kept = list(shard.tensors)
            placed[shard_name] = place_file(shard.path, target, force_copy=copy)
        log(f"{shard_name}: {placed[shard_name]}")
        for name in kept:
            weight_map[name] = shard_name
            total += shard.tensors[name].nbytes
    progress.close()

    raw = encode_floats(score, dtype)
    write_shard(out / SCORE_SHARD, [(SCORE_NAME, dtype, (len(score), len(score[0])), raw)])
    placed[SCORE_SHARD] = "written"
    weight_map[SCORE_NAME] = SCORE_SHARD
    total += len(raw)
    write_index(out / INDEX_NAME, weight_map, total)

    if staging is not None:
        shutil.rmtree(staging)
    (out / CONFIG_FILE).write_text(json.dumps(output_config(plan), indent=2) + "\n")
    assert plan.files is not None
    _copy_verbatim(plan.files, plan.verbatim, out, log)
    for name, content in _consumer_files(plan.recipe).items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return dtype, placed


class _NoBar:
    def update(self, _n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int) -> Any:
    """A byte progress bar over the shards on a terminal; nothing in logs and pipes (the per-shard
    log lines say the same)."""
    if not sys.stderr.isatty() or os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS"):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc="convert", leave=False)


def compute_score(
    ckpt: Checkpoint, head_name: str, token_ids: list[int], method: str, scale: float = 1.0
) -> tuple[list[list[float]], str]:
    """The score weight rows (float64) and the dtype to store them in (the head's own).

    The difference of two float32-exact values is exact in double precision; a scale is one
    double multiplication. :func:`encode_floats` then rounds each value once to the storage
    dtype, so the head is the correctly rounded ``scale * (W_t - W_f)``.
    """
    dtype = ckpt.tensor(head_name).dtype
    rows = ckpt.read_rows(head_name, token_ids)
    if method == "from_2_way_softmax":
        # softmax([l_false, l_true])[true] = sigmoid(l_true - l_false) = sigmoid((W_t - W_f) h)
        rows = [[t - f for f, t in zip(rows[0], rows[1], strict=True)]]
    if scale != 1.0:
        rows = [[v * scale for v in row] for row in rows]
    return rows, dtype


def output_config(plan: Plan) -> dict[str, Any]:
    dropped = (*VLLM_RECONVERT_KEYS, *REMOTE_CODE_KEYS)
    config = {k: v for k, v in plan.config.items() if k not in dropped}
    recipe = plan.recipe
    texts = [t.text for t in plan.tokens]
    if recipe.method == "from_2_way_softmax":
        labels = [f"{texts[1]}-vs-{texts[0]}"]
    else:
        labels = texts
    config["architectures"] = [plan.architecture]
    config["num_labels"] = len(labels)
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    config["pad_token_id"] = plan.pad_token_id
    config["use_sep_token"] = False
    if len(labels) == 1:
        config["sentence_transformers"] = {"activation_fn": recipe.activation_fn or SIGMOID}
    return config


def build_provenance(plan: Plan, ref: SourceRef, dtype: str) -> dict[str, Any]:
    return {
        "tool": {"name": "reranker-seqcls", "version": __version__},
        "source": ref.to_json(),
        "recipe": plan.recipe.to_json(),
        "classifier": {
            "tokens": [t.text for t in plan.tokens],
            "token_ids": [t.id for t in plan.tokens],
            "pieces": [t.piece for t in plan.tokens],
            "method": plan.recipe.method,
            "num_labels": plan.recipe.num_labels,
            "score_from": plan.head_name,
            "dtype": dtype,
            "scale": plan.scale,
            "source_logit_factor": plan.logit_factor,
            "served_score": served_score(plan),
            "score_formula": plan.recipe.score_formula or None,
        },
        "architecture": plan.architecture,
        "pad_token_id": plan.pad_token_id,
    }


def _write_readme(tmp: Path, output: Path, provenance: dict[str, Any], recipe: Recipe) -> None:
    """A short README saying how to serve OUTPUT (vLLM needs the template passed explicitly);
    ``push`` replaces it with the full model card."""
    from reranker_seqcls.convert.consumer_files import TEMPLATE_FILE_NAME
    from reranker_seqcls.hub.card import render_local_readme, write_card

    template = TEMPLATE_FILE_NAME if recipe.template is not None else None
    write_card(tmp, render_local_readme(output, provenance, template))


def _copy_verbatim(source: Source, names: list[str], out: Path, log: Log) -> None:
    """Tokenizer and license files, byte for byte (listed and checked by :class:`Source` when
    planning: no file outside the source is ever copied); a tokenizer config loses its
    remote-code pointers."""
    for relative in names:
        path = source.file(relative)
        if path is None:
            raise BadInput(f"{relative!r} disappeared from the source during the conversion")
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if relative == TOKENIZER_CONFIG_FILE:
            tokenizer_config = source.read_json(relative)  # parsed once already by TokenizerFiles
            present = tokenizer_config if isinstance(tokenizer_config, dict) else {}
            remote = [k for k in REMOTE_CODE_KEYS if k in present]
            if remote:
                kept = {k: v for k, v in present.items() if k not in remote}
                target.write_text(json.dumps(kept, indent=2, ensure_ascii=False) + "\n")
                log(f"{relative}: dropped {', '.join(remote)} (remote code is never published)")
                continue
        copy_new_file(path, target)


def _consumer_files(recipe: Recipe) -> dict[str, bytes]:
    from reranker_seqcls.convert.consumer_files import consumer_files

    return consumer_files(recipe, recipe.num_labels)
