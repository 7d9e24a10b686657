"""The model card (README.md) of a converted checkpoint.

Metadata goes through huggingface_hub's own ``ModelCardData``/``ModelCard`` so that what is
written is what the Hub parses; the body says what was converted and how to use it in each
consumer, with the parity table of the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TAGS = ["reranker", "sequence-classification", "text-ranking", "reranker-seqcls"]


def source_license(source_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """The license (and license_name/link for "other") from the source's model card."""
    readme = source_dir / "README.md"
    if not readme.is_file():
        return None, {}
    from huggingface_hub import ModelCard

    try:
        data = ModelCard(readme.read_text("utf-8", errors="replace")).data.to_dict()
    except Exception:  # a malformed source card must not stop the conversion
        return None, {}
    extra = {k: data[k] for k in ("license_name", "license_link") if data.get(k)}
    license_ = data.get("license")
    return (license_ if isinstance(license_, str) else None), extra


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
    body = _body(target_repo, provenance, parity_markdown, template_file, tokenization_gap)
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    # Round-trip through the Hub's parser: what we wrote must read back the same.
    parsed = ModelCard(str(card)).data
    assert parsed.pipeline_tag == "text-ranking" and parsed.library_name == "transformers"
    return str(card)


def _body(
    target: str,
    prov: dict[str, Any],
    parity: str | None,
    template: str | None,
    gap: dict[str, Any] | None = None,
) -> str:
    source = prov["source"]
    recipe = prov["recipe"]
    clf = prov["classifier"]
    name = source.get("repo_id") or source.get("name")
    sha = source.get("commit_sha")
    src_link = f"[{name}](https://huggingface.co/{name})" if source.get("repo_id") else f"`{name}`"
    at = f" at commit `{sha}`" if sha else ""
    tokens = ", ".join(
        f"`{t}` (id {i})" for t, i in zip(clf["tokens"], clf["token_ids"], strict=True)
    )
    if clf["method"] == "from_2_way_softmax":
        math = (
            f"`score.weight = W[{clf['tokens'][1]}] - W[{clf['tokens'][0]}]`, so the logit equals "
            f"`l({clf['tokens'][1]}) - l({clf['tokens'][0]})` of the original and "
            "`sigmoid(logit)` equals its softmax probability of the true token"
        )
    else:
        math = (
            "`score.weight` holds the rows of the classifier tokens: the logits are the original's"
        )
    template_line = (
        f"The scoring prompt travels with the checkpoint as `{template}` (roles `query` and "
        "`document`); sentence-transformers applies it automatically."
        if template
        else "No scoring template was given: consumers score the raw (query, document) text."
    )
    chat = f" --chat-template {template}" if template else ""
    chat_py = f'chat_template=open("{template}").read()' if template else "chat_template=None"
    parity_section = parity or "_Parity was not checked for this upload._"
    gap_section = _tokenization_section(gap) if gap else ""
    return f"""# {target.split("/")[-1]}

A `{prov["architecture"]}` conversion of {src_link}{at}, made with
[reranker-seqcls](https://github.com/reranker-seqcls/reranker-seqcls) {prov["tool"]["version"]}.
The causal LM scored relevance through the logits of classifier tokens; this checkpoint computes
the same score with a one-row classification head instead of the full vocabulary projection.

- Recipe: `{recipe["name"]}`, method `{clf["method"]}`, tokens {tokens}.
- Score head: {math}.
- {template_line}

## Parity with the original

{parity_section}
{gap_section}
## Usage

Served scores (vLLM, sentence-transformers) are **probabilities**: `sigmoid(logit)`. The original
family's own libraries return raw logits by default; apply `sigmoid` to compare.

### sentence-transformers

```python
from sentence_transformers import CrossEncoder

model = CrossEncoder("{target}")
scores = model.predict([("what is panda?", "The giant panda is a bear native to China.")])
```

### transformers

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("{target}", padding_side="left")
model = AutoModelForSequenceClassification.from_pretrained("{target}").eval()
messages = [{{"role": "query", "content": "what is panda?"}},
            {{"role": "document", "content": "The giant panda is a bear native to China."}}]
prompt = tokenizer.apply_chat_template(messages, tokenize=False)
inputs = tokenizer([prompt], return_tensors="pt", add_special_tokens=False, padding=True)
with torch.no_grad():
    logits = model(**inputs).logits[:, 0]
print(torch.sigmoid(logits))
```

### vLLM

```bash
vllm serve {target} --runner pooling{chat}
curl localhost:8000/score -H 'Content-Type: application/json' \\
  -d '{{"model": "{target}", "text_1": "what is panda?", "text_2": ["The giant panda is a bear."]}}'
```

```python
from huggingface_hub import hf_hub_download
from vllm import LLM

template = hf_hub_download("{target}", "{template or "chat_template.jinja"}")
llm = LLM("{target}", runner="pooling")
outputs = llm.score("what is panda?", ["The giant panda is a bear."],
                    {chat_py.replace(f'"{template}"', "template")})
print([o.outputs.score for o in outputs])
```
"""


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
    path = folder / "README.md"
    path.write_text(content, "utf-8")
    return path
