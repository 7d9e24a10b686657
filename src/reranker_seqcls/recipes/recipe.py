"""Recipes: what makes a causal LM a reranker, and the registry of known families.

A recipe is the classifier tokens (strings, or vocabulary ids where the string differs between a
family's vocabularies), the method that turns their logits into a score (:mod:`.methods`), a
constant scale the score logit is multiplied by, the prompt template the family was trained with,
and whether the prompt starts with the tokenizer's BOS. Every preset also says where its facts
come from (``docs/families.md``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from reranker_seqcls.recipes.methods import Method, scoring_method


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
    # True for the registry's recipes and any recipe named after one of them (see is_preset).
    preset: bool = field(default=False, compare=False)

    @property
    def num_labels(self) -> int:
        return scoring_method(self.method).num_labels(len(self.classifier))

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
        """Whether ``name`` is a family of the registry (set by it: this module cannot import
        the registry, which is built from :class:`Recipe`)."""
        return self.preset

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
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
