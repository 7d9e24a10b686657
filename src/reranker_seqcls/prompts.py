"""The families' original prompt construction: the parity reference.

``build_prompt_ids`` reproduces, token for token, how each family's own scoring code builds the
ids it feeds the causal LM (official model-card code for Qwen3-Reranker, the ``mxbai-rerank``
library for mxbai-rerank-v2, FlagEmbedding's ``FlagLLMReranker`` for bge-reranker-v2-gemma).
Those codes tokenize the prompt in *pieces* and concatenate the ids; they do not tokenize one
rendered string. The scoring templates in ``templates/`` render the same text as one string, which
gives the same ids as long as the tokenizer does not merge tokens across a piece boundary. Qwen3's
boundaries are special tokens, so it always matches. mxbai's and bge's pieces are joined by a
``"\\n"`` piece: a query or document that is empty or ends in whitespace/newlines can merge with
it (Qwen's ``"ĠĊ"``/``"ĊĊ"``, Gemma's ``"\\n\\n"``), and then one string tokenizes differently
from the pieces. Consumers (vLLM, sentence-transformers) can only tokenize one string, so such
inputs score slightly differently there than in the original code.
Truncation of long inputs, which the original codes apply per piece, is not reproduced: parity is
checked on inputs that fit.

``render_scoring_prompt`` renders a scoring chat template the way consumers do (transformers'
``apply_chat_template`` machinery, which vLLM's score API and sentence-transformers both call).

Nothing here imports torch; transformers is imported lazily, only for rendering.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import BadInput
from .recipes import QWEN3_DEFAULT_INSTRUCTION

if TYPE_CHECKING:
    from .recipes import Recipe

# --- Qwen3-Reranker (model card code) -------------------------------------------------------
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and "
    'the Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n'
    "<|im_start|>user\n"
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"

# --- mxbai-rerank-v2 (mxbai_rerank/mxbai_rerank_v2.py) ---------------------------------------
MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n<|im_start|>user\n"
)
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_SEP = "\n"
MXBAI_TASK_PROMPT = (
    "You are a search relevance expert who evaluates how well documents match search queries. "
    "For each query-document pair, carefully analyze the semantic relationship between them, then "
    "provide your binary relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)

# --- bge-reranker-v2-gemma (FlagEmbedding decoder_only/base.py) ------------------------------
BGE_SEP = "\n"
BGE_DEFAULT_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the "
    "query by providing a prediction of either 'Yes' or 'No'."
)

# --- zerank-2 (zeroentropy modeling_zeranker.py; vLLM examples/pooling/score/template/zerank2)
ZERANK_SYSTEM_START = "<|im_start|>system\n"
ZERANK_USER_START = "<|im_end|>\n<|im_start|>user\n"
ZERANK_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"

# --- ctxl-rerank-v2 (ContextualAI model card code) --------------------------------------------
CTXL_HEAD = "Check whether a given document contains information helpful to answer the query."
CTXL_END = " ??"

PROMPT_STYLES: tuple[str, ...] = (
    "qwen3-reranker",
    "mxbai-rerank-v2",
    "bge-reranker-v2-gemma",
    "zerank-2",
    "ctxl-rerank-v2",
    "template",
    "sentence-transformers",
)

# The template variable that makes a preset template write the tokenizer's BOS itself. See
# ``templates/bge-reranker-v2-gemma.jinja`` and ``consumer_files`` for why it is opt-in.
ADD_BOS_VARIABLE = "add_bos_token"


def _encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens added, as every family's code does."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _bos_id_if_distinct(tokenizer: Any) -> int | None:
    """FlagEmbedding's rule: prepend BOS when the tokenizer has one and it is not the pad token."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None or bos == getattr(tokenizer, "pad_token_id", None):
        return None
    return int(bos)


def qwen3_prompt_ids(
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> list[int]:
    """Qwen3-Reranker: prefix, body and suffix tokenized separately, ids concatenated."""
    if instruction is None:
        instruction = QWEN3_DEFAULT_INSTRUCTION
    body = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"
    return (
        _encode(tokenizer, QWEN3_PREFIX)
        + _encode(tokenizer, body)
        + _encode(tokenizer, QWEN3_SUFFIX)
    )


def mxbai_prompt_ids(
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> list[int]:
    """mxbai-rerank-v2: ``prefix + query + sep + document + sep + task + suffix``.

    As in the library, the instruction (when truthy) is joined to the query text before
    tokenizing: ``"instruction: {i}\\nquery: {q}"`` is one piece.
    """
    query_prompt = f"query: {query}"
    if instruction:
        query_prompt = f"instruction: {instruction}{MXBAI_SEP}{query_prompt}"
    sep = _encode(tokenizer, MXBAI_SEP)
    return (
        _encode(tokenizer, MXBAI_PREFIX)
        + _encode(tokenizer, query_prompt)
        + sep
        + _encode(tokenizer, f"document: {document}")
        + sep
        + _encode(tokenizer, MXBAI_TASK_PROMPT)
        + _encode(tokenizer, MXBAI_SUFFIX)
    )


def bge_gemma_prompt_ids(
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> list[int]:
    """bge-reranker-v2-gemma: ``[bos] + "A: q" + "\\n" + "B: p" + "\\n" + prompt``.

    ``instruction`` replaces the final prompt sentence, as FlagEmbedding's ``prompt=`` does.
    """
    prompt = BGE_DEFAULT_PROMPT if instruction is None else instruction
    sep = _encode(tokenizer, BGE_SEP)
    bos = _bos_id_if_distinct(tokenizer)
    ids = [] if bos is None else [bos]
    return (
        ids
        + _encode(tokenizer, f"A: {query}")
        + sep
        + _encode(tokenizer, f"B: {document}")
        + sep
        + _encode(tokenizer, prompt)
    )


def zerank2_prompt_ids(
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> list[int]:
    """zerank-2: the chat template's rendering of ``[system: query, user: document]`` with the
    generation prompt, tokenized as one string (Qwen adds no special tokens).

    An instruction makes the system turn ``<query>{q}</query>\\n<instruction>{i}</instruction>``.
    The legacy code's ``.strip()`` and character cuts (2,000 / 10,000) are not applied, as in
    vLLM's ``zerank2.jinja``: parity is checked on inputs without surrounding whitespace.
    """
    system = query
    if instruction:
        system = f"<query>{query}</query>\n<instruction>{instruction}</instruction>"
    text = ZERANK_SYSTEM_START + system + ZERANK_USER_START + document + ZERANK_SUFFIX
    return _encode(tokenizer, text)


def ctxl_prompt_ids(
    tokenizer: Any, query: str, document: str, instruction: str | None = None
) -> list[int]:
    """ctxl-rerank-v2: one string, document before query, tokenized with the tokenizer's own
    special tokens (``tokenizer(prompt)``: none for Qwen, ``<s>`` first for Mistral)."""
    query_part = f"{query} {instruction}" if instruction else query
    text = f"{CTXL_HEAD}\n<Document> {document}\n<Query> {query_part}{CTXL_END}"
    return list(tokenizer(text)["input_ids"])


def template_prompt_ids(
    tokenizer: Any,
    template: str,
    query: str,
    document: str,
    instruction: str | None = None,
    *,
    prepend_bos: bool = False,
    structured: bool = False,
) -> list[int]:
    """A custom template: render as a consumer would, tokenize without special tokens.

    With ``prepend_bos`` the ids start with exactly one BOS, whether or not the template wrote it.
    ``structured`` renders ``{"type": "text"}`` content items, as sentence-transformers does.
    """
    text = render_scoring_prompt(
        template, query, document, instruction, tokenizer=tokenizer, structured=structured
    )
    ids = _encode(tokenizer, text)
    bos = getattr(tokenizer, "bos_token_id", None)
    if prepend_bos and bos is not None and (not ids or ids[0] != bos):
        ids = [int(bos), *ids]
    return ids


def build_prompt_ids(
    tokenizer: Any,
    recipe: Recipe,
    query: str,
    document: str,
    instruction: str | None = None,
) -> list[int]:
    """The ids the family's original scoring code feeds the causal LM for one pair.

    ``instruction`` of ``None`` means the recipe's default (the family's own default when the
    recipe has none). The score is read from the logits at the last position.
    """
    if instruction is None:
        instruction = recipe.default_instruction
    style = recipe.prompt_style
    if style == "qwen3-reranker":
        return qwen3_prompt_ids(tokenizer, query, document, instruction)
    if style == "mxbai-rerank-v2":
        return mxbai_prompt_ids(tokenizer, query, document, instruction)
    if style == "bge-reranker-v2-gemma":
        return bge_gemma_prompt_ids(tokenizer, query, document, instruction)
    if style == "zerank-2":
        return zerank2_prompt_ids(tokenizer, query, document, instruction)
    if style == "ctxl-rerank-v2":
        return ctxl_prompt_ids(tokenizer, query, document, instruction)
    if style in ("template", "sentence-transformers"):
        if recipe.template is None:
            raise BadInput(
                f"recipe {recipe.name!r} has no prompt template: give one with --template FILE"
            )
        return template_prompt_ids(
            tokenizer,
            recipe.template,
            query,
            document,
            instruction,
            prepend_bos=recipe.prepend_bos,
            # a recipe read from sentence-transformers files: its CrossEncoder's own rendering
            structured=style == "sentence-transformers",
        )
    raise BadInput(f"unknown prompt style {style!r}: use one of {', '.join(PROMPT_STYLES)}")


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
    template: str,
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
    ``variables`` are extra template variables (e.g. ``add_bos_token=True``).
    """
    messages = scoring_messages(query, document, instruction, structured=structured)
    try:
        if tokenizer is not None:
            rendered = tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, **variables
            )
        else:
            from transformers.utils.chat_template_utils import render_jinja_template

            rendered_list, _ = render_jinja_template(
                conversations=[messages],
                chat_template=template,
                **{**dict(special_tokens or {}), **variables},
            )
            rendered = rendered_list[0]
    except Exception as exc:  # jinja2 raises several unrelated types; all mean "bad template"
        if isinstance(exc, BadInput):
            raise
        raise BadInput(
            f"the prompt template cannot be rendered for a query/document pair "
            f"({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(rendered, str):
        raise BadInput("the prompt template rendered to something other than text")
    return rendered
