"""The card (README.md) of the GGUF target repository: how to serve it with llama-server, what
the score means, and the parity table llama.cpp itself measured for each file."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from reranker_seqcls.gguf.types import GGUF_TYPES
from reranker_seqcls.safe_text import md_link, one_line

if TYPE_CHECKING:
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.gguf.row import LlamaRow
    from reranker_seqcls.gguf.writer import WrittenGguf
    from reranker_seqcls.recipes.recipe import Recipe


def md_inline(text: str) -> str:
    """Source-given text as one inert Markdown line (no code spans or link syntax to break)."""
    return one_line(text).replace("`", "'").replace("[", "(").replace("]", ")")


def gguf_card(
    *,
    gguf_repo: str,
    seqcls_repo: str,
    source: str,
    recipe: Recipe,
    written: list[WrittenGguf],
    rows: list[LlamaRow],
    report: ParityReport,
) -> str:
    first = written[0].path.name
    formula = md_inline(recipe.score_formula or "the family's formula")
    scale = f", the scale {recipe.scale:g} folded in" if recipe.scale != 1.0 else ""
    by_type = {row.gguf_type: row for row in rows}
    table = [
        "| file | type | size | max abs Δ probability | Spearman | top-1 agreement "
        "| tolerance (Δp / Spearman / top-1) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in written:
        row = by_type.get(w.gguf_type)
        m = row.metrics if row else None
        t = GGUF_TYPES[w.gguf_type].tolerance
        cells = (
            ["–", "–", "–"]
            if m is None
            else [f"{m.max_abs_prob:.2e}", f"{m.spearman:.4f}", f"{m.top1:.0%}"]
        )
        verdict = "PASS" if row is not None and row.passed else "FAIL"
        table.append(
            f"| `{w.path.name}` | {w.gguf_type} | {w.bytes / 1e6:.1f} MB | {' | '.join(cells)} "
            f"| {t.max_abs_prob:g} / {t.min_spearman} / {t.min_top1:.0%} | {verdict} |"
        )
    pairs = max((row.scored_pairs for row in rows), default=0)
    instruction = recipe.default_instruction
    instruction_note = (
        f"The family's default instruction (`{md_inline(instruction)}`) is written into the "
        "prompt; `/v1/rerank` takes no other."
        if instruction
        else "The family's prompt takes no instruction."
    )
    if recipe.prompt_style == "zerank-2":  # its own code strips; llama-server substitutes as is
        instruction_note += (
            " The original strips the query and the document of surrounding whitespace "
            "(`.strip()`); llama-server writes them into the prompt as sent: strip them first."
        )
    return "\n".join(
        [
            "---",
            "library_name: gguf",
            "pipeline_tag: text-ranking",
            f"base_model: {source}",
            "tags:",
            "- reranker",
            "- gguf",
            "- llama.cpp",
            "---",
            "",
            f"# {md_inline(gguf_repo.split('/')[-1])}",
            "",
            # the link targets carry source-given names: escaped (safe_text.md_url), not pasted
            f"GGUF files of the reranker {md_link(source, f'https://huggingface.co/{source}')} "
            f"for llama.cpp's `llama-server --reranking`, written by reranker-seqcls from its "
            f"sequence-classification conversion "
            f"{md_link(seqcls_repo, f'https://huggingface.co/{seqcls_repo}')} "
            f"(recipe `{md_inline(recipe.name)}`).",
            "",
            "## Serve",
            "",
            "```bash",
            f"llama-server -m {first} --reranking --host 127.0.0.1 --port 8080 -c 8192 "
            "-b 8192 -ub 8192",
            "```",
            "",
            "The whole prompt of a pair must fit one micro-batch (`-ub`): pooled scores are not "
            "computed across micro-batches.",
            *_split_note(first),
            "",
            "```bash",
            "curl -s http://127.0.0.1:8080/v1/rerank -H 'Content-Type: application/json' -d '{",
            '  "query": "What is the capital of France?",',
            '  "documents": ["Paris is the capital of France.", "Bananas are yellow."]',
            "}'",
            "```",
            "",
            "## What the score means",
            "",
            "`relevance_score` is the probability the original reranker gives the document: "
            f"`sigmoid` of its score logit (`{formula}`{scale}), "
            "the number the sequence-classification checkpoint serves. The classifier head is "
            "written as the two rows `[score, 0]` because llama.cpp applies a softmax over the "
            "head's outputs for the `qwen3` architecture: `softmax([s, 0])[0] = sigmoid(s)`. "
            "The prompt is the family's own, stored as the GGUF's `rerank` chat template. "
            f"{instruction_note}",
            "",
            "## Parity, measured by llama.cpp",
            "",
            f"Each file was served by the real `llama-server --reranking` and scored {pairs} "
            "(query, document) pairs through `/v1/rerank`, compared with the original causal LM "
            "scored with the family's own prompt and formula "
            f"(check verdict: **{report.verdict}**, computed in `{report.dtype}`)."
            + _quick_note(report),
            "",
            *table,
            "",
        ]
    )


def _split_note(first: str) -> list[str]:
    """For a split GGUF (``...-00001-of-0000N.gguf``): which file to give llama-server."""
    match = re.search(r"-00001-of-(\d{5})\.gguf$", first)
    if match is None:
        return []
    return [
        "",
        f"Each type is split in {int(match[1])} files as llama.cpp's `gguf-split` writes them "
        "(the first holds the keys and the head, each other one shard's tensors): download "
        "all of a type's files into one directory and give llama-server the first; it loads "
        "the others by name.",
    ]


def _quick_note(report: ParityReport) -> str:
    """After a quick check the llama.cpp rows score the pairs the real model scored: the
    others ran on the structural twin, a model llama-server is not given."""
    real = report.real_pass
    if real is None or real.full:
        return ""
    return (
        f" These are the {real.pairs} short pairs the real model scored in the quick check "
        f"(of {real.of_pairs}; the others ran on a structural twin, not through llama.cpp)."
    )
