"""Issue 13: the newer families (zerank-2, ctxl-rerank-v2, the larger Qwen3-Reranker and mxbai
sizes), classifier tokens by id, folded scales, recipes from sentence-transformers LogitScore
files, and the families that are refused.

Fixtures use the real Qwen vocabulary ("Yes"=9454, "yes"=9693, "!"=0) and a tiny Mistral-style
tokenizer (``<unk>`` at id 0, ``<s>`` prepended; not the real Mistral vocabulary). Independent
references are computed here from the families' published code paths, not with the package's
prompt builders.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from reranker_seqcls.check.pairs import builtin_pairs
from tests.conftest import run_cli

PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("What is the capital of France?", "Bananas are a good source of potassium."),
    ("Wie hoch ist die Zugspitze?", "Die Zugspitze ist mit 2962 Metern der höchste Berg."),
    ("熊猫吃什么？", "大熊猫的食物几乎全部是竹子。"),
]
YES, LOWER_YES = 9454, 9693


def _convert(source: Path, out: Path, *args: str):
    result = run_cli("convert", source, out, *args)
    assert result.returncode == 0, result.stderr
    return result


def _check(source: Path, out: Path, tmp_path: Path, *args: str):
    report_path = tmp_path / f"report-{out.name}.json"
    result = run_cli("check", source, out, "--report", report_path, *args)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return result, report


def _provenance(out: Path) -> dict:
    return json.loads((out / "reranker_seqcls.json").read_text())


@torch.no_grad()
def _last_logits(source: Path, prompts: list[list[int]]) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    return torch.stack([model(input_ids=torch.tensor([p])).logits[0, -1] for p in prompts])


def _head(source: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).lm_head.weight


def _score_weight(out: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    return load_file(str(out / "score.safetensors"))["score.weight"]


# --------------------------------------------------------------------------- zerank-2


@pytest.fixture(scope="module")
def zerank(real_vocab_model) -> Path:
    # Qwen3-4B based and tied, like the published checkpoint
    return real_vocab_model("qwen3", tied=True, name="zerank-2", preset="zerank-2")


def test_zerank2_detected_folded_and_official(zerank, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    out = tmp_path / "zerank-2-seq-cls"
    result = _convert(zerank, out)
    assert "recipe: zerank-2" in result.stderr
    assert "sigmoid(l(Yes) / 5)" in result.stderr  # the log says which score is served
    provenance = _provenance(out)
    assert provenance["classifier"]["token_ids"] == [YES]
    assert provenance["classifier"]["scale"] == 0.2
    # score.weight = W[Yes] / 5, computed in double and rounded once
    expected = (_head(zerank)[YES].double() / 5).float()
    assert torch.equal(_score_weight(out)[0], expected)

    check, report = _check(zerank, out, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert report["recipe"] == "zerank-2"
    assert report["num_pairs"] == len(builtin_pairs(takes_instruction=True))

    # official: apply_chat_template([system: query, user: document], add_generation_prompt=True),
    # then sigmoid(l(Yes) / 5) -- zeroentropy's modeling_zeranker.py, with the repo's chat template
    tokenizer = AutoTokenizer.from_pretrained(zerank)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": q}, {"role": "user", "content": d}],
            add_generation_prompt=True,
            tokenize=False,
        )
        for q, d in PAIRS
    ]
    ids = [tokenizer(p)["input_ids"] for p in prompts]
    official = torch.sigmoid(_last_logits(zerank, ids)[:, YES] / 5)
    served = torch.tensor(CrossEncoder(str(out)).predict(PAIRS), dtype=torch.float32)
    assert torch.allclose(served, official, atol=1e-5), (served, official)
    assert float(official.max() - official.min()) > 0.05  # the pairs really score differently


def test_zerank2_miscased_token_is_named(zerank, tmp_path):
    out = tmp_path / "lowercase-yes"
    _convert(zerank, out, "--tokens", '["yes"]', "--method", "no_post_processing", "--scale", "0.2")
    assert _provenance(out)["classifier"]["token_ids"] == [LOWER_YES]
    result, report = _check(zerank, out, tmp_path, "--preset", "zerank-2")
    assert result.returncode == 1
    reason = report["reasons"][0]
    assert "'yes' (id 9693)" in reason and "'Yes' (id 9454)" in reason and "case" in reason
    assert "case" in result.stderr and result.stderr.count("error:") == 1


def test_zerank2_missing_scale_is_named(zerank, tmp_path):
    out = tmp_path / "unscaled"
    _convert(zerank, out, "--tokens", '["Yes"]', "--method", "no_post_processing")
    assert _provenance(out)["recipe"]["name"] == "custom"  # not the preset: the scale differs
    result, report = _check(zerank, out, tmp_path, "--preset", "zerank-2")
    assert result.returncode == 1
    assert "scale is missing" in report["reasons"][0] and "0.2" in report["reasons"][0]
    assert "scale is missing" in result.stderr


# --------------------------------------------------------------------------- ctxl-rerank-v2


def _ctxl_prompt(query: str, document: str) -> str:
    # ContextualAI's model card code (families.md section 2)
    return (
        "Check whether a given document contains information helpful to answer the query.\n"
        f"<Document> {document}\n<Query> {query} ??"
    )


@pytest.fixture(scope="module")
def ctxl_qwen(real_vocab_model) -> Path:
    return real_vocab_model(
        "qwen3", tied=True, name="ctxl-rerank-v2-instruct-multilingual-1b", preset="ctxl-rerank-v2"
    )


@pytest.fixture(scope="module")
def ctxl_mistral(tmp_path_factory) -> Path:
    from testkit.tiny import build_model

    root = tmp_path_factory.mktemp("mistral")
    return build_model(
        "mistral", root / "ctxl-rerank-v2-instruct-multilingual-6b", tied=False,
        preset="ctxl-rerank-v2",
    )  # fmt: skip


@pytest.mark.parametrize("which", ["qwen3-1b", "mistral-6b"])
def test_ctxl_converts_by_id_and_scores_raw_id0(which, ctxl_qwen, ctxl_mistral, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    source = ctxl_qwen if which == "qwen3-1b" else ctxl_mistral
    out = tmp_path / f"ctxl-{which}"
    _convert(source, out)
    classifier = _provenance(out)["classifier"]
    assert classifier["token_ids"] == [0]
    assert classifier["tokens"] == (["!"] if which == "qwen3-1b" else ["<unk>"])

    result, report = _check(source, out, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["recipe"] == "ctxl-rerank-v2"

    tokenizer = AutoTokenizer.from_pretrained(source)
    ids = [tokenizer(_ctxl_prompt(q, d))["input_ids"] for q, d in PAIRS]
    if which == "mistral-6b":
        assert all(p[0] == tokenizer.bos_token_id == 1 for p in ids)  # <s> prepended
    else:
        assert all(p[0] != 151643 for p in ids) and tokenizer.bos_token_id is None
    raw = _last_logits(source, ids)[:, 0]  # logits[:, -1, 0]
    served = torch.tensor(CrossEncoder(str(out)).predict(PAIRS), dtype=torch.float32)
    assert torch.allclose(served, torch.sigmoid(raw), atol=1e-5), (served, raw)
    assert float(raw.max() - raw.min()) > 0.5


def test_ctxl_6b_needs_the_id_not_a_string(ctxl_mistral, tmp_path):
    refused = run_cli(
        "convert", ctxl_mistral, tmp_path / "x", "--tokens", '["<unk>"]', "--method",
        "no_post_processing",
    )  # fmt: skip
    assert refused.returncode == 2 and "unknown token" in refused.stderr

    out = tmp_path / "wrong-id"
    _convert(ctxl_mistral, out, "--token-ids", "[2]", "--method", "no_post_processing")
    result, report = _check(ctxl_mistral, out, tmp_path, "--preset", "ctxl-rerank-v2")
    assert result.returncode == 1
    assert "differs from the source head rows" in report["reasons"][0]
    assert "ids [0]" in report["reasons"][0]


TEMPLATE_PAIRS = [
    *PAIRS,
    ("x", "y"),
    ("What does {{ messages }} do?", "Jinja in content is data: {{ 1 + 1 }} {% if %}"),
    ("<Query> nested markers", "<Document> <query>tags</query> ??"),
    ("Ünïcödé ß 🙂", "多语言文本，混合 English。\nSecond line."),
]


@pytest.mark.parametrize("which", ["zerank-2", "ctxl-qwen3", "ctxl-mistral"])
def test_new_templates_render_the_official_ids_for_both_consumers(
    which, qwen_tokenizer_dir, ctxl_mistral
):
    """vLLM renders string content and tokenizes WITH special tokens; sentence-transformers
    renders structured content with the shipped variables and tokenizes WITHOUT them. Both must
    give the family's own ids, with and without an instruction."""
    from transformers import AutoTokenizer

    from reranker_seqcls.convert.consumer_files import template_variables
    from reranker_seqcls.recipes.presets import PRESETS
    from reranker_seqcls.recipes.prompts import build_prompt_ids
    from reranker_seqcls.recipes.render import render_scoring_prompt

    preset = PRESETS["zerank-2" if which == "zerank-2" else "ctxl-rerank-v2"]
    directory = ctxl_mistral if which == "ctxl-mistral" else qwen_tokenizer_dir("qwen3")
    tokenizer = AutoTokenizer.from_pretrained(directory)
    for query, document in TEMPLATE_PAIRS:
        for instruction in (None, "Find passages that answer it", ""):
            expected = build_prompt_ids(tokenizer, preset, query, document, instruction)
            vllm_text = render_scoring_prompt(
                preset.template, query, document, instruction, tokenizer=tokenizer
            )
            assert tokenizer(vllm_text)["input_ids"] == expected, (query, instruction)
            st_text = render_scoring_prompt(
                preset.template, query, document, instruction, tokenizer=tokenizer,
                structured=True, **template_variables(preset),
            )  # fmt: skip
            st_ids = tokenizer(st_text, add_special_tokens=False)["input_ids"]
            assert st_ids == expected, (query, instruction)
    if which == "zerank-2":  # the instruction format ZeroEntropy recommends
        text = render_scoring_prompt(preset.template, "q", "d", "i", tokenizer=tokenizer)
        assert text.startswith("<|im_start|>system\n<query>q</query>\n<instruction>i</instruction>")


# --------------------------------------------------------------------------- larger family members


@pytest.mark.parametrize(
    ("name", "family", "tied", "preset", "ids"),
    [
        ("Qwen3-Reranker-4B", "qwen3", True, "qwen3-reranker", [2152, 9693]),
        ("Qwen3-Reranker-8B", "qwen3", False, "qwen3-reranker", [2152, 9693]),
        ("mxbai-rerank-large-v2", "qwen2", True, "mxbai-rerank-v2", [15, 16]),
    ],
)
def test_larger_family_members_detected_and_converted(
    real_vocab_model, tmp_path, name, family, tied, preset, ids
):
    source = real_vocab_model(family, tied=tied, name=name, tie_word_embeddings=tied)
    out = tmp_path / f"{name}-seq-cls"
    result = _convert(source, out)
    assert f"recipe: {preset}" in result.stderr
    provenance = _provenance(out)
    assert provenance["classifier"]["token_ids"] == ids
    assert provenance["classifier"]["score_from"] == (
        "model.embed_tokens.weight" if tied else "lm_head.weight"
    )
    extra: list[str] = []
    if preset == "mxbai-rerank-v2":
        # mxbai's code tokenizes prompt pieces separately; with the real BPE a text ending in
        # punctuation merges with the following "\n" piece ("?\n" is one token), which no
        # one-string template reproduces (docs/design.md). Texts ending in a letter do not merge.
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("".join(
            json.dumps({"query": q.rstrip("?？"), "document": d.rstrip(".。"), "group": q}) + "\n"
            for q, d in PAIRS
        ))  # fmt: skip
        extra = ["--pairs", str(pairs)]
    check, report = _check(source, out, tmp_path, *extra)
    assert check.returncode == 0, check.stdout + check.stderr
    assert report["recipe"] == preset


# --------------------------------------------------------------------------- ST LogitScore sources

ST_TEMPLATE = (
    "{%- set ns = namespace(q='', d='') -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'query' -%}{%- set ns.q = m.content[0].text -%}"
    "{%- elif m.role == 'document' -%}{%- set ns.d = m.content[0].text -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>user\\nQuery: ' ~ ns.q ~ '\\nDocument: ' ~ ns.d ~ '<|im_end|>\\n' -}}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
SIGMOID = "torch.nn.modules.activation.Sigmoid"
IDENTITY = "torch.nn.modules.linear.Identity"


def _edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data, indent=2))


def _set_st_files(
    directory: Path, true_id: int, false_id: int | None, activation: str, **settings
) -> None:
    """Point a saved LogitScore CrossEncoder at other ids/activation; structured messages with
    ``add_generation_prompt`` fixed true, as the published STv6 rerankers have them."""
    _edit(directory / "1_LogitScore" / "config.json",
          true_token_id=true_id, false_token_id=false_id)  # fmt: skip
    bert = json.loads((directory / "sentence_bert_config.json").read_text())
    bert["modality_config"]["message"]["format"] = "structured"
    bert["processing_kwargs"] = {"chat_template": {"add_generation_prompt": True}}
    bert.update(settings)
    (directory / "sentence_bert_config.json").write_text(json.dumps(bert, indent=4))
    _edit(directory / "config_sentence_transformers.json", activation_fn=activation)


@pytest.fixture(scope="module")
def st_saved(tiny_model, tmp_path_factory) -> Path:
    """A LogitScore CrossEncoder saved by sentence-transformers itself from a tiny Qwen3 LM."""
    from sentence_transformers import CrossEncoder

    root = tmp_path_factory.mktemp("st-logit-score")
    base = root / "base"
    shutil.copytree(tiny_model("qwen3", tied=False), base)
    saved = root / "saved"
    CrossEncoder(str(base)).save_pretrained(str(saved))
    (saved / "chat_template.jinja").write_text(ST_TEMPLATE)
    assert json.loads((saved / "modules.json").read_text())[1]["path"] == "1_LogitScore"
    return saved


@pytest.mark.parametrize("variant", ["two-way-sigmoid", "true-only-identity"])
def test_st_logit_score_source_converts_with_no_flags(st_saved, tmp_path, variant):
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    source = tmp_path / "my-logit-reranker"  # a name that names no family
    shutil.copytree(st_saved, source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    if variant == "two-way-sigmoid":
        _set_st_files(source, yes, no, SIGMOID)
    else:
        _set_st_files(source, yes, None, IDENTITY)
    own = CrossEncoder(str(source)).predict(PAIRS)

    out = tmp_path / "converted"
    result = _convert(source, out)
    assert "recipe from the source's sentence-transformers files" in result.stderr
    assert "add_generation_prompt" in result.stderr
    converted = CrossEncoder(str(out)).predict(PAIRS)
    assert max(abs(float(a) - float(b)) for a, b in zip(own, converted, strict=True)) < 1e-5
    if variant == "true-only-identity":
        assert any(float(v) < 0 or float(v) > 1 for v in own)  # raw logits, no sigmoid

    # the output has its own sentence-transformers files, not the source's
    assert not (out / "1_LogitScore").exists()
    assert [m["path"] for m in json.loads((out / "modules.json").read_text())] == [""]
    bert = json.loads((out / "sentence_bert_config.json").read_text())
    assert bert["transformer_task"] == "sequence-classification"
    st_config = json.loads((out / "config_sentence_transformers.json").read_text())
    config = json.loads((out / "config.json").read_text())
    expected_activation = SIGMOID if variant == "two-way-sigmoid" else IDENTITY
    assert st_config["activation_fn"] == expected_activation
    assert config["sentence_transformers"]["activation_fn"] == expected_activation
    ids = [no, yes] if variant == "two-way-sigmoid" else [yes]
    assert _provenance(out)["classifier"]["token_ids"] == ids

    check, report = _check(source, out, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert report["recipe"] == "sentence-transformers"


def _st_mutations() -> dict[str, tuple[dict, str]]:
    return {
        "flat format": ({"message_format": "flat"}, "only 'structured'"),
        "string add_generation_prompt": (
            {"processing_kwargs": {"chat_template": {"add_generation_prompt": "true"}}},
            "boolean template variables",
        ),
        "continue_final_message": (
            {"processing_kwargs": {"chat_template": {"continue_final_message": True}}},
            "continue_final_message",
        ),
        "max_length": ({"processing_kwargs": {"text": {"max_length": 512}}}, "max_length"),
        "module input": ({"module_input_name": "scores"}, "causal_logits"),
        "negative id": ({"true_token_id": -1}, "non-negative integer"),
        "id outside vocab": ({"true_token_id": 10**7}, "outside the vocabulary"),
        "extra module": ({"extra_module": True}, "only a Transformer followed by a LogitScore"),
        "tanh activation": (
            {"activation": "torch.nn.modules.activation.Tanh"},
            "Sigmoid or Identity",
        ),
        "no message modality": ({"no_message": True}, "no message modality"),
    }


ST_MUTATIONS = _st_mutations()


@pytest.mark.parametrize("case", sorted(ST_MUTATIONS))
def test_st_logit_score_bad_files_refused(st_saved, tmp_path, case):
    change, fragment = ST_MUTATIONS[case]
    source = tmp_path / "my-logit-reranker"
    shutil.copytree(st_saved, source)
    _set_st_files(source, 10, 11, change.get("activation", SIGMOID))
    bert_path = source / "sentence_bert_config.json"
    bert = json.loads(bert_path.read_text())
    if "message_format" in change:
        bert["modality_config"]["message"]["format"] = change["message_format"]
    if "processing_kwargs" in change:
        bert["processing_kwargs"] = change["processing_kwargs"]
    if change.get("no_message"):
        del bert["modality_config"]["message"]
    bert_path.write_text(json.dumps(bert))
    module = {k: v for k, v in change.items() if k in ("module_input_name", "true_token_id")}
    if module:
        _edit(source / "1_LogitScore" / "config.json", **module)
    if change.get("extra_module"):
        modules = json.loads((source / "modules.json").read_text())
        modules.append({"idx": 2, "name": "2", "path": "2_Dense",
                        "type": "sentence_transformers.base.modules.dense.Dense"})  # fmt: skip
        (source / "modules.json").write_text(json.dumps(modules))
    out = tmp_path / "out"
    result = run_cli("convert", source, out)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert not out.exists()


def _with_zerank_st_files(zerank: Path, target: Path, true_id: int) -> Path:
    """zerank-2 as its repo is published now: a STv6 CrossEncoder, Identity activation."""
    shutil.copytree(zerank, target)
    (target / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "",
         "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_LogitScore",
         "type": "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"},
    ]))  # fmt: skip
    (target / "1_LogitScore").mkdir()
    (target / "1_LogitScore" / "config.json").write_text(json.dumps(
        {"true_token_id": true_id, "false_token_id": None, "module_input_name": "causal_logits"}
    ))  # fmt: skip
    (target / "sentence_bert_config.json").write_text(json.dumps({
        "transformer_task": "text-generation",
        "modality_config": {"text": {"method": "forward", "method_output_name": "logits"},
                            "message": {"method": "forward", "method_output_name": "logits",
                                        "format": "structured"}},
        "module_output_name": "causal_logits",
        "processing_kwargs": {"chat_template": {"add_generation_prompt": True}},
    }))  # fmt: skip
    (target / "config_sentence_transformers.json").write_text(json.dumps(
        {"activation_fn": IDENTITY, "model_type": "CrossEncoder"}
    ))  # fmt: skip
    return target


def test_zerank2_with_its_st_files_serves_the_calibrated_score(zerank, tmp_path):
    source = _with_zerank_st_files(zerank, tmp_path / "zerank-2", YES)
    out = tmp_path / "out"
    result = _convert(source, out)
    assert "agree with preset zerank-2" in result.stderr and "Identity" in result.stderr
    assert "sigmoid(l(Yes) / 5)" in result.stderr
    assert _provenance(out)["recipe"]["name"] == "zerank-2"
    st_config = json.loads((out / "config_sentence_transformers.json").read_text())
    assert st_config["activation_fn"] == SIGMOID  # not the source's Identity

    conflicting = _with_zerank_st_files(zerank, tmp_path / "other" / "zerank-2", LOWER_YES)
    refused = run_cli("convert", conflicting, tmp_path / "out2")
    assert refused.returncode == 2
    assert "ids [9693]" in refused.stderr and "--preset zerank-2" in refused.stderr


# --------------------------------------------------------------------------- refusals

REFUSED_NAMES = {
    "bge-reranker-v2-minicpm-layerwise": "per-layer heads",
    "bge-reranker-v2.5-gemma2-lightweight": "compresses tokens",
    "rank1-7b": "reasoning trace",
    "jina-reranker-v3": "listwise ranking head",
    "Qwen3-VL-Reranker-2B": "no Qwen3VLForSequenceClassification",
}
REFUSED_CONFIGS = {
    "layerwise architecture": ({"architectures": ["LayerWiseMiniCPMForCausalLM"],
                                "model_type": "minicpm"}, "per-layer heads"),
    "cost-wise gemma": ({"architectures": ["CostWiseGemmaForCausalLM"],
                         "model_type": "cost_wise_gemma"}, "compresses tokens"),
    "JinaForRanking": ({"architectures": ["JinaForRanking"]}, "listwise ranking head"),
    "qwen3_vl": ({"architectures": ["Qwen3VLForConditionalGeneration"],
                  "model_type": "qwen3_vl"}, "vLLM converts it at load time"),
    "already seq-cls": ({"architectures": ["Qwen3ForSequenceClassification"]},
                        "already a sequence classifier"),
}  # fmt: skip


def _assert_refused(result, fragment: str, out: Path) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0] and ("cannot" in lines[0] or "already" in lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("name", sorted(REFUSED_NAMES))
def test_refused_family_by_name(tiny_model, tmp_path, name):
    source = tmp_path / name
    shutil.copytree(tiny_model("qwen3", tied=True), source)
    out = tmp_path / "out"
    _assert_refused(run_cli("convert", source, out), REFUSED_NAMES[name], out)
    # explicit recipe options do not make it convertible
    forced = run_cli("convert", source, out, "--preset", "qwen3-reranker")
    _assert_refused(forced, REFUSED_NAMES[name], out)


@pytest.mark.parametrize("case", sorted(REFUSED_CONFIGS))
def test_refused_family_by_config(tiny_model, tmp_path, case):
    changes, fragment = REFUSED_CONFIGS[case]
    source = tmp_path / "some-model"
    shutil.copytree(tiny_model("qwen3", tied=True), source)
    _edit(source / "config.json", **changes)
    out = tmp_path / "out"
    _assert_refused(run_cli("convert", source, out, "--preset", "qwen3-reranker"), fragment, out)


def test_qwen3_vl_refusal_follows_installed_transformers():
    from reranker_seqcls.convert.architectures import seq_cls_class
    from reranker_seqcls.recipes.refusals import qwen3_vl_refusal

    assert (qwen3_vl_refusal() is None) == (seq_cls_class("qwen3_vl") is not None)


# --------------------------------------------------------------------------- recipe primitives

RECIPE_ERRORS = {
    "ids not json": (["--token-ids", "[0,", "--method", "no_post_processing"], "not a JSON list"),
    "ids not ints": (["--token-ids", '["0"]', "--method", "no_post_processing"], "of integers"),
    "ids bool": (["--token-ids", "[true]", "--method", "no_post_processing"], "of integers"),
    "ids empty": (["--token-ids", "[]", "--method", "no_post_processing"], "empty list"),
    "ids negative": (["--token-ids", "[-3]", "--method", "no_post_processing"], ">= 0"),
    "ids twice": (["--token-ids", "[5, 5]", "--method", "no_post_processing"], "5 twice"),
    "ids outside vocab": (["--token-ids", "[9999999]", "--method", "no_post_processing"],
                          "outside the vocabulary"),
    "ids and tokens": (["--token-ids", "[1]", "--tokens", '["yes"]', "--method",
                        "no_post_processing"], "not both"),
    "ids need 2 for softmax": (["--token-ids", "[1]", "--method", "from_2_way_softmax"],
                               "exactly 2 tokens"),
    "scale not a number": (["--tokens", '["yes"]', "--method", "no_post_processing",
                            "--scale", "fifth"], "not a number"),
    "scale zero": (["--tokens", '["yes"]', "--method", "no_post_processing", "--scale", "0"],
                   "non-zero"),
    "scale nan": (["--tokens", '["yes"]', "--method", "no_post_processing", "--scale", "nan"],
                  "finite"),
    "scale inf": (["--tokens", '["yes"]', "--method", "no_post_processing", "--scale", "inf"],
                  "finite"),
    "scale with preset": (["--preset", "zerank-2", "--scale", "0.5"], "not both"),
    "scale alone": (["--scale", "0.5"], "custom recipe"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(RECIPE_ERRORS))
def test_recipe_primitive_errors(tiny_model, tmp_path, case):
    args, fragment = RECIPE_ERRORS[case]
    out = tmp_path / "out"
    result = run_cli("convert", tiny_model("qwen3", tied=True), out, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert not out.exists()


def test_token_ids_and_scale_fold_into_the_head(tiny_model, tmp_path):
    source = tiny_model("qwen3", tied=False)
    out = tmp_path / "out"
    result = _convert(source, out, "--token-ids", "[7, 9]", "--method", "from_2_way_softmax",
                      "--scale", "-0.3")  # fmt: skip
    assert "given by id" in result.stderr
    head = _head(source).double()
    expected = ((head[9] - head[7]) * -0.3).float()
    assert torch.equal(_score_weight(out)[0], expected)
    recipe = _provenance(out)["recipe"]
    assert recipe["token_ids"] == [7, 9] and recipe["scale"] == -0.3 and recipe["tokens"] == []


def test_scale_rounds_once_to_bfloat16():
    """A scaled head is not float32-exact: rounding through float32 could round twice."""
    from reranker_seqcls.safetensors_io.floats import decode_floats, encode_floats

    tricky = 1 + 2**-8 + 2**-30  # float32 rounds it to the bfloat16 tie 1 + 2**-8
    torch.manual_seed(0)
    values = [tricky, -tricky, *(torch.randn(4096, dtype=torch.float64) / 7).tolist()]
    stored = decode_floats(encode_floats([values], "BF16"), "BF16")
    assert stored[:2] == [1 + 2**-7, -(1 + 2**-7)]  # not the tie-to-even 1.0
    # torch's float64 -> bfloat16 goes through float32 and gets the tricky value wrong
    assert torch.tensor([tricky], dtype=torch.float64).to(torch.bfloat16).item() == 1.0

    def correctly_rounded(x: float) -> float:  # 8 significant bits, half to even
        _, exponent = math.frexp(x)
        return math.ldexp(round(math.ldexp(x, 8 - exponent)), exponent - 8)

    assert stored == [correctly_rounded(v) for v in values]


def test_logit_scaling_table_matches_installed_transformers():
    """Each folded config constant is applied by the model type's causal LM exactly as listed."""
    import importlib.util
    import re

    from reranker_seqcls.convert.rules import SCALED_LOGITS

    root = Path(importlib.util.find_spec("transformers").origin).parent / "models"
    for model_type, (key, how) in SCALED_LOGITS.items():
        code = (root / model_type / f"modeling_{model_type}.py").read_text("utf-8")
        op = r"\*" if how == "multiply" else "/"
        pattern = (
            rf"logits\s*=\s*(logits|self\.lm_head\(hidden_states\))\s*{op}"
            rf"\s*self\.(config\.)?{key}\b"
        )
        assert re.search(pattern, code), (model_type, key, how)


def test_logit_factor_of_scaled_and_unscaled_configs():
    from reranker_seqcls.convert.rules import logit_factor
    from reranker_seqcls.errors import BadInput

    assert logit_factor({"model_type": "cohere", "logit_scale": 0.0625}) == 0.0625
    assert logit_factor({"model_type": "granite", "logits_scaling": 8.0}) == 0.125
    assert logit_factor({"model_type": "hyperclovax", "logits_scaling": 2.0}) == 2.0
    assert logit_factor({"model_type": "qwen3"}) == 1.0
    with pytest.raises(BadInput, match="does not apply"):  # transformers' qwen3 ignores it
        logit_factor({"model_type": "qwen3", "logit_scale": 0.5})
    with pytest.raises(BadInput, match="finite non-zero"):
        logit_factor({"model_type": "granite", "logits_scaling": 0})


def test_source_logit_scaling_is_folded(tiny_model, tmp_path, monkeypatch):
    """No scaling model type has a seq-cls class in transformers 5.24, so the fold is exercised
    by declaring the tiny Qwen3's config key as applied (the numbers are what matter)."""
    from reranker_seqcls.convert import converter as convert_module
    from reranker_seqcls.recipes.presets import PRESETS

    source = tmp_path / "Qwen3-Reranker-scaled"
    shutil.copytree(tiny_model("qwen3", tied=True), source)
    _edit(source / "config.json", logits_scaling=3.0)
    monkeypatch.setitem(convert_module.SCALED_LOGITS, "qwen3", ("logits_scaling", "divide"))
    logs: list[str] = []
    result = convert_module.convert(
        source, tmp_path / "out", PRESETS["qwen3-reranker"], log=logs.append
    )
    assert result.plan.logit_factor == 1 / 3 and result.plan.scale == 1 / 3
    assert any("folded in" in line for line in logs)
    embed = _head(tiny_model("qwen3", tied=True)).double()
    expected = ((embed[result.plan.tokens[1].id] - embed[result.plan.tokens[0].id]) / 3).float()
    assert torch.equal(_score_weight(tmp_path / "out")[0], expected)


# --------------------------------------------------------------------------- listing, card, Action


def test_presets_lists_facts_of_every_family():
    from reranker_seqcls.recipes.presets import PRESETS

    result = run_cli("presets")
    assert result.returncode == 0, result.stderr
    for preset in PRESETS.values():
        assert f"{preset.name}: " in result.stdout
        for fact in (preset.describe_classifier(), preset.score_formula, preset.bos_rule,
                     preset.facts_source, *preset.name_patterns):  # fmt: skip
            assert fact in result.stdout, fact
    assert "ids [0]" in result.stdout and "scale 0.2" in result.stdout
    assert "served      sigmoid(score logit) = sigmoid(l(Yes) / 5)" in result.stdout
    for family in ("minicpm-layerwise", "gemma2-lightweight", "Rank1", "jina-reranker-v3"):
        assert family in result.stdout


def test_card_names_family_and_formula(zerank, tmp_path):
    from huggingface_hub import ModelCard

    from reranker_seqcls.hub.card import render_card

    out = tmp_path / "out"
    _convert(zerank, out)
    card = render_card(target_repo="me/zerank-2-seq-cls", provenance=_provenance(out),
                       parity_markdown=None, license_=None, license_extra={},
                       template_file="chat_template.jinja")  # fmt: skip
    assert "Family: `zerank-2`, official score `sigmoid(l(Yes) / 5)`" in card
    assert "times the constant `0.2`" in card
    assert ModelCard(card).data.pipeline_tag == "text-ranking"


def test_action_preset_input_documents_every_preset():
    import yaml

    from reranker_seqcls.recipes.presets import PRESETS

    spec = yaml.safe_load((Path(__file__).parent.parent / "action.yml").read_text("utf-8"))
    description = " ".join(spec["inputs"]["preset"]["description"].split())
    for name in PRESETS:
        assert name in description, name


def test_token_id_outside_the_head_is_refused(tiny_model, tmp_path):
    """An id the tokenizer knows (an added token) but the head has no row for."""
    source = tmp_path / "some-model"
    shutil.copytree(tiny_model("qwen3", tied=True), source)
    config = json.loads((source / "config.json").read_text())
    rows = config.pop("vocab_size")  # else the config's vocab_size check refuses it first
    (source / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    tokenizer["added_tokens"].append({
        "id": rows, "content": "<|beyond|>", "single_word": False, "lstrip": False,
        "rstrip": False, "normalized": False, "special": True,
    })  # fmt: skip
    (source / "tokenizer.json").write_text(json.dumps(tokenizer))
    out = tmp_path / "out"
    result = run_cli(
        "convert", source, out, "--token-ids", f"[{rows}]", "--method", "no_post_processing"
    )
    assert result.returncode == 2, result.stderr
    assert f"id {rows}" in result.stderr and f"({rows} rows)" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "linked", ["modules.json", "1_LogitScore/config.json", "chat_template.jinja"]
)
def test_st_logit_score_files_linking_outside_are_refused(st_saved, tmp_path, linked):
    """The sentence-transformers files are read through the source's trust boundary: a file
    linking outside the source (here a secret next to it, or /dev/zero) is refused, not read."""
    source = tmp_path / "my-logit-reranker"
    shutil.copytree(st_saved, source)
    _set_st_files(source, 10, 11, SIGMOID)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"hf_token": "hf_notarealtokenbutsecret"}))
    (source / linked).unlink()
    (source / linked).symlink_to(secret if linked != "chat_template.jinja" else "/dev/zero")
    out = tmp_path / "out"
    result = run_cli("convert", source, out, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "symlink to a file outside" in lines[0], result.stderr
    assert "hf_notarealtokenbutsecret" not in result.stderr + result.stdout
    assert not out.exists()
