"""The README's command blocks, run as a newcomer pastes them: every ``reranker-seqcls`` line of a
block, in the block's order, in one working directory, against the loopback Hub. Only ``me/`` is
mapped (to the loopback user); ``Qwen/Qwen3-Reranker-0.6B`` is seeded on the loopback Hub under
that very name (a tiny random model on the real Qwen vocabulary), and the local names a block
uses (``./local-reranker``, ``./my-reranker``, ``my-template.jinja``,
``./st-v6-logit-score-model``, ``rerankers.yml``) are made in the working directory first. Each
command must exit 0, and what its comment promises is asserted.

A README edit that breaks an order (two commands writing one OUTPUT, a check that leaves a file
unchecked before the push that needs it) fails here, not in a user's terminal."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import repo_files, run_cli
from tests.loopback_hub.fixtures import TEST_USER
from tests.test_families import ST_TEMPLATE, _set_st_files
from tests.test_gguf import CUSTOM_TEMPLATE, llama_env  # noqa: F401 - the fixture, shared

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = "Qwen/Qwen3-Reranker-0.6B"  # as the README writes it
LICENSED = b"---\nlicense: apache-2.0\n---\n# tiny stand-in for the real model\n"
FLEET_SOURCES = re.compile(r"^\s*- model: (\S+)$", re.MULTILINE)


def readme_blocks() -> list[list[list[str]]]:
    """Every ```bash block of README.md holding ``reranker-seqcls`` commands: its commands
    (continuation lines joined, comments dropped) as argument lists, ``me/`` mapped."""
    text = (ROOT / "README.md").read_text("utf-8")
    blocks = []
    for body in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        joined = re.sub(r"\\\n", " ", body)
        commands = [
            [word.replace("me/", f"{TEST_USER}/", 1) if word.startswith("me/") else word
             for word in shlex.split(line, comments=True)]
            for line in joined.splitlines()
            if line.startswith("reranker-seqcls ")
        ]  # fmt: skip
        if commands:
            blocks.append(commands)
    return blocks


def _block(*words: str) -> list[list[str]]:
    """The README block whose commands hold all of ``words``."""
    found = [b for b in readme_blocks() if all(any(w in c for c in b) for w in words)]
    assert len(found) == 1, f"README has {len(found)} bash blocks with {words}"
    return found[0]


def _run_block(block: list[list[str]], cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """Each command in order; exit 0 each. Returns each command's stderr by its first words."""
    said: dict[str, str] = {}
    for command in block:
        assert command[0] == "reranker-seqcls"
        result = run_cli(*command[1:], env=env, cwd=cwd)
        shown = shlex.join(command)
        assert result.returncode == 0, f"{shown}\n{result.stdout}\n{result.stderr}"
        said[shown] = result.stdout + result.stderr
    return said


@pytest.fixture
def upstream(hub_server, real_vocab_model) -> str:
    files = repo_files(real_vocab_model("qwen3"))
    files["README.md"] = LICENSED
    return hub_server.seed_repo(UPSTREAM, files)


def _local_sources(cwd: Path, tiny_model: Callable[..., Path], hub_server) -> None:
    """What the usage block names besides the Hub source, as a user would have it."""
    shutil.copytree(tiny_model("gemma"), cwd / "local-reranker")
    shutil.copytree(tiny_model("qwen3"), cwd / "my-reranker")
    (cwd / "my-template.jinja").write_text(CUSTOM_TEMPLATE, "utf-8")
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    st_dir = cwd / "st-v6-logit-score-model"
    CrossEncoder(str(tiny_model("qwen3", tied=False))).save_pretrained(str(st_dir))
    (st_dir / "chat_template.jinja").write_text(ST_TEMPLATE)
    yes, no = AutoTokenizer.from_pretrained(st_dir).convert_tokens_to_ids(["yes", "no"])
    _set_st_files(st_dir, yes, no, "torch.nn.modules.activation.Sigmoid")
    fleet = (ROOT / "rerankers.yml").read_text("utf-8")
    (cwd / "rerankers.yml").write_text(fleet, "utf-8")
    for model in FLEET_SOURCES.findall(fleet):  # the fleet's other sources: their heads only
        if model != UPSTREAM:
            hub_server.seed_repo(model, {"config.json": b"{}"})


def test_usage_block_runs_in_its_order(hub_server, hub_env, upstream, tiny_model, tmp_path):
    block = _block("presets", "push", "plan")
    cwd = tmp_path / "user"
    cwd.mkdir()
    _local_sources(cwd, tiny_model, hub_server)
    said = _run_block(block, cwd, hub_env)

    outputs = [Path(c[3]) for c in block if c[1] == "convert"]
    assert len(set(outputs)) == len(outputs), "two converts of the block write one OUTPUT"
    for output in outputs:
        assert (cwd / output / "config.json").is_file(), output
    assert "recipe: qwen3-reranker" in said[f"reranker-seqcls convert {UPSTREAM} ./qwen3-seqcls"]
    assert "sentence-transformers files" in said[next(k for k in said if "st-v6" in k)]
    # check: "verdict kept in ./qwen3-seqcls"; push: "only once check passed"
    verdict = json.loads((cwd / "qwen3-seqcls" / "parity_report.json").read_text())
    assert verdict["passed"] is True
    # a scoring length too long for the whole check's long pairs: the report says what measures
    # them (a check within --check-memory goes layer by layer, its twin takes them)
    assert verdict["long_inputs"]["measured"] is False
    assert "--full-check with a --check-memory" in verdict["long_inputs"]["why_not"]
    target = f"{TEST_USER}/Qwen3-Reranker-0.6B-seq-cls"
    card = hub_server.read_file(target, "README.md").decode()
    assert "**PASS**" in card and "license: apache-2.0" in card
    # run after push: the target already holds this source and recipe, nothing is pushed again
    assert "already current" in said[next(k for k in said if k.startswith("reranker-seqcls run"))]
    plan = said["reranker-seqcls plan rerankers.yml"]
    assert "error" not in plan, plan


@pytest.mark.llama
@pytest.mark.slow
def test_gguf_block_runs_in_its_order(
    hub_server,
    hub_env,
    upstream,
    llama_env,  # noqa: F811
    tmp_path,
):
    block = _block("--gguf-file", "push")
    cwd = tmp_path / "user"
    cwd.mkdir()
    env = {**hub_env, **llama_env}
    said = _run_block(block, cwd, env)

    written = sorted(p.name for p in (cwd / "qwen3-seqcls-GGUF").iterdir())
    assert written == ["Qwen3-Reranker-0.6B-f16.gguf", "Qwen3-Reranker-0.6B-q8_0.gguf"]
    check = said[next(k for k in said if k.startswith("reranker-seqcls check"))]
    assert re.search(r"^  llama\.cpp f16 ", check, re.MULTILINE), check
    assert re.search(r"^  llama\.cpp q8_0 ", check, re.MULTILINE), check
    gguf_target = f"{TEST_USER}/Qwen3-Reranker-0.6B-seq-cls-GGUF"
    assert set(hub_server.list_files(gguf_target)) >= {"README.md", *written}
    assert "already current" in said[next(k for k in said if k.startswith("reranker-seqcls run"))]
