"""GGUFs of converted Qwen3-architecture rerankers, scored by the real ``llama-server
--reranking`` through ``/v1/rerank`` (marker ``llama``; ``make test`` builds llama-server first).

Tiny random models on the real Qwen vocabulary (``tests/real_vocab.py``): Qwen3-Reranker,
zerank-2, ctxl-rerank-v2 (its Qwen3 members) and a custom recipe (own tokens, scale and
template). Each is converted with ``--gguf f16,q8_0`` and checked with both files: every pair's
llama-server score is compared here with the official score (sigmoid of the family's own logit,
``parity.reference_scores`` in the report), within the type's tolerance. Deliberately wrong
GGUFs (a one-row head; the tokens swapped) fail the check with their cause named; the families
whose architecture llama.cpp gives no head are refused before anything is written.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from reranker_seqcls.gguf.types import GGUF_TYPES
from tests.conftest import run_cli

pytestmark = [pytest.mark.llama, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
# Plain-string content (vLLM, llama.cpp's literal placeholders) and text items
# (sentence-transformers v6) both render.
CUSTOM_TEMPLATE = (
    "{%- macro text(m) -%}{%- if m.content is string -%}{{- m.content -}}{%- else -%}"
    "{%- for part in m.content -%}{{- part.text -}}{%- endfor -%}{%- endif -%}{%- endmacro -%}"
    "{%- set ns = namespace(q='', d='') -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'query' -%}{%- set ns.q = text(m) -%}"
    "{%- elif m.role == 'document' -%}{%- set ns.d = text(m) -%}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>user\\nQuery: ' ~ ns.q ~ '\\nPassage: ' ~ ns.d ~ "
    "'\\nRelevant?<|im_end|>\\n<|im_start|>assistant\\n' -}}"
)
CUSTOM_RECIPE = ["--tokens", '["no", "yes"]', "--method", "from_2_way_softmax", "--scale", "0.5"]
# family -> (directory name the preset is detected from, extra convert/check options)
FAMILIES: dict[str, tuple[str, list[str]]] = {
    "qwen3-reranker": ("Qwen3-Reranker-tiny", []),
    "zerank-2": ("zerank-2-tiny", []),
    "ctxl-rerank-v2": ("ctxl-rerank-v2-1b-tiny", []),
    "custom": ("custom-reranker-tiny", CUSTOM_RECIPE),
}


@pytest.fixture(scope="session")
def llama_env() -> dict[str, str]:
    path = Path(
        os.environ.get("RERANKER_SEQCLS_LLAMA_SERVER")
        or ROOT / ".cache/llama-build/bin/llama-server"
    )
    if not path.is_file():
        pytest.fail(f"{path} does not exist: run `make llama-server` (`make test` builds it)")
    return {"RERANKER_SEQCLS_LLAMA_SERVER": str(path)}


@pytest.fixture(scope="module")
def few_pairs(tmp_path_factory) -> Path:
    """The first eight built-in pairs (three queries, three scripts): enough for a test whose
    assertion is about a cause or a push, not a tolerance; each pair costs a scoring by the
    original, the converted model and every llama-server."""
    from reranker_seqcls.check.pairs import builtin_pairs

    path = tmp_path_factory.mktemp("few-pairs") / "pairs.jsonl"
    pairs = builtin_pairs(takes_instruction=True)[:8]
    assert len({p.group for p in pairs}) == 3 and all(p.instruction is None for p in pairs)
    lines = [json.dumps({"query": p.query, "document": p.document, "group": p.group})
             for p in pairs]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def _source(real_vocab_model, family: str) -> Path:
    name, _ = FAMILIES[family]
    preset = None if family == "custom" else family
    return real_vocab_model("qwen3", name=name, preset=preset)


def _recipe_args(family: str, tmp: Path) -> list[str]:
    args = list(FAMILIES[family][1])
    if family == "custom":
        template = tmp / "custom.jinja"
        template.write_text(CUSTOM_TEMPLATE, "utf-8")
        args += ["--template", str(template)]
    return args


@pytest.fixture(scope="module")
def checked(real_vocab_model, llama_env, tmp_path_factory):
    """family -> (report JSON, convert's stderr, the GGUF directory), converted and checked
    once per family."""
    cache: dict[str, tuple[dict, str, Path]] = {}

    def run(family: str) -> tuple[dict, str, Path]:
        if family in cache:
            return cache[family]
        tmp = tmp_path_factory.mktemp(f"gguf-{family}")
        source = _source(real_vocab_model, family)
        out = tmp / FAMILIES[family][0]
        args = _recipe_args(family, tmp)
        converted = run_cli("convert", source, out, *args, "--gguf", "f16,q8_0", env=llama_env)
        assert converted.returncode == 0, converted.stderr
        gguf_dir = tmp / f"{out.name}-GGUF"
        files = sorted(gguf_dir.glob("*.gguf"))
        assert [f.name for f in files] == [
            f"{out.name}-f16.gguf",
            f"{out.name}-q8_0.gguf",
        ]
        report_path = tmp / "report.json"
        gguf_args = [a for f in files for a in ("--gguf-file", f)]
        result = run_cli("check", source, out, *args, *gguf_args, "--report", report_path,
                         env=llama_env, timeout=900)  # fmt: skip
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert "llama.cpp f16" in result.stdout and "llama.cpp q8_0" in result.stdout
        cache[family] = (json.loads(report_path.read_text()), converted.stderr, gguf_dir)
        return cache[family]

    return run


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_llama_server_scores_like_the_original(checked, family):
    report, _, _ = checked(family)
    assert report["passed"] is True, report["reasons"]
    sent = [row for row in report["scores"] if row.get("llama")]
    assert len(sent) >= 8
    for name in ("f16", "q8_0"):
        tolerance = GGUF_TYPES[name].tolerance
        official = [1 / (1 + math.exp(-row["reference"][-1])) for row in sent]
        served = [row["llama"][name] for row in sent]
        worst = max(abs(a - b) for a, b in zip(official, served, strict=True))
        assert worst <= tolerance.max_abs_prob, (family, name, worst)
        assert max(served) - min(served) > 0.05  # the pairs really score differently
        metrics = report["metrics"][f"llama.cpp {name}"]
        assert metrics["max_abs_prob"] == pytest.approx(worst)
        assert metrics["top1"] >= tolerance.min_top1
    # f16 is closer to the original than q8_0
    f16, q8_0 = (report["metrics"][f"llama.cpp {t}"]["max_abs_prob"] for t in ("f16", "q8_0"))
    assert f16 < q8_0


def test_rerank_template_has_the_default_instruction(checked):
    from reranker_seqcls.gguf.reader import read_header  # agrees with gguf.GGUFReader:
    # tests/test_gguf_reader.py

    _, _, gguf_dir = checked("qwen3-reranker")
    header = read_header(next(gguf_dir.glob("*-f16.gguf")))
    template = header.fields["tokenizer.chat_template.rerank"]
    assert "<Instruct>: Given a web search query, retrieve relevant passages" in template
    assert template.count("{query}") == 1 and template.count("{document}") == 1
    assert header.fields["qwen3.pooling_type"] == 4  # rank
    assert header.fields["tokenizer.ggml.tokens"] > 150_000  # the real Qwen vocabulary
    head = header.tensors["cls.output.weight"]  # llama.cpp's cls_out
    assert head.shape == (64, 2)  # two rows: softmax([s, 0]) = sigmoid(s)
    rows = header.tensor("cls.output.weight")
    assert rows.shape == (2, 64) and not rows[1].any() and rows[0].any()


def test_wrong_heads_fail_with_their_cause(real_vocab_model, llama_env, few_pairs, tmp_path):
    """A one-row head (every pair scores 1.0) and a negated head (the tokens swapped: 1 - p)
    are what community GGUFs get wrong; the check names both."""
    import numpy as np

    from reranker_seqcls.gguf.writer import write_gguf
    from reranker_seqcls.recipes.presets import PRESETS

    source = _source(real_vocab_model, "qwen3-reranker")
    converted = tmp_path / "Qwen3-Reranker-tiny"
    assert run_cli("convert", source, converted).returncode == 0
    recipe = PRESETS["qwen3-reranker"]

    def negated(rows):
        return np.stack([-rows[0], rows[1]])

    one_row = write_gguf(converted, tmp_path / "one-row.gguf", GGUF_TYPES["f16"], recipe,
                         name="x", head_rows=lambda rows: rows[:1])  # fmt: skip
    swapped = write_gguf(converted, tmp_path / "swapped.gguf", GGUF_TYPES["q8_0"], recipe,
                         name="x", head_rows=negated)  # fmt: skip
    report_path = tmp_path / "report.json"
    result = run_cli("check", source, converted, "--gguf-file", one_row.path,
                     "--gguf-file", swapped.path, "--pairs", few_pairs, "--report", report_path,
                     env=llama_env, timeout=900)  # fmt: skip
    assert result.returncode == 1, (result.stdout, result.stderr)
    reasons = json.loads(report_path.read_text())["reasons"]
    assert len(reasons) == 2, reasons
    assert "llama.cpp f16" in reasons[0] and "one row" in reasons[0] and "1.0" in reasons[0]
    assert "llama.cpp q8_0" in reasons[1] and "tokens are swapped" in reasons[1]
    assert "one row" in result.stderr and result.stderr.count("error:") == 1


def test_unreadable_gguf_files_are_refused_before_scoring(checked, real_vocab_model, tmp_path):
    """A truncated GGUF (cut inside its vocabulary) and one that is no GGUF: exit 2, one line,
    before any model is loaded (no llama-server is needed to refuse them)."""
    _, _, gguf_dir = checked("qwen3-reranker")
    converted = gguf_dir.with_name(gguf_dir.name.removesuffix("-GGUF"))
    verdict = (converted / "parity_report.json").read_bytes()
    whole = next(gguf_dir.glob("*-f16.gguf")).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 20])  # the header, the vocabulary half read
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    source = _source(real_vocab_model, "qwen3-reranker")
    for bad, words in ((cut, "truncated"), (junk, "not a readable GGUF")):
        result = run_cli("check", source, converted, "--gguf-file", bad)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and bad.name in lines[0] and words in lines[0], lines
    assert (converted / "parity_report.json").read_bytes() == verdict  # nothing touched


@pytest.mark.parametrize(
    ("name", "family", "model_type"),
    [
        ("mxbai-rerank-base-v2-tiny", "qwen2", "qwen2"),
        ("bge-reranker-v2-gemma-tiny", "gemma", "gemma"),
    ],
)
def test_families_without_a_llama_head_are_refused(
    real_vocab_model, tiny_model, tmp_path, name, family, model_type
):
    source = (
        real_vocab_model("qwen2", name=name, preset="mxbai-rerank-v2")
        if family == "qwen2"
        else tiny_model("gemma", name=name)
    )
    out = tmp_path / "out"
    result = run_cli("convert", source, out, "--gguf", "f16")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is a {model_type} model" in lines[0], result.stderr
    assert "cls_out" in lines[0] and "drop --gguf" in lines[0]
    assert not out.exists() and not (tmp_path / "out-GGUF").exists()


def test_custom_recipe_on_a_qwen2_model_is_refused_by_its_architecture(real_vocab_model, tmp_path):
    source = real_vocab_model("qwen2", name="my-qwen2-reranker")
    out = tmp_path / "out"
    result = run_cli("convert", source, out, *CUSTOM_RECIPE, "--gguf", "q8_0")
    assert result.returncode == 2
    assert "is a qwen2 model" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_gguf_type_is_refused_before_download(tmp_path):
    result = run_cli("convert", "acme/does-not-matter", tmp_path / "o", "--gguf", "q4_k")
    assert result.returncode == 2
    assert "unknown type 'q4_k'" in result.stderr


def test_run_pushes_the_ggufs_to_a_second_target_in_one_commit(
    hub_server, hub_env, real_vocab_model, llama_env, few_pairs, tmp_path
):
    from tests.conftest import repo_files
    from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER

    upstream = "qwen-team/Qwen3-Reranker-tiny"
    target = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"
    hub_server.seed_repo(upstream, repo_files(_source(real_vocab_model, "qwen3-reranker")))
    result_path = tmp_path / "result.json"

    def run(*extra: str) -> dict:
        result = run_cli("run", "--model", upstream, "--target", target, "--pairs", few_pairs,
                         "--result-json", result_path, *extra, env={**hub_env, **llama_env},
                         timeout=900)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return json.loads(result_path.read_text())

    # the seq-cls target first, without GGUFs: a later --gguf run finds it current and must
    # still write, check and push the GGUFs (it used to skip them), not the seq-cls again
    assert run()["status"] == "pushed"
    seqcls_head = hub_server.head_sha(target)
    data = run("--gguf", "q8_0")
    assert data["status"] == "pushed" and data["commit_sha"] == seqcls_head
    assert hub_server.head_sha(target) == seqcls_head
    gguf_target = target + "-GGUF"
    assert data["gguf_target_repo"] == gguf_target
    assert data["gguf_commit_sha"] == hub_server.head_sha(gguf_target)
    ours = [c for c in hub_server.list_commits(gguf_target) if c.title != "initial commit"]
    assert len(ours) == 1 and "(GGUF: q8_0)" in ours[0].title, ours  # one commit
    files = set(hub_server.list_files(gguf_target))
    assert {"README.md", "Qwen3-Reranker-tiny-q8_0.gguf"} <= files, files
    card = hub_server.read_file(gguf_target, "README.md").decode()
    assert "llama-server -m Qwen3-Reranker-tiny-q8_0.gguf --reranking" in card
    assert "/v1/rerank" in card and "sigmoid" in card
    assert "| `Qwen3-Reranker-tiny-q8_0.gguf` | q8_0 |" in card and "| PASS |" in card
    assert TEST_TOKEN not in card
    assert "reranker_seqcls.json" in files  # what tells a later run the GGUFs are current
    assert not any(name.endswith(".gguf") for name in hub_server.list_files(target))
    # both targets current now: the run stops before anything is fetched
    again = run("--gguf", "q8_0")
    assert again["status"] == "skipped"
    assert hub_server.head_sha(gguf_target) == data["gguf_commit_sha"]
    assert hub_server.head_sha(target) == seqcls_head


def _linked_copy(directory: Path, into: Path) -> Path:
    """``directory`` hard-linked into ``into`` (a test replaces files, never writes into one)."""
    import shutil

    return Path(shutil.copytree(directory, into / directory.name, copy_function=os.link))


def test_push_publishes_only_ggufs_that_llama_server_passed(checked, hub_server, hub_env,
                                                            tmp_path):  # fmt: skip
    """push CONVERTED TARGET takes CONVERTED-GGUF along: refused (exit 2, one line, nothing
    pushed) for a GGUF whose bytes changed since the check or that the check never scored;
    else the seq-cls checkpoint, then the GGUFs with their card in one commit."""
    from tests.loopback_hub.fixtures import TEST_USER

    _, _, gguf_dir = checked("qwen3-reranker")  # checked with --gguf-file: the verdict binds
    source_converted = gguf_dir.with_name(gguf_dir.name.removesuffix("-GGUF"))
    converted = _linked_copy(source_converted, tmp_path)
    ggufs = _linked_copy(gguf_dir, tmp_path)
    target = f"{TEST_USER}/pushed-seq-cls"
    q8 = ggufs / f"{converted.name}-q8_0.gguf"
    original = q8.read_bytes()

    def refused(words: str) -> None:
        result = run_cli("push", converted, target, env=hub_env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "nothing was pushed" in lines[0], lines
        assert not hub_server.repo_exists(target)
        assert not hub_server.repo_exists(target + "-GGUF")

    changed = tmp_path / "changed.gguf"
    changed.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    changed.replace(q8)  # a new file: the fixture's GGUF is untouched
    refused(f"{q8.name} changed since llama-server scored it")
    q8.unlink()
    os.link(gguf_dir / q8.name, q8)
    extra = ggufs / "unscored.gguf"
    os.link(q8, extra)
    refused("unscored.gguf has no llama.cpp row")
    extra.unlink()

    result = run_cli("push", converted, target, env=hub_env)
    assert result.returncode == 0, result.stderr
    gguf_target = target + "-GGUF"
    assert "config.json" in hub_server.list_files(target)
    assert not any(n.endswith(".gguf") for n in hub_server.list_files(target))
    assert set(hub_server.list_files(gguf_target)) >= {"README.md", q8.name,
                                                       f"{converted.name}-f16.gguf"}  # fmt: skip
    ours = [c for c in hub_server.list_commits(gguf_target) if c.title != "initial commit"]
    assert len(ours) == 1 and "(GGUF: f16, q8_0)" in ours[0].title, ours
    card = hub_server.read_file(gguf_target, "README.md").decode()
    assert f"| `{q8.name}` | q8_0 |" in card and card.count("| PASS |") == 2
    assert "scored 24 (query, document) pairs" in card
    assert hub_server.read_file(gguf_target, q8.name) == original
