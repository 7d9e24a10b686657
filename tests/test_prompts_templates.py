"""The scoring templates render exactly the families' original prompts, and the consumer files
make sentence-transformers apply them by itself.

Reference ids come from ``prompts.build_prompt_ids`` (the families' own piecewise tokenization).
A template is checked the two ways consumers tokenize it: vLLM's score API renders the messages
with plain-string content and tokenizes the text *with* special tokens; sentence-transformers
renders ``{"type": "text"}`` items through ``apply_chat_template(tokenize=True)``, which adds no
special tokens, and passes the variables from ``sentence_bert_config.json``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from reranker_seqcls.convert.consumer_files import (
    IDENTITY,
    SIGMOID,
    ST_MODEL_CONFIG_FILE,
    ST_MODULE_CONFIG_FILE,
    ST_MODULES_FILE,
    TEMPLATE_FILE_NAME,
    consumer_files,
    template_variables,
)
from reranker_seqcls.errors import BadInput
from reranker_seqcls.recipes import prompts, render
from reranker_seqcls.recipes.presets import PRESETS, QWEN3_DEFAULT_INSTRUCTION
from reranker_seqcls.recipes.recipe import Recipe
from testkit import tiny

PRESET_FAMILIES = ("qwen3", "qwen2", "gemma")

PAIRS: list[tuple[str, str]] = [
    *tiny.sample_pairs(),
    ("x", "y"),  # one-character texts
    ("What does {{ messages }} or {% if %} do?", "Jinja syntax in content is data: {{ 1 + 1 }}"),
    ("<Query>: nested markers", "<Document>: A: B: query: document:"),
    # long, but within bge-reranker-v2-gemma's 512-token passage bound even on the tiny vocabulary
    # (an over-length pair is cut by the family's rule: tests/test_long_inputs.py)
    ("long document", " ".join(["The quick brown fox jumps over the lazy dog."] * 12)),
    ("Ünïcödé ß ø 🙂", "多语言文本，混合 English 和 emoji 🎉。\nSecond line of the document."),
]
INSTRUCTIONS: list[str | None] = [None, "Retrieve passages that answer the question", ""]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-tokenizers")
    return {family: tiny.build_tokenizer(family, root / family) for family in tiny.FAMILIES}


@pytest.fixture(scope="session")
def tokenizers(tokenizer_dirs: dict[str, Path]) -> dict[str, Any]:
    from transformers import AutoTokenizer

    return {family: AutoTokenizer.from_pretrained(str(d)) for family, d in tokenizer_dirs.items()}


def _recipe(family: str) -> Recipe:
    return PRESETS[tiny.FAMILY_PRESET[family]]


def _vllm_ids(
    tokenizer: Any, recipe: Recipe, query: str, document: str, instruction: str | None
) -> list[int]:
    """vLLM score API: plain-string messages, rendered, tokenized with special tokens."""
    text = tokenizer.apply_chat_template(
        render.scoring_messages(query, document, instruction),
        chat_template=recipe.template,
        tokenize=False,
    )
    return list(tokenizer(text)["input_ids"])


def _st_ids(
    tokenizer: Any, recipe: Recipe, query: str, document: str, instruction: str | None
) -> list[int]:
    """sentence-transformers: structured messages, apply_chat_template(tokenize=True)."""
    out = tokenizer.apply_chat_template(
        render.scoring_messages(query, document, instruction, structured=True),
        chat_template=recipe.template,
        tokenize=True,
        return_dict=True,
        **template_variables(recipe),
    )
    return list(out["input_ids"])


def _expected_text(family: str, query: str, document: str, instruction: str | None) -> str:
    """The prompt of recipes.md, spelled out independently of the package's constants."""
    if family == "qwen3":
        instr = QWEN3_DEFAULT_INSTRUCTION if instruction is None else instruction
        return (
            "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
            'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
            "<|im_end|>\n<|im_start|>user\n"
            f"<Instruct>: {instr}\n<Query>: {query}\n<Document>: {document}"
            "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
        )
    if family == "qwen2":
        head = f"instruction: {instruction}\n" if instruction else ""
        return (
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
            "assistant.<|im_end|>\n<|im_start|>user\n"
            f"{head}query: {query}\ndocument: {document}\n"
            "You are a search relevance expert who evaluates how well documents match search "
            "queries. For each query-document pair, carefully analyze the semantic relationship "
            "between them, then provide your binary relevance judgment (0 for not relevant, 1 for "
            "relevant).\nRelevance:<|im_end|>\n<|im_start|>assistant\n"
        )
    prompt = (
        "Given a query A and a passage B, determine whether the passage contains an answer to "
        "the query by providing a prediction of either 'Yes' or 'No'."
        if instruction is None
        else instruction
    )
    return f"A: {query}\nB: {document}\n{prompt}"


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_classifier_tokens_are_single_vocabulary_entries(family: str, tokenizers: dict) -> None:
    tok = tokenizers[family]
    vocab = tok.get_vocab()
    for token in tiny.CLASSIFIER_TOKENS:
        assert token in vocab, token
        assert tok(token, add_special_tokens=False)["input_ids"] == [vocab[token]], token
    assert vocab["Yes"] != vocab["yes"]


@pytest.mark.parametrize("family", PRESET_FAMILIES)
def test_preset_tokens_resolve_to_distinct_real_ids(family: str, tokenizers: dict) -> None:
    tok = tokenizers[family]
    ids = [tok.convert_tokens_to_ids(t) for t in _recipe(family).tokens]
    assert len(set(ids)) == len(ids)
    assert all(i is not None and i != tok.unk_token_id for i in ids)


def test_tiny_special_tokens_are_realistic(tokenizers: dict) -> None:
    qwen = tokenizers["qwen3"]
    assert qwen.bos_token_id is None
    assert qwen.pad_token == "<|endoftext|>"
    assert (
        qwen.convert_ids_to_tokens(qwen("<|im_start|>user", add_special_tokens=False)["input_ids"])[
            0
        ]
        == "<|im_start|>"
    )
    gemma = tokenizers["gemma"]
    assert (gemma.pad_token_id, gemma.eos_token, gemma.bos_token) == (0, "<eos>", "<bos>")
    assert gemma("hello")["input_ids"][0] == gemma.bos_token_id  # the tokenizer adds <bos>
    assert gemma.convert_tokens_to_ids("▁Yes") != gemma.convert_tokens_to_ids("Yes")


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("family", PRESET_FAMILIES)
@pytest.mark.parametrize("instruction", INSTRUCTIONS, ids=["default", "custom", "empty"])
def test_template_gives_the_reference_ids_for_every_consumer(
    family: str, instruction: str | None, tokenizers: dict
) -> None:
    tok = tokenizers[family]
    recipe = _recipe(family)
    for query, document in PAIRS:
        reference = prompts.build_prompt_ids(tok, recipe, query, document, instruction)
        assert _vllm_ids(tok, recipe, query, document, instruction) == reference, (query, document)
        assert _st_ids(tok, recipe, query, document, instruction) == reference, (query, document)


@pytest.mark.parametrize("family", PRESET_FAMILIES)
@pytest.mark.parametrize("structured", [False, True], ids=["string", "items"])
def test_template_renders_the_documented_prompt(
    family: str, structured: bool, tokenizers: dict
) -> None:
    recipe = _recipe(family)
    for query, document in PAIRS[:3] + PAIRS[-3:]:
        for instruction in INSTRUCTIONS:
            text = render.render_scoring_prompt(
                recipe.template,
                query,
                document,
                instruction,
                tokenizer=tokenizers[family],
                structured=structured,
            )
            assert text == _expected_text(family, query, document, instruction)


def test_qwen3_prompt_keeps_its_trailing_blank_line(tokenizers: dict) -> None:
    text = render.render_scoring_prompt(
        _recipe("qwen3").template, "q", "d", tokenizer=tokenizers["qwen3"]
    )
    assert text.endswith("<think>\n\n</think>\n\n")


def test_render_without_tokenizer_matches_apply_chat_template(tokenizers: dict) -> None:
    for family in PRESET_FAMILIES:
        tok = tokenizers[family]
        template = _recipe(family).template
        for variables in ({}, {"add_bos_token": True}):
            with_tok = render.render_scoring_prompt(template, "q", "d", tokenizer=tok, **variables)
            without = render.render_scoring_prompt(
                template, "q", "d", special_tokens=tok.special_tokens_map, **variables
            )
            assert with_tok == without


def test_bge_bos_appears_exactly_once(tokenizers: dict) -> None:
    tok = tokenizers["gemma"]
    recipe = _recipe("gemma")
    bos = tok.bos_token_id
    for query, document in PAIRS:
        for ids in (
            prompts.build_prompt_ids(tok, recipe, query, document),
            _vllm_ids(tok, recipe, query, document, None),
            _st_ids(tok, recipe, query, document, None),
        ):
            assert ids[0] == bos
            assert ids.count(bos) == 1
    # The template writes <bos> only when asked (vLLM's tokenizer call adds it otherwise).
    plain = render.render_scoring_prompt(recipe.template, "q", "d", tokenizer=tok)
    asked = render.render_scoring_prompt(
        recipe.template, "q", "d", tokenizer=tok, add_bos_token=True
    )
    assert not plain.startswith("<bos>")
    assert asked == "<bos>" + plain


def test_qwen_templates_never_write_a_bos(tokenizers: dict) -> None:
    for family in ("qwen3", "qwen2"):
        recipe = _recipe(family)
        assert template_variables(recipe) == {}
        text = render.render_scoring_prompt(
            recipe.template, "q", "d", tokenizer=tokenizers[family], add_bos_token=True
        )
        assert text.startswith("<|im_start|>system\n")


@pytest.mark.parametrize("family", PRESET_FAMILIES)
def test_instruction_variable_and_instruction_role(family: str, tokenizers: dict) -> None:
    tok = tokenizers[family]
    recipe = _recipe(family)
    reference = prompts.build_prompt_ids(tok, recipe, "q", "d", "Pick the best passage")
    via_variable = tok.apply_chat_template(
        render.scoring_messages("q", "d"),
        chat_template=recipe.template,
        tokenize=True,
        return_dict=True,
        instruction="Pick the best passage",
        **template_variables(recipe),
    )["input_ids"]
    via_role = tok.apply_chat_template(
        [
            {"role": "instruction", "content": "Pick the best passage"},
            *render.scoring_messages("q", "d"),
        ],
        chat_template=recipe.template,
        tokenize=True,
        return_dict=True,
        **template_variables(recipe),
    )["input_ids"]
    assert list(via_variable) == reference
    assert list(via_role) == reference


@pytest.mark.parametrize("family", PRESET_FAMILIES)
def test_template_refuses_incomplete_or_non_text_messages(family: str) -> None:
    template = _recipe(family).template
    from transformers.utils.chat_template_utils import render_jinja_template

    bad_conversations = [
        [{"role": "query", "content": "q"}],
        [{"role": "document", "content": "d"}],
        [{"role": "user", "content": "q"}, {"role": "document", "content": "d"}],
        [
            {"role": "query", "content": [{"type": "image", "image": "x.png"}]},
            {"role": "document", "content": "d"},
        ],
        # only a conversation of exactly one user message is vLLM's warm-up
        [
            {"role": "user", "content": "q"},
            {"role": "query", "content": "q"},
            {"role": "document", "content": "d"},
        ],
        [{"role": "user", "content": "q"}, {"role": "user", "content": "d"}],
        [{"role": "assistant", "content": "q"}],
        [],
    ]
    for conversation in bad_conversations:
        with pytest.raises(Exception, match=r"scoring prompt|only text content|unexpected role"):
            render_jinja_template(conversations=[conversation], chat_template=template)


@pytest.mark.parametrize("family", PRESET_FAMILIES)
def test_template_renders_nothing_for_the_vllm_warmup(family: str, tokenizers: dict) -> None:
    """vLLM renders the chat template once at start-up with a lone user message (its warm-up,
    ``vllm/renderers/base.py``); the template must not raise on it (vLLM would log "Chat
    template warmup failed" with two tracebacks at every start), and must not pretend it is a
    scoring prompt."""
    template = _recipe(family).template
    from transformers.utils.chat_template_utils import render_jinja_template

    for content in ("warmup", [{"type": "text", "text": "warmup"}]):
        rendered, _ = render_jinja_template(
            conversations=[[{"role": "user", "content": content}]], chat_template=template
        )
        assert rendered == [""]
    warmup = [{"role": "user", "content": "warmup"}]
    tokenizer = tokenizers[family]
    assert tokenizer.apply_chat_template(warmup, chat_template=template, tokenize=False) == ""


# Texts whose edge touches a piece boundary of the original code, and whether one rendered
# string still tokenizes like the pieces, per family.
BOUNDARY_CASES: list[tuple[str, str, dict[str, bool]]] = [
    ("q", "", {"qwen3": True, "qwen2": False, "gemma": True}),  # "document: " + "\n"
    ("q", "ends in a newline\n", {"qwen3": True, "qwen2": False, "gemma": False}),
    ("q\n", "d", {"qwen3": True, "qwen2": False, "gemma": False}),
    ("q ", "ends in a space ", {"qwen3": True, "qwen2": False, "gemma": True}),
    (" q", " starts with a space", {"qwen3": True, "qwen2": True, "gemma": True}),
]


@pytest.mark.parametrize("query,document,same", BOUNDARY_CASES)
def test_piece_boundaries_that_a_single_string_cannot_reproduce(
    query: str, document: str, same: dict[str, bool], tokenizers: dict
) -> None:
    """Known limit, kept visible: the original codes tokenize pieces separately.

    When a query/document is empty or ends in whitespace that the tokenizer merges with the
    following "\\n" piece (mxbai's and bge's separators), one rendered string tokenizes
    differently from the pieces. Qwen3 is immune: its pieces end at special tokens. The tiny
    tokenizers merge whitespace like the real ones ("ĠĊ", "ĊĊ", Gemma's "\\n\\n"); the real Qwen
    vocabulary also merges punctuation ("?Ċ", ".Ċ"): see tests/test_tokenization_gap.py.
    """
    for family, expected_same in same.items():
        tok = tokenizers[family]
        recipe = _recipe(family)
        reference = prompts.build_prompt_ids(tok, recipe, query, document)
        assert (_vllm_ids(tok, recipe, query, document, None) == reference) is expected_same, family
        assert (_st_ids(tok, recipe, query, document, None) == reference) is expected_same, family
        # The text itself is always the documented prompt; only its tokenization differs.
        text = render.render_scoring_prompt(recipe.template, query, document, tokenizer=tok)
        assert text == _expected_text(family, query, document, None)


# --------------------------------------------------------------------------- prompt styles


def test_template_style_recipe_puts_exactly_one_bos_first(tokenizers: dict) -> None:
    tok = tokenizers["gemma"]
    plain = "A: {{ messages[0].content }}\nB: {{ messages[1].content }}\nRelevant?"
    with_bos = "{{ bos_token }}" + plain
    for template in (plain, with_bos):
        recipe = Recipe(
            name="custom",
            tokens=("Yes",),
            method="no_post_processing",
            template=template,
            prepend_bos=True,
            prompt_style="template",
        )
        ids = prompts.build_prompt_ids(tok, recipe, "q", "d")
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
        assert ids[1:] == tok("A: q\nB: d\nRelevant?", add_special_tokens=False)["input_ids"]
    no_bos = Recipe(
        name="custom",
        tokens=("Yes",),
        method="no_post_processing",
        template=plain,
        prepend_bos=False,
        prompt_style="template",
    )
    assert tok.bos_token_id not in prompts.build_prompt_ids(tok, no_bos, "q", "d")


def test_template_style_with_a_preset_template_equals_the_original(tokenizers: dict) -> None:
    from dataclasses import replace

    for family in PRESET_FAMILIES:
        recipe = _recipe(family)
        as_template = replace(recipe, prompt_style="template")
        tok = tokenizers[family]
        for query, document in PAIRS[:4]:
            assert prompts.build_prompt_ids(tok, as_template, query, document) == (
                prompts.build_prompt_ids(tok, recipe, query, document)
            )


def test_bad_recipes_are_refused(tokenizers: dict) -> None:
    tok = tokenizers["qwen3"]
    no_template = Recipe(
        name="custom",
        tokens=("no", "yes"),
        method="from_2_way_softmax",
        template=None,
        prepend_bos=False,
        prompt_style="template",
    )
    with pytest.raises(BadInput, match="no prompt template"):
        prompts.build_prompt_ids(tok, no_template, "q", "d")
    unknown = Recipe(
        name="custom",
        tokens=("no", "yes"),
        method="from_2_way_softmax",
        template=None,
        prepend_bos=False,
        prompt_style="nonsense",
    )
    with pytest.raises(BadInput, match="unknown prompt style"):
        prompts.build_prompt_ids(tok, unknown, "q", "d")
    with pytest.raises(BadInput, match="cannot be rendered"):
        render.render_scoring_prompt("{{ messages[0].content", "q", "d", tokenizer=tok)


# --------------------------------------------------------------------------- consumer files


def test_consumer_files_for_each_preset() -> None:
    for family in PRESET_FAMILIES:
        recipe = _recipe(family)
        files = consumer_files(recipe, recipe.num_labels)
        assert set(files) == {
            TEMPLATE_FILE_NAME,
            ST_MODULES_FILE,
            ST_MODULE_CONFIG_FILE,
            ST_MODEL_CONFIG_FILE,
        }
        assert files[TEMPLATE_FILE_NAME].decode("utf-8") == recipe.template
        modules = json.loads(files[ST_MODULES_FILE])
        assert modules == [
            {
                "idx": 0,
                "name": "0",
                "path": "",
                "type": "sentence_transformers.base.modules.transformer.Transformer",
            }
        ]
        module_config = json.loads(files[ST_MODULE_CONFIG_FILE])
        assert module_config["transformer_task"] == "sequence-classification"
        assert module_config["module_output_name"] == "scores"
        assert set(module_config["modality_config"]) == {"text", "message"}
        expected_kwargs = {"chat_template": {"add_bos_token": True}} if family == "gemma" else None
        assert module_config.get("processing_kwargs") == expected_kwargs
        model_config = json.loads(files[ST_MODEL_CONFIG_FILE])
        assert model_config["model_type"] == "CrossEncoder"
        assert model_config["activation_fn"] == SIGMOID


def test_consumer_files_without_template_and_with_several_labels() -> None:
    custom = Recipe(
        name="custom",
        tokens=("A", "B", "C"),
        method="no_post_processing",
        template=None,
        prepend_bos=True,
        prompt_style="template",
    )
    files = consumer_files(custom, custom.num_labels)
    assert TEMPLATE_FILE_NAME not in files
    module_config = json.loads(files[ST_MODULE_CONFIG_FILE])
    assert set(module_config["modality_config"]) == {"text"}
    assert "processing_kwargs" not in module_config
    assert json.loads(files[ST_MODEL_CONFIG_FILE])["activation_fn"] == IDENTITY
    with pytest.raises(ValueError):
        consumer_files(custom, 0)


# --------------------------------------------------------------------------- end to end


def make_seqcls_checkpoint(causal_dir: Path, out_dir: Path, recipe: Recipe) -> None:
    """A *ForSequenceClassification copy of a tiny causal LM, built with transformers itself.

    Stands in for the converter: score rows are W[true] - W[false] (from_2_way_softmax) or the
    token rows (no_post_processing); tokenizer files are copied as they are; the consumer files
    are added.
    """
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    tok = AutoTokenizer.from_pretrained(str(causal_dir))
    causal = AutoModelForCausalLM.from_pretrained(str(causal_dir), dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(causal_dir))
    config.architectures = [
        config.architectures[0].replace("ForCausalLM", "ForSequenceClassification")
    ]
    config.num_labels = recipe.num_labels
    config.pad_token_id = tok.pad_token_id
    seqcls = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    body = {k: v for k, v in causal.state_dict().items() if k.startswith("model.")}
    result = seqcls.load_state_dict(body, strict=False)
    assert result.missing_keys == ["score.weight"] and not result.unexpected_keys
    head = causal.get_output_embeddings().weight
    rows = [tok.convert_tokens_to_ids(t) for t in recipe.tokens]
    with torch.no_grad():
        if recipe.method == "from_2_way_softmax":
            seqcls.score.weight.copy_((head[rows[1]] - head[rows[0]])[None])
        else:
            seqcls.score.weight.copy_(head[rows])
    seqcls.save_pretrained(str(out_dir))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(causal_dir / name, out_dir / name)
    for name, data in consumer_files(recipe, recipe.num_labels).items():
        (out_dir / name).write_bytes(data)


def causal_scores(
    causal_dir: Path, recipe: Recipe, pairs: list[tuple[str, str]], instruction: str | None = None
) -> list[list[float]]:
    """Per pair, the original model's logit(s) at the last position: the reference score."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(causal_dir))
    model = AutoModelForCausalLM.from_pretrained(str(causal_dir), dtype=torch.float32).eval()
    rows = [tok.convert_tokens_to_ids(t) for t in recipe.tokens]
    out = []
    for query, document in pairs:
        ids = prompts.build_prompt_ids(tok, recipe, query, document, instruction)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        if recipe.method == "from_2_way_softmax":
            out.append([(logits[rows[1]] - logits[rows[0]]).item()])
        else:
            out.append([logits[r].item() for r in rows])
    return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("family", PRESET_FAMILIES)
def test_cross_encoder_scores_the_family_prompt_by_itself(
    family: str, tokenizer_dirs: dict, tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    recipe = _recipe(family)
    causal = tiny.build_model(
        family, tmp_path / "causal", tied=family != "qwen2", tokenizer_dir=tokenizer_dirs[family]
    )
    converted = tmp_path / "seqcls"
    make_seqcls_checkpoint(causal, converted, recipe)

    # The scoring template wins over the generic chat template kept in tokenizer_config.json.
    assert "chat_template" in json.loads((converted / "tokenizer_config.json").read_text("utf-8"))
    assert AutoTokenizer.from_pretrained(str(converted)).chat_template == recipe.template

    pairs = PAIRS
    expected = [_sigmoid(s[0]) for s in causal_scores(causal, recipe, pairs)]
    model = CrossEncoder(str(converted), device="cpu")
    got = model.predict(pairs, batch_size=4)  # batches mix lengths: padding must not matter
    assert max(abs(g - e) for g, e in zip(got, expected, strict=True)) < 1e-4
    assert max(expected) - min(expected) > 0.3  # the tiny model's scores really differ

    # An instruction reaches the template as sentence-transformers' prompt (a system message).
    instructed = causal_scores(causal, recipe, pairs[:3], "Find the answer")
    got = model.predict(pairs[:3], prompt="Find the answer")
    for g, e in zip(got, instructed, strict=True):
        assert abs(g - _sigmoid(e[0])) < 1e-4

    # Saving with sentence-transformers writes back the same module files (same format).
    resaved = tmp_path / "resaved"
    model.save_pretrained(str(resaved))
    for name in (ST_MODULES_FILE, ST_MODULE_CONFIG_FILE):
        assert (resaved / name).read_bytes() == (converted / name).read_bytes(), name
    ours = json.loads((converted / ST_MODEL_CONFIG_FILE).read_text("utf-8"))
    theirs = json.loads((resaved / ST_MODEL_CONFIG_FILE).read_text("utf-8"))
    ours.pop("__version__")
    theirs.pop("__version__")
    assert ours == theirs


def test_cross_encoder_with_several_labels_returns_raw_logits(
    tokenizer_dirs: dict, tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    recipe = Recipe(
        name="custom",
        tokens=("no", "yes"),
        method="no_post_processing",
        template=PRESETS["qwen3-reranker"].template,
        prepend_bos=False,
        prompt_style="template",
    )
    causal = tiny.build_model(
        "qwen3", tmp_path / "causal", tied=True, tokenizer_dir=tokenizer_dirs["qwen3"]
    )
    converted = tmp_path / "seqcls"
    make_seqcls_checkpoint(causal, converted, recipe)
    pairs = PAIRS[:4]
    expected = causal_scores(causal, recipe, pairs)
    got = CrossEncoder(str(converted), device="cpu").predict(pairs)
    assert got.shape == (4, 2)
    for row, ref in zip(got.tolist(), expected, strict=True):
        assert row == pytest.approx(ref, abs=1e-4)


# --------------------------------------------------------------------------- tiny models


@pytest.mark.parametrize("family", tiny.FAMILIES)
def test_tiny_model_files(family: str, tokenizer_dirs: dict, tmp_path: Path) -> None:
    from safetensors import safe_open

    untied = tiny.build_model(
        family,
        tmp_path / "untied",
        tied=False,
        num_shards=3,
        dtype="bfloat16",
        tokenizer_dir=tokenizer_dirs[family],
    )
    assert sorted(p.name for p in untied.glob("*.safetensors")) == tiny.expected_shard_names(3)
    index = json.loads((untied / "model.safetensors.index.json").read_text("utf-8"))
    assert index["weight_map"]["lm_head.weight"] in tiny.expected_shard_names(3)
    config = json.loads((untied / "config.json").read_text("utf-8"))
    assert config["architectures"] == [tiny.FAMILY_ARCHITECTURE[family]]
    assert config["dtype"] == "bfloat16" and config["tie_word_embeddings"] is False
    from transformers import AutoTokenizer

    assert config["vocab_size"] == len(AutoTokenizer.from_pretrained(str(untied)))
    for name in ("generation_config.json", "LICENSE", "tokenizer.json", "tokenizer_config.json"):
        assert (untied / name).is_file(), name

    start = time.perf_counter()  # timed once the model classes are imported
    tied = tiny.build_model(family, tmp_path / "tied", tied=True)  # tokenizer trained too
    # Typically ~0.2 s; the design limit is 2 s, the bound leaves room for a loaded machine.
    assert time.perf_counter() - start < 5.0
    with safe_open(str(tied / "model.safetensors"), framework="numpy") as f:
        names = list(f.keys())
        assert "lm_head.weight" not in names
        assert str(f.get_slice("model.embed_tokens.weight").get_dtype()) == "F32"
