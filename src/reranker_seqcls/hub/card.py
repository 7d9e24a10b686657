"""The model card (README.md) of a converted checkpoint, and the short README of ``convert``.

The card's text is ``card_template.md`` (package data), rendered by huggingface_hub's
``ModelCard.from_template`` with ``ModelCardData`` metadata, so that what is written is what the
Hub parses; this module computes the pieces it fills in (what was converted, the score head, the
parity table of the run, each consumer's usage). The template is plain Jinja with variables
only: every value is computed here, inserted as is, never evaluated.

Over 300 lines: every piece the card template fills in is computed here, one short function per
section, so that the template stays variables only and what it inserts is decided in one place.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from reranker_seqcls.names import README_FILE
from reranker_seqcls.recipes.methods import known_method
from reranker_seqcls.safe_text import md_code, md_text

TAGS = ["reranker", "sequence-classification", "text-ranking", "reranker-seqcls"]


_MAX_CARD_BYTES = 4 * 1024 * 1024


class SourceLicense(NamedTuple):
    """The source card's ``license`` and, for "other", its ``license_name``/``license_link``."""

    license: str | None
    extra: dict[str, Any]


def source_license(source_dir: Path) -> SourceLicense:
    """The license (and license_name/link for "other") from the source's model card."""
    from reranker_seqcls.source import Source

    readme = Source(source_dir).file(README_FILE)  # never a link out of the source
    if readme is None:
        return SourceLicense(None, {})
    from huggingface_hub import ModelCard

    try:
        with readme.open("rb") as fh:
            text = fh.read(_MAX_CARD_BYTES).decode("utf-8", errors="replace")
        data = ModelCard(text).data.to_dict()
    except Exception:  # a malformed source card must not stop the conversion
        return SourceLicense(None, {})
    extra = {
        k: data[k] for k in ("license_name", "license_link") if _safe_license_field(k, data.get(k))
    }
    license_ = data.get("license")
    return SourceLicense(license_ if _safe_license_field("license", license_) else None, extra)


# What the Hub accepts as a license id or name (a slug), and a license link it renders: an
# http(s) URL with no space or control, or a file of the repo (``LICENSE``). Anything else from
# the upstream card is not copied (a ``javascript:`` link, a multi-line name would become live
# content of the user's card).
_LICENSE_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_LICENSE_LINK = re.compile(r"https?://[^\s<>\"'`\\]{1,500}|[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


def _safe_license_field(key: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    pattern = _LICENSE_LINK if key == "license_link" else _LICENSE_SLUG
    return pattern.fullmatch(value) is not None


class CardNotReadable(RuntimeError):
    """The rendered card does not read back through the Hub's parser: a bug of the template or
    of this module (an internal error, exit 4), never the input's fault."""


def render_card(
    *,
    target_repo: str,
    provenance: dict[str, Any],
    parity_markdown: str | None,
    tokenization_gap: dict[str, Any] | None = None,
    license_: str | None,
    license_extra: dict[str, Any],
    template_file: str | None,
) -> str:
    """The model card of ``target_repo``: ``card_template.md`` rendered by ``ModelCard``."""
    from huggingface_hub import ModelCard, ModelCardData

    source = provenance["source"]
    base = source.get("repo_id") or source.get("name")
    data = ModelCardData(
        base_model=base if source.get("repo_id") else None,
        library_name="transformers",
        pipeline_tag="text-ranking",
        tags=list(TAGS),
        license=license_,
        **license_extra,
    )
    variables = _card_variables(
        target_repo, provenance, parity_markdown, template_file, tokenization_gap
    )
    card = ModelCard.from_template(data, template_path=str(CARD_TEMPLATE), **variables)
    # Round-trip through the Hub's parser: what we wrote must read back the same.
    parsed = ModelCard(str(card)).data.to_dict()
    if (parsed.get("pipeline_tag"), parsed.get("library_name")) != ("text-ranking", "transformers"):
        raise CardNotReadable(
            f"the model card of {target_repo} does not read back as a text-ranking "
            f"transformers model ({parsed.get('pipeline_tag')!r}, {parsed.get('library_name')!r})"
        )
    return str(card)


CARD_TEMPLATE = Path(__file__).with_name("card_template.md")


def _card_variables(
    target: str,
    prov: dict[str, Any],
    parity: str | None,
    template: str | None,
    gap: dict[str, Any] | None,
) -> dict[str, str]:
    """The text ``card_template.md`` fills in, each piece computed from the provenance record
    in the order the f-string card of before read it (so a hand-edited record fails the same)."""
    source = prov["source"]
    recipe = prov["recipe"]
    clf = prov["classifier"]
    name = source.get("repo_id") or source.get("name")
    sha = source.get("commit_sha")
    source_link = (
        f"[{md_text(name)}](https://huggingface.co/{quote(str(name), safe='/')})"
        if source.get("repo_id")
        else md_code(str(name))
    )
    tokens = ", ".join(
        f"{md_code(str(t))} (id {int(i)})"
        for t, i in zip(clf["tokens"], clf["token_ids"], strict=True)
    )
    score_head = _score_head(clf)
    family_line = _family_line(recipe["name"], clf)
    template_line = (
        f"The scoring prompt travels with the checkpoint as `{template}` (roles `query` and "
        "`document`); sentence-transformers applies it automatically."
        if template
        else "No scoring template was given: consumers score the raw (query, document) text."
    )
    parity_section = parity or "_Parity was not checked for this upload._"
    tokenization_section = _tokenization_section(gap) if gap else ""
    return {
        "title": target.split("/")[-1],
        "architecture": md_code(str(prov["architecture"])),
        "source_link": source_link,
        "at_commit": f" at commit {md_code(str(sha))}" if sha else "",
        "tool_version": prov["tool"]["version"],
        "recipe_name": md_code(str(recipe["name"])),
        "method": md_code(str(clf["method"])),
        "tokens": tokens,
        "score_head": score_head,
        "family_line": family_line,
        "template_line": template_line,
        "parity_section": parity_section,
        "tokenization_section": tokenization_section,
        "served_paragraph": _served_paragraph(clf),
        "target": target,
        "vllm_section": vllm_section(target, template, clf.get("dtype"), hub=True),
    }


def _score_head(clf: dict[str, Any]) -> str:
    """How the score head's row was made from the classifier tokens' rows."""
    method = known_method(clf["method"])
    difference = method.true_false(clf["tokens"]) if method is not None else None
    if difference is not None:
        true, false = str(difference[0]), str(difference[1])
        math = (
            f"{md_code(f'score.weight = W[{true}] - W[{false}]')}, so the logit equals "
            f"{md_code(f'l({true}) - l({false})')} of the original and "
            "`sigmoid(logit)` equals its softmax probability of the true token"
        )
    else:
        math = (
            "`score.weight` holds the rows of the classifier tokens: the logits are the original's"
        )
    scale = clf.get("scale", 1.0)
    if scale != 1.0:
        math += f", times the constant `{scale:g}` folded into the head"
    return math


def vllm_section(model: str, template: str | None, head_dtype: str | None, *, hub: bool) -> str:
    """The model card's vLLM usage, commands that run as written.

    vLLM applies a score template only when one is passed (``--chat-template`` takes a local
    file, so a Hub model's template is downloaded first; offline, ``score(chat_template=TEXT)``
    per call: vLLM 0.32 ignores ``LLM(chat_template=...)`` there). ``--dtype float32`` for a
    float32 checkpoint: with ``auto`` vLLM computes float32 pooling models in float16.
    ``model`` is a Hub repo id (``hub``) or a local directory.
    """
    dtype_cli = " --dtype float32" if head_dtype == "F32" else ""
    dtype_py = ', dtype="float32"' if head_dtype == "F32" else ""
    imports = ""
    if template is None:
        download, chat, template_py, chat_py = "", "", "", ""
        note = (
            "No scoring template travels with this checkpoint: vLLM scores the raw "
            "(query, document) text."
        )
    else:
        note = (
            "vLLM applies the scoring template only when it is passed explicitly; without it the "
            "scores are meaningless. An instruction, for the families that take one, goes in the "
            'request as `"instruction": "..."`.'
        )
        local_template = template if hub else f"{model}/{template}"
        download = f"hf download {model} {template} --local-dir .\n" if hub else ""
        chat = f" --chat-template {local_template}"
        if hub:
            imports = "from huggingface_hub import hf_hub_download\n"
            template_py = f'template = open(hf_hub_download("{model}", "{template}")).read()\n'
        else:
            template_py = f'template = open("{local_template}").read()\n'
        chat_py = ", chat_template=template"
    return f"""### vLLM

{note} Served scores are `sigmoid(logit)`.

```bash
{download}vllm serve {model} --runner pooling{chat}{dtype_cli}
curl http://127.0.0.1:8000/score -H 'Content-Type: application/json' \\
  -d '{{"model": "{model}", "queries": "what is panda?", "documents": ["A panda is a bear."]}}'
curl http://127.0.0.1:8000/rerank -H 'Content-Type: application/json' \\
  -d '{{"model": "{model}", "query": "what is panda?", "documents": ["A panda is a bear."]}}'
```

```python
{imports}from vllm import LLM

{template_py}llm = LLM("{model}", runner="pooling"{dtype_py})
outputs = llm.score("what is panda?", ["A panda is a bear."]{chat_py})
print([o.outputs.score for o in outputs])
```
"""


def _family_line(name: str, clf: dict[str, Any]) -> str:
    """The family and its official score formula, and what consumers serve."""
    formula = clf.get("score_formula")
    served = clf.get("served_score") or "sigmoid(score logit)"
    family = f"Family: {md_code(name)}" + (
        f", official score {md_code(str(formula))}" if formula else ""
    )
    return f"{family}; served score: {md_text(str(served))}."


def _served_paragraph(clf: dict[str, Any]) -> str:
    served = str(clf.get("served_score") or "")
    if served.startswith("the raw"):
        return (
            f"Served scores (vLLM, sentence-transformers) are {served}: no activation is applied, "
            "as the source's own CrossEncoder did."
        )
    return (
        "Served scores (vLLM, sentence-transformers) are **probabilities**: `sigmoid(logit)`. "
        "Where the family's official score is a sigmoid (e.g. zerank-2's `sigmoid(l(Yes) / 5)`), "
        "that is exactly it; families whose own libraries return raw logits by default need "
        "`sigmoid` applied to compare."
    )


# Marks the short README ``convert`` writes; ``push`` replaces such a README with the model card.
LOCAL_README_MARKER = "<!-- reranker-seqcls: convert README, replaced by the model card on push -->"


def render_local_readme(output: Path, provenance: dict[str, Any], template: str | None) -> str:
    """The README of a ``convert`` output: what it is and how to serve it from this directory."""
    source = provenance["source"]
    name = source.get("repo_id") or source.get("name")
    return f"""{LOCAL_README_MARKER}
# {output.name}

A `{provenance["architecture"]}` conversion of `{name}` made by reranker-seqcls
{provenance["tool"]["version"]} (recipe `{provenance["recipe"]["name"]}`); not yet checked for
parity: `reranker-seqcls check SOURCE {output}`. `reranker-seqcls push` replaces this file with the
full model card.

{vllm_section(str(output), template, provenance["classifier"].get("dtype"), hub=False)}"""


def is_local_readme(path: Path) -> bool:
    try:
        return path.read_text("utf-8").startswith(LOCAL_README_MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _tokenization_section(gap: dict[str, Any]) -> str:
    """What a one-string consumer cannot reproduce, with the parity check's numbers."""
    merges = ", ".join(
        f"`{json.dumps(text, ensure_ascii=False)}`"
        for text, _ in sorted(gap["merges"].items(), key=lambda kv: -kv[1])[:4]
    )
    return f"""
## Tokenization of the prompt

The original scoring code tokenizes its prompt in pieces (query, separator, document, …) and
concatenates the ids. Every consumer of this checkpoint — sentence-transformers, vLLM,
`apply_chat_template` — renders the same text as one string and tokenizes it whole. Where a query
or document ends in punctuation or whitespace, the tokenizer merges it with the following
newline (here {merges}), so the ids differ although the text is identical.
In the parity check {len(gap["pairs"])} of {gap["num_pairs"]} pairs were affected; on those, the
converted model fed the one-string ids instead of the original's moved by up to
{gap["max_abs_logit"]:.3g} logit ({gap["max_abs_prob"]:.3g} probability), and sentence-transformers
reproduced the converted model on its own ids within {gap["consumer_max_abs_prob"]:.2g}
probability. No conversion can remove this gap: it is the original model's own response to
another tokenization of the same text, so any one-string consumer of the original (vLLM's
load-time conversion included) shows it too. The parity check allows it and says so (see
*Allowed* above). For the original's exact numbers, tokenize the pieces separately as the
original code does and feed the concatenated ids to the model (see *transformers* below).
"""


def write_card(folder: Path, content: str) -> Path:
    path = folder / README_FILE
    path.write_text(content, "utf-8")
    return path
