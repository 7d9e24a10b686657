"""Recipes: what makes a causal LM a reranker, and the registry of known families.

A recipe is the classifier tokens (strings, or vocabulary ids where the string differs between a
family's vocabularies), the method that turns their logits into a score, a constant scale the score
logit is multiplied by, the prompt template the family was trained with, and whether the prompt
starts with the tokenizer's BOS. Every preset also says where its facts come from
(``docs/families.md``).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Literal

from reranker_seqcls.errors import BadInput
from reranker_seqcls.log import Log

Method = Literal["from_2_way_softmax", "no_post_processing"]
METHODS: tuple[Method, ...] = ("from_2_way_softmax", "no_post_processing")

QWEN3_DEFAULT_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query"
)


@dataclass(frozen=True)
class Recipe:
    """How a causal-LM reranker scores, and how to turn that into a classifier head.

    ``prompt_style`` names the original code's way of building the prompt ids (one per preset;
    ``"template"`` renders ``template`` for custom recipes). ``template`` is the scoring chat
    template (messages with roles ``query`` and ``document``) that travels with the checkpoint.
    """

    name: str
    tokens: tuple[str, ...]
    method: Method
    template: str | None
    prepend_bos: bool
    prompt_style: str
    default_instruction: str | None = None
    description: str = ""
    name_patterns: tuple[str, ...] = field(default=(), compare=False)
    # Classifier tokens by vocabulary id, used instead of ``tokens`` (exactly one is non-empty).
    token_ids: tuple[int, ...] = ()
    # The official score logit is ``scale`` times the token logit (difference): folded into the
    # head, so the served sigmoid is the family's calibrated score.
    scale: float = 1.0
    # The sentence-transformers activation the converted checkpoint serves; None = the default
    # for its number of labels (Sigmoid for one).
    activation_fn: str | None = None
    bos_rule: str = field(default="", compare=False)
    score_formula: str = field(default="", compare=False)
    facts_source: str = field(default="", compare=False)

    @property
    def num_labels(self) -> int:
        return 1 if self.method == "from_2_way_softmax" else len(self.classifier)

    @property
    def classifier(self) -> tuple[str, ...] | tuple[int, ...]:
        """The classifier tokens as given: strings, or vocabulary ids."""
        return self.token_ids or self.tokens

    def describe_classifier(self) -> str:
        """``tokens ['no', 'yes']`` or ``ids [0]``, for logs and listings."""
        if self.token_ids:
            return f"ids {list(self.token_ids)}"
        return f"tokens {list(self.tokens)}"

    @property
    def is_preset(self) -> bool:
        return self.name in PRESETS

    def to_json(self) -> dict[str, object]:
        """The parts of a recipe that decide the output (recorded in provenance)."""
        return {
            "name": self.name,
            "tokens": list(self.tokens),
            "method": self.method,
            "prepend_bos": self.prepend_bos,
            "prompt_style": self.prompt_style,
            "default_instruction": self.default_instruction,
            "template_sha256": _sha256(self.template) if self.template is not None else None,
            # Recorded only when set, so recipes without them keep their recorded identity.
            **({"token_ids": list(self.token_ids)} if self.token_ids else {}),
            **({"scale": self.scale} if self.scale != 1.0 else {}),
            **({"activation_fn": self.activation_fn} if self.activation_fn else {}),
        }


def _sha256(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_preset_template(name: str) -> str:
    return (resources.files(__package__) / "templates" / f"{name}.jinja").read_text("utf-8")


def _preset(
    name: str,
    tokens: tuple[str, ...],
    method: Method,
    *,
    prepend_bos: bool,
    default_instruction: str | None,
    description: str,
    patterns: tuple[str, ...],
    bos_rule: str,
    score_formula: str,
    facts_source: str,
    token_ids: tuple[int, ...] = (),
    scale: float = 1.0,
) -> Recipe:
    return Recipe(
        name=name,
        tokens=tokens,
        method=method,
        template=load_preset_template(name),
        prepend_bos=prepend_bos,
        prompt_style=name,
        default_instruction=default_instruction,
        description=description,
        name_patterns=patterns,
        token_ids=token_ids,
        scale=scale,
        bos_rule=bos_rule,
        score_formula=score_formula,
        facts_source=facts_source,
    )


def _build_presets() -> dict[str, Recipe]:
    presets = [
        _preset(
            "qwen3-reranker",
            ("no", "yes"),
            "from_2_way_softmax",
            prepend_bos=False,
            default_instruction=QWEN3_DEFAULT_INSTRUCTION,
            description="Qwen3-Reranker 0.6B/4B/8B: sigmoid(l(yes) - l(no)), chat prompt",
            patterns=(r"qwen3[-_]?reranker",),
            bos_rule="none (the Qwen tokenizer has no BOS)",
            score_formula="sigmoid(l(yes) - l(no))",
            facts_source="Qwen/Qwen3-Reranker-0.6B model card code; vLLM qwen3_reranker.jinja",
        ),
        _preset(
            "mxbai-rerank-v2",
            ("0", "1"),
            "from_2_way_softmax",
            prepend_bos=False,
            default_instruction=None,
            description="mxbai-rerank-base/large-v2: l(1) - l(0), chat prompt",
            patterns=(r"mxbai[-_]?rerank.*v2",),
            bos_rule="none (the Qwen tokenizer has no BOS)",
            score_formula="l(1) - l(0) (library predict); sigmoid of it when normalized",
            facts_source="mixedbread-ai mxbai-rerank library (mxbai_rerank_v2.py); vLLM "
            "mxbai_rerank_v2.jinja",
        ),
        _preset(
            "bge-reranker-v2-gemma",
            ("Yes",),
            "no_post_processing",
            prepend_bos=True,
            default_instruction=None,
            description="bge-reranker-v2-gemma: raw l(Yes) after <bos>, A:/B: prompt",
            patterns=(r"bge[-_]?reranker[-_]?v2[-_]?gemma",),
            bos_rule="<bos> first when the tokenizer has one distinct from pad (FlagEmbedding)",
            score_formula="l(Yes); sigmoid of it when normalized",
            facts_source="FlagEmbedding FlagLLMReranker (decoder_only/base.py); vLLM "
            "bge-reranker-v2-gemma.jinja",
        ),
        _preset(
            "zerank-2",
            ("Yes",),
            "no_post_processing",
            prepend_bos=False,
            default_instruction=None,
            description="zerank-2 (Qwen3-4B): sigmoid(l(Yes) / 5), query as system turn, "
            "document as user turn",
            patterns=(r"zerank[-_]?2",),
            scale=0.2,
            bos_rule="none (the Qwen tokenizer has no BOS)",
            score_formula="sigmoid(l(Yes) / 5)",
            facts_source="zeroentropy modeling_zeranker.py (Yes, /5, sigmoid); vLLM zerank2.jinja "
            "and test_zerank.py",
        ),
        _preset(
            "ctxl-rerank-v2",
            (),
            "no_post_processing",
            prepend_bos=True,
            default_instruction=None,
            description="ContextualAI ctxl-rerank-v2 1b/2b (Qwen3) and 6b (Mistral): raw logit "
            "of vocabulary id 0, document before query",
            patterns=(r"ctxl[-_]?rerank[-_]?v2",),
            token_ids=(0,),
            bos_rule="as the tokenizer adds it: none for Qwen (1b/2b), <s> for Mistral (6b)",
            score_formula="l(id 0) (raw; '!' in Qwen's vocabulary, '<unk>' in Mistral's)",
            facts_source="ContextualAI ctxl-rerank-v2 model card code (logits[:, -1, 0]); "
            "avnlp contextual_ranker.py",
        ),
    ]
    return {p.name: p for p in presets}


PRESETS: dict[str, Recipe] = _build_presets()


def preset_names() -> str:
    return ", ".join(PRESETS)


def detect_preset(source_name: str) -> Recipe | None:
    """The preset whose family name appears in a repo id or directory name, if exactly one."""
    from reranker_seqcls.recipes.refusals import refuse_by_name

    refuse_by_name(source_name)
    lowered = source_name.lower()
    hits = [p for p in PRESETS.values() if any(re.search(pat, lowered) for pat in p.name_patterns)]
    return hits[0] if len(hits) == 1 else None


def parse_tokens(tokens_json: str) -> tuple[str, ...]:
    """Parse ``--tokens`` (a JSON list of strings), refusing empty lists and duplicates."""
    try:
        value = json.loads(tokens_json)
    except (ValueError, RecursionError):
        raise BadInput(
            f"--tokens {tokens_json!r} is not a JSON list of strings: "
            'write it like \'["no", "yes"]\''
        ) from None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadInput(
            f"--tokens {tokens_json!r} is not a JSON list of strings: "
            'write it like \'["no", "yes"]\''
        )
    if not value:
        raise BadInput(
            '--tokens is an empty list: give the classifier tokens, e.g. \'["no", "yes"]\''
        )
    if any(t == "" for t in value):
        raise BadInput("--tokens contains an empty string: every classifier token must be text")
    dupes = sorted({t for t in value if value.count(t) > 1})
    if dupes:
        raise BadInput(f"--tokens lists {dupes[0]!r} twice: each classifier token must be distinct")
    return tuple(value)


def parse_token_ids(ids_json: str) -> tuple[int, ...]:
    """Parse ``--token-ids`` (a JSON list of distinct non-negative ints). Whether they are inside
    the vocabulary and the head is checked against the source (``TokenizerFiles.resolve_id``,
    ``convert._check_head_shape``)."""
    hint = "write it like '[0]' or '[2152, 9693]'"
    try:
        value = json.loads(ids_json)
    except json.JSONDecodeError:
        raise BadInput(f"--token-ids {ids_json!r} is not a JSON list of integers: {hint}") from None
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in value
    ):
        raise BadInput(f"--token-ids {ids_json!r} is not a JSON list of integers: {hint}")
    if not value:
        raise BadInput(f"--token-ids is an empty list: give the classifier token ids, {hint}")
    negative = [i for i in value if i < 0]
    if negative:
        raise BadInput(f"--token-ids holds {negative[0]}: vocabulary ids are >= 0")
    dupes = sorted({i for i in value if value.count(i) > 1})
    if dupes:
        raise BadInput(
            f"--token-ids lists {dupes[0]} twice: each classifier token must be distinct"
        )
    return tuple(value)


def parse_scale(text: str | float) -> float:
    """Parse ``--scale``: a finite, non-zero number (e.g. ``0.2`` for a score of ``logit / 5``)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise BadInput(f"--scale {text!r} is not a number: give e.g. 0.2 for logit / 5") from None
    if not math.isfinite(value) or value == 0.0:
        raise BadInput(f"--scale {text!r} must be finite and non-zero: give e.g. 0.2 for logit / 5")
    return value


def check_token_count(tokens: tuple[str, ...] | tuple[int, ...], method: str) -> None:
    if method not in METHODS:
        raise BadInput(f"unknown --method {method!r}: use one of {', '.join(METHODS)}")
    if method == "from_2_way_softmax" and len(tokens) != 2:
        raise BadInput(
            f"--method from_2_way_softmax needs exactly 2 tokens [false, true], got {len(tokens)}: "
            'give \'["no", "yes"]\'-style tokens or use --method no_post_processing'
        )


def resolve_recipe(
    *,
    source_name: str,
    preset: str | None = None,
    tokens_json: str | None = None,
    method: str | None = None,
    template_path: Path | None = None,
    token_ids_json: str | None = None,
    scale: str | float | None = None,
    source_dir: Path | None = None,
    log: Log | None = None,
) -> Recipe:
    """Pick the recipe from explicit options, or from the source's name and files.

    Explicit tokens and method that equal the preset detected from the source name keep that
    preset (with its template), so the reference script's flags give a complete checkpoint.
    Without any recipe option, a ``source_dir`` carrying sentence-transformers LogitScore files
    gives the recipe (``st_recipe``); when the name names a family too, both must agree.
    """
    template = _read_template(template_path) if template_path is not None else None
    if tokens_json is not None and token_ids_json is not None:
        raise BadInput("give either --tokens or --token-ids, not both: drop one of them")
    custom = tokens_json is not None or token_ids_json is not None
    if preset is not None:
        if custom or method is not None or scale is not None:
            raise BadInput(
                "give either --preset or --tokens/--token-ids/--method/--scale, not both: "
                "drop one of them"
            )
        if preset not in PRESETS:
            raise BadInput(f"unknown preset {preset!r}: use one of {preset_names()}")
        from reranker_seqcls.recipes.refusals import refuse_by_name

        refuse_by_name(source_name)
        return _with_template(PRESETS[preset], template)

    if not custom and method is None:
        if scale is not None:
            raise BadInput(
                "--scale belongs to a custom recipe: add --tokens/--token-ids and --method"
            )
        detected = detect_preset(source_name)
        from_files = None
        if source_dir is not None:
            from reranker_seqcls.recipes.sentence_transformers import reconcile, st_recipe

            from_files = st_recipe(source_dir)
            if from_files is not None:
                chosen = reconcile(detected, from_files, source_dir, source_name)
                if log is not None:
                    log(from_files.description if chosen is from_files else
                        f"recipe: the sentence-transformers files of {source_name} agree with "
                        f"preset {chosen.name} (ids {list(from_files.token_ids)}); their "
                        f"activation is {str(from_files.activation_fn).rsplit('.', 1)[-1]}, the "
                        f"converted checkpoint serves the preset's score, "
                        f"{chosen.score_formula}")  # fmt: skip
                return _with_template(chosen, template)
        if detected is None:
            raise BadInput(
                f"cannot tell the reranker family from {source_name!r}: pass --preset "
                f"({preset_names()}) or --tokens and --method"
            )
        return _with_template(detected, template)

    if not custom or method is None:
        raise BadInput(
            "a custom recipe needs both --tokens and --method (or --token-ids and --method): "
            "add the missing one"
        )
    tokens: tuple[str, ...] = parse_tokens(tokens_json) if tokens_json is not None else ()
    token_ids = parse_token_ids(token_ids_json) if token_ids_json is not None else ()
    check_token_count(tokens or token_ids, method)
    factor = parse_scale(scale) if scale is not None else 1.0
    detected = detect_preset(source_name)
    if (
        detected is not None
        and detected.tokens == tokens
        and detected.token_ids == token_ids
        and detected.method == method
        and detected.scale == factor
    ):
        return _with_template(detected, template)
    return Recipe(
        name="custom",
        tokens=tokens,
        method=method,  # type: ignore[arg-type]  # validated by check_token_count
        template=template,
        prepend_bos=False,
        prompt_style="template",
        token_ids=token_ids,
        scale=factor,
    )


def _with_template(recipe: Recipe, template: str | None) -> Recipe:
    if template is None:
        return recipe
    return replace(recipe, template=template, prompt_style="template")


MAX_TEMPLATE_BYTES = 1024 * 1024  # chat templates are a few KB; /dev/zero never ends


def _read_template(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise BadInput(f"--template {path} is not a regular file: give a Jinja file")
            raw = fh.read(MAX_TEMPLATE_BYTES + 1)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise BadInput(f"--template {path} does not exist: give the path of a Jinja file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"--template {path} cannot be read ({exc.__class__.__name__})") from None
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise BadInput(f"--template {path} is larger than 1 MiB: give a Jinja chat template")
    if not text.strip():
        raise BadInput(f"--template {path} is empty: give a Jinja chat template")
    return text


def recipe_from_provenance(recorded: object, template_path: Path | None) -> Recipe | None:
    """The recipe a conversion recorded (the ``recipe`` of its provenance file, any JSON value),
    for checks and re-conversions; None when it is not a usable recipe."""
    if not isinstance(recorded, dict):
        return None
    name = recorded.get("name")
    if name in PRESETS and recorded.get("prompt_style") == name:
        return PRESETS[name]
    tokens = tuple(str(t) for t in recorded.get("tokens") or ())
    raw_ids = recorded.get("token_ids") or ()
    token_ids = tuple(i for i in raw_ids if isinstance(i, int) and not isinstance(i, bool))
    method = recorded.get("method")
    if (not tokens and not token_ids) or method not in METHODS or len(token_ids) != len(raw_ids):
        return None
    scale = recorded.get("scale", 1.0)
    if not isinstance(scale, int | float) or not math.isfinite(scale) or scale == 0:
        return None
    template = None
    if recorded.get("template_sha256") and template_path is not None and template_path.is_file():
        template = template_path.read_text("utf-8")
    base = PRESETS.get(str(name))
    activation = recorded.get("activation_fn")
    return Recipe(
        name=str(name),
        tokens=() if token_ids else tokens,
        method=method,
        template=template,
        prepend_bos=bool(recorded.get("prepend_bos")),
        prompt_style="sentence-transformers"
        if recorded.get("prompt_style") == "sentence-transformers"
        else "template",
        default_instruction=recorded.get("default_instruction")
        or (base.default_instruction if base else None),
        token_ids=token_ids,
        scale=float(scale),
        activation_fn=activation if isinstance(activation, str) else None,
    )
