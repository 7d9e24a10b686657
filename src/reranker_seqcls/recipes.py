"""Recipes: what makes a causal LM a reranker, and the registry of known families.

A recipe is the classifier tokens, the method that turns their logits into a score, the prompt
template the family was trained with, and whether the prompt starts with the tokenizer's BOS.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from .errors import BadInput

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

    @property
    def num_labels(self) -> int:
        return 1 if self.method == "from_2_way_softmax" else len(self.tokens)

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
        ),
        _preset(
            "mxbai-rerank-v2",
            ("0", "1"),
            "from_2_way_softmax",
            prepend_bos=False,
            default_instruction=None,
            description="mxbai-rerank-base/large-v2: l(1) - l(0), chat prompt",
            patterns=(r"mxbai[-_]?rerank.*v2",),
        ),
        _preset(
            "bge-reranker-v2-gemma",
            ("Yes",),
            "no_post_processing",
            prepend_bos=True,
            default_instruction=None,
            description="bge-reranker-v2-gemma: raw l(Yes) after <bos>, A:/B: prompt",
            patterns=(r"bge[-_]?reranker[-_]?v2[-_]?gemma",),
        ),
    ]
    return {p.name: p for p in presets}


PRESETS: dict[str, Recipe] = _build_presets()


def preset_names() -> str:
    return ", ".join(PRESETS)


def detect_preset(source_name: str) -> Recipe | None:
    """The preset whose family name appears in a repo id or directory name, if exactly one."""
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


def check_token_count(tokens: tuple[str, ...], method: str) -> None:
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
) -> Recipe:
    """Pick the recipe from explicit options, or from the source's name.

    Explicit tokens and method that equal the preset detected from the source name keep that
    preset (with its template), so the reference script's flags give a complete checkpoint.
    """
    template = _read_template(template_path) if template_path is not None else None
    if preset is not None:
        if tokens_json is not None or method is not None:
            raise BadInput("give either --preset or --tokens/--method, not both: drop one of them")
        if preset not in PRESETS:
            raise BadInput(f"unknown preset {preset!r}: use one of {preset_names()}")
        chosen = PRESETS[preset]
        return _with_template(chosen, template)

    if tokens_json is None and method is None:
        detected = detect_preset(source_name)
        if detected is None:
            raise BadInput(
                f"cannot tell the reranker family from {source_name!r}: pass --preset "
                f"({preset_names()}) or --tokens and --method"
            )
        return _with_template(detected, template)

    if tokens_json is None or method is None:
        raise BadInput("a custom recipe needs both --tokens and --method: add the missing one")
    tokens = parse_tokens(tokens_json)
    check_token_count(tokens, method)
    detected = detect_preset(source_name)
    if detected is not None and detected.tokens == tokens and detected.method == method:
        return _with_template(detected, template)
    return Recipe(
        name="custom",
        tokens=tokens,
        method=method,  # type: ignore[arg-type]  # validated by check_token_count
        template=template,
        prepend_bos=False,
        prompt_style="template",
    )


def _with_template(recipe: Recipe, template: str | None) -> Recipe:
    if template is None:
        return recipe
    from dataclasses import replace

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


def recipe_from_provenance(provenance: dict, template_path: Path | None) -> Recipe | None:
    """The recipe a conversion recorded (its provenance file), for checks and re-conversions."""
    recorded = provenance.get("recipe")
    if not isinstance(recorded, dict):
        return None
    name = recorded.get("name")
    if name in PRESETS and recorded.get("prompt_style") == name:
        return PRESETS[name]
    tokens = tuple(recorded.get("tokens") or ())
    method = recorded.get("method")
    if not tokens or method not in METHODS:
        return None
    template = None
    if recorded.get("template_sha256") and template_path is not None and template_path.is_file():
        template = template_path.read_text("utf-8")
    base = PRESETS.get(str(name))
    return Recipe(
        name=str(name),
        tokens=tokens,
        method=method,
        template=template,
        prepend_bos=bool(recorded.get("prepend_bos")),
        prompt_style="template",
        default_instruction=recorded.get("default_instruction")
        or (base.default_instruction if base else None),
    )
