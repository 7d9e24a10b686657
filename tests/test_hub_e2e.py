"""End to end against the loopback Hub: the real CLI in a subprocess, the real client inside it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import NEWLINE_PAD_PAIRS, repo_files, run_cli, with_newline_pad_token
from tests.loopback_hub.fixtures import BAD_TOKEN, TEST_TOKEN, TEST_USER, make_hub_env, run_python

UPSTREAM = "qwen-team/Qwen3-Reranker-tiny"
TARGET = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"


def _upstream_files(tiny_model) -> dict[str, bytes]:
    files = repo_files(tiny_model("qwen3", tied=False, num_shards=2))
    files["README.md"] = b"---\nlicense: apache-2.0\n---\n# tiny upstream reranker\n"
    return files


@pytest.fixture
def upstream(hub_server, tiny_model) -> str:
    return hub_server.seed_repo(UPSTREAM, _upstream_files(tiny_model))


def _run(hub_env, tmp_path: Path, *args: str, name: str = "result.json"):
    result_path = tmp_path / name
    result = run_cli("run", *args, "--result-json", result_path, env=hub_env)
    data = json.loads(result_path.read_text()) if result_path.exists() else None
    for text in (result.stdout, result.stderr, json.dumps(data)):
        assert TEST_TOKEN not in text
    return result, data


def test_run_converts_checks_and_pushes(hub_server, hub_env, upstream, tmp_path):
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 0, result.stderr
    assert data["status"] == "pushed" and data["skipped"] is False
    assert data["source_sha"] == upstream
    assert data["commit_sha"] == hub_server.head_sha(TARGET)
    assert data["parity"]["passed"] and data["parity"]["max_abs_diff"] < 1e-3
    assert data["target_url"].endswith(TARGET)

    files = set(hub_server.list_files(TARGET))
    for name in ("config.json", "score.safetensors", "model.safetensors.index.json",
                 "chat_template.jinja", "README.md", "reranker_seqcls.json",
                 "parity_report.json", "tokenizer.json", "LICENSE"):  # fmt: skip
        assert name in files, name
    assert "generation_config.json" not in files
    commit = hub_server.list_commits(TARGET)[0]
    assert upstream[:12] in commit.title

    provenance = json.loads(hub_server.read_file(TARGET, "reranker_seqcls.json"))
    assert provenance["source"]["repo_id"] == UPSTREAM
    assert provenance["source"]["commit_sha"] == upstream

    from huggingface_hub import ModelCard

    card = ModelCard(hub_server.read_file(TARGET, "README.md").decode())
    assert card.data.base_model == UPSTREAM
    assert card.data.pipeline_tag == "text-ranking"
    assert card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0"
    assert {"reranker", "sequence-classification", "text-ranking"} <= set(card.data.tags)
    assert upstream in card.text and "| converted (batched) |" in card.text
    assert "vllm serve" in card.text and "CrossEncoder" in card.text
    for name in files:  # the token is in no pushed file
        assert TEST_TOKEN.encode() not in hub_server.read_file(TARGET, name), name

    # The target loads and scores through the Hub with transformers and sentence-transformers.
    report = json.loads(hub_server.read_file(TARGET, "parity_report.json"))
    first = report["scores"][0]
    code = f"""
import json, math, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from sentence_transformers import CrossEncoder
model = AutoModelForSequenceClassification.from_pretrained({TARGET!r}).eval()
tokenizer = AutoTokenizer.from_pretrained({TARGET!r})
ce = CrossEncoder({TARGET!r})
score = float(ce.predict([({first["query"]!r}, {first["document"]!r})])[0])
print(json.dumps({{"ce": score, "labels": model.config.num_labels}}))
"""
    out = run_python(code, hub_env, timeout=300)
    assert out.returncode == 0, out.stderr
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    assert scored["labels"] == 1
    assert abs(scored["ce"] - 1 / (1 + math.exp(-first["reference"][0]))) < 1e-4


def test_card_snippet_for_transformers_runs(hub_server, hub_env, upstream, tmp_path):
    """The model card's transformers snippet, executed as written, gives the served score."""
    assert _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)[0].returncode == 0
    card = hub_server.read_file(TARGET, "README.md").decode()
    snippet = card.split("### transformers")[1].split("```python")[1].split("```")[0]
    out = run_python(snippet, hub_env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "tensor([" in out.stdout


def test_second_run_is_a_noop_and_new_upstream_commit_reconverts(
    hub_server, hub_env, upstream, tmp_path
):
    assert _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)[0].returncode == 0
    head = hub_server.head_sha(TARGET)
    hub_server.clear_requests()

    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 0, result.stderr
    assert data["status"] == "skipped" and data["skipped"] is True
    assert "already current" in result.stdout
    assert hub_server.head_sha(TARGET) == head
    assert hub_server.downloaded_files(UPSTREAM) == {}  # nothing downloaded
    assert hub_server.request_count(method="POST") == 0  # nothing pushed

    new_sha = hub_server.commit_files(UPSTREAM, {"NOTICE": b"new upstream notice\n"},
                                      message="upstream update")  # fmt: skip
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 0, result.stderr
    assert data["status"] == "pushed" and data["source_sha"] == new_sha
    assert hub_server.head_sha(TARGET) != head
    assert new_sha[:12] in hub_server.list_commits(TARGET)[0].title
    assert hub_server.read_file(TARGET, "NOTICE") == b"new upstream notice\n"

    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET, "--force")
    assert result.returncode == 0 and data["status"] == "pushed"


def test_parity_failure_pushes_nothing(hub_server, hub_env, tiny_model, tmp_path):
    # The source's pad token is "\n" ("Ċ"), the last token of every mxbai prompt: the converted
    # classifier pools an earlier token, so its scores are not the original's.
    upstream = "mixedbread-ai/mxbai-rerank-tiny-v2"
    hub_server.seed_repo(
        upstream, with_newline_pad_token(repo_files(tiny_model("qwen2", tied=False)))
    )
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(NEWLINE_PAD_PAIRS)
    target = f"{TEST_USER}/never-pushed"
    result, data = _run(hub_env, tmp_path, "--model", upstream, "--target", target,
                        "--pairs", str(pairs))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert data["status"] == "failed" and data["parity"]["passed"] is False
    assert "nothing was pushed" in result.stderr
    assert "pad_token_id" in result.stderr
    assert not hub_server.repo_exists(target)


def test_dry_run_and_create_pr(hub_server, hub_env, upstream, tmp_path):
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert data["status"] == "dry_run" and "would commit" in result.stderr + result.stdout
    assert not hub_server.repo_exists(TARGET)

    assert _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)[0].returncode == 0
    head = hub_server.head_sha(TARGET)
    hub_server.commit_files(UPSTREAM, {"NOTICE": b"changed\n"}, message="upstream update")
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET, "--create-pr")
    assert result.returncode == 0, result.stderr
    assert data["pr_url"] and "/discussions/" in data["pr_url"]
    assert hub_server.head_sha(TARGET) == head  # main untouched
    assert hub_server.pull_requests(TARGET)


def test_stale_files_in_target_are_deleted(hub_server, hub_env, upstream, tmp_path):
    hub_server.seed_repo(TARGET, {"model-00009-of-00009.safetensors": b"stale", "notes.txt": b"x"})
    before = len(hub_server.list_commits(TARGET))
    result, _ = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 0, result.stderr
    files = hub_server.list_files(TARGET)
    assert "model-00009-of-00009.safetensors" not in files and "notes.txt" not in files
    assert "score.safetensors" in files
    assert len(hub_server.list_commits(TARGET)) == before + 1  # one commit added and deleted


def test_only_safetensors_are_downloaded(hub_server, hub_env, tiny_model, tmp_path):
    files = _upstream_files(tiny_model)
    files["pytorch_model.bin"] = b"\0" * 4096
    files["onnx/model.onnx"] = b"\0" * 1024
    files["model.gguf"] = b"\0" * 1024
    hub_server.seed_repo(UPSTREAM, files)
    result, _ = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 0, result.stderr
    downloaded = hub_server.downloaded_files(UPSTREAM)
    assert any(p.endswith(".safetensors") for p in downloaded)
    assert not any(p.endswith((".bin", ".onnx", ".gguf")) for p in downloaded), downloaded


def test_fault_mid_upload_leaves_target_unchanged(hub_server, hub_env, upstream, tmp_path):
    hub_server.seed_repo(TARGET, {"README.md": b"# placeholder\n"})
    head = hub_server.head_sha(TARGET)
    hub_server.drop_nth(1, path_contains="/commit/", method="POST", during="request")
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert data["status"] == "failed"
    assert hub_server.head_sha(TARGET) == head


def test_transient_faults_are_retried(hub_server, hub_env, upstream, tmp_path):
    faults = [
        hub_server.fail_nth(1, 500, path_contains="/preupload/"),  # retried by the client
        hub_server.fail_nth(1, 502, path_contains=f"/api/models/{UPSTREAM}", method="GET"),  # us
        hub_server.drop_nth(1, path_contains=f"/api/models/{TARGET}", method="GET"),  # by us
    ]
    result, data = _run(hub_env, tmp_path, "--model", UPSTREAM, "--target", TARGET)
    assert all(f.triggered for f in faults)
    assert result.returncode == 0, result.stderr
    assert data["commit_sha"] == hub_server.head_sha(TARGET)


def test_concurrent_commit_makes_push_fail_cleanly(hub_server, hub_env, upstream, tmp_path):
    hub_server.seed_repo(TARGET, {"README.md": b"# placeholder\n"})
    result_path = tmp_path / "result.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reranker_seqcls", "run", "--model", UPSTREAM, "--target", TARGET,
         "--result-json", str(result_path)],
        env=hub_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not hub_server.downloaded_files(UPSTREAM) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hub_server.downloaded_files(UPSTREAM), "the run never started downloading"
    concurrent = hub_server.commit_files(TARGET, {"other.txt": b"someone else"}, message="other")
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    assert "changed since this run started" in stderr
    assert hub_server.head_sha(TARGET) == concurrent
    assert "score.safetensors" not in hub_server.list_files(TARGET)


def test_push_command(hub_server, hub_env, tiny_model, tmp_path):
    out = tmp_path / "converted"
    convert = run_cli("convert", tiny_model("qwen3"), out, "--preset", "qwen3-reranker")
    assert convert.returncode == 0
    target = f"{TEST_USER}/pushed"
    result = run_cli("push", out, target, "--private", "--allow-unchecked", env=hub_env)
    assert result.returncode == 0, result.stderr
    assert hub_server.is_private(target)
    assert "score.safetensors" in hub_server.list_files(target)
    assert "README.md" in hub_server.list_files(target)

    report = tmp_path / "failed"
    convert = run_cli("convert", tiny_model("qwen3"), report, "--preset", "qwen3-reranker")
    assert convert.returncode == 0
    (report / "parity_report.json").write_text(json.dumps({"passed": False, "reasons": ["bad"]}))
    result = run_cli("push", report, f"{TEST_USER}/refused", env=hub_env)
    assert result.returncode == 2 and "failed its parity check" in result.stderr
    assert not hub_server.repo_exists(f"{TEST_USER}/refused")


@pytest.mark.parametrize(
    ("case", "code", "fragment"),
    [
        ("missing repo", 2, "repository not found"),
        ("missing revision", 2, "revision not found"),
        ("bad token", 2, "refused the token"),
        ("gated", 2, "gated"),
        ("private without access", 2, "repository not found"),
        ("hub down", 3, "network error"),
        ("bad target", 2, "not a Hub repo id"),
    ],
)
def test_hub_errors(hub_server, hub_env, upstream, tmp_path, case, code, fragment):
    env = dict(hub_env)
    model, target, extra = UPSTREAM, TARGET, []
    if case == "missing repo":
        model = "nobody/Qwen3-Reranker-missing"
    elif case == "missing revision":
        extra = ["--revision", "no-such-branch"]
    elif case == "bad token":
        env["HF_TOKEN"] = BAD_TOKEN
    elif case == "gated":
        hub_server.seed_repo("gated-org/Qwen3-Reranker-gated", {"config.json": b"{}"}, gated=True)
        model = "gated-org/Qwen3-Reranker-gated"
        env = make_hub_env(hub_server.url, tmp_path / "anon-home", token=None)
    elif case == "private without access":
        hub_server.seed_repo("someone/Qwen3-Reranker-private", {"config.json": b"{}"}, private=True)
        model = "someone/Qwen3-Reranker-private"
    elif case == "hub down":
        env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    elif case == "bad target":
        target = "not a repo"
    result, data = _run(env, tmp_path, "--model", model, "--target", target, *extra)
    assert result.returncode == code, (result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and fragment in last, last
    assert "Traceback" not in result.stderr
    assert BAD_TOKEN not in result.stderr + result.stdout
    assert data["status"] == "failed"
    assert not hub_server.repo_exists(TARGET) or case == "bad target"


def test_push_replaces_the_convert_readme_with_the_model_card(
    hub_server, hub_env, tiny_model, tmp_path
):
    """``convert`` writes a short README (how to serve the directory); ``push`` replaces it with
    the model card, carrying the parity table of a report ``check`` wrote into the directory."""
    source = tiny_model("qwen3")
    out = tmp_path / "converted"
    assert run_cli("convert", source, out, "--preset", "qwen3-reranker").returncode == 0
    readme = (out / "README.md").read_text()
    assert readme.startswith("<!-- reranker-seqcls: convert README")
    assert f"vllm serve {out} --runner pooling --chat-template {out}/chat_template.jinja" in readme
    checked = run_cli("check", source, out, "--report", out / "parity_report.json")
    assert checked.returncode == 0, checked.stderr
    target = f"{TEST_USER}/carded"
    result = run_cli("push", out, target, env=hub_env)
    assert result.returncode == 0, result.stderr
    card = hub_server.read_file(target, "README.md").decode()
    assert "convert README" not in card and "pipeline_tag: text-ranking" in card
    assert "| converted (batched) |" in card
    assert f"hf download {target} chat_template.jinja --local-dir ." in card
