"""The card's "Long inputs" section, from the report's ``long_inputs`` (:mod:`.long_inputs`)."""

from __future__ import annotations

from typing import Any


def long_inputs_markdown(data: dict[str, Any] | None) -> str | None:
    """The card's "Long inputs" section from the report's ``long_inputs`` (None: none)."""
    if not data:
        return None
    length = data.get("scoring_length")
    bound = f"{length} tokens" if length else "no token bound (character cuts)"
    lines = [
        "### Long inputs",
        "",
        f"- Scoring length: {bound}. The original: {data.get('rule')} ({data.get('source')}).",
    ]
    if not data.get("measured"):
        lines.append(f"- Over-length pairs were not measured in this check: {data.get('why_not')}.")
    else:
        sizes = "; ".join(
            f"{p.get('group')}: {p.get('query_tokens')}-token query, {p.get('document_tokens')}"
            f"-token document, cut by the original to {p.get('official_prompt_tokens')} prompt "
            "tokens"
            for p in data.get("pairs") or []
        )
        lines.append(f"- Measured on over-length pairs ({sizes}):")
        lines += [
            f"  - {c.get('consumer')}, {c.get('pair')}: {c.get('behaviour')} ({c.get('detail')})"
            for c in data.get("consumers") or []
        ]
    if not length:
        lines.append(
            "- The original cuts characters, which no consumer does by itself: cut on the client "
            "side before sending (vLLM refuses a prompt beyond the model's positions):"
        )
    else:
        lines.append(
            "- vLLM refuses a prompt longer than the scoring length. Cut the document on the "
            "client side before sending it; "
            + (
                "for this family that is the original's own cut, so vLLM then gives its score:"
                if data.get("client_side_exact")
                else "this keeps the prompt within the family's bound, but the original cuts "
                "differently (above), so scores of cut pairs are not the original's:"
            )
        )
    if length:
        lines += [
            "",
            "```python",
            "from transformers import AutoTokenizer",
            "",
            "tok = AutoTokenizer.from_pretrained(MODEL)  # reads chat_template.jinja",
            "",
            "def size(doc):  # the prompt's tokens, counted as vLLM counts them",
            '    messages = [{"role": "query", "content": query}, '
            '{"role": "document", "content": doc}]',
            '    return len(tok(tok.apply_chat_template(messages, tokenize=False))["input_ids"])',
            "",
            f"if size(document) > {length}:",
            "    ends = [e for _, e in tok(document, add_special_tokens=False, "
            'return_offsets_mapping=True)["offset_mapping"]]',
            f'    keep = min(len(ends), {length} - size("") + 8)',
            f"    while keep > 0 and size(document[: ends[keep - 1]]) > {length}:",
            "        keep -= 1",
            '    document = document[: ends[keep - 1]] if keep else ""',
            "```",
        ]
    else:  # the original's character cuts (zerank-2)
        lines += ["", "```python", "query, document = query[:2000], document[:10000]", "```"]
    return "\n".join(lines)
