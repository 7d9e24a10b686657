"""The real image, built and run as the GitHub Actions runner runs a Docker container action.

A module fixture starts a Docker engine (``scripts/docker-engine.sh start``), builds the image
with ``scripts/docker-build.sh`` (local Debian base, local torch wheel) and stops the engine at
the end if it started it. The container reaches the loopback Hub through ``--network=host``.

The runner's ``docker run`` is reproduced: every input of action.yml as ``INPUT_*`` (defaults
included), passed by name with ``-e NAME`` so no value is on the command line; ``GITHUB_OUTPUT``
and ``GITHUB_STEP_SUMMARY`` files in a mounted ``/github/file_commands``; the workspace mounted
at ``/github/workspace`` as the working directory; ``HOME=/github/home``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from tests.loopback_hub.fixtures import TEST_TOKEN, TEST_USER
from tests.loopback_hub.server import LoopbackHubServer
from tests.test_entrypoint import parse_github_output

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "scripts" / "docker-engine.sh"
BUILD = ROOT / "scripts" / "docker-build.sh"
IMAGE = os.environ.get("RERANKER_SEQCLS_TEST_IMAGE", "reranker-seqcls:test")
SOURCE_REPO = "acme/Qwen3-Reranker-tiny"
PRESET = "qwen3-reranker"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=60, check=False)
    return probe.returncode == 0


def _run_script(*cmd: str | Path, timeout: int) -> None:
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{tail}")


@pytest.fixture(scope="module")
def docker_image() -> Iterator[str]:
    """The image, built here; the Docker engine runs for the module and is stopped after it."""
    already_running = _docker_answers()
    if not already_running and os.geteuid() != 0:
        pytest.skip("starting dockerd needs root (or a running Docker engine)")
    if not already_running:
        _run_script(ENGINE, "start", timeout=900)  # installs docker.io if missing
    try:
        _run_script(BUILD, IMAGE, timeout=2400)  # makes the Debian base image if missing
        yield IMAGE
    finally:
        if not already_running:
            subprocess.run([str(ENGINE), "stop"], timeout=180, check=False)


@pytest.fixture
def source_sha(hub_server: LoopbackHubServer, tmp_path: Path) -> str:
    """A tiny Qwen3 reranker seeded as the upstream repo; returns its commit."""
    from testkit.tiny import build_model

    model_dir = build_model("qwen3", tmp_path / "upstream", tied=True, dtype="float32")
    files = {p.name: p for p in sorted(model_dir.iterdir()) if p.is_file()}
    return hub_server.seed_repo(SOURCE_REPO, files)


def action_env(**given: str) -> dict[str, str]:
    """``INPUT_*`` for every input of action.yml, defaults included, as the runner sets them."""
    spec = yaml.safe_load((ROOT / "action.yml").read_text("utf-8"))
    assert set(given) <= set(spec["inputs"]), set(given) - set(spec["inputs"])
    values = {name: str(meta.get("default", "")) for name, meta in spec["inputs"].items()}
    values.update(given)
    return {f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in values.items()}


class RunnerDirs:
    """The host directories the runner mounts into a container action."""

    def __init__(self, root: Path) -> None:
        self.workspace = root / "workspace"
        self.home = root / "home"
        self.file_commands = root / "file_commands"
        for directory in (self.workspace, self.home, self.file_commands):
            directory.mkdir(parents=True, exist_ok=True)
        self.output = self.file_commands / "set_output"
        self.summary = self.file_commands / "step_summary"
        self.output.write_text("", encoding="utf-8")
        self.summary.write_text("", encoding="utf-8")

    def outputs(self) -> dict[str, str]:
        return parse_github_output(self.output.read_text("utf-8"))


def docker_run_as_runner(
    image: str, dirs: RunnerDirs, inputs: Mapping[str, str], step_env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``docker run`` the way the Actions runner starts a container action."""
    env = {
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "GITHUB_WORKSPACE": "/github/workspace",
        "GITHUB_OUTPUT": "/github/file_commands/set_output",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
        **step_env,
        **inputs,
    }
    cmd = ["docker", "run", "--rm", "--network=host", "--workdir", "/github/workspace"]
    cmd += ["-e", "HOME=/github/home"]
    for name in env:
        cmd += ["-e", name]  # by name: values come from this process's environment
    cmd += [
        "-v", f"{dirs.workspace}:/github/workspace",
        "-v", f"{dirs.home}:/github/home",
        "-v", f"{dirs.file_commands}:/github/file_commands",
        image,
    ]  # fmt: skip
    assert TEST_TOKEN not in " ".join(cmd)
    return subprocess.run(
        cmd,
        env={**docker_client_env(), **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def docker_client_env() -> dict[str, str]:
    """What the docker client itself needs from this process's environment."""
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT")
    return {k: v for k, v in os.environ.items() if k in keep}


def step_env(hub_server: LoopbackHubServer) -> dict[str, str]:
    """What a workflow step would set with ``env:`` to use the loopback Hub."""
    return {"HF_ENDPOINT": hub_server.url, "HF_HUB_DISABLE_XET": "1"}


def assert_token_hidden(proc: subprocess.CompletedProcess[str]) -> None:
    """The token appears only in ``::add-mask::`` lines, which the runner consumes."""
    lines = (proc.stdout + proc.stderr).splitlines()
    leaked = [line for line in lines if TEST_TOKEN in line and line != f"::add-mask::{TEST_TOKEN}"]
    assert not leaked, leaked


def test_help(docker_image: str) -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network=none", docker_image, "--help"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage: reranker-seqcls" in proc.stdout
    assert " run " in proc.stdout or "\n  run" in proc.stdout


def test_action_converts_pushes_then_skips(
    docker_image: str, hub_server: LoopbackHubServer, source_sha: str, tmp_path: Path
) -> None:
    target = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"
    inputs = action_env(model=SOURCE_REPO, target_repo=target, preset=PRESET, hf_token=TEST_TOKEN)
    dirs = RunnerDirs(tmp_path / "runner")

    first = docker_run_as_runner(docker_image, dirs, inputs, step_env(hub_server))
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[0] == f"::add-mask::{TEST_TOKEN}"
    assert_token_hidden(first)
    assert "::group::Convert" in first.stdout

    outputs = dirs.outputs()
    head = hub_server.head_sha(target)
    assert outputs["status"] == "pushed"
    assert outputs["skipped"] == "false"
    assert outputs["commit_sha"] == head
    assert outputs["source_sha"] == source_sha
    assert outputs["target_url"].rstrip("/").endswith(target)
    assert outputs["parity_passed"] == "true"
    assert float(outputs["parity_max_abs_diff"]) < 1e-3
    assert float(outputs["parity_spearman"]) > 0.99
    assert outputs["parity_table"].count("\n") >= 2

    summary = dirs.summary.read_text("utf-8")
    assert summary.startswith("## reranker-seqcls: pushed")
    assert f"]({outputs['target_url']})" in summary
    assert f"/commit/{head}" in summary
    assert outputs["parity_table"].splitlines()[0] in summary
    assert TEST_TOKEN not in summary
    assert TEST_TOKEN not in dirs.output.read_text("utf-8")

    pushed = hub_server.list_files(target)
    assert "config.json" in pushed
    assert any(re.fullmatch(r"model(-\d+-of-\d+)?\.safetensors", f) for f in pushed), pushed
    assert "README.md" in pushed

    # Upstream unchanged: the second run pushes nothing and says so.
    dirs_again = RunnerDirs(tmp_path / "runner-again")
    second = docker_run_as_runner(docker_image, dirs_again, inputs, step_env(hub_server))
    assert second.returncode == 0, second.stdout + second.stderr
    assert_token_hidden(second)
    again = dirs_again.outputs()
    assert again["skipped"] == "true"
    assert again["status"] == "skipped"
    assert again["source_sha"] == source_sha
    assert hub_server.head_sha(target) == head
    assert "::notice" in second.stdout
    assert "skipped" in dirs_again.summary.read_text("utf-8")


def test_action_failure_is_annotated(
    docker_image: str, hub_server: LoopbackHubServer, tmp_path: Path
) -> None:
    dirs = RunnerDirs(tmp_path / "runner")
    inputs = action_env(
        model="acme/does-not-exist",
        target_repo=f"{TEST_USER}/nothing",
        preset=PRESET,
        hf_token=TEST_TOKEN,
    )
    proc = docker_run_as_runner(docker_image, dirs, inputs, step_env(hub_server))
    assert proc.returncode in (2, 3), proc.stdout + proc.stderr
    assert_token_hidden(proc)
    assert re.search(r"^::error title=reranker-seqcls%3A .*\(exit [23]\)::.+", proc.stdout, re.M)
    assert dirs.outputs()["status"] == "failed"
    assert not hub_server.repo_exists(f"{TEST_USER}/nothing")


def test_docker_run_one_shot(
    docker_image: str, hub_server: LoopbackHubServer, source_sha: str
) -> None:
    target = f"{TEST_USER}/one-shot-seq-cls"
    env = {**docker_client_env(), "HF_TOKEN": TEST_TOKEN, **step_env(hub_server)}
    cmd = ["docker", "run", "--rm", "--network=host"]
    for name in ("HF_TOKEN", "HF_ENDPOINT", "HF_HUB_DISABLE_XET"):
        cmd += ["-e", name]
    cmd += [docker_image, "run", "--model", SOURCE_REPO, "--target", target, "--preset", PRESET]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert TEST_TOKEN not in proc.stdout + proc.stderr
    assert not re.search(r"^::", proc.stdout, re.M)  # no workflow commands outside Actions
    assert hub_server.repo_exists(target)
    pushed = hub_server.list_files(target)
    assert "config.json" in pushed
    assert any(f.endswith(".safetensors") for f in pushed), pushed


def test_image_ships_no_test_fixtures(docker_image: str) -> None:
    """The image holds the package and nothing of testkit/ (tiny models, the demo)."""
    script = (
        "import importlib.util, pathlib, reranker_seqcls as p\n"
        "for name in ('testkit', 'reranker_seqcls.tiny', 'reranker_seqcls.demo'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "root = pathlib.Path(p.__file__).parent\n"
        "names = sorted(f.name for f in root.rglob('*.py'))\n"
        "assert 'pipeline.py' in names, names\n"
        "assert 'tiny.py' not in names and 'demo.py' not in names, names\n"
        "print('ok', len(names))\n"
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network=none", "--entrypoint", "python", docker_image,
         "-c", script],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok ")


def test_action_gguf_input_scores_with_the_images_llama_server(
    docker_image: str, hub_server: LoopbackHubServer, real_vocab_model, tmp_path: Path
) -> None:
    """The ``gguf`` input: the image's own llama-server (built in the Dockerfile's llama stage)
    scores the q8_0 GGUF in the check, and the GGUF goes to the second target."""
    import json

    from reranker_seqcls.check.pairs import builtin_pairs
    from tests.conftest import repo_files

    upstream = "qwen-team/Qwen3-Reranker-tiny"
    source = real_vocab_model("qwen3", name="Qwen3-Reranker-tiny", preset=PRESET)
    hub_server.seed_repo(upstream, repo_files(source))
    dirs = RunnerDirs(tmp_path / "runner")
    pairs = builtin_pairs(takes_instruction=True)[:8]  # three queries: the cost is per pair
    (dirs.workspace / "pairs.jsonl").write_text(
        "".join(json.dumps({"query": p.query, "document": p.document, "group": p.group}) + "\n"
                for p in pairs), "utf-8",
    )  # fmt: skip
    target = f"{TEST_USER}/Qwen3-Reranker-tiny-seq-cls"
    inputs = action_env(model=upstream, target_repo=target, hf_token=TEST_TOKEN, gguf="q8_0",
                        pairs="pairs.jsonl")  # fmt: skip
    proc = docker_run_as_runner(docker_image, dirs, inputs, step_env(hub_server))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert_token_hidden(proc)
    outputs = dirs.outputs()
    gguf_target = target + "-GGUF"
    assert outputs["status"] == "pushed" and outputs["gguf_target_repo"] == gguf_target
    assert outputs["gguf_commit_sha"] == hub_server.head_sha(gguf_target)
    assert "llama.cpp q8_0" in outputs["parity_table"]
    assert "Qwen3-Reranker-tiny-q8_0.gguf" in hub_server.list_files(gguf_target)
    assert "GGUF target" in dirs.summary.read_text("utf-8")


def test_build_refuses_a_llama_server_with_avx512_code(docker_image: str, tmp_path: Path) -> None:
    """scripts/docker-build.sh checks the llama-server it hands to the image (LLAMA_SOURCE=context)
    as the llama stage checks the one it compiles: code with AVX-512 instructions, which dies
    with SIGILL on other CPUs, is refused before anything is built."""
    source = tmp_path / "native.c"
    source.write_text('int main(void) { __asm__ volatile("vpxord %zmm0, %zmm0, %zmm0"); }\n')
    binary = tmp_path / "llama-server"
    subprocess.run(["gcc", "-o", str(binary), str(source)], check=True)
    tag = "reranker-seqcls:refused-native"
    proc = subprocess.run(
        [str(BUILD), tag],
        env={**os.environ, "LLAMA_SERVER": str(binary)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"{binary} holds 1 AVX-512 instructions" in proc.stderr
    assert "Step 1/" not in proc.stdout  # refused before the build
    inspect = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    assert inspect.returncode != 0
    assert not (ROOT / ".docker-llama").exists() and not (ROOT / ".docker-wheels").exists()
