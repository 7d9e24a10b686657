"""The registry of known reranker families: one preset each, with its template and sources of
its facts (``docs/families.md`` is written from these)."""

from __future__ import annotations

import re
from importlib import resources

from reranker_seqcls.recipes.methods import FROM_2_WAY_SOFTMAX, NO_POST_PROCESSING, Method
from reranker_seqcls.recipes.recipe import Recipe

QWEN3_DEFAULT_INSTRUCTION = (
    "Given a web search query, retrieve relevant passages that answer the query"
)


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
        preset=True,
        default_instruction=default_instruction,
        description=description,
        name_patterns=patterns,
        token_ids=token_ids,
        scale=scale,
        bos_rule=bos_rule,
        score_formula=score_formula,
        facts_source=facts_source,
    )


# Over 60 lines on purpose: a data table, one entry per family, kept in one place.
def _build_presets() -> dict[str, Recipe]:
    presets = [
        _preset(
            "qwen3-reranker",
            ("no", "yes"),
            FROM_2_WAY_SOFTMAX,
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
            FROM_2_WAY_SOFTMAX,
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
            NO_POST_PROCESSING,
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
            NO_POST_PROCESSING,
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
            NO_POST_PROCESSING,
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
