"""Issue 22: over-length pairs cut the way each family's own code cuts them, the scoring length
the converted checkpoint carries, and what each consumer does with a pair that does not fit.

The references here restate each family's published code with transformers' own truncation
calls (``tokenizer(..., truncation=..., max_length=...)``), independently of the package's
slicing. Models are tiny with ``max_position_embeddings`` 512, which scales each family's
``max_length`` down (the reference's position cap), on the real Qwen vocabulary.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from reranker_seqcls.check.pairs import _LONG_IRRELEVANT, _LONG_RELEVANT
from reranker_seqcls.recipes import prompts
from reranker_seqcls.recipes.presets import PRESETS
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
POSITIONS = 512
LONG_DOC = " ".join(f"({i}) {_LONG_RELEVANT}" for i in range(6))  # ~2,000 Qwen tokens
LONG_QUERY = " ".join(f"[{i}] {_LONG_IRRELEVANT}" for i in range(4))  # ~1,000 Qwen tokens
SHORT_QUERY = "How do vaccines work?"


def _encode(tok, text: str, **kwargs) -> list[int]:
    return list(tok(text, add_special_tokens=False, **kwargs)["input_ids"])


@pytest.fixture(scope="module")
def qwen3_tok(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen3"))


@pytest.fixture(scope="module")
def qwen2_tok(qwen_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir("qwen2"))


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("query", [SHORT_QUERY, LONG_QUERY])
def test_qwen3_cut_is_the_model_card_cut(qwen3_tok, query):
    tok = qwen3_tok
    prefix, suffix = _encode(tok, prompts.QWEN3_PREFIX), _encode(tok, prompts.QWEN3_SUFFIX)
    body = (
        f"<Instruct>: {prompts.QWEN3_DEFAULT_INSTRUCTION}\n<Query>: {query}\n<Document>: {LONG_DOC}"
    )
    # model card process_inputs, with max_length 8192 capped at the positions
    cut = tok(
        [body], padding=False, truncation="longest_first", return_attention_mask=False,
        max_length=POSITIONS - len(prefix) - len(suffix),
    )["input_ids"][0]  # fmt: skip
    expected = prefix + list(cut) + suffix
    got = prompts.official_prompt(
        tok, PRESETS["qwen3-reranker"], query, LONG_DOC, position_limit=POSITIONS
    )
    assert got.ids == expected
    assert len(got.ids) == POSITIONS and got.ids[-len(suffix) :] == suffix
    # without the cap the family's own 8192 does not bind: nothing is cut
    whole = prompts.official_prompt(tok, PRESETS["qwen3-reranker"], query, LONG_DOC)
    assert len(whole.ids) > POSITIONS and whole.ids[: len(prefix)] == prefix


@pytest.mark.parametrize("query", [SHORT_QUERY, LONG_QUERY])
def test_mxbai_cut_is_the_library_cut(qwen2_tok, query):
    tok = qwen2_tok
    fixed = sum(
        len(_encode(tok, text))
        for text in (prompts.MXBAI_PREFIX, prompts.MXBAI_TASK_PROMPT, prompts.MXBAI_SUFFIX, "\n")
    )
    max_length = min(8192, POSITIONS - fixed)  # the library lowers it to fit model_max_length
    q = _encode(tok, f"query: {query}", max_length=max_length * 3 // 4, truncation=True)
    doc_max = min(POSITIONS - len(q) - fixed, max_length)
    d = _encode(tok, f"document: {LONG_DOC}", max_length=doc_max, truncation=True)
    second = (_encode(tok, "\n") + d)[: max_length - len(q)]  # prepare_for_model only_second
    expected = (
        _encode(tok, prompts.MXBAI_PREFIX) + q + second + _encode(tok, "\n")
        + _encode(tok, prompts.MXBAI_TASK_PROMPT) + _encode(tok, prompts.MXBAI_SUFFIX)
    )  # fmt: skip
    got = prompts.official_prompt(
        tok, PRESETS["mxbai-rerank-v2"], query, LONG_DOC, position_limit=POSITIONS
    )
    assert got.ids == expected
    assert len(got.ids) == POSITIONS
    assert prompts.scoring_length("mxbai-rerank-v2", lambda t: len(_encode(tok, t)), POSITIONS) == (
        POSITIONS
    )
    if query == LONG_QUERY:  # the query keeps only its 3/4 share
        assert len(q) == max_length * 3 // 4


def test_bge_cut_is_flagembeddings_cut(gemma_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gemma_tokenizer_dir)
    prompt_ids, sep = _encode(tok, prompts.BGE_DEFAULT_PROMPT), _encode(tok, "\n")
    fixed = 2 * (len(sep) + len(prompt_ids))
    max_length = min(512, POSITIONS - fixed)
    for query in (SHORT_QUERY, LONG_QUERY):
        q = _encode(tok, f"A: {query}", max_length=max_length * 3 // 4, truncation=True)
        p = _encode(tok, f"B: {LONG_DOC}", max_length=max_length, truncation=True)
        first = [tok.bos_token_id, *q]
        second = (sep + p)[: max_length + len(sep) + len(prompt_ids) - len(first)]
        got = prompts.official_prompt(
            tok, PRESETS["bge-reranker-v2-gemma"], query, LONG_DOC, position_limit=POSITIONS
        )
        assert got.ids == first + second + sep + prompt_ids
        assert got.ids[-len(prompt_ids) :] == prompt_ids  # the prompt is never cut
    # a short query leaves the passage at exactly max_length tokens: the total depends on it
    short = prompts.official_prompt(
        tok, PRESETS["bge-reranker-v2-gemma"], SHORT_QUERY, LONG_DOC, position_limit=POSITIONS
    )
    assert len(short.ids) < POSITIONS


def test_ctxl_cut_drops_the_anchor_and_zerank_cuts_characters(qwen3_tok):
    tok = qwen3_tok
    text = f"{prompts.CTXL_HEAD}\n<Document> {LONG_DOC}\n<Query> {SHORT_QUERY}{prompts.CTXL_END}"
    expected = tok([text], truncation=True, max_length=POSITIONS)["input_ids"][0]
    got = prompts.official_prompt(
        tok, PRESETS["ctxl-rerank-v2"], SHORT_QUERY, LONG_DOC, position_limit=POSITIONS
    )
    assert got.ids == list(expected)
    assert got.ids[-1] != _encode(tok, prompts.CTXL_END)[-1]  # the " ??" anchor is gone

    long_doc = LONG_DOC * 10
    assert len(long_doc) > 10_000 and len(LONG_QUERY * 3) > 2_000
    got = prompts.official_prompt(tok, PRESETS["zerank-2"], LONG_QUERY * 3, long_doc)
    expected_text = (
        f"<|im_start|>system\n{(LONG_QUERY * 3)[:2000]}<|im_end|>\n<|im_start|>user\n"
        f"{long_doc[:10000]}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert got.ids == _encode(tok, expected_text)
    assert prompts.scoring_length("zerank-2", lambda t: len(_encode(tok, t)), POSITIONS) is None


def test_pairs_that_fit_are_untouched(qwen3_tok):
    for preset in ("qwen3-reranker", "ctxl-rerank-v2", "zerank-2"):
        recipe = PRESETS[preset]
        short = prompts.official_prompt(qwen3_tok, recipe, SHORT_QUERY, _LONG_RELEVANT)
        capped = prompts.official_prompt(
            qwen3_tok, recipe, SHORT_QUERY, _LONG_RELEVANT, position_limit=POSITIONS
        )
        assert short == capped


# (query, document): whitespace around either text, and a document that is only whitespace
ZERANK_WHITESPACE = [
    ("  What is the capital of France?\n", "\n\n  Paris is the capital of France.  \n"),
    ("What is the capital of France?", "\tBananas are yellow. \n\n"),
    (" capital ", "   "),
]


def test_zerank_strips_like_its_own_code_in_every_consumer(real_vocab_model, tmp_path):
    """zeroentropy's ``modeling_zeranker.py`` cuts characters, then ``.strip()``s the query and
    the document before the chat template. The reference and the shipped template both strip,
    so sentence-transformers and vLLM's one-string rendering score the legacy code's text."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reranker_seqcls.recipes.render import render_scoring_prompt

    yes = 9454
    source = real_vocab_model("qwen3", tied=True, name="zerank-2", preset="zerank-2")
    out = tmp_path / "zerank-2-seq-cls"
    assert run_cli("convert", source, out, "--preset", "zerank-2").returncode == 0
    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()

    def legacy_ids(query: str, document: str, strip: bool = True) -> list[int]:
        """format_pointwise_datapoints, with the source repo's own chat template."""
        query, document = query[:2_000], document[:10_000]
        if strip:
            query, document = f"\n{query}\n".strip(), f"\n{document}\n".strip()
        messages = [{"role": "system", "content": query}, {"role": "user", "content": document}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tok([text], padding=True)["input_ids"][0])

    def legacy_score(ids: list[int]) -> float:
        with torch.no_grad():
            logit = model(input_ids=torch.tensor([ids])).logits[0, -1, yes]
        return float(torch.sigmoid(logit / 5.0))

    converted = CrossEncoder(str(out))
    served = converted.predict(ZERANK_WHITESPACE, show_progress_bar=False)
    template = (out / "chat_template.jinja").read_text()
    for (query, document), score in zip(ZERANK_WHITESPACE, served, strict=True):
        ids = legacy_ids(query, document)
        official = legacy_score(ids)
        assert prompts.build_prompt_ids(tok, PRESETS["zerank-2"], query, document) == ids
        assert abs(float(score) - official) < 1e-5, (query, document, score, official)
        # vLLM's rendering: string content, tokenized with the tokenizer's special tokens
        text = render_scoring_prompt(template, query, document, None, tokenizer=tok)
        assert tok(text)["input_ids"] == ids, (query, document)
        # the whitespace matters: unstripped, the same model scores another text
        unstripped = legacy_score(legacy_ids(query, document, strip=False))
        assert abs(unstripped - official) > 1e-4, (query, document, unstripped, official)


# --------------------------------------------------------------------------- through the consumers

SHORT_PAIRS = [
    {"query": "What is the capital of France?", "document": "Paris is the capital of France."},
    {"query": "What is the capital of France?", "document": "Bananas are yellow."},
]
LONG_ROWS = ("long-document", "long-query-and-document")
TRANSFORMERS = "transformers, the original's cut ids"


def _pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in SHORT_PAIRS))
    return path


def _source(family: str, preset: str, real_vocab_model) -> Path:
    """A tiny model on the family's real vocabulary (Qwen3, Qwen2.5, Gemma 4), positions 512."""
    return real_vocab_model(
        family, name=f"{preset}-long", preset=preset, max_position_embeddings=POSITIONS
    )


def _convert_and_check(source: Path, tmp_path: Path, preset: str, *args: str, timeout: int = 300):
    out = tmp_path / f"{preset}-seq-cls"
    converted = run_cli("convert", source, out, "--preset", preset)
    assert converted.returncode == 0, converted.stderr
    report_path = tmp_path / "report.json"
    result = run_cli(
        "check",
        source,
        out,
        "--pairs",
        _pairs_file(tmp_path),
        "--report",
        report_path,
        *args,
        timeout=timeout,
    )
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return out, result, report


def _rows(report: dict) -> dict[tuple[str, str], dict]:
    return {(r["consumer"], r["pair"]): r for r in report["long_inputs"]["consumers"]}


@pytest.fixture(scope="module")
def qwen3_long(real_vocab_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qwen3-long")
    source = _source("qwen3", "qwen3-reranker", real_vocab_model)
    out, result, report = _convert_and_check(source, tmp, "qwen3-reranker")
    return source, out, result, report


def test_qwen3_checkpoint_makes_sentence_transformers_cut_like_the_model_card(qwen3_long):
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, out, result, report = qwen3_long
    assert result.returncode == 0, result.stdout + result.stderr
    st_config = json.loads((out / "sentence_bert_config.json").read_text())
    assert st_config["max_seq_length"] == POSITIONS  # min(8192, max_position_embeddings)
    long = report["long_inputs"]
    assert long["measured"] and long["scoring_length"] == POSITIONS
    assert [p["group"] for p in long["pairs"]] == list(LONG_ROWS)
    for pair in long["pairs"]:
        assert pair["document_tokens"] >= 2 * POSITIONS
        assert pair["official_prompt_tokens"] == POSITIONS
    assert long["pairs"][1]["query_tokens"] >= POSITIONS
    rows = _rows(report)
    for group in LONG_ROWS:
        assert rows[(TRANSFORMERS, group)]["behaviour"] == "matches the official truncated score"
        st = rows[("sentence-transformers", group)]
        assert st["behaviour"] == "matches the official truncated score", st
        assert "the original's ids" in st["detail"]

    # independently: the model card's cut on the original causal LM, against CrossEncoder
    tok = AutoTokenizer.from_pretrained(source)
    prefix, suffix = _encode(tok, prompts.QWEN3_PREFIX), _encode(tok, prompts.QWEN3_SUFFIX)
    body = f"<Instruct>: {prompts.QWEN3_DEFAULT_INSTRUCTION}\n<Query>: {SHORT_QUERY}\n<Document>: "
    body += LONG_DOC
    ids = prefix + _encode(
        tok, body, truncation="longest_first", max_length=POSITIONS - len(prefix) - len(suffix)
    ) + suffix  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    with torch.no_grad():
        last = model(input_ids=torch.tensor([ids])).logits[0, -1]
    official = float(last[9693] - last[2152])  # l(yes) - l(no)
    served = float(
        CrossEncoder(str(out)).predict(
            [(SHORT_QUERY, LONG_DOC)], activation_fn=torch.nn.Identity()
        )[0]
    )
    assert abs(served - official) < 1e-4, (served, official)
    from reranker_seqcls.check.report import ParityReport

    markdown = ParityReport.from_json(report).markdown()
    assert "### Long inputs" in markdown and f"Scoring length: {POSITIONS} tokens" in markdown
    assert "sentence-transformers, long-document: matches the official truncated score" in markdown
    assert "return_offsets_mapping=True" in markdown  # the client-side recipe


def test_st_config_that_cuts_the_template_fails_the_check(qwen3_long, tmp_path):
    source, out, _, _ = qwen3_long
    broken = tmp_path / "restore-off"
    shutil.copytree(out, broken)
    path = broken / "sentence_bert_config.json"
    config = json.loads(path.read_text())
    config["processing_kwargs"] = {"chat_template": {"restore_suffix": False}}
    path.write_text(json.dumps(config, indent=4))
    report_path = tmp_path / "report.json"
    result = run_cli(
        "check", source, broken, "--pairs", _pairs_file(tmp_path), "--report", report_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    reasons = json.loads(report_path.read_text())["reasons"]
    assert any("cuts the scoring template" in r and "restore_suffix" in r for r in reasons)
    assert "restore_suffix" in result.stderr and result.stderr.count("error:") == 1


@pytest.mark.parametrize(
    ("family", "preset"),
    [
        ("qwen2", "mxbai-rerank-v2"),
        ("gemma", "bge-reranker-v2-gemma"),
        ("qwen3", "zerank-2"),
        ("qwen3", "ctxl-rerank-v2"),
    ],
)
def test_each_family_reports_what_sentence_transformers_does(
    family, preset, real_vocab_model, tmp_path
):
    source = _source(family, preset, real_vocab_model)
    out, result, report = _convert_and_check(source, tmp_path, preset)
    assert result.returncode == 0, result.stdout + result.stderr  # findings, not failures
    long = report["long_inputs"]
    assert long["measured"]
    st_config = json.loads((out / "sentence_bert_config.json").read_text())
    if preset == "zerank-2":  # characters, no token bound: nothing to carry
        assert long["scoring_length"] is None and "max_seq_length" not in st_config
        # its character cuts shorten both pairs' prompts
        assert all(p["official_prompt_tokens"] < p["uncut_prompt_tokens"] for p in long["pairs"])
    else:
        assert long["scoring_length"] == st_config["max_seq_length"] == POSITIONS
    rows = _rows(report)
    tolerance = report["tolerance"]["logit"]
    for group in LONG_ROWS:
        assert rows[(TRANSFORMERS, group)]["behaviour"] == "matches the official truncated score"
        st = rows[("sentence-transformers", group)]
        # measured: none of these families' cuts is a plain right-truncation of one string,
        # so sentence-transformers scores another text, by more than the tolerance
        assert st["behaviour"] == "scores another text", st
        reference = next(p for p in long["pairs"] if p["group"] == group)["reference"][-1]
        assert abs(st["score"] - reference) > tolerance
        assert f"cuts at {POSITIONS} tokens" in st["detail"]
    if preset == "ctxl-rerank-v2":
        # the original cuts its own " ??" anchor; sentence-transformers restores it
        detail = rows[("sentence-transformers", "long-document")]["detail"]
        assert "leaving the original's" in detail


SERVED = "vLLM served /score"
OFFLINE = "vLLM offline"
CUT = ", cut on the client side"


def _vllm_python() -> Path:
    path = Path(os.environ.get("RERANKER_SEQCLS_VLLM_PYTHON") or ROOT / ".venv-vllm/bin/python")
    assert path.is_file(), f"{path} missing: run `make vllm-venv`"
    return path


def assert_vllm_rows(report: dict, length: int) -> dict[str, float]:
    """What every family's check with vLLM shows (offline and served): the raw over-length
    pairs are refused at the checkpoint's own length (offline: vLLM's error; served: HTTP
    400), the card's client-side cut is scored, served equals offline, ``/rerank`` equals
    ``/score``, and a query longer than the scoring length is still refused (the recipe cuts
    documents only). Returns the long-document pair's cut scores: offline, served."""
    rows = _rows(report)
    for consumer in (OFFLINE, SERVED):
        for group in LONG_ROWS:
            raw = rows[(consumer, group)]
            assert raw["behaviour"] == "refuses", raw
            assert f"maximum context length is {length} tokens" in raw["detail"], raw
        long_query = rows[(consumer + CUT, "long-query-and-document")]
        assert long_query["behaviour"] == "refuses", long_query
    for group in LONG_ROWS:  # /rerank refuses what /score refuses, with the same message
        detail = rows[(SERVED, group)]["detail"]
        assert detail.startswith("HTTP 400: ") and detail.endswith("; /rerank: the same refusal")
    offline = rows[(OFFLINE + CUT, "long-document")]
    served = rows[(SERVED + CUT, "long-document")]
    assert offline["score"] is not None and served["score"] is not None, (offline, served)
    assert served["behaviour"] == offline["behaviour"], (offline, served)
    assert abs(served["score"] - offline["score"]) < 1e-4, (offline, served)
    assert served["detail"].endswith("; /rerank: the same score"), served
    return {"offline": offline["score"], "served": served["score"]}


def cut_prompt_ids(
    out: Path, recipe_name: str, report: dict, positions: int
) -> tuple[list[int], list[int]]:
    """The check's long-document pair cut as the card says and rendered as vLLM renders it:
    (vLLM's prompt ids of it, the original's prompt ids), with the converted tokenizer."""
    from transformers import AutoTokenizer

    from reranker_seqcls.check.long_pairs import client_side, long_pairs
    from reranker_seqcls.recipes.render import render_scoring_prompt

    length = report["long_inputs"]["scoring_length"]
    tok = AutoTokenizer.from_pretrained(out)
    recipe = PRESETS[recipe_name]
    pair = long_pairs(recipe, lambda t: len(_encode(tok, t)), length)[0]
    query, cut = client_side(tok, recipe, pair, length)
    template = (out / "chat_template.jinja").read_text()
    vllm_ids = tok(render_scoring_prompt(template, query, cut, None, tokenizer=tok))["input_ids"]
    official = prompts.official_prompt(
        tok, recipe, pair.query, pair.document, position_limit=positions
    ).ids
    assert len(vllm_ids) <= length
    return list(vllm_ids), list(official)


def _template_fed(out: Path, recipe_name: str, report: dict) -> tuple[float, int, int, float]:
    """(the converted classifier's probability on vLLM's prompt of the cut long-document pair,
    its length, the original's prompt length, the original's probability)."""
    vllm_ids, official = cut_prompt_ids(out, recipe_name, report, POSITIONS)
    original = 1 / (1 + math.exp(-report["long_inputs"]["pairs"][0]["reference"][-1]))
    if vllm_ids == official:
        return original, len(vllm_ids), len(official), original
    return _classifier_probability(out, vllm_ids), len(vllm_ids), len(official), original


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "preset"),
    [("qwen2", "mxbai-rerank-v2"), ("gemma", "bge-reranker-v2-gemma"), ("qwen3", "ctxl-rerank-v2")],
)
def test_vllm_offline_and_served_on_the_long_pairs(family, preset, real_vocab_model, tmp_path):
    """``check --vllm-python`` on each family with a token bound, on its real vocabulary (Gemma 4
    SentencePiece for bge, head_dim 64, which vLLM's CPU attention takes): vLLM offline and
    ``vllm serve`` (``/score``, ``/rerank``) refuse the raw over-length pairs with the
    checkpoint's own length, and score the card's client-side cut. It keeps the prompt within
    the bound but is not the family's own cut (mxbai's and bge's per-piece cuts; ctxl's
    right-truncation of the whole prompt, which drops its query and its ``" ??"`` anchor): the
    score is the converted classifier's on the rendered cut prompt, another text than the
    original's. Qwen3-Reranker, whose client-side cut is the model card's own, is checked the
    same way on the twin (``test_vllm.py::test_check_within_a_memory_budget_runs_vllm_on_the_
    shrunk_twin``); zerank-2, whose cut is in characters, in :func:`test_vllm_takes_the_
    character_cut_of_zerank`."""
    source = _source(family, preset, real_vocab_model)
    out, result, report = _convert_and_check(  # one offline vLLM process, one vllm serve
        source, tmp_path, preset, "--vllm-python", str(_vllm_python()), timeout=1500
    )
    assert result.returncode == 0, result.stdout + result.stderr
    length = report["long_inputs"]["scoring_length"]
    assert length == POSITIONS
    scored = assert_vllm_rows(report, length)
    expected, vllm_tokens, official_tokens, original = _template_fed(out, preset, report)
    rows = _rows(report)
    for consumer, key in ((OFFLINE, "offline"), (SERVED, "served")):
        assert abs(scored[key] - expected) < 1e-4, (consumer, scored, expected)
        row = rows[(consumer + CUT, "long-document")]
        # measured: the cut fills the scoring length where the family's cut differs
        assert row["behaviour"] == "scores another text", row
        assert abs(row["score"] - original) > report["tolerance"]["prob"]
    print(
        f"\n{preset}, scoring length {length}: vLLM's prompt of the cut document {vllm_tokens} "
        f"tokens, the original's {official_tokens}; offline {scored['offline']:.6f}, served "
        f"{scored['served']:.6f}, original {original:.6f} (|Δ probability| "
        f"{abs(scored['served'] - original):.3g})"
    )


# Between zerank-2's cut prompts (~1,900 and ~2,400 tokens: 10,000 and 2,000 characters kept)
# and its raw ones (~3,800 and ~4,800 tokens): both are refused raw, both cuts fit.
ZERANK_POSITIONS = 3072


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_takes_the_character_cut_of_zerank(real_vocab_model, tmp_path):
    """zerank-2's legacy code cuts characters (2,000 of the query, 10,000 of the document) and
    strips them; the card's client-side cut is those characters, and the saved template strips.
    ``check --vllm-python`` on a tiny zerank-2 with 3072 positions: vLLM offline and served
    refuse both raw pairs at the checkpoint's own length, and give the original's truncated
    score for both cut pairs (the long query's too: its character cut fits), ``/rerank`` the
    same."""
    from reranker_seqcls.check.metrics import sigmoid

    source = real_vocab_model(
        "qwen3", name="zerank-2-long-vllm", preset="zerank-2",
        max_position_embeddings=ZERANK_POSITIONS,
    )  # fmt: skip
    _, result, report = _convert_and_check(
        source, tmp_path, "zerank-2", "--vllm-python", str(_vllm_python()), timeout=1500
    )
    assert result.returncode == 0, result.stdout + result.stderr
    long = report["long_inputs"]
    assert long["measured"] and long["scoring_length"] is None
    pairs = {p["group"]: p for p in long["pairs"]}
    for pair in pairs.values():
        assert pair["uncut_prompt_tokens"] > ZERANK_POSITIONS >= pair["official_prompt_tokens"]
    rows = _rows(report)
    for group in LONG_ROWS:
        original = sigmoid(pairs[group]["reference"][-1])
        for consumer in (OFFLINE, SERVED):
            raw = rows[(consumer, group)]
            assert raw["behaviour"] == "refuses", raw
            assert f"maximum context length is {ZERANK_POSITIONS} tokens" in raw["detail"], raw
            cut = rows[(consumer + CUT, group)]
            assert cut["behaviour"] == "matches the official truncated score", cut
            assert abs(cut["score"] - original) < 1e-4, (cut, original)
        assert rows[(SERVED, group)]["detail"].endswith("; /rerank: the same refusal")
        served, offline = rows[(SERVED + CUT, group)], rows[(OFFLINE + CUT, group)]
        assert served["detail"].endswith("; /rerank: the same score"), served
        assert abs(served["score"] - offline["score"]) < 1e-4, (served, offline)
        print(
            f"\nzerank-2, {group}: cut prompt {pairs[group]['official_prompt_tokens']} tokens, "
            f"offline {offline['score']:.6f}, served {served['score']:.6f}, original "
            f"{original:.6f}"
        )


def _classifier_probability(out: Path, ids: list[int]) -> float:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        return float(torch.sigmoid(model(input_ids=torch.tensor([ids])).logits[0, 0]))


def test_files_that_cut_the_template_fail_even_unmeasured(tmp_path):
    """A real model's check does not run the long pairs (too long for its budget), yet the
    converted files are still read: restore_suffix off fails, another max_seq_length is noted."""
    from reranker_seqcls.check.long_consumers import _check_files
    from reranker_seqcls.check.report import ParityReport
    from reranker_seqcls.check.verdict import TOLERANCES

    def report() -> ParityReport:
        return ParityReport(True, "float32", TOLERANCES["float32"], "qwen3-reranker", 2, 1, {})

    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8192}))
    fine = report()
    _check_files(fine, tmp_path, 8192)
    assert fine.passed and not fine.notes
    _check_files(fine, tmp_path, 4096)
    assert fine.passed and "max_seq_length is 8192" in fine.notes[0]
    (tmp_path / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 8192, "processing_kwargs": {"chat_template": {
            "restore_suffix": False}}})
    )  # fmt: skip
    broken = report()
    _check_files(broken, tmp_path, 8192)
    assert not broken.passed and "restore_suffix is false" in broken.reasons[0]


def test_a_server_that_cannot_start_is_a_refusal_row(tmp_path):
    """``vllm serve`` by a Python without vLLM: every served row is "refuses" with the server's
    first error line, never a crash (seconds: the launcher dies importing vLLM)."""
    import sys

    from reranker_seqcls.check.long_served import SCORE, SCORE_CUT, served, served_rows
    from reranker_seqcls.check.pairs import Pair

    pairs = [Pair("q", "d", group="long-document"), Pair("q q", "d", group="long-query")]
    logged: list[str] = []
    with served(sys.executable, tmp_path, "float32") as server:
        rows = served_rows(
            server, tmp_path, pairs, [("q", "d")] * 2, [0.5, 0.5], 1e-3, logged.append
        )
    assert [(r.consumer, r.pair) for r in rows] == [
        (name, p.group) for name in (SCORE, SCORE_CUT) for p in pairs
    ]
    for row in rows:
        assert row.behaviour == "refuses" and row.score is None, row
        assert row.detail == (
            "vllm serve exited with code 1: ModuleNotFoundError: No module named 'vllm'"
        ), row.detail
    assert server.process is not None and server.process.returncode is not None
    assert logged and "vllm serve" in logged[0]


def test_a_given_over_length_pair_is_noted_on_the_streamed_run(
    hub_server, hub_env, tiny_model, tmp_path
):
    """``run --check-memory 1KB --pairs`` with a pair the family's code would cut: the streamed
    road's layerwise scorer (``stream/scorers.py``, the real half plus the twin's check) leaves
    it out of both halves and notes it, as ``check`` does (``test_quick_check.py``)."""
    from tests.conftest import repo_files
    from tests.loopback_hub.fixtures import TEST_USER

    upstream = "qwen-team/Qwen3-Reranker-tiny-cut-note"
    target = f"{TEST_USER}/Qwen3-Reranker-tiny-cut-note-seq-cls"
    hub_server.seed_repo(upstream, repo_files(tiny_model("qwen3", tied=False, num_shards=2)))
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"query": f"what is {w}?", "document": f"{w} is a word.", "group": w}
            for w in ("paris", "rome", "oslo")]  # fmt: skip
    rows.append({"query": "long", "document": "word " * 9000, "group": "too-long"})
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp = tmp_path / "run-tmp"
    tmp.mkdir()
    result = run_cli("run", "--model", upstream, "--target", target, "--pairs", pairs,
                     "--check-memory", "1KB", env={**hub_env, "TMPDIR": str(tmp)})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "checked layer by layer" in result.stderr or "layerwise" in result.stderr
    report = json.loads(hub_server.read_file(target, "parity_report.json"))
    assert report["consumers_proven_on"].startswith("twin"), report["consumers_proven_on"]
    assert report["num_pairs"] == 3 and report["real_pass"]["of_pairs"] == 3
    assert any(
        n.startswith("long inputs: 1 given pair(s) exceed the family's scoring length")
        and "too-long" in n
        for n in report["notes"]
    ), report["notes"]
