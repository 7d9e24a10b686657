"""Render a scoring chat template for one (query, document) pair the way consumers do:
transformers' ``apply_chat_template`` machinery, which vLLM's score API and sentence-transformers
both call. Nothing here imports torch; transformers is imported lazily."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reranker_seqcls.errors import BadInput

# The template variable that makes a preset template write the tokenizer's BOS itself. See
# ``templates/bge-reranker-v2-gemma.jinja`` and ``consumer_files`` for why it is opt-in.
ADD_BOS_VARIABLE = "add_bos_token"


def scoring_messages(
    query: str,
    document: str,
    instruction: str | None = None,
    *,
    structured: bool = False,
) -> list[dict[str, Any]]:
    """The messages a consumer renders for one pair.

    vLLM's score API passes plain-string content; sentence-transformers v6 passes a list of
    ``{"type": "text", "text": ...}`` items (``structured=True``) and an instruction/prompt as a
    leading ``system`` message.
    """

    def content(text: str) -> str | list[dict[str, str]]:
        return [{"type": "text", "text": text}] if structured else text

    messages: list[dict[str, Any]] = []
    if instruction is not None:
        messages.append({"role": "system", "content": content(instruction)})
    messages.append({"role": "query", "content": content(query)})
    messages.append({"role": "document", "content": content(document)})
    return messages


def render_scoring_prompt(
    template: str | None,
    query: str,
    document: str,
    instruction: str | None = None,
    *,
    tokenizer: Any | None = None,
    structured: bool = False,
    special_tokens: Mapping[str, str] | None = None,
    **variables: Any,
) -> str:
    """Render a scoring chat template for one (query, document) pair.

    With a ``tokenizer`` this is exactly ``tokenizer.apply_chat_template(..., tokenize=False)``,
    the call vLLM's score API and sentence-transformers make (the tokenizer supplies
    ``bos_token`` and the other special-token variables). Without one, transformers' own Jinja
    renderer is used with ``special_tokens`` (if given) as the special-token variables.
    ``variables`` are extra template variables (e.g. ``add_bos_token=True``). A ``template`` of
    ``None`` means the tokenizer's own chat template, as a consumer loading a directory uses.
    Rendering is bounded in time, output length and value sizes (:mod:`.bounded_jinja`).
    """
    from reranker_seqcls.recipes.bounded_jinja import install

    install()  # every chat template rendered in this process is bounded from now on
    messages = scoring_messages(query, document, instruction, structured=structured)
    try:
        if tokenizer is not None:
            rendered = tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, **variables
            )
        elif template is None:
            raise BadInput("no prompt template to render: give one with --template FILE")
        else:
            from transformers.utils.chat_template_utils import render_jinja_template

            # Annotated `-> str` upstream, but it returns (rendered, generation_indices).
            result: Any = render_jinja_template(
                conversations=[messages],
                chat_template=template,
                **{**dict(special_tokens or {}), **variables},
            )
            rendered = str(result[0][0])
    except Exception as exc:  # jinja2 raises several unrelated types; all mean "bad template"
        if isinstance(exc, BadInput):
            raise
        raise BadInput(
            f"the prompt template cannot be rendered for a query/document pair "
            f"({exc.__class__.__name__}: {exc})"
        ) from exc
    if not isinstance(rendered, str):
        raise BadInput("the prompt template rendered to something other than text")
    return rendered
